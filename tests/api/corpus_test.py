#!/usr/bin/env python3
"""The malformed-request corpus (gen_corpus.py) against a real `brigade serve`
over raw loopback sockets (CTest label `api`).

Starts `brigade serve --port 0 --metrics-port 0 --api-max-body 64KiB
--max-tokens 4` on a synthesized tiny model, opens one durable session (the
corpus's {SESSION}/{TOKEN}), generates the corpus into a temporary folder and
sends every case twice (two passes), each on its own connection with a 10 s
limit, bytes unchanged. Checks:
  - each answer's status is what the case allows: a 4xx, or for a case marked
    "any" (a byte mutation of a valid request that may still be valid, or a
    value the contract leaves open) 200 or a 4xx; a few cases name the status
    (400, 404, 405, 413, ...) and the controls must answer 200;
  - the body of every 4xx is UTF-8 JSON {"error": {"message": "<string>", ...}};
    with --strict, error.type must be a string and error.code / error.param
    what the case names (otherwise differences are listed, not failed);
  - a 200 is a well-formed chat.completion / text_completion (or an SSE stream
    of chunks ending in [DONE]) with at most 4 completion tokens, or a session
    {id, token} (closed again with DELETE, so the second pass measures leaks,
    not sessions);
  - nothing hangs (no answer in 10 s), no connection ends without an answer,
    the node is alive after each pass, /health answers 200, no 5xx shows in
    brigade_http_requests_total, and the corpus's session still has no turns;
  - the node's VmRSS grows by at most --max-rss-growth-mib (10) from the end
    of pass 1 to the end of pass 2.
Prints a table (statuses by kind, RSS) and one JSON line; exits 1 on any
failure. The node is killed whatever happens.

usage: corpus_test.py BRIGADE [--strict] [--keep DIR] [--seed N] [--mutations N]
                      [--passes N] [--max-rss-growth-mib M] [--only SUBSTRING] [--skip ID ...]
"""
import argparse
import atexit
import concurrent.futures
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_corpus  # noqa: E402

REQUEST_TIMEOUT = 10.0
MAX_HANGS_PER_PASS = 16  # then the pass stops (keeps the test inside its CTest timeout)
MAX_COMPLETION_TOKENS = 4  # --max-tokens
started = []


@atexit.register
def kill_leftovers():
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- HTTP over a raw socket ----------------------------------------------------

class Response:
    def __init__(self):
        self.status = None
        self.reason = ""
        self.headers = []  # [(lowercase name, value)]
        self.body = b""
        self.error = None  # why there is no (complete) answer
        self.seconds = 0.0
        self.interim = []  # 1xx statuses before the final one

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


def _dechunk(data):
    """(body, complete) of a chunked body; complete False while more is needed."""
    out = bytearray()
    i = 0
    while True:
        nl = data.find(b"\r\n", i)
        if nl < 0:
            return bytes(out), False
        size_text = data[i:nl].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError(f"bad chunk size {size_text[:20]!r}")
        if size == 0:
            end = data.find(b"\r\n\r\n", nl)  # trailers end with an empty line
            if data[nl:nl + 4] == b"\r\n\r\n" or end >= 0:
                return bytes(out), True
            return bytes(out), False
        if len(data) < nl + 2 + size + 2:
            return bytes(out), False
        out += data[nl + 2:nl + 2 + size]
        i = nl + 2 + size + 2


def _parse(buf, eof):
    """A complete Response from the bytes so far, or None when more are needed."""
    r = Response()
    rest = bytes(buf)
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            if eof:
                r.error = f"connection closed inside the response head ({len(rest)} bytes: {rest[:80]!r})"
                return r
            return None
        lines = rest[:end].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
        if not m:
            r.error = f"bad status line {lines[0][:80]!r}"
            return r
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(b":")
            if not sep:
                r.error = f"bad header line {ln[:80]!r}"
                return r
            headers.append((k.strip().lower().decode("latin-1"), v.strip().decode("latin-1")))
        rest = rest[end + 4:]
        if 100 <= status < 200:
            r.interim.append(status)
            continue
        r.status, r.reason, r.headers = status, (m.group(2) or b"").decode("latin-1"), headers
        break
    te = (r.header("transfer-encoding") or "").lower()
    cl = r.header("content-length")
    if "chunked" in te:
        try:
            body, complete = _dechunk(rest)
        except ValueError as e:
            r.error = str(e)
            return r
        if not complete:
            if eof:
                r.error = "connection closed inside a chunked body"
                return r
            return None
        r.body = body
        return r
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            r.error = f"bad Content-Length {cl!r} in the response"
            return r
        if len(rest) < n:
            if eof:
                r.error = f"connection closed after {len(rest)} of {n} body bytes"
                return r
            return None
        r.body = rest[:n]
        return r
    if not eof:
        return None
    r.body = rest  # close-delimited
    return r


def http(port, method, path, headers=(), body=b"", content_type="application/json", content_length=None,
         chunked=False, timeout=REQUEST_TIMEOUT):
    t0 = time.monotonic()
    deadline = t0 + timeout
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in headers]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                           for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body) if content_length is None else content_length}")
        payload = body
    head.append("Connection: close")
    out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
    r = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        r = Response()
        r.error = f"connect failed: {e}"
        return r
    try:
        s.setblocking(False)
        sent, buf, sending, eof, err = 0, bytearray(), True, False, None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                r = Response()
                r.error = (f"no answer in {timeout:.0f} s (sent {sent} of {len(out)} bytes, "
                           f"received {len(buf)}: {bytes(buf[:120])!r})")
                break
            rl, wl, _ = select.select([s], [s] if sending and sent < len(out) else [], [], left)
            if rl:
                try:
                    data = s.recv(1 << 16)
                except (ConnectionResetError, BrokenPipeError) as e:
                    data, err = b"", e
                if not data:
                    eof = True
                r = _parse(buf + data, eof) if (data or eof) else None
                buf += data
                if r is not None:
                    if r.error and err is not None:
                        r.error += f" ({err.__class__.__name__})"
                    if r.status is None and not r.error:
                        r.error = "no response"
                    break
            if wl:
                try:
                    sent += s.send(out[sent:sent + (1 << 18)])
                except (ConnectionResetError, BrokenPipeError):
                    sending = False  # the server stopped reading; its answer may be there
    finally:
        s.close()
    if len(buf) == 0 and r.error is None and r.status is None:
        r.error = "connection closed without a response"
    r.seconds = time.monotonic() - t0
    return r


# --- checks ----------------------------------------------------------------------

def _strict_json(data):
    """Parses UTF-8 JSON strictly (no NaN/Infinity); raises ValueError."""
    text = data.decode("utf-8")  # strict: invalid UTF-8 raises

    def no_constant(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(text, parse_constant=no_constant)


def allowed(expect, status):
    if expect == "4xx":
        return 400 <= status < 500
    if expect == "any":
        return status == 200 or 400 <= status < 500
    return status in expect


def check_error_body(h, r):
    """(hard problems, soft differences) of a 4xx answer."""
    hard, soft = [], []
    try:
        doc = _strict_json(r.body)
    except (ValueError, UnicodeDecodeError) as e:
        return [f"4xx body is not UTF-8 JSON ({e}): {r.body[:200]!r}"], soft
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return [f"4xx body has no error.message string: {r.body[:200]!r}"], soft
    if not err["message"]:
        soft.append("error.message is empty")
    if not isinstance(err.get("type"), str):
        soft.append(f"error.type is {err.get('type')!r}")
    for f in ("code", "param"):
        if f in h and err.get(f) != h[f]:
            soft.append(f"error.{f} {err.get(f)!r}, contract: {h[f]!r}")
    ct = (r.header("content-type") or "").lower()
    if not ct.startswith("application/json"):
        soft.append(f"4xx Content-Type {ct!r}")
    return hard, soft


def check_ok_body(h, r, path):
    """Problems of a 200 answer (and the session to close, if it opened one)."""
    probs, opened = [], None
    ct = (r.header("content-type") or "").lower()
    base = path.split("?")[0]
    if base in (gen_corpus.CHAT, gen_corpus.COMPL) and ct.startswith("text/event-stream"):
        want = "chat.completion.chunk" if base == gen_corpus.CHAT else "text_completion"
        try:
            text = r.body.decode("utf-8")
        except UnicodeDecodeError as e:
            return [f"stream is not UTF-8 ({e})"], None
        datas = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:")]
        if not datas or datas[-1] != "[DONE]":
            probs.append(f"stream does not end with data: [DONE] (last: {datas[-1][:200] if datas else None!r})")
        for d in datas:
            if d == "[DONE]":
                continue
            try:
                ev = _strict_json(d.encode())
            except ValueError as e:
                probs.append(f"stream event not JSON ({e}): {d[:200]!r}")
                break
            if "error" in ev:
                probs.append(f"stream carries an error event: {d[:200]}")
            elif ev.get("object") != want:
                probs.append(f"stream event object {ev.get('object')!r}, expected {want}")
            u = ev.get("usage")
            if isinstance(u, dict) and isinstance(u.get("completion_tokens"), int) \
                    and u["completion_tokens"] > MAX_COMPLETION_TOKENS:
                probs.append(f"usage.completion_tokens {u['completion_tokens']} over --max-tokens")
        return probs, None
    try:
        doc = _strict_json(r.body)
    except (ValueError, UnicodeDecodeError) as e:
        return [f"200 body is not UTF-8 JSON ({e}): {r.body[:200]!r}"], None
    if not isinstance(doc, dict):
        return [f"200 body is not an object: {r.body[:200]!r}"], None
    if base == gen_corpus.SESS:
        if not (isinstance(doc.get("id"), str) and isinstance(doc.get("token"), str)):
            probs.append(f"sessions 200 without id/token strings: {r.body[:200]!r}")
        else:
            opened = (doc["id"], doc["token"])
        return probs, opened
    want = "chat.completion" if base == gen_corpus.CHAT else "text_completion"
    if doc.get("object") != want:
        probs.append(f"200 object {doc.get('object')!r}, expected {want}: {r.body[:200]!r}")
    ch = doc.get("choices")
    if not (isinstance(ch, list) and len(ch) == 1 and isinstance(ch[0], dict)):
        probs.append(f"200 choices not one object: {r.body[:200]!r}")
    else:
        text = ch[0].get("message", {}).get("content") if base == gen_corpus.CHAT else ch[0].get("text")
        if not isinstance(text, str):
            probs.append(f"200 without the reply text: {r.body[:200]!r}")
        if ch[0].get("finish_reason") not in ("stop", "length"):
            probs.append(f"finish_reason {ch[0].get('finish_reason')!r}")
    u = doc.get("usage")
    if not isinstance(u, dict) or not isinstance(u.get("completion_tokens"), int):
        probs.append(f"200 without usage.completion_tokens: {r.body[:200]!r}")
    elif u["completion_tokens"] > MAX_COMPLETION_TOKENS:
        probs.append(f"usage.completion_tokens {u['completion_tokens']} over --max-tokens {MAX_COMPLETION_TOKENS}")
    return probs, None


# --- the node ------------------------------------------------------------------------

class Node:
    def __init__(self, brigade, model, tmp):
        self.log_path = os.path.join(tmp, "node.log")
        self.errf = open(self.log_path, "w")
        cmd = [brigade, "serve", "--port", "0", "--metrics-port", "0", "--api-max-body", "64KiB",
               "--max-tokens", str(MAX_COMPLETION_TOKENS), "--model", model]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, text=True, errors="replace")
        started.append(self.p)
        line = ""
        if select.select([self.p.stdout], [], [], 60)[0]:
            line = self.p.stdout.readline()
        m = re.match(r"brigade: listening on [0-9.]+:(\d+) metrics [0-9.]+:(\d+) api ([0-9.]+):(\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"serve did not start with an API: {line!r}\n{self.log_tail()}")
        self.mport, self.port = int(m.group(2)), int(m.group(4))
        threading.Thread(target=self.p.stdout.read, daemon=True).start()

    def alive(self):
        return self.p.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        return None

    def log_tail(self, n=3000):
        try:
            self.errf.flush()
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def metrics(self):
        r = http(self.mport, "GET", "/metrics", content_type=None)
        return r.body.decode("utf-8", "replace") if r.status == 200 else ""

    def stop(self):
        if not self.alive():
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return "killed (no exit 20 s after SIGTERM)"


def substitute(text, sess):
    return text.replace("{SESSION}", sess[0]).replace("{TOKEN}", sess[1])


def run_case(node, h, body, sess):
    path = substitute(h["path"], sess)
    headers = [(k, substitute(v, sess)) for k, v in h["headers"]]
    return http(node.port, h["method"], path, headers, body, content_type=h.get("content_type", "application/json"),
                content_length=h.get("content_length"), chunked=h.get("chunked", False)), path


def run_pass(node, cases, sess, strict, pass_no, skip=()):
    """Sends every case but those in `skip` (the ids that hung in an earlier pass: reported there, and each
    costs the whole timeout)."""
    stats = {"codes": {}, "by_kind": {}, "failures": [], "soft": [], "opened": 0, "hangs": 0, "slowest": (0.0, None),
             "seconds": 0.0, "sent": 0, "hung": set(), "skipped": 0}
    t0 = time.monotonic()
    # Cases that play with the framing (a declared Content-Length, chunked) are the ones that may hang: they
    # go first, all at once, so each hang costs the timeout once per pass, not once per case. They open no
    # session and run no model.
    early = {}
    framing = [(h, body) for h, body in cases if h["id"] not in skip and ("content_length" in h or h.get("chunked"))]
    if framing:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(framing)) as ex:
            futs = {h["id"]: ex.submit(run_case, node, h, body, sess) for h, body in framing}
            early = {k: f.result() for k, f in futs.items()}
    for h, body in cases:
        if h["id"] in skip:
            stats["skipped"] += 1
            continue
        r, path = early[h["id"]] if h["id"] in early else run_case(node, h, body, sess)
        stats["sent"] += 1
        key = str(r.status) if r.status is not None else "none"
        stats["codes"][key] = stats["codes"].get(key, 0) + 1
        kind = stats["by_kind"].setdefault(h["kind"], {})
        kind[key] = kind.get(key, 0) + 1
        if r.seconds > stats["slowest"][0]:
            stats["slowest"] = (r.seconds, h["id"])
        probs, soft = [], []
        if r.error:
            probs.append(r.error)
            if "no answer" in r.error:
                stats["hangs"] += 1
                stats["hung"].add(h["id"])
        elif not allowed(h["expect"], r.status):
            probs.append(f"status {r.status}, expected {h['expect']}: {r.body[:300]!r}")
        if r.status is not None and 400 <= r.status < 500 and not r.error:
            hard, soft = check_error_body(h, r)
            probs += hard
        elif r.status == 200 and not r.error:
            p2, opened = check_ok_body(h, r, path)
            probs += p2
            if opened:
                stats["opened"] += 1
                d = http(node.port, "DELETE", f"/v1/sessions/{opened[0]}", [("X-Brigade-Token", opened[1])],
                         content_type=None)
                if d.status != 200:
                    probs.append(f"DELETE of the session it opened: {d.status} {d.error or d.body[:200]!r}")
        if strict:
            probs += soft
        elif soft:
            stats["soft"].append((h, soft))
        if probs:
            stats["failures"].append((h, body, r, probs))
            if not node.alive():
                stats["failures"].append((h, body, r, [f"the node died (exit {node.p.returncode}) at this case"]))
                break
            if stats["hangs"] >= MAX_HANGS_PER_PASS:
                stats["failures"].append((h, body, r, [f"{MAX_HANGS_PER_PASS} hangs: pass {pass_no} stopped"]))
                break
    stats["seconds"] = time.monotonic() - t0
    return stats


def describe(h, body, r, probs):
    got = "no answer" if r.status is None else f"{r.status} {r.body[:240]!r}"
    return (f"  {h['id']}: {h['note'][:140]}\n"
            f"    request: {h['method']} {h['path'][:80]} headers {h['headers']!r:.160} "
            f"content_type {h.get('content_type', 'application/json')!r}"
            f"{' content_length ' + repr(h['content_length']) if 'content_length' in h else ''}"
            f"{' chunked' if h.get('chunked') else ''} body {len(body)} bytes {body[:120]!r}\n"
            f"    expected: {h['expect']}{' code ' + h['code'] if 'code' in h else ''}; got: {got}\n"
            f"    problems: {'; '.join(probs)[:600]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brigade")
    ap.add_argument("--strict", action="store_true", help="error.type/code/param differences fail too")
    ap.add_argument("--keep", help="write the corpus and the node log here (kept)")
    ap.add_argument("--seed", type=int, default=gen_corpus.DEFAULT_SEED)
    ap.add_argument("--mutations", type=int, default=gen_corpus.DEFAULT_MUTATIONS)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--max-rss-growth-mib", type=float, default=10.0)
    ap.add_argument("--only", help="only cases whose id or note contains this")
    ap.add_argument("--skip", action="append", default=[], help="leave out cases whose id contains this (repeatable)")
    a = ap.parse_args()
    t_start = time.monotonic()
    tmp = a.keep or tempfile.mkdtemp(prefix="brigade-api-corpus-")
    os.makedirs(tmp, exist_ok=True)
    failures = []  # sentences
    case_failures = []  # one line per pass
    node = None
    result = {"test": "api_corpus"}
    try:
        corpus_dir = os.path.join(tmp, "corpus")
        shutil.rmtree(corpus_dir, ignore_errors=True)
        n = gen_corpus.generate(corpus_dir, a.seed, a.mutations)
        with open(os.path.join(corpus_dir, "corpus.json")) as f:
            meta = json.load(f)
        cases = list(gen_corpus.iter_cases(corpus_dir))
        if a.only:
            cases = [(h, b) for h, b in cases if a.only in h["id"] or a.only in h["note"]]
        if a.skip:
            cases = [(h, b) for h, b in cases if not any(x in h["id"] for x in a.skip)]
        print(f"corpus: {n} cases (seed {a.seed}, sha256 {meta['sha256'][:16]}), running {len(cases)}", flush=True)

        model = os.path.join(tmp, "tiny.gguf")
        subprocess.run([a.brigade, "model", "synth", "--preset", "tiny", "--seed", "7", "-o", model], check=True,
                       capture_output=True, timeout=120)
        node = Node(a.brigade, model, tmp)
        print(f"node: pid {node.p.pid}, api port {node.port}, metrics port {node.mport}", flush=True)
        r = http(node.port, "GET", "/health", content_type=None)
        if r.status != 200:
            raise RuntimeError(f"GET /health: {r.status} {r.error or r.body[:200]!r}")
        r = http(node.port, "POST", "/v1/sessions", body=b"{}")
        try:
            doc = _strict_json(r.body)
            sess = (doc["id"], doc["token"])
        except Exception:
            raise RuntimeError(f"POST /v1/sessions: {r.status} {r.error or r.body[:300]!r}")
        rss = {"start": node.rss_kib()}
        passes = []
        hung = set()
        for i in range(1, a.passes + 1):
            st = run_pass(node, cases, sess, a.strict, i, hung)
            hung |= st["hung"]
            passes.append(st)
            time.sleep(0.5)
            alive = node.alive()
            rss[f"after_pass{i}"] = node.rss_kib() if alive else None
            print(f"pass {i}: {st['sent']} requests in {st['seconds']:.1f} s, {len(st['failures'])} failing, "
                  f"{st['hangs']} hangs, {st['skipped']} skipped (hung before), "
                  f"slowest {st['slowest'][0]:.2f} s ({st['slowest'][1]}), "
                  f"RSS {rss[f'after_pass{i}']} KiB", flush=True)
            if st["failures"]:
                case_failures.append(f"pass {i}: {len(st['failures'])} failing cases: "
                                     + " ".join(f[0]["id"].split("-")[0] for f in st["failures"]))
            if not alive:
                failures.append(f"the node is not alive after pass {i} (exit {node.p.returncode})")
                break

        # after the passes
        if node.alive():
            r = http(node.port, "GET", "/health", content_type=None)
            if r.status != 200:
                failures.append(f"GET /health after the passes: {r.status} {r.error or r.body[:200]!r}")
            r = http(node.port, "GET", f"/v1/sessions/{sess[0]}", [("X-Brigade-Token", sess[1])], content_type=None)
            try:
                turns = _strict_json(r.body).get("turns")
            except Exception:
                turns = None
            if r.status != 200 or turns != []:
                failures.append(f"the corpus's session should have no turns: {r.status} {r.body[:300]!r}")
            text = node.metrics()
            http_5xx = 0
            for ln in text.splitlines():
                if ln.startswith("brigade_http_requests_total{") and re.search(r'code="5\d\d"', ln):
                    http_5xx += float(ln.rsplit(" ", 1)[1])
            result["metric_http_5xx"] = http_5xx
            result["metric_http_present"] = "brigade_http_requests_total" in text
            if http_5xx:
                failures.append(f"brigade_http_requests_total counts {http_5xx:.0f} 5xx answers")
        growth = None
        if rss.get("after_pass1") is not None and rss.get(f"after_pass{a.passes}") is not None and a.passes > 1:
            growth = rss[f"after_pass{a.passes}"] - rss["after_pass1"]
            if growth > a.max_rss_growth_mib * 1024:
                failures.append(f"VmRSS grew {growth / 1024:.1f} MiB from pass 1 to pass {a.passes} "
                                f"(limit {a.max_rss_growth_mib} MiB)")

        # the report
        print_table(passes, rss, growth)
        shown = set()
        for i, st in enumerate(passes, 1):
            fl = [f for f in st["failures"] if f[0]["id"] not in shown]
            if fl:
                print(f"\nfailing cases, pass {i}: {len(st['failures'])} ({len(fl)} not failing in an earlier pass):")
                for h, _, r, probs in fl:
                    print(f"  {h['id']:22} {r.status if r.status else 'none':>4}  {h['note'][:90]}")
                print(f"details of the first {min(len(fl), 30)}:")
                for f in fl[:30]:
                    print(describe(*f))
                    shown.add(f[0]["id"])
                for f in fl[30:]:
                    shown.add(f[0]["id"])
        if passes and passes[0]["soft"]:
            soft = passes[0]["soft"]
            groups = {}
            for h, s in soft:
                for x in s:
                    g = groups.setdefault((h["kind"], x.split(",")[0].split(" ")[0]), [])
                    g.append((h["id"], x))
            print(f"\ncontract differences (not failures without --strict), pass 1: {len(soft)} cases")
            for (kind, _), ex in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:30]:
                print(f"  {len(ex):4} {kind:13} e.g. {ex[0][0]}: {ex[0][1][:110]}")
        rc = node.stop()
        if rc not in (0, None):
            print(f"note: the node's exit after SIGTERM: {rc}")
        result.update({
            "cases": len(cases), "corpus_sha256": meta["sha256"], "passes": len(passes),
            "codes": [st["codes"] for st in passes], "failing_cases": [len(st["failures"]) for st in passes],
            "contract_differences": len(passes[0]["soft"]) if passes else None,
            "hangs": [st["hangs"] for st in passes], "pass_seconds": [round(st["seconds"], 2) for st in passes],
            "rss_kib": rss, "rss_growth_kib": growth, "node_exit": rc,
        })
    except Exception as e:  # a start failure or a bug here: still a failure, with the node log
        failures.append(f"{e.__class__.__name__}: {e}")
        if node is not None:
            print("node log tail:\n" + node.log_tail())
    finally:
        if node is not None and node.alive():
            node.p.kill()
            node.p.wait()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - t_start, 1)
    failures = case_failures + failures
    result["failures"] = len(failures)
    print()
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("ok: every case answered as allowed, nothing hung, the node lived, RSS flat")
    print(json.dumps(result, sort_keys=True))
    return 1 if failures else 0


def print_table(passes, rss, growth):
    if not passes:
        return
    codes = sorted({c for st in passes for c in st["codes"]}, key=lambda c: (c == "none", c))
    print("\nstatus codes by kind (pass 1):")
    print(f"  {'kind':14}" + "".join(f"{c:>7}" for c in codes) + f"{'cases':>8}")
    for kind, cnt in sorted(passes[0]["by_kind"].items()):
        print(f"  {kind:14}" + "".join(f"{cnt.get(c, 0):>7}" for c in codes) + f"{sum(cnt.values()):>8}")
    for i, st in enumerate(passes, 1):
        print(f"  {'pass ' + str(i):14}" + "".join(f"{st['codes'].get(c, 0):>7}" for c in codes) + f"{st['sent']:>8}")
    print("RSS (VmRSS): " + ", ".join(f"{k} {v / 1024:.1f} MiB" if v else f"{k} -" for k, v in rss.items())
          + (f"; growth pass 1 -> last {growth / 1024:+.2f} MiB" if growth is not None else ""))


if __name__ == "__main__":
    sys.exit(main())
