// A session's conversation as a plain class (no actors, no threads): the
// committed turns, seq handling, and the prompt for the next turn under the
// context policy. The session actor owns one; tests drive it directly.
//
// Seq rules (design.md, invariant 2): the first turn is seq 1; a seq already
// committed is replayed from storage (the model does not run again); the
// next seq runs; anything further is a gap.
//
// Context policy: the prompt (chat template over the history plus the new
// message) and the turn's token budget must fit the context. "drop-oldest"
// leaves out the oldest turns (never the system-free newest exchange) until
// it fits; "refuse" fails the turn instead. Either way the stored history
// keeps every turn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/chat_template.hpp"
#include "kernels/tokenizer.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

class conversation {
 public:
  enum class seq_action { run, replay, gap };

  conversation(const tokenizer& tok, chat_format format, int32_t n_ctx, bool drop_oldest);

  void restore(std::vector<runtime::stored_turn> turns) { turns_ = std::move(turns); }
  const std::vector<runtime::stored_turn>& turns() const { return turns_; }
  uint64_t last_seq() const { return turns_.empty() ? 0 : turns_.back().seq; }
  seq_action classify(uint64_t seq) const;
  /// The committed turn with this seq (classify gave replay).
  const runtime::stored_turn& turn(uint64_t seq) const { return turns_[static_cast<size_t>(seq - 1)]; }

  struct prompt_plan {
    std::vector<token_id> tokens;
    size_t dropped_turns = 0;
  };
  /// Tokens for the next turn with `user` as the new message, leaving room
  /// for `max_new` generated tokens; errc::resource when it cannot fit.
  result<prompt_plan> prompt(const std::string& user, int32_t max_new) const;
  void commit(runtime::stored_turn t) { turns_.push_back(std::move(t)); }

 private:
  std::vector<token_id> render(size_t first_turn, const std::string& user) const;
  const tokenizer* tok_;
  chat_format format_;
  int32_t n_ctx_;
  bool drop_oldest_;
  std::vector<runtime::stored_turn> turns_;
};

}  // namespace brigade::actors
