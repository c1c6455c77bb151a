#!/usr/bin/env python3
"""Node benchmark. In one run against the same `small` model (F16,
~52M parameters): a node with --max-batch 1 and a node with batching on, each
driven over BASP by `brigade bench` with 64 concurrent sessions; then
`brigade model bench` at the mean batch size the batching node reported.
Prints both ratios (targets: batching >= 5x max-batch 1; end-to-end over BASP
>= 0.8x the engine alone at the same batch size), a table and one JSON object.

usage: bench/server_bench.py [--brigade build/app/brigade] [--sessions 64] [--turns 2] [-n 32] [--json-out F]
"""
import argparse
import json
import os
import re
import signal
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(brigade, model, *flags):
    p = subprocess.Popen([brigade, "serve", "--port", "0", "--metrics-port", "0", "--model", model,
                          "--log-level", "warn", *flags], stdout=subprocess.PIPE, text=True)
    m = re.match(r"brigade: listening on [0-9.]+:(\d+)", p.stdout.readline())
    if not m:
        p.kill()
        raise RuntimeError("serve did not start")
    return p, int(m.group(1))


def load(brigade, port, sessions, turns, n):
    out = subprocess.run([brigade, "bench", "--port", str(port), "--sessions", str(sessions), "--turns", str(turns),
                          "-n", str(n), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brigade", default=os.path.join(ROOT, "build", "app", "brigade"))
    ap.add_argument("--sessions", type=int, default=64)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    cache = os.path.join(os.environ.get("BRIGADE_CACHE_DIR", os.path.expanduser("~/.cache/brigade")), "models")
    os.makedirs(cache, exist_ok=True)
    model = os.path.join(cache, "small-f16-seed1.gguf")
    if not os.path.exists(model):
        subprocess.run([a.brigade, "model", "synth", "--preset", "small", "--seed", "1", "-o", model], check=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()

    results = {}
    for name, flags in (("max-batch 1", ["--max-batch", "1"]), ("batching", [])):
        p, port = start(a.brigade, model, *flags)
        try:
            results[name] = load(a.brigade, port, a.sessions, a.turns, a.n)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        r = results[name]
        print(f"{name:12s}: {r['tokens_per_second']:8.1f} tokens/s, first token p50 {r['ttft_p50_seconds']:.3f} s "
              f"p99 {r['ttft_p99_seconds']:.3f} s, mean batch {r['mean_batch_size']:.1f}, errors {r['errors']}",
              flush=True)
    mean_batch = max(1, round(results["batching"]["mean_batch_size"]))
    out = subprocess.run([a.brigade, "model", "bench", "-m", model, "--batch", str(mean_batch), "--gen-tokens",
                          str(a.n), "--json"], capture_output=True, text=True, check=True)
    engine = json.loads(out.stdout.strip().splitlines()[-1])["batch"][str(mean_batch)]
    ratio_batching = results["batching"]["tokens_per_second"] / results["max-batch 1"]["tokens_per_second"]
    ratio_runtime = results["batching"]["tokens_per_second"] / engine
    b = results["batching"]
    # The node also prefills every turn's new prompt tokens, which the decode-only
    # engine benchmark never does: the same ratio on all tokens the engine processed.
    processed = (b["tokens"] + b.get("prompt_tokens", 0)) / b["seconds"]
    ratio_processed = processed / engine

    print(f"\nnode over BASP, small (F16), {a.sessions} sessions x {a.turns} turns x {a.n} tokens, commit {commit}")
    print(f"{'configuration':>28}  {'tokens/s':>9}  {'ttft p50':>9}  {'mean batch':>10}")
    for name in ("max-batch 1", "batching"):
        r = results[name]
        print(f"{'node, ' + name:>28}  {r['tokens_per_second']:9.1f}  {r['ttft_p50_seconds']:9.3f}  "
              f"{r['mean_batch_size']:10.1f}")
    print(f"{'model bench, batch ' + str(mean_batch):>28}  {engine:9.1f}")
    print(f"\nbatching / max-batch 1 = {ratio_batching:.2f} (target >= 5)")
    print(f"node over BASP / engine alone at batch {mean_batch} = {ratio_runtime:.2f} (target >= 0.8)")
    print(f"  counting prompt tokens too ({b.get('prompt_tokens', 0)} prefilled, {b['tokens']} generated): "
          f"{processed:.1f} tokens/s processed = {ratio_processed:.2f} of the engine alone")
    res = {"benchmark": "server", "model": os.path.basename(model), "sessions": a.sessions, "turns": a.turns,
           "max_tokens": a.n, "commit": commit, "max_batch_1": results["max-batch 1"],
           "batching": results["batching"], "model_bench_batch": mean_batch, "model_bench_tokens_per_second": engine,
           "ratio_batching_over_max_batch_1": ratio_batching, "ratio_node_over_engine": ratio_runtime,
           "processed_tokens_per_second": processed, "ratio_processed_over_engine": ratio_processed}
    print(json.dumps(res))
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
