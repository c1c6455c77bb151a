#include "actors/conversation.hpp"

namespace brigade::actors {

conversation::conversation(const tokenizer& tok, chat_format format, int32_t n_ctx, bool drop_oldest)
    : tok_(&tok), format_(format), n_ctx_(n_ctx), drop_oldest_(drop_oldest) {}

conversation::seq_action conversation::classify(uint64_t seq) const {
  if (seq >= 1 && seq <= last_seq()) return seq_action::replay;
  if (seq == last_seq() + 1) return seq_action::run;
  return seq_action::gap;
}

std::string conversation::render_text(size_t first_turn, const std::string& user) const {
  std::vector<chat_message> msgs;
  for (size_t i = first_turn; i < turns_.size(); ++i) {
    msgs.push_back({"user", turns_[i].user});
    msgs.push_back({"assistant", turns_[i].assistant});
  }
  msgs.push_back({"user", user});
  const std::string bos = tok_->bos() >= 0 ? tok_->text(tok_->bos()) : "";
  const std::string eos = tok_->eos() >= 0 ? tok_->text(tok_->eos()) : "";
  return render_chat(format_, msgs, true, bos, eos);
}

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
  if (!cached_tokens_.empty()) {
    std::string text = render_text(0, user);
    if (text.compare(0, cached_text_.size(), cached_text_) == 0) {
      prompt_plan p;
      p.tokens = cached_tokens_;
      const auto delta = tok_->encode(text.substr(cached_text_.size()), false, /*parse_special=*/true);
      p.tokens.insert(p.tokens.end(), delta.begin(), delta.end());
      if (static_cast<int64_t>(p.tokens.size()) + max_new <= n_ctx_) {
        p.text = std::move(text);
        p.incremental = true;
        return p;
      }
    }
  }
  for (size_t first = 0; first <= turns_.size(); ++first) {
    std::string text = render_text(first, user);
    std::vector<token_id> ids = tok_->encode(text, tok_->add_bos(), /*parse_special=*/true);
    if (static_cast<int64_t>(ids.size()) + max_new <= n_ctx_)
      return prompt_plan{std::move(ids), std::move(text), first, false};
    if (!drop_oldest_) break;
  }
  return status{errc::resource, "the conversation and a reply of up to " + std::to_string(max_new) +
                                    " tokens no longer fit the context of " + std::to_string(n_ctx_) + " tokens"};
}

}  // namespace brigade::actors
