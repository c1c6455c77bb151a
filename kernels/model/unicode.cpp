#include "kernels/model/unicode.hpp"

#include <algorithm>
#include <array>

namespace brigade::unicode {

namespace {

struct cpt_flag_range {
  uint32_t first;
  uint8_t flags;
};

#include "kernels/model/unicode_tables.inc"

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

const char* tables_source() { return unicode_tables_source; }

uint8_t category(uint32_t cpt) {
  if (cpt > max_cpt) return cat_undefined;
  auto it = std::upper_bound(std::begin(flag_ranges), std::end(flag_ranges), cpt,
                             [](uint32_t c, const cpt_flag_range& r) { return c < r.first; });
  return it == std::begin(flag_ranges) ? static_cast<uint8_t>(cat_undefined) : std::prev(it)->flags;
}

bool is_whitespace(uint32_t cpt) {
  return std::binary_search(std::begin(whitespace_cpts), std::end(whitespace_cpts), cpt);
}

const std::string& byte_to_unicode(unsigned char b) { return maps().to_text[b]; }

bool unicode_to_byte(uint32_t cpt, unsigned char& out) {
  if (cpt >= maps().from_cpt.size() || maps().from_cpt[cpt] < 0) return false;
  out = static_cast<unsigned char>(maps().from_cpt[cpt]);
  return true;
}

}  // namespace brigade::unicode
