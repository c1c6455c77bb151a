#!/usr/bin/env python3
"""The images' entrypoint as a process: scale-down and a rolling restart
through the real path, under `brigade bench --verify`.

Three nodes start as a StatefulSet's pods would: `deploy/docker/entrypoint.sh`
with the environment the Helm chart sets (POD_NAME, POD_IP, BRIGADE_* keys,
the config file, and the Secrets as files: the Redis password, the API keys,
the admin token), on a password-protected redis-server with the durability
settings docs/redis.md asks for. Then:
1. the entrypoint execs brigade (the pod's process is the node, so SIGTERM
   reaches it); the node names and advertised addresses come from the pod;
   the API needs the key from the file; a node without the password file
   cannot join;
2. scale-down: SIGTERM of brigade-2 (the StatefulSet removes its highest
   ordinal) while bench --verify drives all three: it exits 0 within its
   drain-grace and no turn fails, is lost or duplicated;
3. a rolling restart: brigade-2 is started again, then each node in turn
   (2, 1, 0, as the StatefulSet's RollingUpdate goes) gets SIGTERM, exits 0,
   and starts again under the same name, waiting for /readyz before the
   next, all under one bench --verify: no turn fails.

usage: entrypoint_test.py BRIGADE_BINARY   (exit 77 without redis-server)
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
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENTRYPOINT = os.path.join(ROOT, "deploy", "docker", "entrypoint.sh")
DRAIN_GRACE = 10  # s, as the chart's drainGraceSeconds
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


class Pod:
    """One node started through the entrypoint, with a pod's environment and fixed ports."""

    def __init__(self, ordinal, ctx):
        self.name = f"brigade-{ordinal}"
        self.ctx = ctx
        self.port, self.mport, self.aport = free_port(), free_port(), free_port()
        self.p = None
        self.starts = 0

    def env(self, with_password=True):
        c = self.ctx
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("BRIGADE_"):
                del e[k]
        e.update({
            "POD_NAME": self.name, "POD_IP": "127.0.0.1", "BRIGADE_BIN": c["brigade"],
            "BRIGADE_CONFIG": os.path.join(ROOT, "config", "brigade.conf"),
            "BRIGADE_HOST": "127.0.0.1", "BRIGADE_PORT": str(self.port), "BRIGADE_METRICS_PORT": str(self.mport),
            "BRIGADE_API_HOST": "127.0.0.1", "BRIGADE_API_PORT": str(self.aport),
            "BRIGADE_API_KEYS_FILE": c["keys"], "BRIGADE_STORE": f"redis://127.0.0.1:{c['rport']}/0",
            "BRIGADE_ADMIN_TOKEN_FILE": c["admin"], "BRIGADE_CLUSTER": "brigade",
            "BRIGADE_DRAIN_GRACE": f"{DRAIN_GRACE}s", "BRIGADE_MODEL": c["model"],
            "BRIGADE_CACHE_DIR": c["dir"], "BRIGADE_MIN_REPLICAS": "1", "BRIGADE_MAX_REPLICAS": "16",
        })
        if with_password:
            e["BRIGADE_STORE_PASSWORD_FILE"] = c["password"]
        return e

    def start(self):
        self.starts += 1
        self.log = os.path.join(self.ctx["dir"], f"{self.name}-{self.starts}.log")
        self.errf = open(self.log, "w")
        self.p = subprocess.Popen(["sh", ENTRYPOINT], env=self.env(), stdout=subprocess.PIPE, stderr=self.errf,
                                  text=True, errors="replace")
        line = self.p.stdout.readline()
        if "listening on" not in line:
            self.p.kill()
            raise RuntimeError(f"{self.name} did not start through the entrypoint: {line!r}\n{self.stderr()[-1500:]}")
        threading.Thread(target=self.p.stdout.read, daemon=True).start()
        return self

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stderr(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}/readyz", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout):
        """SIGTERM (the kubelet's); the exit code and seconds to exit (None: still running after timeout)."""
        t0 = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.errf.close()
        return rc, time.monotonic() - t0


def cluster_status(ctx, pod):
    r = subprocess.run([ctx["brigade"], "cluster", "status", "--host", pod.addr, "--json"], capture_output=True,
                       text=True, timeout=20)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def wait_active(ctx, pods, timeout=20):
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        st = cluster_status(ctx, pods[0])
        got = {n["name"]: (n["state"], n["address"]) for n in (st or {}).get("nodes", [])}
        if all(got.get(p.name, ("",))[0] == "active" for p in pods):
            return got
        time.sleep(0.2)
    return got


def bench(ctx, pods, turns):
    return subprocess.Popen([ctx["brigade"], "bench", "--host", ",".join(p.addr for p in pods), "--sessions", "12",
                             "--turns", str(turns), "-n", "8", "--json", "--verify"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")


def bench_result(load, timeout=300):
    try:
        out, err = load.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        load.kill()
        out, err = load.communicate()
    try:
        return json.loads(out.strip().splitlines()[-1]), err
    except (ValueError, IndexError):
        return {}, err


def clean(res, turns):
    return (res.get("turns") == 12 * turns and res.get("errors") == 0 and res.get("lost") == 0
            and res.get("duplicated") == 0)


def api_models(pod, key):
    req = urllib.request.Request(f"http://127.0.0.1:{pod.aport}/v1/models",
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def main():
    brigade = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "app", "brigade"))
    if not shutil.which("redis-server"):
        print("entrypoint_test: redis-server is not installed (deploy/setup.sh); skipping")
        return 77
    d = tempfile.mkdtemp(prefix="brigade-entry-")
    ctx = {"brigade": brigade, "dir": d, "model": os.path.join(d, "tiny.gguf"), "rport": free_port()}
    subprocess.run([brigade, "model", "synth", "--preset", "tiny", "--seed", "9", "-o", ctx["model"]], check=True,
                   capture_output=True)
    password, key = "pw-" + os.urandom(12).hex(), "sk-" + os.urandom(16).hex()
    for name, text in (("password", password), ("keys", f"# the chart's api-keys Secret\n{key}\n"),
                       ("admin", "admin-" + os.urandom(8).hex())):
        ctx[name] = os.path.join(d, name)
        with open(ctx[name], "w") as f:
            f.write(text + "\n")
        os.chmod(ctx[name], 0o440)
    subprocess.run(["redis-server", "--port", str(ctx["rport"]), "--bind", "127.0.0.1", "--daemonize", "yes",
                    "--dir", d, "--requirepass", password, "--appendonly", "yes", "--appendfsync", "always",
                    "--maxmemory-policy", "noeviction", "--save", "", "--logfile", os.path.join(d, "redis.log"),
                    "--pidfile", os.path.join(d, "redis.pid")], check=True)
    pods = [Pod(i, ctx) for i in range(3)]
    try:
        time.sleep(0.3)
        for p in pods:
            p.start()
        got = wait_active(ctx, pods)
        check(all(got.get(p.name) == ("active", p.addr) for p in pods),
              f"three pods through the entrypoint become active under their pod names, advertised at POD_IP ({got})")
        comm = [open(f"/proc/{p.p.pid}/comm").read().strip() for p in pods]
        check(comm == ["brigade"] * 3, f"the entrypoint execs brigade: the pod's process is the node ({comm})")
        check(api_models(pods[0], key) == 200 and api_models(pods[0], None) == 401,
              "the API takes the key from BRIGADE_API_KEYS_FILE (200 with it, 401 without)")
        bare = Pod(9, ctx)
        r = subprocess.run(["sh", ENTRYPOINT], env=bare.env(with_password=False), capture_output=True, text=True,
                           timeout=30)
        check(r.returncode != 0 and re.search(r"NOAUTH|auth|password", r.stderr, re.I) is not None,
              f"without the password file a node cannot join a password-protected Redis (exit {r.returncode}: "
              f"{r.stderr.strip()[-200:]!r})")
        # An ACL user: redis://NAME@host with the password in the file (Redis 6 ACLs), in a database of its own.
        acl_pw = "acl-" + os.urandom(8).hex()
        subprocess.run(["redis-cli", "-p", str(ctx["rport"]), "-a", password, "--no-auth-warning", "ACL", "SETUSER",
                        "brigade-acl", "on", ">" + acl_pw, "~*", "&*", "+@all"], check=True, capture_output=True)
        acl_file = os.path.join(ctx["dir"], "acl-password")
        with open(acl_file, "w") as f:
            f.write(acl_pw + "\n")
        e = Pod(8, ctx).env()
        e.update({"BRIGADE_STORE": f"redis://brigade-acl@127.0.0.1:{ctx['rport']}/1",
                  "BRIGADE_STORE_PASSWORD_FILE": acl_file})
        acl = subprocess.Popen(["sh", ENTRYPOINT], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = acl.stdout.readline() if select.select([acl.stdout], [], [], 30)[0] else ""
        acl.send_signal(signal.SIGTERM)
        try:
            acl_err = acl.communicate(timeout=DRAIN_GRACE + 10)[1]
        except subprocess.TimeoutExpired:
            acl.kill()
            acl_err = acl.communicate()[1]
        check("listening on" in line, f"redis://NAME@host with --store-password-file joins as the ACL user NAME "
              f"({line.strip()!r} {acl_err.strip()[-200:]!r})")

        print("# scale-down: SIGTERM of brigade-2 under bench --verify", flush=True)
        turns = 40
        load = bench(ctx, pods, turns)
        time.sleep(2.0)
        rc, took = pods[2].stop(timeout=DRAIN_GRACE + 15)
        running = load.poll() is None
        res, err = bench_result(load)
        check(rc == 0 and took < DRAIN_GRACE + 5, f"brigade-2 drains and exits 0 within drain-grace "
                                                  f"({DRAIN_GRACE}s + 5s): exit {rc} after {took:.1f}s")
        check("sessions handed over" in pods[2].stderr(), "brigade-2's log says it handed its sessions over")
        check(running and clean(res, turns), f"bench --verify while brigade-2 drains: still running at the exit "
              f"({running}), turns {res.get('turns')} of {12 * turns}, errors {res.get('errors')}, lost "
              f"{res.get('lost')}, duplicated {res.get('duplicated')} {err.strip()[-300:]!r}")

        print("# rolling restart: brigade-2 back, then 2, 1, 0 in turn under bench --verify", flush=True)
        pods[2].start()
        check(pods[2].wait_ready() and wait_active(ctx, pods).get("brigade-2", ("",))[0] == "active",
              "brigade-2 starts again under its name and becomes active")
        turns = 120
        load = bench(ctx, pods, turns)
        time.sleep(2.0)
        steps = []
        for p in reversed(pods):
            rc, took = p.stop(timeout=DRAIN_GRACE + 15)
            t0 = time.monotonic()
            p.start()
            ready = p.wait_ready()
            steps.append((p.name, rc, round(took, 1), ready, round(time.monotonic() - t0, 1)))
            time.sleep(0.5)
        running = load.poll() is None
        res, err = bench_result(load)
        check(all(s[1] == 0 and s[3] for s in steps),
              f"each node exits 0 on SIGTERM and is ready again before the next (name, exit, drain s, ready, "
              f"start s: {steps})")
        check(running and clean(res, turns), f"bench --verify through the rolling restart: still running after the "
              f"last restart ({running}), turns {res.get('turns')} of {12 * turns}, errors {res.get('errors')}, lost "
              f"{res.get('lost')}, duplicated {res.get('duplicated')} {err.strip()[-300:]!r}")
        got = wait_active(ctx, pods)
        check(all(got.get(p.name, ("",))[0] == "active" for p in pods), f"all three active afterwards ({got})")
    finally:
        for p in pods:
            if p.p and p.p.poll() is None:
                p.stop(timeout=DRAIN_GRACE + 5)
        subprocess.run(["redis-cli", "-p", str(ctx["rport"]), "-a", password, "--no-auth-warning", "shutdown",
                        "nosave"], capture_output=True)
        if failures:
            for p in pods:
                if getattr(p, "log", None):
                    print(f"--- {p.name}\n" + "\n".join(p.stderr().splitlines()[-20:]))
        shutil.rmtree(d, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
