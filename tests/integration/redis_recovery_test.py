#!/usr/bin/env python3
"""`brigade serve --store redis://...` as a process against a real, durable
redis-server (label `redis`): a node killed with SIGKILL and started again
(same --node-name) serves the session with its full history; while Redis is
down turns fail with `store unavailable` (exit 4) and nothing unacknowledged
appears; when Redis is back, turns succeed again without restarting brigade.
Several nodes on one Redis form a cluster: tests/integration/cluster_test.py.

usage: redis_recovery_test.py BRIGADE
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BRIGADE = sys.argv[1]
started = []  # node processes, killed at exit whatever happens
atexit.register(lambda: [p.kill() for p in started if p.poll() is None])
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis(port, d):
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                    "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile",
                    os.path.join(d, "log")], check=True)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def serve(model, rport, bport, name="recovery-node", *extra):
    p = subprocess.Popen([BRIGADE, "serve", "--port", str(bport), "--metrics-port", "0", "--api-port", "0",
                          "--model", model,
                          "--store", f"redis://127.0.0.1:{rport}", "--node-name", name, *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    started.append(p)
    if not re.match(r"brigade: listening", p.stdout.readline()):
        p.kill()
        raise RuntimeError("serve did not start")
    return p


def chat(bport, *args):
    return subprocess.run([BRIGADE, "chat", "--port", str(bport), *args], capture_output=True, timeout=120)


def main():
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", model], check=True,
                       capture_output=True)
        rport, bport = free_port(), free_port()
        redis(rport, d)
        try:
            node = serve(model, rport, bport)
            sid, token = chat(bport, "--open").stdout.decode().split()
            replies = [chat(bport, "--session", sid, "--token", token, "-p", f"turn {i}", "-n", "8").stdout
                       for i in (1, 2)]
            node.send_signal(signal.SIGKILL)
            node.wait()
            node = serve(model, rport, bport)
            hist = [json.loads(l) for l in chat(bport, "--session", sid, "--token", token, "--history").stdout
                    .splitlines()]
            check([h["seq"] for h in hist] == [1, 2] and [h["assistant"] + "\n" for h in hist] ==
                  [r.decode() for r in replies], "after kill -9 and a restart the session has its full history")
            p3 = chat(bport, "--session", sid, "--token", token, "-p", "turn 3", "-n", "8")
            check(p3.returncode == 0, "the restored session continues with the next seq")

            subprocess.run(["redis-cli", "-p", str(rport), "shutdown"], capture_output=True)
            down = chat(bport, "--session", sid, "--token", token, "-p", "turn 4", "-n", "8")
            err = down.stderr.decode()
            check(down.returncode == 4 and "store unavailable" in err and "not saved" in err,
                  f"with Redis down a turn fails with store unavailable, exit 4 ({err.strip()})")
            redis(rport, d)
            ok = None
            for _ in range(40):
                ok = chat(bport, "--session", sid, "--token", token, "-p", "turn 4", "-n", "8")
                if ok.returncode == 0:
                    break
                time.sleep(0.25)
            check(ok.returncode == 0, "when Redis is back, turns succeed without restarting brigade")
            hist = [json.loads(l) for l in chat(bport, "--session", sid, "--token", token, "--history").stdout
                    .splitlines()]
            check([h["seq"] for h in hist] == [1, 2, 3, 4], f"every acknowledged turn is stored once, in order "
                                                             f"({[h['seq'] for h in hist]})")
            node.send_signal(signal.SIGTERM)
            check(node.wait(timeout=30) == 0, "SIGTERM exits 0")
            # The model identity is stored with the session: other weights are
            # refused with a clear error; the same weights under another file
            # name are the same model.
            other = os.path.join(d, "tiny-other.gguf")
            subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "10", "-o", other], check=True,
                           capture_output=True)
            node = serve(other, rport, bport)
            r = chat(bport, "--session", sid, "--token", token, "--history")
            err = r.stderr.decode()
            check(r.returncode != 0 and "was created with model" in err and "but this node serves" in err,
                  f"a node with other weights refuses the session, naming both models ({err.strip()})")
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=30)
            renamed = os.path.join(d, "renamed.gguf")
            shutil.copyfile(model, renamed)
            node = serve(renamed, rport, bport)
            r = chat(bport, "--session", sid, "--token", token, "--history")
            check(r.returncode == 0 and len(r.stdout.splitlines()) == 4,
                  f"the same weights under another file name serve the session ({r.stderr.decode().strip()})")
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=30)
        finally:
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], capture_output=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
