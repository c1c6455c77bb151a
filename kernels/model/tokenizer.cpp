#include "kernels/model/tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <queue>
#include <unordered_set>

#include "kernels/model/gguf.hpp"
#include "kernels/model/pretokenizer.hpp"
#include "kernels/model/unicode.hpp"

namespace brigade {

namespace {

constexpr std::string_view space_marker = "\xE2\x96\x81";  // U+2581 "▁"

void escape_whitespace(std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  for (char c : s) {
    if (c == ' ')
      out += space_marker;
    else
      out += c;
  }
  s.swap(out);
}

void unescape_whitespace(std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, space_marker.size(), space_marker) == 0) {
      out += ' ';
      i += space_marker.size();
    } else {
      out += s[i++];
    }
  }
  s.swap(out);
}

/// A symbol of the merge loops: a span of the word, linked to its neighbours.
struct symbol {
  int prev;
  int next;
  const char* text;
  size_t n;
};

/// A text fragment during special-token partitioning.
struct fragment {
  token_id token;  // -1 for raw text
  size_t off;
  size_t len;
};

}  // namespace

const char* to_string(vocab_type t) { return t == vocab_type::llama ? "llama" : "gpt2"; }

namespace {

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// Token texts llama.cpp treats as end of generation (llama_vocab::impl::load).
bool eog_text(std::string_view t) {
  return is_one_of(t, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                       "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                       "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                       "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["});
}

// FIM texts by kind (prefix, suffix, middle, pad, repo, file separator):
// llama.cpp marks them control when the file names no token of that kind;
// pad, repo and separator also end generation.
const std::vector<std::vector<std::string_view>>& fim_texts() {
  static const std::vector<std::vector<std::string_view>> lists = {
      {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
       "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"},
      {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
       "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"},
      {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
       "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"},
      {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
      {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
      {"<|file_sep|>"},
  };
  return lists;
}

constexpr const char* fim_keys[6] = {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
                                     "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id",
                                     "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id"};

uint64_t pair_key(token_id l, token_id r) { return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r); }

uint32_t attr_of(token_kind k) {
  switch (k) {
    case token_kind::unknown: return attr_unknown;
    case token_kind::unused: return attr_unused;
    case token_kind::normal: return attr_normal;
    case token_kind::control: return attr_control;
    case token_kind::user_defined: return attr_user_defined;
    case token_kind::byte: return attr_byte;
    default: return attr_undefined;
  }
}

}  // namespace

result<tokenizer> tokenizer::from_gguf(const gguf::gguf_file& file) {
  const std::string& fname = file.name();
  auto model = file.get_string("tokenizer.ggml.model", "");
  if (!model) return model.error();
  tokenizer t;
  t.model_ = *model;
  if (model->empty())
    return status{errc::not_found, fname + ": no tokenizer (the key tokenizer.ggml.model is missing)"};
  if (*model == "llama") {
    t.type_ = vocab_type::llama;
  } else if (*model == "gpt2" || *model == "gemma4") {
    t.type_ = vocab_type::gpt2;
  } else if (is_one_of(*model, {"bert", "t5", "rwkv", "plamo2"})) {
    const char* what = *model == "bert"  ? "WordPiece (BERT embedding models)"
                       : *model == "t5"  ? "Unigram (T5)"
                       : *model == "rwkv" ? "RWKV's trie tokenizer"
                                          : "PLaMo-2's Aho-Corasick tokenizer";
    return status{errc::unsupported, fname + ": tokenizer model '" + *model + "' (" + what +
                                         ") is not supported; brigade serves SentencePiece ('llama') and BPE "
                                         "('gpt2', 'gemma4') vocabularies"};
  } else {
    return status{errc::unsupported, fname + ": tokenizer model '" + *model +
                                         "' is not supported; brigade serves SentencePiece ('llama') and BPE "
                                         "('gpt2', 'gemma4') vocabularies"};
  }
  auto pre = file.get_string("tokenizer.ggml.pre", "");
  if (!pre) return pre.error();
  t.pre_ = pre->empty() ? "default" : *pre;
  if (*model == "gemma4") t.pre_ = "gemma4";  // llama.cpp forces it
  if (t.type_ == vocab_type::gpt2) {
    auto p = pretokenizer::make(t.pre_);
    if (!p) return status{errc::unsupported, fname + ": " + p.error().message()};
    t.pre_family_ = p->family();
    t.ignore_merges_ = p->ignore_merges();
    t.escape_whitespaces_ = p->escape_whitespaces();
    t.pretok_ = std::make_shared<const pretokenizer>(std::move(*p));
  }
  if (auto s = t.read_tokens(file); !s) return s;
  if (auto s = t.read_settings(file); !s) return s;
  t.infer_attributes(file);
  return t;
}

status tokenizer::read_tokens(const gguf::gguf_file& file) {
  const std::string& fname = file.name();
  auto tokens = file.get_array("tokenizer.ggml.tokens", gguf::value_type::string);
  if (!tokens) return tokens.error();
  const gguf::value& tv = **tokens;
  if (tv.count == 0 || tv.count > static_cast<uint64_t>(INT32_MAX))
    return {errc::malformed, fname + ": tokenizer.ggml.tokens holds " + std::to_string(tv.count) + " tokens"};
  const size_t n = static_cast<size_t>(tv.count);
  text_.reserve(n);
  index_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // As llama.cpp: an empty text becomes "[EMPTY_i]", and for duplicate
    // texts the last id wins (token_to_id[word] = i).
    text_.emplace_back(tv.strings[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : std::string(tv.strings[i]));
    index_.insert_or_assign(text_.back(), static_cast<token_id>(i));
  }
  score_.assign(n, 0.0f);
  if (const gguf::value* sv = file.find("tokenizer.ggml.scores")) {
    const bool ints = sv->type == gguf::value_type::array && sv->elem_type == gguf::value_type::i32;
    auto scores = file.get_array("tokenizer.ggml.scores", ints ? gguf::value_type::i32 : gguf::value_type::f32);
    if (!scores) return scores.error();
    if ((*scores)->count < n)
      return {errc::malformed, fname + ": tokenizer.ggml.scores has " + std::to_string((*scores)->count) +
                                   " entries for " + std::to_string(n) + " tokens"};
    for (size_t i = 0; i < n; ++i)
      score_[i] = ints ? static_cast<float>((*scores)->array_int(i)) : static_cast<float>((*scores)->array_float(i));
  }
  kind_.assign(n, token_kind::normal);
  if (file.find("tokenizer.ggml.token_type")) {
    auto types = file.get_array("tokenizer.ggml.token_type", gguf::value_type::i32);
    if (!types) return types.error();
    if ((*types)->count < n)
      return {errc::malformed, fname + ": tokenizer.ggml.token_type has " + std::to_string((*types)->count) +
                                   " entries for " + std::to_string(n) + " tokens"};
    for (size_t i = 0; i < n; ++i) {
      const int64_t k = (*types)->array_int(i);
      kind_[i] = k >= 0 && k <= 6 ? static_cast<token_kind>(k) : token_kind::undefined;
    }
  }
  attr_.resize(n);
  for (size_t i = 0; i < n; ++i) attr_[i] = attr_of(kind_[i]);

  if (type_ == vocab_type::gpt2) {
    auto merges = file.get_array("tokenizer.ggml.merges", gguf::value_type::string);
    if (!merges)
      return {errc::malformed, fname + ": a BPE vocabulary needs tokenizer.ggml.merges (" + merges.error().message() + ")"};
    pair_rank_.reserve(static_cast<size_t>((*merges)->count));
    for (size_t i = 0; i < (*merges)->count; ++i) {
      // As llama.cpp: "first second" split at the first space after the first
      // byte; a merge without one pairs two empty texts (never matches).
      std::string_view m = (*merges)->strings[i];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string_view::npos) continue;
      const std::string_view left = m.substr(0, sp), right = m.substr(sp + 1);
      const token_id l = find(left), r = find(right);
      const auto rank = static_cast<int32_t>(i);
      if (l >= 0 && r >= 0)
        pair_rank_.emplace(pair_key(l, r), rank);
      else
        text_rank_.emplace(std::make_pair(std::string(left), std::string(right)), rank);
    }
  }
  return {};
}

status tokenizer::read_settings(const gguf::gguf_file& file) {
  const size_t n = text_.size();
  const bool llama = type_ == vocab_type::llama;
  const bool gemma4 = model_ == "gemma4";
  // llama.cpp's defaults per tokenizer model; an id outside the vocabulary disables it.
  auto read_id = [&](const char* key, int64_t fallback, token_id& out) -> status {
    out = static_cast<token_id>(fallback >= 0 && fallback < static_cast<int64_t>(n) ? fallback : -1);
    if (!file.find(key)) return {};
    auto id = file.get_uint(key, 0);
    if (!id) return id.error();
    if (*id < n) out = static_cast<token_id>(*id);  // llama.cpp keeps the default for a bad id
    return {};
  };
  const bool no_bos = pretok_ && pretok_->no_bos();  // chatglm: no BOS unless the file names one
  const int64_t def_bos = llama ? 1 : (gemma4 || no_bos) ? -1 : 11;
  const int64_t def_eos = llama ? 2 : gemma4 ? -1 : 11;
  if (auto s = read_id("tokenizer.ggml.bos_token_id", def_bos, bos_); !s) return s;
  if (auto s = read_id("tokenizer.ggml.eos_token_id", def_eos, eos_); !s) return s;
  if (auto s = read_id("tokenizer.ggml.unknown_token_id", llama ? 0 : -1, unk_); !s) return s;
  token_id eot = -1, eom = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  if (auto s = read_id("tokenizer.ggml.eot_token_id", -1, eot); !s) return s;
  if (auto s = read_id("tokenizer.ggml.eom_token_id", -1, eom); !s) return s;
  if (auto s = read_id("tokenizer.ggml.fim_pad_token_id", -1, fim_pad); !s) return s;
  if (auto s = read_id("tokenizer.ggml.fim_rep_token_id", -1, fim_rep); !s) return s;
  if (auto s = read_id("tokenizer.ggml.fim_sep_token_id", -1, fim_sep); !s) return s;
  for (token_id id : {fim_pad, fim_rep, fim_sep, eot, eom})
    if (id >= 0) eog_.push_back(id);

  const bool def_add_bos = llama || (pretok_ && pretok_->default_add_bos());
  auto add_bos = file.get_bool("tokenizer.ggml.add_bos_token", def_add_bos);
  if (!add_bos) return add_bos.error();
  add_bos_ = *add_bos || pre_family_ == "gemma4";  // llama.cpp: the Gemma 4 pre-tokenizer always adds BOS
  auto add_eos = file.get_bool("tokenizer.ggml.add_eos_token", false);
  if (!add_eos) return add_eos.error();
  add_eos_ = *add_eos;
  auto space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", llama);
  if (!space_prefix) return space_prefix.error();
  add_space_prefix_ = *space_prefix;
  auto extra_ws = file.get_bool("tokenizer.ggml.remove_extra_whitespaces", false);
  if (!extra_ws) return extra_ws.error();
  remove_extra_whitespaces_ = *extra_ws;
  add_bos_ = add_bos_ && bos_ >= 0;  // llama.cpp would assert when tokenizing
  add_eos_ = add_eos_ && eos_ >= 0;

  for (int b = 0; b < 256; ++b) {
    token_id id = -1;
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    if (llama) {
      id = find(hex);
      if (id < 0) id = find(std::string(1, static_cast<char>(b)));
    } else if (pretok_ && !pretok_->byte_encode()) {
      id = find(hex);
    } else {
      id = find(unicode::byte_to_unicode(static_cast<unsigned char>(b)));
    }
    byte_tokens_[b] = id;
  }
  return {};
}

void tokenizer::infer_attributes(const gguf::gguf_file& file) {
  std::unordered_set<token_id> eog(eog_.begin(), eog_.end());
  mark_control_texts(file, eog);
  settle_end_of_generation(eog);
  cache_special_tokens(file);
}

// What llama.cpp infers from token texts (the texts the index keeps, i.e.
// the last id of a duplicated text), in its order.
void tokenizer::mark_control_texts(const gguf::gguf_file& file, std::unordered_set<token_id>& eog) {
  // A kind is named when its key (or the deprecated one) holds an id inside the vocabulary.
  auto named = [&](const char* key) {
    if (!file.find(key)) return false;
    auto id = file.get_uint(key, 0);
    return id && *id < text_.size();
  };
  bool fim_named[6];
  const char* old_keys[3] = {"tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id",
                             "tokenizer.ggml.middle_token_id"};
  for (int k = 0; k < 6; ++k) fim_named[k] = named(fim_keys[k]) || (k < 3 && named(old_keys[k]));
  for (const auto& [txt, id] : index_) {
    uint32_t& a = attr_[static_cast<size_t>(id)];
    for (int k = 0; k < 6; ++k) {
      const auto& list = fim_texts()[static_cast<size_t>(k)];
      if (fim_named[k] || std::find(list.begin(), list.end(), txt) == list.end()) continue;
      a |= attr_control;
      if (k >= 3) eog.insert(id);
    }
  }
  for (const auto& [txt, id] : index_) {
    uint32_t& a = attr_[static_cast<size_t>(id)];
    if ((a & attr_control) && txt.find("unused") != std::string::npos) a |= attr_unused;
  }
  for (const auto& [txt, id] : index_) {
    if (!eog_text(txt)) continue;
    eog.insert(id);
    attr_[static_cast<size_t>(id)] |= attr_control;
  }
  for (const auto& [txt, id] : index_)
    if (is_one_of(txt, {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}))
      attr_[static_cast<size_t>(id)] = attr_user_defined;
}

// EOS ends generation too; then llama.cpp's exceptions by vocabulary.
void tokenizer::settle_end_of_generation(std::unordered_set<token_id>& eog) {
  if (eos_ >= 0) eog.insert(eos_);
  auto by_text = [&](std::string_view txt) {
    for (token_id id : eog)
      if (text_[static_cast<size_t>(id)] == txt) return id;
    return token_id{-1};
  };
  // o200k_harmony and solar-open: "<|end|>" is not the end there.
  const token_id end = by_text("<|end|>");
  const bool has_call = by_text("<|call|>") >= 0 || by_text("<|calls|>") >= 0;
  if (end >= 0 && has_call && (by_text("<|return|>") >= 0 || by_text("<|flush|>") >= 0)) {
    eog.erase(end);
    attr_[static_cast<size_t>(end)] = attr_user_defined;
  }
  // Gemma 4 and paddleocr: "</s>" is plain text.
  const token_id s_id = by_text("</s>");
  if (s_id >= 0 && by_text("<|tool_response>") >= 0) {
    eog.erase(s_id);
    attr_[static_cast<size_t>(s_id)] = attr_normal;
  }
  eog_.assign(eog.begin(), eog.end());
  std::sort(eog_.begin(), eog_.end());
}

// Tokens matched as whole texts before splitting, longest first.
void tokenizer::cache_special_tokens(const gguf::gguf_file& file) {
  const size_t n = text_.size();
  // Phi-3: whitespace right of its special tokens is dropped (by model name, as llama.cpp).
  auto name = file.get_string("general.name", "");
  std::string lname = name ? *name : "";
  std::transform(lname.begin(), lname.end(), lname.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool phi3 = lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos;

  for (size_t i = 0; i < n; ++i)
    if ((attr_[i] & (attr_control | attr_user_defined | attr_unknown)) && !text_[i].empty())
      special_.push_back(static_cast<token_id>(i));
  // std::sort on ids in ascending order, as llama.cpp (equal lengths keep its order under libstdc++).
  std::sort(special_.begin(), special_.end(), [&](token_id a, token_id b) {
    return text_[static_cast<size_t>(a)].size() > text_[static_cast<size_t>(b)].size();
  });
  if (phi3) {
    for (token_id id : special_) attr_[static_cast<size_t>(id)] |= attr_rstrip;
    for (const char* t : {"</s>"})
      if (token_id id = find(t); id >= 0) attr_[static_cast<size_t>(id)] |= attr_rstrip;
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"})
      if (token_id id = find(t); id >= 0) attr_[static_cast<size_t>(id)] &= ~attr_rstrip;
  }
}

token_id tokenizer::find(std::string_view text) const {
  auto it = index_.find(text);
  return it == index_.end() ? -1 : it->second;
}

bool tokenizer::is_end_of_generation(token_id id) const {
  return std::binary_search(eog_.begin(), eog_.end(), id);
}

token_id tokenizer::byte_token(unsigned char b) const { return byte_tokens_[b] >= 0 ? byte_tokens_[b] : unk_; }

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<std::pair<size_t, size_t>> spans;
  if (parse_special) spans.emplace_back(0, text.size());
  return encode_spans(text, spans, add_bos, true, {});
}

std::vector<token_id> tokenizer::encode(const std::vector<text_part>& parts, bool add_bos) const {
  std::string text;
  std::vector<std::pair<size_t, size_t>> spans;
  for (const text_part& p : parts) {
    if (p.special && !p.text.empty()) spans.emplace_back(text.size(), text.size() + p.text.size());
    text += p.text;
  }
  // A user-defined token that the markup uses (a role marker some vocabularies
  // mark user-defined, e.g. <|im_start|> in older ChatML conversions) is
  // recognised only in the markup too; others match everywhere, as in llama.cpp.
  std::vector<token_id> markup_tokens;
  for (token_id id : special_) {
    if ((attr_[static_cast<size_t>(id)] & (attr_control | attr_unknown)) != 0) continue;
    const std::string& st = text_[static_cast<size_t>(id)];
    for (const text_part& p : parts)
      if (p.special && p.text.find(st) != std::string_view::npos) {
        markup_tokens.push_back(id);
        break;
      }
  }
  std::sort(markup_tokens.begin(), markup_tokens.end());
  return encode_spans(text, spans, add_bos, true, markup_tokens);
}

std::vector<token_id> tokenizer::encode_continuation(std::string_view text) const {
  return encode_spans(text, {}, false, false, {});
}

std::vector<token_id> tokenizer::encode_spans(std::string_view text,
                                              const std::vector<std::pair<size_t, size_t>>& special_spans,
                                              bool add_bos, bool space_prefix,
                                              const std::vector<token_id>& span_only) const {
  std::vector<token_id> out;
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  // A control (or unknown) token's text counts only inside a special span.
  auto allowed = [&](size_t at, size_t len) {
    for (const auto& [b, e] : special_spans)
      if (at >= b && at + len <= e) return true;
    return false;
  };

  // Split out special tokens, longest text first (llama.cpp's
  // tokenizer_st_partition). User-defined tokens are matched everywhere.
  std::vector<fragment> frags;
  if (!text.empty()) frags.push_back({-1, 0, text.size()});
  for (token_id id : special_) {
    const uint32_t a = attr_[static_cast<size_t>(id)];
    const bool needs_span = (a & (attr_control | attr_unknown)) != 0 ||
                            std::binary_search(span_only.begin(), span_only.end(), id);
    if (needs_span && special_spans.empty()) continue;
    const std::string& st = text_[static_cast<size_t>(id)];
    std::vector<fragment> next;
    next.reserve(frags.size());
    for (const fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t start = f.off;
      const size_t end = f.off + f.len;
      size_t search = start;
      while (search < end) {
        const size_t m = text.substr(0, end).find(st, search);
        if (m == std::string_view::npos) break;
        if (needs_span && !allowed(m, st.size())) {
          search = m + 1;
          continue;
        }
        size_t left = m - start;
        if (a & attr_lstrip)
          while (left > 0 && std::isspace(static_cast<unsigned char>(text[start + left - 1]))) --left;
        if (left > 0) next.push_back({-1, start, left});
        next.push_back({id, m, st.size()});
        start = m + st.size();
        if (a & attr_rstrip)
          while (start < end && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
        search = start;
      }
      if (start < end) next.push_back({-1, start, end - start});
    }
    frags.swap(next);
  }

  bool prev_special = space_prefix;  // SentencePiece: a leading space before the first raw text
  for (const fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.off, f.len);
    if (type_ == vocab_type::llama) {
      std::string s;
      if (add_space_prefix_ && prev_special) s = " ";
      s += raw;
      escape_whitespace(s);
      encode_llama(s, out);
      prev_special = false;
    } else if (escape_whitespaces_) {
      std::string s(raw);
      escape_whitespace(s);
      encode_bpe(s, out);
    } else {
      encode_bpe(raw, out);
    }
  }
  if (add_bos && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

void tokenizer::encode_llama(const std::string& text, std::vector<token_id>& out) const {
  // One symbol per UTF-8 character, then merge the adjacent pair whose merged
  // text is the highest-scoring token (leftmost on ties) until none is left.
  std::vector<symbol> syms;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(unicode::utf8_len(static_cast<unsigned char>(text[off])), text.size() - off);
    const int idx = static_cast<int>(syms.size());
    off += len;
    syms.push_back({idx - 1, off == text.size() ? -1 : idx + 1, text.data() + off - len, len});
  }
  struct bigram {
    int left, right;
    float score;
    size_t size;
  };
  auto cmp = [](const bigram& a, const bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<bigram, std::vector<bigram>, decltype(cmp)> queue(cmp);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view merged(syms[static_cast<size_t>(left)].text,
                                  syms[static_cast<size_t>(left)].n + syms[static_cast<size_t>(right)].n);
    const token_id id = find(merged);
    if (id < 0) return;
    queue.push({left, right, score_[static_cast<size_t>(id)], merged.size()});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const bigram b = queue.top();
    queue.pop();
    symbol& l = syms[static_cast<size_t>(b.left)];
    symbol& r = syms[static_cast<size_t>(b.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // Every merged symbol is a token by construction; single characters that
  // are not fall back to their bytes.
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const symbol& s = syms[static_cast<size_t>(i)];
    const token_id id = find(std::string_view(s.text, s.n));
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (size_t k = 0; k < s.n; ++k) out.push_back(byte_token(static_cast<unsigned char>(s.text[k])));
    }
  }
}

void tokenizer::encode_bpe(std::string_view text, std::vector<token_id>& out) const {
  for (const std::string& word : pretok_->split(text)) encode_bpe_word(word, out);
}

void tokenizer::encode_bpe_word(const std::string& word, std::vector<token_id>& out) const {
  // Each symbol is a span of the word with its token id (-1: not a token).
  struct bpe_symbol {
    int prev, next;
    size_t off, n;
    token_id id;
  };
  struct bigram {
    int left, right;
    int32_t rank;
    size_t left_n, right_n;  // the spans it was made for: stale once either changed
  };
  auto cmp = [](const bigram& a, const bigram& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::vector<bpe_symbol> syms;
  size_t off = 0;
  if ((ignore_merges_ || (pre_family_ == "gemma4" && word.find_first_not_of('\n') == std::string::npos)) &&
      find(word) >= 0) {
    // A word that is a token is taken whole (ignore_merges; Gemma 4's newline runs).
    syms.push_back({-1, -1, 0, word.size(), find(word)});
    off = word.size();
  }
  while (off < word.size()) {
    const size_t len = std::min(unicode::utf8_len(static_cast<unsigned char>(word[off])), word.size() - off);
    const int idx = static_cast<int>(syms.size());
    syms.push_back({idx - 1, off + len == word.size() ? -1 : idx + 1, off, len, find(word.substr(off, len))});
    off += len;
  }
  std::priority_queue<bigram, std::vector<bigram>, decltype(cmp)> queue(cmp);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const bpe_symbol& l = syms[static_cast<size_t>(left)];
    const bpe_symbol& r = syms[static_cast<size_t>(right)];
    if (l.id >= 0 && r.id >= 0) {
      auto it = pair_rank_.find(pair_key(l.id, r.id));
      if (it != pair_rank_.end()) queue.push({left, right, it->second, l.n, r.n});
      return;
    }
    if (text_rank_.empty()) return;
    auto it = text_rank_.find(std::make_pair(word.substr(l.off, l.n), word.substr(r.off, r.n)));
    if (it != text_rank_.end()) queue.push({left, right, it->second, l.n, r.n});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const bigram b = queue.top();
    queue.pop();
    bpe_symbol& l = syms[static_cast<size_t>(b.left)];
    bpe_symbol& r = syms[static_cast<size_t>(b.right)];
    if (l.n != b.left_n || r.n != b.right_n || l.next != b.right) continue;  // outdated
    l.n += r.n;
    l.id = find(std::string_view(word).substr(l.off, l.n));
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  const bool byte_encode = pretok_->byte_encode();
  for (const bpe_symbol& s : syms) {
    if (s.n == 0) continue;
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // Not a token: its single bytes, where those are tokens (llama.cpp);
    // <0xXX> tokens for vocabularies over raw UTF-8.
    for (char c : std::string_view(word).substr(s.off, s.n)) {
      const token_id b = byte_encode ? find(std::string_view(&c, 1)) : byte_tokens_[static_cast<unsigned char>(c)];
      if (b >= 0) out.push_back(b);
    }
  }
}

std::string tokenizer::piece(token_id id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return {};
  const uint32_t a = attr_[static_cast<size_t>(id)];
  const std::string& t = text_[static_cast<size_t>(id)];
  // As llama.cpp's token_to_piece: control and unknown tokens are silent
  // unless rendered, then (like user-defined ones) their raw text.
  if (a & (attr_control | attr_unknown)) return render_special ? t : std::string();
  if (a & attr_user_defined) return t;
  if (a & attr_normal) {
    if (type_ == vocab_type::llama || escape_whitespaces_) {
      std::string s = t;
      unescape_whitespace(s);
      return s;
    }
    // byte-level BPE: map each code point back to its byte.
    std::string out;
    for (uint32_t cpt : unicode::decode_utf8(t)) {
      unsigned char b;
      if (unicode::unicode_to_byte(cpt, b))
        out += static_cast<char>(b);
      else
        unicode::append_utf8(out, cpt);
    }
    return out;
  }
  if (a & attr_byte) {
    unsigned b = 0;
    if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%02X>", &b) == 1) return std::string(1, static_cast<char>(b));
    return t;
  }
  return {};
}

std::string tokenizer::decode(const std::vector<token_id>& ids, bool render_special) const {
  std::string out;
  for (token_id id : ids) out += piece(id, render_special);
  return out;
}

std::string stream_decoder::push(token_id id) { return push_bytes(tok_->piece(id, render_special_)); }

std::string stream_decoder::push_bytes(std::string_view bytes) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  pending_ += bytes;
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(pending_.data());
  const size_t n = pending_.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (len == 2 && c < 0xC2) || c > 0xF4) {
      out += replacement;
      ++i;
      continue;
    }
    // Second-byte ranges exclude overlongs, surrogates and > U+10FFFF.
    const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    size_t k = 1;
    bool bad = false;
    for (; k < len && i + k < n; ++k) {
      const unsigned char cc = p[i + k];
      if (k == 1 ? (cc < lo || cc > hi) : (cc & 0xC0) != 0x80) {
        bad = true;
        break;
      }
    }
    if (bad) {
      out += replacement;
      i += k;  // skip the lead and the valid continuation bytes seen
      continue;
    }
    if (k < len) break;  // incomplete: wait for the next token
    out.append(pending_, i, len);
    i += len;
  }
  pending_.erase(0, i);
  return out;
}

std::string stream_decoder::finish() {
  std::string out = pending_.empty() ? "" : "\xEF\xBF\xBD";
  pending_.clear();
  return out;
}

}  // namespace brigade
