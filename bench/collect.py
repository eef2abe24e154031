#!/usr/bin/env python3
"""Merge the JSON pieces of one bench/compare.sh run into a single report with ratios, accuracy and
the speed/memory targets of the real-size issue.

Inputs (each optional; what is missing shows up as null and its targets as met: null):
  --upstream MODE=FILE     bench/upstream_bench.py output, MODE fp32 | autocast
  --floors FILE            bench/floors.py output
  --export PREC=FILE       `vjx export --json` report, PREC fp32 | int8
  --export-proc PREC=FILE  wall seconds / peak RSS of that export measured from outside (used when
                           the report lacks `seconds` / `peak_rss_mb`)
  --bench NAME=FILE        `vjx bench --json` output, NAME <backend>-<precision> (tract-fp32, ort-int8)
  --reference-dump DIR     upstream fp32 dump (embodied_hidden.npy, actions.npy, ...)
  --dump NAME=DIR          a dump compared with the reference (vjx `run --dump`, or upstream autocast)
  --meta KEY=VALUE         copied into "meta"
Prints the report on stdout and writes it to --out.

Targets: exact (fp32) path p50 <= upstream fp32 p50 and <= 1.2x the fp32 floor; int8 p50 <= 0.5x
upstream autocast p50; export <= 60 s and peak RSS <= 1.5x weight bytes; run peak RSS <= 1.2x
weight bytes. Accuracy is the relative L2 ||a - b|| / ||b|| against upstream fp32.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

MB = 1024 * 1024
DUMP_TENSORS = ("embodied_hidden", "actions_normalized", "actions")


def warn(msg: str) -> None:
    print(f"[collect] warning: {msg}", file=sys.stderr, flush=True)


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            sys.exit(f"collect.py: {flag} expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def load_json(path: str | None, what: str) -> dict | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        warn(f"{what}: {p} is missing or empty")
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        warn(f"{what}: {p} is not JSON ({e})")
        return None


def p50_ms(report: dict | None) -> float | None:
    if not report or not isinstance(report.get("latency_ms"), dict):
        return None
    return report["latency_ms"].get("p50")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b in (None, 0):
        return None
    return a / b


def export_weight_bytes(report: dict | None) -> int | None:
    if not report:
        return None
    if report.get("weight_bytes") is not None:
        return int(report["weight_bytes"])
    graphs = report.get("graphs") or []
    if graphs and all("weight_bytes" in g for g in graphs):
        return int(sum(g["weight_bytes"] for g in graphs))
    return None


def export_summary(report: dict | None, proc: dict | None) -> dict | None:
    if report is None and proc is None:
        return None
    report, proc = report or {}, proc or {}
    seconds = report.get("seconds", proc.get("seconds"))
    rss = report.get("peak_rss_mb", proc.get("peak_rss_mb"))
    weight_bytes = export_weight_bytes(report)
    return {
        "seconds": seconds,
        "seconds_source": "report" if "seconds" in report else ("outside" if "seconds" in proc else None),
        "peak_rss_mb": rss,
        "peak_rss_source": "report" if "peak_rss_mb" in report else ("outside" if "peak_rss_mb" in proc else None),
        "weight_bytes": weight_bytes,
        "peak_rss_over_weights": ratio(rss * MB, weight_bytes) if rss is not None else None,
        "precision": report.get("precision"),
        "graphs": [{k: g.get(k) for k in ("role", "file", "weight_bytes")} for g in report.get("graphs", [])],
    }


def bench_summary(report: dict | None, weight_bytes: int | None) -> dict | None:
    if report is None:
        return None
    rss = report.get("peak_rss_mb")
    return {
        "backend": report.get("backend"),
        "precision": report.get("precision"),
        "threads": report.get("threads"),
        "iters": report.get("iters"),
        "latency_ms": report.get("latency_ms"),
        "stages_p50_ms": {k: v.get("p50") for k, v in (report.get("stages_ms") or {}).items()},
        "load_ms": report.get("load_ms"),
        "first_call_ms": report.get("first_call_ms"),
        "peak_rss_mb": rss,
        "weight_bytes": weight_bytes,
        "peak_rss_over_weights": ratio(rss * MB, weight_bytes) if rss is not None else None,
    }


def upstream_summary(report: dict | None) -> dict | None:
    if report is None:
        return None
    keys = ("mode", "threads", "iters", "warmup", "latency_ms", "predict_ms", "load_s", "first_call_s",
            "peak_rss_mb", "L", "qwen_dtype", "loadavg_1m_start")
    return {k: report.get(k) for k in keys}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    while a.ndim > b.ndim and a.shape[0] == 1:
        a = a[0]
    while b.ndim > a.ndim and b.shape[0] == 1:
        b = b[0]
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs reference {b.shape}")
    denom = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else float(np.linalg.norm(a - b))


def accuracy(reference: str | None, dumps: dict[str, str]) -> dict:
    if not reference:
        return {}
    ref = Path(reference)
    out = {}
    for name, d in dumps.items():
        entry = {}
        for t in DUMP_TENSORS:
            a, b = Path(d) / f"{t}.npy", ref / f"{t}.npy"
            if not (a.is_file() and b.is_file()):
                entry[t] = None
                continue
            try:
                entry[t] = rel_l2(np.load(a), np.load(b))
            except ValueError as e:
                warn(f"accuracy {name}/{t}: {e}")
                entry[t] = None
        out[name] = entry
    return out


def target(name: str, description: str, value: float | None, limit: float, **extra) -> dict:
    return {
        "name": name,
        "description": description,
        "value": value,
        "limit": limit,
        "met": None if value is None else bool(value <= limit),
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--meta", action="append")
    ap.add_argument("--upstream", action="append")
    ap.add_argument("--floors")
    ap.add_argument("--export", action="append")
    ap.add_argument("--export-proc", action="append")
    ap.add_argument("--bench", action="append")
    ap.add_argument("--reference-dump")
    ap.add_argument("--dump", action="append")
    args = ap.parse_args()

    meta: dict = dict(pairs(args.meta, "--meta"))
    meta.update({
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m_at_collect": os.getloadavg()[0],
    })
    ckpt_file = Path(meta.get("checkpoint", "")) / "model.safetensors"
    if meta.get("checkpoint") and ckpt_file.is_file():
        meta["checkpoint_model_bytes"] = ckpt_file.stat().st_size
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        meta["cpu_model"] = model
    except (OSError, StopIteration):
        pass

    upstream = {m: upstream_summary(load_json(f, f"upstream {m}")) for m, f in pairs(args.upstream, "--upstream").items()}
    floors = load_json(args.floors, "floors")
    export_reports = {p: load_json(f, f"export {p}") for p, f in pairs(args.export, "--export").items()}
    export_procs = {p: load_json(f, f"export {p} (outside)") for p, f in pairs(args.export_proc, "--export-proc").items()}
    exports = {p: export_summary(export_reports.get(p), export_procs.get(p))
               for p in sorted(set(export_reports) | set(export_procs))}
    benches = {}
    for name, f in pairs(args.bench, "--bench").items():
        precision = name.rsplit("-", 1)[-1]
        wb = (exports.get(precision) or {}).get("weight_bytes")
        benches[name] = bench_summary(load_json(f, f"bench {name}"), wb)

    up_fp32 = p50_ms(upstream.get("fp32"))
    up_ac = p50_ms(upstream.get("autocast"))
    floor_fp32_ms = floors["floor_s_fp32"] * 1e3 if floors else None
    floor_bf16_ms = floors["floor_s_bf16"] * 1e3 if floors else None
    fp32_benches = {n: b for n, b in benches.items() if b and n.endswith("-fp32")}
    int8_benches = {n: b for n, b in benches.items() if b and n.endswith("-int8")}

    ratios = {
        "vjx_fp32_p50_over_upstream_fp32_p50": {n: ratio(p50_ms(b), up_fp32) for n, b in fp32_benches.items()},
        "vjx_fp32_p50_over_fp32_floor": {n: ratio(p50_ms(b), floor_fp32_ms) for n, b in fp32_benches.items()},
        "vjx_int8_p50_over_upstream_autocast_p50": {n: ratio(p50_ms(b), up_ac) for n, b in int8_benches.items()},
        "upstream_fp32_p50_over_fp32_floor": ratio(up_fp32, floor_fp32_ms),
        "upstream_autocast_p50_over_bf16_floor": ratio(up_ac, floor_bf16_ms),
        "export_seconds": {p: (e or {}).get("seconds") for p, e in exports.items()},
        "export_peak_rss_over_weights": {p: (e or {}).get("peak_rss_over_weights") for p, e in exports.items()},
        "run_peak_rss_over_weights": {n: (b or {}).get("peak_rss_over_weights") for n, b in benches.items()},
    }

    # One row per target and run; a target without data still gets a row (value null, met null).
    targets = []
    for n in sorted(fp32_benches) or [None]:
        targets.append(target("exact_p50_vs_upstream_fp32", "vjx fp32 p50 <= upstream fp32 p50 (ratio)",
                              ratios["vjx_fp32_p50_over_upstream_fp32_p50"].get(n), 1.0, run=n))
        targets.append(target("exact_p50_vs_fp32_floor", "vjx fp32 p50 <= 1.2x the fp32 compute floor (ratio)",
                              ratios["vjx_fp32_p50_over_fp32_floor"].get(n), 1.2, run=n))
    for n in sorted(int8_benches) or [None]:
        targets.append(target("int8_p50_vs_upstream_autocast", "vjx int8 p50 <= 0.5x upstream autocast p50 (ratio)",
                              ratios["vjx_int8_p50_over_upstream_autocast_p50"].get(n), 0.5, run=n))
    for p in sorted(set(exports) | {"fp32", "int8"}):
        e = exports.get(p) or {}
        targets.append(target("export_seconds", "vjx export wall time <= 60 s", e.get("seconds"), 60.0, precision=p))
        targets.append(target("export_peak_rss", "vjx export peak RSS <= 1.5x weight bytes (ratio)",
                              e.get("peak_rss_over_weights"), 1.5, precision=p))
    for n in sorted(benches) or [None]:
        targets.append(target("run_peak_rss", "vjx run peak RSS <= 1.2x weight bytes (ratio)",
                              (benches.get(n) or {}).get("peak_rss_over_weights") if n else None, 1.2, run=n))
    met = [t["met"] for t in targets]
    timed_fp32 = {n: p50_ms(b) for n, b in fp32_benches.items() if p50_ms(b) is not None}
    summary = {
        "fastest_fp32_run": min(timed_fp32, key=timed_fp32.get) if timed_fp32 else None,
        "targets_total": len(targets),
        "targets_met": sum(1 for m in met if m is True),
        "targets_missed": sum(1 for m in met if m is False),
        "targets_unknown": sum(1 for m in met if m is None),
        "all_met": bool(targets) and all(m is True for m in met),
    }

    dumps = pairs(args.dump, "--dump")
    report = {
        "meta": meta,
        "upstream": upstream,
        "vjx": {"export": exports, "bench": benches},
        "floors": None if floors is None else {
            k: floors.get(k) for k in ("threads", "L", "image_grid_thw", "flops", "upstream_extra_flops",
                                       "gflops_fp32", "gflops_bf16", "floor_s_fp32", "floor_s_bf16")
        },
        "ratios": ratios,
        "accuracy_rel_l2_vs_upstream_fp32": accuracy(args.reference_dump, dumps),
        "targets": targets,
        "summary": summary,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
