// The in-flight turn of one session as a plain class (no actors, no threads):
// what happens between the engine's tokens and the client's screen, and the
// record to commit. The session actor owns at most one; tests drive it
// directly (tests/actors/turn_test.cpp).
//
//   generating --done(eos|max_tokens|stop string)--> committing --(session: stored)--> gone
//     |    ^
//     |    '--grant: backlog <= window/2 -- paused <--backlog > window--'
//     '--done(cancelled) not asked for by this turn: cut short (not committed)
//
// - Streaming: token ids become valid UTF-8 through a stream_decoder (a
//   character split across tokens waits until it is complete).
// - Stop strings: the reply ends before the earliest occurrence of any stop
//   string; the last (longest stop - 1) bytes are held back until they cannot
//   start one, so a stop string is never half-sent, and a chunk never ends
//   inside a UTF-8 character. On a match the turn asks the engine to cancel.
// - Credit: at most `stream_window` chunks are sent ahead of the client's
//   grants. When more than `stream_window` chunks wait unsent the engine is
//   paused and a stall timer armed (generation `stall_gen`); a grant that
//   brings the backlog down to half a window resumes it. When the reply is
//   complete everything left is sent regardless of credit (at most two
//   windows, by the pause rule), so every chunk precedes the result.
// - Statistics: time to first token, mean engine batch size, tokens.
//
// The turn acts on the outside world only through `hooks` (set by the
// session: messages to the client and calls on the batch loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/conversation.hpp"
#include "kernels/model/tokenizer.hpp"
#include "runtime/turn_record.hpp"

namespace brigade::actors {

class turn {
 public:
  using clock_type = std::chrono::steady_clock;

  struct hooks {
    std::function<void(uint32_t index, std::string text)> send;  // one chunk to the client, in index order
    std::function<void()> pause_job;                             // the client fell behind
    std::function<void()> resume_job;                            // it caught up
    std::function<void()> cancel_job;                            // a stop string matched
    std::function<void(uint64_t stall_gen)> arm_stall;           // call stalled(gen) after the stall timeout
  };

  struct setup {
    uint64_t seq = 0;
    uint64_t turn_id = 0;  // the batch loop's job id
    std::string user;      // the user's message
    std::vector<std::string> stop;
    int stream_window = 16;                         // chunks ahead of the client's credit
    conversation::prompt_plan plan;                 // the prompt as sent to the engine
    clock_type::time_point t0 = clock_type::now();  // when the request arrived
    std::string key;                                // the request's idempotency key ("" for none), stored
  };

  turn(const tokenizer& vocab, setup s, hooks h);

  uint64_t seq() const { return s_.seq; }
  const std::string& key() const { return s_.key; }
  uint64_t turn_id() const { return s_.turn_id; }
  const std::string& user() const { return s_.user; }
  const conversation::prompt_plan& plan() const { return s_.plan; }
  /// The reply so far (after a stop-string cut); the whole reply once committing.
  const std::string& reply() const { return reply_; }
  const std::vector<token_id>& reply_ids() const { return reply_ids_; }
  bool committing() const { return committing_; }
  bool paused() const { return paused_; }

  /// A generated token from a step of `batch_size` sequences. Returns the
  /// time to first token (seconds) for the first one, else nothing.
  std::optional<double> on_token(token_id t, int32_t batch_size, clock_type::time_point now = clock_type::now());

  /// The engine ended the job with `reason` (eos, max_tokens, cancelled),
  /// having prefilled `prompt_tokens` (0: unknown). True: the reply is
  /// complete, every chunk has been sent, and the turn is committing. False:
  /// the job was cancelled without this turn asking (the reply is cut short
  /// and must not be committed).
  bool on_done(const std::string& reason, int32_t prompt_tokens);

  /// The client may receive `n` more chunks.
  void grant(uint32_t n);

  /// The stall timer of generation `gen` fired: true when the client is still
  /// behind since then (the turn should fail as stalled).
  bool stalled(uint64_t gen) const { return paused_ && !committing_ && gen == stall_gen_; }

  /// What to store (committing only).
  turn_record record(int64_t committed_at_ms) const;
  /// The statistics at `now` (the commit's acknowledgement).
  turn_stats stats(clock_type::time_point now = clock_type::now()) const;
  /// Seconds per generated token after the first, or nothing below 2 tokens.
  std::optional<double> time_per_output_token(clock_type::time_point now = clock_type::now()) const;

 private:
  void append(const std::string& piece);
  void produce(bool final);
  void pump();

  setup s_;
  hooks h_;
  std::unique_ptr<stream_decoder> dec_;
  size_t holdback_ = 0;  // bytes kept back so a stop string is never half-sent
  std::string reply_;    // text so far (after stop-string cuts)
  size_t produced_ = 0;  // bytes of `reply_` turned into chunks
  std::deque<std::string> unsent_;
  uint32_t next_index_ = 0;
  int64_t credit_ = 0;
  bool paused_ = false;
  uint64_t stall_gen_ = 0;
  bool stopping_ = false;  // a stop string matched; waiting for the cancel to land
  bool committing_ = false;
  std::optional<clock_type::time_point> t_first_;
  double batch_sum_ = 0;
  uint32_t steps_ = 0;
  uint32_t prompt_tokens_ = 0;
  uint32_t generated_ = 0;
  std::string stop_reason_;
  std::vector<token_id> reply_ids_;
};

}  // namespace brigade::actors
