#!/usr/bin/env python3
"""brigade's tokenizers against llama.cpp, the release node-llama-cpp bundles.

1. Every ggml-vocab-*.gguf in the bundled llama.cpp source (models/): the
   SentencePiece and BPE ones must reproduce their .inp/.out reference
   exactly, and agree with llama.cpp (the prebuilt binding, vocabOnly) on a
   broad corpus, with and without special-token parsing; the others must be
   refused with a sentence naming their tokenizer model.
2. Every pre-tokenizer name brigade serves: the shared GPT-2 vocabulary
   relabelled with that name (llama.cpp chooses expressions by name) is
   tokenized by brigade and by llama.cpp on the corpus; ids must be identical.
   Every name brigade refuses is refused with a sentence naming it.
Where llama.cpp disagrees with its own .out file, llama.cpp is followed and the
difference is reported. A summary goes to tokenizer_peer.json in the working
directory.

usage: tokenizer_peer_test.py TOKENIZE_BATCH_EXE TESTDATA_DIR
"""
import concurrent.futures
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402

EXTRA_CORPUS = [
    # code
    "def f(x):\n    return x**2  # square\n\n\tif (a && b) { c->d[i] = 0x1F; }\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    # long digit runs
    "1234567890123456789012345678901234567890 3.14159265358979 1,000,000 ١٢٣٤٥ ๑๒๓",
    "0000000 9999999999 12 345 6789",
    # CJK, Japanese, Korean
    "我们的生活很好。北京欢迎你！人工智能是未来。",
    "日本語のテキストです。カタカナとひらがな、漢字。ｶﾀｶﾅ",
    "안녕하세요 세계! 한국어 텍스트입니다.",
    # Arabic, Hebrew, Devanagari, Thai
    "مرحبا بالعالم! هذا نص عربي، مع أرقام ٣٤٥.",
    "שלום עולם, זה טקסט בעברית.",
    "नमस्ते दुनिया। यह हिंदी पाठ है। क्षत्रिय",
    "สวัสดีชาวโลก ภาษาไทย",
    # emoji with ZWJ, flags, skin tones, variation selectors
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 ok ❤️ 🇩🇪🇯🇵 🦙",
    # combining marks, Latin extended, Greek, Cyrillic
    "e\u0301 a\u0308 n\u0303 Ǆungla ǅ ǆ Ὀδυσσεύς Привет, мир! ǲ",
    "Zalgo: Z\u0351\u036b\u0343a\u0352\u0310l\u0315g\u0358o\u0358",
    # whitespace runs, non-ASCII spaces, line separators
    "a  b   c    d\t\te\n\n\nf \n \n g\r\n\r\nh",
    "   leading and trailing   ",
    "nbsp\u00a0here\u3000ideographic\u2028line\u2029para\u0085nel\u200bzwsp",
    "\n\n\n\n",
    "     ",
    # contractions in both cases
    "I'm you're he's we'll they've I'd don't CAN'T WON'T I'LL YOU'RE SHE'S We'Ve It'D",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
    # punctuation and symbols
    "Hello, world! How's it going? (Well...) [ok] {yes} <no> a/b\\c |x| ~y~ `z` $5 + 3 = 8 ^_^",
    "«quotes» „Anführung“ —dash– …ellipsis ‘single’ “double” ¿Qué? ¡Sí!",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    # private use, unassigned, the last code points
    "private \ue000\U000f0000 unassigned \u0378\u0530 last \U0010ffff \U0010fffd end",
    # mixed case words (tekken, gpt-4o rules)
    "CamelCaseWord HTMLParser iPhone McDonald's ÉCOLE éCole XMLHttpRequest",
]

SPECIAL_CORPUS = [
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] Hello [/INST] Hi</s>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|>text<|endoftext|>",
    "<|user|>\nHi<|end|>\n<|assistant|>\n",
    "<start_of_turn>user\nHi<end_of_turn>\n",
    "plain text with </s> inside and <unk> too",
]


def read_inp(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n__ggml_vocab_test__\n")[:-1]


def read_out(path):
    with open(path, encoding="utf-8") as f:
        return [[int(x) for x in line.split()] for line in f.read().split("\n")[:-1]]


def brigade_tokenize(exe, vocab, texts, special=False):
    data = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    p = subprocess.run([exe, vocab] + (["--parse-special"] if special else []), input=data, capture_output=True,
                       timeout=600)
    if p.returncode == 2:
        return None, p.stderr.decode().strip()
    if p.returncode != 0:
        raise RuntimeError(f"tokenize_batch failed on {vocab}: {p.stderr.decode()[-2000:]}")
    lines = p.stdout.decode().split("\n")[:-1]
    return [[int(x) for x in line.split()] for line in lines], ""


def relabel(src, dst, pre):
    """Copies a tensor-free GGUF file with tokenizer.ggml.pre set to `pre`."""
    with open(src, "rb") as f:
        data = f.read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF" and version == 3 and n_tensors == 0, src
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    at = 24

    def skip_value(t, at):
        if t in sizes:
            return at + sizes[t]
        if t == 8:
            (n,) = struct.unpack_from("<Q", data, at)
            return at + 8 + n
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, at)
            at += 12
            if et in sizes:
                return at + n * sizes[et]
            for _ in range(n):
                at = skip_value(et, at)
            return at
        raise ValueError(f"GGUF value type {t}")

    kvs = []
    for _ in range(n_kv):
        start = at
        (klen,) = struct.unpack_from("<Q", data, at)
        key = data[at + 8:at + 8 + klen].decode()
        at += 8 + klen
        (t,) = struct.unpack_from("<I", data, at)
        at = skip_value(t, at + 4)
        if key != "tokenizer.ggml.pre":
            kvs.append(data[start:at])
    k = b"tokenizer.ggml.pre"
    v = pre.encode()
    kvs.append(struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v)
    with open(dst, "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)) + b"".join(kvs))


def compare(label, texts, ours, theirs, failures, limit=3):
    same = sum(1 for a, b in zip(ours, theirs) if a == b)
    if same != len(texts) or len(ours) != len(texts) or len(theirs) != len(texts):
        shown = 0
        for t, a, b in zip(texts, ours, theirs):
            if a != b and shown < limit:
                failures.append(f"{label}: {t[:60]!r}\n    brigade   {a[:40]}\n    llama.cpp {b[:40]}")
                shown += 1
        if shown == 0:
            failures.append(f"{label}: {len(ours)} results for {len(texts)} texts")
    return same


def main():
    exe, testdata = sys.argv[1], sys.argv[2]
    src = peer_env.ensure_llama_src()
    models = os.path.join(src, "models")
    vocabs = sorted(f for f in os.listdir(models) if f.startswith("ggml-vocab-") and f.endswith(".gguf"))
    corpus = []
    for f in vocabs:
        inp = os.path.join(models, f + ".inp")
        if os.path.exists(inp):
            corpus += [t for t in read_inp(inp) if t not in corpus]
    corpus += EXTRA_CORPUS
    failures, summary, notes = [], {"vocabularies": {}, "pretokenizers": {}}, []
    t0 = time.time()
    tmp = tempfile.TemporaryDirectory()

    # brigade first (fast, in-process per file); llama.cpp then in one process for everything.
    wanted, jobs, ours, refused = [], [], {}, {}

    def job(key, path, texts, special=False):
        wanted.append((key, path, texts, special))

    for f in vocabs:
        path = os.path.join(models, f)
        job((f, "corpus"), path, corpus)
        if os.path.exists(os.path.join(models, f + ".out")):
            job((f, "reference"), path, read_inp(os.path.join(models, f + ".inp")))
        job((f, "special"), path, SPECIAL_CORPUS, True)
    listing = subprocess.run([exe, "--list-pre"], capture_output=True, check=True).stdout.decode()
    names = [line.split("\t") for line in listing.split("\n") if line]
    gpt2 = os.path.join(testdata, "vocab", "ggml-vocab-gpt-2.gguf")
    for name, family, refusal in names:
        path = os.path.join(tmp.name, f"gpt2-as-{name}.gguf")
        relabel(gpt2, path, name)
        job(("pre:" + name, "corpus"), path, corpus)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda w: brigade_tokenize(exe, w[1], w[2], w[3]), wanted))
    summary["brigade_seconds"] = round(time.time() - t0, 1)
    for (key, path, texts, special), (got, why) in zip(wanted, results):
        if got is None:
            refused[key[0]] = why
        else:
            ours[key] = got
            jobs.append((key, path, texts, special))
    theirs = dict(zip([k for k, _, _, _ in jobs],
                      peer_env.peer_vocab_tokenize_many([(p, t, s) for _, p, t, s in jobs])))

    summary["llama_cpp_seconds"] = round(time.time() - t0 - summary["brigade_seconds"], 1)
    print(f"{'vocabulary':<28} {'reference':>10} {'corpus':>10} {'special':>10}")
    for f in vocabs:
        if f in refused:
            why = refused[f]
            if "not supported" not in why or "tokenizer model" not in why:
                failures.append(f"{f}: refused without naming its tokenizer model: {why}")
            print(f"{f[11:-5]:<28} refused: {why.split(': ', 1)[-1][:90]}")
            summary["vocabularies"][f] = {"refused": why}
            continue
        row = {"corpus_texts": len(corpus)}
        row["corpus_identical"] = compare(f"{f} corpus", corpus, ours[(f, "corpus")], theirs[(f, "corpus")], failures)
        ref = "none"
        if (f, "reference") in ours:
            inp = read_inp(os.path.join(models, f + ".inp"))
            expect = read_out(os.path.join(models, f + ".out"))
            peer_ref = theirs[(f, "reference")]
            for t, e, p in zip(inp, expect, peer_ref):
                if e != p:
                    notes.append(f"{f}: llama.cpp's binding differs from its .out for {t[:40]!r} (followed the binding)")
            same = compare(f"{f} reference", inp, ours[(f, "reference")], peer_ref, failures)
            exact = sum(1 for a, b in zip(ours[(f, "reference")], expect) if a == b)
            row.update(reference_texts=len(inp), reference_identical_to_peer=same, reference_identical_to_out=exact)
            ref = f"{same}/{len(inp)}"
        row["special_identical"] = compare(f"{f} special", SPECIAL_CORPUS, ours[(f, "special")],
                                           theirs[(f, "special")], failures)
        summary["vocabularies"][f] = row
        print(f"{f[11:-5]:<28} {ref:>10} {row['corpus_identical']:>5}/{len(corpus):<4} "
              f"{row['special_identical']:>5}/{len(SPECIAL_CORPUS)}")

    print(f"\n{'pre-tokenizer':<26} {'family':<18} corpus")
    for name, family, refusal in names:
        key = "pre:" + name
        if refusal:
            why = refused.get(key, "")
            if key not in refused or name not in why:
                failures.append(f"pre-tokenizer {name}: should be refused with a sentence naming it ({why!r})")
            print(f"{name:<26} {family:<18} refused: {refusal[:70]}")
            summary["pretokenizers"][name] = {"refused": refusal}
            continue
        if key in refused:
            failures.append(f"pre-tokenizer {name}: brigade cannot load it: {refused[key]}")
            continue
        same = compare(f"pre-tokenizer {name}", corpus, ours[(key, "corpus")], theirs[(key, "corpus")], failures)
        summary["pretokenizers"][name] = {"family": family, "corpus_texts": len(corpus), "identical": same}
        print(f"{name:<26} {family:<18} {same}/{len(corpus)}")
    tmp.cleanup()

    summary["notes"] = notes
    summary["seconds"] = round(time.time() - t0, 1)
    with open("tokenizer_peer.json", "w") as f:
        json.dump(summary, f, indent=1)
    for n in notes:
        print("note: " + n)
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for x in failures[:60]:
            print("- " + x)
        sys.exit(1)
    print(f"\nall identical ({summary['seconds']} s)")


if __name__ == "__main__":
    main()
