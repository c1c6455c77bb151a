// A Llama-family model read from GGUF: hyper-parameters from `llama.*`
// metadata and views of the weight tensors (no copies: the data stays in the
// file's mapping, which the model owns).
//
// Tensor names and layouts are llama.cpp's: a weight of ne = (K, N) is N rows
// of K contiguous values and maps K inputs to N outputs. Q and K projections
// are stored for "normal" RoPE (adjacent pairs rotate), as llama.cpp's
// converter writes them. `output.weight` may be absent (tied to
// `token_embd.weight`). Immutable after load; share freely between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/model/gguf.hpp"
#include "kernels/base/status.hpp"
#include "kernels/model/tokenizer.hpp"

namespace brigade {

struct llama_hparams {
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;      // llama.context_length
  int32_t n_embd = 0;           // llama.embedding_length
  int32_t n_layer = 0;          // llama.block_count
  int32_t n_ff = 0;             // llama.feed_forward_length
  int32_t n_head = 0;           // llama.attention.head_count
  int32_t n_head_kv = 0;        // llama.attention.head_count_kv (default n_head)
  int32_t head_dim = 0;         // n_embd / n_head
  float rope_theta = 10000.0f;  // llama.rope.freq_base
  float rms_eps = 1e-5f;        // llama.attention.layer_norm_rms_epsilon
};

/// A weight matrix: n_rows rows of n_cols values of `type`.
struct weight {
  const unsigned char* data = nullptr;
  ggml_type type = ggml_type::f32;
  int64_t n_cols = 0;  // K (inputs)
  int64_t n_rows = 0;  // N (outputs)
  size_t row_bytes = 0;
};

struct llama_layer {
  weight attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

class llama_model {
 public:
  /// Opens and validates `path`: architecture llama, consistent shapes, every
  /// tensor present with the expected shape; norms must be F32.
  static result<std::shared_ptr<llama_model>> load(const std::string& path);

  const llama_hparams& hparams() const { return hp_; }
  const std::vector<llama_layer>& layers() const { return layers_; }
  const weight& token_embd() const { return token_embd_; }
  const weight& output_norm() const { return output_norm_; }
  const weight& output() const { return output_; }
  bool tied_output() const { return tied_; }
  const tokenizer& vocab() const { return *tok_; }
  const gguf::gguf_file& file() const { return file_; }
  /// "small.gguf (llama, F16, 51.7M params)" style description.
  std::string describe() const;
  /// The dominant matrix type (for reports).
  ggml_type main_type() const { return layers_.empty() ? token_embd_.type : layers_[0].wq.type; }
  uint64_t n_params() const { return n_params_; }

 private:
  explicit llama_model(gguf::gguf_file f) : file_(std::move(f)) {}
  gguf::gguf_file file_;
  llama_hparams hp_;
  weight token_embd_, output_norm_, output_;
  bool tied_ = false;
  std::vector<llama_layer> layers_;
  std::unique_ptr<tokenizer> tok_;
  uint64_t n_params_ = 0;
};

}  // namespace brigade
