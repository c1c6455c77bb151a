// llama.cpp's Unicode categories, lenient UTF-8 decoding, the matcher and the
// pre-tokenizers built on it.
#include "kernels/model/unicode.hpp"

#include "kernels/model/pretokenizer.hpp"
#include "kernels/model/split_regex.hpp"

#include <gtest/gtest.h>

namespace brigade::unicode {
namespace {

TEST(Unicode, CategoriesComeFromLlamaCppsTables) {
  for (uint32_t c : {0x41u, 0xDFu, 0x4E2Du, 0x1F1u /* Lt */, 0x2B0u /* Lm */, 0x10400u})
    EXPECT_EQ(category(c), cat_letter) << std::hex << c;
  for (uint32_t c : {0x30u, 0xFF15u /* fullwidth 5 */, 0xBDu /* ½, No */, 0x216Bu /* Ⅻ, Nl */})
    EXPECT_EQ(category(c), cat_number) << std::hex << c;
  EXPECT_EQ(category(0x0301), cat_accent_mark);  // combining acute
  EXPECT_EQ(category('!'), cat_punctuation);
  EXPECT_EQ(category('~'), cat_symbol);
  EXPECT_EQ(category(0x1F999), cat_symbol);  // 🦙
  EXPECT_EQ(category(0x110000), cat_undefined);
  for (uint32_t c : {0x20u, 0x09u, 0x0Du, 0x85u, 0xA0u, 0x2028u, 0x3000u}) EXPECT_TRUE(is_whitespace(c));
  for (uint32_t c : {0x1Cu, 0x200Bu /* zero width space */, 0x61u}) EXPECT_FALSE(is_whitespace(c));
}

TEST(Unicode, DecodesInvalidUtf8AsReplacementCharacters) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9"), (std::vector<uint32_t>{'a', 0xE9}));
  EXPECT_EQ(decode_utf8("\x80z"), (std::vector<uint32_t>{0xFFFD, 'z'}));
  EXPECT_EQ(decode_utf8("\xE6\x97"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xF0\x9F\xA6\x99"), (std::vector<uint32_t>{0x1F999}));
  std::string s;
  append_utf8(s, 0x1F999);
  EXPECT_EQ(s, "\xF0\x9F\xA6\x99");
}

TEST(Unicode, ByteMapIsABijectionOntoPrintableCodePoints) {
  for (int b = 0; b < 256; ++b) {
    const auto cpts = decode_utf8(byte_to_unicode(static_cast<unsigned char>(b)));
    ASSERT_EQ(cpts.size(), 1u);
    unsigned char back = 0;
    ASSERT_TRUE(unicode_to_byte(cpts[0], back));
    EXPECT_EQ(back, b);
  }
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");  // "Ġ"
}

std::vector<std::string> plain(const pretokenizer& p, std::string_view text) {
  // Undo the byte-level encoding to compare against readable pieces.
  std::vector<std::string> out;
  for (const auto& w : p.split(text)) {
    std::string s;
    for (uint32_t c : decode_utf8(w)) {
      unsigned char b;
      EXPECT_TRUE(unicode_to_byte(c, b));
      s += static_cast<char>(b);
    }
    out.push_back(s);
  }
  return out;
}

TEST(Pretokenizer, Gpt2SplitsLikeTheRegex) {
  auto p = pretokenizer::make("gpt-2");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(plain(*p, "Hello world's 42nd   test!!\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " 42", "nd", "  ", " test", "!!", "\n"}));
  EXPECT_EQ(plain(*p, "I'LL we'll"), (std::vector<std::string>{"I", "'", "LL", " we", "'ll"}));
  EXPECT_EQ(plain(*p, "  "), (std::vector<std::string>{"  "}));
  EXPECT_EQ(plain(*p, ""), std::vector<std::string>{});
}

TEST(Pretokenizer, Llama3GroupsDigitsInThreesAndContractionsInEitherCase) {
  auto p = pretokenizer::make("llama-bpe");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->family(), "llama3");
  EXPECT_TRUE(p->ignore_merges());
  EXPECT_EQ(plain(*p, "I'LL pay 1234567!\n\n  x"),
            (std::vector<std::string>{"I", "'LL", " pay", " ", "123", "456", "7", "!\n\n", " ", " x"}));
}

TEST(Pretokenizer, RefusesNamesItCannotServeWithASentence) {
  for (const char* name : {"kimi-k2", "afmoe", "tiny_aya", "roberta-bpe", "no-such-name"}) {
    auto p = pretokenizer::make(name);
    ASSERT_FALSE(p) << name;
    EXPECT_EQ(p.error().code(), errc::unsupported);
    EXPECT_NE(p.error().message().find(name), std::string::npos) << p.error().message();
  }
  size_t served = 0;
  for (const auto& n : pretokenizer_names()) served += n.refusal.empty();
  EXPECT_GT(served, 70u);
}

TEST(SplitRegex, FollowsEcmaScriptBacktrackingAndLookahead) {
  auto split = [](const char* expr, std::string_view text) {
    auto re = split_regex::compile(expr);
    EXPECT_TRUE(re) << expr;
    const auto cpts = decode_utf8(text);
    std::vector<std::string> out;
    size_t at = 0;
    for (size_t len : re->split(cpts, {cpts.size()})) {
      std::string w;
      for (size_t i = at; i < at + len; ++i) append_utf8(w, cpts[i]);
      out.push_back(w);
      at += len;
    }
    return out;
  };
  // \s+(?!\S) leaves the last space for the next word.
  EXPECT_EQ(split("\\s+(?!\\S)| ?\\p{L}+", "a   b"), (std::vector<std::string>{"a", "  ", " b"}));
  // Alternatives in order; greedy with backtracking; unmatched text is a piece.
  EXPECT_EQ(split("ab|abc|[0-9]{2,3}", "abc12345"), (std::vector<std::string>{"ab", "c", "123", "45"}));
  // Collapsed: any non-ASCII letter is \p{L}; [^a-z] accepts it too.
  EXPECT_EQ(split("((?=[\\p{L}])([^a-z]))+", "\xC3\x89Tat"), (std::vector<std::string>{"\xC3\x89T", "at"}));
  // $ is the segment's end; a long run does not exhaust the stack.
  EXPECT_EQ(split("\\s+$", "x  "), (std::vector<std::string>{"x", "  "}));
  EXPECT_EQ(split("\\p{L}+", std::string(200000, 'a')).size(), 1u);
  // ECMAScript's [] matches nothing and [^] anything.
  EXPECT_EQ(split("[^]", "ab"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split("[]|b", "ab"), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(split_regex::compile("[a\\"));
  EXPECT_FALSE(split_regex::compile("(a*)*"));
  EXPECT_FALSE(split_regex::compile("\\p{Han}+"));
  EXPECT_FALSE(split_regex::compile("a+?"));
}

}  // namespace
}  // namespace brigade::unicode
