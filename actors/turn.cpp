#include "actors/turn.hpp"

#include <algorithm>

namespace brigade::actors {

namespace {

double seconds(turn::clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

turn::turn(const tokenizer& vocab, setup s, hooks h)
    : s_(std::move(s)), h_(std::move(h)), dec_(std::make_unique<stream_decoder>(vocab)) {
  credit_ = s_.stream_window;
  prompt_tokens_ = static_cast<uint32_t>(s_.plan.tokens.size());
  for (const auto& x : s_.stop) holdback_ = std::max(holdback_, x.empty() ? 0 : x.size() - 1);
}

std::optional<double> turn::on_token(token_id t, int32_t batch_size, clock_type::time_point now) {
  if (committing_) return std::nullopt;
  std::optional<double> ttft;
  if (!t_first_) {
    t_first_ = now;
    ttft = seconds(now - s_.t0);
  }
  batch_sum_ += batch_size;
  ++steps_;
  ++generated_;
  reply_ids_.push_back(t);
  append(dec_->push(t));
  return ttft;
}

bool turn::on_done(const std::string& reason, int32_t prompt_tokens) {
  if (reason == "cancelled" && !stopping_) return false;
  if (stop_reason_.empty()) stop_reason_ = reason;
  if (prompt_tokens > 0) prompt_tokens_ = static_cast<uint32_t>(prompt_tokens);
  if (!stopping_) append(dec_->finish());
  produce(true);
  credit_ = static_cast<int64_t>(unsent_.size());
  pump();
  committing_ = true;
  paused_ = false;
  ++stall_gen_;  // no stall timer may end a turn that is being stored
  return true;
}

void turn::grant(uint32_t n) {
  if (committing_) return;
  credit_ += n;
  pump();
  if (paused_ && static_cast<int>(unsent_.size()) <= s_.stream_window / 2) {
    paused_ = false;
    ++stall_gen_;
    if (h_.resume_job) h_.resume_job();
  }
}

/// Adds decoded text; cuts the reply before the earliest stop string that
/// the new text completes.
void turn::append(const std::string& piece) {
  if (piece.empty() || stopping_) return;
  const size_t before = reply_.size();
  reply_ += piece;
  size_t cut = std::string::npos;
  for (const auto& s : s_.stop) {
    const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    const size_t pos = reply_.find(s, from);
    if (pos != std::string::npos && pos >= produced_) cut = std::min(cut, pos);
  }
  if (cut != std::string::npos) {
    reply_.resize(cut);
    stopping_ = true;
    stop_reason_ = "stop_string";
    if (h_.cancel_job) h_.cancel_job();
  }
  produce(false);
  pump();
}

/// Turns new reply text into a chunk, keeping back what could be the start
/// of a stop string (and never splitting a UTF-8 character).
void turn::produce(bool final) {
  size_t end = final ? reply_.size() : (reply_.size() > holdback_ ? reply_.size() - holdback_ : 0);
  while (end > produced_ && end < reply_.size() && is_continuation_byte(reply_[end])) --end;
  if (end > produced_) {
    unsent_.push_back(reply_.substr(produced_, end - produced_));
    produced_ = end;
  }
}

/// Sends chunks while the client has credit; pauses generation when more
/// than a window waits unsent.
void turn::pump() {
  while (credit_ > 0 && !unsent_.empty()) {
    if (h_.send) h_.send(next_index_, std::move(unsent_.front()));
    ++next_index_;
    unsent_.pop_front();
    --credit_;
  }
  if (!paused_ && !committing_ && static_cast<int>(unsent_.size()) > s_.stream_window) {
    paused_ = true;
    if (h_.pause_job) h_.pause_job();
    if (h_.arm_stall) h_.arm_stall(++stall_gen_);
  }
}

turn_record turn::record(int64_t committed_at_ms) const {
  return {s_.seq, s_.user, reply_, prompt_tokens_, generated_, committed_at_ms, s_.key};
}

turn_stats turn::stats(clock_type::time_point now) const {
  const double total = seconds(now - s_.t0);
  turn_stats st;
  st.prompt_tokens = prompt_tokens_;
  st.generated_tokens = generated_;
  st.ttft_seconds = t_first_ ? seconds(*t_first_ - s_.t0) : total;
  st.total_seconds = total;
  st.mean_batch_size = steps_ ? batch_sum_ / steps_ : 0;
  st.stop_reason = stop_reason_;
  return st;
}

std::optional<double> turn::time_per_output_token(clock_type::time_point now) const {
  if (generated_ < 2 || !t_first_) return std::nullopt;
  return seconds(now - *t_first_) / (generated_ - 1);
}

}  // namespace brigade::actors
