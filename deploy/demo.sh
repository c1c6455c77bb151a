#!/usr/bin/env bash
# The README's main command. Installs what is missing, builds `brigade`, and
# shows what the engine does today: a synthetic Llama model, generation on
# the CPU engine, batched decoding throughput, and tokenization exactly as
# llama.cpp does it. (Once the server exists this becomes `brigade demo`.)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh brigade
brigade=${BRIGADE_BUILD_DIR:-build}/app/brigade
cache=${BRIGADE_CACHE_DIR:-$HOME/.cache/brigade}/models
mkdir -p "$cache"
model=$cache/small-f16-seed1.gguf
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say brigade --version
"$brigade" --version
if [ ! -f "$model" ]; then
  say brigade model synth --preset small --seed 1 --type f16 -o "$model"
  "$brigade" model synth --preset small --seed 1 --type f16 -o "$model"
fi
say brigade model info "$model"
"$brigade" model info "$model"
say brigade generate -m small-f16-seed1.gguf -p "The kitchen on a Friday night" -n 24 --temp 0.8 --seed 7
"$brigade" generate -m "$model" -p "The kitchen on a Friday night" -n 24 --temp 0.8 --seed 7
echo "(random weights: the words are noise, the machinery is real)"
say brigade model bench -m small-f16-seed1.gguf --batch 1,8,32 --gen-tokens 16
"$brigade" model bench -m "$model" --batch 1,8,32 --gen-tokens 16

vocab=${BRIGADE_TESTDATA_DIR:-../shared/testdata}/vocab
if [ -d "$vocab" ]; then
  text='Hello world! Führer ½ 🦙 — durable chats, batched on a GPU.'
  for v in ggml-vocab-llama-spm.gguf ggml-vocab-gpt-2.gguf; do
    say "printf '%s' '$text' | brigade model tokenize -m $v"
    printf '%s' "$text" | "$brigade" model tokenize -m "$vocab/$v"
  done
  say "printf 'Llamas 🦙' | brigade model tokenize --pieces -m ggml-vocab-llama-spm.gguf"
  printf 'Llamas 🦙' | "$brigade" model tokenize --pieces -m "$vocab/ggml-vocab-llama-spm.gguf"
fi
