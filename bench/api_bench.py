#!/usr/bin/env python3
"""The HTTP API's cost against BASP, in one run on one node (`small` model,
F16, ~52M parameters): `brigade bench` drives 64 concurrent durable sessions
of streamed turns over BASP and, with --api, over the OpenAI-compatible HTTP
API (SSE, X-Brigade-Seq; the same load generator, prompts, sampling and
seeds). The two alternate (BASP, API, BASP, API, ...) for --rounds rounds on
the same node, so drift of a noisy machine hits both alike; the figures are
the medians over rounds. Target: API tokens/s >= 0.9 x BASP tokens/s.
Prints a table and one JSON object (last line).

usage: bench/api_bench.py [--brigade build/app/brigade] [--sessions 64] [--turns 2] [-n 32] [--rounds 3]
                          [--json-out F]
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(brigade, model, *flags):
    p = subprocess.Popen([brigade, "serve", "--port", "0", "--metrics-port", "0", "--model", model,
                          "--log-level", "warn", *flags], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.match(r"brigade: listening on [0-9.]+:(\d+) metrics [0-9.]+:\d+ api [0-9.]+:(\d+)", line)
    if not m:
        p.kill()
        raise RuntimeError("serve did not start: " + line)
    return p, int(m.group(1)), int(m.group(2))


def load(brigade, args):
    out = subprocess.run([brigade, "bench", *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("bench failed: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brigade", default=os.path.join(ROOT, "build", "app", "brigade"))
    ap.add_argument("--sessions", type=int, default=64)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    cache = os.path.join(os.environ.get("BRIGADE_CACHE_DIR", os.path.expanduser("~/.cache/brigade")), "models")
    os.makedirs(cache, exist_ok=True)
    model = os.path.join(cache, "small-f16-seed1.gguf")
    if not os.path.exists(model):
        subprocess.run([a.brigade, "model", "synth", "--preset", "small", "--seed", "1", "-o", model], check=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    common = ["--sessions", str(a.sessions), "--turns", str(a.turns), "-n", str(a.n), "--verify"]
    p, port, aport = start(a.brigade, model)
    runs = {"basp": [], "api": []}
    try:
        load(a.brigade, ["--port", str(port), "--sessions", "8", "--turns", "1", "-n", "8"])  # warm-up
        for _ in range(a.rounds):
            runs["basp"].append(load(a.brigade, ["--port", str(port), *common]))
            runs["api"].append(load(a.brigade, ["--api", "--api-port", str(aport), *common]))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)

    def med(side, key):
        return statistics.median(r[key] for r in runs[side])

    summary = {}
    for side in ("basp", "api"):
        summary[side] = {k: med(side, k) for k in ("tokens_per_second", "ttft_p50_seconds", "ttft_p99_seconds")}
        summary[side]["errors"] = sum(r["errors"] for r in runs[side])
        summary[side]["lost"] = sum(r["lost"] for r in runs[side])
        summary[side]["duplicated"] = sum(r["duplicated"] for r in runs[side])
        summary[side]["refused"] = sum(r["refused"] for r in runs[side])
    ratio = summary["api"]["tokens_per_second"] / summary["basp"]["tokens_per_second"]
    print(f"API against BASP, {a.sessions} sessions x {a.turns} turns x {a.n} tokens, small model, "
          f"{a.rounds} alternating rounds, commit {commit}")
    print(f"{'':6} {'tokens/s':>10} {'TTFT p50 s':>11} {'TTFT p99 s':>11} {'errors':>7} {'lost':>5} {'dup':>4}")
    for side in ("basp", "api"):
        s = summary[side]
        print(f"{side:6} {s['tokens_per_second']:10.1f} {s['ttft_p50_seconds']:11.3f} {s['ttft_p99_seconds']:11.3f} "
              f"{s['errors']:7d} {s['lost']:5d} {s['duplicated']:4d}")
    print(f"api/basp tokens/s ratio {ratio:.3f} (target >= 0.90): {'met' if ratio >= 0.9 else 'MISSED'}")
    out = {"bench": "api_vs_basp", "commit": commit, "sessions": a.sessions, "turns": a.turns, "max_tokens": a.n,
           "rounds": a.rounds, "basp": summary["basp"], "api": summary["api"], "ratio_tokens_per_second": ratio,
           "per_round": runs}
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "per_round"}))


if __name__ == "__main__":
    main()
