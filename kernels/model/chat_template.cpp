// Detection and rendering follow llama.cpp's src/llama-chat.cpp
// (llm_chat_detect_template, llm_chat_apply_template; MIT licence, Copyright
// (c) 2023-2026 The ggml authors): the same checks in the same order, the
// same strings. Keep them in step with it; tests/peer/chat_template_test.py
// compares us with its tests and templates.
#include "kernels/model/chat_template.hpp"

#include <array>
#include <utility>

namespace brigade {

namespace {

constexpr std::array<std::pair<chat_format, const char*>, 14> format_names = {{
    {chat_format::raw, "raw"},
    {chat_format::chatml, "chatml"},
    {chat_format::llama2, "llama2"},
    {chat_format::llama2_sys, "llama2-sys"},
    {chat_format::llama2_sys_bos, "llama2-sys-bos"},
    {chat_format::llama2_sys_strip, "llama2-sys-strip"},
    {chat_format::llama3, "llama3"},
    {chat_format::mistral_v1, "mistral-v1"},
    {chat_format::mistral_v3, "mistral-v3"},
    {chat_format::mistral_v3_tekken, "mistral-v3-tekken"},
    {chat_format::mistral_v7, "mistral-v7"},
    {chat_format::phi3, "phi3"},
    {chat_format::zephyr, "zephyr"},
    {chat_format::gemma, "gemma"},
}};

// llama.cpp's LLM_CHAT_TEMPLATES: a template equal to one of these names
// selects that format before any substring test.
constexpr const char* llama_cpp_names[] = {
    "chatml",      "llama2",        "llama2-sys",        "llama2-sys-bos", "llama2-sys-strip",
    "mistral-v1",  "mistral-v3",    "mistral-v3-tekken", "mistral-v7",     "mistral-v7-tekken",
    "phi3",        "phi4",          "falcon3",           "zephyr",         "monarch",
    "gemma",       "orion",         "openchat",          "vicuna",         "vicuna-orca",
    "deepseek",    "deepseek2",     "deepseek3",         "deepseek-ocr",   "command-r",
    "llama3",      "chatglm3",      "chatglm4",          "glmedge",        "minicpm",
    "exaone3",     "exaone4",       "exaone-moe",        "rwkv-world",     "granite",
    "granite-4.0", "granite-4.1",   "gigachat",          "megrez",         "yandex",
    "bailing",     "bailing-think", "bailing2",          "llama4",         "smolvlm",
    "hunyuan-moe", "gpt-oss",       "hunyuan-dense",     "hunyuan-vl",     "kimi-k2",
    "seed_oss",    "grok-2",        "pangu-embedded",    "solar-open",
};

// llm_chat_detect_template's substring tests, in its order, answering with
// llama.cpp's format name ("" for LLM_CHAT_TEMPLATE_UNKNOWN). "dots1" is the
// one format llama.cpp detects but has no registered name for. The non-ASCII
// markers are UTF-8 (this file is UTF-8; the compilers we use keep it).
std::string_view llama_cpp_detect(std::string_view t) {
  auto has = [t](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return "phi4";
    if (has("<end_of_utterance>")) return "smolvlm";
    return "chatml";
  }
  if (t.substr(0, 7) == "mistral" || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return "mistral-v1";
      if (has("\"[INST]\"")) return "mistral-v3-tekken";
      return "mistral-v3";
    }
    if (has("content.strip()")) return "llama2-sys-strip";
    if (has("bos_token + '[INST]")) return "llama2-sys-bos";
    if (has("<<SYS>>")) return "llama2-sys";
    return "llama2";
  }
  if (has("<|assistant|>") && has("<|end|>")) return "phi3";
  if (has("[gMASK]<sop>")) return "chatglm4";
  if (has("<|assistant|>") && has("<|user|>")) {
    if (has("<|tool_declare|>")) return "exaone-moe";
    return has("</s>") ? "falcon3" : "glmedge";
  }
  if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "glmedge";
  if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
  if (has("bos_token + message['role']")) return "monarch";
  if (has("<start_of_turn>")) return "gemma";
  if (has("'\\n\\nAssistant: ' + eos_token")) return "orion";
  if (has("GPT4 Correct ")) return "openchat";
  if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? "vicuna-orca" : "vicuna";
  if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "command-r";
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
  if (has("[gMASK]sop")) return "chatglm3";
  if (has("<用户>")) return "minicpm";
  if (has("'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
  if (has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>")) return "deepseek3";
  if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) return has("[|tool|]") ? "exaone4" : "exaone3";
  if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return "rwkv-world";
  if (has("<|start_of_role|>")) {
    if (has("<tool_call>") || has("<tools>")) return has("g4_default_system_message") ? "granite-4.0" : "granite-4.1";
    return "granite";
  }
  if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
    return "gigachat";
  if (has("<|role_start|>")) return "megrez";
  if (has(" Ассистент:")) return "yandex";
  if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) return "bailing";
  if (has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>")) return "bailing-think";
  if (has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>")) return "bailing2";
  if (has("<|header_start|>") && has("<|header_end|>")) return "llama4";
  if (has("<|endofuserprompt|>")) return "dots1";
  if (has("<|extra_0|>") && has("<|extra_4|>")) return "hunyuan-moe";
  if (has("<|start|>") && has("<|channel|>")) return "gpt-oss";
  if (has("<｜hy_Assistant｜>") && has("<｜hy_begin▁of▁sentence｜>")) return "hunyuan-vl";
  if (has("<｜hy_Assistant｜>") && has("<｜hy_place▁holder▁no▁3｜>")) return "hunyuan-dense";
  if (has("<|im_assistant|>assistant<|im_middle|>")) return "kimi-k2";
  if (has("<seed:bos>")) return "seed_oss";
  if (has("'Assistant: '  + message['content'] + '<|separator|>")) return "grok-2";
  if (has("[unused9]系统：[unused10]")) return "pangu-embedded";
  if (has("<|begin|>") && has("<|end|>") && has("<|content|>")) return "solar-open";
  return "";
}

// llama.cpp's trim: isspace in the C locale, from both ends.
std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Collects segments, merging neighbours of the same kind and dropping empty text.
class segment_builder {
 public:
  void markup(std::string_view s) { add(s, true); }
  void content(std::string_view s) { add(s, false); }
  std::vector<chat_segment> take() { return std::move(out_); }

 private:
  void add(std::string_view s, bool special) {
    if (s.empty()) return;
    if (!out_.empty() && out_.back().special == special)
      out_.back().text += s;
    else
      out_.push_back({std::string(s), special});
  }
  std::vector<chat_segment> out_;
};

using messages_t = std::vector<chat_message>;

void render_chatml(segment_builder& b, const messages_t& msgs, bool add_ass) {
  for (const auto& m : msgs) {
    b.markup("<|im_start|>");
    b.markup(m.role);
    b.markup("\n");
    b.content(m.content);
    b.markup("<|im_end|>\n");
  }
  if (add_ass) b.markup("<|im_start|>assistant\n");
}

// The whole conversation opens inside an [INST]; an assistant turn closes it
// with EOS and the next message reopens it. add_generation_prompt is ignored.
void render_llama2(segment_builder& b, chat_format f, const messages_t& msgs, std::string_view bos,
                   std::string_view eos) {
  const bool sys_block = f != chat_format::llama2;
  const bool bos_inside = f == chat_format::llama2_sys_bos;
  const bool strip = f == chat_format::llama2_sys_strip;
  bool inside_turn = true;
  b.markup("[INST] ");
  for (const auto& m : msgs) {
    const std::string_view content = strip ? trim(m.content) : std::string_view(m.content);
    if (!inside_turn) {
      inside_turn = true;
      if (bos_inside) b.markup(bos);
      b.markup("[INST] ");
    }
    if (m.role == "system") {
      if (sys_block) b.markup("<<SYS>>\n");
      b.content(content);
      b.markup(sys_block ? "\n<</SYS>>\n\n" : "\n");
    } else if (m.role == "user") {
      b.content(content);
      b.markup(" [/INST]");
    } else {
      b.content(content);
      b.markup(eos);
      inside_turn = false;
    }
  }
}

void render_llama3(segment_builder& b, const messages_t& msgs, bool add_ass) {
  for (const auto& m : msgs) {
    b.markup("<|start_header_id|>");
    b.markup(m.role);
    b.markup("<|end_header_id|>\n\n");
    b.content(trim(m.content));
    b.markup("<|eot_id|>");
  }
  if (add_ass) b.markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Mistral's v1, v3 and v3-tekken differ only in spacing around [INST] and in
// v3 trimming replies. add_generation_prompt is ignored.
void render_mistral(segment_builder& b, chat_format f, const messages_t& msgs, std::string_view eos) {
  const std::string_view leading = f == chat_format::mistral_v1 ? " " : "";
  const std::string_view trailing = f == chat_format::mistral_v3_tekken ? "" : " ";
  const bool trim_reply = f == chat_format::mistral_v3;
  bool inside_turn = false;
  for (const auto& m : msgs) {
    if (!inside_turn) {
      b.markup(leading);
      b.markup("[INST]");
      b.markup(trailing);
      inside_turn = true;
    }
    if (m.role == "system") {
      b.content(m.content);
      b.markup("\n\n");
    } else if (m.role == "user") {
      b.content(m.content);
      b.markup(leading);
      b.markup("[/INST]");
    } else {
      b.markup(trailing);
      b.content(trim_reply ? trim(m.content) : std::string_view(m.content));
      b.markup(eos);
      inside_turn = false;
    }
  }
}

void render_mistral_v7(segment_builder& b, const messages_t& msgs, std::string_view eos) {
  for (const auto& m : msgs) {
    if (m.role == "system") {
      b.markup("[SYSTEM_PROMPT] ");
      b.content(m.content);
      b.markup("[/SYSTEM_PROMPT]");
    } else if (m.role == "user") {
      b.markup("[INST] ");
      b.content(m.content);
      b.markup("[/INST]");
    } else {
      b.markup(" ");
      b.content(m.content);
      b.markup(eos);
    }
  }
}

// phi3 and zephyr: "<|role|>\n" content, then the format's turn end.
void render_role_tags(segment_builder& b, const messages_t& msgs, bool add_ass, std::string_view turn_end) {
  for (const auto& m : msgs) {
    b.markup("<|");
    b.markup(m.role);
    b.markup("|>\n");
    b.content(m.content);
    b.markup(turn_end);
  }
  if (add_ass) b.markup("<|assistant|>\n");
}

// Gemma has no system role: system text (trimmed, concatenated) opens the next
// turn that is not the model's. "assistant" is called "model".
void render_gemma(segment_builder& b, const messages_t& msgs, bool add_ass) {
  std::string system_prompt;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      system_prompt += trim(m.content);
      continue;
    }
    const std::string_view role = m.role == "assistant" ? std::string_view("model") : std::string_view(m.role);
    b.markup("<start_of_turn>");
    b.markup(role);
    b.markup("\n");
    if (!system_prompt.empty() && role != "model") {
      b.content(system_prompt);
      b.markup("\n\n");
      system_prompt.clear();
    }
    b.content(trim(m.content));
    b.markup("<end_of_turn>\n");
  }
  if (add_ass) b.markup("<start_of_turn>model\n");
}

}  // namespace

const char* to_string(chat_format f) {
  for (const auto& [format, name] : format_names)
    if (format == f) return name;
  return "chatml";
}

std::optional<chat_format> chat_format_from_name(std::string_view name) {
  for (const auto& [format, n] : format_names)
    if (name == n) return format;
  return std::nullopt;
}

std::string chat_format_names() {
  std::string out;
  for (const auto& [format, name] : format_names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

chat_detection detect_chat_format(std::string_view t) {
  std::string_view name;
  for (const char* n : llama_cpp_names)
    if (t == n) name = n;
  if (name.empty()) name = llama_cpp_detect(t);
  chat_detection d;
  if (auto f = chat_format_from_name(name); f && *f != chat_format::raw) {
    d.format = *f;
    d.recognised = true;
  } else {
    d.llama_cpp_name = std::string(name);
  }
  return d;
}

std::vector<chat_segment> render_chat(chat_format format, const std::vector<chat_message>& messages,
                                      bool add_generation_prompt, std::string_view bos_text,
                                      std::string_view eos_text) {
  segment_builder b;
  switch (format) {
    case chat_format::raw:
      for (const auto& m : messages) b.content(m.content);
      break;
    case chat_format::chatml: render_chatml(b, messages, add_generation_prompt); break;
    case chat_format::llama2:
    case chat_format::llama2_sys:
    case chat_format::llama2_sys_bos:
    case chat_format::llama2_sys_strip: render_llama2(b, format, messages, bos_text, eos_text); break;
    case chat_format::llama3: render_llama3(b, messages, add_generation_prompt); break;
    case chat_format::mistral_v1:
    case chat_format::mistral_v3:
    case chat_format::mistral_v3_tekken: render_mistral(b, format, messages, eos_text); break;
    case chat_format::mistral_v7: render_mistral_v7(b, messages, eos_text); break;
    case chat_format::phi3: render_role_tags(b, messages, add_generation_prompt, "<|end|>\n"); break;
    case chat_format::zephyr: render_role_tags(b, messages, add_generation_prompt, "<|endoftext|>\n"); break;
    case chat_format::gemma: render_gemma(b, messages, add_generation_prompt); break;
  }
  return b.take();
}

std::string join(const std::vector<chat_segment>& segments) {
  std::string out;
  for (const auto& s : segments) out += s.text;
  return out;
}

std::vector<std::string> chat_stop_texts(chat_format format) {
  switch (format) {
    case chat_format::raw: return {};
    case chat_format::chatml: return {"<|im_end|>"};
    case chat_format::llama3: return {"<|eot_id|>"};
    case chat_format::phi3: return {"<|end|>"};
    case chat_format::gemma: return {"<end_of_turn>"};
    case chat_format::zephyr: return {"<|user|>", "<|endoftext|>"};
    case chat_format::llama2:
    case chat_format::llama2_sys:
    case chat_format::llama2_sys_bos:
    case chat_format::llama2_sys_strip:
    case chat_format::mistral_v1:
    case chat_format::mistral_v3:
    case chat_format::mistral_v3_tekken:
    case chat_format::mistral_v7: return {"[INST]", "</s>"};
  }
  return {};
}

}  // namespace brigade
