// Which chat format a node serves a model with: `--chat-template NAME`, or
// `auto` (the default), which decides from the file's
// `tokenizer.chat_template` and its vocabulary:
//   - a template llama.cpp's detection maps to one of brigade's formats: that;
//   - no template and no ChatML control tokens (a base model): raw;
//   - no template but <|im_start|> and <|im_end|> control tokens: chatml;
//   - an unrecognised template: a warning naming it, then chatml if the
//     vocabulary has its control tokens; otherwise the model is refused until
//     --chat-template names a format.
// `brigade model info` shows the same decision before a node loads the file.
#pragma once

#include <string>
#include <string_view>

#include "kernels/base/status.hpp"
#include "kernels/model/chat_template.hpp"

namespace brigade {

class tokenizer;

struct chat_choice {
  chat_format format = chat_format::raw;
  std::string reason;   // one line: why this format
  std::string warning;  // non-empty when the template was not recognised
};

/// Decides the format for `requested` ("auto" or a format name). Errors:
/// errc::invalid_argument for an unknown name, errc::unsupported when auto
/// cannot decide (the message says to pass --chat-template).
result<chat_choice> choose_chat_format(std::string_view jinja_template, const tokenizer& tok,
                                       std::string_view requested);

}  // namespace brigade
