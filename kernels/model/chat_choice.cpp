#include "kernels/model/chat_choice.hpp"

#include <algorithm>

#include "kernels/model/tokenizer.hpp"

namespace brigade {

namespace {

bool has_control(const tokenizer& tok, std::string_view text) {
  const token_id id = tok.find(text);
  return id >= 0 && (tok.attr(id) & attr_control) != 0;
}

bool has_chatml_tokens(const tokenizer& tok) {
  return has_control(tok, "<|im_start|>") && has_control(tok, "<|im_end|>");
}

}  // namespace

result<chat_choice> choose_chat_format(std::string_view jinja_template, const tokenizer& tok,
                                       std::string_view requested) {
  chat_choice c;
  if (requested != "auto") {
    auto f = chat_format_from_name(requested);
    if (!f)
      return status{errc::invalid_argument, "unknown chat template '" + std::string(requested) +
                                                "'; use auto or one of: " + chat_format_names()};
    c.format = *f;
    c.reason = "chosen with --chat-template";
    return c;
  }
  if (jinja_template.empty()) {
    if (has_chatml_tokens(tok)) {
      c.format = chat_format::chatml;
      c.reason = "no template in the file; the vocabulary has ChatML's control tokens";
    } else {
      c.format = chat_format::raw;
      c.reason = "no template in the file and no ChatML control tokens: a base model, served raw";
    }
    return c;
  }
  const chat_detection d = detect_chat_format(jinja_template);
  if (d.recognised) {
    c.format = d.format;
    c.reason = "recognised from the file's template";
    return c;
  }
  size_t cut = std::min<size_t>(48, jinja_template.size());
  while (cut < jinja_template.size() && cut > 0 && (static_cast<unsigned char>(jinja_template[cut]) & 0xC0) == 0x80)
    --cut;  // not inside a UTF-8 character
  std::string excerpt;
  for (char ch : jinja_template.substr(0, cut)) excerpt += ch == '\n' ? std::string("\\n") : std::string(1, ch);
  if (cut < jinja_template.size()) excerpt += "...";
  const std::string what = d.llama_cpp_name.empty()
                               ? "the file's chat template (\"" + excerpt + "\") is not one brigade recognises"
                               : "the file's chat template is llama.cpp's '" + d.llama_cpp_name +
                                     "' format, which brigade does not render";
  if (!has_chatml_tokens(tok))
    return status{errc::unsupported, what +
                                         ", and the vocabulary has no ChatML control tokens to fall back on; start "
                                         "with --chat-template NAME (one of: " +
                                         chat_format_names() + ")"};
  c.format = chat_format::chatml;
  c.warning = what + "; falling back to chatml (the vocabulary has its control tokens); pass --chat-template to choose";
  c.reason = "fallback: unrecognised template";
  return c;
}

}  // namespace brigade
