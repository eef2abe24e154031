#!/usr/bin/env python3
"""Compares two vjx builds in one run on one machine: each build exports the same checkpoints
itself (graph I/O may differ between builds), then `vjx bench --json` runs alternately
base/new, `--rounds` times per policy and backend. Prints JSON: per policy and backend, each
build's chunk-latency p50s, their median, and new/base.

    bench/compare_builds.py --base /tmp/vjx-base --new target/release/vjx [--iters 20] [--rounds 3]
    bench/compare_builds.py --size full --base ... --new ... --iters 3

--size tiny (default): the VLA-JEPA two_cam_resize and LingBot-VA small_window fixtures.
--size full: the real-width checkpoints of bench/make_full_size.py (bench/work/full/) and
bench/lingbot_va_compare.py (bench/work/lingbot_va/), which must have been made first; the
exports (about 9 GB per build for VLA-JEPA) go to a temp dir under bench/work/ and are removed.

Needs ORT_DYLIB_PATH for the ort backend (scripts/install_onnxruntime.sh prints it)."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = {
    "tiny": {
        "vla_jepa": (
            ROOT / "tests/fixtures/vla_jepa/two_cam_resize/checkpoint",
            ROOT / "tests/fixtures/vla_jepa/two_cam_resize/backbone",
        ),
        "lingbot_va": (
            ROOT / "tests/fixtures/lingbot_va/small_window/checkpoint",
            ROOT / "tests/fixtures/lingbot_va/small_window/wan",
        ),
    },
    "full": {
        "vla_jepa": (ROOT / "bench/work/full/checkpoint", ROOT / "bench/work/full/backbone"),
        "lingbot_va": (ROOT / "bench/work/lingbot_va/checkpoint", ROOT / "bench/work/lingbot_va/wan"),
    },
}


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_builds: {' '.join(map(str, cmd))} failed:\n{out.stderr}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path)
    ap.add_argument("--new", required=True, type=Path)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="tract,ort")
    ap.add_argument("--size", choices=sorted(CHECKPOINTS), default="tiny")
    ap.add_argument("--policies", default="vla_jepa,lingbot_va")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1, help="untimed chunks after the first")
    args = ap.parse_args()
    builds = {"base": args.base, "new": args.new}
    fixtures = {p: CHECKPOINTS[args.size][p] for p in args.policies.split(",")}
    for policy, (checkpoint, _) in fixtures.items():
        if not checkpoint.is_dir():
            sys.exit(f"compare_builds: no {policy} checkpoint at {checkpoint} (see --help)")
    scratch = ROOT / "bench/work" if args.size == "full" else None
    if scratch:
        scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vjx-compare-", dir=scratch))
    try:
        compare(args, builds, fixtures, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(args, builds, fixtures, work):
    exports = {}
    for build, binary in builds.items():
        for policy, (checkpoint, backbone) in fixtures.items():
            out = work / f"{build}-{policy}"
            print(f"compare_builds: {build} exports {policy}", file=sys.stderr)
            run([binary, "export", "--checkpoint", checkpoint, "--backbone", backbone,
                 "--out", out, "--force"])
            exports[build, policy] = out
    report = {"size": args.size, "iters": args.iters, "warmup": args.warmup, "rounds": args.rounds,
              "threads": args.threads, "loadavg_1m_start": os.getloadavg()[0], "results": {}}
    for policy in fixtures:
        for backend in args.backends.split(","):
            p50 = {"base": [], "new": []}
            for r in range(args.rounds):
                for build, binary in builds.items():
                    out = run([binary, "bench", exports[build, policy], "--json",
                               "--iters", str(args.iters), "--backend", backend,
                               "--threads", str(args.threads), "--warmup", str(args.warmup)])
                    p50[build].append(json.loads(out)["latency_ms"]["p50"])
                    print(f"compare_builds: {policy} {backend} round {r} {build} "
                          f"p50 {p50[build][-1]:.2f} ms", file=sys.stderr)
            medians = {b: statistics.median(v) for b, v in p50.items()}
            report["results"][f"{policy}/{backend}"] = {
                "p50_ms": p50,
                "median_p50_ms": medians,
                "new_over_base": medians["new"] / medians["base"],
            }
    report["loadavg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
