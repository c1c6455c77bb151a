// Tokenizers against llama.cpp's own reference tokenizations
// (BRIGADE_TESTDATA_DIR/vocab), decoding, streaming of split UTF-8, special
// tokens, and the refusal of unsupported tokenizers.
#include "kernels/model/tokenizer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "kernels/model/gguf.hpp"
#include "kernels/model/gguf_writer.hpp"
#include "kernels/model/unicode.hpp"
#include "tests/kernels/test_support.hpp"

namespace brigade {
namespace {

struct reference_case {
  std::string text;
  std::vector<token_id> ids;
};

/// Reads NAME.gguf.inp / .out exactly as llama.cpp's test-tokenizer-0 does.
std::vector<reference_case> read_reference(const std::string& base) {
  const std::string inp = test::read_file(base + ".inp");
  const std::string out = test::read_file(base + ".out");
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<reference_case> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    reference_case c;
    c.text = i < texts.size() ? texts[i] : "";
    std::istringstream ids(line);
    for (token_id id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << base;
  return cases;
}

std::string show(const std::vector<token_id>& ids) {
  std::string s;
  for (token_id id : ids) s += " " + std::to_string(id);
  return s;
}

struct vocab_fixture {
  gguf::gguf_file file;
  tokenizer tok;
};

vocab_fixture load_vocab(const std::string& name) {
  const std::string path = test::testdata_dir() + "/vocab/" + name;
  auto f = gguf::gguf_file::open(path);
  if (!f.ok()) {
    ADD_FAILURE() << "cannot load " << path << ": " << f.error().message()
                  << " (set BRIGADE_TESTDATA_DIR to the test data folder)";
    std::abort();
  }
  auto t = tokenizer::from_gguf(*f);
  if (!t.ok()) {
    ADD_FAILURE() << t.error().message();
    std::abort();
  }
  return {std::move(*f), std::move(*t)};
}

void check_reference(const std::string& name) {
  const auto v = load_vocab(name);
  const auto cases = read_reference(test::testdata_dir() + "/vocab/" + name);
  ASSERT_GE(cases.size(), 40u);
  int mismatches = 0;
  for (const auto& c : cases) {
    const auto got = v.tok.encode(c.text, false, false);
    if (got != c.ids) {
      ++mismatches;
      ADD_FAILURE() << name << ": '" << c.text << "'\n  expected" << show(c.ids) << "\n  got     " << show(got);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Tokenizer, LlamaSentencePieceMatchesLlamaCppReference) { check_reference("ggml-vocab-llama-spm.gguf"); }

TEST(Tokenizer, Gpt2ByteLevelBpeMatchesLlamaCppReference) { check_reference("ggml-vocab-gpt-2.gguf"); }

TEST(Tokenizer, ReadsVocabularyMetadata) {
  const auto llama = load_vocab("ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(llama.tok.type(), vocab_type::llama);
  EXPECT_EQ(llama.tok.n_vocab(), 32000);
  EXPECT_EQ(llama.tok.bos(), 1);
  EXPECT_EQ(llama.tok.eos(), 2);
  EXPECT_TRUE(llama.tok.add_bos());
  EXPECT_TRUE(llama.tok.is_end_of_generation(2));
  EXPECT_EQ(llama.tok.encode("Hi", true, false).front(), 1);
  const auto gpt2 = load_vocab("ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.tok.type(), vocab_type::gpt2);
  EXPECT_EQ(gpt2.tok.n_vocab(), 50257);
  EXPECT_FALSE(gpt2.tok.add_bos());
  EXPECT_EQ(gpt2.tok.eos(), 50256);
}

TEST(Tokenizer, DecodingInvertsEncoding) {
  const std::string texts[] = {"Hello world", " leading and  double  spaces\n\ttabs", "Führer ½ 🦙 日本語",
                               "byte fallback: \xF0\x9D\x84\x9E and ស្រុក"};
  const auto llama = load_vocab("ggml-vocab-llama-spm.gguf");
  const auto gpt2 = load_vocab("ggml-vocab-gpt-2.gguf");
  for (const auto& t : texts) {
    // SentencePiece prefixes one space; llama.cpp strips it when detokenizing.
    EXPECT_EQ(llama.tok.decode(llama.tok.encode(t, false, false)), " " + t);
    EXPECT_EQ(gpt2.tok.decode(gpt2.tok.encode(t, false, false)), t);
  }
  EXPECT_EQ(llama.tok.piece(1), "");           // control tokens are silent...
  EXPECT_EQ(llama.tok.piece(1, true), "<s>");  // ...unless rendered
  EXPECT_EQ(llama.tok.piece(13), "\n");        // <0x0A> byte token
  EXPECT_EQ(llama.tok.piece(-1), "");
  EXPECT_EQ(llama.tok.piece(32000), "");
}

bool valid_utf8(const std::string& s) { return unicode::valid_utf8(s); }

TEST(StreamDecoder, HoldsBackCharactersSplitAcrossTokens) {
  const auto v = load_vocab("ggml-vocab-llama-spm.gguf");
  // Rare characters are not in the vocabulary: they come out as one byte
  // token per UTF-8 byte, so a character spans several tokens.
  const std::string text = "clef \xF0\x9D\x84\x9E, Khmer ស្រុក, emoji 🦙!";
  const auto ids = v.tok.encode(text, false, false);
  stream_decoder dec(v.tok);
  std::string all;
  int held_back = 0;
  for (token_id id : ids) {
    const std::string chunk = dec.push(id);
    EXPECT_TRUE(valid_utf8(chunk)) << "chunk for token " << id << " is not valid UTF-8";
    if (chunk.empty() && !v.tok.piece(id).empty()) ++held_back;
    all += chunk;
  }
  all += dec.finish();
  EXPECT_EQ(all, " " + text);
  EXPECT_GE(held_back, 3);  // the 4-byte clef alone holds back 3 byte tokens
}

TEST(StreamDecoder, ReplacesInvalidBytesAndIncompleteTails) {
  const auto v = load_vocab("ggml-vocab-gpt-2.gguf");
  stream_decoder dec(v.tok);
  EXPECT_EQ(dec.push_bytes("a\xFF"), "a\xEF\xBF\xBD");
  EXPECT_EQ(dec.push_bytes("\xE6\x97"), "");
  EXPECT_EQ(dec.push_bytes("\xA5!"), "\xE6\x97\xA5!");
  // A surrogate (ED A0 80): one U+FFFD per maximal invalid subpart, as
  // Unicode recommends, i.e. three here.
  EXPECT_EQ(dec.push_bytes("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(dec.push_bytes("\xE6\x97z"), "\xEF\xBF\xBDz");  // truncated character, then ASCII
  EXPECT_EQ(dec.push_bytes("\xF0\x9F"), "");
  EXPECT_EQ(dec.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.finish(), "");
}

TEST(Tokenizer, SpecialTokenTextIsPlainUnlessParsingSpecials) {
  const auto v = load_vocab("ggml-vocab-gpt-2.gguf");
  const auto plain = v.tok.encode("<|endoftext|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(v.tok.encode("a<|endoftext|>b", false, true),
            (std::vector<token_id>{v.tok.encode("a", false, false)[0], 50256, v.tok.encode("b", false, false)[0]}));
  const auto l = load_vocab("ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(l.tok.encode("</s>", false, true), (std::vector<token_id>{2}));
  EXPECT_NE(l.tok.encode("</s>", false, false), (std::vector<token_id>{2}));
}

/// A tiny vocabulary file written with our own writer.
std::vector<unsigned char> tiny_vocab(const std::string& model, const std::string& pre, size_t n_scores = 3) {
  gguf::writer w;
  w.add_string("tokenizer.ggml.model", model);
  if (!pre.empty()) w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.add_f32_array("tokenizer.ggml.scores", std::vector<float>(n_scores, 0.0f));
  w.add_string_array("tokenizer.ggml.merges", {"a b"});
  return w.bytes();
}

status load_error(const std::vector<unsigned char>& img) {
  auto f = gguf::gguf_file::parse(img.data(), img.size(), "vocab.gguf");
  if (!f.ok()) return f.error();
  auto t = tokenizer::from_gguf(*f);
  return t.ok() ? status{} : t.error();
}

TEST(Tokenizer, RefusesUnsupportedTokenizersClearly) {
  const status pre = load_error(tiny_vocab("gpt2", "kimi-k2"));
  EXPECT_EQ(pre.code(), errc::unsupported);
  EXPECT_NE(pre.message().find("pre-tokenizer 'kimi-k2'"), std::string::npos) << pre.message();
  EXPECT_NE(pre.message().find("not supported"), std::string::npos);
  const status unknown_pre = load_error(tiny_vocab("gpt2", "no-such-pre"));
  EXPECT_EQ(unknown_pre.code(), errc::unsupported);
  EXPECT_NE(unknown_pre.message().find("'no-such-pre'"), std::string::npos);
  // As llama.cpp: a missing tokenizer.ggml.pre means "default".
  EXPECT_TRUE(load_error(tiny_vocab("gpt2", "")).ok());
  for (const char* model : {"bert", "t5", "rwkv", "plamo2", "unigram-x"}) {
    const status s = load_error(tiny_vocab(model, ""));
    EXPECT_EQ(s.code(), errc::unsupported);
    EXPECT_NE(s.message().find(std::string("'") + model + "'"), std::string::npos) << s.message();
  }
  const status scores = load_error(tiny_vocab("llama", "", 2));
  EXPECT_EQ(scores.code(), errc::malformed);
  EXPECT_NE(scores.message().find("2 entries for 3 tokens"), std::string::npos) << scores.message();
  gguf::writer none;
  none.add_string("general.architecture", "llama");
  const status no_tok = load_error(none.bytes());
  EXPECT_EQ(no_tok.code(), errc::not_found);
  EXPECT_TRUE(load_error(tiny_vocab("gpt2", "gpt-2")).ok());
  EXPECT_TRUE(load_error(tiny_vocab("gpt2", "llama-bpe")).ok());
}

TEST(Tokenizer, KeepsTheDefaultForSpecialIdsOutsideTheVocabularyAsLlamaCpp) {
  gguf::writer w;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
  w.add_u32("tokenizer.ggml.eos_token_id", 7);
  const auto img = w.bytes();
  auto f = gguf::gguf_file::parse(img.data(), img.size(), "vocab.gguf");
  ASSERT_TRUE(f.ok());
  auto t = tokenizer::from_gguf(*f);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->eos(), 2);
  EXPECT_TRUE(t->is_end_of_generation(2));
}

TEST(Tokenizer, ControlTokensInPlainPartsStayText) {
  const auto v = load_vocab("ggml-vocab-gpt-2.gguf");
  const auto as_text = v.tok.encode("<|endoftext|>", false, false);
  const auto ids = v.tok.encode(std::vector<text_part>{{"<|endoftext|>", true}, {"<|endoftext|>", false}}, false);
  std::vector<token_id> want{50256};
  want.insert(want.end(), as_text.begin(), as_text.end());
  EXPECT_EQ(ids, want);
  // Parts join into one text: merges cross their boundary.
  EXPECT_EQ(v.tok.encode(std::vector<text_part>{{"Hel", true}, {"lo", false}}, false), v.tok.encode("Hello", false, false));
}

}  // namespace
}  // namespace brigade

namespace brigade {
namespace {

TEST(Tokenizer, EncodesArbitraryBytesIntoValidIds) {
  // Random bytes (mostly invalid UTF-8) must never crash either tokenizer
  // (the asan label runs this too) and must yield ids inside the vocabulary.
  const auto llama = load_vocab("ggml-vocab-llama-spm.gguf");
  const auto gpt2 = load_vocab("ggml-vocab-gpt-2.gguf");
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 3 == 0 ? 0x80 | (rng() & 0x7F) : rng() & 0xFF);
    for (const auto* v : {&llama, &gpt2}) {
      const auto ids = v->tok.encode(s, true, true);
      for (token_id id : ids) ASSERT_TRUE(id >= 0 && id < v->tok.n_vocab()) << id;
      stream_decoder dec(v->tok);
      std::string text;
      for (token_id id : ids) text += dec.push(id);
      text += dec.finish();
      ASSERT_TRUE(valid_utf8(text));
    }
  }
}

}  // namespace
}  // namespace brigade
