#!/usr/bin/env python3
"""`brigade serve` as a real process, driven by `brigade chat` and
`brigade bench` over loopback BASP (CTest label `integration`).

Checks, each against a fresh or shared node:
  streaming order and ack (the client verifies chunk order and that the
  streamed text equals the stored reply), 50 concurrent sessions, idempotent
  re-send, overload refused with a clear error and nothing lost, bad input
  refused, wrong token refused without revealing anything, protocol version
  mismatch, a stalled client (SIGSTOP) does not slow the others and its turn
  is cancelled, a session actor crashed by an injected fault restarts with its
  history, SIGTERM drains in-flight turns and exits 0, metrics and health.

usage: serve_test.py BRIGADE
"""
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BRIGADE = sys.argv[1]
failures = []
started = []  # every node process, killed at exit whatever happens


@atexit.register
def kill_leftovers():
    for p in started:
        if p.poll() is None:
            p.kill()


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    else:
        print("ok:", what, flush=True)


class Node:
    def __init__(self, model, *flags):
        self.p = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "--model", model,
                                   *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(self.p)
        line = self.p.stdout.readline()
        m = re.match(r"brigade: listening on ([0-9.]+):(\d+) metrics ([0-9.]+):(\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"serve did not start: {line!r} {self.p.stderr.read()[-2000:]}")
        self.port, self.mport = int(m.group(2)), int(m.group(4))

    def chat(self, *args, stdin=None, timeout=120):
        return subprocess.run([BRIGADE, "chat", "--port", str(self.port), *args], capture_output=True,
                              timeout=timeout, input=stdin)

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name):
        _, text = self.http("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "hung"
        self.stderr = self.p.stderr.read()
        return rc


def bench(node, sessions, turns, n, *extra):
    p = subprocess.run([BRIGADE, "bench", "--port", str(node.port), "--sessions", str(sessions), "--turns",
                        str(turns), "-n", str(n), "--json", *extra], capture_output=True, text=True, timeout=600)
    lines = p.stdout.strip().splitlines()
    return p.returncode, (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}), p.stderr


def streaming_chat(node, text, n, with_ids=False):
    """An interactive `brigade chat` sending one message; returns once the
    first streamed bytes of the reply have arrived. With `with_ids`, the
    session id and token (its first line on stderr) are read into p.sid and
    p.token."""
    p = subprocess.Popen([BRIGADE, "chat", "--port", str(node.port), "-n", str(n), "--temp", "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write((text + "\n").encode())
    p.stdin.close()
    p.stdin = None  # so communicate() does not touch it
    if with_ids:
        line = b""
        while not line.endswith(b"\n"):
            line += os.read(p.stderr.fileno(), 1)
        _, p.sid, p.token = line.decode().split()
    os.read(p.stdout.fileno(), 1)  # blocks until the reply starts streaming
    return p


def err_line(p):
    return p.stderr.decode().strip().splitlines()[-1] if p.stderr.strip() else ""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tiny = os.path.join(tmp, "tiny.gguf")
        small = os.path.join(tmp, "small.gguf")
        subprocess.run([BRIGADE, "model", "synth", "--preset", "tiny", "--seed", "5", "--type", "f16", "-o", tiny],
                       check=True, capture_output=True)

        node = Node(tiny, "--fault-injection", "--restart-backoff", "10ms")
        # health and metrics names
        check(node.http("/healthz")[0] == 200, "/healthz answers 200")
        check(node.http("/readyz")[0] == 200, "/readyz answers 200 when idle")

        # streaming order + ack: chat -p exits 0 once stored; the client checks chunk order itself
        p = node.chat("--open")
        sid, token = p.stdout.decode().split()
        p1 = node.chat("--session", sid, "--token", token, "-p", "Hello kitchen", "-n", "24")
        check(p1.returncode == 0 and p1.stdout, f"chat -p streams and is acknowledged ({err_line(p1)})")
        p2 = node.chat("--session", sid, "--token", token, "-p", "Second order", "-n", "24")
        check(p2.returncode == 0, "a second turn in the same session")
        hist = [json.loads(l) for l in node.chat("--session", sid, "--token", token, "--history").stdout.splitlines()]
        check([h["seq"] for h in hist] == [1, 2], f"history has seq 1 and 2 ({[h['seq'] for h in hist]})")
        check(hist[0]["user"] == "Hello kitchen" and hist[0]["assistant"] + "\n" == p1.stdout.decode(),
              "the stored reply is what the client printed")

        # idempotent re-send: same seq -> same reply, no new turn
        again = node.chat("--session", sid, "--token", token, "-p", "Second order", "--seq", "2")
        check(again.returncode == 0 and again.stdout == p2.stdout, "re-sending seq 2 returns the stored reply")
        hist2 = node.chat("--session", sid, "--token", token, "--history").stdout.splitlines()
        check(len(hist2) == 2, "the re-sent seq did not run a turn twice")
        gap = node.chat("--session", sid, "--token", token, "-p", "x", "--seq", "7")
        check(gap.returncode == 2 and "send seq 3" in err_line(gap), f"a seq gap is refused ({err_line(gap)})")
        other = node.chat("--session", sid, "--token", token, "-p", "different text", "--seq", "1")
        check(other.returncode == 2 and "different message" in err_line(other), "seq 1 with other text is refused")

        # wrong token and unknown session: the same refusal, exit 5
        wrong = node.chat("--session", sid, "--token", "0" * 64, "--history")
        unknown = node.chat("--session", "f" * 32, "--token", token, "--history")
        malformed = node.chat("--session", "nope", "--token", "nope", "--history")
        check(wrong.returncode == 5 and unknown.returncode == 5 and malformed.returncode == 5,
              "wrong token, unknown session and malformed ids exit 5")
        check(err_line(wrong) == err_line(unknown) == err_line(malformed),
              f"their messages reveal nothing ({err_line(wrong)!r})")

        # bad input: exit 2 with a sentence naming the cause
        bad_utf8 = subprocess.run([os.fsencode(BRIGADE), b"chat", b"--port", str(node.port).encode(), b"--session",
                                   sid.encode(), b"--token", token.encode(), b"-p", b"caf\xe9 au lait"],
                                  capture_output=True)
        check(bad_utf8.returncode == 2 and "not valid UTF-8" in err_line(bad_utf8),
              f"invalid UTF-8 is refused ({err_line(bad_utf8)})")
        big = node.chat("--session", sid, "--token", token, "-p", "x" * 20000)
        check(big.returncode == 2 and "more than the limit" in err_line(big), "an oversized message is refused")
        temp = node.chat("--session", sid, "--token", token, "-p", "hi", "--temp", "-1")
        check(temp.returncode == 2 and "temperature" in err_line(temp), "a bad temperature is refused")
        hist3 = node.chat("--session", sid, "--token", token, "--history").stdout.splitlines()
        check(len(hist3) == 2, "refused requests left the session unchanged")

        # protocol version mismatch: a readable sentence, not an interface dump
        env = dict(os.environ, BRIGADE_TEST_PROTOCOL_VERSION="999")
        vm = subprocess.run([BRIGADE, "chat", "--port", str(node.port), "--open"], capture_output=True, env=env)
        check(vm.returncode == 2 and "protocol version 999" in err_line(vm), f"version mismatch ({err_line(vm)})")

        # several --host entries: the first that answers is used; all dead or a bad entry is a clear error
        multi = subprocess.run([BRIGADE, "chat", "--host", f"127.0.0.1:1,127.0.0.1:{node.port}", "-p", "hi", "-n", "4"],
                               capture_output=True, timeout=60)
        check(multi.returncode == 0 and multi.stdout.strip(), f"--host list: a dead entry is skipped ({err_line(multi)})")
        dead = subprocess.run([BRIGADE, "chat", "--host", "127.0.0.1:1,127.0.0.1:2", "-p", "hi"], capture_output=True,
                              timeout=60)
        check(dead.returncode == 1 and "no node answered" in err_line(dead) and "127.0.0.1:2" in err_line(dead),
              f"--host list: every entry dead is named ({err_line(dead)})")
        bad = subprocess.run([BRIGADE, "chat", "--host", "127.0.0.1:x", "-p", "hi"], capture_output=True, timeout=60)
        check(bad.returncode == 2 and "127.0.0.1:x" in err_line(bad), f"--host: a bad entry is named ({err_line(bad)})")

        # 50 concurrent sessions, every acknowledged turn stored exactly once
        rc, res, err = bench(node, 50, 2, 16, "--verify")
        check(rc == 0 and res.get("turns") == 100 and res.get("errors") == 0 and res.get("lost") == 0 and
              res.get("duplicated") == 0, f"50 concurrent sessions x 2 turns ({res}, {err.strip()})")
        check(res.get("mean_batch_size", 0) > 1.5, f"turns were batched (mean batch {res.get('mean_batch_size')})")

        # injected fault: the session actor crashes, restarts from the store with its history
        restarts0 = node.metric("brigade_session_restarts_total")
        f = node.chat("--session", sid, "--token", token, "--fault")
        check(f.returncode == 0, f"fault injected ({err_line(f)})")
        time.sleep(0.3)
        hist4 = [json.loads(l) for l in node.chat("--session", sid, "--token", token, "--history").stdout.splitlines()]
        check([h["seq"] for h in hist4] == [1, 2], "the restarted session has its history")
        p3 = node.chat("--session", sid, "--token", token, "-p", "after the crash", "-n", "8")
        check(p3.returncode == 0, "the restarted session takes the next turn")
        check(node.metric("brigade_session_restarts_total") >= restarts0 + 1, "brigade_session_restarts_total counted")

        _, metrics = node.http("/metrics")
        for name in ("brigade_queue_depth", "brigade_time_to_first_token_seconds", "brigade_generation_latency_seconds",
                     "brigade_time_per_output_token_seconds", "brigade_batch_size", "brigade_engine_busy_ratio",
                     "brigade_tokens_generated_total", "brigade_prompt_tokens_total", "brigade_sessions_active",
                     "brigade_requests_rejected_total", "brigade_session_restarts_total",
                     "brigade_kv_cache_usage_ratio", "brigade_store_latency_seconds"):
            check(name in metrics, f"metric {name} is exported")
        check('brigade_batch_size_count{device="cpu"}' in metrics, "per-device metrics carry a device label")
        rc = node.stop()
        check(rc == 0, f"SIGTERM on an idle node exits 0 ({rc})")

        # overload: a node that runs one sequence at a time with a queue of 1
        tight = Node(tiny, "--max-batch", "1", "--queue-limit", "1", "--batch-window", "0")
        rc, res, err = bench(tight, 12, 2, 24, "--verify")
        check(res.get("refused", 0) > 0, f"overload refusals happened ({res.get('refused')})")
        check(rc == 0 and res.get("errors") == 0 and res.get("turns") == 24 and res.get("lost") == 0 and
              res.get("duplicated") == 0, f"after retries every turn is stored once ({res})")
        check(tight.metric('brigade_requests_rejected_total{reason="overloaded"}') > 0,
              "refusals counted by reason")
        tight.stop()

        # stalled reader and drain need turns that last: the small model
        subprocess.run([BRIGADE, "model", "synth", "--preset", "small", "--seed", "5", "--type", "q8_0", "-o", small],
                       check=True, capture_output=True)
        slow = Node(small, "--stall-timeout", "2s", "--stream-window", "16", "--max-tokens", "400", "--fault-injection",
                    "--drain-grace", "20s")
        rc, base, _ = bench(slow, 4, 1, 24)
        # Interactive mode prints tokens as they arrive: stop the reader once
        # its stream has begun (a fixed sleep would race on a loaded machine).
        stalled = streaming_chat(slow, "Tell me everything", 400)
        stalled.send_signal(signal.SIGSTOP)
        t0 = time.time()
        rc, res, err = bench(slow, 4, 1, 24)
        check(rc == 0 and res.get("errors") == 0, f"other sessions run while a reader is stopped ({res})")
        ratio = res.get("tokens_per_second", 0) / max(base.get("tokens_per_second", 1e-9), 1e-9)
        check(ratio > 0.5, f"the stopped reader does not slow the others (throughput ratio {ratio:.2f})")
        # The turn pauses once the reader is a window behind, then is cancelled
        # stall-timeout (2s) later; poll rather than guess how long that takes.
        deadline = time.time() + 30
        while slow.metric('brigade_requests_rejected_total{reason="stalled"}') < 1 and time.time() < deadline:
            time.sleep(0.2)
        check(slow.metric('brigade_requests_rejected_total{reason="stalled"}') >= 1,
              f"the stalled turn was cancelled after stall-timeout ({time.time() - t0:.1f}s after the stop)")
        stalled.send_signal(signal.SIGCONT)
        out, errout = stalled.communicate(timeout=60)
        check(b"stopped reading" in errout, f"the stalled client is told why ({errout.decode().strip()[-200:]})")

        # a client killed mid-turn cancels its turn (the node sees the link drop)
        gone = streaming_chat(slow, "Tell me everything again", 400)
        gone.kill()
        gone.wait()
        deadline = time.time() + 30
        while slow.metric('brigade_requests_rejected_total{reason="client_gone"}') < 1 and time.time() < deadline:
            time.sleep(0.2)
        check(slow.metric('brigade_requests_rejected_total{reason="client_gone"}') >= 1,
              "a client killed mid-turn (kill -9) cancels its turn")

        # a session crashed mid-turn: the client is told to retry, retries, and the
        # turn is stored exactly once
        crashed = streaming_chat(slow, "Crash during this one", 200, with_ids=True)
        f = slow.chat("--session", crashed.sid, "--token", crashed.token, "--fault")
        out, errout = crashed.communicate(timeout=120)
        hist = [json.loads(l) for l in slow.chat("--session", crashed.sid, "--token", crashed.token,
                                                  "--history").stdout.splitlines()]
        check(f.returncode == 0 and b"brigade:" not in errout and [h["seq"] for h in hist] == [1],
              f"a session crashed mid-turn restarts, the client retries, the turn is stored once "
              f"({errout.decode().strip()[-200:]}, {len(hist)} turns)")

        # SIGTERM drains: an in-flight turn finishes and is acknowledged, new ones are refused, exit 0
        long_turn = streaming_chat(slow, "A long order", 300)
        slow.p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        late = slow.chat("--open")
        check(late.returncode != 0, f"a node that drains refuses new sessions ({err_line(late)})")
        out, errout = long_turn.communicate(timeout=120)
        check(long_turn.returncode == 0 and out.strip() and b"brigade:" not in errout,
              f"the in-flight turn finished during the drain ({errout.decode().strip()[-200:]})")
        rc = slow.p.wait(timeout=60)
        check(rc == 0, f"SIGTERM drains and exits 0 ({rc})")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
