#!/usr/bin/env python3
"""The HTTP API in a cluster (label api): two `brigade serve` nodes on one
real redis-server.

1. Any node's API serves any session: a session opened through one node's
   API takes turns through the other's (forwarded to its owner), and the
   history has each turn once; a session opened over BASP (`brigade chat
   --open`) takes HTTP turns, and one opened over HTTP takes BASP turns.
2. A stateless request whose entry node is full (--max-batch 1
   --queue-limit 1) is forwarded to the other member instead of refused:
   concurrent requests all succeed and the entry node counts forwards.

usage: cluster_api_test.py BRIGADE
"""
import concurrent.futures
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BRIGADE = sys.argv[1]
failures = []
started = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, name, store, model, logs, *extra):
        self.name = name
        self.log = os.path.join(logs, name + ".log")
        self.p = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "--model", model,
                                   "--store", store, "--node-name", name, "--max-tokens", "16", *extra],
                                  stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        started.append(self.p)
        line = self.p.stdout.readline() if select.select([self.p.stdout], [], [], 30)[0] else ""
        m = re.match(r"brigade: listening on [0-9.]+:(\d+) metrics [0-9.]+:(\d+) api [0-9.]+:(\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"node {name} did not start: {line!r}\n" + open(self.log).read()[-2000:])
        self.port, self.mport, self.aport = (int(g) for g in m.groups())
        threading.Thread(target=self.p.stdout.read, daemon=True).start()

    def http(self, method, path, body=None, headers=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.aport}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def metric(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def durable(node, sid, token, seq, text):
    return node.http("POST", "/v1/chat/completions",
                     {"messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0},
                     {"X-Brigade-Session": sid, "X-Brigade-Token": token, "X-Brigade-Seq": str(seq)})


def wait_active(nodes, timeout=15):
    """Until each node's cluster status lists every node active."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = True
        for n in nodes:
            out = subprocess.run([BRIGADE, "cluster", "status", "--port", str(n.port), "--json"], capture_output=True,
                                 text=True)
            try:
                st = json.loads(out.stdout.strip().splitlines()[-1])
                ok &= sum(1 for x in st["nodes"] if x["state"] == "active") == len(nodes)
            except (ValueError, IndexError, KeyError):
                ok = False
        if ok:
            return True
        time.sleep(0.2)
    return False


def any_node_any_session(a, b):
    s, _, opened = a.http("POST", "/v1/sessions", {"system": "You are a chef."})
    check(s == 200 and "id" in opened, f"POST /v1/sessions through {a.name} ({s})")
    sid, token = opened["id"], opened["token"]
    r1 = durable(b, sid, token, 1, "first, through b")
    r2 = durable(a, sid, token, 2, "second, through a")
    r3 = durable(b, sid, token, 2, "second, through a")  # a re-sent seq through the other node: replayed
    check(r1[0] == 200 and r2[0] == 200, f"turns 1 and 2 through b and a ({r1[0]}, {r2[0]})")
    check(r3[0] == 200 and r3[2]["choices"][0]["message"]["content"] == r2[2]["choices"][0]["message"]["content"],
          "seq 2 re-sent through b replays the reply committed through a")
    s, _, hist = b.http("GET", f"/v1/sessions/{sid}", headers={"X-Brigade-Token": token})
    check(s == 200 and [t["seq"] for t in hist["turns"]] == [1, 2], f"the history has seqs 1, 2 once ({hist})")

    # BASP-opened, HTTP turns; HTTP-opened, BASP turns.
    out = subprocess.run([BRIGADE, "chat", "--port", str(a.port), "--open"], capture_output=True, text=True)
    bsid, btok = out.stdout.split()
    r = durable(b, bsid, btok, 1, "over HTTP")
    check(r[0] == 200, f"a session opened over BASP takes a turn over HTTP ({r[0]})")
    out = subprocess.run([BRIGADE, "chat", "--port", str(b.port), "--session", sid, "--token", token, "-p",
                          "over BASP", "-n", "4"], capture_output=True, text=True)
    check(out.returncode == 0, f"a session opened over HTTP takes a turn over BASP ({out.stderr.strip()})")
    s, _, hist = a.http("GET", f"/v1/sessions/{sid}", headers={"X-Brigade-Token": token})
    check(s == 200 and [t["seq"] for t in hist["turns"]] == [1, 2, 3] and hist["turns"][2]["user"] == "over BASP",
          "the BASP turn is seq 3 of the HTTP session")


def stateless_forwarded(full, other):
    before = full.metric("brigade_turns_forwarded_total")

    def one(i):
        return full.http("POST", "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": f"Guest {i}"}], "max_tokens": 16,
                          "temperature": 0})

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(12)))
    codes = [r[0] for r in results]
    forwarded = full.metric("brigade_turns_forwarded_total") - before
    check(all(c == 200 for c in codes), f"12 concurrent stateless requests to the full node all succeed ({codes})")
    check(forwarded >= 1, f"the full node forwarded {forwarded:.0f} of them to {other.name}")


def main():
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", model], check=True,
                       capture_output=True)
        rport = free_port()
        subprocess.run(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                        "--save", "", "--logfile", os.path.join(d, "redis.log")], check=True)
        nodes = []
        try:
            for _ in range(100):
                if subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True,
                                  text=True).stdout.strip() == "PONG":
                    break
                time.sleep(0.05)
            store = f"redis://127.0.0.1:{rport}/0"
            a = Node("a", store, model, d, "--max-batch", "1", "--queue-limit", "1")
            b = Node("b", store, model, d)
            nodes = [a, b]
            check(wait_active(nodes), "both nodes are active members")
            for step in (lambda: any_node_any_session(a, b), lambda: stateless_forwarded(a, b)):
                try:
                    step()
                except Exception as e:
                    check(False, f"a check raised {type(e).__name__}: {e}")
        finally:
            for n in nodes:
                n.stop()
            for p in started:
                if p.poll() is None:
                    p.kill()
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], capture_output=True)
            if failures:
                for n in nodes:
                    print(f"--- {n.name} log (tail)\n" + open(n.log).read()[-3000:])
    print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
