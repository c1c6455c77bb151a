#!/usr/bin/env python3
"""The live dashboard and `brigade top` against a real two-node cluster
(label `dashboard`): a real redis-server, nodes a and b, `brigade bench` over
both, then

  1. `brigade top --host b,a` in tmux (send-keys, capture-pane): both nodes,
     active, with the table's columns; the screen refreshes every second;
  2. the page in headless Chromium (tests/dashboard/page_test.mjs, one
     browser launch): loads with no console error and no request leaving
     loopback, shows both nodes, agrees with /metrics, charts advance, the
     node view, light and dark, 390x844 without sideways scrolling, and
     after kill -9 of b: b dead and a failover event within 10 s;
  3. top after b's death: it failed over to a and shows b dead; `q` quits it;
  4. top with no node listening: a sentence saying so, and it keeps trying.

Screenshots go to OUT (default: ./dashboard-screenshots under the working
directory). Exit 0 pass, 1 fail, 77 skip (no node/npm, chromium or tmux).

usage: dashboard_test.py BRIGADE [OUT]
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BRIGADE = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "dashboard-screenshots")
HERE = os.path.dirname(os.path.abspath(__file__))
failures = []
procs = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(name, store, model, logs):
    errf = open(os.path.join(logs, f"{name}.log"), "w")
    p = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "--api-port", "off", "--model", model,
                          "--store", store, "--node-name", name, "--threads", "1",
                          "--fault-injection", "--restart-backoff", "10ms"],
                         stdout=subprocess.PIPE, stderr=errf, text=True)
    procs.append(p)
    line = p.stdout.readline() if select.select([p.stdout], [], [], 30)[0] else ""
    m = re.match(r"brigade: listening on ([0-9.]+):(\d+) metrics ([0-9.]+):(\d+)", line)
    if not m:
        p.kill()
        raise RuntimeError(f"node {name} did not start: {line!r}")
    threading.Thread(target=p.stdout.read, daemon=True).start()
    return p, f"127.0.0.1:{m.group(2)}", int(m.group(4))


def wait_active(addr, names, timeout=20):
    """Polls `cluster status --json` through addr until exactly `names` are active; the last states."""
    t0 = time.monotonic()
    states = {}
    want = {n: "active" for n in names}
    while time.monotonic() - t0 < timeout and states != want:
        r = subprocess.run([BRIGADE, "cluster", "status", "--json", "--host", addr], capture_output=True, text=True)
        try:
            states = {n["name"]: n["state"] for n in json.loads(r.stdout.splitlines()[-1])["nodes"]}
        except (ValueError, IndexError, KeyError):
            states = {}
        time.sleep(0.2)
    return states


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, errors="replace")


def row(screen, name):
    for line in screen.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return parts
    return []


def main():
    for tool in ("node", "npm", "tmux", "redis-server"):
        if not shutil.which(tool):
            print(f"skip: {tool} not found (deploy/setup.sh installs it)")
            return 77
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        print("skip: chromium not found (apt-get install --no-install-recommends chromium; deploy/setup.sh does)")
        return 77
    nm = subprocess.run(["bash", os.path.join(HERE, "npm_install.sh")], capture_output=True, text=True)
    if nm.returncode != 0:
        print(nm.stderr)
        check(False, "playwright-core installs from npm (tests/dashboard/npm_install.sh)")
        return 1
    node_modules = nm.stdout.strip().splitlines()[-1]
    os.makedirs(OUT, exist_ok=True)
    t_all = time.monotonic()
    tmux_socket = f"brigade-dash-{os.getpid()}"
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", model], check=True,
                       capture_output=True)
        rport = free_port()
        subprocess.run(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", d,
                        "--save", "", "--logfile", os.path.join(d, "redis.log")], check=True)
        os.environ["TMUX_TMPDIR"] = d  # a private tmux server, gone with the folder
        try:
            for _ in range(100):
                if subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True,
                                  text=True).stdout.strip() == "PONG":
                    break
                time.sleep(0.05)
            store = f"redis://127.0.0.1:{rport}/0"
            a, a_addr, a_m = start_node("a", store, model, d)
            wait_active(a_addr, ["a"])
            # A session crashed by an injected fault while a is alone (so a owns it): a
            # restart for the page to show.
            r = subprocess.run([BRIGADE, "chat", "--host", a_addr, "--open"], capture_output=True, text=True, timeout=30)
            crashed, token = (r.stdout.split() + ["", ""])[:2]
            r = subprocess.run([BRIGADE, "chat", "--host", a_addr, "--session", crashed, "--token", token, "--fault"],
                               capture_output=True, text=True, timeout=30)
            check(r.returncode == 0, f"a fault crashes session {crashed} ({r.stderr.strip()[-200:]})")
            b, b_addr, b_m = start_node("b", store, model, d)
            # The load starts once both are active, so its sessions are placed on both.
            states = wait_active(a_addr, ["a", "b"])
            check(states == {"a": "active", "b": "active"}, f"a and b are active ({states})")
            load = subprocess.Popen([BRIGADE, "bench", "--host", f"{a_addr},{b_addr}", "--sessions", "12", "--turns",
                                     "100000", "-n", "16"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(load)

            # 1. top in tmux, over b then a.
            t = tmux("-L", tmux_socket, "new-session", "-d", "-s", "top", "-x", "150", "-y", "24",
                     f"{BRIGADE} top --host {b_addr},{a_addr}")
            check(t.returncode == 0, f"tmux starts brigade top ({t.stderr.strip()})")
            cap = lambda: tmux("-L", tmux_socket, "capture-pane", "-p", "-t", "top").stdout

            def screen_wait(pred, timeout):
                t0 = time.monotonic()
                s = ""
                while time.monotonic() - t0 < timeout:
                    s = cap()
                    if pred(s):
                        return True, s
                    time.sleep(0.2)
                return False, s

            ok, s1 = screen_wait(lambda s: row(s, "a")[1:2] == ["active"] and row(s, "b")[1:2] == ["active"], 20)
            check(ok, "top shows a and b active")
            check("TOKENS/S" in s1 and "TTFT p99" in s1 and "cluster brigade" in s1,
                  "top shows the cluster's name and the table's columns")
            clock = re.search(r"brigade top\s+(\d\d:\d\d:\d\d)", s1)
            ok, s2 = screen_wait(lambda s: (m := re.search(r"brigade top\s+(\d\d:\d\d:\d\d)", s)) and clock and
                                 m.group(1) != clock.group(1), 3)
            check(ok, "top refreshes within a second or two (its clock moved)")
            print("# top:\n" + "\n".join("    " + l for l in s1.rstrip().splitlines()), flush=True)

            # 2. the page (kills b at its end).
            env = dict(os.environ, NODE_MODULES=node_modules, URL_A=f"http://127.0.0.1:{a_m}",
                       METRICS_B=f"http://127.0.0.1:{b_m}", PID_B=str(b.pid), OUT=OUT, CHROMIUM=chromium,
                       CRASHED=crashed)
            t0 = time.monotonic()
            r = subprocess.run(["node", os.path.join(HERE, "page_test.mjs")], env=env, capture_output=True, text=True,
                               errors="replace", timeout=240)
            sys.stdout.write(r.stdout)
            if r.returncode != 0:
                failures.append("page_test.mjs")
                sys.stdout.write(r.stderr[-3000:])
            print(f"# page test {time.monotonic() - t0:.1f}s", flush=True)
            try:
                with open(os.path.join(OUT, "results.json")) as f:
                    print("# " + json.dumps(json.load(f)), flush=True)
            except OSError:
                pass

            # 3. top failed over to a, shows b dead, q quits.
            ok, s3 = screen_wait(lambda s: row(s, "a")[1:2] == ["active"] and
                                 (row(s, "b")[1:2] == ["dead"] or not row(s, "b")), 15)
            check(ok, "after kill -9 of b, top (which asked b first) shows a active and b dead, through a")
            if not ok:
                print(s3)
            tmux("-L", tmux_socket, "send-keys", "-t", "top", "q")
            gone = False
            for _ in range(30):
                if tmux("-L", tmux_socket, "has-session", "-t", "top").returncode != 0:
                    gone = True
                    break
                time.sleep(0.1)
            check(gone, "q quits top")

            # 4. nobody listening.
            dead_port = free_port()
            tmux("-L", tmux_socket, "new-session", "-d", "-s", "none", "-x", "150", "-y", "10",
                 f"{BRIGADE} top --host 127.0.0.1:{dead_port}")
            capn = lambda: tmux("-L", tmux_socket, "capture-pane", "-p", "-t", "none").stdout
            t0 = time.monotonic()
            s4 = ""
            while time.monotonic() - t0 < 10 and "no node answers" not in s4:
                s4 = capn()
                time.sleep(0.2)
            first = re.search(r"brigade top\s+(\d\d:\d\d:\d\d)", s4)
            t0 = time.monotonic()
            s5 = s4
            while time.monotonic() - t0 < 4 and first and first.group(1) in s5:
                s5 = capn()
                time.sleep(0.2)
            check(f"no node answers at 127.0.0.1:{dead_port}" in s4 and "retrying" in s4 and
                  "no node answers" in s5 and first is not None and first.group(1) not in s5,
                  f"with no node listening top says so and keeps trying (its clock moves) "
                  f"({s4.strip().splitlines()[1:2]})")
            tmux("-L", tmux_socket, "send-keys", "-t", "none", "q")
        finally:
            tmux("-L", tmux_socket, "kill-server")
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], capture_output=True)
    print(f"{len(failures)} failure(s) in {time.monotonic() - t_all:.0f}s; screenshots in {OUT}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
