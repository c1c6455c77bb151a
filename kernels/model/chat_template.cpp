#include "kernels/model/chat_template.hpp"

namespace brigade {

namespace {
bool has(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }
}  // namespace

const char* to_string(chat_format f) {
  switch (f) {
    case chat_format::chatml: return "chatml";
    case chat_format::llama2: return "llama2";
    case chat_format::llama3: return "llama3";
    case chat_format::zephyr: return "zephyr";
  }
  return "chatml";
}

chat_format detect_chat_format(std::string_view t, bool* recognised) {
  chat_format f = chat_format::chatml;
  bool ok = true;
  if (has(t, "<|im_start|>")) {
    f = chat_format::chatml;
  } else if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) {
    f = chat_format::llama3;
  } else if (has(t, "[INST]")) {
    f = chat_format::llama2;
  } else if (has(t, "<|user|>") && has(t, "<|assistant|>") && !has(t, "<|end|>")) {
    // Phi-3 uses the same role markers but ends turns with <|end|>.
    f = chat_format::zephyr;
  } else {
    ok = false;
  }
  if (recognised) *recognised = ok;
  return f;
}

std::string render_chat(chat_format format, const std::vector<chat_message>& messages, bool add_generation_prompt,
                        std::string_view bos_text, std::string_view eos_text) {
  std::string out;
  switch (format) {
    case chat_format::chatml:
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case chat_format::llama3:
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case chat_format::zephyr:
      for (const auto& m : messages) {
        out += "<|" + m.role + "|>\n" + m.content;
        out += eos_text;
        out += "\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    case chat_format::llama2: {
      // Meta's format: the system prompt goes inside the first [INST];
      // every completed exchange ends with EOS, the next begins with BOS.
      std::string system;
      bool first_inst = true;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          if (!first_inst) out += bos_text;
          out += "[INST] ";
          if (!system.empty()) {
            out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
            system.clear();
          }
          out += m.content + " [/INST]";
          first_inst = false;
        } else {  // assistant
          out += " " + m.content + " ";
          out += eos_text;
        }
      }
      // The generation prompt is implicit: the reply follows " [/INST]".
      break;
    }
  }
  return out;
}

std::vector<std::string> chat_stop_texts(chat_format format) {
  switch (format) {
    case chat_format::chatml: return {"<|im_end|>"};
    case chat_format::llama3: return {"<|eot_id|>"};
    case chat_format::zephyr: return {"<|user|>"};
    case chat_format::llama2: return {"[INST]"};
  }
  return {};
}

}  // namespace brigade
