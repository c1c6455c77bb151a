#!/usr/bin/env python3
"""The `brigade` program as a process: the command-line contract of
docs/cli.md (flag forms, help, version, exit codes, one-sentence errors)
and `model tokenize` / `model info` on the real vocabularies, every reference
line of BRIGADE_TESTDATA_DIR/vocab reproduced through standard input.

usage: cli_test.py BRIGADE_BINARY TESTDATA_DIR
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

BIN, DATA = sys.argv[1], sys.argv[2]
VOCAB = os.path.join(DATA, "vocab")
failures = []


def run(args, stdin=b""):
    p = subprocess.run([BIN] + args, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def expect_error(args, code, words, stdin=b""):
    rc, out, err = run(args, stdin)
    check(rc == code, f"{args}: exit {rc}, expected {code} (stderr: {err.strip()})")
    check(err.startswith("brigade: ") and err.count("\n") == 1, f"{args}: error is not one line: {err!r}")
    check(words in err, f"{args}: error {err.strip()!r} does not mention {words!r}")
    check(out == b"", f"{args}: printed to stdout on error: {out!r}")


def reference(name):
    raw = open(os.path.join(VOCAB, name + ".inp"), "rb").read()
    sep = b"\n__ggml_vocab_test__\n"
    texts, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt < 0:
            texts.append(raw[pos:])
            break
        texts.append(raw[pos:nxt])
        pos = nxt + len(sep)
    outs = open(os.path.join(VOCAB, name + ".out"), "rb").read().decode().split("\n")
    return list(zip(texts, outs))


# --version, help
rc, out, _ = run(["--version"])
check(rc == 0 and out.startswith(b"brigade "), "--version")
for args in (["help"], ["--help"], ["help", "model", "info"], ["model", "info", "--help"], ["model", "--help"]):
    rc, out, _ = run(args)
    check(rc == 0 and b"Usage" in out, f"{args} prints usage and exits 0")
rc, out, _ = run(["help", "model", "tokenize"])
check(b"--model" in out, "help model tokenize documents --model")

# bad usage: exit 2, one sentence on stderr
expect_error(["bogus"], 2, "bogus")
expect_error(["model"], 2, "subcommand")
expect_error(["model", "info"], 2, "required")
expect_error(["model", "tokenize"], 2, "required")
expect_error(["model", "info", "--no-such-flag", "x"], 2, "--no-such-flag")
expect_error(["help", "nope"], 2, "no such subcommand")
rc, _, err = run([])
check(rc == 2 and "Usage" in err, "no subcommand: usage on stderr, exit 2")

# tokenize reproduces every reference line, through every flag form
for name in ("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"):
    path = os.path.join(VOCAB, name)
    cases = reference(name)
    check(len(cases) >= 40, f"{name}: reference cases found")
    forms = (["-m", path], ["--model", path], ["--model=" + path], ["-m" + path])
    for i, (text, want) in enumerate(cases):
        rc, out, err = run(["model", "tokenize"] + forms[i % len(forms)], stdin=text)
        check(rc == 0, f"{name} case {i}: exit {rc}: {err}")
        check(out.decode().endswith("\n") and out.count(b"\n") == 1, f"{name} case {i}: one line")
        got = out.decode().split()
        check(got == want.split(), f"{name} case {i} {text!r}: got {' '.join(got)}, want {want.strip()}")

# --pieces: one token per line, bytes of split characters escaped
rc, out, _ = run(["model", "tokenize", "--pieces", "-m", os.path.join(VOCAB, "ggml-vocab-llama-spm.gguf")],
                 stdin="Hi 🦙".encode())
check(rc == 0 and out.decode().split("\n")[:3] == ["6324\t Hi", "29871\t ", "243\t\\xF0"], f"--pieces: {out!r}")

# --parse-special turns control-token text into the token; --continuation drops the space prefix
spm_file = os.path.join(VOCAB, "ggml-vocab-llama-spm.gguf")
rc, out, _ = run(["model", "tokenize", "-m", spm_file, "--parse-special"], stdin=b"</s>")
check(rc == 0 and out == b"2\n", f"--parse-special: </s> is the control token: {out!r}")
rc, out, _ = run(["model", "tokenize", "-m", spm_file], stdin=b"</s>")
check(rc == 0 and out != b"2\n", "without --parse-special </s> is plain text")
rc, plain, _ = run(["model", "tokenize", "-m", spm_file], stdin=b"Hello")
rc2, cont, _ = run(["model", "tokenize", "-m", spm_file, "--continuation"], stdin=b"Hello")
check(rc == 0 and rc2 == 0 and plain == b"15043\n" and cont != plain, f"--continuation: {plain!r} vs {cont!r}")
expect_error(["model", "tokenize", "-m", spm_file, "--continuation", "--parse-special"], 2, "cannot be combined")

# model info, text and JSON, on vocabulary-only files
spm = os.path.join(VOCAB, "ggml-vocab-llama-spm.gguf")
rc, out, _ = run(["model", "info", spm])
text = out.decode()
check(rc == 0, "model info exits 0")
for words in ("architecture:  llama", "32000 tokens", "vocabulary only", "chat template: raw (no template",
              "layers 32", "servable:      no", "cannot serve: no tensors"):
    check(words in text, f"model info text mentions {words!r}")
for args in (["model", "info", "--json", spm], ["model", "info", spm, "--json"]):
    rc, out, _ = run(args)
    check(rc == 0 and out.count(b"\n") == 1, f"{args}: one line of JSON")
    info = json.loads(out)
    check(info["architecture"] == "llama", "json architecture")
    check(info["tokenizer"]["n_tokens"] == 32000 and info["tokenizer"]["model"] == "llama", "json tokenizer")
    check(info["shapes"]["head_count_kv"] == 32 and info["shapes"]["rope_freq_base"] is None, "json shapes")
    check(info["n_tensors"] == 0 and info["gguf_version"] == 3, "json tensors/version")
    check(info["chat_template"]["format"] == "raw" and info["servable"] is False, "json template and servable")

# bad files: exit 2, the message names the file and the problem
with tempfile.TemporaryDirectory() as tmp:
    missing = os.path.join(tmp, "missing.gguf")
    expect_error(["model", "info", missing], 2, missing)
    expect_error(["model", "tokenize", "-m", missing], 2, "No such file")
    garbage = os.path.join(tmp, "garbage.gguf")
    open(garbage, "wb").write(b"not a model at all\n" * 10)
    expect_error(["model", "info", garbage], 2, "garbage.gguf: bad magic")
    cut = os.path.join(tmp, "cut.gguf")
    open(cut, "wb").write(open(spm, "rb").read()[:300000])
    expect_error(["model", "info", cut], 2, "cut.gguf: ")
    expect_error(["model", "tokenize", "-m", cut], 2, "past the end")
    empty = os.path.join(tmp, "empty.gguf")
    open(empty, "wb").close()
    expect_error(["model", "info", empty], 2, "empty file")

    # a well-formed vocabulary with a pre-tokenizer brigade does not implement
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [s("general.architecture") + struct.pack("<I", 8) + s("llama"),
          s("tokenizer.ggml.model") + struct.pack("<I", 8) + s("gpt2"),
          s("tokenizer.ggml.pre") + struct.pack("<I", 8) + s("kimi-k2"),
          s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + s("a") + s("b"),
          s("tokenizer.ggml.merges") + struct.pack("<IIQ", 9, 8, 1) + s("a b")]
    odd = os.path.join(tmp, "llama3ish.gguf")
    open(odd, "wb").write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv))
    expect_error(["model", "tokenize", "-m", odd], 2, "pre-tokenizer 'kimi-k2'")
    rc, out, _ = run(["model", "info", odd])
    check(rc == 0 and b"unusable" in out and b"not supported" in out, "info shows an unsupported tokenizer")

# --device: cpu works, a bad name is bad input, and CUDA without a GPU (or
# without CUDA in the build) is refused with a sentence that says so
with tempfile.TemporaryDirectory() as tmp:
    tiny = os.path.join(tmp, "tiny.gguf")
    rc, _, err = run(["model", "synth", "--preset", "tiny", "--seed", "1", "-o", tiny])
    check(rc == 0, f"synth tiny: {err}")
    rc, out, err = run(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--temp", "0", "--device", "cpu"])
    check(rc == 0 and out, f"generate --device cpu: exit {rc} {err}")
    # Sampling parameters out of range: the one validate() the gateway uses too.
    expect_error(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--temp", "101"], 2, "temperature")
    expect_error(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--top-p", "0"], 2, "top-p")
    expect_error(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--top-k=-1"], 2, "top-k")
    expect_error(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--device", "gpu"], 2,
                 "device 'gpu' is not cpu or cuda:N")
    if not os.path.exists("/dev/nvidia0"):
        rc, out, err = run(["generate", "-m", tiny, "-p", "hi", "-n", "3", "--device", "cuda:0"])
        check(rc != 0 and err.startswith("brigade: ") and
              ("no usable CUDA device" in err or "no CUDA backend" in err) and out == b"",
              f"generate --device cuda:0 without a GPU: exit {rc}, {err.strip()!r}")
    # The HTTP API's start-up refusals: a taken --api-port, a non-loopback
    # --api-host without a key, an unreadable keys file (one sentence each).
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        expect_error(["serve", "--port", "0", "--model", tiny, "--api-port", str(taken.getsockname()[1])], 1,
                     "--api-port")
    expect_error(["serve", "--port", "0", "--model", tiny, "--api-host", "0.0.0.0"], 2, "without an API key")
    expect_error(["serve", "--port", "0", "--model", tiny, "--api-keys-file", os.path.join(tmp, "nope")], 2,
                 "--api-keys-file")
    expect_error(["serve", "--port", "0", "--model", tiny, "--api-port", "http"], 2, "api-port")
    # Scaling keys (docs/scaling.md): bounds and durations refused at start.
    expect_error(["serve", "--port", "0", "--model", tiny, "--store-password-file", os.path.join(tmp, "nope")], 2,
                 "--store-password-file is for a Redis store")
    expect_error(["serve", "--port", "0", "--model", tiny, "--store", "redis://127.0.0.1:1/0",
                  "--store-password-file", os.path.join(tmp, "nope")], 2, "--store-password-file")
    expect_error(["serve", "--port", "0", "--model", tiny, "--min-replicas", "5", "--max-replicas", "3"], 2,
                 "min-replicas 5 is above max-replicas 3")
    expect_error(["serve", "--port", "0", "--model", tiny, "--min-replicas", "0"], 2, "--min-replicas")
    expect_error(["serve", "--port", "0", "--model", tiny, "--ttft-target", "0"], 2, "ttft-target")
    expect_error(["serve", "--port", "0", "--model", tiny, "--scale-interval", "1ms"], 2, "scale-interval")

# `scaling simulate`: the formula on JSON lines; one answer per line, bad lines named.
line = {"t": 5, "members": [{"name": "a", "state": "active", "arrivals": 10, "capacity": 4,
                             "kv_capacity_tokens": 1000, "kv_wanted_tokens": 100}]}
rc, out, err = run(["scaling", "simulate"], (json.dumps(line) + "\n\n" + json.dumps(dict(line, t=10)) + "\n").encode())
answers = [json.loads(x) for x in out.decode().splitlines()]
check(rc == 0 and len(answers) == 2, f"scaling simulate: exit {rc}, {len(answers)} answers ({err.strip()})")
if len(answers) == 2:
    # 10 turns/s over 4 turns/s at 70% utilisation: ceil(3.57) = 4 nodes at once.
    check(answers[0]["desired_replicas"] == 4 and answers[0]["reason"] == "up", f"scaling simulate: {answers[0]}")
    check(answers[1]["desired_replicas"] == 4 and not answers[1]["changed"], f"scaling simulate: {answers[1]}")
    check(abs(answers[0]["load_ratio"]["a"] - 2.5) < 1e-9, f"scaling simulate load ratio: {answers[0]}")
rc, out, err = run(["scaling", "simulate"], (json.dumps(line) + "\n{\"t\": 1, \"members\": 3\n").encode())
check(rc == 2 and "line 2" in err and out.count(b"\n") == 1,
      f"scaling simulate: a bad second line is exit 2 naming it after one answer: {rc} {err.strip()!r}")
expect_error(["scaling", "simulate"], 2, "\"arrivals\" must be a number",
             b'{"t": 1, "members": [{"arrivals": "lots"}]}\n')
expect_error(["scaling", "simulate", "--min-replicas", "0"], 2, "--min-replicas")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
