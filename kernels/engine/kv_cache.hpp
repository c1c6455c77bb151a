// Paged KV-cache bookkeeping: a fixed pool of blocks of `block_size` token
// slots, and per sequence a block table (vLLM's PagedAttention layout). This
// class only decides which slot holds which token; the backend owns the
// memory (K and V per layer, indexed by slot).
//
// Every change is all-or-nothing: `reserve` either gives every listed
// sequence the room it asked for or changes nothing and returns
// errc::resource ("retry after freeing"). Not thread-safe: the engine calls it
// from its step thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade {

using seq_id = int32_t;

struct kv_usage {
  int32_t blocks_total = 0;
  int32_t blocks_used = 0;
  int32_t block_size = 0;
  int32_t sequences = 0;
  double ratio() const { return blocks_total ? static_cast<double>(blocks_used) / blocks_total : 0.0; }
};

class kv_block_pool {
 public:
  kv_block_pool(int32_t n_blocks, int32_t block_size, int32_t max_sequences);

  /// A new sequence of length 0; errc::resource when max_sequences exist.
  result<seq_id> create();
  /// Frees the sequence and its blocks; unknown ids are ignored.
  void release(seq_id s);
  bool valid(seq_id s) const;
  int32_t length(seq_id s) const { return seqs_[static_cast<size_t>(s)].length; }

  struct request {
    seq_id seq;
    int32_t new_length;  // >= current length
  };
  /// Makes room for every request; all or nothing.
  status reserve(const std::vector<request>& reqs);
  /// Sets the length (after a step wrote the tokens); must be within reserved room.
  void set_length(seq_id s, int32_t n);
  /// Shrinks a sequence to its first n tokens and frees blocks past them.
  void truncate(seq_id s, int32_t n);

  /// The cache slot of token `pos` of sequence `s` (pos < reserved room).
  int32_t slot(seq_id s, int32_t pos) const {
    const auto& st = seqs_[static_cast<size_t>(s)];
    return st.blocks[static_cast<size_t>(pos / block_size_)] * block_size_ + pos % block_size_;
  }
  const std::vector<int32_t>& blocks(seq_id s) const { return seqs_[static_cast<size_t>(s)].blocks; }
  int32_t block_size() const { return block_size_; }
  int32_t n_blocks() const { return static_cast<int32_t>(n_blocks_); }
  kv_usage usage() const;

 private:
  struct seq_state {
    bool live = false;
    int32_t length = 0;
    std::vector<int32_t> blocks;
  };
  int32_t n_blocks_;
  int32_t block_size_;
  std::vector<int32_t> free_;  // stack of free block ids
  std::vector<seq_state> seqs_;
  std::vector<seq_id> free_seqs_;
  int32_t live_ = 0;
};

}  // namespace brigade
