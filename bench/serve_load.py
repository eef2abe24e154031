#!/usr/bin/env python3
"""Load and soak of `vjx serve` on loopback, bounded in count and time; prints one JSON report.

Load: `vjx serve` on an export, driven by N concurrent openpi-client
(`WebsocketClientPolicy`) clients for a fixed number of requests each, one observation; per
request the client-side latency, errors (must be 0), the server's RSS sampled every 0.1 s, and
the overhead against in-process `predict_chunk` (`vjx bench` on the same observation, same run).
Soak: `vjx bench --iters N` in-process (default 10,000 chunks) with its RSS sampled over time;
flat means the growth after the first tenth stays within the stated bound.

Runs with the openpi-client venv of tests/serve (target/serve-venv, made by tests/serve/run.sh):
  target/serve-venv/bin/python bench/serve_load.py --vjx target/release/vjx
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image
from openpi_client import websocket_client_policy

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASE = ROOT / "tests" / "fixtures" / "vla_jepa" / "two_cam_resize"


def rss_mb(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


class RssSampler(threading.Thread):
    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop = pid, every, [], threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop.is_set():
            mb = rss_mb(self.pid)
            if mb is not None:
                self.samples.append((time.monotonic() - self.t0, mb))
            time.sleep(self.every)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def observation():
    obs = CASE / "obs_0"
    inputs = json.loads((obs / "inputs.json").read_text())
    request = {}
    args = []
    for key, file in inputs["images"].items():
        request["observation/" + key.removeprefix("observation.images.")] = np.asarray(
            Image.open(obs / file).convert("RGB")
        )
        args += ["--image", f"{key}={obs / file}"]
    request["observation/state"] = np.asarray(inputs["state"], dtype=np.float32)
    request["prompt"] = inputs["task"]
    args += ["--state=" + ",".join(repr(float(v)) for v in inputs["state"]), "--task", inputs["task"]]
    return request, args


def export(vjx, out):
    if not (out / "manifest.json").is_file():
        subprocess.run(
            [vjx, "export", "--checkpoint", CASE / "checkpoint", "--backbone", CASE / "backbone", "--out", out, "--json"],
            check=True,
            capture_output=True,
        )
    return out


def load(vjx, export_dir, clients, requests, request, threads):
    server = subprocess.Popen(
        [vjx, "serve", export_dir, "--port", "0", "--json", "--threads", str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = json.loads(server.stdout.readline())["listening"]
    sampler = RssSampler(server.pid)
    sampler.start()
    latencies, errors, lock = [], [], threading.Lock()

    def client():
        policy = websocket_client_policy.WebsocketClientPolicy(url)
        for _ in range(requests):
            t = time.perf_counter()
            try:
                policy.infer(request)
                with lock:
                    latencies.append((time.perf_counter() - t) * 1e3)
            except Exception as e:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    errors.append(repr(e))

    start = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    server.terminate()
    code = server.wait(timeout=60)
    rss = [mb for _, mb in sampler.samples]
    return {
        "clients": clients,
        "requests_per_client": requests,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": errors[:3],
        "latency_ms": {"p50": pct(latencies, 50), "p99": pct(latencies, 99), "max": max(latencies)},
        "throughput_per_s": len(latencies) / wall,
        "server_rss_mb": {"first": rss[0], "max": max(rss), "last": rss[-1], "samples": len(rss)},
        "server_exit_code_after_sigterm": code,
    }


def in_process(vjx, export_dir, args, iters, threads):
    proc = subprocess.Popen(
        [vjx, "bench", export_dir, *args, "--iters", str(iters), "--json", "--threads", str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    sampler = RssSampler(proc.pid, every=0.5)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"vjx bench failed ({proc.returncode})")
    return json.loads(out), sampler.samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vjx", default=str(ROOT / "target" / "release" / "vjx"))
    ap.add_argument("--clients", default="1,4", help="comma-separated concurrent client counts")
    ap.add_argument("--requests", type=int, default=50, help="requests per client")
    ap.add_argument("--soak-chunks", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rss-bound-mb", type=float, default=16.0, help="allowed RSS growth over the soak")
    ap.add_argument("--work", default=str(ROOT / "bench" / "work" / "serve"))
    args = ap.parse_args()

    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    export_dir = export(args.vjx, work / "tiny-vla-jepa")
    request, run_args = observation()

    baseline, _ = in_process(args.vjx, export_dir, run_args, 200, args.threads)
    loads = [load(args.vjx, export_dir, int(n), args.requests, request, args.threads) for n in args.clients.split(",")]
    one_client = next((l for l in loads if l["clients"] == 1), None)

    t = time.perf_counter()
    soak, samples = in_process(args.vjx, export_dir, run_args, args.soak_chunks, args.threads)
    soak_s = time.perf_counter() - t
    settled = [mb for s, mb in samples if s >= soak_s / 10]
    growth = max(settled) - settled[0] if settled else None

    report = {
        "what": "vjx serve on loopback: openpi-client load, and an in-process soak, on the tiny VLA-JEPA fixture export (two_cam_resize)",
        "command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "in_process_predict_chunk_ms": baseline["latency_ms"],
        "load": loads,
        "overhead_ms_p50_one_client": one_client and one_client["latency_ms"]["p50"] - baseline["latency_ms"]["p50"],
        "soak": {
            "chunks": args.soak_chunks,
            "seconds": soak_s,
            "latency_ms": soak["latency_ms"],
            "rss_mb_after_first_tenth": settled[0] if settled else None,
            "rss_mb_max": max(mb for _, mb in samples),
            "rss_growth_mb_after_first_tenth": growth,
            "rss_bound_mb": args.rss_bound_mb,
            "flat": growth is not None and growth <= args.rss_bound_mb,
            "rss_mb_by_tenth": [
                round(statistics.mean([mb for s, mb in samples if k * soak_s / 10 <= s < (k + 1) * soak_s / 10] or [0]), 1)
                for k in range(10)
            ],
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
