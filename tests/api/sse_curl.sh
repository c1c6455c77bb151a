#!/usr/bin/env bash
# The raw wire format of brigade's OpenAI-compatible API, read with curl
# (CTest label `api`): a node without API keys (loopback, no Authorization),
# a tiny synthetic model.
#
# Checks: a streamed /v1/chat/completions answers 200 with Content-Type
# text/event-stream; its body is only `data: {json}` lines, each followed by
# a blank line; the first chunk's delta has role "assistant"; one chunk has a
# finish_reason; the last line is `data: [DONE]`. A non-streamed request
# answers application/json with a chat.completion whose text is the streamed
# text (temperature 0).
#
# usage: sse_curl.sh BRIGADE
set -uo pipefail

BRIGADE="${1:?usage: sse_curl.sh BRIGADE}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/brigade-sse.XXXXXX")"
NODE_PID=""
cleanup() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then kill -KILL "$NODE_PID" 2>/dev/null; wait "$NODE_PID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; [[ -f "$TMP/node.err" ]] && { echo "--- node stderr (tail):"; tail -c 1500 "$TMP/node.err"; }; exit 1; }

"$BRIGADE" model synth --preset tiny --seed 7 -o "$TMP/tiny.gguf" >/dev/null 2>"$TMP/synth.err" || fail "model synth exited $?: $(cat "$TMP/synth.err")"
"$BRIGADE" serve --port 0 --metrics-port 0 --max-tokens 32 --model "$TMP/tiny.gguf" >"$TMP/node.out" 2>"$TMP/node.err" &
NODE_PID=$!

API=""
for _ in $(seq 1 300); do
  line=""
  # Only a whole line (the node may be half way through writing it).
  [[ "$(wc -l <"$TMP/node.out")" -ge 1 ]] && line="$(head -n 1 "$TMP/node.out")"
  if [[ "$line" =~ ^brigade:\ listening\ on\ [^[:space:]]+\ metrics\ [^[:space:]]+\ api\ ([^[:space:]]+)$ ]]; then
    API="${BASH_REMATCH[1]}"; break
  fi
  [[ -n "$line" ]] && fail "unexpected first line: $line (want 'brigade: listening on H:P metrics H:M api H:A')"
  kill -0 "$NODE_PID" 2>/dev/null || fail "the node exited before listening"
  sleep 0.1
done
[[ -n "$API" ]] || fail "no listening line within 30 s"
echo "node: api $API"

BODY='{"model":"tiny","messages":[{"role":"user","content":"Table four wants the soup"}],"max_tokens":24,"temperature":0'
curl -sN --max-time 30 -D "$TMP/stream.h" -o "$TMP/stream.b" -H 'Content-Type: application/json' \
     -d "$BODY,\"stream\":true}" "http://$API/v1/chat/completions" || fail "curl (stream) exited $?"
curl -s --max-time 30 -D "$TMP/plain.h" -o "$TMP/plain.b" -H 'Content-Type: application/json' \
     -d "$BODY}" "http://$API/v1/chat/completions" || fail "curl (non-stream) exited $?"

python3 - "$TMP" <<'EOF' || exit 1
import json, sys
tmp = sys.argv[1]
bad = []

def check(cond, what, detail=""):
    print(("ok: " if cond else "FAIL: ") + what + ("" if cond else f" ({detail!r})"))
    if not cond:
        bad.append(what)

def headers(path):
    lines = open(path, encoding="latin-1", newline="").read().split("\r\n")
    status = lines[0]
    h = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            h[k.strip().lower()] = v.strip()
    return status, h

status, h = headers(f"{tmp}/stream.h")
raw = open(f"{tmp}/stream.b", "rb").read()
check(status.split()[1:2] == ["200"], "stream: status 200", status)
check(h.get("content-type", "").split(";")[0].strip() == "text/event-stream", "stream: Content-Type text/event-stream",
      h.get("content-type"))
text = raw.decode("utf-8")
check("\r" not in text, "stream: lines end with \\n (no \\r)")
check(text.endswith("\n\n"), "stream: the body ends with a blank line", repr(text[-40:]))
events = text.split("\n\n")
if events and events[-1] == "":
    events.pop()
malformed = [e for e in events if "\n" in e or not e.startswith("data: ")]
check(not malformed, "stream: each event is one `data: ` line followed by a blank line", repr(malformed[:3]))
check(events[-1:] == ["data: [DONE]"], "stream: the last line is `data: [DONE]`", repr(events[-1:]))
chunks = []
for e in events[:-1]:
    try:
        chunks.append(json.loads(e[len("data: "):]))
    except ValueError as x:
        check(False, "stream: every data line but the last is JSON", f"{e!r}: {x}")
check(len(chunks) >= 2, "stream: several chunks", str(len(chunks)))
check(all(c.get("object") == "chat.completion.chunk" for c in chunks), "stream: object chat.completion.chunk")
first = chunks[0] if chunks else {}
check(((first.get("choices") or [{}])[0].get("delta") or {}).get("role") == "assistant",
      'stream: the first chunk\'s delta has role "assistant"', json.dumps(first))
finish = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and c["choices"][0].get("finish_reason")]
check(len(finish) == 1 and finish[0] in ("stop", "length"), "stream: one chunk has a finish_reason", repr(finish))
streamed = "".join((c["choices"][0].get("delta") or {}).get("content") or "" for c in chunks if c.get("choices"))

status, h = headers(f"{tmp}/plain.h")
check(status.split()[1:2] == ["200"], "non-stream: status 200", status)
check(h.get("content-type", "").split(";")[0].strip() == "application/json", "non-stream: Content-Type application/json",
      h.get("content-type"))
try:
    r = json.loads(open(f"{tmp}/plain.b", "rb").read().decode("utf-8"))
except ValueError as x:
    r = {}
    check(False, "non-stream: the body is JSON", str(x))
ch = (r.get("choices") or [{}])[0]
msg = ch.get("message") or {}
u = r.get("usage") or {}
check(r.get("object") == "chat.completion" and isinstance(r.get("id"), str) and isinstance(r.get("created"), int),
      "non-stream: object chat.completion with id and created", json.dumps(r)[:300])
check(msg.get("role") == "assistant" and isinstance(msg.get("content"), str) and msg["content"],
      "non-stream: an assistant message with text", json.dumps(msg))
check(ch.get("finish_reason") in ("stop", "length") and ch.get("finish_reason") == (finish or [None])[0],
      "non-stream: the finish_reason of the stream", f"{ch.get('finish_reason')} vs {finish}")
check(isinstance(u.get("prompt_tokens"), int) and isinstance(u.get("completion_tokens"), int) and
      u.get("total_tokens") == u["prompt_tokens"] + u["completion_tokens"], "non-stream: usage adds up", json.dumps(u))
check(msg.get("content") == streamed, "the streamed text equals the non-streamed text (temperature 0)",
      f"{streamed!r} vs {msg.get('content')!r}")
sys.exit(1 if bad else 0)
EOF

kill -TERM "$NODE_PID"
for _ in $(seq 1 150); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NODE_PID" 2>/dev/null && fail "the node still runs 15 s after SIGTERM"
wait "$NODE_PID"; rc=$?
NODE_PID=""
[[ $rc -eq 0 ]] || fail "the node exited $rc on SIGTERM"
echo "all passed"
