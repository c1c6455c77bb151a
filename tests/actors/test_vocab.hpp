// The real SentencePiece vocabulary (llama.cpp's ggml-vocab-llama-spm.gguf
// from BRIGADE_TESTDATA_DIR) that the actor-logic tests tokenize with.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "kernels/model/gguf.hpp"
#include "kernels/model/tokenizer.hpp"

namespace brigade::test {

inline const tokenizer& spm_vocab() {
  static const auto file = [] {
    auto f = gguf::gguf_file::open(std::string(BRIGADE_TESTDATA_DIR_DEFAULT) + "/vocab/ggml-vocab-llama-spm.gguf");
    EXPECT_TRUE(f.ok()) << "set BRIGADE_TESTDATA_DIR to the test data folder";
    return std::make_unique<gguf::gguf_file>(std::move(*f));
  }();
  static const tokenizer t = *tokenizer::from_gguf(*file);
  return t;
}

/// The real byte-level BPE vocabulary (ggml-vocab-gpt-2.gguf), whose
/// <|endoftext|> is a control token.
inline const tokenizer& gpt2_vocab() {
  static const auto file = [] {
    auto f = gguf::gguf_file::open(std::string(BRIGADE_TESTDATA_DIR_DEFAULT) + "/vocab/ggml-vocab-gpt-2.gguf");
    EXPECT_TRUE(f.ok()) << "set BRIGADE_TESTDATA_DIR to the test data folder";
    return std::make_unique<gguf::gguf_file>(std::move(*f));
  }();
  static const tokenizer t = *tokenizer::from_gguf(*file);
  return t;
}

}  // namespace brigade::test
