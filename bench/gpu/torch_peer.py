#!/usr/bin/env python3
"""The PyTorch side of the GPU benchmark, run by bench/gpu/run.sh on
a GPU machine (PyTorch and Hugging Face transformers, nothing else):

  copy     device-to-device copy bandwidth (bytes read + written), the
           ceiling the decode step is measured against
  gemm     torch.matmul (cuBLAS) on the projections of tinyllama-1b at each
           batch size, F16, weights rotated so they do not sit in L2
  sdpa     scaled_dot_product_attention per backend (cuDNN, flash, efficient,
           math) on prefill and decode shapes: cuDNN's measured place
  eager    LlamaForCausalLM with tinyllama-1b's shapes, random F16 weights,
           static cache, eager: ms per decode step at each batch size
  compile  the same under torch.compile (mode reduce-overhead), one child
           process per batch size, cut at --compile-timeout and reported as
           skipped rather than hung

Prints one JSON object per line (and writes them to --json); never claims a
number it did not measure: a part that fails reports its error.
usage: torch_peer.py [--parts copy,gemm,sdpa,eager,compile] [--batches 1,8,32,64,128]
                     [--compile-batches 1,64] [--context 128] [--steps 32] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = dict(vocab=32000, d=2048, ff=5632, layers=22, heads=32, kv_heads=4, ctx=2048)
PROJ = {  # name: (K, N) of y = x W^T
    "qkv": (2048, 2048 + 2 * 256), "o": (2048, 2048), "gate_up": (2048, 2 * 5632), "down": (5632, 2048),
    "logits": (2048, 32000)}


def emit(obj, out):
    line = json.dumps(obj)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def timed(torch, fn, reps=50, warmup=5):
    """Median ms of fn() by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def part_copy(torch, a, out):
    n = 1 << 30  # 1 GiB each way: far over L2
    src = torch.randn(n // 2, dtype=torch.float16, device="cuda")
    dst = torch.empty_like(src)
    ms = timed(torch, lambda: dst.copy_(src), reps=20)
    emit({"part": "copy", "bytes": 2 * n, "ms": ms, "gb_per_s": 2 * n / ms / 1e6}, out)


def part_gemm(torch, a, out):
    for name, (k, n) in PROJ.items():
        copies = max(2, int(4 * 50e6 // (k * n * 2)) + 1)  # rotate weight sets: 4x a 50 MB L2
        ws = [torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02 for _ in range(copies)]
        for b in a.batches:
            x = torch.randn(b, k, dtype=torch.float16, device="cuda")
            i = [0]

            def run():
                i[0] = (i[0] + 1) % copies
                return torch.matmul(x, ws[i[0]].t())
            ms = timed(torch, run)
            emit({"part": "gemm", "proj": name, "batch": b, "K": k, "N": n, "ms": ms,
                  "weight_gb_per_s": k * n * 2 / ms / 1e6, "tflops": 2 * b * k * n / ms / 1e9}, out)
        del ws


def part_sdpa(torch, a, out):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    h, kvh, hd = SHAPES["heads"], SHAPES["kv_heads"], 64
    cases = [("prefill", 1, 512, 512), ("prefill", 8, 512, 512), ("decode", 64, 1, 1024), ("decode", 1, 1, 2048)]
    for kind, b, q_len, kv_len in cases:
        q = torch.randn(b, h, q_len, hd, dtype=torch.float16, device="cuda")
        k = torch.randn(b, h, kv_len, hd, dtype=torch.float16, device="cuda")  # GQA expanded: every backend takes it
        v = torch.randn_like(k)
        causal = kind == "prefill"
        for name, be in [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                         ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("math", SDPBackend.MATH)]:
            try:
                with sdpa_kernel(be):
                    ms = timed(torch, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps=30)
                emit({"part": "sdpa", "backend": name, "kind": kind, "batch": b, "q": q_len, "kv": kv_len,
                      "hd": hd, "ms": ms}, out)
            except Exception as e:  # a backend that refuses the shape says why
                emit({"part": "sdpa", "backend": name, "kind": kind, "batch": b, "error": str(e)[:200]}, out)


def build_model(torch):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=SHAPES["vocab"], hidden_size=SHAPES["d"], intermediate_size=SHAPES["ff"],
                      num_hidden_layers=SHAPES["layers"], num_attention_heads=SHAPES["heads"],
                      num_key_value_heads=SHAPES["kv_heads"], max_position_embeddings=SHAPES["ctx"],
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    return model


def make_cache(torch, model, batch, length):
    from transformers import StaticCache
    try:  # transformers 5: batch size and device are taken at the first update
        return StaticCache(config=model.config, max_cache_len=length)
    except TypeError:
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=length, device="cuda",
                           dtype=torch.float16)


def decode_ms(torch, model, fwd, batch, a):
    cache = make_cache(torch, model, batch, a.context + a.steps + 8)
    ids = torch.randint(3, SHAPES["vocab"], (batch, a.context), device="cuda")
    with torch.no_grad():
        fwd(input_ids=ids, past_key_values=cache, use_cache=True,
            cache_position=torch.arange(a.context, device="cuda"))
        nxt = torch.randint(3, SHAPES["vocab"], (batch, 1), device="cuda")
        times = []
        for s in range(a.steps):
            pos = torch.tensor([a.context + s], device="cuda")
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            logits = fwd(input_ids=nxt, past_key_values=cache, use_cache=True, cache_position=pos).logits
            nxt = logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[3:] if len(times) > 6 else times)


def part_eager(torch, a, out):
    model = build_model(torch)
    for b in a.batches:
        try:
            ms = decode_ms(torch, model, model, b, a)
            emit({"part": "eager", "batch": b, "ms_per_step": ms, "tokens_per_s": b / ms * 1e3}, out)
        except Exception as e:
            emit({"part": "eager", "batch": b, "error": str(e)[:300]}, out)
        torch.cuda.empty_cache()


def part_compile_one(torch, a, out, batch):
    model = build_model(torch)
    fwd = torch.compile(model, mode="reduce-overhead", fullgraph=False)
    t0 = time.perf_counter()
    ms = decode_ms(torch, model, fwd, batch, a)
    emit({"part": "compile", "batch": batch, "ms_per_step": ms, "tokens_per_s": batch / ms * 1e3,
          "wall_s_including_compile": time.perf_counter() - t0}, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="copy,gemm,sdpa,eager,compile")
    ap.add_argument("--batches", default="1,8,32,64,128")
    ap.add_argument("--compile-batches", default="1,64")
    ap.add_argument("--compile-timeout", type=int, default=150)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--json", default="")
    ap.add_argument("--compile-child", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.batches = [int(x) for x in a.batches.split(",")]
    import torch
    if not torch.cuda.is_available():
        emit({"part": "setup", "error": "no CUDA device visible to PyTorch"}, a.json)
        return 77
    if a.compile_child:
        part_compile_one(torch, a, a.json, a.compile_child)
        return 0
    emit({"part": "setup", "device": torch.cuda.get_device_name(0), "torch": torch.__version__}, a.json)
    parts = a.parts.split(",")
    for name, fn in [("copy", part_copy), ("gemm", part_gemm), ("sdpa", part_sdpa), ("eager", part_eager)]:
        if name in parts:
            try:
                fn(torch, a, a.json)
            except Exception as e:
                emit({"part": name, "error": str(e)[:300]}, a.json)
    if "compile" in parts:
        for b in [int(x) for x in a.compile_batches.split(",")]:
            cmd = [sys.executable, os.path.abspath(__file__), "--compile-child", str(b), "--context", str(a.context),
                   "--steps", str(a.steps), "--json", a.json]
            try:
                r = subprocess.run(cmd, timeout=a.compile_timeout, capture_output=True, text=True)
                if r.returncode != 0:
                    emit({"part": "compile", "batch": b, "error": (r.stderr or "")[-300:]}, a.json)
                elif not a.json:
                    print(r.stdout, end="")
            except subprocess.TimeoutExpired:
                emit({"part": "compile", "batch": b, "skipped": f"over {a.compile_timeout}s"}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
