#!/usr/bin/env python3
"""The layering of the tree, enforced (CTest `layering`, label build).

Every #include "..." of a project header in kernels/, runtime/, net/,
actors/, app/, bench/ and tests/ is checked against the layers
    kernels <- runtime <- net <- actors <- app
(a file may include its own layer and the layers before it), and inside
kernels/ against
    base <- model <- engine <- cpu, cuda
with one named exception: kernels/engine/make_engine.hpp chooses the backend
and so includes both backends' headers. CUDA headers (<cuda*.h>, <cub/...>,
<cublas*>, .cuh files) may be included only under kernels/cuda/ and by the
GPU programs (tests/gpu/, bench/gpu/). Tests and benchmarks may include any
layer. Exits 1 listing each violation as file:line.

usage: check_layering.py [SOURCE_DIR]
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
root = os.path.abspath(root)
LAYERS = ["kernels", "runtime", "net", "actors", "app"]
KERNEL_LAYERS = {"base": 0, "model": 1, "engine": 2, "cpu": 3, "cuda": 3}
EXCEPTIONS = {("kernels/engine/make_engine.hpp", "kernels/cpu"), ("kernels/engine/make_engine.hpp", "kernels/cuda")}
CUDA_OK = ("kernels/cuda/", "tests/gpu/", "bench/gpu/")
SOURCES = (".cpp", ".hpp", ".cu", ".cuh", ".inc", ".h")
include_re = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
cuda_re = re.compile(r"^(cuda[_a-z0-9]*\.h|cub/|cublas|cudnn|curand|nvrtc|thrust/|cooperative_groups)")


def rank(path):
    top = path.split("/", 1)[0]
    return LAYERS.index(top) if top in LAYERS else None


def kernel_rank(path):
    parts = path.split("/")
    if parts[0] != "kernels" or len(parts) < 3:
        return None
    return KERNEL_LAYERS.get(parts[1])


violations = []
checked = 0
for top in LAYERS + ["bench", "tests"]:
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for name in files:
            if not name.endswith(SOURCES):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
            for n, line in enumerate(lines, 1):
                m = include_re.match(line)
                if not m:
                    continue
                checked += 1
                kind, target = m.groups()
                is_cuda = (kind == "<" and cuda_re.match(target)) or target.endswith(".cuh")
                if is_cuda and not rel.startswith(CUDA_OK):
                    violations.append(f"{rel}:{n}: includes the CUDA header {target} outside kernels/cuda/ and the GPU programs")
                if kind != '"':
                    continue
                src, dst = rank(rel), rank(target)
                if src is not None and dst is not None and dst > src:
                    violations.append(f"{rel}:{n}: {LAYERS[src]}/ includes {target} from the higher layer {LAYERS[dst]}/")
                ks, kd = kernel_rank(rel), kernel_rank(target)
                if ks is not None and kd is not None and kd > ks:
                    if (rel, "/".join(target.split("/")[:2])) not in EXCEPTIONS:
                        violations.append(f"{rel}:{n}: {'/'.join(rel.split('/')[:2])}/ includes {target} from a later kernels/ folder")
                    continue
                if ks is not None and kd is not None and ks == kd == 3 and rel.split("/")[1] != target.split("/")[1]:
                    violations.append(f"{rel}:{n}: the cpu and cuda backends include each other ({target})")

for v in violations:
    print(v)
print(f"layering: {checked} includes checked, {len(violations)} violations")
sys.exit(1 if violations or checked == 0 else 0)
