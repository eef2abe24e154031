#!/usr/bin/env python3
"""vjx vs the original DexVLA repository (juruobenruo/DexVLA @ fc21a82) on this CPU, at the real sizes.

The checkpoint is random, with the shapes DexVLA ships: Qwen2-VL-2B (text 28 x 1536, 12 heads / 2 KV
heads, MLP 8960, the real 151936-token vocabulary and tokenizer, tied embeddings, M-RoPE [16,24,24],
theta 1e6; vision 32 x 1280, 16 heads, mlp_ratio 4, patch 14, merge 2), FiLM fusion with the reasoning,
and the ScaleDP_H head (32 x 1280, 16 heads), action_dim = state_dim = 14, chunk 50, 10 DDIM steps.
Weights are stored bf16 in the original repository's layout (train_output/checkpoint-100 +
dataset_stats.pkl/json). The observation is three 240x320 cameras, a 14-d state and a task.

Both sides generate a FIXED number of reasoning tokens (--max-new-tokens, default 16): the <|im_end|>
embedding row (tied with its lm_head row) is zeroed, so its logit is exactly 0 while the winning
logits are large; the report checks that it is never the argmax.

Everything is built and run through tests/reference/make_dexvla_fixtures.py (imported): its tokenizer,
base-dir, config, init, stats and layout builders at the real sizes, and its `run_upstream`, which runs
upstream's `smart_eval_agilex.eval_bc` with the DDIM noise injected.

One run does, with the same thread count everywhere, one process at a time:
  1. the checkpoint and observation (built once into <work>/model and <work>/obs; reused after);
  2. upstream FP32 (the fixtures' reference: bf16 casts redirected to float32) and upstream bf16
     (its published dtype: weights and the hard-coded casts in bf16, only cuda mapped to cpu): the first
     chunk, --warmup untimed and --iters timed chunks, stage times from forward hooks, peak RSS;
  3. per precision (fp32, int8, fp16): `vjx export`, `vjx bench --json` on the backends of that
     precision (--paths), `vjx run --dump` with upstream's noise; the export is removed afterwards;
  4. relative L2 of every vjx path and of upstream bf16 against upstream FP32, and the targets;
and prints one JSON report (also written to <work>/compare.json and --report). Progress goes to stderr.

  nice .venv-dexvla/bin/python bench/dexvla_compare.py --vjx target/release/vjx
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SCRIPT = ROOT / "tests/reference/make_dexvla_fixtures.py"
DEFAULT_ORT = ROOT / ".ort/onnxruntime-1.32.0/libonnxruntime.so.1.32.0"
TASK = "Fold the T-shirt on the table, then put it in the bin."
SEED = 21
VISION_2B = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4)
ALL_PATHS = ["tract-fp32", "ort-fp32", "ort-int8", "ort-fp16"]
DUMP_KEYS = ["vision_embeds", "prompt_hidden", "film_condition", "actions_normalized", "actions"]


def log(msg: str) -> None:
    print(f"[dexvla-compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fixtures_module():
    """The fixture generator: builders that take the sizes from a Case, and its upstream runner."""
    spec = importlib.util.spec_from_file_location("make_dexvla_fixtures", FIXTURE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def full_case(fx, max_new_tokens: int, size: str = "full"):
    if size == "tiny":  # pipeline check: the reasoning_stop fixture's tiny sizes, generating to the limit
        return fx.Case(name="tiny", description="pipeline check (bench/dexvla_compare.py --size tiny)",
                       layout="up", mode="dexvla", seed=SEED, task=TASK, state_dim=14, action_dim=14,
                       chunk_size=50, head="H", stop="limit", max_new_tokens=max_new_tokens)
    return fx.Case(
        name="full_size",
        description="DexVLA at the shipped sizes (bench/dexvla_compare.py)",
        layout="up", mode="dexvla", seed=SEED, task=TASK,
        state_dim=14, action_dim=14, chunk_size=50, head="H", stop="limit", max_new_tokens=max_new_tokens,
        text=fx.TextCfg(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960, mrope_section=(16, 24, 24)),
    )


def upstream_handles(fx, size: str):
    """fx.Upstream() with the real ScaleDP sizes back (the fixtures swap in tiny ones)."""
    up = fx.Upstream()
    if size == "full":
        up.cfg_scaledp.MODEL_STRUCTURE.update(copy.deepcopy(up.model_structure_orig))
    return up


@contextlib.contextmanager
def default_dtype(dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- 1. checkpoint + observation ------------------------------------------------------------------
def make(work: Path, max_new_tokens: int, size: str) -> dict:
    """The fixtures' builders at the real sizes. The model is constructed with bf16 parameters (its
    values are drawn in f32 by the fixtures' reinit and rounded to bf16, as the fixtures do), so that
    the bf16 copy save_up_layout makes fits in memory next to it."""
    import torch
    from PIL import Image

    fx = fixtures_module()
    up = upstream_handles(fx, size)
    case = full_case(fx, max_new_tokens, size)
    tmp = work / "model.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    log("tokenizer (real Qwen2 vocabulary)")
    tok = fx.build_qwen2vl_tokenizer()
    base = tmp / "qwen2_vl"
    vision = VISION_2B if size == "full" else fx.VISION
    fx.write_base_dir(up, base, case, tok, vision=vision)
    reinit = fx.reinit_parameters

    def reinit_f32(model, gen):
        with default_dtype(torch.float32):
            reinit(model, gen)

    fx.reinit_parameters = reinit_f32
    log("model: Qwen2-VL-2B + ScaleDP_H, random bf16 weights")
    with default_dtype(torch.bfloat16):
        model = fx.build_model(up, base, case)
    fx.reinit_parameters = reinit
    with torch.no_grad():
        model.model.embed_tokens.weight[fx.IM_END] = 0.0  # tied: the <|im_end|> logit is exactly 0
    assert model.lm_head.weight is model.model.embed_tokens.weight
    head = model.policy_head
    params = {
        "vision": n_params(model.visual),
        "text": n_params(model.model),  # the tied embedding counted once
        "policy_head": n_params(head),
        "fusion": n_params(model) - n_params(model.visual) - n_params(model.model) - n_params(head),
        "total": n_params(model),
    }
    sdp = head.config
    params["scaledp"] = {"depth": sdp.depth, "n_emb": sdp.n_emb, "num_heads": sdp.num_heads,
                         "mlp_ratio": sdp.mlp_ratio, "cond_dim": sdp.cond_dim}
    gen_np = np.random.default_rng(case.seed)
    gen_t = torch.Generator().manual_seed(case.seed + 100)
    stats = fx.make_stats(case, gen_np)
    state = (stats["qpos_mean"].astype(np.float64)
             + stats["qpos_std"].astype(np.float64) * gen_np.normal(0, 1, case.state_dim))
    noise = torch.randn(case.chunk_size, case.action_dim, generator=gen_t)
    log("saving train_output/ (bf16 checkpoint-100, dataset_stats.pkl/json)")
    ckpt = fx.save_up_layout(model, base, tmp, stats)
    del model
    shutil.rmtree(base)

    obs = tmp / "obs"
    obs.mkdir()
    gen_img = np.random.default_rng(fx.SHARED_OBS_SEED)  # the fixtures' shared camera images
    for key, _ in fx.CAMERAS:
        Image.fromarray(fx.vj.make_image(fx.IMG_H, fx.IMG_W, gen_img)).save(obs / f"{key}.png")
    (obs / "inputs.json").write_text(json.dumps({
        "task": case.task, "state": [float(x) for x in state],
        "cameras": [f"{key}.png" for key, _ in fx.CAMERAS], "camera_keys": [key for key, _ in fx.CAMERAS],
    }, indent=2) + "\n")
    np.save(obs / "noise.npy", noise.numpy().astype(np.float32))
    info = {
        "size": size, "max_new_tokens": max_new_tokens, "seed": case.seed, "params": params,
        "checkpoint": str(ckpt.relative_to(tmp)),
        "checkpoint_bytes": sum(f.stat().st_size for f in ckpt.glob("*.safetensors")),
        "text": {"hidden": case.text.hidden, "layers": case.text.layers, "heads": case.text.heads,
                 "kv_heads": case.text.kv_heads, "intermediate": case.text.intermediate,
                 "mrope_section": list(case.text.mrope_section), "rope_theta": 1e6, "vocab_size": fx.VOCAB_SIZE},
        "vision": {**vision, "patch_size": 14, "spatial_merge_size": 2},
        "im_end_row": "zeroed (tied embedding / lm_head row): logit exactly 0",
        "make_s": time.perf_counter() - t0,
    }
    (tmp / "made.json").write_text(json.dumps(info, indent=1) + "\n")
    for name in ("train_output", "obs", "made.json"):
        dst = work / name
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        (tmp / name).rename(dst)
    tmp.rmdir()
    return info


# ---- 2. upstream -----------------------------------------------------------------------------------
class StageClock:
    """Wall-clock intervals of upstream's stages, from forward hooks on its modules:
    `lm_forward` (the model call generate makes per token; its input length tells prefill from decode),
    `vision` (model.visual), `condition` (film_forward's projections + FiLM), `diffusion_step`
    (ScaleDP.model_forward: combine .. final_layer), `policy_head` (the whole DDIM loop)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, float, int]] = []
        self._open: dict[str, tuple[float, int]] = {}

    def _start(self, name: str, n: int = 0) -> None:
        self._open[name] = (time.perf_counter(), n)

    def _end(self, name: str) -> None:
        t0, n = self._open.pop(name)
        self.events.append((name, t0, time.perf_counter(), n))

    def install(self, model) -> None:
        def seq_len(kwargs) -> int:
            ids = kwargs.get("input_ids")
            return int(ids.shape[1]) if ids is not None else int(kwargs["inputs_embeds"].shape[1])

        model.register_forward_pre_hook(lambda m, a, k: self._start("lm_forward", seq_len(k)), with_kwargs=True)
        model.register_forward_hook(lambda m, a, k, o: self._end("lm_forward"), with_kwargs=True)
        model.visual.register_forward_pre_hook(lambda m, a: self._start("vision"))
        model.visual.register_forward_hook(lambda m, a, o: self._end("vision"))
        model.input_action_proj.register_forward_pre_hook(lambda m, a: self._start("condition"))
        model.reasoning_film.register_forward_hook(lambda m, a, o: self._end("condition"))
        head = model.policy_head
        head.combine.register_forward_pre_hook(lambda m, a: self._start("diffusion_step"))
        head.final_layer.register_forward_hook(lambda m, a, o: self._end("diffusion_step"))
        head.register_forward_pre_hook(lambda m, a: self._start("policy_head"))
        head.register_forward_hook(lambda m, a, o: self._end("policy_head"))

    def chunk(self, t0: float, t1: float) -> dict:
        ev = [e for e in self.events if t0 <= e[1] and e[2] <= t1]
        dur = lambda name: [(b - a) * 1e3 for n, a, b, _ in ev if n == name]  # noqa: E731
        prefill = [(b - a) * 1e3 for n, a, b, s in ev if n == "lm_forward" and s > 1]
        decode = [(b - a) * 1e3 for n, a, b, s in ev if n == "lm_forward" and s == 1]
        vision = dur("vision")
        assert len(prefill) == 1 and len(vision) == 1, (len(prefill), len(vision))
        return {"vision_ms": vision[0], "prefill_ms": prefill[0] - vision[0], "decode_token_ms": decode,
                "condition_ms": sum(dur("condition")), "diffusion_step_ms": dur("diffusion_step"),
                "policy_head_ms": sum(dur("policy_head"))}


def cpu_bf16_load_model_for_eval(model_path, model_base, load_8bit=False, load_4bit=False, device_map="cuda",
                                 policy_config=None):
    """Upstream's load_model_for_eval (non-LoRA branch) with its torch_dtype=bfloat16, on the CPU."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    assert model_base is None
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
    model = AutoModelForCausalLM.from_pretrained(model_path, config=config, use_safetensors=True,
                                                 torch_dtype=torch.bfloat16)
    processor = AutoProcessor.from_pretrained(model_path, use_fast=False)
    return tokenizer, model, processor, getattr(model.config, "max_sequence_length", 2048)


def upstream(work: Path, mode: str, threads: int, warmup: int, iters: int, max_new_tokens: int, out: Path,
             size: str) -> None:
    """One upstream configuration in this process: the fixtures' run_upstream (first chunk, captures),
    then eval_bc again on the loaded policy for warmup + iters chunks."""
    import torch

    fx = fixtures_module()
    torch.set_num_threads(threads)
    up = upstream_handles(fx, size)
    case = full_case(fx, max_new_tokens, size)
    made = json.loads((work / "made.json").read_text())
    ckpt = work / made["checkpoint"]
    obs_dir = work / "obs"
    inputs = json.loads((obs_dir / "inputs.json").read_text())
    from PIL import Image

    images = [np.asarray(Image.open(obs_dir / name).convert("RGB")).copy() for name in inputs["cameras"]]
    state = np.asarray(inputs["state"], dtype=np.float64)
    noise = torch.from_numpy(np.load(obs_dir / "noise.npy"))
    clock = StageClock()
    timing = {"load_s": None}
    base_loader = fx.cpu_fp32_load_model_for_eval if mode == "fp32" else cpu_bf16_load_model_for_eval

    def loader(*a, **k):
        t0 = time.perf_counter()
        got = base_loader(*a, **k)
        timing["load_s"] = time.perf_counter() - t0
        clock.install(got[1])
        return got

    if mode == "bf16":
        fp32_patches = fx.Fp32CpuPatches

        class CpuPatches(fp32_patches):
            """Only cuda -> cpu: upstream's bf16 casts stay bf16."""

            @staticmethod
            def _rewrite(args, kwargs):
                kinds = set()
                args = list(args)
                for i, a in enumerate(args):
                    if isinstance(a, (str, torch.device)) and str(a).startswith("cuda"):
                        args[i], _ = "cpu", kinds.add("cuda")
                if "device" in kwargs and str(kwargs["device"]).startswith("cuda"):
                    kwargs["device"] = "cpu"
                    kinds.add("cuda")
                return args, kwargs, kinds

        fx.Fp32CpuPatches = CpuPatches

    class TimedEnv(fx.RecordingEnv):
        """RecordingEnv that notes when each chunk's observation is taken and its first action comes."""
        chunk_starts: list[float] = []
        chunk_ends: list[float] = []

        def get_obs(self):
            if self.calls < self.n_steps and self.calls % case.chunk_size == 0:
                TimedEnv.chunk_starts.append(time.perf_counter())
            return super().get_obs()

        def step(self, action):
            if len(self.actions) % case.chunk_size == 0:
                TimedEnv.chunk_ends.append(time.perf_counter())
            super().step(action)

    fx.cpu_fp32_load_model_for_eval = loader
    fx.RecordingEnv = TimedEnv
    log(f"upstream {mode}: load + first chunk (run_upstream)")
    cap = fx.run_upstream(up, ckpt, case, images, state, noise, {"max_new_tokens": max_new_tokens})
    policy, model = cap["policy"], cap["model"]
    P = int(cap["processor_out"]["input_ids"].shape[1])
    seq = cap["generate_out"].sequences[0]
    generated = seq[P:].numpy().astype(np.int64)
    hs = cap["generate_out"].hidden_states
    f32 = lambda t: t.detach().float().numpy()  # noqa: E731
    dumps = {
        "vision_embeds": f32(cap["vision_embeds"]),
        "prompt_hidden": f32(hs[0][-1][0]),
        "film_condition": f32(cap["film"][3].reshape(-1)),
        "actions_normalized": f32(cap["evaluate_out"][0][0]),
        "actions": cap["actions"].astype(np.float32),
        "generated_ids": generated,
    }
    # <|im_end|> never wins: its logit (0) against the winner at every generation step
    logits = [lg.float() for lg in cap["lm_head"]]
    margins = [float(lg.max() - lg[fx.IM_END]) for lg in logits]
    im_end_rank = [int((lg > lg[fx.IM_END]).sum()) for lg in logits]
    generation = {
        "prompt_tokens": P, "n_generated": int(generated.shape[0]), "generated_ids": generated.tolist(),
        "im_end_generated": bool(fx.IM_END in generated.tolist()),
        "endoftext_generated": bool(fx.ENDOFTEXT in generated.tolist()),
        "im_end_logit": [float(lg[fx.IM_END]) for lg in logits],
        "min_margin_winner_minus_im_end": min(margins), "min_im_end_rank": min(im_end_rank),
        "reasoning": cap["evaluate_out"][1],
    }
    assert generation["n_generated"] == max_new_tokens and not generation["im_end_generated"], generation
    non_degenerate = {
        "hidden_std_per_layer_prefill": [float(h[0].float().std()) for h in hs[0]],
        "vision_embeds_std": float(dumps["vision_embeds"].std()),
        "film_condition_std": float(dumps["film_condition"].std()),
        "epsilon_std_per_step": [float(e.float().std()) for e in cap["eps"]],
        "actions_normalized_std": float(dumps["actions_normalized"].std()),
        "actions_normalized_at_clip": float(np.mean(np.abs(dumps["actions_normalized"]) >= 1.0 - 1e-6)),
        "nan": bool(any(np.isnan(v).any() for k, v in dumps.items() if v.dtype.kind == "f")),
    }
    for name, arr in dumps.items():
        np.save(out.with_suffix(f".{name}.npy"), arr)
    first_actions = cap["actions"]
    del cap, hs, logits

    # warm-up + timed chunks on the loaded policy, as run_upstream runs eval_bc
    n = warmup + iters
    log(f"upstream {mode}: {n} more chunks ({warmup} warm-up, {iters} timed)")
    orig_generate = model.generate

    def generate(*a, **k):  # upstream's evaluate hard-codes max_new_tokens=256
        k["max_new_tokens"] = max_new_tokens
        return orig_generate(*a, **k)

    model.generate = generate
    policy_config = {"model_path": str(ckpt), "model_base": None, "enable_lora": False,
                     "action_head": "scale_dp_policy", "tinyvla": False}
    env = TimedEnv(images, state, case.chunk_size * n)
    with fx.Fp32CpuPatches(up.src), fx.injected_noise(noise[None], os.path.realpath(up.mod_scaledp.__file__)) as calls, \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            up.ev.eval_bc(policy, env, policy_config, raw_lang=case.task, query_frequency=case.chunk_size)
        except fx.StopEval:
            pass
    del model.generate
    assert len(calls) == n and len(env.actions) == case.chunk_size * n, (len(calls), len(env.actions))
    acts = np.asarray(env.actions, dtype=np.float64).reshape(n, case.chunk_size, -1)
    starts, ends = TimedEnv.chunk_starts, TimedEnv.chunk_ends
    assert len(starts) == len(ends) == n + 1, (len(starts), len(ends))
    chunks = []
    for k in range(n + 1):
        st = clock.chunk(starts[k], ends[k])
        if len(st["decode_token_ms"]) != max_new_tokens - 1:
            sys.exit(f"upstream {mode}: chunk {k} decoded {len(st['decode_token_ms'])} tokens after the prefill, "
                     f"not {max_new_tokens - 1}")
        chunks.append({"chunk_ms": (ends[k] - starts[k]) * 1e3, **st})
        log(f"upstream {mode}: chunk {k} {chunks[-1]['chunk_ms'] / 1e3:.1f} s")
    result = {
        "mode": mode, "threads": threads, "torch_threads": torch.get_num_threads(), "load_s": timing["load_s"],
        "chunks": chunks, "generation": generation, "non_degenerate": non_degenerate,
        "repeat_actions_max_abs_diff_vs_first": float(np.abs(acts - first_actions[None]).max()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__, "loadavg_1m_start": None,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")


# ---- 3. vjx + report ------------------------------------------------------------------------------
def run_measured(cmd: list[str], stdout_path: Path, env: dict | None = None) -> dict:
    """Runs `cmd` with stdout to a file and stderr to <file>.stderr: wall seconds, the child's own
    peak RSS, exit code, and the stderr tail when it failed."""
    load = os.getloadavg()[0]
    cpu0 = cpu_times()
    t0 = time.perf_counter()
    err_path = stdout_path.with_name(stdout_path.name + ".stderr")
    with open(stdout_path, "wb") as f, open(err_path, "wb") as e:
        child = subprocess.Popen(cmd, stdout=f, stderr=e, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    res = {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024.0, "rc": rc, "loadavg_1m_start": load,
           "cpu_s": usage.ru_utime + usage.ru_stime}
    cpu1 = cpu_times()
    if cpu0 and cpu1:
        # CPU time the rest of the machine used while this piece ran (other processes, steal)
        other = (cpu1["busy"] - cpu0["busy"]) - res["cpu_s"]
        res["contention"] = {"other_cpu_s": other, "other_cpu_share": other / (seconds * (os.cpu_count() or 1)),
                             "steal_s": cpu1["steal"] - cpu0["steal"]}
    if rc != 0:
        res["stderr_tail"] = err_path.read_text(errors="replace")[-3000:]
        if rc < 0:
            res["signal"] = f"killed by signal {-rc}" + (" (SIGKILL: the kernel's OOM killer, if dmesg says so)"
                                                         if rc == -9 else "")
        log(f"FAILED (exit {rc}): {shlex.join(cmd)}\n{res['stderr_tail'][-1500:]}")
    return res


def cpu_times() -> dict | None:
    """Machine-wide busy and steal seconds from /proc/stat."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal
        return {"busy": (f[0] + f[1] + f[2] + f[5] + f[6]) / hz, "steal": f[7] / hz}
    return None


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def ids_agreement(got: np.ndarray, want: np.ndarray) -> dict:
    """Whether the generated ids equal upstream FP32's, and how many leading ones do."""
    got, want = [int(x) for x in np.asarray(got).reshape(-1)], [int(x) for x in np.asarray(want).reshape(-1)]
    prefix = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return {"equal": got == want, "equal_prefix": prefix, "n": len(got), "ids": got}


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def upstream_summary(run: dict, warmup: int) -> dict:
    timed = run["chunks"][1 + warmup:]
    lat = [c["chunk_ms"] for c in timed]
    stages = {
        "vision": {"p50": pct([c["vision_ms"] for c in timed], 50)},
        "prefill": {"p50": pct([c["prefill_ms"] for c in timed], 50)},
        "decode_token": {"p50": pct([x for c in timed for x in c["decode_token_ms"]], 50),
                         "runs_per_chunk": len(timed[0]["decode_token_ms"])},
        "condition": {"p50": pct([c["condition_ms"] for c in timed], 50)},
        "diffusion_step": {"p50": pct([x for c in timed for x in c["diffusion_step_ms"]], 50),
                           "runs_per_chunk": len(timed[0]["diffusion_step_ms"])},
        "diffusion_total": {"p50": pct([c["policy_head_ms"] for c in timed], 50)},
    }
    return {"latency_ms": {"p50": pct(lat, 50), "min": min(lat), "max": max(lat), "n": len(lat)},
            "first_chunk_ms": run["chunks"][0]["chunk_ms"], "chunks_ms": [c["chunk_ms"] for c in run["chunks"]],
            "stages_ms": stages, "load_s": run["load_s"], "peak_rss_mb": run["peak_rss_mb"],
            "generated_ids": run["generation"]["generated_ids"],
            "repeat_actions_max_abs_diff_vs_first": run["repeat_actions_max_abs_diff_vs_first"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vjx", default=str(ROOT / "target/release/vjx"), help="vjx binary")
    ap.add_argument("--work", help="checkpoint, exports, results (default bench/work/dexvla, or dexvla_tiny)")
    ap.add_argument("--report", help="also write the report here (e.g. bench/results/dexvla-full-<date>.json)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2, help="timed chunks after the first and the warm-up")
    ap.add_argument("--warmup", type=int, default=1, help="untimed chunks after the first")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="reasoning tokens, on both sides")
    ap.add_argument("--paths", default=",".join(ALL_PATHS), help="vjx backend-precision paths")
    ap.add_argument("--upstream-modes", default="fp32,bf16", help="upstream configurations to time")
    ap.add_argument("--keep-exports", action="store_true", help="keep the exports (fp32 is ~13 GB)")
    ap.add_argument("--rebuild", action="store_true", help="make the checkpoint again even if present")
    ap.add_argument("--size", choices=["full", "tiny"], default="full",
                    help="tiny: the fixtures' tiny sizes, a pipeline check whose numbers mean nothing")
    ap.add_argument("--part", choices=["make", "upstream"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work or ROOT / ("bench/work/dexvla" if args.size == "full" else "bench/work/dexvla_tiny")).resolve()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.part == "make":
        make(work, args.max_new_tokens, args.size)
        return
    if args.part == "upstream":
        upstream(work, args.mode, args.threads, args.warmup, args.iters, args.max_new_tokens, Path(args.out), args.size)
        return

    started = time.perf_counter()
    command = ("nice " if os.nice(0) > 0 else "") + shlex.join(
        [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable,
         os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    paths = [p for p in args.paths.split(",") if p]
    for p in paths:
        if p not in ALL_PATHS:
            sys.exit(f"dexvla_compare: unknown path {p!r}; known: {ALL_PATHS}")
    vjx = args.vjx
    if not Path(vjx).is_file():
        sys.exit(f"dexvla_compare: no vjx binary at {vjx} (cargo build --release, or --vjx PATH)")
    ort = os.environ.get("ORT_DYLIB_PATH") or str(DEFAULT_ORT)
    if any(p.startswith("ort") for p in paths) and not Path(ort).is_file():
        sys.exit(f"dexvla_compare: no ONNX Runtime library at {ort} (scripts/install_onnxruntime.sh; ORT_DYLIB_PATH)")
    vjx_env = {**os.environ, "ORT_DYLIB_PATH": ort}
    if "--max-new-tokens" not in subprocess.run([vjx, "export", "--help"], capture_output=True, text=True).stdout:
        sys.exit(f"dexvla_compare: {vjx} export has no --max-new-tokens (a build without DexVLA?)")

    made_path = work / "made.json"
    made = json.loads(made_path.read_text()) if made_path.is_file() else None
    if args.rebuild or made is None or made.get("max_new_tokens") != args.max_new_tokens or made.get("size") != args.size:
        log(f"making the full-size checkpoint into {work} (~7 GB on disk, ~14 GB RAM at peak)")
        work.mkdir(parents=True, exist_ok=True)
        proc = run_measured([sys.executable, __file__, "--part", "make", "--work", str(work), "--size", args.size,
                             "--max-new-tokens", str(args.max_new_tokens)], work / "make.log")
        if proc["rc"] != 0:
            sys.exit("dexvla_compare: making the checkpoint failed")
        made = json.loads(made_path.read_text())
        made["make_process"] = {"seconds": proc["seconds"], "peak_rss_mb": proc["peak_rss_mb"]}
        made_path.write_text(json.dumps(made, indent=1) + "\n")
    ckpt, obs = work / made["checkpoint"], work / "obs"
    inputs = json.loads((obs / "inputs.json").read_text())
    res = work / "results"
    shutil.rmtree(res, ignore_errors=True)
    res.mkdir()

    upstream_runs, upstream_proc = {}, {}
    for mode in [m for m in args.upstream_modes.split(",") if m]:
        log(f"upstream {mode}")
        out = res / f"upstream-{mode}.json"
        proc = run_measured([sys.executable, __file__, "--part", "upstream", "--work", str(work), "--mode", mode,
                             "--size", args.size,
                             "--threads", str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters),
                             "--max-new-tokens", str(args.max_new_tokens), "--out", str(out)], res / f"upstream-{mode}.log")
        upstream_proc[mode] = proc
        if proc["rc"] == 0:
            upstream_runs[mode] = json.loads(out.read_text())
            upstream_runs[mode]["loadavg_1m_start"] = proc["loadavg_1m_start"]

    obs_args = []
    for key, name in zip(inputs["camera_keys"], inputs["cameras"]):
        obs_args += ["--image", f"observation.images.{key}={obs / name}"]
    obs_args += [f"--state={','.join(repr(float(v)) for v in inputs['state'])}", "--task", inputs["task"]]

    exports, benches, runs = {}, {}, {}
    for precision in ["fp32", "int8", "fp16"]:
        backends = [p.split("-")[0] for p in paths if p.endswith(precision)]
        if not backends:
            continue
        export = work / f"export-{precision}"
        shutil.rmtree(export, ignore_errors=True)
        log(f"vjx export {precision}")
        proc = run_measured([vjx, "export", "--checkpoint", str(ckpt), "--out", str(export), "--max-new-tokens",
                             str(args.max_new_tokens), "--precision", precision, "--json"],
                            res / f"export-{precision}.json", env=vjx_env)
        if proc["rc"] == 0:
            with contextlib.suppress(ValueError):
                proc["report"] = json.loads((res / f"export-{precision}.json").read_text())
            proc["bytes_on_disk"] = dir_bytes(export)
        exports[precision] = proc
        if proc["rc"] != 0:
            for b in backends:
                benches[f"{b}-{precision}"] = {"error": f"export failed (exit {proc['rc']})"}
            shutil.rmtree(export, ignore_errors=True)
            continue
        for backend in backends:
            name = f"{backend}-{precision}"
            log(f"vjx bench {name}")
            out = res / f"bench-{name}.json"
            b = run_measured([vjx, "bench", str(export), "--backend", backend, "--threads", str(args.threads),
                              "--iters", str(args.iters), "--warmup", str(args.warmup), "--json", *obs_args],
                             out, env=vjx_env)
            if b["rc"] == 0:
                b["report"] = json.loads(out.read_text())
            benches[name] = b
            log(f"vjx run {name} (accuracy, upstream's noise)")
            dump = res / f"dump-{name}"
            out = res / f"run-{name}.json"
            r = run_measured([vjx, "run", str(export), "--backend", backend, "--threads", str(args.threads),
                              "--noise", str(obs / "noise.npy"), "--dump", str(dump), "--json", *obs_args],
                             out, env=vjx_env)
            if r["rc"] == 0:
                r["report"] = json.loads(out.read_text())
            runs[name] = r
        if not args.keep_exports:
            shutil.rmtree(export, ignore_errors=True)

    # ---- report ----
    report = {
        "what": ("DexVLA (Qwen2-VL-2B + ScaleDP_H, FiLM on the reasoning) at the real sizes, random bf16 weights, "
                 "original-repository layout; CPU; chunk = one observation -> 50 actions with a fixed "
                 f"{args.max_new_tokens}-token reasoning"),
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gb": ram_gb(), "python": platform.python_version()},
        "threads": args.threads, "iters": args.iters, "warmup": args.warmup, "max_new_tokens": args.max_new_tokens,
        "upstream_source": "juruobenruo/DexVLA @ fc21a82 (evaluate/smart_eval_agilex.py eval_bc), via "
                           "tests/reference/make_dexvla_fixtures.py run_upstream",
        "vjx_binary": {"path": vjx, "sha256": sha256(vjx)[:16], "ort_dylib": ort},
        "model": made,
        "upstream": {}, "vjx": {}, "exports": {}, "accuracy_rel_l2_vs_upstream_fp32": {}, "generated_ids_equal_upstream_fp32": {},
        "ratios": {}, "targets": [], "failures": [],
    }
    for mode, proc in upstream_proc.items():
        if mode not in upstream_runs:
            report["failures"].append({"piece": f"upstream-{mode}", "rc": proc["rc"], "stderr_tail": proc.get("stderr_tail")})
            continue
        run = upstream_runs[mode]
        report["upstream"][mode] = {**upstream_summary(run, args.warmup), "process_peak_rss_mb": proc["peak_rss_mb"],
                                    "process_seconds": proc["seconds"], "loadavg_1m_start": proc["loadavg_1m_start"],
                                    "contention": proc.get("contention"),
                                    "generation_check": {k: run["generation"][k] for k in (
                                        "prompt_tokens", "n_generated", "im_end_generated", "endoftext_generated",
                                        "min_margin_winner_minus_im_end", "min_im_end_rank")},
                                    "non_degenerate": run["non_degenerate"]}
    ref = None
    if "fp32" in upstream_runs:
        ref = {k: np.load(res / f"upstream-fp32.{k}.npy") for k in DUMP_KEYS + ["generated_ids"]}
    if ref is not None and "bf16" in upstream_runs:
        acc = {k: rel_l2(np.load(res / f"upstream-bf16.{k}.npy"), ref[k]) for k in DUMP_KEYS}
        report["accuracy_rel_l2_vs_upstream_fp32"]["upstream-bf16"] = acc
        report["generated_ids_equal_upstream_fp32"]["upstream-bf16"] = ids_agreement(
            np.load(res / "upstream-bf16.generated_ids.npy"), ref["generated_ids"])
    for precision, proc in exports.items():
        e = {k: proc[k] for k in ("seconds", "peak_rss_mb", "rc", "bytes_on_disk") if k in proc}
        if "report" in proc:
            e["report"] = proc["report"]
        if proc["rc"] != 0:
            e["stderr_tail"] = proc.get("stderr_tail")
            report["failures"].append({"piece": f"export-{precision}", "rc": proc["rc"], "stderr_tail": proc.get("stderr_tail")})
        report["exports"][precision] = e
    up32 = report["upstream"].get("fp32", {}).get("latency_ms", {}).get("p50")
    up_fast_mode = min(report["upstream"], key=lambda m: report["upstream"][m]["latency_ms"]["p50"], default=None)
    up_fast = report["upstream"][up_fast_mode]["latency_ms"]["p50"] if up_fast_mode else None
    for name, b in benches.items():
        if "report" not in b:
            entry = {"error": b.get("error") or f"vjx bench failed (exit {b.get('rc')})", "stderr_tail": b.get("stderr_tail"),
                     "signal": b.get("signal"), "process_peak_rss_mb": b.get("peak_rss_mb"), "process_seconds": b.get("seconds")}
            report["failures"].append({"piece": f"bench-{name}", **entry})
            report["vjx"][name] = entry
            continue
        r = b["report"]
        entry = {"latency_ms": r["latency_ms"], "first_call_ms": r["first_call_ms"], "load_ms": r["load_ms"],
                 "stages_ms": r["stages_ms"], "stage_order": r.get("stage_order"), "peak_rss_mb": r.get("peak_rss_mb"),
                 "process_peak_rss_mb": b["peak_rss_mb"], "process_seconds": b["seconds"],
                 "loadavg_1m_start": b["loadavg_1m_start"], "contention": b.get("contention"),
                 "precision": r.get("precision"), "threads": r.get("threads"),
                 "first_start_ms": r.get("first_start_ms"), "warm_start_ms": r.get("warm_start_ms")}
        weights = exports.get(name.split("-")[1], {}).get("report", {}).get("weight_bytes")
        if weights and r.get("peak_rss_mb"):
            entry["peak_rss_over_weight_bytes"] = r["peak_rss_mb"] * 2**20 / weights
        if up32:
            entry["ratio_to_upstream_fp32"] = r["latency_ms"]["p50"] / up32
        if up_fast:
            entry["ratio_to_upstream_fastest"] = r["latency_ms"]["p50"] / up_fast
        report["vjx"][name] = entry
    for name, rr in runs.items():
        if "report" not in rr:
            report["failures"].append({"piece": f"run-{name}", "rc": rr["rc"], "signal": rr.get("signal"),
                                       "process_peak_rss_mb": rr["peak_rss_mb"], "stderr_tail": rr.get("stderr_tail")})
            continue
        report["vjx"].setdefault(name, {})["run"] = {"seconds": rr["seconds"], "peak_rss_mb": rr["peak_rss_mb"],
                                                     "timings_ms": rr["report"].get("timings_ms")}
        dump = res / f"dump-{name}"
        nan = {k: bool(np.isnan(np.load(dump / f"{k}.npy")).any()) for k in DUMP_KEYS if (dump / f"{k}.npy").is_file()}
        report["vjx"][name]["run"]["nan_in_dump"] = nan
        if ref is None:
            continue
        report["accuracy_rel_l2_vs_upstream_fp32"][name] = {
            k: rel_l2(np.load(dump / f"{k}.npy"), ref[k]) for k in DUMP_KEYS if (dump / f"{k}.npy").is_file()}
        ids = dump / "generated_ids.npy"
        report["generated_ids_equal_upstream_fp32"][name] = (
            ids_agreement(np.load(ids), ref["generated_ids"]) if ids.is_file() else None)

    ok = {n: e for n, e in report["vjx"].items() if "latency_ms" in e}
    report["ratios"] = {
        "upstream_fastest": up_fast_mode,
        "upstream_bf16_over_fp32": (report["upstream"]["bf16"]["latency_ms"]["p50"] / up32
                                    if up32 and "bf16" in report["upstream"] else None),
        **{f"{n}_over_upstream_fp32": e.get("ratio_to_upstream_fp32") for n, e in ok.items()},
        **{f"{n}_over_upstream_fastest": e.get("ratio_to_upstream_fastest") for n, e in ok.items()},
    }
    for name in ("tract-fp32", "ort-fp32"):
        if name in ok and up32:
            v = ok[name]["latency_ms"]["p50"] / up32
            report["targets"].append({"name": "fp32_p50_vs_upstream_fp32", "run": name, "value": v, "limit": 1.0,
                                      "met": v <= 1.0, "description": "vjx FP32 p50 <= upstream FP32 p50 (ratio)"})
    if ok and up_fast:
        fast = min(ok, key=lambda n: ok[n]["latency_ms"]["p50"])
        v = ok[fast]["latency_ms"]["p50"] / up_fast
        report["targets"].append({"name": "fast_path_p50_vs_upstream_fastest", "run": fast, "upstream": up_fast_mode,
                                  "value": v, "limit": 0.5, "met": v <= 0.5,
                                  "description": "fastest vjx path p50 <= 0.5 x upstream's fastest CPU p50 (ratio)"})
    pieces = {**{f"upstream-{m}": p for m, p in upstream_proc.items()}, **{f"export-{k}": p for k, p in exports.items()},
              **{f"bench-{k}": p for k, p in benches.items()}, **{f"run-{k}": p for k, p in runs.items()}}
    report["contention"] = {
        "what": "CPU the rest of the machine used while each piece ran (/proc/stat busy time minus the piece's own), "
                "as a share of all cores; timings of a piece with a share well above 0 are inflated",
        "other_cpu_share": {k: round(p["contention"]["other_cpu_share"], 4) for k, p in pieces.items() if p.get("contention")},
        "steal_s": {k: round(p["contention"]["steal_s"], 2) for k, p in pieces.items() if p.get("contention")},
    }
    report["loadavg_1m_end"] = os.getloadavg()[0]
    report["seconds_total"] = time.perf_counter() - started
    text = json.dumps(report, indent=1)
    (work / "compare.json").write_text(text + "\n")
    if args.report:
        Path(args.report).write_text(text + "\n")
    print(text)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def ram_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    main()
