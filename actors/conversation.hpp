// A session's conversation as a plain class (no actors, no threads): the
// committed turns, seq handling, and the prompt for the next turn under the
// context policy. The session actor owns one; tests drive it directly.
//
// Seq rules (docs/design.md, invariant 2): the first turn is seq 1; a seq already
// committed is replayed from storage (the model does not run again); the
// next seq runs; anything further is a gap.
//
// Prompts extend the previous turn's exact tokens when they can (the text
// rendered for the new turn starts with the text already tokenized), so the
// engine re-feeds only the new part; otherwise the whole history is rendered
// and tokenized again. Template markup is tokenized with control tokens,
// message contents as plain text (a user cannot type a role marker).
//
// The raw format (base models) is one continuing text: BOS once, the first
// user text, each reply's ids as generated, each later user text tokenized
// without BOS and without the SentencePiece space prefix. After a restore
// the replies' ids are not known and are re-tokenized the same way.
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

#include "kernels/model/chat_template.hpp"
#include "kernels/model/tokenizer.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

class conversation {
 public:
  enum class seq_action { run, replay, gap };

  conversation(const tokenizer& tok, chat_format format, int32_t n_ctx, bool drop_oldest);

  void restore(std::vector<turn_record> turns) { turns_ = std::move(turns); }
  /// The session's system prompt (rendered first, never dropped); "" for none.
  void set_system(std::string system) { system_ = std::move(system); }
  /// The committed turn with this idempotency key, or null.
  const turn_record* find_key(const std::string& key) const;
  const std::vector<turn_record>& turns() const { return turns_; }
  uint64_t last_seq() const { return turns_.empty() ? 0 : turns_.back().seq; }
  seq_action classify(uint64_t seq) const;
  /// The committed turn with this seq (classify gave replay).
  const turn_record& turn(uint64_t seq) const { return turns_[static_cast<size_t>(seq - 1)]; }

  struct prompt_plan {
    std::vector<token_id> tokens;
    std::string text;  // the rendered prompt these tokens stand for
    size_t dropped_turns = 0;
    bool incremental = false;  // built on the previous turn's exact tokens
  };
  /// Tokens for the next turn with `user` as the new message, leaving room
  /// for `max_new` generated tokens; errc::resource when it cannot fit.
  result<prompt_plan> prompt(const std::string& user, int32_t max_new) const;
  void commit(turn_record t) { turns_.push_back(std::move(t)); }
  /// Commits a turn this process generated, remembering its exact tokens:
  /// the next prompt then extends them (what the engine's cache holds)
  /// instead of re-tokenizing the reply, which rarely gives the same ids.
  void commit(turn_record t, const prompt_plan& prompt, const std::vector<token_id>& reply_ids);

 private:
  std::vector<chat_segment> render(size_t first_turn, const std::string& user) const;
  std::vector<token_id> encode_raw(size_t first_turn, const std::string& user) const;
  const tokenizer* tok_;
  chat_format format_;
  int32_t n_ctx_;
  bool drop_oldest_;
  std::vector<turn_record> turns_;
  std::string system_;
  // Exact tokens of the last prompt plus its reply, and the text they cover;
  // empty when unknown (after a restore, or when a stop string cut the reply).
  std::vector<token_id> cached_tokens_;
  std::string cached_text_;
};

/// The prompt for a whole message list (a stateless request: roles system,
/// user, assistant), rendered in `format` and ending where the assistant's
/// reply starts; raw joins the contents as one continuing text. Nothing is
/// dropped: errc::resource when it and `max_new` tokens do not fit `n_ctx`.
result<conversation::prompt_plan> prompt_for_messages(const tokenizer& tok, chat_format format, int32_t n_ctx,
                                                      const std::vector<chat_message>& msgs, int32_t max_new);
/// The prompt for one raw text (a completion: no template), BOS as the
/// vocabulary says; errc::resource when it and `max_new` do not fit.
result<conversation::prompt_plan> prompt_for_text(const tokenizer& tok, int32_t n_ctx, const std::string& text,
                                                  int32_t max_new);

}  // namespace brigade::actors
