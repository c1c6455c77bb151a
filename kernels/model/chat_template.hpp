// Chat templates: turn a conversation into the prompt text a model was
// trained on. Four formats, recognised from the GGUF key
// `tokenizer.chat_template` (a Jinja template we do not execute; we match its
// distinctive markers), with ChatML as the fallback:
//
//   chatml  <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
//   llama2  [INST] <<SYS>>\nsys\n<</SYS>>\n\nHi [/INST] reply </s><s>[INST] ...
//   llama3  <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>...
//   zephyr  <|user|>\nHi</s>\n<|assistant|>\n
//
// The rendered text never starts with BOS: the caller adds it as the
// tokenizer says (tokenizer::add_bos) and tokenizes with parse_special so the
// markers become their control tokens. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace brigade {

enum class chat_format { chatml, llama2, llama3, zephyr };
const char* to_string(chat_format f);

struct chat_message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

/// The format a `tokenizer.chat_template` string describes; chatml for an
/// empty or unrecognised template. `recognised` (optional) says which.
chat_format detect_chat_format(std::string_view jinja_template, bool* recognised = nullptr);

/// Renders `messages`; with `add_generation_prompt` the text ends where the
/// assistant's reply begins. `bos_text`/`eos_text` are the model's BOS and EOS
/// token texts (used by llama2 between turns and by zephyr after each turn).
std::string render_chat(chat_format format, const std::vector<chat_message>& messages, bool add_generation_prompt,
                        std::string_view bos_text = "<s>", std::string_view eos_text = "</s>");

/// Marker texts that end an assistant turn in this format (besides EOS).
std::vector<std::string> chat_stop_texts(chat_format format);

}  // namespace brigade
