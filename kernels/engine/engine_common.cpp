// What every backend shares: step validation and KV-cache sizing (engine.hpp).
#include <algorithm>
#include <climits>

#include "kernels/engine/engine.hpp"

namespace brigade {

status paged_engine::truncate(seq_id s, int32_t n) {
  if (!kv_.valid(s)) return {errc::invalid_argument, "truncate: unknown sequence " + std::to_string(s)};
  if (n < 0) return {errc::invalid_argument, "truncate: negative length"};
  kv_.truncate(s, n);
  return {};
}

status paged_engine::validate_and_reserve(const std::vector<step_item>& batch, int64_t& n_tokens) {
  const kv_block_pool& kv = kv_;
  const int32_t n_vocab = model_->hparams().n_vocab, n_ctx = n_ctx_, max_step_tokens = cfg_.max_step_tokens;
  n_tokens = 0;
  std::vector<seq_id> seen;
  seen.reserve(batch.size());
  for (const auto& it : batch) {
    if (!kv.valid(it.seq)) return {errc::invalid_argument, "step: unknown sequence " + std::to_string(it.seq)};
    if (std::find(seen.begin(), seen.end(), it.seq) != seen.end())
      return {errc::invalid_argument, "step: sequence " + std::to_string(it.seq) + " appears twice in one batch"};
    seen.push_back(it.seq);
    if (it.tokens.empty())
      return {errc::invalid_argument, "step: an item of sequence " + std::to_string(it.seq) + " has no tokens"};
    for (token_id t : it.tokens)
      if (t < 0 || t >= n_vocab)
        return {errc::invalid_argument,
                "step: token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(n_vocab)};
    const int64_t len = static_cast<int64_t>(kv.length(it.seq)) + static_cast<int64_t>(it.tokens.size());
    if (len > n_ctx)
      return {errc::invalid_argument, "step: sequence " + std::to_string(it.seq) + " would reach " +
                                          std::to_string(len) + " tokens, over the context of " +
                                          std::to_string(n_ctx)};
    if (it.sample)
      if (auto s = brigade::validate(it.sampling); !s) return s;
    n_tokens += static_cast<int64_t>(it.tokens.size());
  }
  if (n_tokens > max_step_tokens)
    return {errc::invalid_argument, "step: " + std::to_string(n_tokens) + " tokens exceed the per-step limit of " +
                                        std::to_string(max_step_tokens)};
  std::vector<kv_block_pool::request> reqs;
  reqs.reserve(batch.size());
  for (const auto& it : batch) reqs.push_back({it.seq, kv_.length(it.seq) + static_cast<int32_t>(it.tokens.size())});
  return kv_.reserve(reqs);
}

result<engine_size> size_engine(const llama_hparams& hp, const engine_config& cfg) {
  const int32_t n_ctx = cfg.n_ctx > 0 ? cfg.n_ctx : hp.n_ctx_train;  // may exceed the trained length (as llama.cpp)
  if (cfg.kv_block_size <= 0 || cfg.max_sequences <= 0 || cfg.max_step_tokens <= 0)
    return status{errc::invalid_argument, "engine: block size, max sequences and step tokens must be positive"};
  const int64_t bytes_per_block = 2ll * hp.n_layer * hp.n_head_kv * hp.head_dim * cfg.kv_block_size * 4;
  const int64_t blocks_per_seq = (n_ctx + cfg.kv_block_size - 1) / cfg.kv_block_size;
  // No more blocks than every sequence at full context could use.
  const int64_t n_blocks = std::min<int64_t>(cfg.kv_memory_bytes / bytes_per_block, blocks_per_seq * cfg.max_sequences);
  if (n_blocks < blocks_per_seq)
    return status{errc::invalid_argument, "engine: KV memory of " + std::to_string(cfg.kv_memory_bytes >> 20) +
                                              " MiB holds " + std::to_string(n_blocks * cfg.kv_block_size) +
                                              " tokens, less than one sequence of " + std::to_string(n_ctx) +
                                              "; raise the KV memory or lower the context"};
  if (n_blocks > INT32_MAX / cfg.kv_block_size - 1)
    return status{errc::invalid_argument, "engine: KV memory too large"};
  return engine_size{n_ctx, static_cast<int32_t>(n_blocks)};
}

}  // namespace brigade
