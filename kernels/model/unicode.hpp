// Unicode helpers for the tokenizers: UTF-8 <-> code points with llama.cpp's
// exact (lenient) decoding rules, llama.cpp's own category and whitespace
// tables (see tools/gen_unicode_tables.py) and GPT-2's byte <-> unicode
// mapping. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace brigade::unicode {

/// Byte length of the UTF-8 sequence that starts with `lead` (1 for
/// continuation and invalid bytes), as llama.cpp's unicode_len_utf8.
inline size_t utf8_len(unsigned char lead) {
  static constexpr size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[lead >> 4];
}

/// Decodes `s` to code points. An invalid or truncated sequence yields
/// U+FFFD and resynchronises one byte later (llama.cpp's behaviour).
std::vector<uint32_t> decode_utf8(std::string_view s);
/// True when `s` is well-formed UTF-8 (no overlongs, surrogates, or code
/// points past U+10FFFF).
bool valid_utf8(std::string_view s);
/// Appends the UTF-8 encoding of `cpt` to `out`.
void append_utf8(std::string& out, uint32_t cpt);

/// llama.cpp's unicode_cpt_flags category bits: one per code point.
enum category : uint8_t {
  cat_undefined = 0x01,
  cat_number = 0x02,       // \p{N}
  cat_letter = 0x04,       // \p{L}
  cat_separator = 0x08,    // \p{Z}
  cat_accent_mark = 0x10,  // \p{M}
  cat_punctuation = 0x20,  // \p{P}
  cat_symbol = 0x40,       // \p{S}
  cat_control = 0x80,      // \p{C}
};
/// The category of `cpt` in llama.cpp's tables (cat_undefined past U+10FFFF).
uint8_t category(uint32_t cpt);
/// Where the tables come from: "llama.cpp src/unicode-data.cpp, sha256 ...".
const char* tables_source();

/// llama.cpp's whitespace set (its `\s`): ASCII 9-13 and 32, U+0085, U+00A0,
/// U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
bool is_whitespace(uint32_t cpt);

/// GPT-2's reversible byte -> printable code point map, as UTF-8 text.
const std::string& byte_to_unicode(unsigned char b);
/// Inverse of byte_to_unicode for one code point; returns false for a code
/// point that is not in the map.
bool unicode_to_byte(uint32_t cpt, unsigned char& out);

}  // namespace brigade::unicode
