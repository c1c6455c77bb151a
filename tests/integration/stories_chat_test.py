#!/usr/bin/env python3
"""A real trained model over `brigade chat` (CTest label `integration`).

`brigade serve -m stories260K.gguf --context 512` (no template in the file:
the raw format), then:
  - `brigade chat -p PROMPT --temp 0 -n 64` prints exactly llama.cpp's
    recorded greedy continuation for each of the three prompts in
    testdata/models/README.md;
  - a multi-turn raw conversation: its ids as the raw format defines them
    (BOS, the first user text, the reply's ids, the next user text tokenized
    as a continuation, ...) are fed to llama.cpp (node-llama-cpp `evaluate`)
    and its greedy reply equals brigade's, turn by turn;
  - `brigade model info` names the raw template and the file's context, and
    the node warns that --context exceeds it.

usage: stories_chat_test.py BRIGADE TESTDATA_DIR
"""
import atexit
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peer"))
import peer_env  # noqa: E402

BRIGADE, TESTDATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(TESTDATA, "models", "stories260K.gguf")
failures = []
started = []


@atexit.register
def kill_leftovers():
    for p in started:
        if p.poll() is None:
            p.kill()


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def recorded_continuations():
    """The prompts and llama-simple's outputs from the model's README."""
    with open(os.path.join(TESTDATA, "models", "README.md"), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for m in re.finditer(r'\$ llama-simple -m stories260K.gguf -n 64 "([^"]+)"\n(.*?)\n```', text, re.S):
        prompt, printed = m.group(1), m.group(2)
        assert printed.startswith("<s> " + prompt), printed[:40]
        out[prompt] = printed[len("<s> " + prompt):]
    return out


def tokenize(text, continuation=False):
    p = subprocess.run([BRIGADE, "model", "tokenize", "-m", MODEL] + (["--continuation"] if continuation else []),
                       input=text.encode(), capture_output=True, check=True)
    return [int(x) for x in p.stdout.split()]


def main():
    peer_env.ensure_peer()
    info = subprocess.run([BRIGADE, "model", "info", MODEL], capture_output=True, text=True)
    check(info.returncode == 0 and "chat template: raw" in info.stdout and "context 128" in info.stdout,
          "model info: the raw template and the file's context of 128")

    node = subprocess.Popen([BRIGADE, "serve", "--port", "0", "--metrics-port", "0", "-m", MODEL, "--context", "512"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.append(node)
    line = node.stdout.readline()
    m = re.match(r"brigade: listening on [0-9.]+:(\d+)", line)
    if not m:
        sys.exit(f"serve did not start: {line!r} {node.stderr.read()[-2000:]}")
    port = m.group(1)

    def chat(*args):
        p = subprocess.run([BRIGADE, "chat", "--port", port, "--temp", "0", *args], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"chat {args} failed ({p.returncode}): {p.stderr[-1000:]}")
        return p.stdout

    recorded = recorded_continuations()
    check(len(recorded) == 3, "three recorded prompts in the model's README")
    for prompt, want in recorded.items():
        got = chat("-p", prompt, "-n", "64")
        got = got[:-1] if got.endswith("\n") else got
        want = want[:-1] if want.endswith("\n") else want
        check(got == want, f"greedy reply to {prompt!r} is llama.cpp's byte for byte")
        if got != want:
            print(f"   brigade:   {got!r}\n   llama.cpp: {want!r}")

    # A multi-turn raw conversation, checked turn by turn against llama.cpp.
    opened = chat("--open").split()
    session, token = opened[0], opened[1]
    turns = ["Once upon a time", " Then the dog", " The end. One day"]
    ids = [1] + tokenize(turns[0])  # BOS, then the first user text
    for i, user in enumerate(turns):
        if i > 0:
            ids += tokenize(user, continuation=True)
        reply = chat("--session", session, "--token", token, "-p", user, "-n", "24")
        reply = reply[:-1] if reply.endswith("\n") else reply
        peer = peer_env.peer(MODEL, ["greedy-ids", "24", "1"], json.dumps({"inputs": [ids]}))[0]
        check(reply == peer["text"], f"raw turn {i + 1}: llama.cpp on the raw ids gives brigade's reply")
        if reply != peer["text"]:
            print(f"   brigade:   {reply!r}\n   llama.cpp: {peer['text']!r}")
        ids += peer["tokens"]

    node.terminate()
    _, err = node.communicate(timeout=60)
    check("--context 512 exceeds the 128 tokens" in err, "the node warned that --context exceeds the file's")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
