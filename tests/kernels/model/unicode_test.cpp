// Unicode classes, lenient UTF-8 decoding and the GPT-2 pre-tokenizer.
#include "kernels/model/unicode.hpp"

#include <gtest/gtest.h>

namespace brigade::unicode {
namespace {

TEST(Unicode, ClassifiesLettersNumbersAndWhitespaceFromUnicodeData) {
  for (uint32_t c : {0x41u, 0xDFu, 0x4E2Du, 0x1F1u /* Lt */, 0x2B0u /* Lm */, 0x10400u})
    EXPECT_TRUE(classify(c).letter) << std::hex << c;
  for (uint32_t c : {0x30u, 0xFF15u /* fullwidth 5 */, 0xBDu /* ½, No */, 0x216Bu /* Ⅻ, Nl */})
    EXPECT_TRUE(classify(c).number) << std::hex << c;
  for (uint32_t c : {0x20u, 0x09u, 0x0Du, 0x85u, 0xA0u, 0x2028u, 0x3000u}) EXPECT_TRUE(classify(c).whitespace);
  for (uint32_t c : {0x21u, 0x2Du, 0x1F999u /* 🦙 */, 0x0301u /* combining acute, Mn */}) {
    const auto k = classify(c);
    EXPECT_FALSE(k.letter || k.number || k.whitespace) << std::hex << c;
    EXPECT_TRUE(k.in_range);
  }
  EXPECT_FALSE(classify(0x110000).in_range);
  EXPECT_STREQ(tables_version(), "15.0.0");
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

std::vector<std::string> plain(std::string_view text) {
  // Undo the byte-level encoding to compare against readable pieces.
  std::vector<std::string> out;
  for (const auto& w : gpt2_pretokenize(text)) {
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

TEST(Unicode, Gpt2PreTokenizerSplitsLikeTheRegex) {
  EXPECT_EQ(plain("Hello world's 42nd   test!!\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " 42", "nd", "  ", " test", "!!", "\n"}));
  EXPECT_EQ(plain("I'LL we'll"), (std::vector<std::string>{"I", "'", "LL", " we", "'ll"}));
  EXPECT_EQ(plain("  "), (std::vector<std::string>{"  "}));
  EXPECT_EQ(plain(""), std::vector<std::string>{});
}

}  // namespace
}  // namespace brigade::unicode
