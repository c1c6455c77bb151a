// BPE pre-tokenizers: how a byte-level BPE vocabulary splits text into words
// before merging, chosen by the GGUF key `tokenizer.ggml.pre`, exactly as
// llama.cpp does it (src/llama-vocab.cpp, llm_tokenizer_bpe). Each name maps
// to llama.cpp's list of expressions (its rewritten forms), applied in turn
// by the one matcher (split_regex.hpp), plus the vocabulary settings the name
// implies in llama.cpp (ignore_merges, the default for add_bos, ...).
//
// Names llama.cpp knows but brigade does not serve are refused with a
// sentence saying why (pretokenizer_names() lists both kinds; docs/formats.md
// reproduces it). Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade {

namespace unicode {
class split_regex;
}

class pretokenizer {
 public:
  /// The pre-tokenizer for `name` (after llama.cpp's aliases); errc::unsupported
  /// with a sentence naming it otherwise.
  static result<pretokenizer> make(std::string_view name);

  /// Splits `text` into words; with byte_encode() each word comes back
  /// mapped through GPT-2's byte-to-unicode table, ready for BPE merges.
  std::vector<std::string> split(std::string_view text) const;

  /// llama.cpp's name for the expressions this name selects (e.g. "llama3"
  /// for "llama-bpe"); `name()` is the name asked for.
  const std::string& name() const { return name_; }
  const std::string& family() const { return family_; }
  /// Words are byte-level encoded (GPT-2); false for SentencePiece-style BPE
  /// (gemma4), whose byte fallback uses <0xXX> tokens.
  bool byte_encode() const { return byte_encode_; }
  /// A word that is itself a token is taken whole (llama.cpp's ignore_merges).
  bool ignore_merges() const { return ignore_merges_; }
  /// Spaces become U+2581 before splitting (gemma4).
  bool escape_whitespaces() const { return escape_whitespaces_; }
  /// add_bos when the file has no tokenizer.ggml.add_bos_token key.
  bool default_add_bos() const { return default_add_bos_; }
  /// The name disables the BOS token (chatglm).
  bool no_bos() const { return no_bos_; }

 private:
  pretokenizer() = default;
  std::string name_;
  std::string family_;
  std::vector<std::shared_ptr<const unicode::split_regex>> exprs_;
  bool byte_encode_ = true;
  bool ignore_merges_ = false;
  bool escape_whitespaces_ = false;
  bool default_add_bos_ = false;
  bool no_bos_ = false;
};

struct pretokenizer_name {
  std::string name;
  std::string family;   // llama.cpp's pre-tokenizer type
  std::string refusal;  // empty when brigade serves it
};
/// Every `tokenizer.ggml.pre` name of the bundled llama.cpp, in its order.
std::vector<pretokenizer_name> pretokenizer_names();

}  // namespace brigade
