// Real vocabularies (llama.cpp's ggml-vocab-*.gguf from BRIGADE_TESTDATA_DIR)
// that the actor-logic tests tokenize with.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kernels/model/gguf.hpp"
#include "kernels/model/tokenizer.hpp"

namespace brigade::test {

/// The tokenizer of testdata/vocab/NAME (it copies what it needs; the file is not kept).
inline tokenizer load_vocab(const std::string& name) {
  auto f = gguf::gguf_file::open(std::string(BRIGADE_TESTDATA_DIR_DEFAULT) + "/vocab/" + name);
  EXPECT_TRUE(f.ok()) << "set BRIGADE_TESTDATA_DIR to the test data folder";
  return *tokenizer::from_gguf(*f);
}

/// SentencePiece (ggml-vocab-llama-spm.gguf).
inline const tokenizer& spm_vocab() {
  static const tokenizer t = load_vocab("ggml-vocab-llama-spm.gguf");
  return t;
}

/// Byte-level BPE (ggml-vocab-gpt-2.gguf), whose <|endoftext|> is a control token.
inline const tokenizer& gpt2_vocab() {
  static const tokenizer t = load_vocab("ggml-vocab-gpt-2.gguf");
  return t;
}

}  // namespace brigade::test
