#!/usr/bin/env python3
"""Regenerates kernels/model/unicode_tables.inc from the bundled llama.cpp
source and fails when the committed copy differs.

usage: unicode_tables_check.py REPO_ROOT"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402

root = sys.argv[1]
src = peer_env.ensure_llama_src()
fresh = subprocess.run([sys.executable, os.path.join(root, "tools", "gen_unicode_tables.py"), src],
                       check=True, capture_output=True).stdout
with open(os.path.join(root, "kernels", "model", "unicode_tables.inc"), "rb") as f:
    committed = f.read()
if fresh != committed:
    sys.exit("kernels/model/unicode_tables.inc is stale: run tools/gen_unicode_tables.py "
             f"{src} > kernels/model/unicode_tables.inc")
print("unicode tables match llama.cpp's src/unicode-data.cpp")
