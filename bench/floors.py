#!/usr/bin/env python3
"""Compute floor of one VLA-JEPA action chunk on this CPU.

FLOPs (one multiply-add = 2 FLOPs) are counted from the config shapes:
  vision  Qwen3-VL vision tower over every camera's patches: patch embedding, blocks (qkv, attention
          per image, proj, MLP), the merger and the DeepStack mergers;
  text    the decoder prefill over the L prompt tokens (projections, causal attention, gated MLP) up
          to the last layer; the final norm and lm_head are not needed (upstream still computes the
          lm_head logits: reported apart as upstream_extra_flops);
  dit     the flow-matching head for every Euler step (state/action/timestep encoders, DiT blocks
          with their cross-attention to the embodied tokens, output projections, action decoder).
L comes from tokenizing the real prompt (chat template, action and embodied tokens, <|image_pad|>
expansion from the smart-resized image grids), or from --tokens.

GEMM throughput is measured with torch (F.linear, nn.Linear weight layout) at each stage's shapes
(one block's projections with the stage's row count), in FP32 and BF16, with --threads threads.
floor_s = sum over stages of stage FLOPs / stage GEMM throughput.

Usage: .venv-ref/bin/python bench/floors.py --checkpoint C [--backbone B] [--obs O] [--tokens L] --threads 2
Prints one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--backbone", type=Path, help="Qwen3-VL dir (default: <checkpoint>/../backbone)")
    ap.add_argument("--obs", type=Path, help="observation dir (inputs.json + PNGs): task text and image sizes")
    ap.add_argument("--tokens", type=int, help="prompt length L (skips tokenization)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=0.3, help="timed seconds per GEMM shape")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402  (N812)

DEFAULT_TASK = "Execute the robot action."


def log(msg: str) -> None:
    print(f"[floors] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------
def image_sizes(policy_cfg: dict, obs: Path | None) -> list[tuple[int, int]]:
    """(H, W) per camera as the Qwen processor receives it (after resize_images_to)."""
    keys = [k for k, f in policy_cfg["input_features"].items() if f["type"] == "VISUAL"]
    if obs is not None:
        from PIL import Image

        inputs = json.loads((obs / "inputs.json").read_text())
        sizes = []
        for k in keys:
            with Image.open(obs / inputs["images"][k]) as im:
                sizes.append((im.height, im.width))
    else:
        sizes = [tuple(policy_cfg["input_features"][k]["shape"][-2:]) for k in keys]
    if policy_cfg.get("resize_images_to"):
        sizes = [tuple(policy_cfg["resize_images_to"])] * len(sizes)
    return sizes


def image_grids(sizes: list[tuple[int, int]], backbone: Path, vision: dict) -> list[tuple[int, int, int]]:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    proc = json.loads((backbone / "preprocessor_config.json").read_text())
    size = proc.get("size", {})
    min_pixels = size.get("shortest_edge", proc.get("min_pixels"))
    max_pixels = size.get("longest_edge", proc.get("max_pixels"))
    patch = vision["patch_size"]
    merge = vision["spatial_merge_size"]
    grids = []
    for h, w in sizes:
        rh, rw = smart_resize(h, w, factor=patch * merge, min_pixels=min_pixels, max_pixels=max_pixels)
        grids.append((1, rh // patch, rw // patch))  # one frame: temporal grid 1
    return grids


def prompt_text(policy_cfg: dict, task: str, n_images: int) -> str:
    steps = policy_cfg["num_video_frames"] // policy_cfg["jepa_tubelet_size"] - 1
    actions = "".join(
        policy_cfg["special_action_token"].format(i) * policy_cfg["num_action_tokens_per_timestep"]
        for i in range(steps)
    )
    embodied = policy_cfg["embodied_action_token"] * policy_cfg["num_embodied_action_tokens_per_instruction"]
    prompt = policy_cfg["prompt_template"].format(instruction=task, actions=actions, e_actions=embodied)
    return (
        "<|im_start|>user\n" + "<|vision_start|><|image_pad|><|vision_end|>" * n_images
        + prompt + "<|im_end|>\n<|im_start|>assistant\n"
    )


def token_count(policy_cfg: dict, backbone: Path, task: str, grids, merge: int) -> int:
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(backbone / "tokenizer.json"))
    added = [policy_cfg["special_action_token"].format(i) for i in range(policy_cfg["chunk_size"] * 4)]
    for t in added + [policy_cfg["embodied_action_token"]]:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)])
    ids = tok.encode(prompt_text(policy_cfg, task, len(grids)), add_special_tokens=False).ids
    image_tokens = sum(t * h * w // (merge * merge) for t, h, w in grids)
    return len(ids) - len(grids) + image_tokens


# ------------------------------------------------------------------------------------------------
# FLOPs
# ------------------------------------------------------------------------------------------------
def mm(m: int, k: int, n: int) -> int:
    return 2 * m * k * n


def vision_flops(vision: dict, grids) -> dict:
    d, inter = vision["hidden_size"], vision["intermediate_size"]
    out, merge = vision["out_hidden_size"], vision["spatial_merge_size"]
    patch_in = vision.get("in_channels", 3) * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    n_per_image = [t * h * w for t, h, w in grids]
    n = sum(n_per_image)
    per_block_proj = mm(n, d, 3 * d) + mm(n, d, d) + mm(n, d, inter) + mm(n, inter, d)
    per_block_attn = sum(2 * mm(p, d, p) for p in n_per_image)  # QK^T and AV, each image on its own
    merged = n // (merge * merge)
    wide = d * merge * merge
    one_merger = mm(merged, wide, wide) + mm(merged, wide, out)
    n_mergers = 1 + len(vision.get("deepstack_visual_indexes", []))
    parts = {
        "patch_embed": mm(n, patch_in, d),
        "blocks_proj_mlp": vision["depth"] * per_block_proj,
        "blocks_attention": vision["depth"] * per_block_attn,
        "mergers": n_mergers * one_merger,
    }
    return {"total": sum(parts.values()), "parts": parts, "patches": n, "merged_tokens": merged}


def text_flops(text: dict, L: int) -> dict:
    h, inter = text["hidden_size"], text["intermediate_size"]
    hd = text.get("head_dim") or h // text["num_attention_heads"]
    q, kv = text["num_attention_heads"] * hd, text["num_key_value_heads"] * hd
    per_layer_proj = mm(L, h, q) + 2 * mm(L, h, kv) + mm(L, q, h) + 2 * mm(L, h, inter) + mm(L, inter, h)
    per_layer_attn = 2 * 2 * text["num_attention_heads"] * hd * (L * (L + 1) // 2)  # causal QK^T + AV
    layers = text["num_hidden_layers"]
    parts = {"layers_proj_mlp": layers * per_layer_proj, "layers_attention": layers * per_layer_attn}
    return {"total": sum(parts.values()), "parts": parts, "L": L}


def dit_flops(policy_cfg: dict, text_hidden: int) -> dict:
    presets = {"DiT-B": (12, 64), "DiT-L": (32, 48), "DiT-test": (2, 8)}
    heads, head_dim = presets[policy_cfg["action_model_type"]]
    heads = policy_cfg.get("action_num_heads") or heads
    head_dim = policy_cfg.get("action_attention_head_dim") or head_dim
    d = heads * head_dim
    hh = policy_cfg["action_hidden_size"]
    a, chunk = policy_cfg["output_features"]["action"]["shape"][0], policy_cfg["chunk_size"]
    n_cond = policy_cfg["num_embodied_action_tokens_per_instruction"]
    has_state = "observation.state" in policy_cfg["input_features"]
    s = policy_cfg["input_features"]["observation.state"]["shape"][0] if has_state else 0
    seq = int(has_state) + n_cond + chunk  # [state] + future tokens + action tokens
    steps = policy_cfg["num_inference_timesteps"]
    per_block_common = mm(1, d, 2 * d) + mm(seq, d, d) * 2 + mm(seq, d, 4 * d) + mm(seq, 4 * d, d)
    cross = mm(n_cond, text_hidden, d) * 2 + 2 * mm(seq, d, n_cond)
    self_ = mm(seq, d, d) * 2 + 2 * mm(seq, d, seq)
    layers = policy_cfg["action_num_layers"]
    n_cross = (layers + 1) // 2  # even layers cross-attend
    per_step = {
        "encoders": mm(1, 256, d) + mm(1, d, d) + mm(chunk, a, d) + mm(chunk, 2 * d, d) + mm(chunk, d, d)
        + (mm(1, s, hh) + mm(1, hh, d) if has_state else 0),
        "blocks": layers * per_block_common + n_cross * cross + (layers - n_cross) * self_,
        "output": mm(1, d, 2 * d) + mm(seq, d, hh) + mm(chunk, hh, hh) + mm(chunk, hh, a),
    }
    parts = {k: steps * v for k, v in per_step.items()}
    return {"total": sum(parts.values()), "parts": parts, "steps": steps, "seq": seq, "inner_dim": d}


# ------------------------------------------------------------------------------------------------
# GEMM throughput
# ------------------------------------------------------------------------------------------------
def stage_shapes(vision: dict, text: dict, L: int, patches: int, policy_cfg: dict, dit_seq: int, dit_d: int):
    """(M, K, N) of one block's projections per stage."""
    d, vi = vision["hidden_size"], vision["intermediate_size"]
    h, ti = text["hidden_size"], text["intermediate_size"]
    hd = text.get("head_dim") or h // text["num_attention_heads"]
    q, kv = text["num_attention_heads"] * hd, text["num_key_value_heads"] * hd
    return {
        "vision": [(patches, d, 3 * d), (patches, d, d), (patches, d, vi), (patches, vi, d)],
        "text": [(L, h, q), (L, h, kv), (L, h, kv), (L, q, h), (L, h, ti), (L, h, ti), (L, ti, h)],
        "dit": [(dit_seq, dit_d, dit_d)] * 4 + [(dit_seq, dit_d, 4 * dit_d), (dit_seq, 4 * dit_d, dit_d),
                                                (policy_cfg["num_embodied_action_tokens_per_instruction"], h, dit_d)],
    }


def time_shapes(shapes, dtype: torch.dtype, min_seconds: float) -> float:
    """GFLOP/s of running the list of GEMMs back to back (best of 3 timed windows)."""
    gen = torch.Generator().manual_seed(0)
    ops = [(torch.randn(m, k, generator=gen).to(dtype), torch.randn(n, k, generator=gen).to(dtype) / k ** 0.5)
           for m, k, n in shapes]
    flops = sum(mm(m, k, n) for m, k, n in shapes)

    def once():
        for x, w in ops:
            F.linear(x, w)

    for _ in range(2):
        once()
    t0 = time.perf_counter()
    once()
    one = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, int(min_seconds / one))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            once()
        best = min(best, (time.perf_counter() - t0) / reps)
    return flops / best / 1e9


def main() -> None:
    args = ARGS
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint
    backbone = args.backbone or ckpt.parent / "backbone"
    policy_cfg = json.loads((ckpt / "config.json").read_text())
    qwen_cfg = json.loads((backbone / "config.json").read_text())
    text, vision = qwen_cfg["text_config"], qwen_cfg["vision_config"]

    sizes = image_sizes(policy_cfg, args.obs)
    grids = image_grids(sizes, backbone, vision)
    task = DEFAULT_TASK
    if args.obs is not None:
        task = json.loads((args.obs / "inputs.json").read_text()).get("task") or DEFAULT_TASK
    L = args.tokens or token_count(policy_cfg, backbone, task, grids, vision["spatial_merge_size"])
    log(f"L={L} grids={grids}")

    flops = {
        "vision": vision_flops(vision, grids),
        "text": text_flops(text, L),
        "dit": dit_flops(policy_cfg, text["hidden_size"]),
    }
    shapes = stage_shapes(vision, text, L, flops["vision"]["patches"], policy_cfg,
                          flops["dit"]["seq"], flops["dit"]["inner_dim"])
    gemm = {}
    for stage, sh in shapes.items():
        gemm[stage] = {
            "shapes_mkn": [list(s) for s in sh],
            "gflops_fp32": time_shapes(sh, torch.float32, args.min_seconds),
            "gflops_bf16": time_shapes(sh, torch.bfloat16, args.min_seconds),
        }
        log(f"{stage}: fp32 {gemm[stage]['gflops_fp32']:.1f} GFLOP/s, bf16 {gemm[stage]['gflops_bf16']:.1f} GFLOP/s")

    total = sum(f["total"] for f in flops.values())
    floor = {
        prec: sum(flops[s]["total"] / (gemm[s][f"gflops_{prec}"] * 1e9) for s in flops) for prec in ("fp32", "bf16")
    }
    result = {
        "threads": args.threads,
        "L": L,
        "image_sizes": [list(s) for s in sizes],
        "image_grid_thw": [list(g) for g in grids],
        "flops": {**{s: f["total"] for s, f in flops.items()}, "total": total},
        "flops_detail": flops,
        "upstream_extra_flops": {"lm_head_logits": mm(L, text["hidden_size"], text["vocab_size"])},
        "gemm": gemm,
        "gflops_fp32": total / floor["fp32"] / 1e9,
        "gflops_bf16": total / floor["bf16"] / 1e9,
        "floor_s_fp32": floor["fp32"],
        "floor_s_bf16": floor["bf16"],
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
