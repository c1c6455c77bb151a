#include "kernels/engine/kv_cache.hpp"

#include <algorithm>

namespace brigade {

kv_block_pool::kv_block_pool(int32_t n_blocks, int32_t block_size, int32_t max_sequences)
    : n_blocks_(n_blocks), block_size_(block_size) {
  free_.reserve(static_cast<size_t>(n_blocks));
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
  seqs_.resize(static_cast<size_t>(max_sequences));
  for (int32_t s = max_sequences - 1; s >= 0; --s) free_seqs_.push_back(s);
}

result<seq_id> kv_block_pool::create() {
  if (free_seqs_.empty())
    return status{errc::resource,
                  "all " + std::to_string(seqs_.size()) + " sequence slots are in use; free one and retry"};
  const seq_id s = free_seqs_.back();
  free_seqs_.pop_back();
  seqs_[static_cast<size_t>(s)] = {true, 0, {}};
  ++live_;
  return s;
}

bool kv_block_pool::valid(seq_id s) const {
  return s >= 0 && static_cast<size_t>(s) < seqs_.size() && seqs_[static_cast<size_t>(s)].live;
}

void kv_block_pool::release(seq_id s) {
  if (!valid(s)) return;
  auto& st = seqs_[static_cast<size_t>(s)];
  for (auto it = st.blocks.rbegin(); it != st.blocks.rend(); ++it) free_.push_back(*it);
  st = {};
  free_seqs_.push_back(s);
  --live_;
}

status kv_block_pool::reserve(const std::vector<request>& reqs) {
  int64_t needed = 0;
  for (const auto& r : reqs) {
    const auto& st = seqs_[static_cast<size_t>(r.seq)];
    const int64_t want = (static_cast<int64_t>(r.new_length) + block_size_ - 1) / block_size_;
    needed += std::max<int64_t>(0, want - static_cast<int64_t>(st.blocks.size()));
  }
  if (needed > static_cast<int64_t>(free_.size()))
    return {errc::resource, "KV cache full: the step needs " + std::to_string(needed) + " more blocks of " +
                                std::to_string(block_size_) + " tokens but " + std::to_string(free_.size()) + " of " +
                                std::to_string(n_blocks_) + " are free; free or evict sequences and retry"};
  for (const auto& r : reqs) {
    auto& st = seqs_[static_cast<size_t>(r.seq)];
    const size_t want = static_cast<size_t>((r.new_length + block_size_ - 1) / block_size_);
    while (st.blocks.size() < want) {
      st.blocks.push_back(free_.back());
      free_.pop_back();
    }
  }
  return {};
}

void kv_block_pool::set_length(seq_id s, int32_t n) { seqs_[static_cast<size_t>(s)].length = n; }

void kv_block_pool::truncate(seq_id s, int32_t n) {
  auto& st = seqs_[static_cast<size_t>(s)];
  st.length = std::min(st.length, n);
  const size_t keep = static_cast<size_t>((st.length + block_size_ - 1) / block_size_);
  while (st.blocks.size() > keep) {
    free_.push_back(st.blocks.back());
    st.blocks.pop_back();
  }
}

kv_usage kv_block_pool::usage() const {
  return {n_blocks_, n_blocks_ - static_cast<int32_t>(free_.size()), block_size_, live_};
}

}  // namespace brigade
