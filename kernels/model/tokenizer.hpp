// Tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata.
//
// Reproduces llama.cpp's tokenization exactly (src/llama-vocab.cpp) for its
// two text tokenizer families:
//   llama   SentencePiece-style BPE (SPM): score-ordered merges over UTF-8
//           characters, "▁" for spaces, a leading space, byte fallback
//           (<0xXX> tokens) for characters not in the vocabulary.
//   gpt2    byte-level BPE: a pre-tokenizer chosen by tokenizer.ggml.pre
//           (pretokenizer.hpp) splits the text into words, then rank-ordered
//           merges from tokenizer.ggml.merges.
//   gemma4  BPE over raw UTF-8 with "▁" for spaces (Gemma 4).
// Other `tokenizer.ggml.model` values (bert, t5, rwkv, plamo2, ...) and
// pre-tokenizers brigade does not implement are refused with errc::unsupported
// and a sentence naming them, rather than tokenized wrongly.
//
// Token attributes follow llama.cpp's rules, including what it infers from
// token texts: end-of-generation tokens ("<|eot_id|>", "<|im_end|>", ...),
// FIM tokens and "unused" ones become control tokens; Phi-3 vocabularies strip
// whitespace right of their special tokens.
//
// A tokenizer copies what it needs out of the GGUF file; it is immutable after
// construction and safe to share between threads. Decoding is per token
// (`piece`) or streamed (`stream_decoder`), which holds back bytes of a UTF-8
// character split across tokens until it is complete.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade {

namespace gguf {
class gguf_file;
}
class pretokenizer;

using token_id = int32_t;

enum class vocab_type { llama, gpt2 };  // gpt2: every BPE vocabulary (gpt2 and gemma4 models)
const char* to_string(vocab_type t);

/// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class token_kind : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

/// llama.cpp's llama_token_attr bits.
enum token_attr : uint32_t {
  attr_undefined = 0,
  attr_unknown = 1u << 0,
  attr_unused = 1u << 1,
  attr_normal = 1u << 2,
  attr_control = 1u << 3,
  attr_user_defined = 1u << 4,
  attr_byte = 1u << 5,
  attr_lstrip = 1u << 7,
  attr_rstrip = 1u << 8,
};

/// A piece of text to encode; `special` lets control-token text in it become
/// those tokens (chat template markup), otherwise it stays plain text.
struct text_part {
  std::string_view text;
  bool special = false;
};

class tokenizer {
 public:
  /// Reads the vocabulary from `file`. Errors: not_found (no tokenizer
  /// metadata), malformed (inconsistent arrays, ids out of range),
  /// unsupported (other tokenizer models or pre-tokenizers).
  static result<tokenizer> from_gguf(const gguf::gguf_file& file);

  /// Encodes `text`. With `add_bos`, the BOS token comes first. With
  /// `parse_special`, the text of control tokens (e.g. "<|im_start|>") becomes
  /// those tokens; without it such text is tokenized as plain text (as
  /// `brigade model tokenize` and llama.cpp's reference files do).
  /// User-defined tokens are always matched as whole tokens, as in llama.cpp.
  std::vector<token_id> encode(std::string_view text, bool add_bos, bool parse_special) const;
  /// Encodes the concatenation of `parts` as one text (merges may cross part
  /// boundaries, exactly as for the joined text), but control and unknown
  /// tokens, and user-defined tokens whose text the special parts contain,
  /// are recognised only inside parts marked special: text a user typed
  /// cannot become a role marker.
  std::vector<token_id> encode(const std::vector<text_part>& parts, bool add_bos) const;
  /// Encodes text that continues earlier text: without BOS and, for
  /// SentencePiece vocabularies, without the leading space prefix.
  std::vector<token_id> encode_continuation(std::string_view text) const;

  /// The bytes token `id` stands for. Control tokens give their text only
  /// with `render_special`; an id out of range gives "".
  std::string piece(token_id id, bool render_special = false) const;

  /// Concatenated pieces; invalid UTF-8 is passed through unchanged.
  std::string decode(const std::vector<token_id>& ids, bool render_special = false) const;

  vocab_type type() const { return type_; }
  /// tokenizer.ggml.model ("llama", "gpt2", "gemma4").
  const std::string& model_name() const { return model_; }
  /// tokenizer.ggml.pre ("default" when missing); for SentencePiece vocabularies
  /// llama.cpp ignores it.
  const std::string& pre() const { return pre_; }
  /// llama.cpp's pre-tokenizer type the name selects ("" for SentencePiece).
  const std::string& pre_family() const { return pre_family_; }
  int32_t n_vocab() const { return static_cast<int32_t>(text_.size()); }
  token_id bos() const { return bos_; }
  token_id eos() const { return eos_; }
  token_id unk() const { return unk_; }
  /// tokenizer.ggml.add_bos_token (default: true for llama, false for gpt2).
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  bool remove_extra_whitespaces() const { return remove_extra_whitespaces_; }
  bool ignore_merges() const { return ignore_merges_; }
  /// The type the file gives the token (tokenizer.ggml.token_type).
  token_kind kind(token_id id) const { return kind_[static_cast<size_t>(id)]; }
  /// The attributes llama.cpp uses (the type plus what it infers).
  uint32_t attr(token_id id) const { return attr_[static_cast<size_t>(id)]; }
  const std::string& text(token_id id) const { return text_[static_cast<size_t>(id)]; }
  /// The id of a token's exact text, or -1.
  token_id find(std::string_view text) const;
  /// True for tokens that end generation: llama.cpp's set (EOS, EOT, EOM, and
  /// tokens such as "<|eot_id|>", "<|im_end|>", "<end_of_turn>" by text).
  bool is_end_of_generation(token_id id) const;
  const std::vector<token_id>& end_of_generation() const { return eog_; }

 private:
  tokenizer() = default;
  status read_tokens(const gguf::gguf_file& file);
  status read_settings(const gguf::gguf_file& file);
  void infer_attributes(const gguf::gguf_file& file);
  void mark_control_texts(const gguf::gguf_file& file, std::unordered_set<token_id>& eog);
  void settle_end_of_generation(std::unordered_set<token_id>& eog);
  void cache_special_tokens(const gguf::gguf_file& file);
  /// Control and unknown tokens, and the user-defined ones in `span_only`
  /// (sorted), are recognised only inside `special_spans`.
  std::vector<token_id> encode_spans(std::string_view text, const std::vector<std::pair<size_t, size_t>>& special_spans,
                                     bool add_bos, bool space_prefix, const std::vector<token_id>& span_only) const;
  void encode_llama(const std::string& text, std::vector<token_id>& out) const;
  void encode_bpe(std::string_view text, std::vector<token_id>& out) const;
  void encode_bpe_word(const std::string& word, std::vector<token_id>& out) const;
  token_id byte_token(unsigned char b) const;

  struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  vocab_type type_ = vocab_type::llama;
  std::string model_;
  std::string pre_;
  std::string pre_family_;
  std::shared_ptr<const pretokenizer> pretok_;
  std::vector<std::string> text_;
  std::vector<float> score_;
  std::vector<token_kind> kind_;
  std::vector<uint32_t> attr_;
  std::unordered_map<std::string, token_id, string_hash, std::equal_to<>> index_;
  // BPE merges as llama.cpp reads them ("left right", split at the first
  // space after the first byte; the first of duplicates wins). Merges of two
  // tokens are keyed by the pair of ids; the rare others by their texts.
  std::unordered_map<uint64_t, int32_t> pair_rank_;
  std::map<std::pair<std::string, std::string>, int32_t> text_rank_;
  std::vector<token_id> special_;  // tokens matched as whole words, longest text first
  std::vector<token_id> eog_;
  token_id byte_tokens_[256];
  token_id bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = true;
  bool remove_extra_whitespaces_ = false;
  bool ignore_merges_ = false;
  bool escape_whitespaces_ = false;
};

/// Turns a stream of token ids into valid UTF-8 text chunks: bytes of a
/// character split across tokens are held until the character is complete;
/// invalid bytes become U+FFFD. One per stream; not thread-safe.
class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& tok, bool render_special = false)
      : tok_(&tok), render_special_(render_special) {}
  /// The text that became complete with token `id` (possibly empty).
  std::string push(token_id id);
  /// Pushes raw bytes (for tests and callers that already have pieces).
  std::string push_bytes(std::string_view bytes);
  /// Whatever is held back at the end of the stream (U+FFFD per incomplete
  /// character).
  std::string finish();

 private:
  const tokenizer* tok_;
  bool render_special_;
  std::string pending_;
};

}  // namespace brigade
