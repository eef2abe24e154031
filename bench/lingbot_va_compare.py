#!/usr/bin/env python3
"""vjx vs upstream LeRobot 0.6.1 LingBot-VA on this CPU, at the real LIBERO shapes with fewer layers.

The checkpoint is random, with the real widths of every part: the Wan2.2 VAE (base_dim 160,
decoder_base_dim 256, z_dim 48), UMT5 at d_model 4096 (64 heads x 64, d_ff 10240), and the
transformer at 24 heads x 128 with ffn 14336 and text_dim 4096. Only the depths are cut
(--layers of the 30 transformer blocks, --text-layers of the 24 UMT5 blocks), so that a chunk
takes a minute, not an hour; per-block cost is what the real model pays 30 (24) times over.
The episode is LIBERO's: two 256x256 cameras resized to 128x128 and concatenated on width,
apf 4, F 4, attn_window 30, 20 video / 50 action steps, CFG 5 / 1, shifts 5 / 0.05, 512 prompt
tokens. Every call sees the same observation, as `vjx bench` does.

One run does, with the same thread count everywhere:
  1. the checkpoint and an episode (built once into --work, reused after);
  2. upstream `select_action` in float32, and in its default bfloat16 (--upstream-dtypes), timing
     the calls that predict a chunk; its actions for every call are kept;
  3. `vjx export`, then `vjx bench --json` on each --backends entry;
  4. `vjx episode --json` on ONNX Runtime with upstream's injected noise: its actions against
     upstream float32 (relative L2), next to upstream bfloat16 against float32;
and prints one JSON report (also written to <work>/compare.json). Progress goes to stderr.

  .venv-ref/bin/python bench/lingbot_va_compare.py --vjx target/release/vjx
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SCRIPT = ROOT / "tests/reference/make_lingbot_va_fixtures.py"
CAMERAS = ["observation.images.image", "observation.images.image2"]
NATIVE = 256
PROMPT_TOKENS = 512
TASK = "put both the alphabet soup and the tomato sauce in the basket"


def log(msg: str) -> None:
    print(f"[lingbot-compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fixtures_module():
    """The fixture generator, whose builders take the real widths as arguments."""
    spec = importlib.util.spec_from_file_location("make_lingbot_va_fixtures", FIXTURE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def libero_case(fx, n_chunks: int):
    return fx.Case(
        name="libero_real_dims",
        description="LIBERO settings at the real widths, fewer layers (bench/lingbot_va_compare.py)",
        seed=7,
        task=TASK,
        cameras=[fx.Camera(k, NATIVE, NATIVE) for k in CAMERAS],
        camera_layout="width_concat",
        height=128,
        width=128,
        action_per_frame=4,
        frame_chunk_size=4,
        attn_window=30,
        num_inference_steps=20,
        action_num_inference_steps=50,
        snr_shift=5.0,
        action_snr_shift=0.05,
        used_action_channel_ids=list(range(7)),
        n_chunks=n_chunks,
    )


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- 1. checkpoint + episode ---------------------------------------------------------------------
def make(work: Path, layers: int, text_layers: int, n_chunks: int) -> dict:
    import torch
    from PIL import Image

    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.lingbot_va.modeling_lingbot_va import LingBotVAPolicy

    fx = fixtures_module()
    case = libero_case(fx, n_chunks)
    gen_t = torch.Generator().manual_seed(case.seed)
    gen_np = np.random.default_rng(case.seed)
    tmp = work.with_name(work.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    wan, ckpt, episode = tmp / "wan", tmp / "checkpoint", tmp / "episode"

    log("VAE (real widths), calibrating latents mean/std on 2 clips")
    clips = fx.sample_vae_clips(case, gen_np)
    vae_stats = fx.build_vae(wan / "vae", [c[:2] for c in clips], gen_t, base_dim=160, decoder_base_dim=256)
    vocab = fx.tokenizer_vocab([TASK])
    fx.build_tokenizer(wan / "tokenizer", vocab)
    vocab_size = int(np.ceil((len(vocab) + 8) / 8) * 8)
    log(f"UMT5 encoder: d_model 4096, {text_layers} layers")
    fx.build_text_encoder(wan / "text_encoder", vocab_size, gen_t, d_model=4096, d_kv=64, d_ff=10240,
                          num_layers=text_layers, num_heads=64)

    log(f"transformer: 24 heads x 128, ffn 14336, {layers} layers")
    cfg = fx.policy_config(case, num_attention_heads=24, attention_head_dim=128, text_dim=4096, ffn_dim=14336,
                           num_layers=layers, max_sequence_length=PROMPT_TOKENS)
    policy = LingBotVAPolicy(cfg)
    fx.reinit_transformer(policy.transformer, gen_t)
    transformer_params = params(policy.transformer)
    policy.save_pretrained(ckpt)
    pre, post = make_pre_post_processors(cfg, dataset_stats=fx.make_quantile_stats(case, gen_np))
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)
    del policy

    episode.mkdir(parents=True)
    images = {}
    for key in CAMERAS:
        name = f"{key.rsplit('.', 1)[-1]}.png"
        base, drift = gen_np.uniform(0.1, 0.9, (5, 5, 3)), gen_np.uniform(-0.2, 0.2, (5, 5, 3))
        Image.fromarray(fx.smooth_image(NATIVE, NATIVE, base, drift, 0.0)).save(episode / name)
        images[key] = name
    lh, lw = 128 // 16, 2 * (128 // 16)
    noise = []
    for k in range(n_chunks):
        lat = torch.randn(1, fx.Z_DIM, case.frame_chunk_size, lh, lw, generator=gen_t)
        act = torch.randn(1, 30, case.frame_chunk_size, case.action_per_frame, 1, generator=gen_t)
        np.save(episode / f"chunk{k}_latents.npy", lat.numpy())
        np.save(episode / f"chunk{k}_actions.npy", act.numpy())
        noise.append({"latents": f"chunk{k}_latents.npy", "actions": f"chunk{k}_actions.npy"})
    calls = [{"images": images} for _ in range(fx.calls_for(case))]
    (episode / "episode.json").write_text(json.dumps({"task": TASK, "calls": calls, "noise": noise}, indent=1))
    info = {
        "layers": layers, "text_layers": text_layers, "n_chunks": n_chunks, "n_calls": len(calls),
        "transformer_params": transformer_params, "vae_calibration": vae_stats,
        "vae_params": params_of_saved(wan / "vae"), "text_encoder_params": params_of_saved(wan / "text_encoder"),
    }
    (tmp / "made.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    tmp.rename(work)
    return info


def params_of_saved(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "np") as st:
            total += sum(int(np.prod(st.get_slice(k).get_shape())) for k in st.keys())
    return total


# ---- 2. upstream ---------------------------------------------------------------------------------
def upstream(work: Path, dtype: str, threads: int, out: Path) -> dict:
    import torch

    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.lingbot_va.modeling_lingbot_va import LingBotVAPolicy

    torch.set_num_threads(threads)
    ckpt, episode_dir = work / "checkpoint", work / "episode"
    episode = json.loads((episode_dir / "episode.json").read_text())
    t0 = time.perf_counter()
    run_cfg = PreTrainedConfig.from_pretrained(ckpt)
    run_cfg.wan_pretrained_path = str(work / "wan")
    run_cfg.dtype = dtype
    policy = LingBotVAPolicy.from_pretrained(ckpt, config=run_cfg)
    policy.eval()
    pre, post = make_pre_post_processors(run_cfg, pretrained_path=str(ckpt))
    policy._ensure_frozen_modules()
    load_s = time.perf_counter() - t0

    noise = [(torch.from_numpy(np.load(episode_dir / n["latents"])), torch.from_numpy(np.load(episode_dir / n["actions"])))
             for n in episode["noise"]]
    state = {"chunk": -1, "predicted": False}
    orig_pac, orig_infer, orig_randn = policy.predict_action_chunk, policy._infer, torch.randn

    def predict_action_chunk(batch, **kw):
        state["chunk"] += 1
        state["predicted"] = True
        return orig_pac(batch, **kw)

    def infer(*args, **kw):
        queue = list(noise[state["chunk"]])

        def injected(*size, **kwargs):
            shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
            assert queue and shape == tuple(queue[0].shape), (shape, [tuple(q.shape) for q in queue])
            return queue.pop(0).to(dtype=kwargs.get("dtype") or torch.float32)

        torch.randn = injected
        try:
            return orig_infer(*args, **kw)
        finally:
            torch.randn = orig_randn

    policy.predict_action_chunk, policy._infer = predict_action_chunk, infer

    from PIL import Image

    images = {k: torch.from_numpy(np.asarray(Image.open(episode_dir / p).convert("RGB")).copy())
              .permute(2, 0, 1).float().div(255.0)[None] for k, p in episode["calls"][0]["images"].items()}
    chunk_ms, actions, actions_norm = [], [], []
    for i, _ in enumerate(episode["calls"]):
        batch = dict(images, task=episode["task"])
        state["predicted"] = False
        with torch.no_grad():
            obs = pre(batch)
            t = time.perf_counter()
            a_norm = policy.select_action(obs)
            ms = (time.perf_counter() - t) * 1e3
            a = post(a_norm)
        if state["predicted"]:
            chunk_ms.append(ms)
            log(f"upstream {dtype}: chunk {state['chunk']} {ms / 1e3:.1f} s")
        actions_norm.append(a_norm[0].float().numpy())
        actions.append(a[0].float().numpy())
    np.save(out.with_suffix(".actions.npy"), np.stack(actions))
    np.save(out.with_suffix(".actions_normalized.npy"), np.stack(actions_norm))
    result = {"dtype": dtype, "threads": threads, "load_s": load_s, "chunk_ms": chunk_ms,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    out.write_text(json.dumps(result, indent=1))
    return result


# ---- 3-4. vjx + report ---------------------------------------------------------------------------
def run_measured(cmd: list[str], stdout_path: Path) -> dict:
    """Runs `cmd` with stdout to a file; wall seconds and that child's own peak RSS."""
    t0 = time.perf_counter()
    with open(stdout_path, "wb") as f:
        child = subprocess.Popen(cmd, stdout=f)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit(f"lingbot_va_compare: `{' '.join(cmd)}` failed with exit code {rc}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vjx", default=str(ROOT / "target/release/vjx"), help="vjx binary")
    ap.add_argument("--work", default=str(ROOT / "bench/work/lingbot_va"), help="checkpoint, exports, results")
    ap.add_argument("--layers", type=int, default=2, help="transformer blocks (the real model has 30)")
    ap.add_argument("--text-layers", type=int, default=2, help="UMT5 blocks (UMT5-XXL has 24)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2, help="timed chunks after the first and the warm-up")
    ap.add_argument("--warmup", type=int, default=1, help="untimed chunks after the first")
    ap.add_argument("--backends", default="ort,tract", help="vjx backends to bench, comma-separated")
    ap.add_argument("--upstream-dtypes", default="float32,bfloat16", help="upstream dtypes to time")
    ap.add_argument("--rebuild", action="store_true", help="make the checkpoint again even if present")
    ap.add_argument("--part", choices=["upstream"], help=argparse.SUPPRESS)
    ap.add_argument("--dtype", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    if args.part == "upstream":
        upstream(work, args.dtype, args.threads, Path(args.out))
        return

    n_chunks = 1 + args.warmup + args.iters
    made_path = work / "made.json"
    made = json.loads(made_path.read_text()) if made_path.is_file() else None
    wanted = {"layers": args.layers, "text_layers": args.text_layers, "n_chunks": n_chunks}
    if args.rebuild or made is None or any(made.get(k) != v for k, v in wanted.items()):
        log(f"making the checkpoint into {work}")
        made = make(work, args.layers, args.text_layers, n_chunks)
    vjx = args.vjx
    if not Path(vjx).is_file():
        sys.exit(f"lingbot_va_compare: no vjx binary at {vjx} (cargo build --release, or --vjx PATH)")
    res = work / "results"
    shutil.rmtree(res, ignore_errors=True)
    res.mkdir()

    upstream_runs = {}
    for dtype in [d for d in args.upstream_dtypes.split(",") if d]:
        log(f"upstream {dtype}")
        out = res / f"upstream-{dtype}.json"
        run_measured([sys.executable, __file__, "--part", "upstream", "--work", str(work), "--dtype", dtype,
                      "--threads", str(args.threads), "--out", str(out)], res / f"upstream-{dtype}.log")
        upstream_runs[dtype] = json.loads(out.read_text())

    log("vjx export")
    export = work / "export"
    shutil.rmtree(export, ignore_errors=True)
    export_proc = run_measured([vjx, "export", "--checkpoint", str(work / "checkpoint"), "--backbone", str(work / "wan"),
                                "--out", str(export), "--json"], res / "export.json")
    episode = json.loads((work / "episode/episode.json").read_text())
    obs_args = []
    for key, name in episode["calls"][0]["images"].items():
        obs_args += ["--image", f"{key}={work / 'episode' / name}"]
    obs_args += ["--task", episode["task"]]

    benches = {}
    for backend in [b for b in args.backends.split(",") if b]:
        log(f"vjx bench {backend}")
        out = res / f"bench-{backend}.json"
        proc = run_measured([vjx, "bench", str(export), "--backend", backend, "--threads", str(args.threads),
                             "--iters", str(args.iters), "--warmup", str(args.warmup), "--json", *obs_args], out)
        benches[backend] = {"report": json.loads(out.read_text()), "process": proc}

    log("vjx episode ort (accuracy)")
    out = res / "episode-ort.json"
    run_measured([vjx, "episode", str(export), "--episode", str(work / "episode/episode.json"), "--backend", "ort",
                  "--threads", str(args.threads), "--json"], out)
    vjx_actions = np.array(json.loads(out.read_text())["actions"], dtype=np.float32)

    timed = slice(1 + args.warmup, None)
    report = {
        "what": "LingBot-VA, LIBERO shapes at the real widths with cut depth; CPU; chunk = one predicting select_action call",
        "threads": args.threads, "iters": args.iters, "warmup": args.warmup, "model": made,
        "upstream": {}, "vjx": {}, "accuracy": {}, "export": {**export_proc},
    }
    ref = None
    for dtype, run in upstream_runs.items():
        report["upstream"][dtype] = {
            "first_chunk_ms": run["chunk_ms"][0], "chunk_p50_ms": median(run["chunk_ms"][timed]),
            "chunks_ms": run["chunk_ms"], "load_s": run["load_s"], "peak_rss_mb": run["peak_rss_mb"],
        }
        actions = np.load(res / f"upstream-{dtype}.actions.npy")
        if dtype == "float32":
            ref = actions
    fp32_p50 = report["upstream"].get("float32", {}).get("chunk_p50_ms")
    for backend, b in benches.items():
        r = b["report"]
        entry = {"chunk_p50_ms": r["latency_ms"]["p50"], "first_chunk_ms": r["first_call_ms"],
                 "load_ms": r["load_ms"], "stages_ms": r["stages_ms"], "cache_memory": r.get("cache_memory"),
                 "peak_rss_mb": r.get("peak_rss_mb")}
        if fp32_p50:
            entry["ratio_to_upstream_float32"] = entry["chunk_p50_ms"] / fp32_p50
        if "bfloat16" in report["upstream"]:
            entry["ratio_to_upstream_bfloat16"] = entry["chunk_p50_ms"] / report["upstream"]["bfloat16"]["chunk_p50_ms"]
        report["vjx"][backend] = entry
    if ref is not None:
        report["accuracy"]["vjx_ort_vs_upstream_float32"] = rel_l2(vjx_actions, ref)
        if (res / "upstream-bfloat16.actions.npy").is_file():
            report["accuracy"]["upstream_bfloat16_vs_float32"] = rel_l2(np.load(res / "upstream-bfloat16.actions.npy"), ref)
    text = json.dumps(report, indent=1)
    (work / "compare.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
