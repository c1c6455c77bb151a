// Synthetic models: standard GGUF files (llama architecture) with seeded
// random weights, for tests (tiny), CPU benchmarks (small, ~52M parameters)
// and GPU benchmarks (tinyllama-1b, exactly TinyLlama-1.1B's shapes).
//
// Determinism: every weight is a function of (seed, tensor index, element
// index) through Philox, converted with exact IEEE operations, so the same
// arguments give the same bytes on any machine and thread count.
// Scale: uniform weights with variance 1/fan_in keep activations finite;
// norms are 1 +- 0.1; logits come out with a standard deviation near 1.
// Vocabulary: a built-in 'llama' (SentencePiece-style) vocabulary of the
// preset's size, or with `vocab_from` the tokenizer keys of another GGUF file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/model/ggml_types.hpp"
#include "kernels/base/status.hpp"

namespace brigade {

struct synth_preset {
  const char* name;
  int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_vocab;
  bool tied_output;
};

/// tiny, small, tinyllama-1b.
const std::vector<synth_preset>& synth_presets();

struct synth_options {
  std::string preset = "tiny";
  uint64_t seed = 1;
  ggml_type type = ggml_type::f16;
  std::string vocab_from;  // empty: the built-in vocabulary
  int n_threads = 0;       // 0: hardware count (does not change the bytes)
};

/// Writes the model to `out_path` atomically. Errors: invalid_argument (an
/// unknown preset), the reader's errors for `vocab_from`, io.
status synthesize_model(const synth_options& opt, const std::string& out_path);
/// The same with explicit shapes (tests use awkward sizes); `opt.preset` is
/// ignored. Shapes must be consistent (heads divide the embedding into even
/// head sizes; Q8_0 needs row lengths that are multiples of 32).
status synthesize_model(const synth_preset& shape, const synth_options& opt, const std::string& out_path);

/// The built-in vocabulary's token texts, scores and types, `n_vocab` long.
struct builtin_vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};
builtin_vocab make_builtin_vocab(int32_t n_vocab);

/// ggml type from "f32", "f16", "bf16", "q8_0" (case-insensitive).
bool parse_ggml_type(const std::string& s, ggml_type& out);

}  // namespace brigade
