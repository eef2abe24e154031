"""Writes the reference data of graphs/tests/lingbot_va_transformer.rs.

Builds LeRobot's `WanTransformer3DModel` (lerobot.policies.lingbot_va.utils) tiny and in float32
with O(1) random weights, and records a short sequence of single-stream forwards that share one
self-attention KV cache: for every forward its inputs, the cache slots valid before it, the slots
it wrote, what it wrote there (keys after norm_k + RoPE, raw values) and its output.

The cache pools before the first forward are filled with finite random values (upstream leaves
them uninitialised; the slots are invalid, so their contents must not matter). The pools before
any later forward are the initial pools with the writes of the earlier forwards applied; the
script checks that against upstream's live pools. `valid_before` is the cache mask before a
forward; `cache_valid` the cache slots its attention reads besides its own new tokens (the slots
valid after the eviction its allocation may do), which is what the graph's `cache_bias` encodes.

Run from the repository root:
    .venv-ref/bin/python graphs/tests/make_lingbot_transformer_reference.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.lingbot_va.configuration_lingbot_va import LingBotVAConfig
from lerobot.policies.lingbot_va.utils import WanTransformer3DModel, data_seq_to_patch, get_mesh_id

OUT = Path(__file__).resolve().parent / "fixtures" / "lingbot_transformer"
CACHE = "pos"
TEXT_LEN = 5
VALID_TEXT_ROWS = (3, 1)  # the prompt rows and the "" prompt's single row, rest zero as upstream


def policy_config() -> LingBotVAConfig:
    """A tiny LeRobot config: one 64x64 camera -> latent 4x4, 2x2 tokens per frame."""
    return LingBotVAConfig(
        num_attention_heads=2,
        attention_head_dim=24,
        in_channels=48,
        out_channels=48,
        action_dim=30,
        text_dim=32,
        freq_dim=32,
        ffn_dim=96,
        num_layers=2,
        obs_cam_keys=["observation.images.image"],
        height=64,
        width=64,
        action_per_frame=4,
        frame_chunk_size=2,
        attn_window=4,
        dtype="float32",
        wan_pretrained_path="unreachable/lingbot-va-tiny",
        input_features={"observation.images.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))},
        device="cpu",
    )


def build_model(cfg: LingBotVAConfig, seed: int) -> WanTransformer3DModel:
    model = WanTransformer3DModel(
        patch_size=tuple(cfg.patch_size),
        num_attention_heads=cfg.num_attention_heads,
        attention_head_dim=cfg.attention_head_dim,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        action_dim=cfg.action_dim,
        text_dim=cfg.text_dim,
        freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers,
        cross_attn_norm=cfg.cross_attn_norm,
        eps=cfg.eps,
    ).float()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("scale_shift_table"):
                p.copy_(0.3 * noise)
            elif p.ndim == 2:
                p.copy_(noise / p.shape[1] ** 0.5)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:  # RMSNorm / LayerNorm gains
                p.copy_(1.0 + 0.2 * noise)
    return model.eval()


def latent_hw(cfg):
    return cfg.height // 16, (cfg.width // 16) * len(cfg.obs_cam_keys)


def text_embeds(cfg, batch, gen):
    rows = []
    for b in range(batch):
        t = torch.randn(TEXT_LEN, cfg.text_dim, generator=gen)
        t[VALID_TEXT_ROWS[b]:] = 0
        rows.append(t)
    return torch.stack(rows)


def save(path: Path, tensor):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor
    np.save(path, np.ascontiguousarray(arr))


def record_written_slots(model):
    """Wraps every block's `attn1.update_cache` to remember, for its last call, the slots written
    and the other slots the attention then reads (valid after any eviction)."""
    written = {}
    for i, block in enumerate(model.blocks):
        attn = block.attn1
        original = attn.update_cache

        def wrapped(cache_name, key, value, is_pred, _orig=original, _attn=attn, _i=i):
            slots = _orig(cache_name, key, value, is_pred)
            attended = _attn.attn_caches[cache_name]["mask"].clone()
            attended[slots] = False
            written[_i] = (slots.clone(), attended)
            return slots

        attn.update_cache = wrapped
    return written


def write_text_condition(model, text, out_dir):
    """The per-block cross-attention K (after norm_k) and V of one forward, read by hooks."""
    captured = {}
    hooks = []
    for i, block in enumerate(model.blocks):
        hooks.append(block.attn2.norm_k.register_forward_hook(
            lambda _m, _inp, out, _i=i: captured.__setitem__(f"cross_key_{_i}", out.clone())))
        hooks.append(block.attn2.to_v.register_forward_hook(
            lambda _m, _inp, out, _i=i: captured.__setitem__(f"cross_value_{_i}", out.clone())))
    return captured, hooks


def run_case(name, cfg, model, batch, calls, seed):
    out_dir = OUT / name
    gen = torch.Generator().manual_seed(seed)
    h, w = latent_hw(cfg)
    f = cfg.frame_chunk_size
    apf = cfg.action_per_frame
    p = cfg.patch_size
    lv = f * h * w // (p[0] * p[1] * p[2])
    la = f * apf
    model.create_empty_cache(CACHE, cfg.attn_window, lv, la, "cpu", torch.float32, batch)
    for block in model.blocks:
        cache = block.attn1.attn_caches[CACHE]
        cache["k"].copy_(torch.randn(cache["k"].shape, generator=gen))
        cache["v"].copy_(torch.randn(cache["v"].shape, generator=gen))
    for i, block in enumerate(model.blocks):
        save(out_dir / f"initial_key_{i}.npy", block.attn1.attn_caches[CACHE]["k"])
        save(out_dir / f"initial_value_{i}.npy", block.attn1.attn_caches[CACHE]["v"])
    text = text_embeds(cfg, batch, gen)
    save(out_dir / "text_embeds.npy", text)

    written = record_written_slots(model)
    captured, hooks = write_text_condition(model, text, out_dir)
    replay = {
        i: (block.attn1.attn_caches[CACHE]["k"].clone(), block.attn1.attn_caches[CACHE]["v"].clone())
        for i, block in enumerate(model.blocks)
    }
    manifest = []
    for k, (stream, frame_start, update_cache, t, clear_pred_first) in enumerate(calls):
        call_dir = out_dir / f"call{k}"
        action = stream == "action"
        if clear_pred_first:
            model.clear_pred_cache(CACHE)
        mask = model.blocks[0].attn1.attn_caches[CACHE]["mask"].clone()
        for i, block in enumerate(model.blocks):
            live = block.attn1.attn_caches[CACHE]
            assert torch.equal(replay[i][0], live["k"]) and torch.equal(replay[i][1], live["v"]), (name, k)
            assert torch.equal(live["mask"], mask)
        timesteps = torch.full((f,), float(t))
        if frame_start == 0:
            timesteps[0] = 0.0  # the pinned conditioning frame
        if action:
            noisy = torch.randn(1, cfg.action_dim, f, apf, 1, generator=gen)
            grid = get_mesh_id(f, apf, 1, 1, 1, frame_start, action=True)
        else:
            noisy = torch.randn(1, cfg.in_channels, f, h, w, generator=gen)
            grid = get_mesh_id(f // p[0], h // p[1], w // p[2], 0, 1, frame_start)
        noisy = noisy.repeat(batch, *([1] * (noisy.ndim - 1)))
        input_dict = {
            "noisy_latents": noisy,
            "timesteps": timesteps[None].repeat(batch, 1),
            "grid_id": grid[None].repeat(batch, 1, 1),
            "text_emb": text,
        }
        with torch.no_grad():
            rope = model.rope(input_dict["grid_id"])
            out = model(input_dict, update_cache=update_cache, cache_name=CACHE, action_mode=action)
        if action:
            velocity = out.reshape(batch, f, apf, cfg.action_dim).permute(0, 3, 1, 2)
            save(call_dir / "noisy.npy", noisy[..., 0])
        else:
            velocity = data_seq_to_patch(p, out, f, h, w, batch_size=batch)
            save(call_dir / "noisy.npy", noisy)
        save(call_dir / "velocity.npy", velocity)
        save(call_dir / "timesteps.npy", input_dict["timesteps"])
        save(call_dir / "rope_cos.npy", rope[0].real.float())
        save(call_dir / "rope_sin.npy", rope[0].imag.float())
        save(call_dir / "valid_before.npy", mask.to(torch.int64))
        slots, attended = written[0]
        save(call_dir / "slots.npy", slots.to(torch.int64))
        save(call_dir / "cache_valid.npy", attended.to(torch.int64))
        for i, block in enumerate(model.blocks):
            assert torch.equal(written[i][0], slots) and torch.equal(written[i][1], attended)
            live = block.attn1.attn_caches[CACHE]
            save(call_dir / f"new_key_{i}.npy", live["k"][:, slots])
            save(call_dir / f"new_value_{i}.npy", live["v"][:, slots])
            replay[i][0][:, slots] = live["k"][:, slots]
            replay[i][1][:, slots] = live["v"][:, slots]
        manifest.append({"stream": stream, "frame_start": frame_start, "update_cache": update_cache,
                         "t": float(t), "cleared_pred_first": clear_pred_first,
                         "valid_before": int(mask.sum()), "cache_valid": int(attended.sum())})
        if k == 0:
            for hook in hooks:
                hook.remove()
            for key, value in captured.items():
                save(out_dir / f"{key}.npy", value)
    (out_dir / "calls.json").write_text(json.dumps(manifest, indent=2) + "\n")
    model.clear_cache(CACHE)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cfg = policy_config()
    cfg._save_pretrained(OUT)
    model = build_model(cfg, seed=1)
    save_file({f"transformer.{k}": v.contiguous() for k, v in model.state_dict().items()},
              OUT / "model.safetensors")

    # (stream, frame_start, update_cache, t, clear_pred_cache first). Chunk 0: a denoising step on the empty cache; then
    # the feedback pair (update 2) of the observed chunk; chunk 1: the last video step (update 1,
    # kept as prediction), an action step, then the prediction is cleared and the observed chunk
    # fed back into the freed slots; chunk 2's steps run on a full cache and evict the oldest.
    calls = [
        ("video", 0, 0, 937.5, False),
        ("video", 0, 2, 0.0, False),
        ("action", 0, 2, 0.0, False),
        ("video", 2, 1, 0.0, False),
        ("action", 2, 0, 710.1, False),
        ("video", 2, 2, 0.0, True),
        ("action", 2, 2, 0.0, False),
        ("video", 4, 0, 855.0, False),
        ("action", 4, 0, 42.0, False),
    ]
    run_case("b1", cfg, model, 1, calls, seed=2)
    cfg_calls = [
        ("video", 0, 2, 0.0, False),
        ("action", 0, 2, 0.0, False),
        ("video", 2, 0, 625.0, False),
        ("action", 2, 0, 210.0, False),
    ]
    run_case("b2_cfg", cfg, model, 2, cfg_calls, seed=3)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
