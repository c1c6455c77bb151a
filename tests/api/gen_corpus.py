#!/usr/bin/env python3
"""Malformed and mutated requests for brigade's OpenAI-compatible HTTP API.

tests/api/corpus_test.py sends every case to a real node; fuzzers can reuse the
generator (`generate`) and the reader (`load_case`, `iter_cases`). The output
depends only on the seed and the mutation count: the same arguments write the
same files, byte for byte (corpus.json records their SHA-256).

usage: gen_corpus.py OUTDIR [--seed N] [--mutations N]

One file per case, OUTDIR/NNNNN-KIND.case:
  line 1   a JSON header (ASCII only), ended by "\\n";
  the rest the raw body bytes, sent unchanged (invalid UTF-8, NULs, ...).
Header fields:
  id              the file name without .case
  kind            the family (invalid_json, truncated, wrong_type, ...)
  note            what the case is, in words
  method, path    the request line; path is sent encoded as Latin-1 (so a
                  "\\u00ff" in the JSON header is the byte 0xff on the wire)
  headers         [[name, value], ...] extra headers, in order, values Latin-1
  content_type    sent as Content-Type; absent: application/json; null: none
  content_length  absent: the body's length; an int or a string: sent as the
                  Content-Length instead (the whole body still follows)
  chunked         true: the body goes as Transfer-Encoding: chunked
  expect          "4xx": any 4xx status; "any": 200 or any 4xx (a mutation that
                  may still be valid, or a value the API contract leaves
                  open); or a list of allowed statuses (e.g. [400], [413])
  code, param     when present, the error.code / error.param the contract
                  names for this case (the runner reports a difference; it
                  fails on it only with --strict)
Placeholders in path and header values, replaced by the runner: {SESSION} and
{TOKEN}, a durable session it opened (POST /v1/sessions) that has no turns.

The corpus assumes the node serves `brigade model synth --preset tiny` saved as
tiny.gguf (model ids "tiny" and "brigade-synth-tiny", context 256 tokens), with
--api-max-body 64KiB (65536 bytes) and no API key. Every valid request in it
asks for max_tokens 1 (the node also caps with --max-tokens).
"""
import argparse
import hashlib
import json
import os
import random
import sys

CHAT, COMPL, SESS = "/v1/chat/completions", "/v1/completions", "/v1/sessions"
LIMIT = 64 * 1024  # --api-max-body 64KiB
DEFAULT_SEED = 20151015
DEFAULT_MUTATIONS = 60  # per mutation seed (9 seeds)

_ABSENT = object()


def j(obj):
    """Compact JSON bytes, UTF-8 (non-ASCII as is)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Valid requests (each also a control case that must answer 200).
CHAT_MIN = {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1}
CHAT_FULL = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
             "max_tokens": 1, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 42, "stop": ["\n", "END"]}
CHAT_PARTS = {"model": "brigade-synth-tiny",
              "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me"}]}],
              "max_completion_tokens": 1, "n": 1, "user": "u1"}
CHAT_STREAM = {"model": "tiny", "messages": [{"role": "user", "content": "Stream it"}], "max_tokens": 1,
               "stream": True, "stream_options": {"include_usage": True}}
CHAT_TURNS = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                           {"role": "user", "content": "c"}], "max_tokens": 1, "stop": "x",
              "response_format": {"type": "text"}, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0}
COMPL_MIN = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 1}
COMPL_STREAM = {"prompt": "Hi", "max_tokens": 1, "temperature": 0, "seed": 1, "stop": ["."], "stream": True}
SESS_EMPTY = {}
SESS_SYSTEM = {"system": "You are terse."}

SEEDS = [(CHAT, CHAT_MIN), (CHAT, CHAT_FULL), (CHAT, CHAT_PARTS), (CHAT, CHAT_STREAM), (CHAT, CHAT_TURNS),
         (COMPL, COMPL_MIN), (COMPL, COMPL_STREAM), (SESS, SESS_EMPTY), (SESS, SESS_SYSTEM)]


def with_(base, **kw):
    d = json.loads(json.dumps(base))
    for k, v in kw.items():
        if v is _ABSENT:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def chat_with_content(content, **kw):
    return with_(CHAT_MIN, messages=[{"role": "user", "content": content}], **kw)


class Corpus:
    def __init__(self):
        self.cases = []

    def add(self, kind, note, body, *, method="POST", path=CHAT, headers=(), expect="4xx", code=None,
            param=None, content_type=_ABSENT, content_length=None, chunked=False):
        if isinstance(body, (dict, list)):
            body = j(body)
        assert isinstance(body, bytes), note
        h = {"kind": kind, "note": note, "method": method, "path": path, "headers": [list(x) for x in headers],
             "expect": expect}
        if content_type is not _ABSENT:
            h["content_type"] = content_type
        if content_length is not None:
            h["content_length"] = content_length
        if chunked:
            h["chunked"] = True
        if code:
            h["code"] = code
        if param:
            h["param"] = param
        self.cases.append((h, body))


# --- families ----------------------------------------------------------------

def controls(c):
    for path, seed in SEEDS:
        c.add("control", f"valid request {path} (must answer 200)", seed, path=path, expect=[200])


INVALID_JSON = [
    b"{", b"}", b"[", b"]", b"{\"", b"{\"model\"", b"{\"model\":", b"{\"model\":\"tiny\"", b"{\"model\":\"tiny\",}",
    b"{,}", b"{\"a\":1,,\"b\":2}", b"{'model':'tiny'}", b"{model:\"tiny\"}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},]}",
    b"{\"messages\":[{\"role\":\"user\",,\"content\":\"hi\"}]}",
    b"{\"max_tokens\":01}", b"{\"max_tokens\":+1}", b"{\"max_tokens\":.5}", b"{\"max_tokens\":1.}",
    b"{\"max_tokens\":1e}", b"{\"max_tokens\":1e+}", b"{\"max_tokens\":0x10}", b"{\"max_tokens\":-}",
    b"{\"max_tokens\":--1}", b"{\"max_tokens\":1_000}", b"{\"temperature\":NaN}", b"{\"temperature\":nan}",
    b"{\"temperature\":Infinity}", b"{\"temperature\":-Infinity}", b"{\"temperature\":inf}",
    b"{\"temperature\":-inf}", b"{\"stream\":True}", b"{\"stream\":TRUE}", b"{\"stream\":tru}",
    b"{\"model\":nul}", b"{\"model\":None}", b"{\"model\":undefined}", b"{\"a\":\"\\x41\"}", b"{\"a\":\"\\u12\"}",
    b"{\"a\":\"\\uZZZZ\"}", b"{\"a\":\"\\a\"}", b"{\"a\":\"\\\"}", b"{\"a\":\"unterminated}", b"{\"a\":\"b\"}x",
    b"{}{}", b"{} []", b"{\"a\":1}/* c */", b"// c\n{}", b"{\"a\":1 \"b\":2}", b"{\"a\" 1}", b"{\"a\"::1}",
    b"{\"a\":[1,2}", b"{\"a\":{\"b\":1]}", b"[}", b"{]", b"\x00", b"{\x00}", b"{\"a\":\"\x00\"}",
    b"{\"a\":\"\x01\"}", b"{\"a\":\"\x1f\"}", b"{\"a\":\"\t\"}", b"{\"a\":\"\n\"}", b"{\"model\":\"tiny\"}\x00",
    b"\x00" * 1000, b"{\"a\":1}}", b"{{}}", b"{\"\":}", b"{:1}", b"{\"a\":\"\\ud800\\\"}",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00",  # a gzip header
    b"GET / HTTP/1.1\r\n\r\n",
]


def invalid_json(c):
    for path in (CHAT, COMPL, SESS):
        for body in INVALID_JSON:
            c.add("invalid_json", f"malformed JSON {body[:40]!r}", body, path=path, expect=[400], code="invalid_json")
        for body in (b" ", b"\n", b"\r\n\t "):
            # sessions: an empty body opens a session, whitespace may read as one
            c.add("invalid_json", f"whitespace-only body {body!r}", body, path=path,
                  expect="any" if path == SESS else [400])
        if path != SESS:
            c.add("invalid_json", "empty body", b"", path=path, expect=[400])
        for body in (b"[]", b"null", b"1", b"\"x\"", b"true", b"[{}]", b"-0", b"1e5"):
            c.add("invalid_json", f"top level not an object: {body!r}", body, path=path, expect=[400])
        c.add("invalid_json", "UTF-8 byte order mark before the object (RFC 8259: may be ignored)",
              b"\xef\xbb\xbf" + j(SEEDS[0][1] if path == CHAT else (COMPL_MIN if path == COMPL else SESS_SYSTEM)),
              path=path, expect="any")
        c.add("invalid_json", "duplicate key (the contract leaves it open)",
              b"{\"max_tokens\":1,"
              + j(CHAT_MIN if path == CHAT else (COMPL_MIN if path == COMPL else SESS_SYSTEM))[1:],
              path=path, expect="any")


def truncated(c):
    for path, seed, step in ((CHAT, CHAT_MIN, 1), (CHAT, CHAT_FULL, 3), (CHAT, CHAT_STREAM, 4), (COMPL, COMPL_MIN, 1),
                             (SESS, SESS_SYSTEM, 1)):
        b = j(seed)
        for n in range(0, len(b), step):
            if n == 0:
                c.add("truncated", "truncated to nothing", b"", path=path, expect="any" if path == SESS else [400])
            else:
                c.add("truncated", f"valid request cut to {n} of {len(b)} bytes", b[:n], path=path, expect=[400],
                      code="invalid_json")


# Values to put where a field is; each field says which are fine, open or bad.
PROBES = [None, True, False, 0, -1, 1.5, "x", "", [], [1], ["x"], {}, {"a": 1}]


def _is(v, *types):
    return any(type(v) is t for t in types)


def classify(field, v):
    """'skip' (valid), 'any' (open), 'bad' (must be refused) or an expected status list."""
    num = _is(v, int, float)
    if field == "model":
        if v is None or v == "":
            return "any"
        if v == "x":
            return [404]
        return "bad"
    if field in ("messages", "message", "role"):
        return "bad"
    if field == "content":
        if v == "x":
            return "skip"
        if v == "" or v == []:
            return "any"
        return "bad"
    if field == "prompt":
        if v == "x":
            return "skip"
        if v == "":
            return "any"
        return "bad"
    if v is None:
        return "any"  # an explicit null reads as absent in OpenAI's API
    if field in ("max_tokens", "max_completion_tokens"):
        return "any" if v == 0 and _is(v, int) else "bad"
    if field == "temperature":
        return "skip" if num and v in (0, 1.5) else "bad"
    if field == "top_p":
        return "bad"  # 0, -1 and 1.5 are out of (0, 1]
    if field == "top_k":  # -1: no limit, as vLLM reads it (the node does the same)
        return "skip" if v == 0 and _is(v, int) else ("any" if v == -1 and _is(v, int) else "bad")
    if field == "seed":
        if _is(v, int):
            return "skip" if v == 0 else "any"
        return "bad"
    if field == "stop":
        if v == "x" or v == ["x"]:
            return "skip"
        if v == "" or v == []:
            return "any"
        return "bad"
    if field == "n":
        return "bad"  # 0, -1: out of range; the rest wrong types
    if field == "stream":
        return "skip" if _is(v, bool) else "bad"
    if field == "stream_options":
        return "skip" if _is(v, dict) else "bad"
    if field == "include_usage":
        return "skip" if _is(v, bool) else "bad"
    if field == "user":
        return "skip" if _is(v, str) else "bad"
    if field == "system":
        if _is(v, str):
            return "skip" if v else "any"
        return "bad"
    raise KeyError(field)


SAMPLING_FIELDS = ["max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream", "user"]


def _typed(c, path, field, body, v, param):
    cl = classify(field, v)
    if cl == "skip":
        return
    if cl == "bad":
        c.add("wrong_type", f"{field} = {json.dumps(v)}", body, path=path, expect=[400], param=param)
    else:
        c.add("wrong_type", f"{field} = {json.dumps(v)} (open)", body, path=path, expect=cl,
              code="model_not_found" if cl == [404] else None)


def wrong_types(c):
    for v in PROBES:
        _typed(c, CHAT, "model", with_(CHAT_MIN, model=v), v, "model")
        _typed(c, CHAT, "messages", with_(CHAT_MIN, messages=v), v, "messages")
        _typed(c, CHAT, "message", with_(CHAT_MIN, messages=[v]), v, None)
        _typed(c, CHAT, "message", with_(CHAT_MIN, messages=[v, {"role": "user", "content": "hi"}]), v, None)
        _typed(c, CHAT, "role", with_(CHAT_MIN, messages=[{"role": v, "content": "hi"}]), v, None)
        _typed(c, CHAT, "content", chat_with_content(v), v, None)
        _typed(c, CHAT, "content", with_(CHAT_MIN, messages=[{"role": "system", "content": v},
                                                             {"role": "user", "content": "hi"}]), v, None)
        for f in SAMPLING_FIELDS + ["max_completion_tokens"]:
            _typed(c, CHAT, f, with_(CHAT_MIN, **{f: v}), v, f)
        _typed(c, CHAT, "stream_options", with_(CHAT_STREAM, stream_options=v), v, "stream_options")
        _typed(c, CHAT, "include_usage", with_(CHAT_STREAM, stream_options={"include_usage": v}), v, None)
        # completions
        _typed(c, COMPL, "model", with_(COMPL_MIN, model=v), v, "model")
        _typed(c, COMPL, "prompt", with_(COMPL_MIN, prompt=v), v, "prompt")
        for f in SAMPLING_FIELDS:
            _typed(c, COMPL, f, with_(COMPL_MIN, **{f: v}), v, f)
        _typed(c, COMPL, "stream_options", with_(COMPL_STREAM, stream_options=v), v, "stream_options")
        # sessions
        _typed(c, SESS, "system", {"system": v}, v, "system")
    # missing required fields
    c.add("wrong_type", "messages absent", with_(CHAT_MIN, messages=_ABSENT), expect=[400], param="messages")
    c.add("wrong_type", "prompt absent", with_(COMPL_MIN, prompt=_ABSENT), path=COMPL, expect=[400], param="prompt")
    c.add("wrong_type", "message without role", with_(CHAT_MIN, messages=[{"content": "hi"}]), expect=[400])
    c.add("wrong_type", "message without content", with_(CHAT_MIN, messages=[{"role": "user"}]), expect=[400])
    for parts in ([{"type": "text"}], [{"text": "hi"}], [{"type": "text", "text": 5}], [{"type": "text", "text": None}],
                  [{"type": 5, "text": "hi"}], [{"type": "bogus", "text": "hi"}], [{}], [None], ["hi"],
                  [{"type": "text", "text": "hi"}, 7], [[{"type": "text", "text": "hi"}]]):
        c.add("wrong_type", f"content parts {json.dumps(parts)}", chat_with_content(parts), expect=[400])


RANGES = {  # field -> [(raw JSON value text, expect)]
    "max_tokens": [("-1", [400]), ("-2147483649", [400]), ("-1e20", [400]), ("2147483648", "any"),
                   ("100000000000000000000", "any"), ("1e20", "any"), ("1e400", "any"), ("-0", "any"),
                   ("1.0", "any"), ("4.000001", [400])],
    "max_completion_tokens": [("-5", [400]), ("9223372036854775808", "any")],
    "temperature": [("-0.0001", [400]), ("100.5", [400]), ("1e308", [400]), ("1e309", [400]), ("-1e309", [400]),
                    ("2.5", "any"), ("1e-400", "any"), ("-0.0", "any"), ("\"NaN\"", [400]),
                    ("\"Infinity\"", [400]), ("\"-inf\"", [400]), ("\"1e999\"", [400]), ("\"0.5\"", [400])],
    "top_p": [("0", [400]), ("-0.5", [400]), ("1.01", [400]), ("1e309", [400]), ("-1e309", [400]),
              ("1e-300", "any"), ("\"nan\"", [400])],
    "top_k": [("-1", "any"), ("-2", [400]), ("-2147483648", [400]), ("2147483648", "any"), ("1e10", "any"),
              ("1000000000000000000000000000000", "any"), ("40.5", [400]), ("\"40\"", [400])],
    "seed": [("-1", "any"), ("18446744073709551616", "any"), ("18446744073709551615", "any"),
             ("-9223372036854775809", "any"), ("10000000000000000000000000000000000000000", "any"),
             ("1.5", [400]), ("1e400", "any"), ("\"42\"", [400])],
    "n": [("2", [400]), ("5", [400]), ("100000000000000000000", [400]), ("1e400", [400]), ("-1", [400]),
          ("0", [400]), ("1.5", [400])],
    "stop": [(json.dumps(["x"] * 9), [400]), (json.dumps("s" * 65), [400]), (json.dumps(["ok", "s" * 65]), [400]),
             (json.dumps([""]), [400]), (json.dumps(["a", None]), [400]), (json.dumps([["a"]]), [400]),
             (json.dumps(["x"] * 2000), [400]), (json.dumps(["x"] * 8), "any"), (json.dumps("s" * 64), "any")],
}


def ranges(c):
    for path, base in ((CHAT, CHAT_MIN), (COMPL, COMPL_MIN)):
        for field, vals in RANGES.items():
            if path == COMPL and field == "max_completion_tokens":
                continue
            for raw, expect in vals:
                d = with_(base, **{field: "@@V@@"})
                body = j(d).replace(b"\"@@V@@\"", raw.encode())
                code = "unsupported_parameter" if field == "n" and raw in ("2", "5") else None
                c.add("range", f"{field} = {raw[:60]}", body, path=path, expect=expect,
                      param=field if expect == [400] else None, code=code)
        # bare NaN-like tokens where each number goes
        for field in ("max_tokens", "temperature", "top_p", "top_k", "seed", "n"):
            for tok in ("NaN", "Infinity", "-Infinity"):
                body = j(with_(base, **{field: "@@V@@"})).replace(b"\"@@V@@\"", tok.encode())
                c.add("range", f"{field} = bare {tok}", body, path=path, expect=[400], code="invalid_json")


def deep_nesting(c):
    def nest_arr(d):
        return b"[" * d + b"]" * d

    def nest_obj(d):
        return b"{\"a\":" * d + b"1" + b"}" * d

    def put(base, field, raw):
        return j(with_(base, **{field: "@@V@@"})).replace(b"\"@@V@@\"", raw)

    for d in (10000, 30000):
        c.add("deep_nesting", f"messages = {d} nested arrays", put(CHAT_MIN, "messages", nest_arr(d)), expect=[400])
        c.add("deep_nesting", f"top level: {d} nested arrays", nest_arr(d), expect=[400])
        c.add("deep_nesting", f"unknown field = {d} nested arrays", put(CHAT_MIN, "extra", nest_arr(d)), expect=[400])
        c.add("deep_nesting", f"prompt = {d} nested arrays", put(COMPL_MIN, "prompt", nest_arr(d)), path=COMPL,
              expect=[400])
        c.add("deep_nesting", f"sessions: system = {d} nested arrays", put(SESS_SYSTEM, "system", nest_arr(d)),
              path=SESS, expect=[400])
    c.add("deep_nesting", "unknown field = 10000 nested objects", put(CHAT_MIN, "extra", nest_obj(10000)), expect=[400])
    c.add("deep_nesting", "top level: 10000 nested objects", nest_obj(10000), expect=[400])
    c.add("deep_nesting", "content = 10000 nested arrays", put(CHAT_MIN, "messages",
          b"[{\"role\":\"user\",\"content\":" + nest_arr(10000) + b"}]"), expect=[400])
    c.add("deep_nesting", "stop = 10000 nested arrays", put(CHAT_MIN, "stop", nest_arr(10000)), expect=[400])
    c.add("deep_nesting", "stream_options = 10000 nested objects",
          put(CHAT_STREAM, "stream_options", nest_obj(10000)), expect=[400])
    c.add("deep_nesting", "alternating [{ 8000 deep", put(CHAT_MIN, "extra", b"[{\"a\":" * 8000 + b"1" + b"}]" * 8000),
          expect=[400])
    c.add("deep_nesting", "60000 unclosed [", b"[" * 60000, expect=[400])
    c.add("deep_nesting", "60000 unclosed [ after a valid prefix", b"{\"messages\":" + b"[" * 60000, expect=[400])
    c.add("deep_nesting", "12000 unclosed {\"a\":", b"{\"a\":" * 12000, expect=[400])
    for d in (33, 64, 200):  # moderate depth in an ignored field: the contract leaves the limit open
        c.add("deep_nesting", f"unknown field = {d} nested arrays", put(CHAT_MIN, "extra", nest_arr(d)), expect="any")


def huge_strings(c):
    n = 60000
    c.add("huge_string", "content of 60000 'a' (prompt over the context)", chat_with_content("a" * n), expect=[400],
          code="context_length_exceeded")
    c.add("huge_string", "content of 30000 'é'", chat_with_content("é" * (n // 2)), expect=[400],
          code="context_length_exceeded")
    c.add("huge_string", "content of 10000 \\u0041 escapes",
          j(chat_with_content("@@V@@")).replace(b"@@V@@", b"\\u0041" * 10000), expect=[400],
          code="context_length_exceeded")
    c.add("huge_string", "2000 user messages", with_(CHAT_MIN, messages=[{"role": "user", "content": "a"}] * 2000),
          expect=[400], code="context_length_exceeded")
    c.add("huge_string", "prompt of 60000 'a'", with_(COMPL_MIN, prompt="a" * n), path=COMPL, expect=[400],
          code="context_length_exceeded")
    c.add("huge_string", "model of 60000 chars", with_(CHAT_MIN, model="m" * n), expect=[404], code="model_not_found")
    c.add("huge_string", "completions: model of 60000 chars", with_(COMPL_MIN, model="m" * n), path=COMPL,
          expect=[404], code="model_not_found")
    c.add("huge_string", "role of 60000 chars", with_(CHAT_MIN, messages=[{"role": "u" * n, "content": "hi"}]),
          expect=[400])
    c.add("huge_string", "stop of 60000 chars", with_(CHAT_MIN, stop="s" * n), expect=[400], param="stop")
    c.add("huge_string", "user of 60000 chars", with_(CHAT_MIN, user="u" * n), expect="any")
    c.add("huge_string", "unknown field of 60000 chars", with_(CHAT_MIN, extra="e" * n), expect="any")
    c.add("huge_string", "unknown key of 60000 chars", with_(CHAT_MIN, **{"k" * n: 1}), expect="any")
    c.add("huge_string", "5000 unknown keys", with_(CHAT_MIN, **{f"k{i}": i for i in range(5000)}), expect="any")
    c.add("huge_string", "sessions: system of 60000 chars", {"system": "s" * n}, path=SESS, expect="any")
    c.add("huge_string", "sessions: 60000-char unknown field", {"x": "s" * n}, path=SESS, expect="any")


BAD_UTF8 = [
    (b"\x80", "lone continuation byte"), (b"\xbf", "lone continuation 0xbf"), (b"\xc0\xaf", "overlong '/' (2 bytes)"),
    (b"\xc1\xbf", "overlong 0x7f"), (b"\xe0\x80\xaf", "overlong '/' (3 bytes)"),
    (b"\xf0\x80\x80\xaf", "overlong '/' (4 bytes)"), (b"\xc0\x80", "overlong NUL (modified UTF-8)"),
    (b"\xed\xa0\x80", "UTF-8-encoded surrogate U+D800"), (b"\xed\xbf\xbf", "UTF-8-encoded surrogate U+DFFF"),
    (b"\xed\xa0\xbd\xed\xb8\x80", "CESU-8 pair"), (b"\xf4\x90\x80\x80", "above U+10FFFF"),
    (b"\xf5\x80\x80\x80", "lead byte 0xf5"), (b"\xf8\x88\x80\x80\x80", "5-byte form"),
    (b"\xfc\x84\x80\x80\x80\x80", "6-byte form"), (b"\xfe", "byte 0xfe"), (b"\xff", "byte 0xff"),
    (b"\xc3", "2-byte sequence cut"), (b"\xe2\x82", "3-byte sequence cut"), (b"\xf0\x9f\x98", "4-byte sequence cut"),
    (b"\xc3\x28", "bad continuation"), (b"\xe2\x28\xa1", "bad second byte"), (b"\xf0\x28\x8c\x28", "bad 4-byte"),
]


def invalid_utf8(c):
    M = b"@@V@@"
    places = [
        ("content", CHAT, j(chat_with_content("ab@@V@@cd"))),
        ("content part text", CHAT, j(chat_with_content([{"type": "text", "text": "@@V@@"}]))),
        ("system content", CHAT, j(with_(CHAT_MIN, messages=[{"role": "system", "content": "@@V@@"},
                                                             {"role": "user", "content": "hi"}]))),
        ("model", CHAT, j(with_(CHAT_MIN, model="tiny@@V@@"))),
        ("role", CHAT, j(with_(CHAT_MIN, messages=[{"role": "user@@V@@", "content": "hi"}]))),
        ("stop", CHAT, j(with_(CHAT_MIN, stop=["@@V@@"]))),
        ("user", CHAT, j(with_(CHAT_MIN, user="@@V@@"))),
        ("unknown field value", CHAT, j(with_(CHAT_MIN, extra="@@V@@"))),
        ("unknown key", CHAT, j(with_(CHAT_MIN, **{"ex@@V@@": 1}))),
        ("known key", CHAT, j(CHAT_MIN).replace(b"\"max_tokens\"", b"\"max_@@V@@tokens\"")),
        ("outside strings", CHAT, j(CHAT_MIN).replace(b",\"max_tokens\"", b",@@V@@\"max_tokens\"")),
        ("prompt", COMPL, j(with_(COMPL_MIN, prompt="Once @@V@@"))),
        ("sessions: system", SESS, j({"system": "@@V@@"})),
        ("sessions: unknown field", SESS, j({"x": "@@V@@"})),
    ]
    for where, path, tmpl in places:
        assert M in tmpl, where
        for seq, what in BAD_UTF8:
            c.add("invalid_utf8", f"{what} in {where}", tmpl.replace(M, seq), path=path, expect=[400])


SURROGATES = [r"\ud800", r"\udc00", r"\udfff", r"\ud800x", r"\ud800\u0041", r"\udc00\ud800", r"\ud800\ud800",
              r"\udbff"]


def surrogates(c):
    M = b"@@V@@"
    places = [
        ("content", CHAT, j(chat_with_content("ab@@V@@")), "4xx"),
        ("content part text", CHAT, j(chat_with_content([{"type": "text", "text": "@@V@@"}])), "4xx"),
        ("model", CHAT, j(with_(CHAT_MIN, model="tiny@@V@@")), "4xx"),
        ("role", CHAT, j(with_(CHAT_MIN, messages=[{"role": "user@@V@@", "content": "hi"}])), "4xx"),
        ("stop", CHAT, j(with_(CHAT_MIN, stop="@@V@@")), "4xx"),
        ("user", CHAT, j(with_(CHAT_MIN, user="@@V@@")), "4xx"),
        ("prompt", COMPL, j(with_(COMPL_MIN, prompt="@@V@@")), "4xx"),
        ("sessions: system", SESS, j({"system": "@@V@@"}), "4xx"),
        ("unknown field value", CHAT, j(with_(CHAT_MIN, extra="@@V@@")), "any"),
    ]
    for where, path, tmpl, expect in places:
        for s in SURROGATES:
            c.add("surrogate", f"escaped lone surrogate {s} in {where}", tmpl.replace(M, s.encode()), path=path,
                  expect=expect)
    # escaped NUL: valid JSON and valid UTF-8
    c.add("nul", "escaped \\u0000 in content", j(chat_with_content("a@@V@@b")).replace(M, b"\\u0000"), expect="any")
    c.add("nul", "escaped \\u0000 after the model name (must not match 'tiny')",
          j(with_(CHAT_MIN, model="tiny@@V@@")).replace(M, b"\\u0000"), expect=[404], code="model_not_found")
    c.add("nul", "escaped \\u0000 after the role", j(with_(CHAT_MIN, messages=[{"role": "user@@V@@", "content": "x"}]))
          .replace(M, b"\\u0000"), expect=[400])
    c.add("nul", "escaped \\u0000 as the stop string", j(with_(CHAT_MIN, stop="@@V@@")).replace(M, b"\\u0000"),
          expect="any")
    c.add("nul", "escaped \\u0000 in prompt", j(with_(COMPL_MIN, prompt="a@@V@@b")).replace(M, b"\\u0000"), path=COMPL,
          expect="any")
    c.add("nul", "escaped \\u0000 in sessions system", j({"system": "a@@V@@"}).replace(M, b"\\u0000"), path=SESS,
          expect="any")
    c.add("nul", "raw NUL in content", j(chat_with_content("a@@V@@b")).replace(M, b"\x00"), expect=[400],
          code="invalid_json")
    c.add("nul", "raw NUL in a key", j(CHAT_MIN).replace(b"\"model\"", b"\"mo\x00del\""), expect=[400],
          code="invalid_json")
    for path, seed in ((CHAT, CHAT_MIN), (COMPL, COMPL_MIN), (SESS, SESS_SYSTEM)):
        for tail in (b"\x00", b"\x00garbage", b"\x00{", b" \x00", b"\x00" * 64):
            c.add("nul", f"valid request then {tail[:12]!r} (trailing bytes after the object)", j(seed) + tail,
                  path=path, expect=[400], code="invalid_json")
    c.add("nul", "raw NULs between tokens", j(CHAT_MIN).replace(b",", b",\x00\x00"), expect=[400], code="invalid_json")
    c.add("nul", "a valid pair \\ud83d\\ude00 (control: valid)",
          j(chat_with_content("@@V@@")).replace(M, b"\\ud83d\\ude00"), expect=[200])


def unsupported(c):
    U = "unsupported_parameter"
    fn = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    chat_fields = [
        ("tools", [fn]), ("tool_choice", "auto"), ("tool_choice", "required"),
        ("tool_choice", {"type": "function", "function": {"name": "f"}}),
        ("functions", [{"name": "f", "parameters": {}}]),
        ("response_format", {"type": "json_object"}),
        ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
        ("logprobs", True), ("top_logprobs", 3), ("top_logprobs", 0), ("n", 2), ("n", 128),
        ("logit_bias", {"1": 5}), ("logit_bias", {"50256": -100}), ("presence_penalty", 0.5),
        ("presence_penalty", -2), ("frequency_penalty", 1), ("frequency_penalty", 1e-9),
    ]
    for base in (CHAT_MIN, CHAT_STREAM):
        for f, v in chat_fields:
            c.add("unsupported", f"{f} = {json.dumps(v)[:60]}{' (stream)' if base is CHAT_STREAM else ''}",
                  with_(base, **{f: v}), expect=[400], code=U, param=f)
    c.add("unsupported", "tools with tool_choice", with_(CHAT_MIN, tools=[fn], tool_choice="auto"), expect=[400],
          code=U)
    for v in ({"type": "bogus"}, "json", {"type": 5}, {}, ["text"]):
        c.add("unsupported", f"response_format = {json.dumps(v)}", with_(CHAT_MIN, response_format=v), expect=[400],
              param="response_format")
    for v in ("none", []):  # may read as "no tools"
        c.add("unsupported", f"tool_choice/tools = {json.dumps(v)} (open)",
              with_(CHAT_MIN, **{("tool_choice" if v == "none" else "tools"): v}), expect="any")
    img = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    aud = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    for parts, what in (([img], "image_url part"), ([{"type": "text", "text": "what is it"}, img], "text + image_url"),
                        ([{"type": "image_url", "image_url": {"url": "http://x/y.png", "detail": "high"}}],
                         "image_url with detail"), ([aud], "input_audio part"),
                        ([{"type": "text", "text": "hear"}, aud], "text + input_audio"),
                        ([{"type": "file", "file": {"file_id": "f"}}], "file part"),
                        ([{"type": "image", "image": "x"}], "image part")):
        c.add("unsupported", what, chat_with_content(parts), expect=[400])
        c.add("unsupported", what + " in an earlier message",
              with_(CHAT_MIN, messages=[{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"},
                                        {"role": "user", "content": "and?"}]), expect=[400])
    for msgs, what in (
            ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "42", "tool_call_id": "c1"}], "last tool"),
            ([{"role": "tool", "content": "42", "tool_call_id": "c1"}, {"role": "user", "content": "hi"}],
             "tool role earlier"),
            ([{"role": "function", "name": "f", "content": "42"}, {"role": "user", "content": "hi"}],
             "function role earlier"),
            ([{"role": "user", "content": "hi"}, {"role": "function", "name": "f", "content": "42"}],
             "last function")):
        c.add("unsupported", what, with_(CHAT_MIN, messages=msgs), expect=[400])
    compl_fields = [("echo", True), ("suffix", "x"), ("best_of", 2), ("best_of", 5), ("prompt", ["a"]),
                    ("prompt", ["a", "b"]), ("prompt", [1, 2, 3]), ("prompt", [[1, 2]]), ("prompt", [["a"]]),
                    ("prompt", []), ("logprobs", 1), ("logprobs", True), ("logit_bias", {"1": 5}),
                    ("presence_penalty", 1), ("frequency_penalty", -1), ("n", 2)]
    for base in (COMPL_MIN, COMPL_STREAM):
        for f, v in compl_fields:
            code = U if not (f == "prompt" and v == []) else None
            c.add("unsupported", f"completions: {f} = {json.dumps(v)}{' (stream)' if base is COMPL_STREAM else ''}",
                  with_(base, **{f: v}), path=COMPL, expect=[400], code=code, param=f)
    # not in the completions API (tools: an unknown field there, ignored) or values that may mean "off"
    for f, v in (("echo", False), ("suffix", None), ("suffix", ""), ("best_of", 1), ("tools", [fn])):
        c.add("unsupported", f"completions: {f} = {json.dumps(v)} (open)", with_(COMPL_MIN, **{f: v}), path=COMPL,
              expect="any")


def structure(c):
    c.add("structure", "messages empty", with_(CHAT_MIN, messages=[]), expect=[400], param="messages")
    # A stateless conversation may end with any role (OpenAI takes it: the
    # reply continues after it); only durable requests need the user's last.
    for msgs, what in (
            ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "last assistant"),
            ([{"role": "system", "content": "sys"}], "only system"),
            ([{"role": "user", "content": "hi"}, {"role": "system", "content": "sys"}], "last system"),
            ([{"role": "assistant", "content": "hello"}], "only assistant")):
        c.add("structure", what + " (stateless: valid)", with_(CHAT_MIN, messages=msgs), expect=[200])
    for msgs, what in (
            ([{"role": "bogus", "content": "hi"}], "role bogus"),
            ([{"role": "", "content": "hi"}], "role empty"),
            ([{"role": "user", "content": "hi"}, {"role": "bogus", "content": "x"}, {"role": "user", "content": "y"}],
             "bogus role in the middle")):
        c.add("structure", what, with_(CHAT_MIN, messages=msgs), expect="4xx")
    for msgs, what in (([{"role": "USER", "content": "hi"}], "role USER"),
                       ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "two user messages"),
                       ([{"role": "user", "content": "hi", "name": "bob"}], "name on a message"),
                       ([{"role": "assistant", "content": None, "tool_calls": []}, {"role": "user", "content": "x"}],
                        "assistant null content with empty tool_calls")):
        c.add("structure", what + " (open)", with_(CHAT_MIN, messages=msgs), expect="any")
    c.add("structure", "role developer (read as system)",
          with_(CHAT_MIN, messages=[{"role": "developer", "content": "d"}, {"role": "user", "content": "x"}]),
          expect=[200])
    c.add("structure", "unknown model", with_(CHAT_MIN, model="gpt-4o"), expect=[404], code="model_not_found",
          param="model")
    c.add("structure", "completions: unknown model", with_(COMPL_MIN, model="gpt-3.5-turbo-instruct"), path=COMPL,
          expect=[404], code="model_not_found", param="model")
    c.add("structure", "model 'tiny.gguf' (the id is the base name without .gguf)", with_(CHAT_MIN, model="tiny.gguf"),
          expect=[404], code="model_not_found")
    c.add("structure", "model ' tiny' (leading space)", with_(CHAT_MIN, model=" tiny"), expect=[404])


def body_size(c):
    def padded_chat(size):
        base = j(chat_with_content(""))
        return j(chat_with_content("a" * (size - len(base))))

    def padded(base, field, size):
        b0 = j(with_(base, **{field: ""}))
        return j(with_(base, **{field: "a" * (size - len(b0))}))

    T = "request_too_large"
    b = padded_chat(LIMIT)
    assert len(b) == LIMIT
    c.add("body_size", "chat body of exactly --api-max-body (not too large; prompt over the context)", b,
          expect=[400], code="context_length_exceeded")
    c.add("body_size", "completions body of exactly --api-max-body", padded(COMPL_MIN, "prompt", LIMIT), path=COMPL,
          expect=[400], code="context_length_exceeded")
    c.add("body_size", "sessions body of exactly --api-max-body", padded(SESS_SYSTEM, "system", LIMIT), path=SESS,
          expect=[200, 400])
    for size in (LIMIT + 1, 70000, 1 << 20, 4 << 20):
        c.add("body_size", f"chat body of {size} bytes", padded_chat(size), expect=[413], code=T)
        c.add("body_size", f"completions body of {size} bytes", padded(COMPL_MIN, "prompt", size), path=COMPL,
              expect=[413], code=T)
        c.add("body_size", f"sessions body of {size} bytes", padded(SESS_SYSTEM, "system", size), path=SESS,
              expect=[413], code=T)
    c.add("body_size", "1 MiB of '[' (too large before malformed)", b"[" * (1 << 20), expect=[413], code=T)
    c.add("body_size", "100000 nested arrays (too large)", b"[" * 100000 + b"]" * 100000, expect=[413], code=T)
    c.add("body_size", "1 MiB of invalid UTF-8", b"\xff" * (1 << 20), expect=[413], code=T)
    # the declared length decides, without waiting for a body that never comes
    for cl in (LIMIT + 1, 10 ** 12):
        c.add("body_size", f"Content-Length {cl} declared, 2 bytes sent", b"{}", content_length=cl, expect=[413],
              code=T)
        c.add("body_size", f"sessions: Content-Length {cl} declared, 2 bytes sent", b"{}", path=SESS,
              content_length=cl, expect=[413], code=T)
    for cl in ("abc", "-1", "1e3", "0x2", "2, 2, 3", "99999999999999999999999999", "+2", ""):
        c.add("body_size", f"Content-Length {cl!r}", b"{}", content_length=cl, expect="4xx")
    c.add("body_size", "two different Content-Length headers (2 and 5)", b"{}", content_length=2,
          headers=[("Content-Length", "5")], expect="4xx")
    c.add("body_size", "chunked body of 100000 bytes", padded_chat(100000), chunked=True, expect=[400, 411, 413, 501])
    c.add("body_size", "chunked small invalid body", b"{\"a\":", chunked=True, expect=[400, 411, 501])
    c.add("body_size", "Expect: 100-continue with a body over the limit", padded_chat(70000),
          headers=[("Expect", "100-continue")], expect=[413, 417], code=T)


def content_types(c):
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
               "application/octet-stream", "application/jsonx", "text/html", "json", "*/*", "application/x-ndjson"):
        c.add("content_type", f"Content-Type {ct}", CHAT_MIN, content_type=ct, expect="4xx")
        c.add("content_type", f"completions: Content-Type {ct}", COMPL_MIN, path=COMPL, content_type=ct, expect="4xx")
    c.add("content_type", "sessions: Content-Type text/plain", SESS_SYSTEM, path=SESS, content_type="text/plain",
          expect="4xx")
    # cpp-httplib drops a header with an empty value: the same as none, read as JSON (docs/api.md)
    c.add("content_type", "empty Content-Type (read as none)", CHAT_MIN, content_type="", expect="any")
    for ct in (None, "application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"):
        c.add("content_type", f"Content-Type {ct!r} (open)", CHAT_MIN, content_type=ct, expect="any")


def session_headers(c):
    body = j(with_(CHAT_MIN, model=_ABSENT))
    ok = [("X-Brigade-Session", "{SESSION}"), ("X-Brigade-Token", "{TOKEN}")]
    for seq in ("-1", "0", "-0", "abc", "1.5", "1e3", "0x1", "1 2", "1,2", "", "99999999999999999999999",
                "18446744073709551616", "9223372036854775808", "1000000", "\xb3", "1\xff"):
        c.add("session", f"X-Brigade-Seq {seq!r}", body, headers=ok + [("X-Brigade-Seq", seq)], expect="4xx")
    c.add("session", "session and token but no seq or key", body, headers=ok, expect=[400])
    c.add("session", "session, no token", body, headers=[("X-Brigade-Session", "{SESSION}"), ("X-Brigade-Seq", "1")],
          expect=[400, 401])
    for tok, what in (("{TOKEN}x", "token with a byte added"), ("x{TOKEN}", "token with a byte before"),
                      ("", "empty token"), ("0" * 64, "zeros"), ("t" * 4000, "4000-byte token"),
                      ("\xff\xfe", "Latin-1 bytes"), ("{TOKEN} {TOKEN}", "token twice"), ("null", "null")):
        c.add("session", f"wrong token: {what}", body, headers=[("X-Brigade-Session", "{SESSION}"),
                                                               ("X-Brigade-Token", tok), ("X-Brigade-Seq", "1")],
              expect=[400, 401])
    for sid, what in (("", "empty"), ("x", "x"), ("../../etc/passwd", "path"), ("%2e%2e", "escaped dots"),
                      ("s" * 4000, "4000 bytes"), ("\xff\xfe", "Latin-1 bytes"), ("{SESSION}x", "id with a byte added"),
                      ("{SESSION}/../x", "id with a path"), ("null", "null"), ("{SESSION}\t1", "id, tab, 1")):
        c.add("session", f"bad session id: {what}", body,
              headers=[("X-Brigade-Session", sid), ("X-Brigade-Token", "{TOKEN}"), ("X-Brigade-Seq", "1")],
              expect=[400, 401])
    c.add("session", "NUL in the session header", body,
          headers=[("X-Brigade-Session", "ab\x00cd"), ("X-Brigade-Token", "{TOKEN}"), ("X-Brigade-Seq", "1")],
          expect="4xx")
    for msgs, what in (([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "last assistant"),
                       ([], "no messages"), ([{"role": "system", "content": "s"}], "last system")):
        c.add("session", f"valid session headers, seq 1, {what}", with_(CHAT_MIN, messages=msgs),
              headers=ok + [("X-Brigade-Seq", "1")], expect=[400])
    c.add("session", "valid session headers, seq 1, malformed JSON", b"{\"messages\":[", headers=ok +
          [("X-Brigade-Seq", "1")], expect=[400])
    c.add("session", "valid session headers, seq 1, tools", with_(CHAT_MIN, tools=[{"type": "function", "function":
                                                                                     {"name": "f"}}]),
          headers=ok + [("X-Brigade-Seq", "1")], expect=[400])
    c.add("session", "valid session headers, seq 1, n 2", with_(CHAT_MIN, n=2), headers=ok + [("X-Brigade-Seq", "1")],
          expect=[400])
    c.add("session", "valid session headers, seq 1, unknown model", with_(CHAT_MIN, model="nope"),
          headers=ok + [("X-Brigade-Seq", "1")], expect=[404])
    c.add("session", "valid session headers, seq 1, last message invalid UTF-8",
          j(chat_with_content("@@V@@")).replace(b"@@V@@", b"\xff"), headers=ok + [("X-Brigade-Seq", "1")],
          expect=[400])
    c.add("session", "unknown session with a token", body, headers=[("X-Brigade-Session", "s-doesnotexist"),
                                                                    ("X-Brigade-Token", "t"), ("X-Brigade-Seq", "1")],
          expect=[401], code="invalid_session")
    # the session routes
    for method, path, headers, expect in (
            ("GET", "/v1/sessions/{SESSION}", [], [401]),
            ("GET", "/v1/sessions/{SESSION}", [("X-Brigade-Token", "wrong")], [401]),
            ("GET", "/v1/sessions/{SESSION}", [("X-Brigade-Token", "")], [401]),
            ("GET", "/v1/sessions/doesnotexist", [("X-Brigade-Token", "{TOKEN}")], [401]),
            ("GET", "/v1/sessions/" + "s" * 3000, [("X-Brigade-Token", "{TOKEN}")], "4xx"),
            ("GET", "/v1/sessions/%ff%fe", [("X-Brigade-Token", "{TOKEN}")], "4xx"),
            ("GET", "/v1/sessions/" + "s" * 8100, [("X-Brigade-Token", "{TOKEN}")], "4xx"),  # near the URI limit
            ("DELETE", "/v1/sessions/{SESSION}", [], [401]),
            ("DELETE", "/v1/sessions/{SESSION}", [("X-Brigade-Token", "{TOKEN}0")], [401]),
            ("DELETE", "/v1/sessions/doesnotexist", [("X-Brigade-Token", "{TOKEN}")], [401]),
            ("POST", "/v1/sessions/{SESSION}", [("X-Brigade-Token", "{TOKEN}")], [405]),
            ("PUT", "/v1/sessions/{SESSION}", [("X-Brigade-Token", "{TOKEN}")], [405]),
            ("PATCH", "/v1/sessions", [], [405]),
            ("GET", "/v1/sessions", [], [404, 405])):
        c.add("session", f"{method} {path[:60]} headers {[h[0] for h in headers]}", b"", method=method, path=path,
              headers=headers, expect=expect, content_type=None)


def routes(c):
    for method, path, expect in (
            ("GET", CHAT, [405]), ("PUT", CHAT, [405]), ("DELETE", CHAT, [405]), ("PATCH", COMPL, [405]),
            ("GET", COMPL, [405]), ("POST", "/v1/models", [405]), ("DELETE", "/v1/models", [405]),
            ("POST", "/health", [405]), ("POST", "/v1/chat/completion", [404]), ("POST", "/v1/embeddings", [404]),
            ("POST", "/v2/chat/completions", [404]), ("POST", "/v1//chat/completions", [404]),
            ("POST", "/V1/CHAT/COMPLETIONS", [404]), ("POST", "/v1/chat/completions/x", [404]),
            ("GET", "/v1/models/gpt-4", [404]), ("GET", "/v1/models/" + "m" * 3000, [404, 414]),
            ("GET", "/v1/models/" + "m" * 8100, "4xx"), ("GET", "/v1/models/" + "m" * 20000, "4xx"),
            ("GET", "/v1/models/tiny%00", [404]), ("POST", "/" + "a" * 6000, "4xx"), ("POST", "/v1/\xff\xfe", "4xx"),
            ("POST", "*", "4xx"), ("BREW", CHAT, "4xx"), ("GET", "/v1/models/../../etc/passwd", [404])):
        c.add("route", f"{method} {path[:60]}", j(CHAT_MIN) if method in ("POST", "PUT", "PATCH") else b"",
              method=method, path=path, expect=expect, content_type="application/json" if method != "GET" else None,
              code="model_not_found" if path == "/v1/models/gpt-4" else None)


# --- byte mutations of valid requests ------------------------------------------

class Rng:
    """Deterministic across Python versions: only getrandbits."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def below(self, n):
        return self.r.getrandbits(32) % n if n > 0 else 0

    def pick(self, seq):
        return seq[self.below(len(seq))]


INSERTS = [b"{", b"}", b"[", b"]", b"\"", b",", b":", b"\\", b" ", b"0", b"-", b"e", b".", b"n", b"t", b"f",
           b"\x00", b"\x80", b"\xff", b"\xc0", b"\xe2\x82", b"null", b"true", b"1e999", b"-1", b"\\u", b"\\ud800",
           b"NaN", b"[[[[", b"]]]]", b"\"\":", b",\"n\":2", b",\"tools\":[]", b"\n", b"\t"]


def mutate(rng, b):
    b = bytearray(b)
    ops = 1 + rng.below(3)
    what = []
    for _ in range(ops):
        op = rng.below(8)
        if not b:
            op = 2
        i = rng.below(len(b) + 1)
        if op == 0 and i < len(b):  # bit flip
            bit = rng.below(8)
            b[i] ^= 1 << bit
            what.append(f"flip@{i}.{bit}")
        elif op == 1 and i < len(b):  # delete a span
            n = 1 + rng.below(min(8, len(b) - i))
            del b[i:i + n]
            what.append(f"del@{i}+{n}")
        elif op == 2:  # insert a token
            t = rng.pick(INSERTS)
            b[i:i] = t
            what.append(f"ins@{i}:{bytes(t)!r}")
        elif op == 3:  # insert random bytes
            n = 1 + rng.below(4)
            t = bytes(rng.below(256) for _ in range(n))
            b[i:i] = t
            what.append(f"rnd@{i}+{n}")
        elif op == 4 and i < len(b):  # replace one byte
            b[i] = rng.below(256)
            what.append(f"set@{i}")
        elif op == 5 and len(b) > 2:  # duplicate a span
            j0 = rng.below(len(b) - 1)
            n = 1 + rng.below(min(16, len(b) - j0))
            b[i:i] = b[j0:j0 + n]
            what.append(f"dup@{j0}+{n}->{i}")
        elif op == 6 and len(b) > 1:  # swap two bytes
            k = rng.below(len(b))
            i = min(i, len(b) - 1)
            b[i], b[k] = b[k], b[i]
            what.append(f"swap@{i},{k}")
        else:  # truncate
            b = b[:i]
            what.append(f"cut@{i}")
    return bytes(b), " ".join(what)


def mutations(c, rng, per_seed):
    for path, seed in SEEDS:
        src = j(seed)
        for _ in range(per_seed):
            body, what = mutate(rng, src)
            c.add("mutation", f"mutated {path} seed {src[:40]!r}: {what}", body, path=path, expect="any")


# --- output ------------------------------------------------------------------

def build(seed=DEFAULT_SEED, per_seed=DEFAULT_MUTATIONS):
    c = Corpus()
    controls(c)
    invalid_json(c)
    truncated(c)
    wrong_types(c)
    ranges(c)
    deep_nesting(c)
    huge_strings(c)
    invalid_utf8(c)
    surrogates(c)
    unsupported(c)
    structure(c)
    body_size(c)
    content_types(c)
    session_headers(c)
    routes(c)
    mutations(c, Rng(seed), per_seed)
    for i, (h, _) in enumerate(c.cases):
        h["id"] = f"{i:05d}-{h['kind']}"
    return c.cases


def encode_case(header, body):
    return json.dumps(header, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\n" + body


def generate(outdir, seed=DEFAULT_SEED, per_seed=DEFAULT_MUTATIONS):
    """Writes the corpus into `outdir` (created); returns the number of cases."""
    os.makedirs(outdir, exist_ok=True)
    digest = hashlib.sha256()
    cases = build(seed, per_seed)
    for h, body in cases:
        data = encode_case(h, body)
        digest.update(data)
        with open(os.path.join(outdir, h["id"] + ".case"), "wb") as f:
            f.write(data)
    kinds = {}
    for h, _ in cases:
        kinds[h["kind"]] = kinds.get(h["kind"], 0) + 1
    with open(os.path.join(outdir, "corpus.json"), "w") as f:
        json.dump({"seed": seed, "mutations_per_seed": per_seed, "cases": len(cases), "kinds": kinds,
                   "sha256": digest.hexdigest()}, f, indent=1, sort_keys=True)
    return len(cases)


def load_case(path):
    """(header dict, body bytes) of one .case file."""
    with open(path, "rb") as f:
        data = f.read()
    nl = data.index(b"\n")
    return json.loads(data[:nl].decode("ascii")), data[nl + 1:]


def iter_cases(outdir):
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".case"):
            yield load_case(os.path.join(outdir, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--mutations", type=int, default=DEFAULT_MUTATIONS, help="mutations per valid seed request")
    a = ap.parse_args()
    n = generate(a.outdir, a.seed, a.mutations)
    with open(os.path.join(a.outdir, "corpus.json")) as f:
        meta = json.load(f)
    print(f"gen_corpus: {n} cases in {a.outdir} (seed {a.seed}, sha256 {meta['sha256'][:16]})")
    for k, v in meta["kinds"].items():
        print(f"  {k:14} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
