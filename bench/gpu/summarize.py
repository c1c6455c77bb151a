#!/usr/bin/env python3
"""Prints the GPU benchmark's table from the JSON that
bench/gpu/run.sh leaves under OUT: bench.json (cuda_bench: our decode step),
kernels.json (cuda_kernel_bench: copy bandwidth, projections, attention) and
torch.jsonl (torch_peer.py: cuBLAS, SDPA backends, PyTorch eager and
torch.compile). Writes summary.json beside them. Missing parts print as "-":
nothing is filled in that was not measured.
usage: summarize.py OUT"""
import json
import os
import sys


def load(path, lines=False):
    try:
        with open(path) as f:
            if lines:
                return [json.loads(l) for l in f if l.strip().startswith("{")]
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def main(out):
    ours = load(os.path.join(out, "bench.json")) or {}
    kern = load(os.path.join(out, "kernels.json")) or []
    torch = load(os.path.join(out, "torch.jsonl"), lines=True) or []
    copy = next((k["gb_per_s"] for k in kern if k.get("part") == "copy"), None)
    tcopy = next((t["gb_per_s"] for t in torch if t.get("part") == "copy" and "gb_per_s" in t), None)
    steps = {r["batch"]: r for r in ours.get("rows", [])}
    eager = {t["batch"]: t for t in torch if t.get("part") == "eager" and "ms_per_step" in t}
    comp = {t["batch"]: t for t in torch if t.get("part") == "compile" and "ms_per_step" in t}
    summary = {"device": ours.get("device"), "copy_gb_per_s": copy, "torch_copy_gb_per_s": tcopy, "decode": []}
    print(f"device: {ours.get('device', '-')}; copy bandwidth {fmt(copy, '.0f')} GB/s (ours), "
          f"{fmt(tcopy, '.0f')} GB/s (torch)")
    print("\ndecode step, tinyllama-1b F16 (ms per step; tokens/s)")
    print(f"{'batch':>5} {'ours ms':>9} {'tok/s':>9} {'GB/s':>7} {'% copy':>7} {'eager ms':>9} {'compile ms':>10} "
          f"{'x eager':>8} {'x compile':>9}")
    for b in sorted(set(steps) | set(eager) | set(comp)):
        s, e, c = steps.get(b), eager.get(b), comp.get(b)
        ms = s["ms_per_step"] if s else None
        gbs = s["gb_per_s"] if s else None
        pct = 100 * gbs / copy if gbs and copy else None
        xe = e["ms_per_step"] / ms if e and ms else None
        xc = c["ms_per_step"] / ms if c and ms else None
        print(f"{b:>5} {fmt(ms):>9} {fmt(s and s['tokens_per_s'], '.0f'):>9} {fmt(gbs, '.0f'):>7} {fmt(pct, '.1f'):>7} "
              f"{fmt(e and e['ms_per_step']):>9} {fmt(c and c['ms_per_step']):>10} {fmt(xe, '.2f'):>8} "
              f"{fmt(xc, '.2f'):>9}")
        summary["decode"].append({"batch": b, "ms": ms, "gb_per_s": gbs, "pct_copy": pct, "eager_ms": e and
                                  e["ms_per_step"], "compile_ms": c and c["ms_per_step"], "x_eager": xe,
                                  "x_compile": xc})
    cublas = {(t["proj"], t["batch"]): t["ms"] for t in torch if t.get("part") == "gemm" and "ms" in t}
    mine = {(k["proj"], k["batch"]): k["ms"] for k in kern if k.get("part") == "projection"}
    if mine or cublas:
        print("\nprojections, F16 weights (ms; ours / cuBLAS: below 1 is faster)")
        for key in sorted(set(mine) | set(cublas), key=lambda k: (k[0], k[1])):
            m, c = mine.get(key), cublas.get(key)
            print(f"  {key[0]:>8} batch {key[1]:>4}: ours {fmt(m, '.4f')}  cuBLAS {fmt(c, '.4f')}  "
                  f"ratio {fmt(m / c if m and c else None, '.2f')}")
    att = [k for k in kern if k.get("part") == "attention"]
    sdpa = [t for t in torch if t.get("part") == "sdpa" and "ms" in t]
    if att or sdpa:
        print("\nattention (ms): ours (F32 paged KV) and PyTorch SDPA backends (F16)")
        for a in att:
            same = {t["backend"]: t["ms"] for t in sdpa if (t["kind"], t["batch"], t["q"], t["kv"]) ==
                    (a["kind"], a["batch"], a["q"], a["kv"])}
            print(f"  {a['kind']:>7} b{a['batch']} q{a['q']} kv{a['kv']}: ours {a['ms']:.4f}  " +
                  "  ".join(f"{k} {v:.4f}" for k, v in sorted(same.items())))
    print("\ntargets")
    one, b64 = steps.get(1), steps.get(64)
    pct1 = 100 * one["gb_per_s"] / copy if one and copy else None
    print(f"  batch 1 at >= 75% of copy bandwidth: {fmt(pct1, '.1f')}%")
    ratios = [(r["x_eager"], r["x_compile"]) for r in summary["decode"] if r["batch"] <= 64]
    print(f"  >= 2x eager, batch 1..64: min {fmt(min((x for x, _ in ratios if x), default=None), '.2f')}")
    print(f"  >= 1.2x torch.compile (where measured): min "
          f"{fmt(min((y for _, y in ratios if y), default=None), '.2f')}")
    scale = b64["tokens_per_s"] / one["tokens_per_s"] if one and b64 else None
    print(f"  tokens/s at batch 64 >= 20x batch 1: {fmt(scale, '.1f')}x")
    summary.update({"batch1_pct_copy": pct1, "batch64_over_batch1": scale})
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-out")
