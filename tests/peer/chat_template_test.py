#!/usr/bin/env python3
"""Compares our chat templates (kernels/model/chat_template) with llama.cpp's.

Usage: chat_template_test.py CHAT_RENDER_EXE LLAMA_SRC_DIR|--from-peer-cache

1. Parses the `test_cases` of main_automated_tests in
   LLAMA_SRC_DIR/tests/test-chat-template.cpp (a small C++ lexer: comments,
   string literals with escapes, prefixes, raw strings, U8C(), concatenation)
   and has CHAT_RENDER_EXE detect and render each. Every case llama.cpp maps
   to one of our formats must render to its `expected_output` byte for byte;
   there must be at least MIN_OURS of them (a guard against a broken parser).
2. Detects the format of every LLAMA_SRC_DIR/models/templates/*.jinja: those
   in TEMPLATE_FORMATS must come out as listed (what llama.cpp's
   llm_chat_detect_template decides), every other file unrecognised.

Exit status: 0 pass, 1 fail, 77 skip (LLAMA_SRC_DIR does not exist).
Python 3 standard library only.
"""

import os
import pathlib
import struct
import subprocess
import sys

MIN_OURS = 12

# The real templates that llama.cpp's llm_chat_detect_template maps to one of
# our formats (checked against llama.cpp's own function). Some are surprising
# but are what llama.cpp does: functionary and firefunction contain Llama 3's
# header markers; Apriel 1.5 has <|assistant|> and <|end|>; every template with
# <|im_start|> is chatml unless it has <|im_sep|> or <end_of_utterance>.
TEMPLATE_FORMATS = {
    "Bielik-11B-v3.0-Instruct.jinja": "chatml",
    "HuggingFaceTB-SmolLM3-3B.jinja": "chatml",
    "LFM2-8B-A1B.jinja": "chatml",
    "LFM2.5-8B-A1B.jinja": "chatml",
    "LFM2.5-Instruct.jinja": "chatml",
    "MiMo-VL.jinja": "chatml",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": "mistral-v7",
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja": "chatml",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": "chatml",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": "chatml",
    "Qwen-QwQ-32B.jinja": "chatml",
    "Qwen-Qwen2.5-7B-Instruct.jinja": "chatml",
    "Qwen-Qwen3-0.6B.jinja": "chatml",
    "Qwen3-Coder.jinja": "chatml",
    "Qwen3.5-4B.jinja": "chatml",
    "StepFun3.5-Flash.jinja": "chatml",
    "fireworks-ai-llama-3-firefunction-v2.jinja": "llama3",
    "google-gemma-2-2b-it.jinja": "gemma",
    "meetkai-functionary-medium-v3.1.jinja": "llama3",
    "meetkai-functionary-medium-v3.2.jinja": "llama3",
    "meta-llama-Llama-3.1-8B-Instruct.jinja": "llama3",
    "meta-llama-Llama-3.2-3B-Instruct.jinja": "llama3",
    "meta-llama-Llama-3.3-70B-Instruct.jinja": "llama3",
    "microsoft-Phi-3.5-mini-instruct.jinja": "phi3",
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja": "mistral-v7",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": "mistral-v3-tekken",
    "openbmb-MiniCPM5-1B.jinja": "chatml",
    "unsloth-Apriel-1.5.jinja": "phi3",
    "unsloth-mistral-Devstral-Small-2507.jinja": "mistral-v7",
}

UNRECOGNISED = "unrecognised:"


# --- A C++ lexer, enough for test-chat-template.cpp -------------------------

class ParseError(Exception):
    pass


def _ident_char(c):
    return c.isalnum() or c == "_"


def _utf8(code_point):
    return chr(code_point).encode("utf-8", "surrogatepass")


def decode_escapes(body):
    """The bytes of a (non-raw) string literal's body, escapes resolved.

    The source is UTF-8 and so is our execution character set, so plain and
    u8 literals give the same bytes.
    """
    simple = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v",
              "\\": b"\\", "'": b"'", '"': b'"', "?": b"?"}
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ParseError("string literal ends in a backslash")
        e = body[i]
        if e in simple:
            out += simple[e]
            i += 1
        elif e in "01234567":
            j = i
            while j < len(body) and j < i + 3 and body[j] in "01234567":
                j += 1
            out.append(int(body[i:j], 8) & 0xFF)
            i = j
        elif e == "x":
            j = i + 1
            while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 1:
                raise ParseError("\\x without hex digits")
            out.append(int(body[i + 1:j], 16) & 0xFF)
            i = j
        elif e in "uU":
            n = 4 if e == "u" else 8
            digits = body[i + 1:i + 1 + n]
            if len(digits) != n:
                raise ParseError("short \\%s escape" % e)
            out += _utf8(int(digits, 16))
            i += 1 + n
        else:
            raise ParseError("unknown escape \\%s" % e)
    return bytes(out)


def tokenize(src):
    """Yields (kind, value): ('str', bytes), ('id', name), ('punct', text),
    ('num', text), ('char', text). Comments and preprocessor lines are skipped."""
    i, n = 0, len(src)
    at_line_start = True
    while i < n:
        c = src[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if at_line_start and c == "#":
            while i < n and src[i] != "\n":  # directives, with \ continuations
                i += 2 if src[i] == "\\" else 1
            continue
        at_line_start = False
        if src.startswith("//", i):
            while i < n and src[i] != "\n":
                i += 1
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise ParseError("unterminated comment")
            i = j + 2
            continue
        if _ident_char(c) and not c.isdigit():
            j = i
            while j < n and _ident_char(src[j]):
                j += 1
            word = src[i:j]
            if j < n and src[j] in "\"'" and word in ("u8", "u", "U", "L", "R", "u8R", "uR", "UR", "LR"):
                i = j
                if word.endswith("R"):
                    value, i = _raw_string(src, i)
                    yield ("str", value)
                    continue
                if src[j] == '"':
                    value, i = _string(src, i)
                    yield ("str", value)
                else:
                    value, i = _char(src, i)
                    yield ("char", value)
                continue
            yield ("id", word)
            i = j
            continue
        if c.isdigit():
            j = i
            while j < n and (_ident_char(src[j]) or src[j] in ".'"):
                j += 1
            yield ("num", src[i:j])
            i = j
            continue
        if c == '"':
            value, i = _string(src, i)
            yield ("str", value)
            continue
        if c == "'":
            value, i = _char(src, i)
            yield ("char", value)
            continue
        if src.startswith("::", i):
            yield ("punct", "::")
            i += 2
            continue
        yield ("punct", c)
        i += 1


def _string(src, i):
    j = i + 1
    while j < len(src) and src[j] != '"':
        if src[j] == "\n":
            raise ParseError("newline in string literal")
        j += 2 if src[j] == "\\" else 1
    if j >= len(src):
        raise ParseError("unterminated string literal")
    return decode_escapes(src[i + 1:j]), j + 1


def _raw_string(src, i):
    paren = src.find("(", i + 1)
    if paren < 0:
        raise ParseError("raw string without (")
    delim = src[i + 1:paren]
    end = src.find(")" + delim + '"', paren + 1)
    if end < 0:
        raise ParseError("unterminated raw string")
    return src[paren + 1:end].encode("utf-8"), end + len(delim) + 2


def _char(src, i):
    j = i + 1
    while j < len(src) and src[j] != "'":
        j += 2 if src[j] == "\\" else 1
    return src[i:j + 1], j + 1


# --- Extracting the test cases -----------------------------------------------

def _find(tokens, pattern, start=0):
    for k in range(start, len(tokens) - len(pattern) + 1):
        if all(tokens[k + m] == pattern[m] for m in range(len(pattern))):
            return k
    raise ParseError("not found: %s" % " ".join(v for _, v in pattern))


def _matching(tokens, k):
    """Index of the brace closing the one at tokens[k]."""
    depth = 0
    for m in range(k, len(tokens)):
        if tokens[m] == ("punct", "{"):
            depth += 1
        elif tokens[m] == ("punct", "}"):
            depth -= 1
            if depth == 0:
                return m
    raise ParseError("unbalanced braces")


def _split_commas(tokens):
    """Splits at depth-0 commas (braces and parentheses nest)."""
    parts, cur, depth = [], [], 0
    for t in tokens:
        if t[0] == "punct" and t[1] in "{(":
            depth += 1
        elif t[0] == "punct" and t[1] in "})":
            depth -= 1
        if depth == 0 and t == ("punct", ","):
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        parts.append(cur)
    return parts


def _value(tokens):
    """A field initializer: adjacent strings (also inside U8C(...)) as bytes,
    true/false as bool, a brace list as a list of values."""
    if not tokens:
        raise ParseError("empty initializer")
    if tokens[0] == ("punct", "{"):
        if _matching(tokens, 0) != len(tokens) - 1:
            raise ParseError("unexpected tokens after a brace list")
        return [_value(p) for p in _split_commas(tokens[1:-1])]
    if len(tokens) == 1 and tokens[0] in (("id", "true"), ("id", "false")):
        return tokens[0][1] == "true"
    out = b""
    k = 0
    while k < len(tokens):
        kind, v = tokens[k]
        if kind == "str":
            out += v
            k += 1
        elif kind == "id" and v == "U8C" and k + 1 < len(tokens) and tokens[k + 1] == ("punct", "("):
            depth, m = 0, k + 1
            while True:
                if tokens[m] == ("punct", "("):
                    depth += 1
                elif tokens[m] == ("punct", ")"):
                    depth -= 1
                    if depth == 0:
                        break
                m += 1
            out += _value(tokens[k + 2:m])
            k = m + 1
        else:
            raise ParseError("unsupported initializer token %r" % (v,))
    return out


def _test_case_fields(tokens):
    """Member names of `struct TestCase` in order, with their defaults."""
    k = _find(tokens, [("id", "struct"), ("id", "TestCase"), ("punct", "{")])
    end = _matching(tokens, k + 2)
    fields, member = [], []
    for t in tokens[k + 3:end]:
        if t == ("punct", ";"):
            if member:
                fields.append(_member(member))
            member = []
        else:
            member.append(t)
    return fields


def _member(tokens):
    """(name, default) of one member declaration like `std::string bos_token = ""`."""
    k = next((m for m, t in enumerate(tokens) if t == ("punct", "=")), None)
    decl, init = (tokens, None) if k is None else (tokens[:k], tokens[k + 1:])
    names = [v for kind, v in decl if kind == "id"]
    if not names:
        raise ParseError("member without a name")
    default = None
    if init is not None:
        default = _value(init)
    elif names[-2:-1] == ["string"]:
        default = b""
    return names[-1], default


def parse_test_cases(path):
    src = path.read_text(encoding="utf-8")
    tokens = list(tokenize(src))
    fields = _test_case_fields(tokens)
    k = _find(tokens, [("id", "TestCase"), ("punct", ">"), ("id", "test_cases"), ("punct", "{")])
    end = _matching(tokens, k + 3)
    cases = []
    for part in _split_commas(tokens[k + 4:end]):
        values = _value(part)
        if len(values) > len(fields):
            raise ParseError("a test case has more initializers than TestCase has fields")
        case = {name: default for name, default in fields}
        case.update({fields[m][0]: v for m, v in enumerate(values)})
        for key in ("name", "template_str", "expected_output"):
            if not isinstance(case.get(key), bytes):
                raise ParseError("a test case lacks %s" % key)
        cases.append(case)
    return cases


# --- Running chat_render --------------------------------------------------------

def _record(b):
    return struct.pack("<I", len(b)) + b


def render_all(exe, inputs):
    """[(format, rendered bytes)] for [(template, bos, eos)] (all bytes)."""
    stdin = b"".join(_record(t) + _record(bos) + _record(eos) for t, bos, eos in inputs)
    proc = subprocess.run([exe], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s exited with %d: %s" % (exe, proc.returncode, proc.stderr.decode(errors="replace")))
    out, pos, records = proc.stdout, 0, []
    while pos < len(out):
        (n,) = struct.unpack_from("<I", out, pos)
        records.append(out[pos + 4:pos + 4 + n])
        pos += 4 + n
    if len(records) != 2 * len(inputs):
        raise RuntimeError("%s wrote %d records for %d cases" % (exe, len(records), len(inputs)))
    return [(records[2 * m].decode("utf-8"), records[2 * m + 1]) for m in range(len(inputs))]


def _shorten(s, width):
    return s if len(s) <= width else s[:width - 3] + "..."


def check_test_cases(exe, llama_src):
    cases = parse_test_cases(llama_src / "tests" / "test-chat-template.cpp")
    results = render_all(exe, [(c["template_str"], c.get("bos_token") or b"", c.get("eos_token") or b"")
                               for c in cases])
    failures, n_ours = [], 0
    print("%-60s %-26s %s" % ("test case", "format", "result"))
    for case, (fmt, rendered) in zip(cases, results):
        name = case["name"].decode("utf-8")
        if fmt.startswith(UNRECOGNISED):
            result = "not-ours"
            fmt = fmt[len(UNRECOGNISED):] or "(unknown)"
        else:
            n_ours += 1
            if case.get("extra_conversation"):
                result = "FAIL"
                failures.append("%s (%s): has extra_conversation, which chat_render does not render" % (name, fmt))
            elif rendered == case["expected_output"]:
                result = "PASS"
            else:
                result = "FAIL"
                failures.append("%s (%s):\n  expected %r\n  rendered %r" % (name, fmt, case["expected_output"], rendered))
        print("%-60s %-26s %s" % (_shorten(name, 60), fmt, result))
    print("%d test cases, %d in our formats" % (len(cases), n_ours))
    if n_ours < MIN_OURS:
        failures.append("only %d test cases are in our formats, expected at least %d: is the parser broken?"
                        % (n_ours, MIN_OURS))
    return failures


def check_template_files(exe, llama_src):
    folder = llama_src / "models" / "templates"
    files = sorted(folder.glob("*.jinja"))
    if not files:
        return ["no .jinja files in %s" % folder]
    results = render_all(exe, [(f.read_bytes(), b"<s>", b"</s>") for f in files])
    failures = []
    print("\n%-60s %-26s %s" % ("template file", "format", "result"))
    for f, (fmt, _) in zip(files, results):
        want = TEMPLATE_FORMATS.get(f.name)
        ok = fmt == want if want else fmt.startswith(UNRECOGNISED)
        print("%-60s %-26s %s" % (_shorten(f.name, 60), fmt, "PASS" if ok else "FAIL (expected %s)" % (want or "unrecognised")))
        if not ok:
            failures.append("%s: detected %s, expected %s" % (f.name, fmt, want or "unrecognised"))
    present = {f.name for f in files}
    for name in sorted(set(TEMPLATE_FORMATS) - present):
        print("warning: %s is listed in TEMPLATE_FORMATS but not in %s" % (name, folder))
    return failures


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    exe = argv[1]
    if argv[2] == "--from-peer-cache":  # the llama.cpp release node-llama-cpp bundles
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import peer_env
        argv[2] = peer_env.ensure_llama_src()
    llama_src = pathlib.Path(argv[2])
    if not llama_src.is_dir():
        print("skip: %s does not exist (llama.cpp sources)" % llama_src)
        return 77
    try:
        failures = check_test_cases(exe, llama_src) + check_template_files(exe, llama_src)
    except (ParseError, RuntimeError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if failures:
        print("\n%d failure(s):" % len(failures))
        for f in failures:
            print("- " + f)
        return 1
    print("\nall passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
