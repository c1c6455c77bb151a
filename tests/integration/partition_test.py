#!/usr/bin/env python3
"""Network partitions of a three-node cluster (label `partition`), in Linux
network namespaces of the test's own, so that nothing can leave the machine.

The network. A router namespace brg-rt and five leaves, each with one veth
pair to the router: brg-n1, brg-n2, brg-n3 (the nodes n1, n2, n3 at
10.77.1.2, 10.77.2.2, 10.77.3.2), brg-redis (redis-server at 10.77.10.2) and
brg-cli (every client: chat, bench, cluster status, the metrics reads, at
10.77.20.2). Leaf i is 10.77.i.2/24, its router side 10.77.i.1/24, with a
default route through it; the router forwards (ip_forward=1) and has no
route out. Before anything is created, the root namespace gets the guard
route `unreachable 10.77.0.0/16`, so a mistaken dial from the root namespace
fails locally instead of going out the default gateway. Every process runs
under `ip netns exec`; nothing in the root namespace dials a 10.77 address.

A partition is a pair of nftables rules per link in the router's forward
chain (table inet brgpart), `ip saddr X ip daddr Y drop` both ways: silent
drops, so the peers see timeouts, not refusals (a lost link, not a dead
process). Healing flushes the chain. Each case runs on fresh nodes in its own
Redis database (killed with SIGKILL at its end), under two loads from brg-cli:
`brigade bench --host n1,n2,n3 --verify` runs one after another (12 sessions
x 8 turns each, so the load spans the cut and the heal at any machine speed),
and a careful client of the test's own, the driver: a few sessions driven turn
by turn with `brigade chat -p --seq`, which re-sends the same seq (same text)
after an error, from the next node, and records every acknowledged reply. The
bench's users stop at their first error, so in cases 2 and 3, where the
store's errors are expected (store_unavailable is not retried by the client:
exit 4 by the contract), the bench may count errors; its lost and duplicated
must still be 0, and the driver carries its sessions across the cut.

  1. n1 cut off from n2 and n3 (not from Redis or the clients): n1 is dead in
     `cluster status` read through n2 within seconds; it fences itself and
     stops serving (/readyz 503 naming the death; a turn sent through n1 only
     is refused with session moved, exit 3, never answered); its sessions
     continue on n2 and n3 (the driver's n1 sessions get acknowledged turns
     during the cut; the bench has no error); it rejoins at most once per 5 s
     while cut off, and is not active while cut off; after healing it becomes
     active and stays active.
  2. n1 cut off from Redis, n2 and n3 (not from the clients): it cannot
     commit, so its clients get errors that name the store (exit 4); n1 is
     declared dead; its session continues on n2 (a turn of a session opened
     on n1, sent through n2, takes it over); after healing, once n1's sockets
     to Redis have nothing left to send (so a write buffered during the cut
     has reached Redis, or never will), nothing n1 sent for that session
     after it was taken over is in the store; n1 rejoins and is active.
  3. Redis cut off from all three nodes: every node answers with a sentence
     naming the store (`chat --open` and a turn through each node exit 4;
     `cluster status` exits 4); nothing half-written; after healing, service
     resumes (a new session's turn succeeds through each node within 30 s)
     and a bench afterwards has no error.

In every case: the bench's --verify finds 0 lost and 0 duplicated; every
turn the driver saw acknowledged is stored exactly once with the reply it
got; and the whole database, read straight from Redis, holds for every
session the seqs 1..meta.seq exactly once, in order (no session written by
two owners, nothing half-written).

Printed as notes, not asserted: what a node that rejoined while still cut off
does (it is joining, and serves its own clients), and which nodes learn after
Redis comes back that they were declared dead meanwhile. On a failure the
nodes' logs are kept (the path is printed).

Root only: without root, or without ip, nft, sysctl, ss or redis-server, it
prints `SKIP: ...` and exits 77. It first removes what a killed earlier run
left, and removes everything at exit (also on SIGTERM or SIGHUP).

usage: partition_test.py BRIGADE            run the cases (root; exit 77 to skip)
       partition_test.py BRIGADE --cleanup  only remove what an earlier run left
                                            (namespaces brg-*, their processes,
                                            the guard route)
"""
import atexit
import base64
import datetime
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

BRIGADE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "brigade"
CLEANUP_ONLY = "--cleanup" in sys.argv[2:]
SKIP = 77  # CTest SKIP_RETURN_CODE

ROUTER = "brg-rt"
LEAF = {"brg-n1": 1, "brg-n2": 2, "brg-n3": 3, "brg-redis": 10, "brg-cli": 20}
GUARD = "10.77.0.0/16"
PY = sys.executable
PORT, MPORT, RPORT = 7420, 9420, 6379
# A silent cut is found by 3 missed pings of 250 ms and two reports (about
# 1 s; docs/cluster.md); seen up to 3.9 s on 2 cores at a load average of 23.
DEAD_WITHIN = 6


def ip_of(ns):
    return f"10.77.{LEAF[ns]}.2"


REDIS_IP = ip_of("brg-redis")

failures = []
started = []  # processes, killed at exit whatever happens
LOGS = None
MODEL = None


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def note(what):
    print("note: " + what, flush=True)


def sh(*args, timeout=30):
    try:
        return subprocess.run(list(args), capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        def text(b):
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        return subprocess.CompletedProcess(e.cmd, 124, text(e.stdout), text(e.stderr))


def must(*args):
    r = sh(*args)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc {r.returncode}: {r.stderr.strip()}")
    return r


def nsx(ns, *args):
    return ["ip", "netns", "exec", ns, *args]


# -- the network --------------------------------------------------------------------------

def namespaces():
    r = sh("ip", "netns", "list")
    return [l.split()[0] for l in r.stdout.splitlines() if l.split() and l.split()[0].startswith("brg-")]


def remove_leftovers(quiet=False):
    """Kills the processes in the brg-* namespaces, deletes those namespaces
    (their veth pairs and nftables tables go with them) and the guard route."""
    removed = []
    for ns in namespaces():
        for _ in range(100):
            pids = [int(p) for p in sh("ip", "netns", "pids", ns).stdout.split() if p.isdigit()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        sh("ip", "netns", "del", ns)
        removed.append(ns)
    for _ in range(5):
        if sh("ip", "route", "del", "unreachable", GUARD).returncode != 0:
            break
        removed.append(f"route unreachable {GUARD}")
    if removed and not quiet:
        print(f"# removed leftovers: {', '.join(removed)}", flush=True)
    return removed


def build_network():
    must("ip", "route", "add", "unreachable", GUARD)
    r = sh("ip", "route", "get", ip_of("brg-n1"))
    if r.returncode == 0:
        raise RuntimeError(f"the guard route does not hold: ip route get {ip_of('brg-n1')} says {r.stdout.strip()}")
    for ns in [ROUTER, *LEAF]:
        must("ip", "netns", "add", ns)
        must("ip", "-n", ns, "link", "set", "lo", "up")
    for ns, i in LEAF.items():
        # Both ends are created inside their namespaces: none is ever in the root one.
        must("ip", "link", "add", f"to-{ns[4:]}", "netns", ROUTER, "type", "veth", "peer", "name", "eth0", "netns", ns)
        must("ip", "-n", ROUTER, "addr", "add", f"10.77.{i}.1/24", "dev", f"to-{ns[4:]}")
        must("ip", "-n", ROUTER, "link", "set", f"to-{ns[4:]}", "up")
        must("ip", "-n", ns, "addr", "add", f"10.77.{i}.2/24", "dev", "eth0")
        must("ip", "-n", ns, "link", "set", "eth0", "up")
        must("ip", "-n", ns, "route", "add", "default", "via", f"10.77.{i}.1")
    must(*nsx(ROUTER, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
    must(*nsx(ROUTER, "nft", "add", "table", "inet", "brgpart"))
    must(*nsx(ROUTER, "nft", "add chain inet brgpart cut { type filter hook forward priority 0; policy accept; }"))


def cut(pairs):
    """Silently drops everything between each pair of namespaces, both ways."""
    for a, b in pairs:
        for x, y in ((a, b), (b, a)):
            must(*nsx(ROUTER, "nft", "add", "rule", "inet", "brgpart", "cut", "ip", "saddr", ip_of(x), "ip", "daddr",
                      ip_of(y), "drop"))


def heal():
    must(*nsx(ROUTER, "nft", "flush", "chain", "inet", "brgpart", "cut"))


# -- Redis --------------------------------------------------------------------------------

def redis_cli(db, *args):
    return sh(*nsx("brg-redis", "redis-cli", "-h", REDIS_IP, "-p", str(RPORT), "-n", str(db), *args)).stdout.strip()


def redis_errors():
    """Redis's count of error replies by their first word (EPOCH, SEQ, ...)."""
    out = {}
    for line in redis_cli(0, "info", "errorstats").splitlines():
        m = re.match(r"errorstat_(\w+):count=(\d+)", line.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


# Runs in brg-redis: every session of a database as JSON (binary values in base64).
DUMP = r'''
import base64, json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
f = s.makefile("rb")
def read():
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+": return rest
    if t == b"-": raise RuntimeError(rest.decode())
    if t == b":": return int(rest)
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read() for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)
def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    s.sendall(out)
    return read()
cmd("SELECT", sys.argv[3])
keys, cur = [], b"0"
while True:
    cur, ks = cmd("SCAN", cur, "MATCH", "brigade:{*}:meta", "COUNT", 1000)
    keys += ks
    if cur == b"0": break
out = {}
for k in keys:
    sid = k.decode()[len("brigade:{"):-len("}:meta")]
    h = cmd("HGETALL", k)
    meta = {h[i].decode(errors="replace"): h[i + 1].decode(errors="replace") for i in range(0, len(h), 2)}
    turns = [base64.b64encode(t).decode() for t in cmd("LRANGE", "brigade:{%s}:turns" % sid, 0, -1)]
    snap = cmd("GET", "brigade:{%s}:snap" % sid)
    out[sid] = {"meta": meta, "turns": turns, "snap": base64.b64encode(snap).decode() if snap else None}
print(json.dumps(out))
'''


def unpack(b, i=0):
    """A msgpack value at b[i:] (the subset the records use); (value, next index)."""
    t = b[i]
    i += 1
    if t <= 0x7f:
        return t, i
    if t >= 0xe0:
        return t - 0x100, i
    if 0x90 <= t <= 0x9f or t in (0xdc, 0xdd):
        if t <= 0x9f:
            n = t & 0x0f
        else:
            w = 2 if t == 0xdc else 4
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        out = []
        for _ in range(n):
            v, i = unpack(b, i)
            out.append(v)
        return out, i
    if 0x80 <= t <= 0x8f or t in (0xde, 0xdf):
        if t <= 0x8f:
            n = t & 0x0f
        else:
            w = 2 if t == 0xde else 4
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        out = {}
        for _ in range(n):
            k, i = unpack(b, i)
            v, i = unpack(b, i)
            out[k] = v
        return out, i
    if 0xa0 <= t <= 0xbf or t in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        if t <= 0xbf:
            n = t & 0x1f
        else:
            w = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[t]
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        return b[i:i + n].decode(errors="replace"), i + n
    if t in (0xcc, 0xcd, 0xce, 0xcf):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[t]
        return int.from_bytes(b[i:i + w], "big"), i + w
    if t in (0xd0, 0xd1, 0xd2, 0xd3):
        w = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[t]
        return int.from_bytes(b[i:i + w], "big", signed=True), i + w
    if t == 0xc0:
        return None, i
    if t in (0xc2, 0xc3):
        return t == 0xc3, i
    if t == 0xca:
        return struct.unpack(">f", b[i:i + 4])[0], i + 4
    if t == 0xcb:
        return struct.unpack(">d", b[i:i + 8])[0], i + 8
    raise ValueError(f"msgpack type 0x{t:02x} at {i - 1}")


def stored_sessions(db):
    """{sid: (meta, [turn record [1, seq, user, assistant, ...], ...])} read straight from Redis; None if unreadable."""
    r = sh(*nsx("brg-redis", PY, "-c", DUMP, REDIS_IP, str(RPORT), str(db)), timeout=60)
    if r.returncode != 0:
        print(f"# cannot dump db {db}: {r.stderr.strip()[-500:]}", flush=True)
        return None
    out = {}
    for sid, v in json.loads(r.stdout).items():
        turns = []
        if v["snap"]:
            snap, _ = unpack(base64.b64decode(v["snap"]))
            turns += snap[2]
        turns += [unpack(base64.b64decode(t))[0] for t in v["turns"]]
        out[sid] = (v["meta"], turns)
    return out


def check_store(db, what):
    """Every session in the database holds seqs 1..meta.seq once each, in order."""
    st = stored_sessions(db)
    if not check(st is not None, f"{what}: the database can be read straight from Redis"):
        return None
    bad = []
    total = 0
    for sid, (meta, turns) in st.items():
        seqs = [t[1] for t in turns]
        total += len(seqs)
        want = list(range(1, int(meta.get("seq", "0") or 0) + 1))
        if seqs != want:
            bad.append(f"{sid[:8]}: seqs {seqs} but meta seq {meta.get('seq')}")
    check(not bad and st, f"{what}: every one of the {len(st)} sessions in the store holds seqs 1..seq once each, in "
                          f"order ({total} turns){'; ' + '; '.join(bad[:5]) if bad else ''}")
    return st


# -- nodes and clients --------------------------------------------------------------------

class Node:
    """One `brigade serve` in namespace brg-nK; its stderr goes to a log file."""
    count = 0

    def __init__(self, k, db):
        Node.count += 1
        self.db = db
        self.name = f"n{k}"
        self.ns = f"brg-n{k}"
        self.ip = ip_of(self.ns)
        self.addr = f"{self.ip}:{PORT}"
        self.log = os.path.join(LOGS, f"{Node.count:02d}-{self.name}.log")
        self.errf = open(self.log, "w")
        self.p = subprocess.Popen(nsx(self.ns, BRIGADE, "serve", "--host", self.ip, "--port", str(PORT),
                                      "--metrics-port", str(MPORT), "--api-port", "0",
                                      "--store", f"redis://{REDIS_IP}:{RPORT}/{db}",
                                      "--node-name", self.name, "--model", MODEL),
                                  stdout=subprocess.PIPE, stderr=self.errf, text=True, errors="replace")
        started.append(self.p)

    def ready(self, timeout=30):
        line = ""
        if select.select([self.p.stdout], [], [], timeout)[0]:
            line = self.p.stdout.readline()
        m = re.match(r"brigade: listening on ([0-9.]+):(\d+) metrics ([0-9.]+):(\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"node {self.name} did not start: {line!r}\n{self.stderr()[-2000:]}")
        threading.Thread(target=self.p.stdout.read, daemon=True).start()  # drain stdout

    def stderr(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.errf.close()


def brigade(*args, timeout=60):
    """A client command, run in brg-cli."""
    return sh(*nsx("brg-cli", BRIGADE, *args), timeout=timeout)


def hosts(*nodes):
    return ",".join(n.addr for n in nodes)


def status(node):
    r = brigade("cluster", "status", "--host", node.addr, "--json", timeout=20)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def states(node):
    st = status(node)
    return {n["name"]: n["state"] for n in st["nodes"]} if st else {}


def wait_states(node, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = states(node)
        if all(got.get(k) in (v if isinstance(v, tuple) else (v,)) for k, v in want.items()) or \
                time.monotonic() > deadline:
            return got
        time.sleep(0.2)


# Runs in brg-cli: GET each URL; a JSON list of [code, body].
FETCH = r'''
import json, sys, urllib.error, urllib.request
out = []
for u in sys.argv[1:]:
    try:
        with urllib.request.urlopen(u, timeout=3) as r:
            out.append([r.status, r.read().decode(errors="replace")])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.read().decode(errors="replace")])
    except OSError as e:
        out.append([None, str(e)])
print(json.dumps(out))
'''


def http(*urls):
    r = sh(*nsx("brg-cli", PY, "-c", FETCH, *urls), timeout=30)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return [[None, r.stderr.strip()]] * len(urls)


def readyz(node):
    return http(f"http://{node.ip}:{MPORT}/readyz")[0]


def open_session(node, tries=40):
    """A session opened through node and owned by it: placement spreads new
    sessions over the nodes, so open until one lands on node (about 1 in 3)."""
    for _ in range(tries):
        r = brigade("chat", "--host", node.addr, "--open", timeout=30)
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 2:
            raise RuntimeError(f"cannot open a session on {node.name}: rc {r.returncode} {r.stderr.strip()}")
        if redis_cli(node.db, "hget", f"brigade:{{{parts[0]}}}:meta", "owner") == node.name:
            return parts[0], parts[1]
    raise RuntimeError(f"no session opened through {node.name} in {tries} tries was placed on it")


def turn(nodes, sid, token, seq, text, timeout=60, turn_timeout=10):
    return brigade("chat", "--host", hosts(*nodes), "--session", sid, "--token", token, "--seq", str(seq), "-p", text,
                   "-n", "8", "--timeout", str(turn_timeout), timeout=timeout)


def history(nodes, sid, token):
    r = brigade("chat", "--host", hosts(*nodes), "--session", sid, "--token", token, "--history", timeout=60)
    if r.returncode != 0:
        return None
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def last_line(r):
    lines = (r.stderr or "").strip().splitlines()
    return lines[-1] if lines else ""


class Bench:
    """`brigade bench --verify --json` over the three nodes, in the background."""

    def __init__(self, nodes, sessions, turns):
        self.want = sessions * turns
        self.p = subprocess.Popen(nsx("brg-cli", BRIGADE, "bench", "--host", hosts(*nodes), "--sessions",
                                      str(sessions), "--turns", str(turns), "-n", "8", "--json", "--verify"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        started.append(self.p)

    def result(self, timeout=120):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        self.err = err.strip()
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {}


class BenchLoop:
    """`brigade bench --verify` runs, one after another, until finish(): a
    load that spans the cut and the heal whatever the machine's speed. Each
    run opens `sessions` sessions spread over the three nodes (user u starts
    on node u mod 3) and runs `turns` turns in each."""

    def __init__(self, nodes, sessions=12, turns=8):
        self.nodes, self.sessions, self.turns = nodes, sessions, turns
        self.runs = []  # (start, end, result, stderr, turns wanted)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            b = Bench(self.nodes, self.sessions, self.turns)
            res = b.result(timeout=150)
            self.runs.append((t0, time.monotonic(), res, b.err, b.want))

    def finish(self, timeout=200):
        self.stop.set()
        self.thread.join(timeout=timeout)

    def spans(self, t):
        return any(s <= t <= e for s, e, *_ in self.runs)

    def turns_started_within(self, t0, t1):
        return sum(r.get("turns") or 0 for s, _, r, *_ in self.runs if t0 <= s <= t1)

    def checks(self, what, max_errors):
        """lost and duplicated 0 in every run; at most max_errors errors in each
        (0: and every turn of every run acknowledged)."""
        bad = []
        tot = {"turns": 0, "errors": 0, "lost": 0, "duplicated": 0}
        for s, e, r, err, want in self.runs:
            for k in tot:
                tot[k] += r.get(k) or 0
            if r.get("lost") != 0 or r.get("duplicated") != 0 or (r.get("errors") or 0) > max_errors or \
                    (max_errors == 0 and r.get("turns") != want):
                bad.append(f"run of {e - s:.1f}s: {r or 'no result'} {err[-200:]!r}")
        check(self.runs and not bad,
              f"{what}: {len(self.runs)} bench --verify runs of {self.sessions}x{self.turns} turns: {tot['turns']} "
              f"turns, {tot['errors']} errors (at most {max_errors} a run here), {tot['lost']} lost, "
              f"{tot['duplicated']} duplicated{'; ' + '; '.join(bad[:3]) if bad else ''}")


class Driver:
    """Sessions driven turn by turn, each by a thread, as a careful client:
    `chat -p --seq N` over all three nodes (the session's first node first); on
    an error it keeps the seq and the text, moves its list to the next node and
    tries again after a pause. It records each acknowledged reply (seq ->
    reply, with the time) and each error (time, node list, rc, sentence)."""

    def __init__(self, nodes, owners, pause=0.3):
        self.nodes = nodes
        self.stop = threading.Event()
        self.sessions = []  # [name, sid, token, first node index]
        for i, owner in enumerate(owners):
            sid, token = open_session(owner)
            self.sessions.append((f"d{i}", sid, token, nodes.index(owner)))
        self.acked = {s[1]: {} for s in self.sessions}
        self.ack_times = {s[1]: [] for s in self.sessions}
        self.errors = []
        self.pause = pause
        self.threads = [threading.Thread(target=self.run, args=(s,), daemon=True) for s in self.sessions]
        for t in self.threads:
            t.start()

    def run(self, s):
        name, sid, token, first = s
        seq = 1
        while not self.stop.is_set():
            order = [self.nodes[(first + k) % 3] for k in range(3)]
            r = turn(order, sid, token, seq, f"{name} turn {seq}", timeout=90)
            now = time.monotonic()
            if r.returncode == 0:
                self.acked[sid][seq] = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
                self.ack_times[sid].append((now, seq))
                seq += 1
            else:
                self.errors.append((now, name, order[0].name, r.returncode, last_line(r)))
                first = (first + 1) % 3
            self.stop.wait(self.pause)

    def finish(self, timeout=120):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=timeout)

    def acks_between(self, t0, t1, first=None):
        return sum(1 for s in self.sessions if first is None or s[3] == first
                   for t, _ in self.ack_times[s[1]] if t0 <= t <= t1)

    def verify(self, readers, what):
        """Every acknowledged turn is in its history exactly once, with the reply the client got."""
        bad = []
        n = 0
        for name, sid, token, _ in self.sessions:
            hist = history(readers, sid, token)
            if hist is None:
                bad.append(f"{name}: history unreadable")
                continue
            seqs = [h["seq"] for h in hist]
            if seqs != list(range(1, len(seqs) + 1)):
                bad.append(f"{name}: stored seqs {seqs}")
            by_seq = {h["seq"]: h for h in hist}
            for seq, reply in self.acked[sid].items():
                n += 1
                h = by_seq.get(seq)
                if h is None:
                    bad.append(f"{name}: acknowledged seq {seq} lost")
                # (the reply was read from `chat -p` in text mode, which turns \r into \n)
                elif (h["assistant"].replace("\r\n", "\n").replace("\r", "\n") != reply or
                      h["user"] != f"{name} turn {seq}"):
                    bad.append(f"{name}: seq {seq} stored as {h['user']!r} -> {h['assistant']!r}, acknowledged as "
                               f"{reply!r}")
        check(not bad, f"{what}: each of the driver's {n} acknowledged turns is stored exactly once, with the reply "
                       f"acknowledged{'; ' + '; '.join(bad[:6]) if bad else ''}")


def log_times(log, text):
    """The times (seconds since the epoch) of the log lines containing text."""
    out = []
    for line in log.splitlines():
        if text in line:
            try:
                out.append(datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc).timestamp())
            except ValueError:
                out.append(None)
    return out


def explain(nodes, since_failures):
    """After a failed check, the membership lines of the nodes' logs."""
    if len(failures) == since_failures:
        return
    for n in nodes:
        lines = [l for l in n.stderr().splitlines()
                 if re.search(r"WARN|ERROR|suspect|declared|rejoin|answers again|active in|not saved", l)]
        print(f"--- {os.path.basename(n.log)}\n" + "\n".join(lines[-30:]), flush=True)


def start_cluster(db):
    redis_cli(db, "flushdb")
    nodes = [Node(k, db) for k in (1, 2, 3)]
    for n in nodes:
        n.ready()
    got = wait_states(nodes[1], {n.name: "active" for n in nodes}, timeout=15)
    if not check(got == {"n1": "active", "n2": "active", "n3": "active"}, f"db {db}: n1, n2, n3 become active ({got})"):
        for n in nodes:
            print(f"--- {n.name} stderr\n{n.stderr()[-1500:]}")
        raise RuntimeError("the cluster did not form")
    return nodes


def stop_cluster(nodes):
    for n in nodes:
        n.kill()


def bench_checks(what, res, b, errors_allowed):
    print(f"# {what}: the bench ran {res.get('seconds', 0):.1f}s", flush=True)
    ok = res.get("lost") == 0 and res.get("duplicated") == 0 and (errors_allowed or res.get("errors") == 0) and \
        (errors_allowed or res.get("turns") == b.want)
    check(ok, f"{what}: bench --verify: turns {res.get('turns')} of {b.want}, errors {res.get('errors')}"
              f"{' (allowed here)' if errors_allowed else ''}, lost {res.get('lost')}, duplicated "
              f"{res.get('duplicated')}" + ("" if ok or not b.err else f" ({b.err[-300:]})"))


# -- the cases ----------------------------------------------------------------------------

def case_peers_cut():
    f0 = len(failures)
    print("# 1. n1 cut off from n2 and n3, not from Redis", flush=True)
    nodes = start_cluster(1)
    n1, n2, n3 = nodes
    drv = bl = None
    try:
        sid, token = open_session(n1)
        r = turn([n1], sid, token, 1, "probe turn 1 on n1")
        check(r.returncode == 0, f"the probe session's turn 1 on n1 ({last_line(r)})")
        drv = Driver(nodes, [n1, n1, n2, n3])
        bl = BenchLoop(nodes)
        time.sleep(2)
        log0 = len(n1.stderr())
        t_cut = time.monotonic()
        cut([("brg-n1", "brg-n2"), ("brg-n1", "brg-n3")])
        got = wait_states(n2, {"n1": "dead"}, timeout=8)
        dead_s = time.monotonic() - t_cut
        check(got.get("n1") == "dead" and dead_s < DEAD_WITHIN,
              f"cluster status through n2 shows n1 dead {dead_s:.2f}s after the cut ({got})")
        # The majority serves n1's session: turn 2 through n2 takes it over.
        r = turn([n2], sid, token, 2, "probe turn 2 through n2 while n1 is cut off")
        owner = redis_cli(1, "hget", f"brigade:{{{sid}}}:meta", "owner")
        check(r.returncode == 0 and owner in ("n2", "n3"),
              f"turn 2 of n1's session through n2 while n1 is cut off is acknowledged, the session moves (owner "
              f"{owner!r}; rc {r.returncode} {last_line(r)})")
        # n1 learns it was declared dead at its next heartbeat (it reaches Redis) and fences itself.
        fenced = None
        while time.monotonic() - t_cut < DEAD_WITHIN + 3 and fenced is None:
            if "this node stops serving every session" in n1.stderr()[log0:]:
                fenced = time.monotonic() - t_cut
            time.sleep(0.05)
        check(fenced is not None, f"n1 logs that it was declared dead and stops serving "
                                  f"({'%.2fs' % fenced if fenced else 'never'} after the cut)")
        code, body = readyz(n1)
        check(code == 503 and "declared dead" in body,
              f"while fenced, n1's /readyz answers 503 naming the death ({code}, {body.strip()[:200]!r})")
        # A turn through n1 alone: refused (session moved, exit 3), never answered,
        # whether n1 is still fenced or has rejoined (then it cannot reach n2, the owner).
        t_probe = time.monotonic()
        r = turn([n1], sid, token, 3, "probe turn 3 through n1 only, cut off", timeout=60)
        check(r.returncode == 3 and not r.stdout.strip(),
              f"a turn through n1 alone while it is cut off is refused with session moved in "
              f"{time.monotonic() - t_probe:.1f}s (rc {r.returncode}, {last_line(r)[:300]!r}, "
              f"reply {r.stdout.strip()[:60]!r})")
        # Hold the cut long enough for n1 to try rejoining twice at 5 s.
        while time.monotonic() - t_cut < 13:
            time.sleep(0.1)
        during = states(n2)
        check(during.get("n1") in ("dead", "joining"),
              f"n1 is not active (dead or joining) 13s into the cut, through n2 ({during})")
        if "rejoined as incarnation" in n1.stderr()[log0:]:
            # Not an expectation of the issue, only what a rejoined node does
            # while nobody can ping it: it is joining, and serves its own clients.
            code, body = readyz(n1)
            r = brigade("chat", "--host", n1.addr, "-p", "a new session through n1, joining and cut off", "-n", "8",
                        "--timeout", "5", timeout=20)
            note(f"n1 rejoined, cut off (joining): /readyz {code} {body.strip()[:100]!r}; a new session's turn "
                 f"through n1 alone: rc {r.returncode} {'answered' if r.returncode == 0 else last_line(r)[:160]}")
        cut_log = n1.stderr()[log0:]
        t_heal = time.monotonic()
        heal()
        cut_s = t_heal - t_cut
        tries = sorted(t for t in log_times(cut_log, "rejoined as incarnation") + log_times(cut_log, "cannot rejoin")
                       if t is not None)
        fences = [t for t in log_times(cut_log, "rejoins in") if t is not None]
        gaps = [b_ - a_ for a_, b_ in zip([*fences], tries)]
        check(1 <= len(tries) <= cut_s / 5 + 1 and all(g >= 4.9 for g in gaps),
              f"while cut off ({cut_s:.1f}s) n1 tried to rejoin {len(tries)} time(s), each at least 5s after it was "
              f"fenced (gaps {[round(g, 2) for g in gaps]})")
        acks = drv.acks_between(t_cut + 1, t_heal, first=0)
        check(acks > 0, f"n1's sessions continue on the majority: {acks} turn(s) of the driver's n1 sessions "
                        f"acknowledged during the cut")
        # Healed: n1 becomes active and stays so.
        got = wait_states(n2, {"n1": "active"}, timeout=12)
        active_s = time.monotonic() - t_heal
        check(got.get("n1") == "active", f"after healing, n1 is active again through n2 in {active_s:.1f}s ({got})")
        log1 = len(n1.stderr())
        seen = set()
        t_stay = time.monotonic()
        while time.monotonic() - t_stay < 5:
            for n in (n2, n3):
                seen.add(tuple(sorted(states(n).items())))
            time.sleep(0.5)
        later = n1.stderr()[log1:]
        all_active = (("n1", "active"), ("n2", "active"), ("n3", "active"))
        check(seen == {all_active} and "declared dead" not in later and "rejoins in" not in later,
              f"n1 stays active for 5s after that, through n2 and n3 ({sorted(seen)})")
        bl.finish()
        check(bl.spans(t_cut) and bl.spans(t_heal), "bench runs span the cut and the heal")
        n = bl.turns_started_within(t_cut + 1, t_heal)
        check(n > 0, f"bench runs started during the cut, through all three hosts, got {n} turns acknowledged")
        bl.checks("case 1", max_errors=0)
        drv.finish()
        check(not drv.errors, f"the driver's turns all succeeded ({len(drv.errors)} errors: {drv.errors[:3]})")
        drv.verify([n2, n3, n1], "case 1")
        hist = history([n3], sid, token)
        seqs = [(h["seq"], h["user"]) for h in hist] if hist else None
        check(seqs == [(1, "probe turn 1 on n1"), (2, "probe turn 2 through n2 while n1 is cut off")],
              f"the probe session holds turns 1 and 2 once each, turn 3 (refused) not at all ({seqs})")
        check_store(1, "case 1")
    finally:
        explain(nodes, f0)
        for x in (drv, bl):
            if x:
                x.stop.set()
        stop_cluster(nodes)
        for x in (drv, bl):
            if x:
                x.finish(timeout=3)  # done already, unless the case stopped early


def send_queue_to_redis(node):
    """Bytes n1's sockets to Redis still have to send (None if ss fails)."""
    r = sh(*nsx(node.ns, "ss", "-tnH", "dst", f"{REDIS_IP}:{RPORT}"))
    if r.returncode != 0:
        return None
    total = 0
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[2].isdigit():
            total += int(f[2])
    return total


def case_redis_and_peers_cut():
    f0 = len(failures)
    print("# 2. n1 cut off from Redis, n2 and n3", flush=True)
    nodes = start_cluster(2)
    n1, n2, n3 = nodes
    drv = bl = None
    try:
        sid, token = open_session(n1)  # taken over through n2 during the cut
        sid_b, token_b = open_session(n1)  # left alone during the cut
        for s, t in ((sid, token), (sid_b, token_b)):
            r = turn([n1], s, t, 1, "probe turn 1 on n1")
            check(r.returncode == 0, f"a probe session's turn 1 on n1 ({last_line(r)})")
        drv = Driver(nodes, [n1, n2, n3])
        bl = BenchLoop(nodes)
        time.sleep(2)
        t_cut = time.monotonic()
        cut([("brg-n1", "brg-redis"), ("brg-n1", "brg-n2"), ("brg-n1", "brg-n3")])
        # Two turns through n1 alone at once, right after the cut: n1 cannot commit them.
        probes = [subprocess.Popen(nsx("brg-cli", BRIGADE, "chat", "--host", n1.addr, "--session", s, "--token", t,
                                       "--seq", "2", "-p", "probe turn 2 through n1 during the cut", "-n", "8"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
                  for s, t in ((sid, token), (sid_b, token_b))]
        started.extend(probes)
        got = wait_states(n2, {"n1": "dead"}, timeout=8)
        dead_s = time.monotonic() - t_cut
        check(got.get("n1") == "dead" and dead_s < DEAD_WITHIN,
              f"cluster status through n2 shows n1 dead {dead_s:.2f}s after the cut ({got})")
        outs = [p.communicate(timeout=60) for p in probes]
        for p, (o, e) in zip(probes, outs):
            check(p.returncode == 4 and "store" in e and not o.strip(),
                  f"a turn through n1 alone during the cut fails, exit 4, with a sentence naming the store "
                  f"(rc {p.returncode}, {e.strip()[-300:]!r})")
        r = brigade("chat", "--host", n1.addr, "--open", timeout=60)
        check(r.returncode == 4 and "store" in r.stderr,
              f"a new session through n1 during the cut: exit 4 naming the store (rc {r.returncode}, "
              f"{last_line(r)[:300]!r})")
        r = turn([n1], sid, token, 2, "probe turn 2 through n1 during the cut, again", timeout=60)
        check(r.returncode == 4 and "store" in r.stderr,
              f"later in the cut, a turn through n1 is refused, exit 4 naming the store (rc {r.returncode}, "
              f"{last_line(r)[:300]!r})")
        # n1's session continues elsewhere: turn 2 through n2 takes it over,
        # on the session's place among n2 and n3 (another text than n1's).
        r = turn([n2], sid, token, 2, "probe turn 2 through n2 during the cut")
        owner = redis_cli(2, "hget", f"brigade:{{{sid}}}:meta", "owner")
        check(r.returncode == 0 and owner in ("n2", "n3"),
              f"turn 2 of n1's session through n2 during the cut is acknowledged and n2 or n3 owns it (owner {owner!r}; "
              f"rc {r.returncode} {last_line(r)})")
        while time.monotonic() - t_cut < 9:
            time.sleep(0.1)
        acks = drv.acks_between(t_cut + 1, time.monotonic(), first=0)
        check(acks > 0, f"the driver's n1 session continues elsewhere: {acks} turn(s) acknowledged during the cut")
        t_heal = time.monotonic()
        log_heal = len(n1.stderr())
        q_heal = send_queue_to_redis(n1)
        errs_heal = redis_errors()
        heal()
        print(f"# at the heal, n1's sockets to Redis held {q_heal} unsent byte(s)", flush=True)
        # Wait until n1's sockets to Redis have sent everything they held (a
        # write queued during the cut lands now, or is refused).
        q = None
        while time.monotonic() - t_heal < 40:
            q = send_queue_to_redis(n1)
            if q == 0:
                break
            time.sleep(0.2)
        drained_s = time.monotonic() - t_heal
        check(q == 0, f"after healing, n1's sockets to Redis have nothing left to send within {drained_s:.1f}s "
                      f"({q} bytes)")
        time.sleep(1)
        errs_drained = redis_errors()
        print(f"# Redis refused with these errors between the heal and the drain (n1's late writes among them): "
              f"{ {k: v - errs_heal.get(k, 0) for k, v in errs_drained.items() if v != errs_heal.get(k, 0)} }",
              flush=True)
        hist = history([n2], sid, token)
        seqs = [(h["seq"], h["user"]) for h in hist] if hist else None
        check(seqs == [(1, "probe turn 1 on n1"), (2, "probe turn 2 through n2 during the cut")],
              f"the session taken over holds n2's turn 2 and nothing n1 sent during the cut ({seqs})")
        hist_b = history([n2], sid_b, token_b)
        seqs_b = [(h["seq"], h["user"]) for h in hist_b] if hist_b else None
        if seqs_b and len(seqs_b) > 1:
            note(f"the session nobody took over holds the turn that n1 failed with 'not saved' during the cut: "
                 f"its write reached Redis after the heal ({seqs_b})")
        check(seqs_b is not None and [s for s, _ in seqs_b] in ([1], [1, 2]),
              f"the session left alone holds seq 1, and seq 2 at most once ({seqs_b})")
        # n1 learns it was declared dead, fences itself, rejoins.
        got = wait_states(n2, {"n1": "active"}, timeout=15)
        check(got.get("n1") == "active", f"after healing, n1 rejoins and is active through n2 in "
                                         f"{time.monotonic() - t_heal:.1f}s ({got})")
        after = n1.stderr()[log_heal:]
        check("this node was declared dead" in after, "after healing, n1 logs that it was declared dead")
        # The bench's n1 users get the store's errors (store_unavailable is not
        # retried: exit 4 by the contract); lost and duplicated must still be 0.
        # A bench user whose node answers store_unavailable stops with an error
        # (the client does not retry it: exit 4 by the contract), so the 4 users
        # that start on n1 may fail; lost and duplicated must still be 0.
        bl.finish()
        check(bl.spans(t_cut) and bl.spans(t_heal), "bench runs span the cut and the heal")
        bl.checks("case 2", max_errors=4)
        drv.finish()
        errs = [e for e in drv.errors if e[3] != 0]
        store_named = all(e[3] == 4 and "store" in e[4] for e in errs if e[2] == "n1")
        check(store_named, f"the driver's errors from n1 are exit 4 naming the store ({errs[:4]})")
        drv.verify([n2, n3, n1], "case 2")
        time.sleep(2)  # a late write from n1 would show here too
        check_store(2, "case 2")
    finally:
        explain(nodes, f0)
        for x in (drv, bl):
            if x:
                x.stop.set()
        stop_cluster(nodes)
        for x in (drv, bl):
            if x:
                x.finish(timeout=3)  # done already, unless the case stopped early


def case_redis_cut():
    f0 = len(failures)
    print("# 3. Redis cut off from n1, n2 and n3", flush=True)
    nodes = start_cluster(3)
    n1, n2, n3 = nodes
    drv = bl = None
    try:
        probe = {n.name: open_session(n) for n in nodes}
        for n in nodes:
            sid, token = probe[n.name]
            r = turn([n], sid, token, 1, f"probe turn 1 on {n.name}")
            check(r.returncode == 0, f"a probe session's turn 1 on {n.name} ({last_line(r)})")
        drv = Driver(nodes, [n1, n2, n3])
        bl = BenchLoop(nodes)
        time.sleep(2)
        t_cut = time.monotonic()
        cut([("brg-redis", "brg-n1"), ("brg-redis", "brg-n2"), ("brg-redis", "brg-n3")])
        time.sleep(3.5)  # past the heartbeat expiry: every node refuses at once
        results = {}

        def probe_node(n):
            sid, token = probe[n.name]
            results[n.name] = (brigade("chat", "--host", n.addr, "--open", timeout=60),
                               turn([n], sid, token, 2, f"probe turn 2 on {n.name} during the cut", timeout=60),
                               brigade("cluster", "status", "--host", n.addr, "--json", timeout=60))

        ts = [threading.Thread(target=probe_node, args=(n,)) for n in nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for n in nodes:
            o, t, s = results[n.name]
            check(o.returncode == 4 and "store" in o.stderr and t.returncode == 4 and "store" in t.stderr and
                  s.returncode == 4 and "membership table" in s.stderr,
                  f"during the cut, {n.name} answers open, turn and cluster status with exit 4 and a sentence naming "
                  f"the store (open rc {o.returncode} {last_line(o)[:160]!r}; turn rc {t.returncode} "
                  f"{last_line(t)[:160]!r}; status rc {s.returncode} {last_line(s)[:160]!r})")
        for n in nodes:
            code, body = readyz(n)
            check(code == 503 and "membership table" in body,
                  f"during the cut, {n.name}'s /readyz answers 503 naming the membership table it cannot reach "
                  f"({code}, {body.strip()[:160]!r})")
        while time.monotonic() - t_cut < 8:
            time.sleep(0.1)
        t_heal = time.monotonic()
        logs = [len(n.stderr()) for n in nodes]
        heal()
        # Service resumes: a new session's turn through each node within 30 s.
        resumed = {}
        while time.monotonic() - t_heal < 30 and len(resumed) < 3:
            for n in nodes:
                if n.name in resumed:
                    continue
                r = brigade("chat", "--host", n.addr, "-p", f"after the heal through {n.name}", "-n", "8",
                            "--timeout", "10", timeout=30)
                if r.returncode == 0 and r.stdout.strip():
                    resumed[n.name] = time.monotonic() - t_heal
            time.sleep(0.2)
        check(len(resumed) == 3, f"after healing, a new session's turn succeeds through each node "
                                 f"({ {k: round(v, 1) for k, v in resumed.items()} } s after the heal)")
        deaths = [n.name for n, l0 in zip(nodes, logs) if "this node was declared dead" in n.stderr()[l0:]]
        if deaths:
            note(f"after Redis came back, {', '.join(deaths)} learned it had been declared dead (the first node "
                 f"to reach Redis again marks the others' stale heartbeats dead) and rejoined")
        got = wait_states(n2, {"n1": "active", "n2": "active", "n3": "active"}, timeout=15)
        check(got == {"n1": "active", "n2": "active", "n3": "active"},
              f"all three are active again {time.monotonic() - t_heal:.1f}s after the heal ({got})")
        # During the cut every bench user fails (the store's errors are not
        # retried); lost and duplicated must still be 0.
        bl.finish()
        check(bl.spans(t_cut) and bl.spans(t_heal), "bench runs span the cut and the heal")
        bl.checks("case 3 (across the cut)", max_errors=12)
        drv.finish()
        errs = [e for e in drv.errors]
        check(all(e[3] in (3, 4) for e in errs),
              f"the driver's errors are exit 4 (store) or 3 (moved) ({len(errs)}; {errs[:3]})")
        drv.verify([n1, n2, n3], "case 3")
        for n in nodes:
            sid, token = probe[n.name]
            hist = history(nodes, sid, token)
            seqs = [h["seq"] for h in hist] if hist else None
            check(seqs == [1], f"{n.name}'s probe session holds turn 1 only: turn 2 was refused ({seqs})")
        b2 = Bench(nodes, 12, 4)
        res = b2.result()
        bench_checks("case 3 (a bench after the heal)", res, b2, errors_allowed=False)
        check_store(3, "case 3")
    finally:
        explain(nodes, f0)
        for x in (drv, bl):
            if x:
                x.stop.set()
        stop_cluster(nodes)
        for x in (drv, bl):
            if x:
                x.finish(timeout=3)  # done already, unless the case stopped early


# -- main ---------------------------------------------------------------------------------

def cleanup():
    for p in started:
        if p.poll() is None:
            p.kill()
    for p in started:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    remove_leftovers(quiet=True)


def main():
    global LOGS, MODEL
    if os.geteuid() != 0:
        print("SKIP: partition_test.py needs root (network namespaces, veth pairs, nftables, a route)", flush=True)
        return SKIP
    if CLEANUP_ONLY:
        if not shutil.which("ip"):
            print("SKIP: no ip command (iproute2), so no namespace of this test can exist", flush=True)
            return SKIP
        removed = remove_leftovers(quiet=True)
        print(f"partition cleanup: removed {', '.join(removed) if removed else 'nothing'}")
        return 0
    missing = [c for c in ("ip", "nft", "sysctl", "ss", "redis-server", "redis-cli") if not shutil.which(c)]
    if missing:
        print(f"SKIP: partition_test.py needs {', '.join(missing)} (apt-get install iproute2 nftables procps "
              f"redis-server)", flush=True)
        return SKIP
    if not os.access(BRIGADE, os.X_OK):
        print(f"{BRIGADE} is not an executable", flush=True)
        return 2
    t0 = time.monotonic()
    remove_leftovers()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        build_network()
    except Exception as e:
        # Root without the rights to make namespaces (a container without
        # CAP_SYS_ADMIN or CAP_NET_ADMIN) is a skip; anything else a failure.
        if re.search(r"Operation not permitted|Permission denied", str(e)):
            print(f"SKIP: cannot build the test network here: {e}", flush=True)
            return SKIP
        print(f"FAIL: cannot build the test network: {e}", flush=True)
        return 1
    timings = []
    with tempfile.TemporaryDirectory() as d:
        LOGS = d
        MODEL = os.path.join(d, "tiny.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", MODEL], check=True,
                       capture_output=True)
        redis = subprocess.Popen(nsx("brg-redis", "redis-server", "--bind", REDIS_IP, "--port", str(RPORT),
                                     "--protected-mode", "no", "--save", "", "--appendonly", "yes", "--appendfsync",
                                     "always", "--dir", d, "--logfile", os.path.join(d, "redis.log")),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(redis)
        try:
            for _ in range(100):
                if redis_cli(0, "ping") == "PONG":
                    break
                time.sleep(0.05)
            r = sh(*nsx("brg-cli", "redis-cli", "-h", REDIS_IP, "-p", str(RPORT), "ping"))
            if not check(r.stdout.strip() == "PONG", f"redis-server answers from brg-cli through the router "
                                                      f"({r.stdout.strip()} {r.stderr.strip()})"):
                return 1
            print(f"# network and Redis ready in {time.monotonic() - t0:.1f}s", flush=True)
            for step in (case_peers_cut, case_redis_and_peers_cut, case_redis_cut):
                t_step = time.monotonic()
                f0 = len(failures)
                try:
                    heal()
                    step()
                except Exception as e:  # a case that could not run is a failure; the others still run
                    check(False, f"{step.__name__} raised {type(e).__name__}: {e}")
                took = time.monotonic() - t_step
                timings.append((step.__name__, took, len(failures) - f0))
                print(f"# ({took:.1f}s)", flush=True)
        finally:
            cleanup()
            if failures:  # the nodes' and Redis's logs outlive the run
                keep = tempfile.mkdtemp(prefix="brigade-partition-logs.")
                for f in os.listdir(d):
                    if f.endswith(".log"):
                        shutil.copy(os.path.join(d, f), keep)
                print(f"# logs kept in {keep}", flush=True)
    print("# summary")
    for name, took, n in timings:
        print(f"#   {name:28s} {took:5.1f}s  {'ok' if n == 0 else f'{n} failure(s)'}")
    print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
