"""Writes graphs/tests/fixtures/wan_vae/: a tiny random Wan2.2-layout `AutoencoderKLWan` and what
diffusers / LeRobot compute with it, for graphs/tests/wan_vae.rs.

Run from the repo root with the reference venv:
    .venv-ref/bin/python graphs/tests/make_wan_vae_reference.py

Same structure as the Wan2.2 VAE (residual down/up blocks, temporal downsample [F, T, T], z_dim 48,
patch size 2), scaled down (base_dim 4, decoder_base_dim 4) so that the fixture stays under 1 MB.
Weights and frames are f16-representable and stored as f16; everything is computed in f32.

Files:
- config.json, diffusion_pytorch_model.safetensors: the VAE (diffusers names, f16).
- inputs.safetensors: `frames` [2, 3, 29, 16, 32] f16 in [-1, 1] (two cameras).
- latent_first.npy, latent_stream1.npy, latent_stream2.npy: normalized mu of LeRobot's
  `WanVAEStreamingWrapper.encode_chunk` on frames[:, :, :1], [1:13], [13:29] (one cache throughout).
- latent_whole.npy: normalized mu of `AutoencoderKLWan.encode` on all 29 frames.
- decode_latent.npy [1, 48, 3, 1, 2]: a normalized latent (camera 0, first 3 latent frames, scaled);
  decoded.npy [1, 3, 9, 16, 32]: `AutoencoderKLWan.decode` of its denormalization.
"""

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from lerobot.policies.lingbot_va.utils import WanVAEStreamingWrapper, denormalize_latents
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent / "fixtures" / "wan_vae"
N, H, W = 2, 16, 32
CHUNKS = [1, 12, 16]
Z = 48


def f16_exact(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(torch.float32)


def build_vae() -> AutoencoderKLWan:
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(1)
    vae = AutoencoderKLWan(
        base_dim=4,
        decoder_base_dim=4,
        z_dim=Z,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_temporal=4,
        scale_factor_spatial=16,
        latents_mean=[round(float(v), 4) for v in rng.uniform(-0.3, 0.3, Z)],
        latents_std=[round(float(v), 4) for v in rng.uniform(0.4, 1.6, Z)],
    ).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
            p.copy_(f16_exact(p))
    return vae


def normalized_mu(vae: AutoencoderKLWan, enc: torch.Tensor) -> torch.Tensor:
    # As LeRobot's `_normalize_vae_latent`.
    mu = enc[:, :Z].float()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    inv_std = (1.0 / torch.tensor(vae.config.latents_std)).view(1, -1, 1, 1, 1)
    return (mu - mean) * inv_std


def save(name: str, t: torch.Tensor) -> None:
    np.save(OUT / name, t.detach().to(torch.float32).contiguous().numpy())


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    vae = build_vae()
    vae.save_config(OUT)
    save_file({k: v.to(torch.float16).contiguous() for k, v in vae.state_dict().items()},
              OUT / "diffusion_pytorch_model.safetensors")

    t_total = sum(CHUNKS)
    gen = torch.Generator().manual_seed(2)
    # Smooth-ish random video: a coarse random field upsampled, plus fine noise.
    coarse = torch.rand((N, 3, t_total, H // 4, W // 4), generator=gen) * 2 - 1
    frames = torch.nn.functional.interpolate(coarse, size=(t_total, H, W), mode="trilinear")
    frames = (frames + 0.3 * torch.randn(frames.shape, generator=gen)).clamp(-1, 1)
    frames = f16_exact(frames)
    save_file({"frames": frames.to(torch.float16).contiguous()}, OUT / "inputs.safetensors")

    with torch.no_grad():
        stream = WanVAEStreamingWrapper(vae)
        start, streamed = 0, []
        for name, t in zip(["latent_first", "latent_stream1", "latent_stream2"], CHUNKS):
            latent = normalized_mu(vae, stream.encode_chunk(frames[:, :, start : start + t]))
            save(f"{name}.npy", latent)
            streamed.append(latent)
            start += t
        whole = normalized_mu(vae, vae.encode(frames).latent_dist.mode())
        save("latent_whole.npy", whole)
        gap = (torch.cat(streamed, 2) - whole).norm() / whole.norm()
        print(f"streamed vs whole-clip encode: rel L2 {gap:.2e}")

        z = (whole[:1, :, :3] * 0.5).contiguous()
        save("decode_latent.npy", z)
        zd = denormalize_latents(z, vae.config.latents_mean, vae.config.latents_std, Z)
        decoded = vae.decode(zd, return_dict=False)[0]
        save("decoded.npy", decoded)

    print("latent std", whole.std().item(), "decoded std", decoded.std().item(),
          "clamped fraction", (decoded.abs() >= 1).float().mean().item())
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
