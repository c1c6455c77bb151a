// Unicode helpers for the tokenizers: UTF-8 <-> code points with llama.cpp's
// exact (lenient) decoding rules, the letter/number/whitespace classes from
// Debian's unicode-data (see tools/gen_unicode_tables.py), GPT-2's byte <->
// unicode mapping and its pre-tokenizer. Pure functions; thread-safe.
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

struct cpt_class {
  bool letter = false;      // general category L*
  bool number = false;      // general category N*
  bool whitespace = false;  // White_Space
  bool in_range = false;    // cpt <= U+10FFFF
};
cpt_class classify(uint32_t cpt);

/// The Unicode version the class tables were generated from.
const char* tables_version();

/// GPT-2's reversible byte -> printable code point map, as UTF-8 text.
const std::string& byte_to_unicode(unsigned char b);
/// Inverse of byte_to_unicode for one code point; returns false for a code
/// point that is not in the map.
bool unicode_to_byte(uint32_t cpt, unsigned char& out);

/// Splits `text` with the GPT-2 pre-tokenizer regex
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// and returns each piece byte-level encoded (every byte mapped through
/// byte_to_unicode), ready for BPE merges.
std::vector<std::string> gpt2_pretokenize(std::string_view text);

}  // namespace brigade::unicode
