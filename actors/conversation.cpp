#include "actors/conversation.hpp"

namespace brigade::actors {

conversation::conversation(const tokenizer& tok, chat_format format, int32_t n_ctx, bool drop_oldest)
    : tok_(&tok), format_(format), n_ctx_(n_ctx), drop_oldest_(drop_oldest) {}

conversation::seq_action conversation::classify(uint64_t seq) const {
  if (seq >= 1 && seq <= last_seq()) return seq_action::replay;
  if (seq == last_seq() + 1) return seq_action::run;
  return seq_action::gap;
}

std::vector<chat_segment> conversation::render(size_t first_turn, const std::string& user) const {
  std::vector<chat_message> msgs;
  if (!system_.empty()) msgs.push_back({"system", system_});
  for (size_t i = first_turn; i < turns_.size(); ++i) {
    msgs.push_back({"user", turns_[i].user});
    msgs.push_back({"assistant", turns_[i].assistant});
  }
  msgs.push_back({"user", user});
  const std::string bos = tok_->bos() >= 0 ? tok_->text(tok_->bos()) : "";
  const std::string eos = tok_->eos() >= 0 ? tok_->text(tok_->eos()) : "";
  return render_chat(format_, msgs, true, bos, eos);
}

std::vector<token_id> conversation::encode_raw(size_t first_turn, const std::string& user) const {
  std::vector<token_id> ids;
  if (tok_->add_bos()) ids.push_back(tok_->bos());
  bool first = true;
  auto add = [&](const std::string& text) {
    const auto part = first ? tok_->encode(text, false, false) : tok_->encode_continuation(text);
    ids.insert(ids.end(), part.begin(), part.end());
    first = false;
  };
  if (!system_.empty()) add(system_);
  for (size_t i = first_turn; i < turns_.size(); ++i) {
    add(turns_[i].user);
    add(turns_[i].assistant);
  }
  add(user);
  return ids;
}

const turn_record* conversation::find_key(const std::string& key) const {
  if (key.empty()) return nullptr;
  for (auto it = turns_.rbegin(); it != turns_.rend(); ++it)
    if (it->key == key) return &*it;
  return nullptr;
}

namespace {

// The parts of `segs` from byte `from` of their joined text on.
std::vector<text_part> parts_from(const std::vector<chat_segment>& segs, size_t from) {
  std::vector<text_part> parts;
  size_t at = 0;
  for (const chat_segment& s : segs) {
    const size_t end = at + s.text.size();
    if (end > from) {
      const size_t skip = from > at ? from - at : 0;
      parts.push_back({std::string_view(s.text).substr(skip), s.special});
    }
    at = end;
  }
  return parts;
}

}  // namespace

void conversation::commit(turn_record t, const prompt_plan& prompt, const std::vector<token_id>& reply_ids) {
  const std::string reply = t.assistant;
  turns_.push_back(std::move(t));
  cached_tokens_.clear();
  cached_text_.clear();
  if (prompt.dropped_turns != 0 || tok_->decode(reply_ids) != reply) return;  // cut by a stop string, or trimmed
  cached_tokens_ = prompt.tokens;
  cached_tokens_.insert(cached_tokens_.end(), reply_ids.begin(), reply_ids.end());
  cached_text_ = prompt.text + reply;
}

result<conversation::prompt_plan> conversation::prompt(const std::string& user, int32_t max_new) const {
  const bool raw = format_ == chat_format::raw;
  if (!cached_tokens_.empty()) {
    const auto segs = render(0, user);
    std::string text = join(segs);
    if (text.compare(0, cached_text_.size(), cached_text_) == 0) {
      prompt_plan p;
      p.tokens = cached_tokens_;
      const auto delta = raw ? tok_->encode_continuation(user) : tok_->encode(parts_from(segs, cached_text_.size()), false);
      p.tokens.insert(p.tokens.end(), delta.begin(), delta.end());
      if (static_cast<int64_t>(p.tokens.size()) + max_new <= n_ctx_) {
        p.text = std::move(text);
        p.incremental = true;
        return p;
      }
    }
  }
  for (size_t first = 0; first <= turns_.size(); ++first) {
    const auto segs = render(first, user);
    std::vector<token_id> ids = raw ? encode_raw(first, user) : tok_->encode(parts_from(segs, 0), tok_->add_bos());
    if (static_cast<int64_t>(ids.size()) + max_new <= n_ctx_) return prompt_plan{std::move(ids), join(segs), first, false};
    if (!drop_oldest_) break;
  }
  return status{errc::resource, "the conversation and a reply of up to " + std::to_string(max_new) +
                                    " tokens no longer fit the context of " + std::to_string(n_ctx_) + " tokens"};
}

namespace {

status too_long(size_t prompt, int32_t max_new, int32_t n_ctx) {
  return status{errc::resource, "the prompt has " + std::to_string(prompt) + " tokens; with a reply of up to " +
                                    std::to_string(max_new) + " tokens it does not fit the context of " +
                                    std::to_string(n_ctx) + " tokens"};
}

}  // namespace

result<conversation::prompt_plan> prompt_for_messages(const tokenizer& tok, chat_format format, int32_t n_ctx,
                                                      const std::vector<chat_message>& msgs, int32_t max_new) {
  conversation::prompt_plan p;
  if (format == chat_format::raw) {
    if (tok.add_bos()) p.tokens.push_back(tok.bos());
    bool first = true;
    for (const auto& m : msgs) {
      const auto part = first ? tok.encode(m.content, false, false) : tok.encode_continuation(m.content);
      p.tokens.insert(p.tokens.end(), part.begin(), part.end());
      p.text += m.content;
      first = false;
    }
  } else {
    const std::string bos = tok.bos() >= 0 ? tok.text(tok.bos()) : "";
    const std::string eos = tok.eos() >= 0 ? tok.text(tok.eos()) : "";
    const auto segs = render_chat(format, msgs, true, bos, eos);
    p.tokens = tok.encode(parts_from(segs, 0), tok.add_bos());
    p.text = join(segs);
  }
  if (static_cast<int64_t>(p.tokens.size()) + max_new > n_ctx) return too_long(p.tokens.size(), max_new, n_ctx);
  return p;
}

result<conversation::prompt_plan> prompt_for_text(const tokenizer& tok, int32_t n_ctx, const std::string& text,
                                                  int32_t max_new) {
  conversation::prompt_plan p;
  p.tokens = tok.encode(text, tok.add_bos(), false);
  p.text = text;
  if (static_cast<int64_t>(p.tokens.size()) + max_new > n_ctx) return too_long(p.tokens.size(), max_new, n_ctx);
  return p;
}

}  // namespace brigade::actors
