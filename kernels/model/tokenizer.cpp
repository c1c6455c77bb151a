#include "kernels/model/tokenizer.hpp"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "kernels/model/gguf.hpp"
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

result<tokenizer> tokenizer::from_gguf(const gguf::gguf_file& file) {
  const std::string& fname = file.name();
  auto model = file.get_string("tokenizer.ggml.model", "");
  if (!model) return model.error();
  tokenizer t;
  if (model->empty())
    return status{errc::not_found, fname + ": no tokenizer (the key tokenizer.ggml.model is missing)"};
  if (*model == "llama") {
    t.type_ = vocab_type::llama;
  } else if (*model == "gpt2") {
    t.type_ = vocab_type::gpt2;
  } else {
    return status{errc::unsupported,
                  fname + ": tokenizer model '" + *model + "' is not supported (brigade supports 'llama' and 'gpt2')"};
  }
  auto pre = file.get_string("tokenizer.ggml.pre", "default");
  if (!pre) return pre.error();
  t.pre_ = *pre;
  if (t.type_ == vocab_type::gpt2 && t.pre_ != "gpt-2")
    return status{errc::unsupported,
                  fname + ": pre-tokenizer '" + t.pre_ +
                      "' (tokenizer.ggml.pre) is not supported; brigade's gpt2 tokenizer implements only 'gpt-2'"};

  auto tokens = file.get_array("tokenizer.ggml.tokens", gguf::value_type::string);
  if (!tokens) return tokens.error();
  const gguf::value& tv = **tokens;
  if (tv.count == 0 || tv.count > static_cast<uint64_t>(INT32_MAX))
    return status{errc::malformed, fname + ": tokenizer.ggml.tokens holds " + std::to_string(tv.count) + " tokens"};
  const size_t n = static_cast<size_t>(tv.count);
  t.text_.reserve(n);
  t.index_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // As llama.cpp: an empty text becomes "[EMPTY_i]", and for duplicate
    // texts the last id wins (token_to_id[word] = i).
    t.text_.emplace_back(tv.strings[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : std::string(tv.strings[i]));
    t.index_.insert_or_assign(t.text_.back(), static_cast<token_id>(i));
  }

  t.score_.assign(n, 0.0f);
  if (file.find("tokenizer.ggml.scores")) {
    auto scores = file.get_array("tokenizer.ggml.scores", gguf::value_type::f32);
    if (!scores) return scores.error();
    if ((*scores)->count != n)
      return status{errc::malformed, fname + ": tokenizer.ggml.scores has " + std::to_string((*scores)->count) +
                                         " entries for " + std::to_string(n) + " tokens"};
    for (size_t i = 0; i < n; ++i) t.score_[i] = static_cast<float>((*scores)->array_float(i));
  }
  t.kind_.assign(n, token_kind::normal);
  if (file.find("tokenizer.ggml.token_type")) {
    auto types = file.get_array("tokenizer.ggml.token_type", gguf::value_type::i32);
    if (!types) return types.error();
    if ((*types)->count != n)
      return status{errc::malformed, fname + ": tokenizer.ggml.token_type has " + std::to_string((*types)->count) +
                                         " entries for " + std::to_string(n) + " tokens"};
    for (size_t i = 0; i < n; ++i) {
      const int64_t k = (*types)->array_int(i);
      if (k < 0 || k > 6)
        return status{errc::malformed,
                      fname + ": token " + std::to_string(i) + " has unknown token type " + std::to_string(k)};
      t.kind_[i] = static_cast<token_kind>(k);
    }
  }

  if (t.type_ == vocab_type::gpt2) {
    auto merges = file.get_array("tokenizer.ggml.merges", gguf::value_type::string);
    if (!merges) return merges.error();
    t.merge_rank_.reserve(static_cast<size_t>((*merges)->count));
    for (size_t i = 0; i < (*merges)->count; ++i) {
      std::string_view m = (*merges)->strings[i];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string_view::npos)
        return status{errc::malformed,
                      fname + ": merge " + std::to_string(i) + " ('" + std::string(m) + "') has no space"};
      t.merge_rank_.emplace(std::string(m), static_cast<int32_t>(i));
    }
  }

  const bool llama = t.type_ == vocab_type::llama;
  auto read_id = [&](const char* key, int64_t fallback, token_id& out) -> status {
    const gguf::value* v = file.find(key);
    if (!v) {
      out = static_cast<token_id>(fallback < static_cast<int64_t>(n) ? fallback : -1);
      return {};
    }
    auto id = file.get_uint(key, 0);
    if (!id) return id.error();
    if (*id >= n)
      return {errc::malformed, fname + ": " + key + " = " + std::to_string(*id) + " is outside the vocabulary of " +
                                   std::to_string(n) + " tokens"};
    out = static_cast<token_id>(*id);
    return {};
  };
  if (auto s = read_id("tokenizer.ggml.bos_token_id", llama ? 1 : -1, t.bos_); !s) return s;
  if (auto s = read_id("tokenizer.ggml.eos_token_id", llama ? 2 : -1, t.eos_); !s) return s;
  if (auto s = read_id("tokenizer.ggml.unknown_token_id", llama ? 0 : -1, t.unk_); !s) return s;
  auto add_bos = file.get_bool("tokenizer.ggml.add_bos_token", llama);
  if (!add_bos) return add_bos.error();
  t.add_bos_ = *add_bos && t.bos_ >= 0;
  auto space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", llama);
  if (!space_prefix) return space_prefix.error();
  t.add_space_prefix_ = *space_prefix;

  for (int b = 0; b < 256; ++b) {
    token_id id = -1;
    if (llama) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      id = t.find(hex);
      if (id < 0) id = t.find(std::string(1, static_cast<char>(b)));
    } else {
      id = t.find(unicode::byte_to_unicode(static_cast<unsigned char>(b)));
    }
    t.byte_tokens_[b] = id;
  }

  for (size_t i = 0; i < n; ++i) {
    const token_kind k = t.kind_[i];
    if ((k == token_kind::control || k == token_kind::user_defined || k == token_kind::unknown) && !t.text_[i].empty())
      t.special_.push_back(static_cast<token_id>(i));
  }
  std::stable_sort(t.special_.begin(), t.special_.end(), [&](token_id a, token_id b) {
    return t.text_[static_cast<size_t>(a)].size() > t.text_[static_cast<size_t>(b)].size();
  });

  if (t.eos_ >= 0) t.eog_.push_back(t.eos_);
  for (const char* eot : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>"}) {
    const token_id id = t.find(eot);
    if (id >= 0 && t.kind_[static_cast<size_t>(id)] == token_kind::control &&
        std::find(t.eog_.begin(), t.eog_.end(), id) == t.eog_.end())
      t.eog_.push_back(id);
  }
  return t;
}

token_id tokenizer::find(std::string_view text) const {
  auto it = index_.find(text);
  return it == index_.end() ? -1 : it->second;
}

bool tokenizer::is_end_of_generation(token_id id) const {
  return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

token_id tokenizer::byte_token(unsigned char b) const { return byte_tokens_[b] >= 0 ? byte_tokens_[b] : unk_; }

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<token_id> out;
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  if (text.empty()) return out;

  // Split out special tokens, longest text first (llama.cpp's
  // tokenizer_st_partition). Without parse_special only user-defined ones.
  std::vector<fragment> frags{{-1, 0, text.size()}};
  for (token_id id : special_) {
    const token_kind k = kind_[static_cast<size_t>(id)];
    if (!parse_special && k != token_kind::user_defined) continue;
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
      while (start < end) {
        const size_t m = text.substr(0, end).find(st, start);
        if (m == std::string_view::npos) break;
        if (m > start) next.push_back({-1, start, m - start});
        next.push_back({id, m, st.size()});
        start = m + st.size();
      }
      if (start < end) next.push_back({-1, start, end - start});
    }
    frags.swap(next);
  }

  bool prev_special = true;  // SentencePiece: a leading space before the first raw text
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
    } else {
      encode_gpt2(raw, out);
    }
  }
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

void tokenizer::encode_gpt2(std::string_view text, std::vector<token_id>& out) const {
  struct bigram {
    int left, right;
    int32_t rank;
    std::string text;
  };
  auto cmp = [](const bigram& a, const bigram& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::string key;
  for (const std::string& word : unicode::gpt2_pretokenize(text)) {
    std::vector<symbol> syms;
    for (size_t off = 0; off < word.size();) {
      const size_t len = std::min(unicode::utf8_len(static_cast<unsigned char>(word[off])), word.size() - off);
      const int idx = static_cast<int>(syms.size());
      off += len;
      syms.push_back({idx - 1, off == word.size() ? -1 : idx + 1, word.data() + off - len, len});
    }
    std::priority_queue<bigram, std::vector<bigram>, decltype(cmp)> queue(cmp);
    auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const symbol& l = syms[static_cast<size_t>(left)];
      const symbol& r = syms[static_cast<size_t>(right)];
      key.assign(l.text, l.n);
      key += ' ';
      key.append(r.text, r.n);
      auto it = merge_rank_.find(key);
      if (it == merge_rank_.end()) return;
      queue.push({left, right, it->second, std::string(l.text, l.n + r.n)});
    };
    for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const bigram b = queue.top();
      queue.pop();
      symbol& l = syms[static_cast<size_t>(b.left)];
      symbol& r = syms[static_cast<size_t>(b.right)];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.text.size() || std::string_view(l.text, l.n + r.n) != b.text)
        continue;  // outdated
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (const symbol& s : syms) {
      if (s.n == 0) continue;
      const std::string_view piece(s.text, s.n);
      const token_id id = find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // Not a token: its single bytes, where those are tokens (llama.cpp).
      for (char c : piece) {
        const token_id b = find(std::string_view(&c, 1));
        if (b >= 0) out.push_back(b);
      }
    }
  }
}

std::string tokenizer::piece(token_id id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return {};
  const token_kind k = kind_[static_cast<size_t>(id)];
  const std::string& t = text_[static_cast<size_t>(id)];
  // As llama.cpp's token_to_piece: control and unknown tokens are silent
  // unless rendered, then (like user-defined ones) their raw text.
  if (k == token_kind::control || k == token_kind::unknown) return render_special ? t : std::string();
  if (k == token_kind::user_defined) return t;
  if (type_ == vocab_type::llama) {
    if (k == token_kind::byte) {
      unsigned b = 0;
      if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%02X>", &b) == 1) return std::string(1, static_cast<char>(b));
      return t;
    }
    if (k != token_kind::normal) return {};
    std::string s = t;
    unescape_whitespace(s);
    return s;
  }
  // gpt2: map each code point back to its byte.
  if (k != token_kind::normal) return {};
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
