#!/usr/bin/env python3
"""Measures, on this machine, the figures bench/scaling_sim.py's load model
is calibrated from, and writes them to bench/scaling/calibration.json:

- `brigade model bench`: decode tokens/s and step time per batch size;
- a node (`brigade serve`, memory store, the built-in model, defaults) under
  `brigade bench` at several session counts: turns/s, TTFT p50/p99, mean
  batch, and, sampled from its /metrics every 0.25 s during the middle half
  of each run, the queue depth and the engine busy ratio.

usage: scaling_calibrate.py [--brigade build/app/brigade] [--out bench/scaling/calibration.json]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSIONS = [1, 4, 16, 32, 64, 96, 128]


def start_node(binary):
    p = subprocess.Popen([binary, "serve", "--port", "0", "--metrics-port", "0", "--api-port", "off"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("scaling_calibrate: the node exited before it was ready")
        m = re.search(r"listening on (\S+) metrics (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()  # drain its log
            return p, m.group(1), m.group(2)


def scrape(metrics):
    out = {}
    for line in urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brigade", default=os.path.join(ROOT, "build/app/brigade"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/scaling/calibration.json"))
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--gen", type=int, default=32)
    a = ap.parse_args()

    node, basp, metrics = start_node(a.brigade)
    try:
        rows = []
        for sessions in SESSIONS:
            samples, stop = [], threading.Event()

            def sampler():
                while not stop.is_set():
                    s = scrape(metrics)
                    samples.append((s.get('brigade_queue_depth{device="cpu"}', 0.0),
                                    s.get('brigade_engine_busy_ratio{device="cpu"}', 0.0)))
                    stop.wait(0.25)

            th = threading.Thread(target=sampler)
            th.start()
            r = subprocess.run([a.brigade, "bench", "--host", basp, "--sessions", str(sessions), "--turns",
                                str(a.turns), "-n", str(a.gen), "--json"], capture_output=True, text=True)
            stop.set()
            th.join()
            j = json.loads(r.stdout.strip().splitlines()[-1])
            mid = samples[len(samples) // 4:max(len(samples) // 4 + 1, 3 * len(samples) // 4)] or [(0.0, 0.0)]
            row = {"sessions": sessions, "turns_per_second": j["turns"] / j["seconds"],
                   "tokens_per_second": j["tokens_per_second"], "ttft_p50_seconds": j["ttft_p50_seconds"],
                   "ttft_p99_seconds": j["ttft_p99_seconds"], "mean_batch_size": j["mean_batch_size"],
                   "prompt_tokens_per_turn": j["prompt_tokens"] / j["turns"],
                   "generated_tokens_per_turn": j["tokens"] / j["turns"],
                   "queue_depth_mean": statistics.mean(x[0] for x in mid),
                   "engine_busy_ratio_mean": statistics.mean(x[1] for x in mid)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        node.terminate()
        node.wait()
    cache = os.environ.get("BRIGADE_CACHE_DIR", os.path.expanduser("~/.cache/brigade"))
    gguf = sorted(os.path.join(cache, "models", f) for f in os.listdir(os.path.join(cache, "models")))[0]
    mb = subprocess.run([a.brigade, "model", "bench", "-m", gguf, "--batch", "1,2,4,8,16,32,64", "--json"],
                        capture_output=True, text=True, check=True)
    model_bench = json.loads(mb.stdout.strip().splitlines()[-1])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cal = {"source": f"bench/scaling_calibrate.py at {commit}, {datetime.date.today().isoformat()}, "
                     f"{model_bench.get('machine', '?')} {model_bench.get('backend', '')}",
           "model": os.path.basename(gguf), "server": rows,
           "model_bench": {"tokens_per_second": model_bench["batch"], "step_ms": model_bench["step_ms"]}}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(cal, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
