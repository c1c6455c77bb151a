// The one matcher behind every BPE pre-tokenizer: a small backtracking regular
// expression engine with exactly the semantics llama.cpp gives its
// pre-tokenizer expressions (src/unicode.cpp, unicode_regex_split):
//
//   - ECMAScript matching (std::regex): leftmost match, alternatives tried in
//     order, greedy quantifiers that backtrack, (?=...) and (?!...).
//   - An expression that names a Unicode category (\p{N}, \p{L}, \p{P},
//     \p{M}, \p{S}; \p{Lu}, \p{Ll}, \p{Lt}, \p{Lm} and \p{Lo} all mean \p{L})
//     runs "collapsed": every non-ASCII code point stands for its category
//     (llama.cpp's tables), non-ASCII whitespace for \v, so \p{L} is ASCII
//     letters plus any non-ASCII letter, and such an expression may not hold
//     non-ASCII literals. Any other expression compares code points, with
//     non-ASCII whitespace again standing for \v.
//   - \s is ASCII whitespace (plus those stand-ins), \d is [0-9], \w is
//     [A-Za-z0-9_], `.` is anything but \n and \r.
//   - The text is split segment by segment (the pieces an earlier expression
//     made); `$` and look-aheads see the segment's end as the end of input;
//     the text between matches becomes pieces of its own.
//
// Matching is iterative (an explicit backtracking stack on the heap): a long
// run of letters or spaces cannot overflow the thread's stack. A match
// attempt that backtracks more than a fixed budget counts as no match there.
// Immutable after compile(); thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade::unicode {

class split_regex {
 public:
  /// Compiles `expr`; errc::unsupported names the construct that brigade's
  /// matcher does not implement (back-references, lazy quantifiers, unknown
  /// \p{} categories, a repetition that can match the empty string).
  static result<split_regex> compile(std::string_view expr);

  /// llama.cpp's unicode_regex_split_stl: splits each segment of `cpts`
  /// (lengths in `offsets`, summing to cpts.size()) at this expression's
  /// matches and returns the new piece lengths (no empty pieces).
  std::vector<size_t> split(const std::vector<uint32_t>& cpts, const std::vector<size_t>& offsets) const;

  bool collapsed() const { return collapsed_; }

  enum class op : uint8_t { cls, split, jmp, match, look, look_neg, bol, eol, word_b, not_word_b };
  struct inst {
    op code;
    int32_t x = 0;  // cls: class index; split/jmp: target; look: sub-program start
    int32_t y = 0;  // split: second target; look: sub-program end
  };
  struct range {
    uint32_t lo, hi;
  };
  struct char_class {
    std::vector<range> ranges;  // sorted, merged
    bool negated = false;
  };

 private:
  split_regex() = default;
  struct matcher;
  std::vector<inst> prog_;
  std::vector<char_class> classes_;
  int32_t start_ = 0;
  bool collapsed_ = false;
};

}  // namespace brigade::unicode
