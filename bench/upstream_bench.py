#!/usr/bin/env python3
"""Latency of upstream LeRobot VLA-JEPA inference on one observation, on the CPU.

Loads the policy the way a LeRobot user does (`VLAJEPAPolicy.from_pretrained` + the saved pre/post
processor pipelines), then times preprocessor -> predict_action_chunk -> postprocessor per chunk,
with the initial Euler noise taken from <obs>/noise.npy (injected at the action head's randn).

  --mode fp32      Qwen weights upcast to fp32 (torch_dtype float32) and upstream's CPU bf16 autocast
                   replaced by a null context: the FP32 reference the golden fixtures use.
  --mode autocast  Upstream's default: torch_dtype from the checkpoint (bfloat16) and the CPU bf16
                   autocast around the Qwen forward.

Prints one JSON object on stdout: mode, threads, iters, warmup, latency_ms (whole chunk),
predict_ms (predict_action_chunk alone), preprocess_ms / postprocess_ms, first_call_s, load_s,
peak_rss_mb, L (prompt tokens). --dump DIR writes embodied_hidden.npy (last decoder layer output at
the embodied rows, before the final norm, as f32, no batch dim), actions_normalized.npy and
actions.npy (after the postprocessor) from the last timed chunk.

The Qwen backbone is loaded from --backbone (default: <checkpoint>/../backbone). If that dir has no
weights (the tiny fixtures), a copy with throw-away random weights is made in a temp dir; every
weight is then overwritten by the checkpoint anyway.

Usage: .venv-ref/bin/python bench/upstream_bench.py --checkpoint C --obs O --mode fp32 --threads 2 --iters 3
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="LeRobot VLA-JEPA checkpoint dir")
    ap.add_argument("--obs", type=Path, required=True, help="dir with inputs.json, the PNGs and noise.npy")
    ap.add_argument("--backbone", type=Path, help="Qwen3-VL dir (default: <checkpoint>/../backbone)")
    ap.add_argument("--mode", choices=["fp32", "autocast"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dump", type=Path, help="write embodied_hidden.npy, actions_normalized.npy, actions.npy here")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # before torch is imported, so OpenMP/MKL size their pools from it
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

sys.path.insert(0, str(ROOT / "tests" / "reference"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_vla_jepa_fixtures as fx  # noqa: E402  (sets 2 threads on import; main() resets it)


def log(msg: str) -> None:
    print(f"[upstream_bench] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }


def has_weights(backbone: Path) -> bool:
    return any(backbone.glob("*.safetensors"))


def load_batch(obs: Path) -> tuple[dict, torch.Tensor]:
    inputs = json.loads((obs / "inputs.json").read_text())
    batch: dict = {key: fx.load_png(obs / name)[None] for key, name in inputs["images"].items()}
    if inputs.get("state") is not None:
        batch["observation.state"] = torch.tensor(inputs["state"], dtype=torch.float32)[None]
    batch["task"] = inputs["task"]
    noise = torch.from_numpy(np.load(obs / "noise.npy")).float()[None]
    return batch, noise


def fresh_batch(batch: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Captures:
    """Cheap per-chunk captures via wrappers on upstream methods (no change to the math)."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.values: dict = {}
        model = policy.model
        self._orig_build = model.qwen.build_inputs
        self._orig_pa = model.action_model.predict_action

        def build_inputs(*a, **k):
            out = self._orig_build(*a, **k)
            self.values["L"] = int(out["input_ids"].shape[-1])
            self.values["image_grid_thw"] = out["image_grid_thw"].tolist()
            return out

        def predict_action(cond, state=None):
            # cond = last decoder layer output (pre final norm) at the embodied rows, .float()
            self.values["embodied_hidden"] = cond[0].detach().clone()
            return self._orig_pa(cond, state)

        model.qwen.build_inputs = build_inputs
        model.action_model.predict_action = predict_action


def main() -> None:
    # Libraries print progress on stdout; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        result = bench(ARGS)
    print(json.dumps(result, indent=2))


def bench(args: argparse.Namespace) -> dict:
    loadavg_start = os.getloadavg()[0]  # other work on the machine skews every timing
    torch.set_num_threads(args.threads)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.vla_jepa.modeling_vla_jepa import VLAJEPAPolicy

    ckpt = args.checkpoint.resolve()
    backbone = (args.backbone or ckpt.parent / "backbone").resolve()
    for path, what in ((ckpt / "config.json", "checkpoint config"), (backbone / "config.json", "backbone config"),
                       (args.obs / "inputs.json", "observation"), (args.obs / "noise.npy", "noise")):
        if not path.is_file():
            sys.exit(f"upstream_bench: missing {what}: {path}")

    with contextlib.ExitStack() as stack:
        qwen_dir = backbone
        if not has_weights(backbone):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="upstream-qwen-")))
            qwen_dir = tmp / "qwen"
            log(f"{backbone} has no weights: making a random-weight copy in {qwen_dir}")
            fx.backbone_with_weights(backbone, qwen_dir)

        t0 = time.perf_counter()
        cfg = PreTrainedConfig.from_pretrained(ckpt)
        cfg.qwen_model_name = str(qwen_dir)
        cfg.device = "cpu"
        if args.mode == "fp32":
            cfg.torch_dtype = "float32"
        if getattr(cfg, "enable_world_model", False):
            sys.exit("upstream_bench: checkpoints with enable_world_model need the V-JEPA encoder dir; not supported")
        policy = VLAJEPAPolicy.from_pretrained(ckpt, config=cfg)
        policy.eval()
        pre, post = make_pre_post_processors(cfg, pretrained_path=str(ckpt))
        load_s = time.perf_counter() - t0
        qwen_dtype = next(policy.model.qwen.model.parameters()).dtype
        log(f"loaded in {load_s:.1f} s (qwen {qwen_dtype}, mode {args.mode}, {torch.get_num_threads()} threads)")

        batch, noise = load_batch(args.obs)
        caps = Captures(policy)
        autocast_flags: list[bool] = []
        last_layer = policy.model.qwen.model.model.language_model.layers[-1]
        last_layer.register_forward_hook(lambda m, a, o: autocast_flags.append(torch.is_autocast_enabled("cpu")))

        precision = fx.fp32_qwen if args.mode == "fp32" else contextlib.nullcontext
        pre_s, pred_s, post_s, chunk_s = [], [], [], []
        first_call_s = None
        for i in range(args.warmup + args.iters):
            policy.reset()
            b = fresh_batch(batch)
            t_a = time.perf_counter()
            processed = pre(b)
            t_b = time.perf_counter()
            with precision(), fx.injected_noise(noise) as calls:
                actions_norm = policy.predict_action_chunk(processed)
            t_c = time.perf_counter()
            actions = post(actions_norm)
            t_d = time.perf_counter()
            if len(calls) != 1:
                sys.exit(f"upstream_bench: the injected noise was used {len(calls)} times (expected once)")
            if first_call_s is None:
                first_call_s = t_d - t_a
            kind = "warmup" if i < args.warmup else "iter"
            log(f"{kind} {i - args.warmup if i >= args.warmup else i}: chunk {1e3 * (t_d - t_a):.0f} ms "
                f"(predict {1e3 * (t_c - t_b):.0f} ms)")
            if i >= args.warmup:
                pre_s.append(t_b - t_a)
                pred_s.append(t_c - t_b)
                post_s.append(t_d - t_c)
                chunk_s.append(t_d - t_a)

        want_autocast = args.mode == "autocast"
        if not autocast_flags or any(f != want_autocast for f in autocast_flags):
            sys.exit(f"upstream_bench: autocast inside the decoder was {set(autocast_flags)}, expected {want_autocast}")

        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            np.save(args.dump / "embodied_hidden.npy", caps.values["embodied_hidden"].float().numpy().astype(np.float32))
            np.save(args.dump / "actions_normalized.npy", actions_norm[0].float().numpy().astype(np.float32))
            np.save(args.dump / "actions.npy", actions[0].float().numpy().astype(np.float32))

        result = {
            "impl": "upstream",
            "mode": args.mode,
            "threads": args.threads,
            "iters": args.iters,
            "warmup": args.warmup,
            "latency_ms": percentiles(chunk_s) if chunk_s else None,
            "predict_ms": percentiles(pred_s) if pred_s else None,
            "preprocess_ms": percentiles(pre_s) if pre_s else None,
            "postprocess_ms": percentiles(post_s) if post_s else None,
            "first_call_s": first_call_s,
            "load_s": load_s,
            "peak_rss_mb": peak_rss_mb(),
            "loadavg_1m_start": loadavg_start,
            "L": caps.values.get("L"),
            "image_grid_thw": caps.values.get("image_grid_thw"),
            "qwen_dtype": str(qwen_dtype).removeprefix("torch."),
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "checkpoint": str(ckpt),
            "dump": str(args.dump) if args.dump else None,
        }
    return result


if __name__ == "__main__":
    main()
