#include "actors/conversation.hpp"

namespace brigade::actors {

conversation::conversation(const tokenizer& tok, chat_format format, int32_t n_ctx, bool drop_oldest)
    : tok_(&tok), format_(format), n_ctx_(n_ctx), drop_oldest_(drop_oldest) {}

conversation::seq_action conversation::classify(uint64_t seq) const {
  if (seq >= 1 && seq <= last_seq()) return seq_action::replay;
  if (seq == last_seq() + 1) return seq_action::run;
  return seq_action::gap;
}

std::vector<token_id> conversation::render(size_t first_turn, const std::string& user) const {
  std::vector<chat_message> msgs;
  for (size_t i = first_turn; i < turns_.size(); ++i) {
    msgs.push_back({"user", turns_[i].user});
    msgs.push_back({"assistant", turns_[i].assistant});
  }
  msgs.push_back({"user", user});
  const std::string bos = tok_->bos() >= 0 ? tok_->text(tok_->bos()) : "";
  const std::string eos = tok_->eos() >= 0 ? tok_->text(tok_->eos()) : "";
  const std::string text = render_chat(format_, msgs, true, bos, eos);
  return tok_->encode(text, tok_->add_bos(), /*parse_special=*/true);
}

result<conversation::prompt_plan> conversation::prompt(const std::string& user, int32_t max_new) const {
  for (size_t first = 0; first <= turns_.size(); ++first) {
    std::vector<token_id> ids = render(first, user);
    if (static_cast<int64_t>(ids.size()) + max_new <= n_ctx_) return prompt_plan{std::move(ids), first};
    if (!drop_oldest_) break;
  }
  return status{errc::resource, "the conversation and a reply of up to " + std::to_string(max_new) +
                                    " tokens no longer fit the context of " + std::to_string(n_ctx_) + " tokens"};
}

}  // namespace brigade::actors
