#!/usr/bin/env bash
# The README's main command. Installs what is missing, builds `brigade`, and
# shows what the engine can do today: reading real GGUF vocabularies and
# tokenizing exactly as llama.cpp does. (Once the server exists this becomes
# `brigade demo`.)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh brigade
brigade=${BRIGADE_BUILD_DIR:-build}/app/brigade
vocab=${BRIGADE_TESTDATA_DIR:-../shared/testdata}/vocab
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say brigade --version
"$brigade" --version
if [ ! -d "$vocab" ]; then
  echo "demo: no GGUF vocabularies at $vocab; set BRIGADE_TESTDATA_DIR to shared/testdata" >&2
  exit 2
fi
for v in ggml-vocab-llama-spm.gguf ggml-vocab-gpt-2.gguf; do
  say brigade model info "$vocab/$v"
  "$brigade" model info "$vocab/$v"
done
text='Hello world! Führer ½ 🦙 — durable chats, batched on a GPU.'
for v in ggml-vocab-llama-spm.gguf ggml-vocab-gpt-2.gguf; do
  say "printf '%s' '$text' | brigade model tokenize -m $v"
  printf '%s' "$text" | "$brigade" model tokenize -m "$vocab/$v"
done
say "printf 'Llamas 🦙' | brigade model tokenize --pieces -m ggml-vocab-llama-spm.gguf"
printf 'Llamas 🦙' | "$brigade" model tokenize --pieces -m "$vocab/ggml-vocab-llama-spm.gguf"
echo
echo "Byte-fallback tokens (<0xF0> ...) carry one byte each of a character the vocabulary lacks;"
echo "the streaming decoder holds them back until the character is complete."
