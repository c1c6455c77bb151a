#!/usr/bin/env python3
"""Chaos test (label `chaos`): clients drive many sessions while `brigade
serve` (tiny model, Redis store with appendfsync always) is killed with
SIGKILL and started again, CYCLES times. The clients retry with the same seq
across the kills. Afterwards every acknowledged turn must be in Redis exactly
once and in seq order (brigade bench --verify reads every history back).
Prints acknowledged, lost and duplicated counts.

usage: chaos_test.py BRIGADE [CYCLES]
"""
import atexit
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

BRIGADE = sys.argv[1]
started = []  # node processes, killed at exit whatever happens
atexit.register(lambda: [p.kill() for p in started if p.poll() is None])
CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 20
SESSIONS = 12
# Enough turns that the load outlasts CYCLES kills on a fast machine (a CI
# run once finished 480 turns after 19 kills); after the last kill the rest
# runs at full speed.
TURNS = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "3", "-o", model], check=True,
                       capture_output=True)
        rport, bport = free_port(), free_port()
        subprocess.run(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                        "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile",
                        os.path.join(d, "redis.log")], check=True)
        time.sleep(0.3)

        def serve():
            p = subprocess.Popen([BRIGADE, "serve", "--port", str(bport), "--metrics-port", "0", "--api-port", "0",
                                  "--model", model,
                                  "--store", f"redis://127.0.0.1:{rport}", "--node-name", "chaos-node",
                                  "--log-level", "error"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            started.append(p)
            line = p.stdout.readline()
            if not re.match(r"brigade: listening", line):
                raise RuntimeError(f"serve did not start: {line!r}")
            return p

        try:
            node = serve()
            load = subprocess.Popen([BRIGADE, "bench", "--port", str(bport), "--sessions", str(SESSIONS),
                                     "--turns", str(TURNS), "-n", "12", "--json", "--verify"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            kills = 0
            for _ in range(CYCLES):
                time.sleep(rng.uniform(0.15, 0.5))
                if load.poll() is not None:
                    break
                node.send_signal(signal.SIGKILL)
                node.wait()
                kills += 1
                node = serve()
            out, err = load.communicate(timeout=600)
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=30)
        finally:
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], capture_output=True)
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    print(f"chaos: {kills} SIGKILL cycles; acknowledged {res.get('turns')}, lost {res.get('lost')}, "
          f"duplicated {res.get('duplicated')}, client errors {res.get('errors')}")
    if err.strip():
        print("bench stderr:", err.strip()[-500:])
    ok = (kills >= min(CYCLES, 20) and res.get("lost") == 0 and res.get("duplicated") == 0 and
          res.get("errors") == 0 and res.get("turns") == SESSIONS * TURNS)
    if kills < min(CYCLES, 20):
        print(f"the load ended after {kills} of {CYCLES} kills; raise TURNS")
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
