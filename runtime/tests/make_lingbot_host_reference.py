"""Dumps upstream LeRobot LingBot-VA host-side behaviour for `runtime/tests/lingbot_va_host.rs`.

Run from the repo root with the reference venv:
    .venv-ref/bin/python runtime/tests/make_lingbot_host_reference.py
Writes runtime/tests/fixtures/lingbot_host/ (small .npy and .json files).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.policies.lingbot_va.modeling_lingbot_va import LingBotVAPolicy
from lerobot.policies.lingbot_va.utils import FlowMatchScheduler, WanAttention
from lerobot.processor.normalize_processor import UnnormalizerProcessorStep

torch.set_num_threads(1)
OUT = Path(__file__).parent / "fixtures" / "lingbot_host"


def save(rel, array):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array))


def dump_json(rel, value):
    (OUT / rel).write_text(json.dumps(value, separators=(",", ":")))


# --------------------------------------------------------------------------------------------
# torch.linspace(1, 0, n) in float32, the sigma grid before the shift.
def linspace():
    rows = {str(n): torch.linspace(1.0, 0.0, n).tolist() for n in range(2, 66)}
    dump_json("linspace_1_0.json", rows)


# --------------------------------------------------------------------------------------------
# FlowMatchScheduler as LingBotVAPolicy builds it (sigma_min=0, extra_one_step=True).
def scheduler():
    gen = torch.Generator().manual_seed(0)
    for steps, shift in [(20, 5.0), (25, 5.0), (50, 0.05), (50, 1.0)]:
        sched = FlowMatchScheduler(shift=shift, sigma_min=0.0, extra_one_step=True)
        sched.set_timesteps(1000, training=True)
        sched.set_timesteps(steps)
        loop = F.pad(sched.timesteps, (0, 1), mode="constant", value=0)
        sample = torch.randn(16, generator=gen)
        velocity = torch.randn(16, generator=gen)
        stepped = torch.stack([sched.step(velocity, t, sample) for t in loop])
        case = f"scheduler/n{steps}_s{shift}"
        save(f"{case}/sigmas.npy", sched.sigmas.numpy())
        save(f"{case}/timesteps.npy", loop.numpy())
        save(f"{case}/sample.npy", sample.numpy())
        save(f"{case}/velocity.npy", velocity.numpy())
        save(f"{case}/stepped.npy", stepped.numpy())


# --------------------------------------------------------------------------------------------
# WanAttention KV-cache bookkeeping, traced through real forwards.
def kv_trace():
    torch.manual_seed(0)
    heads, head_dim, batch, size = 2, 4, 2, 12
    attn = WanAttention(dim=heads * head_dim, heads=heads, dim_head=head_dim, eps=1e-6)
    attn.init_kv_cache("pos", size, heads, head_dim, "cpu", torch.float32, batch)
    cache = attn.attn_caches["pos"]
    cache["k"].zero_()
    cache["v"].zero_()

    seen = {}
    new_keys, new_values, k_pools, v_pools = [], [], [], []
    inner_update = attn.update_cache

    def recording_update(cache_name, key, value, is_pred):
        slots = inner_update(cache_name, key, value, is_pred)
        seen["slots"] = slots.tolist()
        new_keys.append(key.clone())
        new_values.append(value.clone())
        return slots

    inner_op = attn.attn_op

    def recording_op(q, k, v):
        seen["mask_at_attention"] = cache["mask"].tolist()
        return inner_op(q, k, v)

    attn.update_cache = recording_update
    attn.attn_op = recording_op

    def state():
        k_pools.append(cache["k"].clone())
        v_pools.append(cache["v"].clone())
        return {
            "mask": cache["mask"].tolist(),
            "id": cache["id"].tolist(),
            "is_pred": cache["is_pred"].tolist(),
        }

    # (op, tokens, update_cache): chosen to hit transient writes, predicted entries, partial
    # evictions inside one id group, evictions triggered by a transient call, a full wipe and
    # an over-long request.
    script = [
        ("forward", 4, 2),
        ("forward", 3, 0),
        ("forward", 3, 1),
        ("forward", 2, 1),
        ("clear_pred", 0, 0),
        ("forward", 4, 2),
        ("forward", 3, 2),
        ("forward", 4, 2),  # 1 free: evicts 3 of the 4 id-0 slots
        ("forward", 5, 0),  # evicts the last id-0 slot and 3 of id 1, then releases its own
        ("forward", 2, 1),
        ("forward", 6, 2),
        ("clear_pred", 0, 0),
        ("forward", 4, 2),  # 2 free: evicts 2 of the id-3 slots {0, 1, 2, 11}
        ("forward", 12, 1),  # wipes every valid slot; the new id restarts at 0
        ("forward", 13, 2),  # cannot fit
    ]
    trace = []
    for op, tokens, update in script:
        seen.clear()
        entry = {"op": op, "tokens": tokens, "update_cache": update}
        if op == "clear_pred":
            attn.clear_pred_cache("pos")
        else:
            x = torch.randn(batch, tokens, heads * head_dim)
            try:
                with torch.no_grad():
                    attn(x, x, x, None, update_cache=update, cache_name="pos")
            except RuntimeError as err:
                entry["error"] = str(err)
            entry.update(seen)
        entry["after"] = state()
        trace.append(entry)
    # New K/V of every forward that wrote, concatenated on the token axis, and the pools after
    # every step.
    save("kv/new_keys.npy", torch.cat(new_keys, dim=1).numpy())
    save("kv/new_values.npy", torch.cat(new_values, dim=1).numpy())
    save("kv/k_pools.npy", torch.stack(k_pools).numpy())
    save("kv/v_pools.npy", torch.stack(v_pools).numpy())
    dump_json(
        "kv/trace.json",
        {"size": size, "batch": batch, "heads": heads, "head_dim": head_dim, "steps": trace},
    )


# --------------------------------------------------------------------------------------------
# Camera preprocessing: F.interpolate bilinear and upstream `_camera_frame` / `_encode_frames`.
def camera():
    gen = torch.Generator().manual_seed(1)
    inputs = {
        "a": torch.rand(3, 30, 40, generator=gen),
        "b": torch.rand(3, 13, 17, generator=gen),
        "c": torch.rand(3, 28, 28, generator=gen),
    }
    for name, img in inputs.items():
        save(f"camera/input_{name}.npy", img.numpy())
    resizes = [
        ("a", 16, 20),  # 1.875 x 2 (RoboTwin 480x640 -> 256x320 ratios)
        ("a", 17, 29),
        ("a", 23, 31),
        ("a", 30, 17),  # H unchanged
        ("b", 32, 40),  # upscale
        ("b", 7, 50),  # down in H, up in W
        ("c", 16, 16),  # 1.75 (LIBERO 224 -> 128 ratio)
    ]
    for name, h, w in resizes:
        out = F.interpolate(inputs[name][None], size=(h, w), mode="bilinear", align_corners=False)[0]
        save(f"camera/resize_{name}_{h}x{w}.npy", out.numpy())

    def fake_policy(hflip, height, width, layout="width_concat", keys=("cam0", "cam1")):
        cfg = SimpleNamespace(
            device="cpu", image_hflip=hflip, height=height, width=width, camera_layout=layout,
            obs_cam_keys=list(keys),
        )
        return SimpleNamespace(config=cfg, dtype=torch.float32)

    policy = fake_policy(True, 16, 20)
    frame = LingBotVAPolicy._camera_frame(policy, {"cam": inputs["a"]}, "cam")
    save("camera/camera_frame_a_hflip_16x20.npy", frame.numpy())

    # Two cameras, two frames each, as `_encode_frames` stacks them before the VAE.
    raw_frames = [
        {"cam0": inputs["a"], "cam1": inputs["c"]},
        {"cam0": inputs["c"][:, :20, :25], "cam1": inputs["a"]},
    ]
    policy = fake_policy(False, 16, 16)
    per_cam = [
        torch.cat([LingBotVAPolicy._camera_frame(policy, fb, k) for fb in raw_frames], dim=2)
        for k in policy.config.obs_cam_keys
    ]
    save("camera/vae_frames_2cam_2t_16x16.npy", torch.cat(per_cam, dim=0).numpy())

    # Latent layouts, with the upstream expressions.
    latents = torch.randn(3, 4, 2, 2, 3, generator=gen)
    save("layout/width_concat_in.npy", latents.numpy())
    save("layout/width_concat_out.npy", torch.cat(latents.split(1, dim=0), dim=-1).numpy())
    head = torch.randn(1, 4, 2, 4, 6, generator=gen)
    wrists = torch.randn(2, 4, 2, 2, 3, generator=gen)
    tshape = torch.cat([torch.cat(wrists.split(1, dim=0), dim=-1), head], dim=-2)
    save("layout/tshape_head.npy", head.numpy())
    save("layout/tshape_wrists.npy", wrists.numpy())
    save("layout/tshape_out.npy", tshape.numpy())


# --------------------------------------------------------------------------------------------
# Action chunk: used channels, frame-0 drop, quantile unnormalization.
def actions():
    gen = torch.Generator().manual_seed(2)
    action_dim, frames, apf = 30, 4, 4
    model = torch.randn(1, action_dim, frames, apf, 1, generator=gen)
    save("actions/model_actions.npy", model[0, :, :, :, 0].numpy())
    cases = {
        "libero": list(range(7)),
        "robotwin": list(range(7)) + [28] + list(range(7, 14)) + [29],
    }
    meta = {}
    for name, used in cases.items():
        for first in (True, False):
            a = model[:, used]
            if first:
                a = a[:, :, 1:]
            a = a.squeeze(-1).flatten(2).transpose(1, 2).contiguous()[0]
            save(f"actions/{name}_first{int(first)}.npy", a.numpy())
        mask = torch.zeros(action_dim, dtype=torch.bool)
        mask[used] = True
        zeroed = model.clone()
        zeroed[:, ~mask] *= 0
        save(f"actions/{name}_zeroed.npy", zeroed[0, :, :, :, 0].numpy())
        meta[name] = used

    n_used = len(cases["libero"])
    q01 = torch.tensor([-0.66, -0.84375, -0.9375, -0.12, -0.16, 0.25, -1.0])
    q99 = torch.tensor([0.9, 0.85, 0.9375, 0.17, 0.18, 0.25, 1.0])  # channel 5: zero range
    step = UnnormalizerProcessorStep(
        features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(n_used,))},
        norm_map={FeatureType.ACTION: NormalizationMode.QUANTILES},
        stats={"action": {"q01": q01.numpy(), "q99": q99.numpy()}},
    )
    chunk = torch.from_numpy(np.load(OUT / "actions/libero_first1.npy"))
    save("actions/libero_first1_unnormalized.npy", step._normalize_action(chunk, inverse=True).numpy())
    meta["q01"] = q01.tolist()
    meta["q99"] = q99.tolist()
    dump_json("actions/meta.json", meta)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    linspace()
    scheduler()
    kv_trace()
    camera()
    actions()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.1f} KiB)")
