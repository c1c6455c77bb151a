"""Where llama.cpp (npm node-llama-cpp) lives for the peer checks and
benchmarks, and how to call it. Installed once into $BRIGADE_PEER_DIR
(default ~/.cache/brigade/peer), outside the clone."""
import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.environ.get("BRIGADE_PEER_DIR", os.path.expanduser("~/.cache/brigade/peer"))
VERSION = "3.21.1"


def ensure_peer():
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed for the llama.cpp peer (run deploy/setup.sh)")
    if not os.path.isdir(os.path.join(PEER_DIR, "node_modules", "node-llama-cpp")):
        os.makedirs(PEER_DIR, exist_ok=True)
        pkg = os.path.join(PEER_DIR, "package.json")
        if not os.path.exists(pkg):
            with open(pkg, "w") as f:
                f.write('{"name": "brigade-peer", "private": true, "type": "module"}\n')
        print(f"peer: installing node-llama-cpp@{VERSION} into {PEER_DIR}", flush=True)
        subprocess.run(["npm", "i", "-E", f"node-llama-cpp@{VERSION}", "--no-audit", "--no-fund"],
                       cwd=PEER_DIR, check=True, timeout=900)
    # The script must sit beside node_modules for its import to resolve.
    shutil.copy(os.path.join(HERE, "llama_peer.mjs"), os.path.join(PEER_DIR, "llama_peer.mjs"))


def peer(model, args, stdin=""):
    p = subprocess.run(["node", os.path.join(PEER_DIR, "llama_peer.mjs"), model] + args, input=stdin.encode(),
                       capture_output=True, timeout=1200)
    if p.returncode != 0:
        raise RuntimeError(f"llama.cpp peer failed: {p.stderr.decode()[-2000:]}")
    return json.loads(p.stdout)


def ensure_llama_src():
    """llama.cpp's source as node-llama-cpp bundles it (its vocabularies,
    reference tokenizations, chat templates and tests), cloned once from the
    package's git bundle into the cache. Returns the folder."""
    ensure_peer()
    src = os.path.join(os.path.dirname(PEER_DIR), f"llama-src-{VERSION}")
    if not os.path.isdir(os.path.join(src, "src")):
        bundle = os.path.join(PEER_DIR, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle")
        tmp = src + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", bundle, tmp], check=True, timeout=600)
        os.replace(tmp, src)
    return src


def peer_vocab_tokenize(vocab, texts, special=False):
    return peer(vocab, ["vocab-tokenize"] + (["special"] if special else []), json.dumps(texts))


def peer_vocab_tokenize_many(jobs, processes=2):
    """jobs: [(vocab, texts, special)] -> one list of id lists per job, spread
    over `processes` llama.cpp processes."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for k in range(processes):
            part = jobs[k::processes]
            src, dst = os.path.join(tmp, f"jobs{k}.json"), os.path.join(tmp, f"out{k}.json")
            with open(src, "w") as f:
                json.dump([{"file": f, "texts": t, "special": s} for f, t, s in part], f)
            procs.append((subprocess.Popen(["node", os.path.join(PEER_DIR, "llama_peer.mjs"), "-",
                                            "vocab-tokenize-many", src, dst], stderr=subprocess.PIPE), dst))
        parts = []
        for p, dst in procs:
            _, err = p.communicate(timeout=1200)
            if p.returncode != 0:
                raise RuntimeError(f"llama.cpp peer failed: {err.decode()[-2000:]}")
            with open(dst) as f:
                parts.append(json.load(f))
        out = [None] * len(jobs)
        for k, part in enumerate(parts):
            out[k::processes] = part
        return out
