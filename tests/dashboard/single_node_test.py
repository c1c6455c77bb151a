#!/usr/bin/env python3
"""The dashboard's HTTP surface on a single node with the memory store (label
`dashboard`), over real sockets:

  1. the page and its files: 200 with their types, the Content-Security-Policy
     and cache headers; HEAD without a body; a POST is 405; an unknown path,
     and a path under an API route, 404 naming what the port serves;
  2. /api/v1/cluster: the cluster status object for one node (cluster null,
     self, active, the node object's fields); /api/v1/series and its
     `seconds`; bad query parameters 400 with a sentence;
  3. a session crashed by fault injection: its restart is on /metrics, in
     /api/v1/cluster and as a session_restart event with the session id;
  4. `brigade cluster status` (text and --json) answers for the single node;
     `brigade top --iterations 2` into a pipe prints two frames; with no node
     listening it exits 1 with a sentence.

usage: single_node_test.py BRIGADE
"""
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

BRIGADE = os.path.abspath(sys.argv[1])
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, headers, body


def metric(port, name):
    _, _, body = get(port, "/metrics")
    total, seen = 0.0, False
    for line in body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name:
            total += float(m.group(3))
            seen = True
    return total if seen else None


def main():
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", model], check=True,
                       capture_output=True)
        errf = open(os.path.join(d, "node.log"), "w")
        p = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "--api-port", "off", "--model",
                              model, "--store", "memory", "--node-name", "solo", "--fault-injection",
                              "--restart-backoff", "10ms"], stdout=subprocess.PIPE, stderr=errf, text=True)
        try:
            line = p.stdout.readline() if select.select([p.stdout], [], [], 30)[0] else ""
            m = re.match(r"brigade: listening on [0-9.]+:(\d+) metrics [0-9.]+:(\d+)", line)
            if not check(m is not None, f"the node starts ({line.strip()!r})"):
                return 1
            threading.Thread(target=p.stdout.read, daemon=True).start()
            addr, mp = f"127.0.0.1:{m.group(1)}", int(m.group(2))

            # 1. the page and its files
            st, h, body = get(mp, "/")
            check(st == 200 and h.get("content-type", "").startswith("text/html") and b"dashboard.js" in body,
                  f"/ is the page ({st}, {h.get('content-type')})")
            csp = h.get("content-security-policy", "")
            check("default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp,
                  f"the page forbids loading anything from elsewhere ({csp!r})")
            st, h, js = get(mp, "/chart.min.js")
            check(st == 200 and len(js) > 100000 and b"Chart.js v3" in js[:200] and "max-age" in h.get("cache-control", ""),
                  f"/chart.min.js is Debian's Chart.js, cached ({st}, {len(js)} bytes, {h.get('cache-control')})")
            for path, kind in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
                st, h, b = get(mp, path)
                check(st == 200 and h.get("content-type", "").startswith(kind) and len(b) > 1000,
                      f"{path} is served as {kind} ({st}, {len(b)} bytes)")
            st, h, b = get(mp, "/", "HEAD")
            check(st == 200 and b == b"" and int(h.get("content-length", 0)) > 1000,
                  f"HEAD / has the length and no body ({st}, {h.get('content-length')}, {len(b)})")
            st, h, b = get(mp, "/api/v1/cluster", "POST")
            check(st == 405 and "GET" in h.get("allow", ""), f"POST /api/v1/cluster is 405 ({st}, {b!r})")
            for path in ("/nope", "/api/v1/cluster/x", "/api/v1/seriesX"):
                st, _, b = get(mp, path)
                check(st == 404 and b"/api/v1/" in b, f"{path} is 404 naming what the port serves ({st})")

            # 2. the data
            st, h, b = get(mp, "/api/v1/cluster")
            c = json.loads(b)
            n = c["nodes"][0] if c.get("nodes") else {}
            check(st == 200 and h.get("content-type") == "application/json" and c["cluster"] is None and
                  c["self"] == "solo" and len(c["nodes"]) == 1 and n.get("state") == "active" and n.get("address") == addr,
                  f"/api/v1/cluster: one active node, no cluster ({b[:160]!r})")
            want = {"name", "address", "state", "model", "version", "capacity", "sessions", "queue_depth",
                    "tokens_per_second", "ttft_p50_seconds", "ttft_p99_seconds", "mean_batch_size",
                    "engine_busy_ratio", "kv_cache_usage_ratio", "session_restarts", "requests_rejected",
                    "heartbeat_age_seconds"}
            check(want <= set(n), f"the node object has the contract's fields (missing {sorted(want - set(n))})")
            for q, sentence in (("/api/v1/series?seconds=0", b"seconds must be a number from 1 to 600"),
                                ("/api/v1/series?seconds=abc", b"seconds must be a number"),
                                ("/api/v1/events?since=-1", b"since must be a number")):
                st, _, b = get(mp, q)
                check(st == 400 and sentence in b, f"{q} is 400 with a sentence ({st}, {b!r})")

            # 3. a crashed session: metrics, the node object and an event agree
            r = subprocess.run([BRIGADE, "chat", "--host", addr, "--open"], capture_output=True, text=True, timeout=30)
            sid, token = (r.stdout.split() + ["", ""])[:2]
            r = subprocess.run([BRIGADE, "chat", "--host", addr, "--session", sid, "--token", token, "-p", "hello",
                                "-n", "8"], capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, f"a turn in session {sid} ({r.stderr.strip()[-200:]})")
            f = subprocess.run([BRIGADE, "chat", "--host", addr, "--session", sid, "--token", token, "--fault"],
                               capture_output=True, text=True, timeout=30)
            check(f.returncode == 0, f"a fault crashes the session ({f.stderr.strip()[-200:]})")
            event, shown, restarts = None, None, None
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (event is None or shown != 1):
                evs = json.loads(get(mp, "/api/v1/events")[2])["events"]
                event = next((e for e in evs if e["kind"] == "session_restart" and e["session"] == sid), None)
                shown = json.loads(get(mp, "/api/v1/cluster")[2])["nodes"][0]["session_restarts"]
                restarts = metric(mp, "brigade_session_restarts_total")
                time.sleep(0.2)
            check(event is not None and event["node"] == "solo",
                  f"the restart is a session_restart event with the session ({event})")
            check(shown == 1 and restarts == 1, f"1 restart in /api/v1/cluster and on /metrics ({shown}, {restarts})")
            series = json.loads(get(mp, "/api/v1/series?seconds=3")[2])
            pts = series["nodes"]["solo"]["tokens_per_second"]
            check(1 <= len(pts) <= 4 and all(series["time"] - t < 3.01 for t, _ in pts),
                  f"/api/v1/series?seconds=3 has the last 3 seconds ({len(pts)} points)")
            whole = json.loads(get(mp, "/api/v1/series")[2])["nodes"]["solo"]["tokens_per_second"]
            check(any(v > 0 for _, v in whole), "the tokens/s series saw the turn")

            # 4. the terminal commands
            r = subprocess.run([BRIGADE, "cluster", "status", "--host", addr], capture_output=True, text=True, timeout=30)
            check(r.returncode == 0 and "single node (memory store" in r.stdout and "solo" in r.stdout,
                  f"cluster status answers for the single node ({r.stdout.strip()[:120]!r})")
            r = subprocess.run([BRIGADE, "cluster", "status", "--json", "--host", addr], capture_output=True, text=True,
                               timeout=30)
            j = json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else {}
            check(j.get("cluster", "x") is None and [x["name"] for x in j.get("nodes", [])] == ["solo"],
                  "cluster status --json: cluster null, the one node")
            r = subprocess.run([BRIGADE, "top", "--host", addr, "--iterations", "2"], capture_output=True, text=True,
                               timeout=30)
            frames = r.stdout.count("brigade top ")
            check(r.returncode == 0 and frames == 2 and r.stdout.count("single node (memory store)") == 2 and
                  "\x1b" not in r.stdout, f"top --iterations 2 into a pipe: two plain frames ({frames})")
            dead = free_port()
            r = subprocess.run([BRIGADE, "top", "--host", f"127.0.0.1:{dead}", "--iterations", "1"],
                               capture_output=True, text=True, timeout=30)
            check(r.returncode == 1 and f"127.0.0.1:{dead}" in r.stderr,
                  f"top with no node listening exits 1 with a sentence ({r.stderr.strip()[:160]!r})")
        finally:
            p.kill()
            p.wait()
    print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
