#!/usr/bin/env python3
"""Tokenizer throughput: brigade against native llama.cpp (`llama-tokenize`,
built from the source node-llama-cpp bundles), same vocabulary, same text.

Each side tokenizes one text of about SIZE bytes (llama.cpp's reference
inputs for that vocabulary, repeated) as one process reading standard input;
the time of the same command on empty input (start-up and vocabulary load)
is subtracted. Both must give the same ids. Prints a table and, last, one
line of JSON.

usage: tokenizer_bench.py BRIGADE LLAMA_TOKENIZE [--size BYTES] [--runs N]
  LLAMA_TOKENIZE: e.g. ~/.cache/brigade/llama-native/bin/llama-tokenize (see
  docs/benchmarks.md for how it is built)
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "peer"))
import peer_env  # noqa: E402

VOCABS = ["llama-spm", "gpt-2", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "command-r", "gemma-4", "phi-3"]


def timed(cmd, data, runs):
    best, out = None, b""
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, input=data, capture_output=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {p.stderr.decode()[-500:]}")
        best = dt if best is None else min(best, dt)
        out = p.stdout
    return best, out


def ids_of(out):
    s = out.decode().strip().strip("[]").replace(",", " ")
    return [int(x) for x in s.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brigade")
    ap.add_argument("llama_tokenize")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    models = os.path.join(peer_env.ensure_llama_src(), "models")
    rows = []
    print(f"{'vocabulary':<14} {'bytes':>9} {'tokens':>8} {'brigade MB/s':>13} {'llama.cpp MB/s':>15} {'ratio':>6}")
    for v in VOCABS:
        vocab = os.path.join(models, f"ggml-vocab-{v}.gguf")
        with open(vocab + ".inp", encoding="utf-8") as f:
            unit = f.read().replace("\n__ggml_vocab_test__\n", "\n")
        text = (unit * (a.size // len(unit.encode()) + 1)).encode()[:a.size]
        text = text.decode("utf-8", "ignore").encode()
        ours = [a.brigade, "model", "tokenize", "-m", vocab]
        theirs = [a.llama_tokenize, "-m", vocab, "--stdin", "--ids", "--no-bos", "--no-parse-special", "--no-escape",
                  "--log-disable"]
        t_ours0, _ = timed(ours, b"", a.runs)
        t_ours, out_ours = timed(ours, text, a.runs)
        t_theirs0, _ = timed(theirs, b"", a.runs)
        t_theirs, out_theirs = timed(theirs, text, a.runs)
        same = ids_of(out_ours) == ids_of(out_theirs)
        mb = len(text) / 1e6
        r_ours = mb / max(t_ours - t_ours0, 1e-6)
        r_theirs = mb / max(t_theirs - t_theirs0, 1e-6)
        rows.append({"vocabulary": v, "bytes": len(text), "tokens": len(ids_of(out_ours)), "identical": same,
                     "brigade_mb_per_s": round(r_ours, 2), "llama_cpp_mb_per_s": round(r_theirs, 2),
                     "ratio": round(r_ours / r_theirs, 2)})
        print(f"{v:<14} {len(text):>9} {rows[-1]['tokens']:>8} {r_ours:>13.2f} {r_theirs:>15.2f} "
              f"{r_ours / r_theirs:>6.2f}{'' if same else '  IDS DIFFER'}")
    print(json.dumps({"tokenizer_bench": rows}))
    if not all(r["identical"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
