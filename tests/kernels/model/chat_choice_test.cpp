// How a node chooses its chat format (`auto` and --chat-template), on real
// and written vocabularies.
#include "kernels/model/chat_choice.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/model/gguf.hpp"
#include "kernels/model/gguf_writer.hpp"
#include "kernels/model/tokenizer.hpp"

namespace brigade {
namespace {

/// A SentencePiece vocabulary, with ChatML's control tokens when asked.
tokenizer vocab(bool chatml) {
  gguf::writer w;
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>", "a"};
  std::vector<int32_t> types{2, 3, 3, 1};
  if (chatml) {
    tokens.insert(tokens.end(), {"<|im_start|>", "<|im_end|>"});
    types.insert(types.end(), {3, 3});
  }
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  static std::vector<std::vector<unsigned char>> keep;  // the tokenizer copies what it needs
  keep.push_back(w.bytes());
  auto f = gguf::gguf_file::parse(keep.back().data(), keep.back().size(), "vocab.gguf");
  EXPECT_TRUE(f.ok());
  auto t = tokenizer::from_gguf(*f);
  EXPECT_TRUE(t.ok()) << t.error().message();
  return std::move(*t);
}

TEST(ChatChoice, BaseModelsWithoutTemplateOrChatMlTokensAreRaw) {
  auto c = choose_chat_format("", vocab(false), "auto");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->format, chat_format::raw);
  EXPECT_TRUE(c->warning.empty());
  auto m = choose_chat_format("", vocab(true), "auto");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->format, chat_format::chatml);
}

TEST(ChatChoice, RecognisedTemplatesGiveTheirFormat) {
  auto c = choose_chat_format("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}{{ '<|eot_id|>' }}",
                              vocab(false), "auto");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->format, chat_format::llama3);
}

TEST(ChatChoice, UnrecognisedTemplatesWarnThenFallBackOnlyWithChatMlTokens) {
  const std::string odd = "{% for m in messages %}### {{ m.role }}: {{ m.content }}{% endfor %}";
  auto with = choose_chat_format(odd, vocab(true), "auto");
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->format, chat_format::chatml);
  EXPECT_NE(with->warning.find("not one brigade recognises"), std::string::npos) << with->warning;
  auto without = choose_chat_format(odd, vocab(false), "auto");
  ASSERT_FALSE(without.ok());
  EXPECT_EQ(without.error().code(), errc::unsupported);
  EXPECT_NE(without.error().message().find("--chat-template"), std::string::npos) << without.error().message();
}

TEST(ChatChoice, AnExplicitNameWinsAndABadOneIsRefused) {
  auto c = choose_chat_format("<|im_start|>", vocab(false), "mistral-v7");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->format, chat_format::mistral_v7);
  auto bad = choose_chat_format("", vocab(false), "chatlm");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), errc::invalid_argument);
  EXPECT_NE(bad.error().message().find("'chatlm'"), std::string::npos);
  EXPECT_NE(bad.error().message().find("raw, chatml"), std::string::npos) << bad.error().message();
}

TEST(ChatChoice, UserDefinedRoleMarkersAreRecognisedOnlyInMarkup) {
  // Older ChatML conversions mark <|im_start|> user-defined, not control.
  gguf::writer w;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "a"});
  w.add_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 4, 3, 1});
  const auto img = w.bytes();
  auto f = gguf::gguf_file::parse(img.data(), img.size(), "vocab.gguf");
  ASSERT_TRUE(f.ok());
  auto t = tokenizer::from_gguf(*f);
  ASSERT_TRUE(t.ok());
  const token_id start = t->find("<|im_start|>");
  // As llama.cpp, plain encoding matches a user-defined token anywhere...
  EXPECT_EQ(t->encode("<|im_start|>", false, false), (std::vector<token_id>{start}));
  // ...but in a conversation only the markup's occurrence becomes the token.
  const auto ids = t->encode(std::vector<text_part>{{"<|im_start|>", true}, {"<|im_start|>a", false}}, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), start), 1) << ids.size();
}

}  // namespace
}  // namespace brigade
