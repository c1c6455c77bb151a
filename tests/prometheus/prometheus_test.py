#!/usr/bin/env python3
"""deploy/prometheus/brigade-rules.yml in a real Prometheus scraping real
nodes (label scaling): a redis-server of its own, two `brigade serve` nodes a
and b on it (tiny model, --max-batch 4 so that turns queue, --ttft-target 1ms
so that every real turn misses the objective, --max-replicas 5,
--scale-interval 1s), and `prometheus` scraping both every second with the
rules loaded, every `for:` shortened to 2s (a YAML copy, not a second set of
rules).

Under a load of `brigade bench` over a and b:
  1. both targets are up; brigade:tokens_per_second:sum > 0;
     brigade:ttft_target_seconds:min is the nodes' 1 ms;
  2. brigade:desired_replicas:max equals the largest
     brigade_cluster_desired_replicas read from the nodes' own /metrics
     around the query, is above 2 and at most --max-replicas (5), also as
     max_over_time over the run; a and b export the same number;
  3. BrigadeTTFTAboveObjective fires; BrigadeStoreDown and BrigadeNodeDown
     do not; every rule evaluates without error.
Then:
  4. kill -9 of b: BrigadeNodeDown fires for b (and BrigadeMemberDead from
     a's table) within a bound; the time is printed;
  5. SIGSTOP of redis-server: BrigadeStoreDown fires for a within a bound,
     and a still answers scrapes.
Every process is killed at the end, failed or not. Exit 77 (skipped) when
prometheus, redis-server or python3-yaml is missing.

usage: prometheus_test.py BRIGADE
"""
import atexit
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
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "prometheus", "brigade-rules.yml"))
SHORT_FOR = "2s"     # every alert's `for:` in the test's copy of the rules
MAX_REPLICAS = 5
NODE_FLAGS = ["--max-batch", "4", "--ttft-target", "1ms", "--max-replicas", str(MAX_REPLICAS),
              "--scale-interval", "1s", "--scale-down-window", "5min", "--api-port", "off"]
NODE_DOWN_BOUND_S = 15   # kill -9 to BrigadeNodeDown firing: scrape 1s + for 2s + evaluation 1s, with margin
STORE_DOWN_BOUND_S = 20  # SIGSTOP of Redis to BrigadeStoreDown: + a missed heartbeat (1s)

BRIGADE = None
failures = []
started = []  # every process, killed at exit whatever happens


def kill_all():
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a stopped redis-server
            p.kill()
            p.wait()


atexit.register(kill_all)


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def skip(why):
    print(f"skip: {why}", flush=True)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout, interval=0.25):
    """Poll fn() until it returns something true; (that value or the last, seconds waited)."""
    t0 = time.monotonic()
    v = None
    while True:
        try:
            v = fn()
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            v = None
        if v or time.monotonic() - t0 >= timeout:
            return v, time.monotonic() - t0
        time.sleep(interval)


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Node:
    """One `brigade serve` process; its stderr goes to a log file."""

    def __init__(self, name, store, model, logs):
        self.name = name
        self.log = os.path.join(logs, name + ".log")
        with open(self.log, "w") as errf:
            self.p = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "--model", model,
                                       "--store", store, "--node-name", name, *NODE_FLAGS],
                                      stdout=subprocess.PIPE, stderr=errf, text=True, errors="replace")
        started.append(self.p)
        line = self.p.stdout.readline() if select.select([self.p.stdout], [], [], 30)[0] else ""
        m = re.match(r"brigade: listening on ([0-9.]+):(\d+) metrics ([0-9.]+):(\d+)", line)
        if not m:
            self.p.kill()
            self.p.wait()
            raise RuntimeError(f"node {name} did not start: {line!r}\n{self.stderr()[-2000:]}")
        self.addr = f"127.0.0.1:{m.group(2)}"
        self.metrics = f"127.0.0.1:{m.group(4)}"  # also its `instance` label in Prometheus
        threading.Thread(target=self.p.stdout.read, daemon=True).start()  # drain stdout

    def stderr(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def metric(self, name):
        """The value of the unlabelled sample `name` on the node's /metrics; None if absent or unreachable."""
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == name:
                return float(parts[1])
        return None


def cluster_active(node, n):
    r = subprocess.run([BRIGADE, "cluster", "status", "--host", node.addr, "--json"], capture_output=True, text=True,
                       errors="replace", timeout=20)
    try:
        st = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    return sum(1 for x in st["nodes"] if x["state"] == "active") == n


def short_rules(path):
    """brigade-rules.yml with every `for:` set to SHORT_FOR, written to path; (alerts, rewritten)."""
    import yaml
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    alerts = rewritten = 0
    for g in doc["groups"]:
        for r in g["rules"]:
            alerts += "alert" in r
            if "for" in r:
                r["for"] = SHORT_FOR
                rewritten += 1
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=1000)
    return alerts, rewritten


class Prometheus:
    def __init__(self, d, targets):
        import yaml
        self.dir = d
        self.rules = os.path.join(d, "rules.yml")
        self.alerts_with_for = short_rules(self.rules)
        self.config = os.path.join(d, "prometheus.yml")
        cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
               "rule_files": [self.rules],
               "scrape_configs": [{"job_name": "brigade", "static_configs": [{"targets": targets}]}]}
        with open(self.config, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(d, "prometheus.log")
        self.p = None

    def start(self):
        with open(self.log, "w") as logf:
            self.p = subprocess.Popen(["prometheus", f"--config.file={self.config}",
                                       f"--storage.tsdb.path={os.path.join(self.dir, 'tsdb')}",
                                       f"--web.listen-address=127.0.0.1:{self.port}"],
                                      stdout=logf, stderr=subprocess.STDOUT)
        started.append(self.p)

        def ready():
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        return wait_for(ready, 15, 0.1)

    def query(self, expr):
        """The instant vector of expr as [(labels, value)] (an error raises ValueError)."""
        res = http_json(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if res.get("status") != "success":
            raise ValueError(f"query {expr!r}: {res}")
        return [(s["metric"], float(s["value"][1])) for s in res["data"]["result"]]

    def scalar(self, expr):
        """The value of a one-sample result; None when empty."""
        v = self.query(expr)
        return v[0][1] if len(v) == 1 else None

    def alerts(self, name=None, state=None):
        got = http_json(self.url + "/api/v1/alerts")["data"]["alerts"]
        return [a for a in got if (name is None or a["labels"].get("alertname") == name) and
                (state is None or a["state"] == state)]

    def firing(self, name, **labels):
        return [a for a in self.alerts(name, "firing") if all(a["labels"].get(k) == v for k, v in labels.items())]

    def rules_health(self):
        """[(name, health, lastError)] of every rule."""
        groups = http_json(self.url + "/api/v1/rules")["data"]["groups"]
        return [(r["name"], r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]]

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Load:
    """`brigade bench` over the nodes, run after run, until end()."""

    def __init__(self, nodes):
        self.hosts = ",".join(n.addr for n in nodes)
        self.mu = threading.Lock()
        self.stopping = False
        self.proc = None
        self.runs = []  # (rc, summary dict)
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while True:
            with self.mu:
                if self.stopping:
                    return
                self.proc = subprocess.Popen([BRIGADE, "bench", "--host", self.hosts, "--sessions", "48", "--turns",
                                              "4", "-n", "32", "--json"], stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True, errors="replace")
                started.append(self.proc)
            out, _ = self.proc.communicate()
            res = {}
            try:
                res = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                pass
            self.runs.append((self.proc.returncode, res))

    def end(self):
        with self.mu:
            self.stopping = True
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
        self.t.join(timeout=10)


class Sampler:
    """max(brigade_cluster_desired_replicas) over the nodes' own /metrics, every 0.2 s: [(t, a, b)]."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.samples = []
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping.is_set():
            vals = [n.metric("brigade_cluster_desired_replicas") for n in self.nodes]
            self.samples.append((time.monotonic(), *vals))
            self.stopping.wait(0.2)

    def max_since(self, t0):
        """The node-side max of every sample taken since t0 (one per sample with every node answering)."""
        return [max(v) for t, *v in self.samples if t >= t0 and None not in v]

    def end(self):
        self.stopping.set()
        self.t.join(timeout=5)


def under_load(prom, a, b, sampler):
    print("# 1-3. under load", flush=True)
    up, s = wait_for(lambda: len([v for _, v in prom.query('up{job="brigade"}') if v == 1]) == 2, 20)
    check(up, f"Prometheus scrapes both nodes: up{{job=\"brigade\"}} is 1 for a and b ({s:.1f}s after start)")
    tps, s = wait_for(lambda: prom.scalar("brigade:tokens_per_second:sum"), 20)
    check(tps is not None and tps > 0, f"brigade:tokens_per_second:sum > 0 ({tps}, after {s:.1f}s)")
    target = prom.scalar("brigade:ttft_target_seconds:min")
    check(target is not None and abs(target - 0.001) < 1e-12,
          f"brigade:ttft_target_seconds:min is the nodes' --ttft-target 1ms ({target})")

    desired, s = wait_for(lambda: (prom.scalar("brigade:desired_replicas:max") or 0) > 2, 20)
    q = prom.scalar("brigade:desired_replicas:max")
    check(desired and q is not None and 2 < q <= MAX_REPLICAS,
          f"brigade:desired_replicas:max is above 2 and at most --max-replicas {MAX_REPLICAS} under this load "
          f"({q}, after {s:.1f}s)")
    # Prometheus' value is at most a scrape (1 s) and an evaluation (1 s) old:
    # it must be one the nodes exported in the 3 s before the query or just after.
    match = None
    for _ in range(8):
        t0 = time.monotonic()
        q = prom.scalar("brigade:desired_replicas:max")
        time.sleep(0.5)
        seen = sampler.max_since(t0 - 3)
        if q is not None and q in seen:
            match = (q, sorted(set(seen)))
            break
        time.sleep(0.5)
    check(match is not None, f"brigade:desired_replicas:max equals max(brigade_cluster_desired_replicas) read from "
                             f"a's and b's /metrics around the query ({match or (q, sampler.max_since(t0 - 3))})")
    same, _ = wait_for(lambda: (lambda v: None not in v and v[0] == v[1] and v)(
        [n.metric("brigade_cluster_desired_replicas") for n in (a, b)]), 5)
    check(bool(same), f"a and b export the same brigade_cluster_desired_replicas ({same})")

    firing, s = wait_for(lambda: prom.firing("BrigadeTTFTAboveObjective"), 20)
    check(bool(firing), f"BrigadeTTFTAboveObjective fires under load with a 1 ms objective (after {s:.1f}s; "
                        f"p99 {prom.scalar('brigade:ttft_seconds:p99')}s)")
    for name in ("BrigadeStoreDown", "BrigadeNodeDown", "BrigadeMemberDead"):
        got = prom.alerts(name)
        check(not got, f"{name} is neither pending nor firing while Redis and both nodes are up ({got})")
    health = prom.rules_health()
    bad = [r for r in health if r[1] != "ok"]
    check(health and not bad, f"all {len(health)} rules evaluate without error ({bad})")
    most = prom.scalar("max_over_time(brigade:desired_replicas:max[5m])")
    check(most is not None and most <= MAX_REPLICAS,
          f"max_over_time(brigade:desired_replicas:max[5m]) is at most {MAX_REPLICAS} ({most})")


def node_down(prom, a, b):
    print("# 4. kill -9 of b", flush=True)
    b.p.kill()
    b.p.wait()
    t0 = time.monotonic()
    got, s = wait_for(lambda: prom.firing("BrigadeNodeDown", instance=b.metrics), NODE_DOWN_BOUND_S + 5)
    print(f"# BrigadeNodeDown fired {s:.1f}s after kill -9 of b" if got else "# BrigadeNodeDown did not fire",
          flush=True)
    check(got and s <= NODE_DOWN_BOUND_S, f"BrigadeNodeDown fires for b ({b.metrics}) within {NODE_DOWN_BOUND_S}s "
                                          f"of kill -9 ({s:.1f}s; for: {SHORT_FOR})")
    others = [x["labels"]["instance"] for x in prom.alerts("BrigadeNodeDown")]
    check(others == [b.metrics], f"BrigadeNodeDown names b alone ({others})")
    dead, _ = wait_for(lambda: prom.firing("BrigadeMemberDead"), max(1.0, NODE_DOWN_BOUND_S - (time.monotonic() - t0)))
    check(bool(dead), f"BrigadeMemberDead fires from a's membership table "
                      f"({time.monotonic() - t0:.1f}s after kill -9)")
    check(prom.scalar("brigade:nodes_up:count") == 1, f"brigade:nodes_up:count is 1 "
                                                      f"({prom.scalar('brigade:nodes_up:count')})")


def store_down(prom, a, redis):
    print("# 5. SIGSTOP of redis-server", flush=True)
    redis.send_signal(signal.SIGSTOP)
    got, s = wait_for(lambda: prom.firing("BrigadeStoreDown", instance=a.metrics), STORE_DOWN_BOUND_S + 5)
    print(f"# BrigadeStoreDown fired {s:.1f}s after SIGSTOP of redis-server" if got else
          "# BrigadeStoreDown did not fire", flush=True)
    check(got and s <= STORE_DOWN_BOUND_S, f"BrigadeStoreDown fires for a ({a.metrics}) within {STORE_DOWN_BOUND_S}s "
                                           f"of SIGSTOP of Redis ({s:.1f}s; a exports brigade_store_up "
                                           f"{a.metric('brigade_store_up')})")
    up = [v for m, v in prom.query('up{job="brigade"}') if m.get("instance") == a.metrics]
    check(up == [1], f"a still answers scrapes while cut off from Redis (up {up})")


def main():
    global BRIGADE
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    BRIGADE = sys.argv[1]
    try:
        import yaml  # noqa: F401
    except ImportError:
        skip("python3-yaml not installed (deploy/setup.sh installs it)")
    for tool in ("prometheus", "redis-server", "redis-cli"):
        if not subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).stdout.strip():
            skip(f"{tool} not found (deploy/setup.sh installs it)")
    t0 = time.monotonic()
    nodes, prom, load, sampler = [], None, None, None
    with tempfile.TemporaryDirectory() as d:
        try:
            model = os.path.join(d, "tiny.gguf")
            subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", model], check=True,
                           capture_output=True)
            rport = free_port()
            redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                      "--dir", d, "--logfile", os.path.join(d, "redis.log")])
            started.append(redis)
            wait_for(lambda: subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True,
                                            text=True).stdout.strip() == "PONG", 10, 0.05)
            store = f"redis://127.0.0.1:{rport}/0"
            a = Node("a", store, model, d)
            b = Node("b", store, model, d)
            nodes = [a, b]
            ok, s = wait_for(lambda: cluster_active(a, 2), 15)
            check(ok, f"a and b are active members ({s:.1f}s)")

            prom = Prometheus(d, [a.metrics, b.metrics])
            alerts, rewritten = prom.alerts_with_for
            check(alerts >= 5 and rewritten == alerts,
                  f"the test's copy of brigade-rules.yml has every alert's for: set to {SHORT_FOR} "
                  f"({rewritten} of {alerts})")
            if subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True).stdout.strip():
                r = subprocess.run(["promtool", "check", "config", prom.config], capture_output=True, text=True)
                check(r.returncode == 0, f"promtool check config accepts the test's configuration and rules "
                                         f"{(r.stdout + r.stderr).strip()[-300:] if r.returncode else ''}")
            ready, s = prom.start()
            check(ready, f"prometheus answers /-/ready ({s:.1f}s)")
            load = Load(nodes)
            sampler = Sampler(nodes)
            under_load(prom, a, b, sampler)
            load.end()
            runs = [r for r in load.runs if r[0] == 0]
            print(f"# load: {len(load.runs)} bench run(s) ended, {len(runs)} complete; the last: "
                  f"{runs[-1][1] if runs else None}", flush=True)
            sampler.end()
            node_down(prom, a, b)
            store_down(prom, a, redis)
        except Exception as e:  # a check that could not run is a failure
            check(False, f"the test raised {type(e).__name__}: {e}")
        finally:
            for x in (load, sampler):
                if x:
                    x.end()
            if prom:
                prom.stop()
            kill_all()
            if failures:
                for path in [n.log for n in nodes] + ([prom.log] if prom else []):
                    if os.path.exists(path):
                        with open(path, errors="replace") as f:
                            print(f"--- {os.path.basename(path)} (tail)\n" + f.read()[-2500:], flush=True)
    print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
