// Chat templates: recognition from real models' `tokenizer.chat_template`
// strings and exact rendering of each format.
#include "kernels/model/chat_template.hpp"

#include <gtest/gtest.h>

namespace brigade {
namespace {

// Abbreviated but verbatim fragments of the Jinja templates shipped with
// Qwen2 (ChatML), Llama 2 chat, Llama 3 instruct, TinyLlama chat (Zephyr) and
// Phi-3 (which shares Zephyr's role markers but is not Zephyr).
constexpr const char* qwen =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
constexpr const char* llama2 =
    "{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + messages[0]['content'] | "
    "trim + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}";
constexpr const char* llama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
constexpr const char* zephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + "
    "eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif "
    "%}\n{% endfor %}";
constexpr const char* phi3 =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>' + '\\n' + message['content'] + "
    "'<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}{% endif %}{% endfor %}";

TEST(ChatTemplate, RecognisesTheFourFormatsFromRealTemplates) {
  bool ok = false;
  EXPECT_EQ(detect_chat_format(qwen, &ok), chat_format::chatml);
  EXPECT_TRUE(ok);
  EXPECT_EQ(detect_chat_format(llama2, &ok), chat_format::llama2);
  EXPECT_TRUE(ok);
  EXPECT_EQ(detect_chat_format(llama3, &ok), chat_format::llama3);
  EXPECT_TRUE(ok);
  EXPECT_EQ(detect_chat_format(zephyr, &ok), chat_format::zephyr);
  EXPECT_TRUE(ok);
}

TEST(ChatTemplate, FallsBackToChatMlForUnknownOrMissingTemplates) {
  bool ok = true;
  EXPECT_EQ(detect_chat_format(phi3, &ok), chat_format::chatml);
  EXPECT_FALSE(ok);
  EXPECT_EQ(detect_chat_format("", &ok), chat_format::chatml);
  EXPECT_FALSE(ok);
}

const std::vector<chat_message> conversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

TEST(ChatTemplate, RendersChatMl) {
  EXPECT_EQ(render_chat(chat_format::chatml, conversation, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RendersLlama2WithSystemPromptInFirstInstruction) {
  EXPECT_EQ(render_chat(chat_format::llama2, conversation, true),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
}

TEST(ChatTemplate, RendersLlama3) {
  EXPECT_EQ(render_chat(chat_format::llama3, {{"user", "Hi"}}, true),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(chat_format::llama3, {{"user", "Hi"}}, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplate, RendersZephyrWithTheModelsEos) {
  EXPECT_EQ(render_chat(chat_format::zephyr, {{"system", "S"}, {"user", "Hi"}}, true, "<s>", "</s>"),
            "<|system|>\nS</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(render_chat(chat_format::zephyr, {{"user", "Hi"}}, false, "<s>", "<|endoftext|>"),
            "<|user|>\nHi<|endoftext|>\n");
}

TEST(ChatTemplate, NamesStopMarkers) {
  EXPECT_EQ(chat_stop_texts(chat_format::chatml), std::vector<std::string>{"<|im_end|>"});
  EXPECT_EQ(chat_stop_texts(chat_format::llama3), std::vector<std::string>{"<|eot_id|>"});
}

}  // namespace
}  // namespace brigade
