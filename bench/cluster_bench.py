#!/usr/bin/env python3
"""Cluster failover benchmark (issue 13, section 7). Starts its own
redis-server (no persistence) on a free loopback port and three nodes a, b, c
on fixed loopback ports (the `tiny` preset, defaults otherwise), with
`brigade bench --sessions 48 -n 16` spread over the three as the load, and
measures:

- kill -9: per cycle a victim V (a, b, c in turn) owns a probe session (opened
  on V, one turn run there); a probe `brigade chat` (interactive, already
  connected to V with the other two as fallbacks, so no client start-up is
  counted) gets its next turn on stdin right after V is killed; the times from
  the kill to its first token and to its acknowledgement (the prompt coming
  back once the store acknowledged the turn) are the failover times. The same
  probe runs one turn just before the kill: the baseline on the same load.
  Also from the survivors' logs: kill -> V declared dead, and which node took
  the probe's session over after how many refusals; the probe's history must
  hold each turn once. V is restarted under its name on its port, and the next
  cycle waits until all three are active.
- SIGSTOP: time from SIGSTOP of V to V declared dead (the survivors' log line,
  and the first `cluster status` poll from a survivor that shows it dead);
  after SIGCONT, the time until V has rejoined and all three are active.
- soak: --soak-seconds at full load with the defaults; death declarations and
  suspicions in the node logs, and members not active in `cluster status`
  (sampled every few seconds and at the end): 0 expected.

The load is restarted before every kill and freeze so that every victim owns
its share of the 48 sessions (the load's clients stay where they failed over
to, so without a restart the restarted nodes would idle). The binary is copied
at start so that a rebuild during the run does not mix builds.
Targets: kill -9 -> first token p99 < 1 s; frozen node dead within 2 s;
0 false death declarations.
Prints a table and one JSON object as the last line.

usage: bench/cluster_bench.py [BRIGADE] [--kills 20] [--freezes 5] [--soak-seconds 600] [--json-out F]
                              [--log-dir D] [--seed S]
"""
import argparse
import datetime
import json
import math
import os
import platform
import queue
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("a", "b", "c")
LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z (\w+) (?:node=(\S+) )?(.*)$")
DEAD_RE = re.compile(r"member (\S+) \(incarnation (\w+)\) is declared dead")
SELF_DEAD_RE = re.compile(r"this node was declared dead")
SUSPECT_RE = re.compile(r"suspects member (\S+): (.*)")
INCARNATION_RE = re.compile(r"(?:joined cluster \S+ as \S+ \(incarnation (\w+)|rejoined as incarnation (\w+))")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    """Nearest-rank percentile (with 20 samples, p99 is the maximum)."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[max(0, math.ceil(p * len(xs)) - 1)]


def fmt(x):
    return "      -" if x is None else f"{x:7.3f}"


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def read_log(path):
    """(wall time, level, node, message) for every line of a node log."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_RE.match(line.rstrip("\n"))
                if m:
                    out.append((log_time(m.group(1)), m.group(2), m.group(3), m.group(4)))
    except FileNotFoundError:
        pass
    return out


class Cluster:
    def __init__(self, brigade, model, rport, workdir):
        self.brigade, self.model, self.workdir = brigade, model, workdir
        self.store = f"redis://127.0.0.1:{rport}"
        self.ports = {n: free_port() for n in NAMES}
        self.procs = {}
        self.metrics = {}
        self.starts = {n: 0 for n in NAMES}
        self.stopped = set()

    def log(self, name):
        return os.path.join(self.workdir, f"node-{name}.log")

    def addr(self, name):
        return f"127.0.0.1:{self.ports[name]}"

    def hosts(self, first=None):
        order = [first] + [n for n in NAMES if n != first] if first else list(NAMES)
        return ",".join(self.addr(n) for n in order)

    def start(self, name, attempts=20):
        """Starts `name` on its port and waits for its listening line."""
        for _ in range(attempts):
            self.starts[name] += 1
            with open(self.log(name), "a") as err:
                p = subprocess.Popen([self.brigade, "serve", "--port", str(self.ports[name]), "--metrics-port", "0",
                                      "--model", self.model, "--store", self.store, "--node-name", name,
                                      "--log-level", "info"], stdout=subprocess.PIPE, stderr=err, text=True)
            ready, _, _ = select.select([p.stdout], [], [], 30)
            line = p.stdout.readline() if ready else ""
            m = re.match(r"brigade: listening on [0-9.]+:(\d+) metrics [0-9.]+:(\d+)", line)
            if m:
                threading.Thread(target=lambda f=p.stdout: f.read(), daemon=True).start()
                self.procs[name] = p
                self.metrics[name] = int(m.group(2))
                return p
            p.kill()
            p.wait()
            time.sleep(0.5)  # e.g. the port not free yet after a kill -9
        raise RuntimeError(f"node {name} did not start; see {self.log(name)}")

    def signal(self, name, sig):
        os.kill(self.procs[name].pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped.add(name)
        elif sig == signal.SIGCONT:
            self.stopped.discard(name)

    def kill(self, name):
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def status(self, via=None, timeout=10):
        """The members from `cluster status --json` ({name: node object}), or None."""
        hosts = self.addr(via) if via else ",".join(self.addr(n) for n in NAMES if n in self.procs and n not in self.stopped)
        if not hosts:
            return None
        try:
            r = subprocess.run([self.brigade, "cluster", "status", "--host", hosts, "--json"], capture_output=True,
                               text=True, timeout=timeout)
            return {n["name"]: n for n in json.loads(r.stdout.strip().splitlines()[-1])["nodes"]}
        except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
            return None

    def wait_active(self, timeout=60):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st = self.status()
            if st and all(st.get(n, {}).get("state") == "active" for n in NAMES):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"not all nodes active after {timeout} s: {self.status()}")

    def tokens(self):
        """Sum of brigade_tokens_generated_total over the running nodes."""
        total = 0
        for n, p in self.procs.items():
            try:
                r = subprocess.run(["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{self.metrics[n]}/metrics"],
                                   capture_output=True, text=True, timeout=10)
                m = re.search(r"^brigade_tokens_generated_total (\S+)", r.stdout, re.M)
                total += float(m.group(1)) if m else 0
            except subprocess.TimeoutExpired:
                pass
        return total

    def stop_all(self):
        for n, p in list(self.procs.items()):
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for n, p in list(self.procs.items()):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


class Load:
    """`brigade bench` over the three nodes, until stopped."""

    def __init__(self, cluster, sessions, n, logpath):
        self.f = open(logpath, "a")
        self.p = subprocess.Popen([cluster.brigade, "bench", "--host", cluster.hosts(), "--sessions", str(sessions),
                                   "--turns", "1000000", "-n", str(n)], stdout=self.f, stderr=self.f)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()
        return self.p.returncode


class Probe:
    """An interactive `brigade chat` on one session, timestamping what it prints."""

    def __init__(self, brigade, hosts, sid, token, n):
        self.p = subprocess.Popen([brigade, "chat", "--host", hosts, "--session", sid, "--token", token, "-n", str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        """One reader for both pipes, so events keep the order they were read in
        (stdout first when both are ready: the client writes tokens before the prompt)."""
        fds = {self.p.stdout.fileno(): "out", self.p.stderr.fileno(): "err"}
        while fds:
            ready, _, _ = select.select(list(fds), [], [])
            now = time.monotonic()
            for fd in sorted(ready, key=lambda f: fds[f] != "out"):
                b = os.read(fd, 65536)
                self.q.put((now, fds[fd], b))
                if not b:
                    del fds[fd]
        self.q.put((time.monotonic(), "eof", b""))

    def wait_prompt(self, timeout):
        """Events up to the next "> " prompt on stderr (None on timeout or exit)."""
        events, err = [], b""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None, events
            events.append(ev)
            if ev[1] == "eof":
                return None, events
            if ev[1] == "err":
                err += ev[2]
                if err.endswith(b"> "):
                    return ev[0], events

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")

    def close(self):
        try:
            self.send("/quit")
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
            self.p.kill()
            self.p.wait()


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def deaths(cluster, since, until=None):
    """Death declarations in the node logs between two wall times:
    ({(member, incarnation): first wall time}, [self-declared (node, time)], [suspicions])."""
    declared, selfdead, suspects = {}, [], []
    for n in NAMES:
        for t, _lvl, node, msg in read_log(cluster.log(n)):
            if t < since or (until is not None and t > until):
                continue
            m = DEAD_RE.search(msg)
            if m:
                key = (m.group(1), m.group(2))
                declared[key] = min(declared.get(key, t), t)
            if SELF_DEAD_RE.search(msg):
                selfdead.append((node or n, t))
            m = SUSPECT_RE.search(msg)
            if m:
                suspects.append((node or n, m.group(1), m.group(2), t))
    return declared, selfdead, suspects


def incarnation(cluster, name):
    last = None
    for _t, _l, _n, msg in read_log(cluster.log(name)):
        m = INCARNATION_RE.search(msg)
        if m:
            last = m.group(1) or m.group(2)
    return last


def open_owned(cluster, victim, n):
    """A session opened on `victim` with one turn run there: (id, token)."""
    hosts = cluster.hosts(victim)
    r = run([cluster.brigade, "chat", "--host", hosts, "--open"])
    if r.returncode != 0:
        raise RuntimeError(f"chat --open failed: {r.stderr.strip()}")
    sid, token = r.stdout.split()[:2]
    r = run([cluster.brigade, "chat", "--host", hosts, "--session", sid, "--token", token, "-p", "hello there",
             "-n", str(n)])
    if r.returncode != 0:
        raise RuntimeError(f"first turn failed: {r.stderr.strip()}")
    return sid, token


def history_seqs(cluster, sid, token):
    r = run([cluster.brigade, "chat", "--host", cluster.hosts(), "--session", sid, "--token", token, "--history"])
    seqs = []
    for line in r.stdout.splitlines():
        try:
            seqs.append(json.loads(line)["seq"])
        except (ValueError, KeyError):
            pass
    return seqs


def warm_load(cluster, load_seconds):
    """Waits until the load produces tokens (at most load_seconds)."""
    t0 = time.monotonic()
    base = cluster.tokens()
    while time.monotonic() - t0 < load_seconds:
        time.sleep(0.5)
        if cluster.tokens() > base:
            return True
    return False


def kill_cycle(i, cluster, a, rng, workdir):
    victim = NAMES[i % len(NAMES)]
    cluster.wait_active()
    load = Load(cluster, a.sessions, a.n, os.path.join(workdir, "load.log"))
    rec = {"cycle": i, "victim": victim}
    probe = None
    try:
        warm_load(cluster, 10)
        time.sleep(1.0)  # the load's sessions settle on their nodes
        sid, token = open_owned(cluster, victim, a.n)
        rec["session"] = sid
        probe = Probe(cluster.brigade, cluster.hosts(victim), sid, token, a.n)
        if probe.wait_prompt(30)[0] is None:
            raise RuntimeError("the probe did not come up")
        # The same turn without a failure, on the same load: the baseline.
        t0 = time.monotonic()
        probe.send(f"probe turn before kill {i}")
        t_ack, events = probe.wait_prompt(a.turn_timeout)
        out = [e for e in events if e[1] == "out" and e[2] and e[0] >= t0]
        if t_ack is not None and out:
            rec["baseline_first_token_s"], rec["baseline_ack_s"] = out[0][0] - t0, t_ack - t0
        time.sleep(rng.uniform(0, 1.0))  # an arbitrary phase of the heartbeats and pings
        inc = incarnation(cluster, victim)
        rec["loadavg"] = os.getloadavg()[0]
        wall0, t0 = time.time(), time.monotonic()
        cluster.procs[victim].kill()
        probe.send(f"probe turn after kill {i}")
        t_ack, events = probe.wait_prompt(a.turn_timeout)
        cluster.procs.pop(victim).wait()
        out = [e for e in events if e[1] == "out" and e[2] and e[0] >= t0]
        errtext = b"".join(e[2] for e in events if e[1] == "err").decode(errors="replace")
        errtext = errtext[:-2] if errtext.endswith("> ") else errtext
        rec["first_token_s"] = out[0][0] - t0 if out and t_ack is not None and not errtext.strip() else None
        rec["ack_s"] = t_ack - t0 if t_ack is not None and not errtext.strip() else None
        rec["retried_midstream"] = any(b"[retrying]" in e[2] for e in out)
        if errtext.strip() or t_ack is None:
            rec["error"] = errtext.strip() or f"no acknowledgement within {a.turn_timeout} s"
        probe.close()
        probe = None
        seqs = history_seqs(cluster, sid, token)
        rec["history_seqs"] = seqs
        rec["lost"] = int(3 not in seqs) if rec.get("ack_s") is not None else 0
        rec["duplicated"] = len(seqs) - len(set(seqs))
        time.sleep(0.3)  # the survivors' log lines
        declared, _, _ = deaths(cluster, wall0 - 0.001)
        rec["incarnation"] = inc
        t_dead = declared.get((victim, inc))
        rec["declared_dead_s"] = t_dead - wall0 if t_dead is not None else None
        rec["other_deaths"] = sorted(f"{m}/{x}" for (m, x) in declared if (m, x) != (victim, inc))
        # Where the probe's session went: the node that took it over, and how often it was refused first.
        rec["taken_over_by"], rec["not_restored"] = None, 0
        for n in NAMES:
            for t, _l, _node, msg in read_log(cluster.log(n)):
                if t >= wall0 and f"session={sid} " in msg:
                    if "taken over" in msg and rec["taken_over_by"] is None:
                        rec["taken_over_by"] = n
                        rec["taken_over_s"] = t - wall0
                    elif "not restored" in msg:
                        rec["not_restored"] += 1
    finally:
        if probe:
            probe.close()
        load.stop()
    t1 = time.monotonic()
    cluster.start(victim)
    cluster.wait_active()
    rec["restart_to_active_s"] = time.monotonic() - t1  # process start, join, active
    return rec


def freeze_cycle(j, cluster, a, workdir):
    victim = NAMES[j % len(NAMES)]
    watcher = NAMES[(j + 1) % len(NAMES)]
    cluster.wait_active()
    load = Load(cluster, a.sessions, a.n, os.path.join(workdir, "load.log"))
    rec = {"cycle": j, "victim": victim}
    try:
        warm_load(cluster, 10)
        time.sleep(1.0)
        inc = incarnation(cluster, victim)
        rec["incarnation"] = inc
        rec["loadavg"] = os.getloadavg()[0]
        wall0, t0 = time.time(), time.monotonic()
        cluster.signal(victim, signal.SIGSTOP)
        polls = 0
        rec["status_dead_s"] = None
        while time.monotonic() - t0 < a.freeze_timeout:
            st = cluster.status(via=watcher, timeout=5)
            polls += 1
            if st and st.get(victim, {}).get("state") == "dead":
                rec["status_dead_s"] = time.monotonic() - t0
                break
            time.sleep(0.02)
        rec["status_polls"] = polls
        time.sleep(0.3)
        declared, _, suspects = deaths(cluster, wall0 - 0.001)
        t_dead = declared.get((victim, inc))
        rec["declared_dead_s"] = t_dead - wall0 if t_dead is not None else None
        sus = [s[3] - wall0 for s in suspects if s[1] == victim]
        rec["first_suspected_s"] = min(sus) if sus else None
        rec["other_deaths"] = sorted(f"{m}/{x}" for (m, x) in declared if (m, x) != (victim, inc))
        t1 = time.monotonic()
        cluster.signal(victim, signal.SIGCONT)
        cluster.wait_active(timeout=60)
        rec["cont_to_active_s"] = time.monotonic() - t1
        rec["new_incarnation"] = incarnation(cluster, victim)
    finally:
        if victim in cluster.stopped:
            cluster.signal(victim, signal.SIGCONT)
        load.stop()
    return rec


def soak(cluster, a, workdir):
    cluster.wait_active()
    wall0 = time.time()  # from the load's start (its burst of opens and first prefills included)
    load = Load(cluster, a.sessions, a.n, os.path.join(workdir, "load.log"))
    rec = {"seconds": a.soak_seconds}
    try:
        warm_load(cluster, 10)
        t0 = time.monotonic()
        tok0 = cluster.tokens()
        not_active, samples, loadavg = [], 0, []
        while time.monotonic() - t0 < a.soak_seconds:
            time.sleep(min(5.0, max(0.0, a.soak_seconds - (time.monotonic() - t0))))
            st = cluster.status()
            samples += 1
            if st is None:
                not_active.append("no status")
                continue
            for n in NAMES:
                s = st.get(n, {}).get("state")
                if s != "active":
                    not_active.append(f"{n}:{s}")
            loadavg.append(os.getloadavg()[0])
        tok1 = cluster.tokens()
        elapsed = time.monotonic() - t0
        st = cluster.status() or {}
        load_rc = load.p.poll()
    finally:
        load.stop()
    wall1 = time.time()  # everything up to the load's end counts
    declared, selfdead, suspects = deaths(cluster, wall0, wall1)
    rec.update({
        "wall_start": wall0,
        "seconds": elapsed,
        # a death shows as "member X is declared dead" on a peer, and as "this node was declared dead" on X
        "false_deaths": max(len(declared), len(selfdead)),
        "death_declarations": sorted(f"{m}/{x}" for (m, x) in declared),
        "self_declared_dead": [n for n, _ in selfdead],
        "suspicions": len(suspects),
        "suspicion_reasons": sorted({s[2] for s in suspects})[:10],
        "dead_in_status_at_end": sum(1 for n in st.values() if n.get("state") == "dead"),
        "not_active_in_status_at_end": sorted(n for n, v in st.items() if v.get("state") != "active"),
        "status_samples": samples,
        "not_active_samples": not_active[:20],
        "tokens_per_second": (tok1 - tok0) / elapsed if elapsed > 0 else 0,
        "engine_busy_ratio": {n: v.get("engine_busy_ratio") for n, v in st.items()},
        "load_exited_early": load_rc is not None,
        "loadavg_1min_mean": sum(loadavg) / len(loadavg) if loadavg else None,
        "loadavg_1min_max": max(loadavg) if loadavg else None,
    })
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brigade", nargs="?", default=os.path.join(ROOT, "build", "app", "brigade"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--freezes", type=int, default=5)
    ap.add_argument("--soak-seconds", type=float, default=600)
    ap.add_argument("--sessions", type=int, default=48)
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--turn-timeout", type=float, default=30, help="seconds to wait for a probe turn's ack")
    ap.add_argument("--freeze-timeout", type=float, default=20, help="seconds to wait for a frozen node's death")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--log-dir", help="keep the node logs here (default: a temporary directory, removed)")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    rng = random.Random(a.seed)

    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = [l[3:] for l in run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).stdout.splitlines()]
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    machine = {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "loadavg_at_start": os.getloadavg()[0]}
    try:
        binary_built = datetime.datetime.fromtimestamp(os.path.getmtime(a.brigade), datetime.timezone.utc).isoformat()
    except OSError:
        binary_built = None

    tmp = None
    if a.log_dir:
        workdir = os.path.abspath(a.log_dir)
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="cluster_bench.")
        workdir = tmp.name
    # One build for the whole run, even if it is rebuilt meanwhile.
    brigade = os.path.join(workdir, "brigade")
    for attempt in range(30):
        try:
            shutil.copy2(a.brigade, brigade)
            break
        except (FileNotFoundError, OSError):
            if attempt == 29:
                raise
            time.sleep(1)
    cache = os.path.join(os.environ.get("BRIGADE_CACHE_DIR", os.path.expanduser("~/.cache/brigade")), "models")
    os.makedirs(cache, exist_ok=True)
    model = os.path.join(cache, "tiny-f16-seed3.gguf")
    if not os.path.exists(model):
        subprocess.run([brigade, "model", "synth", "--preset", "tiny", "--seed", "3", "-o", model], check=True,
                       capture_output=True)

    rport = free_port()
    subprocess.run(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", workdir,
                    "--save", "", "--appendonly", "no", "--logfile", os.path.join(workdir, "redis.log")], check=True)
    for _ in range(50):
        if run(["redis-cli", "-p", str(rport), "ping"]).stdout.strip() == "PONG":
            break
        time.sleep(0.1)
    cluster = Cluster(brigade, model, rport, workdir)
    kills, freezes, soaked, unexpected = [], [], None, []
    startup = {}
    try:
        wall_start = time.time()
        for n in NAMES:  # one after the other: see startup_deaths in the output
            cluster.start(n)
        startup["all_active_s"] = cluster.wait_active()
        d, s, _ = deaths(cluster, wall_start)
        startup["deaths"] = sorted(f"{m}/{x}" for (m, x) in d)
        startup["self_declared_dead"] = [n for n, _ in s]
        print(f"cluster bench: 3 nodes on {', '.join(cluster.addr(n) for n in NAMES)}, redis 127.0.0.1:{rport}, "
              f"logs in {workdir}", flush=True)
        wall_cycles = time.time()
        for i in range(a.kills):
            r = kill_cycle(i, cluster, a, rng, workdir)
            kills.append(r)
            print(f"kill {i + 1:2d}/{a.kills} {r['victim']}: first token {fmt(r.get('first_token_s'))} s, "
                  f"ack {fmt(r.get('ack_s'))} s, declared dead {fmt(r.get('declared_dead_s'))} s, "
                  f"restart -> active {fmt(r.get('restart_to_active_s'))} s, taken over by {r.get('taken_over_by')}"
                  f" after {r.get('not_restored')} refusals"
                  + (f", ERROR {r['error']}" if r.get("error") else "")
                  + (f", other deaths {r['other_deaths']}" if r.get("other_deaths") else ""), flush=True)
        for j in range(a.freezes):
            r = freeze_cycle(j, cluster, a, workdir)
            freezes.append(r)
            print(f"freeze {j + 1}/{a.freezes} {r['victim']}: suspected {fmt(r.get('first_suspected_s'))} s, "
                  f"declared dead {fmt(r.get('declared_dead_s'))} s, seen dead in status {fmt(r.get('status_dead_s'))}"
                  f" s, SIGCONT -> active {fmt(r.get('cont_to_active_s'))} s"
                  + (f", other deaths {r['other_deaths']}" if r.get("other_deaths") else ""), flush=True)
        # Every declaration from the first kill to the last freeze that is not of a victim's killed or
        # frozen incarnation is a false one (between cycles too, not only within them).
        expected = {(r["victim"], r.get("incarnation")) for r in kills + freezes}
        if a.soak_seconds > 0:
            print(f"soak: {a.soak_seconds:.0f} s at full load...", flush=True)
            soaked = soak(cluster, a, workdir)
        wall_soak = soaked["wall_start"] if soaked else time.time()
        declared, _, _ = deaths(cluster, wall_cycles, wall_soak)
        unexpected = sorted(f"{m}/{x}" for (m, x) in declared if (m, x) not in expected)
    finally:
        cluster.stop_all()
        run(["redis-cli", "-p", str(rport), "shutdown", "nosave"])

    machine["loadavg_at_end"] = os.getloadavg()[0]
    cyc = [r["loadavg"] for r in kills + freezes if r.get("loadavg") is not None]
    machine["loadavg_during_cycles_mean"] = sum(cyc) / len(cyc) if cyc else None

    def col(rs, k):
        return [r.get(k) for r in rs]

    def stats(rs, k):
        xs = [x for x in col(rs, k) if x is not None]
        return {"n": len(xs), "p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "max": max(xs) if xs else None}

    figures = {
        "kill_to_first_token": stats(kills, "first_token_s"),
        "kill_to_ack": stats(kills, "ack_s"),
        "kill_to_declared_dead": stats(kills, "declared_dead_s"),
        "restart_to_all_active": stats(kills, "restart_to_active_s"),
        "no_kill_first_token": stats(kills, "baseline_first_token_s"),
        "no_kill_ack": stats(kills, "baseline_ack_s"),
        "sigstop_to_suspected": stats(freezes, "first_suspected_s"),
        "sigstop_to_declared_dead": stats(freezes, "declared_dead_s"),
        "sigstop_to_dead_in_status": stats(freezes, "status_dead_s"),
        "sigcont_to_all_active": stats(freezes, "cont_to_active_s"),
    }
    failed = sum(1 for r in kills if r.get("error"))
    lost = sum(r.get("lost", 0) for r in kills)
    dup = sum(r.get("duplicated", 0) for r in kills)
    other = sorted(set(unexpected) | {d for r in kills + freezes for d in r.get("other_deaths", [])})

    print(f"\ncluster failover, tiny (F16), 3 nodes, load: bench --sessions {a.sessions} -n {a.n} over the three, "
          f"commit {commit}{' (+ uncommitted changes)' if dirty else ''}, {machine['nproc']} CPUs ({machine['cpu']}), "
          f"1-min load average {machine['loadavg_at_start']:.1f} at start, "
          f"{machine['loadavg_during_cycles_mean'] or 0:.1f} mean at the kills and freezes")
    print(f"{'figure':>42}  {'n':>3}  {'p50':>7}  {'p99':>7}  {'max':>7}  target")
    rows = (("kill -9 -> first token of re-sent turn", "kill_to_first_token", "p99 < 1 s"),
            ("kill -9 -> ack of re-sent turn", "kill_to_ack", "(reported)"),
            ("same probe, no kill: first token", "no_kill_first_token", "(baseline)"),
            ("same probe, no kill: ack", "no_kill_ack", "(baseline)"),
            ("kill -9 -> declared dead (survivor log)", "kill_to_declared_dead", ""),
            ("restart under same name -> all active", "restart_to_all_active", ""),
            ("SIGSTOP -> first suspicion (log)", "sigstop_to_suspected", ""),
            ("SIGSTOP -> declared dead (survivor log)", "sigstop_to_declared_dead", "< 2 s"),
            ("SIGSTOP -> dead in cluster status poll", "sigstop_to_dead_in_status", ""),
            ("SIGCONT -> rejoined, all active", "sigcont_to_all_active", "(rejoin backoff 5 s)"))
    for label, k, target in rows:
        f = figures[k]
        print(f"{label:>42}  {f['n']:3d}  {fmt(f['p50'])}  {fmt(f['p99'])}  {fmt(f['max'])}  {target}")
    print(f"\nprobe turns: {len(kills)}, failed {failed}, lost {lost}, duplicated {dup}; the probe is an interactive "
          f"`brigade chat` connected to the victim before the kill (no client start-up counted); p99 of "
          f"{len(kills)} samples is nearest-rank")
    print(f"unexpected death declarations during kills and freezes: {len(other)} {other if other else ''}")
    if startup.get("deaths") or startup.get("self_declared_dead"):
        print(f"death declarations while the three nodes started: {startup['deaths']} "
              f"(self-declared: {startup['self_declared_dead']})")
    if soaked:
        print(f"soak {soaked['seconds']:.0f} s at {soaked['tokens_per_second']:.0f} tokens/s: false death declarations "
              f"{soaked['false_deaths']} (target 0) {soaked['death_declarations'] or ''}, suspicions "
              f"{soaked['suspicions']}, dead in cluster status at the end {soaked['dead_in_status_at_end']}, "
              f"not-active samples {len(soaked['not_active_samples'])}, load average "
              f"{soaked['loadavg_1min_mean'] or 0:.1f} mean")
    ft = figures["kill_to_first_token"]["p99"]
    fd = figures["sigstop_to_declared_dead"]["max"]
    res = {"benchmark": "cluster", "model": os.path.basename(model), "nodes": 3, "sessions": a.sessions,
           "max_tokens": a.n, "kills": a.kills, "freezes": a.freezes, "commit": commit, "uncommitted": dirty, "binary_built": binary_built,
           "machine": machine, "figures": figures, "probe_failed": failed, "probe_lost": lost,
           "probe_duplicated": dup, "unexpected_deaths": other, "startup": startup, "soak": soaked,
           "targets": {"kill_to_first_token_p99_under_1s": ft is not None and ft < 1.0 and failed == 0,
                       "frozen_declared_dead_within_2s": fd is not None and fd < 2.0 and
                       figures["sigstop_to_declared_dead"]["n"] == len(freezes),
                       "zero_false_deaths": soaked is not None and soaked["false_deaths"] == 0 and not other},
           "kill_cycles": kills, "freeze_cycles": freezes}
    line = json.dumps(res)
    print(line)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(line + "\n")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
