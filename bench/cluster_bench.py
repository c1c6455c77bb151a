#!/usr/bin/env python3
"""Cluster benchmark (issue 13: section 7, failover; section 5, placement,
forwarding and drain). Starts its own redis-server (no persistence) on a free
loopback port, and for each configuration fresh nodes on loopback ports in a
fresh Redis database. The parts (`--part`, comma-separated, default all; each
prints a table and adds a key to the JSON line):

- forwarding: nodes a (capacity 1) and b (`--capacity 0`, so every session is
  placed on a), `small` preset; two `brigade bench` processes at the same
  time, half the sessions with `--host a` (the owner) and half with `--host b`
  (every turn forwarded to a). Tokens/s and TTFT p50/p99 of each, b against
  a; --fwd-repeats fresh runs and the median. Checks that every session's meta
  owner is a and that b forwarded every turn of its half.
  Targets: b's tokens/s at least 0.9 of a's, b's TTFT p50 at most 5 ms more.
- scaling: `bench --sessions 32` over 1, 2 and 3 nodes (a fresh cluster of that
  many each time): tokens/s, TTFT, the share of turns forwarded. On a 2-core
  machine this shows the overhead, not scaling.
- balance: 3 nodes, `bench --host a,b,c --sessions 1000 --turns 1 -n 1` (the
  client's user u enters through node u mod 3), then the `owner` of every
  session meta in Redis: with equal capacities, busiest / least busy <= 1.3;
  with capacities 1, 1, 2, c holds half within 15% (425..575 of 1000).
- drain: 3 nodes with an admin token file, `bench --host a,b,c --verify` as
  load; c is drained with `brigade cluster drain` (through a survivor), then
  (c restarted) b with SIGTERM. Per round: the command's time, the node's
  exit code and time to exit, its `handoffs{reason="drain"}` (scraped every
  50 ms until it stops answering), and the load's errors, lost and duplicated
  turns (target 0). Before each drain, --drain-probes sessions owned by the
  victim get --drain-history turns through interactive `brigade chat`
  clients that enter through a survivor; each probe's last turn before the
  drain and its first turn after it (restored from Redis and re-prefilled on
  its new owner) are timed: first token and acknowledgement, with the prompt
  tokens from the stored history.
- failover (part 1, with placement on):
  - kill -9: per cycle a victim V (a, b, c in turn) owns a probe session (opened
    through V until the meta's owner in Redis is V, one turn run there); a
    probe `brigade chat` (interactive, already connected to V with the other
    two as fallbacks, so no client start-up is counted) gets its next turn on
    stdin right after V is killed; the times from the kill to its first token
    and to its acknowledgement (the prompt coming back once the store
    acknowledged the turn) are the failover times. The same probe runs one
    turn just before the kill: the baseline on the same load. Also from the
    survivors' logs: kill -> V declared dead, and which node took the probe's
    session over after how many refusals; the probe's history must hold each
    turn once. V is restarted under its name on its port, and the next cycle
    waits until all three are active.
  - SIGSTOP: time from SIGSTOP of V to V declared dead (the survivors' log line,
    and the first `cluster status` poll from a survivor that shows it dead);
    after SIGCONT, the time until V has rejoined and all three are active.
  - soak: --soak-seconds at full load with the defaults; death declarations and
    suspicions in the node logs, and members not active in `cluster status`
    (sampled every few seconds and at the end): 0 expected.
  Three nodes a, b, c, the `tiny` preset, `brigade bench --sessions 48 -n 16`
  spread over the three as the load, restarted before every kill and freeze
  so that every victim owns its share of the 48 sessions (the load's clients
  stay where they failed over to, so without a restart the restarted nodes
  would idle).
  Targets: kill -9 -> first token p99 < 1 s; frozen node dead within 2 s;
  0 false death declarations.

The binary is copied at start so that a rebuild during the run does not mix
builds. Prints the tables and one JSON object as the last line; with --check,
exits 1 when a target of a part that ran is missed.

usage: bench/cluster_bench.py [BRIGADE] [--part forwarding,scaling,balance,drain,failover] [--check]
                              [--kills 20] [--freezes 5] [--soak-seconds 600] [--json-out F]
                              [--log-dir D] [--seed S] (--help for each part's options)
"""
import argparse
import datetime
import hashlib
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
import sys
import tempfile
import threading
import time
import urllib.request

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


class Redis:
    """The benchmark's own redis-server (no persistence); each cluster gets a fresh database."""

    def __init__(self, workdir):
        self.port = free_port()
        self.next_db = 0
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--dir", workdir, "--save", "", "--appendonly", "no", "--databases", "64",
                        "--logfile", os.path.join(workdir, "redis.log")], check=True)
        for _ in range(50):
            if self.cli(0, "ping").strip() == "PONG":
                break
            time.sleep(0.1)

    def new_db(self):
        db = self.next_db
        self.next_db += 1
        self.cli(db, "flushdb")
        return db

    def cli(self, db, *args):
        return run(["redis-cli", "-p", str(self.port), "-n", str(db)] + list(args)).stdout

    def owner(self, db, sid):
        """The `owner` field of the session's meta ("" when released or absent)."""
        return self.cli(db, "hget", f"brigade:{{{sid}}}:meta", "owner").strip()

    def owners(self, db):
        """{owner: number of session metas} over the database, in one script ("" = released)."""
        script = ("local c={} for _,k in ipairs(redis.call('KEYS','brigade:*:meta')) do "
                  "local o=redis.call('HGET',k,'owner') or '' c[o]=(c[o] or 0)+1 end "
                  "if next(c)==nil then return '{}' end return cjson.encode(c)")
        out = self.cli(db, "eval", script, "0").strip()
        try:
            return json.loads(out)
        except ValueError:
            return {"error": out}

    def shutdown(self):
        run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"])


class Cluster:
    def __init__(self, brigade, model, redis, workdir, names=NAMES, capacity=None, token_file=None, tag="",
                 extra=()):
        self.brigade, self.model, self.workdir = brigade, model, workdir
        self.redis, self.db = redis, redis.new_db()
        self.store = f"redis://127.0.0.1:{redis.port}/{self.db}"
        self.names = tuple(names)
        self.capacity = dict(capacity or {})
        self.token_file, self.tag, self.extra = token_file, tag, list(extra)
        self.ports = {n: free_port() for n in self.names}
        self.procs = {}
        self.metrics = {}
        self.starts = {n: 0 for n in self.names}
        self.stopped = set()

    def log(self, name):
        return os.path.join(self.workdir, f"{self.tag}node-{name}.log")

    def addr(self, name):
        return f"127.0.0.1:{self.ports[name]}"

    def hosts(self, first=None, names=None):
        names = list(names or self.names)
        order = [first] + [n for n in names if n != first] if first else names
        return ",".join(self.addr(n) for n in order)

    def owner(self, sid):
        return self.redis.owner(self.db, sid)

    def owners(self):
        return self.redis.owners(self.db)

    def start(self, name, attempts=20):
        """Starts `name` on its port and waits for its listening line."""
        cmd = [self.brigade, "serve", "--port", str(self.ports[name]), "--metrics-port", "0", "--api-port", "0",
               "--model", self.model,
               "--store", self.store, "--node-name", name, "--log-level", "info"]
        if name in self.capacity:
            cmd += ["--capacity", str(self.capacity[name])]
        if self.token_file:
            cmd += ["--admin-token-file", self.token_file]
        cmd += self.extra
        for _ in range(attempts):
            self.starts[name] += 1
            with open(self.log(name), "a") as err:
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
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

    def start_all(self, timeout=60):
        for n in self.names:  # one after the other: see startup_deaths in the failover output
            self.start(n)
        return self.wait_active(timeout=timeout)

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
        hosts = self.addr(via) if via else ",".join(self.addr(n) for n in self.names
                                                    if n in self.procs and n not in self.stopped)
        if not hosts:
            return None
        try:
            r = subprocess.run([self.brigade, "cluster", "status", "--host", hosts, "--json"], capture_output=True,
                               text=True, timeout=timeout)
            return {n["name"]: n for n in json.loads(r.stdout.strip().splitlines()[-1])["nodes"]}
        except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
            return None

    def wait_active(self, timeout=60, names=None):
        names = names or self.names
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st = self.status()
            if st and all(st.get(n, {}).get("state") == "active" for n in names):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"not all nodes active after {timeout} s: {self.status()}")

    def scrape(self, name, timeout=5):
        """The /metrics text of one node ("" when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics[name]}/metrics", timeout=timeout) as r:
                return r.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def metric(self, name, series):
        """One series of one node (`brigade_turns_forwarded_total`, `x{reason="drain"}`), or None."""
        m = re.search(r"^" + re.escape(series) + r" (\S+)", self.scrape(name), re.M)
        return float(m.group(1)) if m else None

    def tokens(self):
        """Sum of brigade_tokens_generated_total over the running nodes."""
        return sum(self.metric(n, "brigade_tokens_generated_total") or 0 for n in list(self.procs))

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
    for n in cluster.names:
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


def open_session(cluster, hosts):
    r = run([cluster.brigade, "chat", "--host", hosts, "--open"])
    if r.returncode != 0:
        raise RuntimeError(f"chat --open failed: {r.stderr.strip()}")
    sid, token = r.stdout.split()[:2]
    return sid, token


def open_owned(cluster, victim, n=None, tries=100):
    """A session owned by `victim`: (id, token, sessions opened to find it).

    Sessions are placed by rendezvous hashing over the active nodes, so one opened
    through `victim` is owned by it only for its share of the ids. Opens through
    `victim` until the meta's owner (in Redis) is `victim`; the others are closed.
    With n, one turn of n tokens is run through `victim` (it must stay the owner)."""
    hosts = cluster.hosts(victim)
    for attempt in range(1, tries + 1):
        sid, token = open_session(cluster, hosts)
        if cluster.owner(sid) == victim:
            break
        run([cluster.brigade, "chat", "--host", hosts, "--session", sid, "--token", token, "--close"])
    else:
        raise RuntimeError(f"no session of {tries} opened through {victim} is owned by it")
    if n is not None:
        r = run([cluster.brigade, "chat", "--host", hosts, "--session", sid, "--token", token, "-p", "hello there",
                 "-n", str(n)])
        if r.returncode != 0:
            raise RuntimeError(f"first turn failed: {r.stderr.strip()}")
        owner = cluster.owner(sid)
        if owner != victim:
            raise RuntimeError(f"session {sid} opened on {victim} is owned by {owner!r} after its first turn")
    return sid, token, attempt


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
    victim = cluster.names[i % len(cluster.names)]
    cluster.wait_active()
    load = Load(cluster, a.sessions, a.n, os.path.join(workdir, "load.log"))
    rec = {"cycle": i, "victim": victim}
    probe = None
    try:
        warm_load(cluster, 10)
        time.sleep(1.0)  # the load's sessions settle on their nodes
        sid, token, rec["opened_to_find_owned"] = open_owned(cluster, victim, a.n)
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
        for n in cluster.names:
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
    victim = cluster.names[j % len(cluster.names)]
    watcher = cluster.names[(j + 1) % len(cluster.names)]
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
            for n in cluster.names:
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


def bench_json(text):
    """The last JSON line of `brigade bench --json` output (None if there is none)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def bench_cmd(cluster, hosts, sessions, turns, n, verify=False):
    return ([cluster.brigade, "bench", "--host", hosts, "--sessions", str(sessions), "--turns", str(turns),
             "-n", str(n), "--json"] + (["--verify"] if verify else []))


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def loadavg():
    return round(os.getloadavg()[0], 2)


WAIT_QUIET = {"below": None, "max_s": 0.0}


def cpu_busy(seconds=2.0):
    """The fraction of all CPUs busy over `seconds` (from /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def proc_cpu(pid):
    """utime + stime of a running process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuMeter:
    """CPU used during a run: by the machine, by this benchmark (its nodes, and its children reaped
    meanwhile: the bench clients), and by everything else (another engineer's tests)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.nodes0 = {n: proc_cpu(p.pid) for n, p in cluster.procs.items()}
        c = os.times()
        self.children0 = c.children_user + c.children_system

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        elapsed = time.monotonic() - self.t0
        busy1 = self._busy()
        ours = sum(proc_cpu(p.pid) - self.nodes0.get(n, 0.0) for n, p in self.cluster.procs.items())
        c = os.times()
        ours += c.children_user + c.children_system - self.children0
        # a node reaped meanwhile (a drained one) counts in the children's times from its start
        ours -= sum(v for n, v in self.nodes0.items() if n not in self.cluster.procs)
        cap = elapsed * (os.cpu_count() or 1)
        if busy1 is None or self.busy0 is None or cap <= 0:
            return {}
        busy = busy1 - self.busy0
        return {"cpu_busy": round(busy / cap, 3), "cpu_ours": round(ours / cap, 3),
                "cpu_others": round(max(0.0, busy - ours) / cap, 3)}


def wait_quiet(what):
    """With --wait-quiet F: waits (at most --wait-quiet-max s) until the CPUs are less than F busy over
    2 s, so that a run does not start while other work (another engineer's tests) saturates the
    machine. Call it while the benchmark's own nodes are idle. Returns (seconds waited, busy fraction)."""
    below, max_s = WAIT_QUIET["below"], WAIT_QUIET["max_s"]
    if below is None:
        return 0.0, None
    t0 = time.monotonic()
    busy = cpu_busy()
    while busy is not None and busy >= below and time.monotonic() - t0 < max_s:
        time.sleep(3)
        busy = cpu_busy()
    waited = time.monotonic() - t0
    if waited >= 3:
        print(f"[{what}: waited {waited:.0f} s for the CPUs to be less than {below:.0%} busy (now "
              f"{busy if busy is None else f'{busy:.0%}'}, load average {loadavg()})]", flush=True)
    return round(waited, 1), None if busy is None else round(busy, 3)


class Ctx:
    """What every part needs: the copied binary, the models, redis, the work directory."""

    def __init__(self, brigade, redis, workdir):
        self.brigade, self.redis, self.workdir = brigade, redis, workdir
        self.cache = os.path.join(os.environ.get("BRIGADE_CACHE_DIR", os.path.expanduser("~/.cache/brigade")),
                                  "models")
        os.makedirs(self.cache, exist_ok=True)

    def model(self, preset):
        """`tiny` seed 3 (the failover benchmark's) or `small` seed 1 (the built-in model), F16."""
        seed = {"tiny": 3, "small": 1}[preset]
        path = os.path.join(self.cache, f"{preset}-f16-seed{seed}.gguf")
        if not os.path.exists(path):
            tmp = path + f".tmp{os.getpid()}"
            subprocess.run([self.brigade, "model", "synth", "--preset", preset, "--seed", str(seed), "-o", tmp],
                           check=True, capture_output=True)
            os.replace(tmp, path)
        return path

    def cluster(self, preset, names=NAMES, **kw):
        return Cluster(self.brigade, self.model(preset), self.redis, self.workdir, names=names, **kw)


# ---------------------------------------------------------------------------------------------------------
# forwarding: the same run, half the sessions through the owner, half through a node that owns nothing.

def forwarding_pair(a, cl, sessions, turns, n):
    """Two `brigade bench` at once, sessions/2 each: one through a (the owner), one through b."""
    half = sessions // 2
    waited, busy = wait_quiet(f"forwarding, {sessions} sessions")
    rec = {"sessions": sessions, "turns": turns, "max_tokens": n, "waited_s": waited, "cpu_busy_before": busy,
           "loadavg_before": loadavg()}
    fwd0 = cl.metric("b", "brigade_turns_forwarded_total") or 0
    meter = CpuMeter(cl)
    procs = {}
    for via in ("a", "b"):
        procs[via] = subprocess.Popen(bench_cmd(cl, cl.addr(via), half, turns, n), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    for via, p in procs.items():
        out, err = p.communicate(timeout=a.bench_timeout)
        rec[via] = bench_json(out) or {"error": (err or out).strip()[-300:]}
        rec[via]["rc"] = p.returncode
    rec["cpu"] = meter.stop()
    rec["loadavg_after"] = loadavg()
    rec["b_forwarded"] = (cl.metric("b", "brigade_turns_forwarded_total") or 0) - fwd0
    rec["b_forwarded_every_turn"] = rec["b_forwarded"] >= half * turns
    oa, ob = rec["a"], rec["b"]
    if "tokens_per_second" in oa and "tokens_per_second" in ob:
        rec["tps_ratio"] = ob["tokens_per_second"] / oa["tokens_per_second"]
        rec["ttft_p50_diff_ms"] = (ob["ttft_p50_seconds"] - oa["ttft_p50_seconds"]) * 1e3
        rec["ttft_p99_diff_ms"] = (ob["ttft_p99_seconds"] - oa["ttft_p99_seconds"]) * 1e3
    return rec


def forwarding_table(title, runs):
    print(title)
    print(f"{'run':>6}  {'a tok/s':>8}  {'b tok/s':>8}  {'b/a':>6}  {'a p50 ms':>8}  {'b p50 ms':>8}  {'diff':>6}  "
          f"{'a p99 ms':>8}  {'b p99 ms':>8}  {'diff':>7}  {'a s':>5}  {'b s':>5}  others  load")
    for i, r in enumerate(runs):
        oa, ob = r["a"], r["b"]
        if r.get("tps_ratio") is None:
            print(f"{i + 1:>6}  failed: a {oa} b {ob}")
            continue
        print(f"{i + 1:>6}  {oa['tokens_per_second']:8.1f}  {ob['tokens_per_second']:8.1f}  "
              f"{r['tps_ratio']:6.3f}  {oa['ttft_p50_seconds'] * 1e3:8.1f}  {ob['ttft_p50_seconds'] * 1e3:8.1f}  "
              f"{r['ttft_p50_diff_ms']:+6.1f}  {oa['ttft_p99_seconds'] * 1e3:8.1f}  {ob['ttft_p99_seconds'] * 1e3:8.1f}  "
              f"{r['ttft_p99_diff_ms']:+7.1f}  {oa['seconds']:5.1f}  {ob['seconds']:5.1f}  "
              f"{r.get('cpu', {}).get('cpu_others', 0):6.0%}  {r['loadavg_before']:.1f}/{r['loadavg_after']:.1f}")
    m = {k: median([r.get(k) for r in runs]) for k in ("tps_ratio", "ttft_p50_diff_ms", "ttft_p99_diff_ms")}
    if m["tps_ratio"] is not None:
        print(f"{'median':>6}  {'':8}  {'':8}  {m['tps_ratio']:6.3f}  {'':8}  {'':8}  "
              f"{m['ttft_p50_diff_ms']:+6.1f}  {'':8}  {'':8}  {m['ttft_p99_diff_ms']:+7.1f}")
    # the runs during which other work used less than 10% of the CPUs
    clean = [r for r in runs if r.get("cpu", {}).get("cpu_others", 1.0) < 0.10]
    m["clean_runs"] = len(clean)
    for k in ("tps_ratio", "ttft_p50_diff_ms", "ttft_p99_diff_ms"):
        m["clean_" + k] = median([r.get(k) for r in clean])
    if m["clean_tps_ratio"] is not None and len(clean) < len(runs):
        print(f"{'clean':>6}  {'':8}  {'':8}  {m['clean_tps_ratio']:6.3f}  {'':8}  {'':8}  "
              f"{m['clean_ttft_p50_diff_ms']:+6.1f}  {'':8}  {'':8}  {m['clean_ttft_p99_diff_ms']:+7.1f}  "
              f"(median of the {len(clean)} run(s) with others under 10% of the CPUs)")
    return m


def part_forwarding(a, ctx):
    runs, light = [], []
    for rep in range(a.fwd_repeats):
        cl = ctx.cluster(a.fwd_preset, names=("a", "b"), capacity={"a": 1, "b": 0}, tag=f"fwd{rep}-",
                         extra=a.node_args)
        try:
            cl.start_all()
            rec = forwarding_pair(a, cl, a.fwd_sessions, a.fwd_turns, a.fwd_n)
            rec["repeat"], rec["db"] = rep, cl.db
            # every session lives on a (b has capacity 0)
            rec["owners"] = cl.owners()
            rec["all_owned_by_a"] = rec["owners"] == {"a": a.fwd_sessions}
            runs.append(rec)
            if a.fwd_light_sessions:
                lr = forwarding_pair(a, cl, a.fwd_light_sessions, a.fwd_light_turns, a.fwd_n)
                lr["repeat"] = rep
                lr["owners"] = cl.owners()
                light.append(lr)
        finally:
            cl.stop_all()
        oa, ob = rec["a"], rec["b"]
        print(f"forwarding {rep + 1}/{a.fwd_repeats}: owner a {oa.get('tokens_per_second', 0):.1f} tok/s ttft p50 "
              f"{oa.get('ttft_p50_seconds', 0) * 1e3:.1f} ms; via b {ob.get('tokens_per_second', 0):.1f} tok/s ttft "
              f"p50 {ob.get('ttft_p50_seconds', 0) * 1e3:.1f} ms; owners {rec['owners']}, b forwarded "
              f"{rec['b_forwarded']:.0f}", flush=True)
    half = a.fwd_sessions // 2
    print()
    m = forwarding_table(f"forwarding cost, {a.fwd_preset} (F16), nodes a (capacity 1) and b (capacity 0), two "
                         f"`brigade bench --sessions {half} --turns {a.fwd_turns} -n {a.fwd_n}` at once: one --host a "
                         f"(the owner), one --host b (every turn forwarded to a)", runs)
    res = {"preset": a.fwd_preset, "sessions": a.fwd_sessions, "turns": a.fwd_turns, "max_tokens": a.fwd_n,
           "node_args": a.node_args, "runs": runs, "median_tps_ratio": m["tps_ratio"],
           "median_ttft_p50_diff_ms": m["ttft_p50_diff_ms"], "median_ttft_p99_diff_ms": m["ttft_p99_diff_ms"],
           "clean_runs": m["clean_runs"], "clean_median_tps_ratio": m["clean_tps_ratio"],
           "clean_median_ttft_p50_diff_ms": m["clean_ttft_p50_diff_ms"]}
    if light:
        lm = forwarding_table(f"\nthe same with {a.fwd_light_sessions} sessions ({a.fwd_light_sessions // 2} + "
                              f"{a.fwd_light_sessions // 2}, --turns {a.fwd_light_turns}): the engine not saturated, "
                              f"so mostly the hop itself", light)
        res["light"] = {"sessions": a.fwd_light_sessions, "turns": a.fwd_light_turns, "runs": light,
                        "median_tps_ratio": lm["tps_ratio"], "median_ttft_p50_diff_ms": lm["ttft_p50_diff_ms"],
                        "median_ttft_p99_diff_ms": lm["ttft_p99_diff_ms"]}
    ok_runs = all(r.get("tps_ratio") is not None and r["a"].get("errors") == 0 and r["b"].get("errors") == 0
                  and r["all_owned_by_a"] and r["b_forwarded_every_turn"] for r in runs)
    res["targets"] = {
        "forwarding_tokens_per_second_cost_at_most_10pct": ok_runs and res["median_tps_ratio"] >= 0.9,
        "forwarding_ttft_p50_cost_at_most_5ms": ok_runs and res["median_ttft_p50_diff_ms"] <= 5.0,
    }
    print(f"targets ({a.fwd_sessions} sessions, median of {len(runs)}): b/a tokens/s >= 0.90: "
          f"{res['targets']['forwarding_tokens_per_second_cost_at_most_10pct']}; ttft p50 b - a <= 5 ms: "
          f"{res['targets']['forwarding_ttft_p50_cost_at_most_5ms']}", flush=True)
    return res


# ---------------------------------------------------------------------------------------------------------
# scaling: the same load over 1, 2 and 3 nodes on this machine.

def part_scaling(a, ctx):
    runs = []
    for rep in range(a.scale_repeats):
        for k in (1, 2, 3):
            names = NAMES[:k]
            cl = ctx.cluster(a.scale_preset, names=names, tag=f"scale{k}.{rep}-", extra=a.node_args)
            waited, busy = wait_quiet(f"scaling, {k} node(s)")
            rec = {"nodes": k, "repeat": rep, "waited_s": waited, "cpu_busy_before": busy, "loadavg_before": loadavg()}
            try:
                cl.start_all()
                meter = CpuMeter(cl)
                r = run(bench_cmd(cl, cl.hosts(), a.scale_sessions, a.scale_turns, a.scale_n), timeout=a.bench_timeout)
                rec["cpu"] = meter.stop()
                rec["bench"] = bench_json(r.stdout) or {"error": (r.stderr or r.stdout).strip()[-300:]}
                rec["loadavg_after"] = loadavg()
                rec["forwarded"] = sum(cl.metric(n, "brigade_turns_forwarded_total") or 0 for n in names)
                rec["owners"] = cl.owners()
            finally:
                cl.stop_all()
            runs.append(rec)
            b = rec["bench"]
            print(f"scaling {k} node(s), run {rep + 1}: {b.get('tokens_per_second', 0):.1f} tok/s, ttft p50 "
                  f"{b.get('ttft_p50_seconds', 0) * 1e3:.0f} ms, owners {rec['owners']}, forwarded {rec['forwarded']:.0f}, "
                  f"CPU of others during the run {rec['cpu'].get('cpu_others', 0):.0%}", flush=True)
    summary = {}
    for k in (1, 2, 3):
        rs = [r for r in runs if r["nodes"] == k and "tokens_per_second" in r["bench"]]
        summary[str(k)] = {
            "tokens_per_second": median([r["bench"]["tokens_per_second"] for r in rs]),
            "ttft_p50_seconds": median([r["bench"]["ttft_p50_seconds"] for r in rs]),
            "ttft_p99_seconds": median([r["bench"]["ttft_p99_seconds"] for r in rs]),
            "mean_batch_size": median([r["bench"]["mean_batch_size"] for r in rs]),
            "forwarded_share": median([r["forwarded"] / r["bench"]["turns"] for r in rs if r["bench"].get("turns")]),
            "errors": sum(r["bench"].get("errors", 0) for r in rs),
            "cpu_others_max": max((r["cpu"].get("cpu_others", 0) for r in rs), default=None),
        }
    base = summary["1"]["tokens_per_second"]
    for k in ("1", "2", "3"):
        t = summary[k]["tokens_per_second"]
        summary[k]["vs_1_node"] = t / base if t and base else None
    res = {"preset": a.scale_preset, "sessions": a.scale_sessions, "turns": a.scale_turns, "max_tokens": a.scale_n,
           "runs": runs, "median": summary}
    print(f"\nscaling, {a.scale_preset} (F16), `brigade bench --sessions {a.scale_sessions} --turns {a.scale_turns} "
          f"-n {a.scale_n}` over 1, 2, 3 nodes (fresh cluster each; median of {a.scale_repeats})")
    print(f"{'nodes':>5}  {'tok/s':>7}  {'vs 1':>5}  {'ttft p50':>8}  {'ttft p99':>8}  {'batch':>5}  {'fwd':>5}  "
          f"{'errors':>6}  runs tok/s (CPU of others)")
    for k in ("1", "2", "3"):
        m = summary[k]
        each = ", ".join(f"{r['bench'].get('tokens_per_second', 0):.1f} ({r['cpu'].get('cpu_others', 0):.0%})"
                         for r in runs if str(r["nodes"]) == k)
        print(f"{k:>5}  {m['tokens_per_second'] or 0:7.1f}  {m['vs_1_node'] or 0:5.2f}  {(m['ttft_p50_seconds'] or 0):8.3f}  "
              f"{(m['ttft_p99_seconds'] or 0):8.3f}  {m['mean_batch_size'] or 0:5.1f}  {m['forwarded_share'] or 0:5.2f}  "
              f"{m['errors']:6d}  {each}")
    return res


# ---------------------------------------------------------------------------------------------------------
# balance: where placement puts 1000 new sessions.

def part_balance(a, ctx):
    rounds = []
    for rep, caps in [(rep, caps) for rep in range(a.balance_repeats) for caps in ((1, 1, 1), (1, 1, 2))]:
        cl = ctx.cluster(a.balance_preset, capacity=dict(zip(NAMES, caps)),
                         tag=f"balance{''.join(map(str, caps))}.{rep}-")
        waited, busy = wait_quiet(f"balance {caps}")
        rec = {"capacity": dict(zip(NAMES, caps)), "waited_s": waited, "cpu_busy_before": busy,
               "loadavg_before": loadavg()}
        try:
            cl.start_all()
            time.sleep(1.5)  # every peer connection up and pinged (the table says active a little earlier)
            wall0, t0 = time.time(), time.monotonic()
            # The sessions in batches of `bench` runs, one after the other (each opens its batch at once).
            tot = {"sessions": 0, "turns": 0, "errors": 0, "refused": 0, "runs": 0, "failed_runs": []}
            left = a.balance_sessions
            while left > 0:
                k = min(left, a.balance_batch)
                r = run(bench_cmd(cl, cl.hosts(), k, 1, 1), timeout=a.bench_timeout)
                b = bench_json(r.stdout)
                tot["runs"] += 1
                if b is None:
                    tot["failed_runs"].append((r.stderr or r.stdout).strip()[-300:])
                else:
                    for key in ("sessions", "turns", "errors", "refused"):
                        tot[key] += b.get(key) or 0
                left -= k
            rec["seconds"] = time.monotonic() - t0
            rec["bench"] = tot
            _, _, sus = deaths(cl, wall0)
            declared, _, _ = deaths(cl, wall0)
            rec["suspicions"] = [f"{s_[0]} suspected {s_[1]}: {s_[2]}" for s_ in sus]
            rec["deaths"] = sorted(f"{m}/{x}" for (m, x) in declared)
            rec["owners"] = cl.owners()
            st = cl.status() or {}
            rec["status_sessions"] = {n: st.get(n, {}).get("sessions") for n in NAMES}
            rec["loadavg_after"] = loadavg()
        finally:
            cl.stop_all()
        counts = [rec["owners"].get(n, 0) for n in NAMES]
        rec["counts"] = dict(zip(NAMES, counts))
        rec["total"] = sum(counts)
        rec["unowned"] = sum(v for k, v in rec["owners"].items() if k not in NAMES)
        if caps == (1, 1, 1):
            rec["busiest_over_least"] = max(counts) / min(counts) if min(counts) else None
            rec["ok"] = (rec["busiest_over_least"] is not None and rec["busiest_over_least"] <= 1.3
                         and rec["total"] == a.balance_sessions)
        else:
            rec["third_share"] = counts[2] / rec["total"] if rec["total"] else None
            rec["ok"] = (rec["third_share"] is not None and abs(rec["third_share"] - 0.5) <= 0.075
                         and rec["total"] == a.balance_sessions)
        rec["repeat"] = rep
        rounds.append(rec)
    equal = [r for r in rounds if "busiest_over_least" in r]
    weighted = [r for r in rounds if "third_share" in r]
    res = {"preset": a.balance_preset, "sessions": a.balance_sessions, "repeats": a.balance_repeats,
           "rounds": rounds,
           "equal_busiest_over_least": [r["busiest_over_least"] for r in equal],
           "capacity_1_1_2_third_share": [r["third_share"] for r in weighted],
           "targets": {"balance_equal_busiest_at_most_1.3x_least": all(r["ok"] for r in equal),
                       "balance_capacity_1_1_2_third_holds_half_within_15pct": all(r["ok"] for r in weighted)}}
    print(f"\nplacement balance, {a.balance_preset}: {a.balance_sessions} sessions opened by `brigade bench --host a,b,c "
          f"--sessions {a.balance_batch} --turns 1 -n 1` runs one after the other (entry node u mod 3), then the "
          f"`owner` of every `brigade:{{SID}}:meta` in Redis")
    print(f"{'capacities':>10}  {'a':>5}  {'b':>5}  {'c':>5}  {'total':>5}  {'figure':>26}  target")
    for r in rounds:
        c = r["counts"]
        caps = ",".join(str(v) for v in r["capacity"].values())
        if "busiest_over_least" in r:
            fig, tgt = f"busiest/least {r['busiest_over_least'] or 0:.3f}", "<= 1.3"
        else:
            fig, tgt = f"c's share {r['third_share'] or 0:.3f}", "0.425..0.575"
        print(f"{caps:>10}  {c['a']:5d}  {c['b']:5d}  {c['c']:5d}  {r['total']:5d}  {fig:>26}  {tgt}: "
              f"{'met' if r['ok'] else 'MISSED'} (bench errors {r['bench'].get('errors')}, refused "
              f"{r['bench'].get('refused')}, unowned {r['unowned']}, {r['seconds']:.1f} s, suspicions "
              f"{len(r['suspicions'])}, load {r['loadavg_before']:.1f})")
        for line in r["suspicions"][:5]:
            print(f"{'':>12}{line}")
    return res


# ---------------------------------------------------------------------------------------------------------
# drain: under bench --verify over a, b, c, one node drains (cluster drain, then SIGTERM).

class Scraper(threading.Thread):
    """Scrapes one node's drain hand-overs and live sessions until stopped; keeps the last answer."""

    def __init__(self, cluster, name, period=0.05):
        super().__init__(daemon=True)
        self.cluster, self.name, self.period = cluster, name, period
        self.handoffs, self.sessions, self.last_wall, self.samples = None, None, None, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            text = self.cluster.scrape(self.name, timeout=1)
            if text:
                m = re.search(r'^brigade_session_handoffs_total\{reason="drain"\} (\S+)', text, re.M)
                self.handoffs = float(m.group(1)) if m else 0.0
                m = re.search(r"^brigade_sessions_active (\S+)", text, re.M)
                self.sessions = float(m.group(1)) if m else None
                self.last_wall = time.time()
                self.samples += 1
            self.halt.wait(self.period)


def probe_turn(probe, text, timeout):
    """Sends one turn on an interactive probe: first token and acknowledgement times (s), or the error."""
    t0 = time.monotonic()
    probe.send(text)
    t_ack, events = probe.wait_prompt(timeout)
    out = [e for e in events if e[1] == "out" and e[2] and e[0] >= t0]
    err = b"".join(e[2] for e in events if e[1] == "err").decode(errors="replace")
    err = (err[:-2] if err.endswith("> ") else err).strip()
    rec = {"first_token_s": out[0][0] - t0 if out and t_ack is not None else None,
           "ack_s": t_ack - t0 if t_ack is not None else None}
    if err or t_ack is None:
        rec["error"] = err or f"no acknowledgement within {timeout} s"
    return rec


def history(cluster, sid, token):
    r = run([cluster.brigade, "chat", "--host", cluster.hosts(names=[n for n in cluster.names if n in cluster.procs]),
             "--session", sid, "--token", token, "--history"])
    turns = []
    for line in r.stdout.splitlines():
        try:
            turns.append(json.loads(line))
        except ValueError:
            pass
    return turns


def drain_round(a, ctx, cl, victim, method, workdir):
    rec = {"victim": victim, "method": method}
    others = [n for n in cl.names if n != victim]
    probes = []
    load = None
    scraper = None
    try:
        # K probe sessions owned by the victim, with a history of several turns, each an interactive
        # `brigade chat` entering through a survivor (so before the drain every probe turn is forwarded).
        opened = 0
        for k in range(a.drain_probes):
            sid, token, tries = open_owned(cl, victim)
            opened += tries
            entry = others[k % len(others)]
            pr = Probe(cl.brigade, cl.hosts(entry, names=others), sid, token, a.drain_n)
            if pr.wait_prompt(30)[0] is None:
                raise RuntimeError("a probe did not come up")
            probes.append({"sid": sid, "token": token, "entry": entry, "p": pr})
        rec["opened_to_find_owned"] = opened
        for h in range(a.drain_history):
            for pr in probes:
                pr["p"].send(f"history turn {h + 1}: tell me a story about the cluster and its nodes")
            for pr in probes:
                if pr["p"].wait_prompt(a.turn_timeout)[0] is None:
                    raise RuntimeError(f"probe history turn {h + 1} failed")
        rec["probe_owners_before"] = [cl.owner(pr["sid"]) for pr in probes]
        rec["waited_s"], rec["cpu_busy_before"] = wait_quiet(f"drain ({method})")
        # The load, long enough to outlast the drain.
        loadlog = os.path.join(workdir, f"drain-load-{method.replace(' ', '_')}.log")
        lf = open(loadlog, "w")
        load = subprocess.Popen(bench_cmd(cl, cl.hosts(), a.drain_sessions, a.drain_turns, a.drain_n, verify=True),
                                stdout=lf, stderr=subprocess.STDOUT, text=True)
        t_load = time.monotonic()
        meter = CpuMeter(cl)
        warm_load(cl, 20)
        time.sleep(2.0)
        # The probes' last turn before the drain (same load), one after the other.
        rec["before"] = [probe_turn(pr["p"], "the turn before the drain", a.turn_timeout) for pr in probes]
        scraper = Scraper(cl, victim)
        scraper.start()
        time.sleep(0.3)
        rec["victim_sessions_before"] = scraper.sessions
        rec["victim_handoffs_before"] = scraper.handoffs
        rec["loadavg"] = loadavg()
        rec["load_running_at_drain"] = load.poll() is None
        rec["load_seconds_before_drain"] = time.monotonic() - t_load
        proc = cl.procs[victim]
        wall0, t0 = time.time(), time.monotonic()
        if method == "cluster drain":
            via = others[0]
            r = run([cl.brigade, "cluster", "drain", victim, "--host", cl.hosts(via, names=others),
                     "--admin-token-file", cl.token_file], timeout=180)
            rec["command_s"] = time.monotonic() - t0
            rec["command_rc"] = r.returncode
            rec["command_output"] = (r.stdout + r.stderr).strip()
            m = re.search(r"in ([0-9.]+)s", r.stdout + r.stderr)
            rec["command_reported_s"] = float(m.group(1)) if m else None
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            rec["exit_code"] = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rec["exit_code"] = None
            proc.kill()
            proc.wait()
        rec["signal_to_exit_s"] = time.monotonic() - t0
        cl.procs.pop(victim, None)
        scraper.halt.set()
        scraper.join()
        rec["handoffs_drain_scraped"] = scraper.handoffs
        rec["last_scrape_before_exit_s"] = (scraper.last_wall - wall0) if scraper.last_wall else None
        rec["victim_log"] = []
        for t, lvl, _n, msg in read_log(cl.log(victim)):
            if t < wall0 - 0.5:
                continue
            if "session=" not in msg:
                rec["victim_log"].append(f"+{t - wall0:.3f}s {lvl} {msg}")
            if "sessions handed over" in msg and "handed_over_s" not in rec:
                rec["handed_over_s"] = t - wall0
                rec["handed_over_line"] = msg
            if "draining" in msg and "draining_line" not in rec:
                rec["draining_line"] = msg
        rec["grace_expired"] = any("grace period over" in line for line in rec["victim_log"])
        # Turns that other nodes cancelled while this drain ran (a relay on the drained node gone).
        rec["cancelled_elsewhere"] = [f"{n} +{t - wall0:.3f}s {msg}" for n in others for t, _l, _n, msg in read_log(cl.log(n))
                                      if wall0 <= t <= wall0 + rec["signal_to_exit_s"] + 1.0 and "cancelled" in msg]
        # Each probe's next turn, through the same survivor: restored from Redis on its new owner.
        rec["after"] = [probe_turn(pr["p"], "the first turn after the drain", a.turn_timeout) for pr in probes]
        rec["probe_owners_after"] = [cl.owner(pr["sid"]) for pr in probes]
        rec["loadavg_after"] = loadavg()
        try:
            out, _ = load.communicate(timeout=a.bench_timeout)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
        lf.close()
        rec["load_seconds"] = time.monotonic() - t_load
        rec["cpu"] = meter.stop()
        with open(loadlog) as f:
            rec["load"] = bench_json(f.read()) or {"error": "no JSON line; see " + loadlog}
        rec["load"]["rc"] = load.returncode
        # The probes' histories: every turn once; the prompt tokens of the turn before and after.
        for pr, before, after in zip(probes, rec["before"], rec["after"]):
            pr["p"].close()
            turns = history(cl, pr["sid"], pr["token"])
            seqs = [t.get("seq") for t in turns]
            before["seq"], after["seq"] = a.drain_history + 1, a.drain_history + 2
            before["prompt_tokens"] = next((t.get("prompt_tokens") for t in turns if t.get("seq") == before["seq"]), None)
            after["prompt_tokens"] = next((t.get("prompt_tokens") for t in turns if t.get("seq") == after["seq"]), None)
            pr["seqs_ok"] = seqs == list(range(1, a.drain_history + 3))
            pr["seqs"] = seqs
        rec["probe_histories_ok"] = all(pr["seqs_ok"] for pr in probes)
        rec["probes"] = [{"session": pr["sid"], "entry": pr["entry"], "seqs": pr["seqs"]} for pr in probes]
    finally:
        if scraper:
            scraper.halt.set()
        for pr in probes:
            if pr["p"].p.poll() is None:
                pr["p"].close()
        if load and load.poll() is None:
            load.kill()
            load.wait()
    return rec


def part_drain(a, ctx):
    token_file = os.path.join(ctx.workdir, "admin-token")
    with open(token_file, "w") as f:
        f.write(f"bench-{random.getrandbits(64):016x}\n")
    cl = ctx.cluster(a.drain_preset, token_file=token_file, tag="drain-", extra=a.node_args)
    rounds = []
    try:
        cl.start_all()
        for method, victim in (("cluster drain", "c"), ("SIGTERM", "b")):
            cl.wait_active()
            r = drain_round(a, ctx, cl, victim, method, ctx.workdir)
            rounds.append(r)
            ld = r["load"]
            print(f"drain ({method}) of {victim}: exit {r['exit_code']} after {r['signal_to_exit_s']:.2f} s"
                  + (f", command rc {r['command_rc']} in {r['command_s']:.2f} s ({r.get('command_output')})"
                     if method == "cluster drain" else "")
                  + f"; handoffs {r['handoffs_drain_scraped']} of {r['victim_sessions_before']} live; load errors "
                  f"{ld.get('errors')} lost {ld.get('lost')} duplicated {ld.get('duplicated')}", flush=True)
            if method != "SIGTERM":
                cl.start(victim)  # back for the next round
    finally:
        cl.stop_all()

    def ms(xs):
        return median([x * 1e3 for x in xs if x is not None])

    for r in rounds:
        b, f = r["before"], r["after"]
        r["summary"] = {
            "before_first_token_ms_median": ms([x["first_token_s"] for x in b]),
            "after_first_token_ms_median": ms([x["first_token_s"] for x in f]),
            "before_ack_ms_median": ms([x["ack_s"] for x in b]),
            "after_ack_ms_median": ms([x["ack_s"] for x in f]),
            "before_prompt_tokens_median": median([x.get("prompt_tokens") for x in b]),
            "after_prompt_tokens_median": median([x.get("prompt_tokens") for x in f]),
            "probe_errors": sum(1 for x in b + f if x.get("error")),
            # per probe, its first turn after the drain minus its last before (same probe, same load)
            "first_token_delta_ms_median": ms([y["first_token_s"] - x["first_token_s"] for x, y in zip(b, f)
                                               if x["first_token_s"] is not None and y["first_token_s"] is not None]),
            "ack_delta_ms_median": ms([y["ack_s"] - x["ack_s"] for x, y in zip(b, f)
                                       if x["ack_s"] is not None and y["ack_s"] is not None]),
        }
    why = []
    for r in rounds:
        ld, tag = r["load"], f"{r['method']} of {r['victim']}"
        for k in ("errors", "lost", "duplicated"):
            if ld.get(k) != 0:
                why.append(f"{tag}: load {k} {ld.get(k)}")
        if ld.get("rc") != 0:
            why.append(f"{tag}: the load exited {ld.get('rc')}")
        if r["exit_code"] != 0:
            why.append(f"{tag}: the node exited {r['exit_code']}")
        if r["summary"]["probe_errors"] or not r["probe_histories_ok"]:
            why.append(f"{tag}: probe errors {r['summary']['probe_errors']}, histories ok {r['probe_histories_ok']}")
        if not r["load_running_at_drain"]:
            why.append(f"{tag}: the load had ended before the drain (raise --drain-turns)")
        if r["method"] == "cluster drain" and r.get("command_rc") != 0:
            why.append(f"{tag}: the command exited {r.get('command_rc')}")
        # fewer hand-overs than live sessions, from a scrape before the node's "sessions handed over" line:
        # the node may have handed over more after the last scrape that it answered
        if (r.get("handed_over_s") is not None and (r.get("last_scrape_before_exit_s") or 0) < r["handed_over_s"]
                and (r["handoffs_drain_scraped"] or 0) < (r["victim_sessions_before"] or 0)):
            r["handoffs_drain_scraped_stale"] = True
    zero = not why
    res = {"preset": a.drain_preset, "sessions": a.drain_sessions, "turns": a.drain_turns, "max_tokens": a.drain_n,
           "probes": a.drain_probes, "probe_history_turns": a.drain_history, "rounds": rounds,
           "missed_because": why, "targets": {"drain_zero_failed_turns": zero}}
    print(f"\ndrain under `brigade bench --host a,b,c --sessions {a.drain_sessions} --turns {a.drain_turns} "
          f"-n {a.drain_n} --verify`, {a.drain_preset} (F16), admin token file")
    print(f"{'method':>14}  {'node':>4}  {'cmd s':>6}  {'->exit s':>8}  {'rc':>3}  {'live':>5}  {'handoffs':>8}  "
          f"{'turns':>5}  {'errors':>6}  {'lost':>4}  {'dup':>4}  {'refused':>7}  {'grace hit':>9}  {'cancelled':>9}  load")
    for r in rounds:
        ld = r["load"]
        cmd_s = f"{r['command_s']:6.2f}" if r.get("command_s") is not None else f"{'-':>6}"
        print(f"{r['method']:>14}  {r['victim']:>4}  {cmd_s}  {r['signal_to_exit_s']:8.2f}  "
              f"{str(r['exit_code']):>3}  {str(r['victim_sessions_before']):>5}  "
              f"{str(r['handoffs_drain_scraped']) + ('*' if r.get('handoffs_drain_scraped_stale') else ''):>8}  "
              f"{str(ld.get('turns')):>5}  {str(ld.get('errors')):>6}  {str(ld.get('lost')):>4}  "
              f"{str(ld.get('duplicated')):>4}  {str(ld.get('refused')):>7}  {str(r['grace_expired']):>9}  "
              f"{len(r['cancelled_elsewhere']):9d}  {r['loadavg']:.1f}")
    for r in rounds:
        print(f"{r['method']} of {r['victim']}, its log from the drain on:")
        for line in r["victim_log"][:8]:
            print(f"    {line}")
        for line in r["cancelled_elsewhere"][:8]:
            print(f"    cancelled on {line}")
    print(f"\nfirst turn of a handed-over session ({a.drain_probes} probes owned by the drained node, "
          f"{a.drain_history} turns of history each, interactive `brigade chat` entering through a survivor; "
          f"medians, ms)")
    print(f"{'method':>14}  {'before ttft':>11}  {'after ttft':>10}  {'delta':>6}  {'before ack':>10}  {'after ack':>9}  "
          f"{'delta':>6}  {'prompt tok before':>17}  {'after':>5}  new owners")
    for r in rounds:
        s_ = r["summary"]
        print(f"{r['method']:>14}  {s_['before_first_token_ms_median'] or 0:11.0f}  {s_['after_first_token_ms_median'] or 0:10.0f}  "
              f"{s_['first_token_delta_ms_median'] or 0:+6.0f}  "
              f"{s_['before_ack_ms_median'] or 0:10.0f}  {s_['after_ack_ms_median'] or 0:9.0f}  "
              f"{s_['ack_delta_ms_median'] or 0:+6.0f}  "
              f"{str(s_['before_prompt_tokens_median']):>17}  {str(s_['after_prompt_tokens_median']):>5}  "
              f"{r['probe_owners_after']}")
    if any(r.get("handoffs_drain_scraped_stale") for r in rounds):
        print("(* fewer hand-overs than live sessions in the last scrape the node answered, before its \"sessions "
              "handed over\" line: it may have handed over more after it)")
    print(f"target: 0 failed turns in a drain under load: {'met' if zero else 'MISSED: ' + '; '.join(why)}", flush=True)
    return res


# ---------------------------------------------------------------------------------------------------------
# failover: kill -9, SIGSTOP and the soak (part 1 of the cluster work), with placement on.

def part_failover(a, ctx, rng):
    model = ctx.model("tiny")
    cluster = Cluster(ctx.brigade, model, ctx.redis, ctx.workdir)
    kills, freezes, soaked, unexpected = [], [], None, []
    startup = {}
    machine = {"loadavg_at_start": os.getloadavg()[0]}
    try:
        wall_start = time.time()
        startup["all_active_s"] = cluster.start_all()
        d, s, _ = deaths(cluster, wall_start)
        startup["deaths"] = sorted(f"{m}/{x}" for (m, x) in d)
        startup["self_declared_dead"] = [n for n, _ in s]
        print(f"failover: 3 nodes on {', '.join(cluster.addr(n) for n in cluster.names)}, redis "
              f"127.0.0.1:{ctx.redis.port}/{cluster.db}, logs in {ctx.workdir}", flush=True)
        wall_cycles = time.time()
        for i in range(a.kills):
            r = kill_cycle(i, cluster, a, rng, ctx.workdir)
            kills.append(r)
            print(f"kill {i + 1:2d}/{a.kills} {r['victim']}: first token {fmt(r.get('first_token_s'))} s, "
                  f"ack {fmt(r.get('ack_s'))} s, declared dead {fmt(r.get('declared_dead_s'))} s, "
                  f"restart -> active {fmt(r.get('restart_to_active_s'))} s, taken over by {r.get('taken_over_by')}"
                  f" after {r.get('not_restored')} refusals ({r.get('opened_to_find_owned')} opened to find one "
                  f"owned by {r['victim']})"
                  + (f", ERROR {r['error']}" if r.get("error") else "")
                  + (f", other deaths {r['other_deaths']}" if r.get("other_deaths") else ""), flush=True)
        for j in range(a.freezes):
            r = freeze_cycle(j, cluster, a, ctx.workdir)
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
            soaked = soak(cluster, a, ctx.workdir)
        wall_soak = soaked["wall_start"] if soaked else time.time()
        declared, _, _ = deaths(cluster, wall_cycles, wall_soak)
        unexpected = sorted(f"{m}/{x}" for (m, x) in declared if (m, x) not in expected)
    finally:
        cluster.stop_all()

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

    print(f"\ncluster failover, tiny (F16), 3 nodes (placement on, capacity 1 each), load: bench --sessions "
          f"{a.sessions} -n {a.n} over the three, 1-min load average {machine['loadavg_at_start']:.1f} at start, "
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
              f"{soaked['loadavg_1min_mean'] or 0:.1f} mean", flush=True)
    ft = figures["kill_to_first_token"]["p99"]
    fd = figures["sigstop_to_declared_dead"]["max"]
    return {"model": os.path.basename(model), "nodes": 3, "sessions": a.sessions, "max_tokens": a.n,
            "kills": a.kills, "freezes": a.freezes, "soak_seconds": a.soak_seconds, "machine": machine,
            "figures": figures, "probe_failed": failed, "probe_lost": lost, "probe_duplicated": dup,
            "unexpected_deaths": other, "startup": startup, "soak": soaked,
            "targets": {"kill_to_first_token_p99_under_1s": ft is not None and ft < 1.0 and failed == 0,
                        "frozen_declared_dead_within_2s": fd is not None and fd < 2.0 and
                        figures["sigstop_to_declared_dead"]["n"] == len(freezes),
                        "zero_false_deaths": (soaked is None or soaked["false_deaths"] == 0) and not other},
            "kill_cycles": kills, "freeze_cycles": freezes}


PARTS = ("forwarding", "scaling", "balance", "drain", "failover")


def summarize(res):
    """The headline figures of a run, small enough to quote (docs/benchmarks.md)."""
    def r3(x):
        return None if x is None else round(x, 3)

    def r1(x):
        return None if x is None else round(x, 1)

    out = {k: res.get(k) for k in ("commit", "binary_built", "binary_sha256")}
    m = res.get("machine", {})
    out["machine"] = {"nproc": m.get("nproc"), "cpu": m.get("cpu"), "loadavg_at_start": r1(m.get("loadavg_at_start")),
                      "loadavg_at_end": r1(m.get("loadavg_at_end"))}
    if "forwarding" in res:
        f = res["forwarding"]
        clean = [r for r in f["runs"] if r.get("cpu", {}).get("cpu_others", 1.0) < 0.10]
        out["forwarding"] = {
            "preset": f["preset"], "sessions": f["sessions"], "turns": f["turns"], "max_tokens": f["max_tokens"],
            "tps_ratio": [r3(r.get("tps_ratio")) for r in f["runs"]],
            "ttft_p50_diff_ms": [r1(r.get("ttft_p50_diff_ms")) for r in f["runs"]],
            "ttft_p99_diff_ms": [r1(r.get("ttft_p99_diff_ms")) for r in f["runs"]],
            "cpu_others": [r.get("cpu", {}).get("cpu_others") for r in f["runs"]],
            "median_tps_ratio": r3(f["median_tps_ratio"]), "median_ttft_p50_diff_ms": r1(f["median_ttft_p50_diff_ms"]),
            "clean_runs": len(clean), "clean_median_ttft_p50_diff_ms": r1(median([r.get("ttft_p50_diff_ms")
                                                                                  for r in clean]))}
        if f.get("light"):
            lt = f["light"]
            out["forwarding"]["light"] = {
                "sessions": lt["sessions"], "turns": lt["turns"],
                "ttft_p50_diff_ms": [r1(r.get("ttft_p50_diff_ms")) for r in lt["runs"]],
                "cpu_others": [r.get("cpu", {}).get("cpu_others") for r in lt["runs"]],
                "median_ttft_p50_diff_ms": r1(lt["median_ttft_p50_diff_ms"])}
    if "scaling" in res:
        sc = res["scaling"]
        out["scaling"] = {"preset": sc["preset"], "sessions": sc["sessions"], "turns": sc["turns"],
                          "max_tokens": sc["max_tokens"],
                          "nodes": {k: {"tokens_per_second": r1(v["tokens_per_second"]), "vs_1_node": r3(v["vs_1_node"]),
                                        "ttft_p50_s": r3(v["ttft_p50_seconds"]), "ttft_p99_s": r3(v["ttft_p99_seconds"]),
                                        "mean_batch": r1(v["mean_batch_size"]), "forwarded_share": r3(v["forwarded_share"]),
                                        "errors": v["errors"], "cpu_others_max": v.get("cpu_others_max")}
                                    for k, v in sc["median"].items()}}
    if "balance" in res:
        b = res["balance"]
        out["balance"] = {"sessions": b["sessions"],
                          "equal_counts": [list(r["counts"].values()) for r in b["rounds"] if "busiest_over_least" in r],
                          "equal_busiest_over_least": [r3(x) for x in b["equal_busiest_over_least"]],
                          "capacity_1_1_2_counts": [list(r["counts"].values()) for r in b["rounds"] if "third_share" in r],
                          "capacity_1_1_2_third_share": [r3(x) for x in b["capacity_1_1_2_third_share"]]}
    if "drain" in res:
        d = res["drain"]
        out["drain"] = {"preset": d["preset"], "sessions": d["sessions"], "turns": d["turns"], "rounds": [{
            "method": r["method"], "node": r["victim"], "command_s": r3(r.get("command_s")), "exit_s": r3(r["signal_to_exit_s"]),
            "exit_code": r["exit_code"], "live": r["victim_sessions_before"], "handoffs": r["handoffs_drain_scraped"],
            "errors": r["load"].get("errors"), "lost": r["load"].get("lost"), "duplicated": r["load"].get("duplicated"),
            "grace_expired": r.get("grace_expired"), "cancelled_elsewhere": len(r.get("cancelled_elsewhere", [])),
            "probe_before_ttft_ms": r1(r["summary"]["before_first_token_ms_median"]),
            "probe_after_ttft_ms": r1(r["summary"]["after_first_token_ms_median"]),
            "probe_before_ack_ms": r1(r["summary"]["before_ack_ms_median"]),
            "probe_after_ack_ms": r1(r["summary"]["after_ack_ms_median"]),
            "probe_first_token_delta_ms": r1(median([(y["first_token_s"] - x["first_token_s"]) * 1e3
                                                     for x, y in zip(r["before"], r["after"])
                                                     if x["first_token_s"] is not None and y["first_token_s"] is not None])),
            "probe_ack_delta_ms": r1(median([(y["ack_s"] - x["ack_s"]) * 1e3 for x, y in zip(r["before"], r["after"])
                                             if x["ack_s"] is not None and y["ack_s"] is not None])),
            "probe_prompt_tokens_before": r["summary"]["before_prompt_tokens_median"],
            "probe_prompt_tokens_after": r["summary"]["after_prompt_tokens_median"]} for r in d["rounds"]]}
    if "failover" in res:
        fo = res["failover"]
        fig = fo["figures"]
        out["failover"] = {"kills": fo["kills"], "freezes": fo["freezes"], "soak_seconds": fo["soak_seconds"],
                           "kill_to_first_token_p50_p99": [r3(fig["kill_to_first_token"]["p50"]), r3(fig["kill_to_first_token"]["p99"])],
                           "kill_to_ack_p50_p99": [r3(fig["kill_to_ack"]["p50"]), r3(fig["kill_to_ack"]["p99"])],
                           "kill_to_declared_dead_p50": r3(fig["kill_to_declared_dead"]["p50"]),
                           "sigstop_to_declared_dead_p50_max": [r3(fig["sigstop_to_declared_dead"]["p50"]),
                                                                r3(fig["sigstop_to_declared_dead"]["max"])],
                           "probe_failed_lost_duplicated": [fo["probe_failed"], fo["probe_lost"], fo["probe_duplicated"]],
                           "soak_false_deaths": (fo.get("soak") or {}).get("false_deaths"),
                           "soak_suspicions": (fo.get("soak") or {}).get("suspicions")}
    out["targets"] = res.get("targets")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("brigade", nargs="?", default=os.path.join(ROOT, "build", "app", "brigade"))
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (default all)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target of a part that ran is missed")
    ap.add_argument("--bench-timeout", type=float, default=600, help="seconds for one `brigade bench` run")
    g = ap.add_argument_group("failover")
    g.add_argument("--kills", type=int, default=20)
    g.add_argument("--freezes", type=int, default=5)
    g.add_argument("--soak-seconds", type=float, default=600)
    g.add_argument("--sessions", type=int, default=48, help="the failover load's sessions")
    g.add_argument("-n", type=int, default=16, help="the failover load's tokens per turn")
    g.add_argument("--turn-timeout", type=float, default=30, help="seconds to wait for a probe turn's ack")
    g.add_argument("--freeze-timeout", type=float, default=20, help="seconds to wait for a frozen node's death")
    g = ap.add_argument_group("forwarding")
    g.add_argument("--fwd-preset", default="small", choices=("tiny", "small"))
    g.add_argument("--fwd-sessions", type=int, default=32, help="in all: half through the owner, half not")
    g.add_argument("--fwd-turns", type=int, default=6)
    g.add_argument("--fwd-n", type=int, default=32)
    g.add_argument("--fwd-repeats", type=int, default=3)
    g.add_argument("--fwd-light-sessions", type=int, default=2, help="then the same pair with this few (0: not)")
    g.add_argument("--fwd-light-turns", type=int, default=20)
    g = ap.add_argument_group("scaling")
    g.add_argument("--scale-preset", default="small", choices=("tiny", "small"))
    g.add_argument("--scale-sessions", type=int, default=32)
    g.add_argument("--scale-turns", type=int, default=4)
    g.add_argument("--scale-n", type=int, default=32)
    g.add_argument("--scale-repeats", type=int, default=2)
    g = ap.add_argument_group("balance")
    g.add_argument("--balance-preset", default="tiny", choices=("tiny", "small"))
    g.add_argument("--balance-sessions", type=int, default=1000)
    g.add_argument("--balance-repeats", type=int, default=1, help="fresh clusters (new session ids) per capacity set")
    g.add_argument("--balance-batch", type=int, default=100, help="sessions per `bench` run (one run after the other)")
    g = ap.add_argument_group("drain")
    g.add_argument("--drain-preset", default="small", choices=("tiny", "small"))
    g.add_argument("--drain-sessions", type=int, default=24)
    g.add_argument("--drain-turns", type=int, default=30)
    g.add_argument("--drain-n", type=int, default=16)
    g.add_argument("--drain-probes", type=int, default=4)
    g.add_argument("--drain-history", type=int, default=5, help="turns of history each probe has before the drain")
    ap.add_argument("--node-args", default="", help="extra `brigade serve` flags for the nodes of forwarding, "
                    "scaling and drain (one string, split on spaces)")
    ap.add_argument("--wait-quiet", type=float, help="before each run (not the failover cycles), wait until the "
                    "CPUs are less than this fraction busy over 2 s (others' work on a shared machine)")
    ap.add_argument("--wait-quiet-max", type=float, default=600, help="seconds to wait for that at most, per run")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--log-dir", help="keep the node logs here (default: a temporary directory, removed)")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    parts = [p.strip() for p in a.part.split(",") if p.strip()]
    a.node_args = a.node_args.split()
    WAIT_QUIET.update(below=a.wait_quiet, max_s=a.wait_quiet_max)
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part {', '.join(bad)} (parts: {', '.join(PARTS)})")
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

    # SIGTERM (a CTest timeout, a kill) runs the clean-up below: nodes stopped, redis-server shut down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with open(brigade, "rb") as f:
        binary_sha256 = hashlib.sha256(f.read()).hexdigest()[:16]
    redis = Redis(workdir)
    ctx = Ctx(brigade, redis, workdir)
    res = {"benchmark": "cluster", "parts": parts, "commit": commit, "uncommitted": dirty,
           "binary": os.path.abspath(a.brigade), "binary_built": binary_built, "binary_sha256": binary_sha256,
           "machine": machine}
    targets = {}
    try:
        for part in PARTS:
            if part not in parts:
                continue
            t0 = time.monotonic()
            la0 = loadavg()
            if part == "failover":
                out = part_failover(a, ctx, rng)
            else:
                out = {"forwarding": part_forwarding, "scaling": part_scaling, "balance": part_balance,
                       "drain": part_drain}[part](a, ctx)
            out["wall_seconds"] = time.monotonic() - t0
            out["loadavg_at_start"], out["loadavg_at_end"] = la0, loadavg()
            res[part] = out
            targets.update(out.get("targets", {}))
            print(f"[{part}: {out['wall_seconds']:.0f} s, 1-min load average {la0:.1f} -> {out['loadavg_at_end']:.1f}]\n",
                  flush=True)
    finally:
        redis.shutdown()
    machine["loadavg_at_end"] = os.getloadavg()[0]
    res["targets"] = targets
    res["summary"] = summarize(res)
    missed = [k for k, v in targets.items() if not v]
    print(f"cluster bench, commit {commit}{' (+ uncommitted changes)' if dirty else ''}, {machine['nproc']} CPUs "
          f"({machine['cpu']}), load average {machine['loadavg_at_start']:.1f} at start, "
          f"{machine['loadavg_at_end']:.1f} at end; targets missed: {', '.join(missed) if missed else 'none'}")
    print("summary: " + json.dumps(res["summary"]))
    line = json.dumps(res)
    print(line)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(line + "\n")
    if tmp:
        tmp.cleanup()
    if a.check and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
