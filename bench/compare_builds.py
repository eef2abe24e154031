#!/usr/bin/env python3
"""Compares two vjx builds on the tiny fixtures, in one run on one machine: each build exports
the VLA-JEPA (two_cam_resize) and LingBot-VA (small_window) fixtures itself (graph I/O may
differ between builds), then `vjx bench --json` runs alternately base/new, `--rounds` times per
policy and backend. Prints JSON: per policy and backend, each build's chunk-latency p50s, their
median, and new/base.

    bench/compare_builds.py --base /tmp/vjx-base --new target/release/vjx [--iters 20] [--rounds 3]

Needs ORT_DYLIB_PATH for the ort backend (scripts/install_onnxruntime.sh prints it)."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = {
    "vla_jepa": (
        ROOT / "tests/fixtures/vla_jepa/two_cam_resize/checkpoint",
        ROOT / "tests/fixtures/vla_jepa/two_cam_resize/backbone",
    ),
    "lingbot_va": (
        ROOT / "tests/fixtures/lingbot_va/small_window/checkpoint",
        ROOT / "tests/fixtures/lingbot_va/small_window/wan",
    ),
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
    args = ap.parse_args()
    builds = {"base": args.base, "new": args.new}
    work = Path(tempfile.mkdtemp(prefix="vjx-compare-"))
    exports = {}
    for build, binary in builds.items():
        for policy, (checkpoint, backbone) in FIXTURES.items():
            out = work / f"{build}-{policy}"
            print(f"compare_builds: {build} exports {policy}", file=sys.stderr)
            run([binary, "export", "--checkpoint", checkpoint, "--backbone", backbone,
                 "--out", out, "--force"])
            exports[build, policy] = out
    report = {"iters": args.iters, "rounds": args.rounds, "results": {}}
    for policy in FIXTURES:
        for backend in args.backends.split(","):
            p50 = {"base": [], "new": []}
            for r in range(args.rounds):
                for build, binary in builds.items():
                    out = run([binary, "bench", exports[build, policy], "--json",
                               "--iters", str(args.iters), "--backend", backend])
                    p50[build].append(json.loads(out)["latency_ms"]["p50"])
                    print(f"compare_builds: {policy} {backend} round {r} {build} "
                          f"p50 {p50[build][-1]:.2f} ms", file=sys.stderr)
            medians = {b: statistics.median(v) for b, v in p50.items()}
            report["results"][f"{policy}/{backend}"] = {
                "p50_ms": p50,
                "median_p50_ms": medians,
                "new_over_base": medians["new"] / medians["base"],
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
