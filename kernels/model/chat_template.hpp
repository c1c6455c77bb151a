// Chat templates: turn a conversation into the prompt text a model was
// trained on, the way llama.cpp does without a Jinja engine. A GGUF file's
// `tokenizer.chat_template` (a Jinja template we never execute) is mapped to a
// built-in format by llama.cpp's own substring heuristics, and each format is
// rendered by llama.cpp's hand-written code for it (src/llama-chat.cpp,
// llm_chat_detect_template and llm_chat_apply_template; MIT licence). We
// support the formats below; a template llama.cpp maps to any other format is
// reported as not recognised, with llama.cpp's name for it.
//
//   chatml        <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
//   llama2*       [INST] <<SYS>>\nsys\n<</SYS>>\n\nHi [/INST]reply</s>[INST] ...
//   llama3        <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>...
//   mistral-v*    [INST] Hi [/INST] reply</s>   (spacing differs per version)
//   phi3          <|user|>\nHi<|end|>\n<|assistant|>\n
//   zephyr        <|user|>\nHi<|endoftext|>\n<|assistant|>\n
//   gemma         <start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n
//
// Rendering returns segments that keep template markup (special) apart from
// message content (plain), so the caller can tokenize markup with control
// tokens and content as plain text: a user typing "<|im_start|>system" gets
// those characters, not a system turn. The rendered text never starts with
// BOS; the caller adds it as the tokenizer says (tokenizer::add_bos).
// Pure functions without errors; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace brigade {

/// raw is ours (no template: the contents back to back); the others are
/// llama.cpp's formats of the same name (see to_string).
enum class chat_format {
  raw,
  chatml,
  llama2,            // system text at the top of the first [INST], no <<SYS>>
  llama2_sys,        // <<SYS>> block
  llama2_sys_bos,    // <<SYS>> block, BOS before each later [INST]
  llama2_sys_strip,  // <<SYS>> block, every content trimmed
  llama3,
  mistral_v1,
  mistral_v3,
  mistral_v3_tekken,
  mistral_v7,
  phi3,
  zephyr,
  gemma
};

/// llama.cpp's name for the format ("llama2-sys", "mistral-v3-tekken", ...);
/// "raw" for raw.
const char* to_string(chat_format f);

/// The format named `name` (exactly as to_string writes it); nullopt otherwise.
std::optional<chat_format> chat_format_from_name(std::string_view name);

/// Every format name, comma separated ("raw, chatml, ..."), for error messages.
std::string chat_format_names();

struct chat_message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

/// What llama.cpp's llm_chat_detect_template decides for a template.
struct chat_detection {
  chat_format format = chat_format::chatml;  // meaningful only when recognised
  /// False for an empty template, one llama.cpp does not recognise, and one it
  /// maps to a format we do not support.
  bool recognised = false;
  /// When not recognised: llama.cpp's name for the format it chose ("deepseek3",
  /// "command-r"), "" when it chose none.
  std::string llama_cpp_name;
};

/// Decides as llama.cpp does, check for check in its order: an exact format
/// name first (so "gemma" or "llama2-sys-bos" select that format), then
/// substring tests on the Jinja text. A template that llama.cpp gives to
/// another format is never claimed because it also contains, say, "[INST]".
chat_detection detect_chat_format(std::string_view jinja_template);

/// One piece of a rendered conversation. special: template markup (role
/// markers, role names, separators, BOS/EOS text) to tokenize with control
/// tokens; not special: a message's content, always plain text. Adjacent
/// segments are to be concatenated into one text by the caller; render_chat
/// never returns empty segments nor two adjacent ones of the same kind.
struct chat_segment {
  std::string text;
  bool special;
};

/// Renders `messages` byte for byte as llama.cpp's llm_chat_apply_template
/// does for `format`, including its quirks (llama3, gemma and
/// llama2-sys-strip trim contents, mistral-v3 trims assistant replies, gemma
/// folds system text into the next user turn, the llama2 and mistral formats
/// ignore `add_generation_prompt`). `bos_text`/`eos_text` replace the "<s>" and
/// "</s>" llama.cpp writes in the llama2 and mistral formats (the defaults
/// reproduce it); the other formats use their own markers. For raw: the
/// contents back to back, not special (the caller handles raw by tokens).
std::vector<chat_segment> render_chat(chat_format format, const std::vector<chat_message>& messages,
                                      bool add_generation_prompt, std::string_view bos_text = "<s>",
                                      std::string_view eos_text = "</s>");

/// The segments' texts concatenated.
std::string join(const std::vector<chat_segment>& segments);

/// Texts that end an assistant turn in this format, besides the vocabulary's
/// end-of-generation tokens: "<|im_end|>" (chatml), "<|eot_id|>" (llama3),
/// "<|end|>" (phi3), "<end_of_turn>" (gemma), "[INST]" and "</s>" (llama2 and
/// mistral families), "<|user|>" and "<|endoftext|>" (zephyr); none for raw.
std::vector<std::string> chat_stop_texts(chat_format format);

}  // namespace brigade
