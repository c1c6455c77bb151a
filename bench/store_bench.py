#!/usr/bin/env python3
"""Store benchmark: starts a durable redis-server (AOF, appendfsync
always) on a free loopback port and runs build/bench/store_bench against it:
append p50/p99 and AOF bytes per turn at histories of 10, 100 and 1000 turns,
and commits per second with 64 sessions appending at once.
With --pin, redis-server runs on the last CPU and the benchmark on the
others (taskset), as a deployment that gives Redis a core of its own would.
usage: bench/store_bench.py [--fsync always|everysec] [--pin]"""
import argparse
import os
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--fsync", default="always")
ap.add_argument("--binary", default=os.path.join(ROOT, "build", "bench", "store_bench"))
ap.add_argument("--pin", action="store_true", help="redis-server on the last CPU, the benchmark on the others")
a = ap.parse_args()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
ncpu = os.cpu_count() or 1
if a.pin and ncpu < 2:
    raise SystemExit("store_bench.py: --pin needs at least 2 CPUs")
redis_cpu = ["taskset", "-c", str(ncpu - 1)] if a.pin else []
bench_cpu = ["taskset", "-c", f"0-{ncpu - 2}"] if a.pin else []
with tempfile.TemporaryDirectory() as d:
    subprocess.run(redis_cpu + ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                    "--appendonly", "yes", "--appendfsync", a.fsync, "--save", "", "--logfile",
                    os.path.join(d, "log")], check=True)
    time.sleep(0.3)
    try:
        where = f", redis-server on CPU {ncpu - 1}, benchmark on CPUs 0-{ncpu - 2}" if a.pin else ""
        print(f"redis-server 127.0.0.1:{port}, appendonly yes, appendfsync {a.fsync}{where}")
        subprocess.run(bench_cpu + [a.binary, str(port)], check=True)
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
