#!/usr/bin/env python3
"""One-off check (not in CTest): node-llama-cpp's prebuilt binding, which the
peer tests use as llama.cpp, agrees with a native `llama-tokenize` built from
the source the same package bundles. For every SentencePiece and BPE
vocabulary of the bundled models/ folder and every served pre-tokenizer name
(the GPT-2 vocabulary relabelled), the tokenizer test's corpus is tokenized
as one text (texts joined by blank lines) by both; brigade's ids are shown
beside them.

usage: native_agreement.py TOKENIZE_BATCH LLAMA_TOKENIZE TESTDATA_DIR
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402
import tokenizer_peer_test as t  # noqa: E402

exe, native, testdata = sys.argv[1:4]
models = os.path.join(peer_env.ensure_llama_src(), "models")
corpus = []
for f in sorted(os.listdir(models)):
    if f.endswith(".inp"):
        corpus += [x for x in t.read_inp(os.path.join(models, f)) if x not in corpus]
text = "\n\n".join(corpus + t.EXTRA_CORPUS)
files = [os.path.join(models, f) for f in sorted(os.listdir(models)) if f.startswith("ggml-vocab-") and f.endswith(".gguf")]
tmp = tempfile.TemporaryDirectory()
listing = subprocess.run([exe, "--list-pre"], capture_output=True, check=True).stdout.decode()
for line in listing.split("\n"):
    if line and not line.split("\t")[2]:
        name = line.split("\t")[0]
        path = os.path.join(tmp.name, f"gpt2-as-{name}.gguf")
        t.relabel(os.path.join(testdata, "vocab", "ggml-vocab-gpt-2.gguf"), path, name)
        files.append(path)
jobs, rows = [], []
for f in files:
    ours, why = t.brigade_tokenize(exe, f, [text])
    if ours is None:
        continue
    p = subprocess.run([native, "-m", f, "--stdin", "--ids", "--no-bos", "--no-parse-special", "--no-escape",
                        "--log-disable"], input=text.encode(), capture_output=True)
    nat = [int(x) for x in p.stdout.decode().strip().strip("[]").replace(",", " ").split()] if p.returncode == 0 else None
    rows.append((f, ours[0], nat))
    jobs.append((f, [text], False))
binding = peer_env.peer_vocab_tokenize_many(jobs)
agree = 0
for (f, ours, nat), b in zip(rows, binding):
    ok = nat == b[0]
    agree += ok
    print(f"{os.path.basename(f):<40} tokens {len(b[0]):>6}  native==binding {ok}  brigade==binding {ours == b[0]}")
print(f"{agree}/{len(rows)} vocabularies: the binding agrees with native llama-tokenize")
sys.exit(0 if agree == len(rows) else 1)
