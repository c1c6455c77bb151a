#!/usr/bin/env python3
"""Store benchmark (issue 5): starts a durable redis-server (AOF, appendfsync
always) on a free loopback port and runs build/bench/store_bench against it:
append p50/p99 and AOF bytes per turn at histories of 10, 100 and 1000 turns,
and commits per second with 64 sessions appending at once.
usage: bench/store_bench.py [--fsync always|everysec]"""
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
a = ap.parse_args()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
with tempfile.TemporaryDirectory() as d:
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                    "--appendonly", "yes", "--appendfsync", a.fsync, "--save", "", "--logfile",
                    os.path.join(d, "log")], check=True)
    time.sleep(0.3)
    try:
        print(f"redis-server 127.0.0.1:{port}, appendonly yes, appendfsync {a.fsync}")
        subprocess.run([a.binary, str(port)], check=True)
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
