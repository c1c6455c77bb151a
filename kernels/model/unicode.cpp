#include "kernels/model/unicode.hpp"

#include <algorithm>
#include <array>

namespace brigade::unicode {

namespace {

struct cpt_range {
  uint32_t lo, hi;
};

#include "kernels/model/unicode_tables.inc"

template <size_t N>
bool in_table(const cpt_range (&table)[N], uint32_t cpt) {
  auto it = std::upper_bound(std::begin(table), std::end(table), cpt,
                             [](uint32_t c, const cpt_range& r) { return c < r.lo; });
  if (it == std::begin(table)) return false;
  --it;
  return cpt >= it->lo && cpt <= it->hi;
}

constexpr uint32_t max_cpt = 0x10FFFF;
constexpr uint32_t replacement = 0xFFFD;

struct byte_maps {
  std::array<std::string, 256> to_text;
  std::array<int, 512> from_cpt;  // code points used are < 324
  byte_maps() {
    from_cpt.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cpt = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      append_utf8(to_text[b], cpt);
      from_cpt[cpt] = b;
    }
  }
};

const byte_maps& maps() {
  static const byte_maps m;
  return m;
}

}  // namespace

const char* tables_version() { return unicode_tables_version; }

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  auto cont = [&](size_t k) { return i + k < n && (p[i + k] & 0xC0) == 0x80; };
  while (i < n) {
    const unsigned char c = p[i];
    if (!(c & 0x80)) {
      out.push_back(c);
      i += 1;
    } else if (!(c & 0x40)) {
      out.push_back(replacement);
      i += 1;
    } else if (!(c & 0x20)) {
      if (!cont(1)) {
        out.push_back(replacement);
        i += 1;
        continue;
      }
      out.push_back(((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu));
      i += 2;
    } else if (!(c & 0x10)) {
      if (!cont(1) || !cont(2)) {
        out.push_back(replacement);
        i += 1;
        continue;
      }
      out.push_back(((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu));
      i += 3;
    } else if (!(c & 0x08)) {
      if (!cont(1) || !cont(2) || !cont(3)) {
        out.push_back(replacement);
        i += 1;
        continue;
      }
      out.push_back(((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu));
      i += 4;
    } else {
      out.push_back(replacement);
      i += 1;
    }
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = p[i];
    const size_t n = c < 0x80                   ? 1
                     : (c >= 0xC2 && c <= 0xDF) ? 2
                     : (c & 0xF0) == 0xE0       ? 3
                     : (c >= 0xF0 && c <= 0xF4) ? 4
                                                : 0;
    if (n == 0 || i + n > s.size()) return false;
    const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (n > 1 && (p[i + 1] < lo || p[i + 1] > hi)) return false;
    for (size_t k = 2; k < n; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out += static_cast<char>(cpt);
  } else if (cpt <= 0x7FF) {
    out += static_cast<char>(0xC0 | (cpt >> 6));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else if (cpt <= 0xFFFF) {
    out += static_cast<char>(0xE0 | (cpt >> 12));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else {
    // Up to 21 bits: llama.cpp's lenient decoder can produce values above
    // U+10FFFF from F4..F7 lead bytes; re-encode them the same way.
    out += static_cast<char>(0xF0 | ((cpt >> 18) & 0x07));
    out += static_cast<char>(0x80 | ((cpt >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  }
}

cpt_class classify(uint32_t cpt) {
  cpt_class c;
  if (cpt > max_cpt) return c;
  c.in_range = true;
  c.letter = in_table(letter_ranges, cpt);
  c.number = !c.letter && in_table(number_ranges, cpt);
  c.whitespace = in_table(whitespace_ranges, cpt);
  return c;
}

const std::string& byte_to_unicode(unsigned char b) { return maps().to_text[b]; }

bool unicode_to_byte(uint32_t cpt, unsigned char& out) {
  if (cpt >= maps().from_cpt.size() || maps().from_cpt[cpt] < 0) return false;
  out = static_cast<unsigned char>(maps().from_cpt[cpt]);
  return true;
}

std::vector<std::string> gpt2_pretokenize(std::string_view text) {
  const std::vector<uint32_t> cpts = decode_utf8(text);
  const size_t n = cpts.size();
  std::vector<cpt_class> cls(n + 1);  // cls[n]: out of range (all false)
  for (size_t k = 0; k < n; ++k) cls[k] = classify(cpts[k]);
  auto cpt_at = [&](size_t k) -> uint32_t { return k < n ? cpts[k] : 0xFFFFFFFFu; };

  std::vector<size_t> ends;  // piece end offsets in code points
  size_t prev_end = 0;
  auto add = [&](size_t end) {
    if (end > prev_end) ends.push_back(end);
    prev_end = end;
  };
  size_t pos = 0;
  while (pos < n) {
    const uint32_t c = cpts[pos];
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
    if (c == '\'' && pos + 1 < n) {
      const uint32_t c1 = cpt_at(pos + 1);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        add(pos += 2);
        continue;
      }
      if (pos + 2 < n) {
        const uint32_t c2 = cpt_at(pos + 2);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          add(pos += 3);
          continue;
        }
      }
    }
    const cpt_class f2 = c == ' ' ? cls[pos + 1] : cls[pos];
    //  ?\p{L}+
    if (f2.letter) {
      pos += (c == ' ');
      while (cls[pos].letter) ++pos;
      add(pos);
      continue;
    }
    //  ?\p{N}+
    if (f2.number) {
      pos += (c == ' ');
      while (cls[pos].number) ++pos;
      add(pos);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+
    auto other = [](const cpt_class& f) { return f.in_range && !f.whitespace && !f.letter && !f.number; };
    if (other(f2)) {
      pos += (c == ' ');
      while (other(cls[pos])) ++pos;
      add(pos);
      continue;
    }
    size_t n_ws = 0;
    while (cls[pos + n_ws].whitespace) ++n_ws;
    // \s+(?!\S): leave the last space to prefix the next word
    if (n_ws > 1 && pos + n_ws < n) {
      add(pos += n_ws - 1);
      continue;
    }
    // \s+
    if (n_ws > 0) {
      add(pos += n_ws);
      continue;
    }
    add(++pos);  // no match: a piece of its own
  }

  std::vector<std::string> words;
  words.reserve(ends.size());
  size_t start = 0;
  std::string utf8;
  for (size_t end : ends) {
    utf8.clear();
    for (size_t k = start; k < end; ++k) append_utf8(utf8, cpts[k]);
    std::string word;
    for (unsigned char b : utf8) word += byte_to_unicode(b);
    words.push_back(std::move(word));
    start = end;
  }
  return words;
}

}  // namespace brigade::unicode
