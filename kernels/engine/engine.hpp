// The inference engine interface: one batched step over many sequences, a
// paged KV cache, and sampling. The batch loop (actors/batch_loop.hpp) drives
// it; the CPU backend (kernels/cpu/) and the CUDA backend (kernels/cuda/)
// implement it.
//
//   sequence lifecycle:  create_sequence -> step* -> [truncate] -> free_sequence
//
// A step takes a batch of items, each one sequence with 1 token (decode) or
// several (a prefill chunk), appended at that sequence's current length. Each
// token attends to its own sequence's earlier tokens only. For items with
// `sample` set, the token at the end of the item is sampled from the logits
// of its last position (it is NOT appended: the caller feeds it back in a
// later step, as llama.cpp's llama_decode does). Logits are returned on
// request.
//
// Errors of `step` (status/result, nothing thrown):
//   invalid_argument  unknown or repeated sequence in a batch, token id out of
//                     range, empty item, context full (length > n_ctx), too
//                     many tokens in one step, bad sampling parameters
//                     (sampling.hpp's validate); the state is unchanged;
//   resource          the KV cache has no room (retryable: free or truncate
//                     sequences, e.g. evict the least recently used, then
//                     retry); the state is unchanged;
//   device            a GPU runtime call failed (CUDA backend): the engine's
//                     sequences are lost and it must be destroyed; the batch
//                     loop makes a new one (actors/batch_loop.hpp).
// Threading: one caller at a time (the batch loop's own thread); the backend
// uses its own worker threads inside a step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/base/status.hpp"
#include "kernels/engine/kv_cache.hpp"
#include "kernels/engine/sampling.hpp"
#include "kernels/model/model.hpp"

namespace brigade {

struct engine_config {
  int32_t n_threads = 0;                  // CPU worker threads, 0 = hardware count
  int32_t n_ctx = 0;                      // max tokens per sequence, 0 = the model's context length
  int32_t max_sequences = 256;            // sequences alive at once
  int32_t kv_block_size = 16;             // tokens per KV block
  int64_t kv_memory_bytes = 512ll << 20;  // KV pool size (bytes); sets the number of blocks
  int32_t max_step_tokens = 4096;         // tokens in one step (sum over items)
};

struct step_item {
  seq_id seq = -1;
  std::vector<token_id> tokens;  // appended at the sequence's current length
  bool sample = true;            // sample a token after the last one
  bool want_logits = false;      // return the last position's logits
  sampling_params sampling;
};

struct step_result {
  token_id token = -1;        // the sampled token (when sample was set)
  std::vector<float> logits;  // n_vocab values (when want_logits was set)
};

class engine {
 public:
  virtual ~engine() = default;

  virtual const llama_hparams& hparams() const = 0;
  virtual const tokenizer& vocab() const = 0;
  /// The model the engine runs (shared: it outlives the engine where held).
  virtual std::shared_ptr<const llama_model> model() const = 0;
  virtual int32_t n_ctx() const = 0;
  virtual std::string backend_name() const = 0;

  /// A new, empty sequence. errc::resource when max_sequences are alive.
  virtual result<seq_id> create_sequence() = 0;
  /// Frees the sequence and its KV blocks (unknown ids are ignored).
  virtual void free_sequence(seq_id s) = 0;
  /// Tokens stored for `s` (0 for unknown ids).
  virtual int32_t sequence_length(seq_id s) const = 0;
  /// Keeps the first n tokens of `s` and frees the blocks past them.
  virtual status truncate(seq_id s, int32_t n) = 0;
  virtual kv_usage usage() const = 0;

  /// Computes one batched step; `out` gets one result per item, in order.
  virtual status step(const std::vector<step_item>& batch, std::vector<step_result>& out) = 0;
};

struct engine_size {
  int32_t n_ctx;     // tokens per sequence
  int32_t n_blocks;  // KV blocks in the pool (F32 K and V for every layer)
};
/// The context and KV pool size for `cfg`, or why it cannot work.
result<engine_size> size_engine(const llama_hparams& hp, const engine_config& cfg);

/// What the backends share (engine_common.cpp): the model, the
/// configuration, the context and the host-side paged block pool, with the
/// sequence calls of the contract done on it, and the step validation, so
/// every backend refuses alike. A backend adds the KV storage and the step.
class paged_engine : public engine {
 public:
  const llama_hparams& hparams() const override { return model_->hparams(); }
  const tokenizer& vocab() const override { return model_->vocab(); }
  std::shared_ptr<const llama_model> model() const override { return model_; }
  int32_t n_ctx() const override { return n_ctx_; }
  result<seq_id> create_sequence() override { return kv_.create(); }
  void free_sequence(seq_id s) override { kv_.release(s); }
  int32_t sequence_length(seq_id s) const override { return kv_.valid(s) ? kv_.length(s) : 0; }
  status truncate(seq_id s, int32_t n) override;
  kv_usage usage() const override { return kv_.usage(); }

 protected:
  paged_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg, engine_size size)
      : model_(std::move(model)),
        cfg_(cfg),
        n_ctx_(size.n_ctx),
        kv_(size.n_blocks, cfg.kv_block_size, cfg.max_sequences) {}
  /// Checks a batch against the contract (see the errors above) and counts
  /// its tokens; then reserves KV room for it (errc::resource when full).
  status validate_and_reserve(const std::vector<step_item>& batch, int64_t& n_tokens);

  std::shared_ptr<const llama_model> model_;
  engine_config cfg_;
  int32_t n_ctx_;
  kv_block_pool kv_;
};

/// The CPU backend over `model` (see cpu_ops.hpp for the kernels).
result<std::unique_ptr<engine>> make_cpu_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg);

}  // namespace brigade
