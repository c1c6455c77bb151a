#include "kernels/model/split_regex.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "kernels/model/unicode.hpp"

namespace brigade::unicode {

namespace {

// Collapsed expressions see a non-ASCII code point as one of these values:
// its category's stand-in (llama.cpp's bytes 0xD1..0xD5) or the fallback
// (0xD0), all above every code point.
constexpr uint32_t pseudo_base = 0x110000;
constexpr uint32_t max_key = pseudo_base + 0xFF;
constexpr uint32_t vertical_tab = 0x0B;

uint32_t pseudo(uint8_t cat) { return pseudo_base + cat; }

uint32_t collapsed_key(uint32_t c) {
  if (c < 128) return c;
  if (is_whitespace(c)) return vertical_tab;
  const uint8_t cat = category(c);
  switch (cat) {
    case cat_number:
    case cat_letter:
    case cat_punctuation:
    case cat_accent_mark:
    case cat_symbol: return pseudo(cat);
    default: return pseudo_base;
  }
}

uint32_t wide_key(uint32_t c) { return c > 0x7F && is_whitespace(c) ? vertical_tab : c; }

using range = split_regex::range;
using char_class = split_regex::char_class;

void normalise(std::vector<range>& rs) {
  std::sort(rs.begin(), rs.end(), [](const range& a, const range& b) { return a.lo < b.lo; });
  std::vector<range> out;
  for (const range& r : rs) {
    if (!out.empty() && r.lo <= out.back().hi + 1)
      out.back().hi = std::max(out.back().hi, r.hi);
    else
      out.push_back(r);
  }
  rs.swap(out);
}

std::vector<range> complement(std::vector<range> rs) {
  normalise(rs);
  std::vector<range> out;
  uint32_t next = 0;
  for (const range& r : rs) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= max_key) out.push_back({next, max_key});
  return out;
}

bool contains(const char_class& c, uint32_t key) {
  auto it = std::upper_bound(c.ranges.begin(), c.ranges.end(), key,
                             [](uint32_t k, const range& r) { return k < r.lo; });
  const bool in = it != c.ranges.begin() && key <= std::prev(it)->hi;
  return in != c.negated;
}

// The ASCII members llama.cpp gives each category in a collapsed expression
// (k_ucat_map in unicode.cpp).
std::vector<range> category_ranges(uint8_t cat) {
  switch (cat) {
    case cat_number: return {{0x30, 0x39}, {pseudo(cat), pseudo(cat)}};
    case cat_letter: return {{0x41, 0x5A}, {0x61, 0x7A}, {pseudo(cat), pseudo(cat)}};
    case cat_punctuation:
      return {{0x21, 0x23}, {0x25, 0x2A}, {0x2C, 0x2F}, {0x3A, 0x3B}, {0x3F, 0x40},
              {0x5B, 0x5D}, {0x5F, 0x5F}, {0x7B, 0x7B}, {0x7D, 0x7D}, {pseudo(cat), pseudo(cat)}};
    case cat_accent_mark: return {{pseudo(cat), pseudo(cat)}};
    case cat_symbol:
      return {{0x24, 0x24}, {0x2B, 0x2B}, {0x3C, 0x3E}, {0x5E, 0x5E},
              {0x60, 0x60}, {0x7C, 0x7C}, {0x7E, 0x7E}, {pseudo(cat), pseudo(cat)}};
    default: return {};
  }
}

const std::vector<range> space_ranges = {{0x09, 0x0D}, {0x20, 0x20}};
const std::vector<range> digit_ranges = {{0x30, 0x39}};
const std::vector<range> word_ranges = {{0x30, 0x39}, {0x41, 0x5A}, {0x5F, 0x5F}, {0x61, 0x7A}};

bool is_word_key(uint32_t k) {
  return (k >= '0' && k <= '9') || (k >= 'A' && k <= 'Z') || (k >= 'a' && k <= 'z') || k == '_';
}

// The expression's syntax tree.
struct node {
  enum kind_t { empty, cls, seq, alt, repeat, look, look_neg, bol, eol, word_b, not_word_b } kind = empty;
  int32_t cls_index = -1;
  int min = 0, max = 0;  // repeat; max < 0: unbounded
  std::vector<std::unique_ptr<node>> kids;
};

bool nullable(const node& n) {
  switch (n.kind) {
    case node::cls: return false;
    case node::seq:
      return std::all_of(n.kids.begin(), n.kids.end(), [](const auto& k) { return nullable(*k); });
    case node::alt:
      return std::any_of(n.kids.begin(), n.kids.end(), [](const auto& k) { return nullable(*k); });
    case node::repeat: return n.min == 0 || nullable(*n.kids[0]);
    default: return true;
  }
}

class parser {
 public:
  parser(std::vector<uint32_t> expr, bool collapsed, std::vector<char_class>& classes)
      : s_(std::move(expr)), collapsed_(collapsed), classes_(classes) {}

  result<std::unique_ptr<node>> parse() {
    auto n = parse_alt();
    if (!error_.empty()) return status{errc::unsupported, error_};
    if (i_ != s_.size()) return status{errc::unsupported, "unbalanced ')' at position " + std::to_string(i_)};
    return n;
  }

 private:
  bool more() const { return i_ < s_.size(); }
  uint32_t peek() const { return more() ? s_[i_] : 0; }
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
    i_ = s_.size();
  }

  std::unique_ptr<node> parse_alt() {
    auto first = parse_seq();
    if (peek() != '|') return first;
    auto n = std::make_unique<node>();
    n->kind = node::alt;
    n->kids.push_back(std::move(first));
    while (more() && peek() == '|') {
      ++i_;
      n->kids.push_back(parse_seq());
    }
    return n;
  }

  std::unique_ptr<node> parse_seq() {
    auto n = std::make_unique<node>();
    n->kind = node::seq;
    while (more() && peek() != '|' && peek() != ')') {
      auto atom = parse_atom();
      if (!atom) {
        fail("a construct brigade's matcher cannot parse");
        return n;
      }
      n->kids.push_back(parse_quantifier(std::move(atom)));
    }
    return n;
  }

  bool parse_count(int& out) {
    if (!more() || peek() < '0' || peek() > '9') return false;
    long v = 0;
    while (more() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<long>(peek() - '0');
      if (v > 4096) {
        fail("a repetition count above 4096");
        return false;
      }
      ++i_;
    }
    out = static_cast<int>(v);
    return true;
  }

  std::unique_ptr<node> parse_quantifier(std::unique_ptr<node> atom) {
    int lo = 0, hi = 0;
    const uint32_t c = peek();
    if (c == '*') {
      lo = 0, hi = -1, ++i_;
    } else if (c == '+') {
      lo = 1, hi = -1, ++i_;
    } else if (c == '?') {
      lo = 0, hi = 1, ++i_;
    } else if (c == '{') {
      ++i_;
      if (!parse_count(lo)) {
        fail("'{' that does not start a repetition count");
        return atom;
      }
      hi = lo;
      if (peek() == ',') {
        ++i_;
        hi = -1;
        if (peek() != '}' && !parse_count(hi)) return atom;
      }
      if (peek() != '}' || (hi >= 0 && hi < lo)) {
        fail("a malformed repetition count");
        return atom;
      }
      ++i_;
    } else {
      return atom;
    }
    if (peek() == '?' || peek() == '+') {
      fail("lazy or possessive quantifiers");
      return atom;
    }
    if (nullable(*atom)) {
      fail("a repetition of something that can match the empty string");
      return atom;
    }
    auto n = std::make_unique<node>();
    n->kind = node::repeat;
    n->min = lo;
    n->max = hi;
    n->kids.push_back(std::move(atom));
    return parse_quantifier_after(std::move(n));
  }

  std::unique_ptr<node> parse_quantifier_after(std::unique_ptr<node> n) {
    const uint32_t c = peek();
    if (c == '*' || c == '+' || c == '?' || c == '{') fail("a quantifier applied to a quantifier");
    return n;
  }

  std::unique_ptr<node> make_class(std::vector<range> rs, bool negated) {
    normalise(rs);
    classes_.push_back({std::move(rs), negated});
    auto n = std::make_unique<node>();
    n->kind = node::cls;
    n->cls_index = static_cast<int32_t>(classes_.size() - 1);
    return n;
  }

  std::unique_ptr<node> make(node::kind_t k) {
    auto n = std::make_unique<node>();
    n->kind = k;
    return n;
  }

  std::unique_ptr<node> parse_atom() {
    const uint32_t c = s_[i_++];
    switch (c) {
      case '(': {
        node::kind_t k = node::seq;
        if (peek() == '?') {
          const uint32_t t = i_ + 1 < s_.size() ? s_[i_ + 1] : 0;
          if (t == ':') {
            k = node::seq;
          } else if (t == '=') {
            k = node::look;
          } else if (t == '!') {
            k = node::look_neg;
          } else {
            fail("the group syntax '(?" + std::string(1, static_cast<char>(t)) + "'");
            return nullptr;
          }
          i_ += 2;
        }
        auto inner = parse_alt();
        if (peek() != ')') {
          fail("a '(' without its ')'");
          return nullptr;
        }
        ++i_;
        if (k == node::seq) return inner;
        auto n = make(k);
        n->kids.push_back(std::move(inner));
        return n;
      }
      case '[': return parse_class();
      case '.': return make_class({{'\n', '\n'}, {'\r', '\r'}}, true);
      case '^': return make(node::bol);
      case '$': return make(node::eol);
      case '\\': return parse_escape();
      case '*':
      case '+':
      case '?':
      case '{':
        fail("a quantifier with nothing to repeat");
        return nullptr;
      default: return make_class({{c, c}}, false);
    }
  }

  // An escape after '\'. Outside a class \b and \B are assertions.
  std::unique_ptr<node> parse_escape() {
    if (!more()) {
      fail("a trailing '\\'");
      return nullptr;
    }
    const uint32_t e = peek();
    if (e == 'b' || e == 'B') {
      ++i_;
      return make(e == 'b' ? node::word_b : node::not_word_b);
    }
    std::vector<range> rs;
    bool negated = false;
    if (!escape_ranges(rs, negated)) return nullptr;
    return make_class(std::move(rs), negated);
  }

  // Reads one escape (after '\') into ranges; `negated` for \S \D \W;
  // `is_set` for a class escape (\s, \d, \w, \p{}), which cannot bound a range.
  bool escape_ranges(std::vector<range>& rs, bool& negated) {
    const uint32_t e = s_[i_++];
    negated = false;
    last_escape_is_set_ = e == 's' || e == 'S' || e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 'p';
    switch (e) {
      case 's': rs = space_ranges; return true;
      case 'S': rs = space_ranges, negated = true; return true;
      case 'd': rs = digit_ranges; return true;
      case 'D': rs = digit_ranges, negated = true; return true;
      case 'w': rs = word_ranges; return true;
      case 'W': rs = word_ranges, negated = true; return true;
      case 'n': rs = {{'\n', '\n'}}; return true;
      case 'r': rs = {{'\r', '\r'}}; return true;
      case 't': rs = {{'\t', '\t'}}; return true;
      case 'f': rs = {{'\f', '\f'}}; return true;
      case 'v': rs = {{'\v', '\v'}}; return true;
      case 'p': return property(rs);
      default:
        if ((e >= '0' && e <= '9') || (e >= 'A' && e <= 'Z') || (e >= 'a' && e <= 'z')) {
          fail("the escape '\\" + std::string(1, static_cast<char>(e)) + "'");
          return false;
        }
        rs = {{e, e}};
        return true;
    }
  }

  bool property(std::vector<range>& rs) {
    std::string name;
    if (peek() != '{') {
      fail("'\\p' without '{'");
      return false;
    }
    ++i_;
    while (more() && peek() != '}') name += static_cast<char>(s_[i_++]);
    if (!more()) {
      fail("'\\p{' without '}'");
      return false;
    }
    ++i_;
    uint8_t cat = 0;
    if (name == "N")
      cat = cat_number;
    else if (name == "L" || name == "Lu" || name == "Ll" || name == "Lt" || name == "Lm" || name == "Lo")
      cat = cat_letter;
    else if (name == "P")
      cat = cat_punctuation;
    else if (name == "M")
      cat = cat_accent_mark;
    else if (name == "S")
      cat = cat_symbol;
    if (cat == 0 || !collapsed_) {
      fail("the Unicode property \\p{" + name + "}");
      return false;
    }
    rs = category_ranges(cat);
    return true;
  }

  // An escape inside a class (after '\\'): its ranges, complemented for \S \D \W.
  bool class_escape(std::vector<range>& er) {
    if (!more()) {
      fail("a trailing '\\' in a class");
      return false;
    }
    bool neg = false;
    if (!escape_ranges(er, neg)) return false;
    if (neg) er = complement(er);
    return true;
  }

  std::unique_ptr<node> parse_class() {
    bool negated = false;
    if (peek() == '^') {
      negated = true;
      ++i_;
    }
    std::vector<range> rs;  // ECMAScript: "[]" matches nothing, "[^]" anything
    while (more() && peek() != ']') {
      uint32_t lo = 0;
      if (peek() == '\\') {
        ++i_;
        std::vector<range> er;
        if (!class_escape(er)) return nullptr;
        if (last_escape_is_set_) {  // a set: cannot start a range
          rs.insert(rs.end(), er.begin(), er.end());
          continue;
        }
        lo = er[0].lo;
      } else {
        lo = s_[i_++];
      }
      if (peek() == '-' && i_ + 1 < s_.size() && s_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi = s_[i_++];
        if (hi == '\\') {
          std::vector<range> er;
          if (!class_escape(er)) return nullptr;
          if (last_escape_is_set_) {
            fail("a class range ending in a set");
            return nullptr;
          }
          hi = er[0].lo;
        }
        if (hi < lo) {
          fail("a class range out of order");
          return nullptr;
        }
        rs.push_back({lo, hi});
      } else {
        rs.push_back({lo, lo});
      }
    }
    if (!more()) {
      fail("a '[' without its ']'");
      return nullptr;
    }
    ++i_;  // ']'
    return make_class(std::move(rs), negated);
  }

  std::vector<uint32_t> s_;
  size_t i_ = 0;
  bool collapsed_;
  std::vector<char_class>& classes_;
  std::string error_;
  bool last_escape_is_set_ = false;
};

using inst = split_regex::inst;
using op = split_regex::op;

class emitter {
 public:
  explicit emitter(std::vector<inst>& prog) : prog_(prog) {}

  void emit(const node& n) {
    switch (n.kind) {
      case node::empty: break;
      case node::cls: add({op::cls, n.cls_index, 0}); break;
      case node::seq:
        for (const auto& k : n.kids) emit(*k);
        break;
      case node::alt: emit_alt(n, 0); break;
      case node::repeat: emit_repeat(n); break;
      case node::look:
      case node::look_neg: {
        // LOOK(sub = here + 2) ; JMP after ; sub... MATCH ; after:
        const int32_t at = add({n.kind == node::look ? op::look : op::look_neg, 0, 0});
        const int32_t jump = add({op::jmp, 0, 0});
        prog_[static_cast<size_t>(at)].x = here();
        emit(*n.kids[0]);
        add({op::match, 0, 0});
        prog_[static_cast<size_t>(at)].y = here();
        prog_[static_cast<size_t>(jump)].x = here();
        break;
      }
      case node::bol: add({op::bol, 0, 0}); break;
      case node::eol: add({op::eol, 0, 0}); break;
      case node::word_b: add({op::word_b, 0, 0}); break;
      case node::not_word_b: add({op::not_word_b, 0, 0}); break;
    }
  }

 private:
  int32_t here() const { return static_cast<int32_t>(prog_.size()); }
  int32_t add(inst i) {
    prog_.push_back(i);
    return here() - 1;
  }

  // a|b|c: SPLIT L1, L2; L1: a; JMP end; L2: SPLIT ... ; last alternative.
  void emit_alt(const node& n, size_t k) {
    if (k + 1 == n.kids.size()) {
      emit(*n.kids[k]);
      return;
    }
    const int32_t split = add({op::split, 0, 0});
    prog_[static_cast<size_t>(split)].x = here();
    emit(*n.kids[k]);
    const int32_t jump = add({op::jmp, 0, 0});
    prog_[static_cast<size_t>(split)].y = here();
    emit_alt(n, k + 1);
    prog_[static_cast<size_t>(jump)].x = here();
  }

  void emit_star(const node& body) {
    // L: SPLIT body, end; body; JMP L; end:
    const int32_t loop = add({op::split, 0, 0});
    prog_[static_cast<size_t>(loop)].x = here();
    emit(body);
    add({op::jmp, loop, 0});
    prog_[static_cast<size_t>(loop)].y = here();
  }

  void emit_repeat(const node& n) {
    const node& body = *n.kids[0];
    for (int i = 0; i < n.min; ++i) emit(body);
    if (n.max < 0) {
      emit_star(body);
      return;
    }
    // (body (body ...)?)? greedy: each optional copy skips to the end on failure.
    std::vector<int32_t> skips;
    for (int i = n.min; i < n.max; ++i) {
      const int32_t split = add({op::split, 0, 0});
      prog_[static_cast<size_t>(split)].x = here();
      skips.push_back(split);
      emit(body);
    }
    for (int32_t s : skips) prog_[static_cast<size_t>(s)].y = here();
  }

  std::vector<inst>& prog_;
};

bool names_category(std::string_view expr) {
  for (std::string_view cat : {"\\p{N}", "\\p{L}", "\\p{P}", "\\p{M}", "\\p{S}", "\\p{Lu}", "\\p{Ll}", "\\p{Lt}",
                               "\\p{Lm}", "\\p{Lo}"})
    if (expr.find(cat) != std::string_view::npos) return true;
  return false;
}

}  // namespace

result<split_regex> split_regex::compile(std::string_view expr) {
  split_regex r;
  r.collapsed_ = names_category(expr);
  std::vector<uint32_t> cpts = decode_utf8(expr);
  if (r.collapsed_ && std::any_of(cpts.begin(), cpts.end(), [](uint32_t c) { return c >= 128; }))
    return status{errc::unsupported, "an expression with both Unicode categories and non-ASCII characters"};
  parser p(std::move(cpts), r.collapsed_, r.classes_);
  auto tree = p.parse();
  if (!tree) return status{errc::unsupported, "pre-tokenizer expression uses " + tree.error().message()};
  emitter e(r.prog_);
  e.emit(**tree);
  r.prog_.push_back({op::match, 0, 0});
  r.start_ = 0;
  return r;
}

// One split: the keys of the whole text, the current segment, and the
// backtracking stack shared by the main run and its look-aheads.
struct split_regex::matcher {
  const split_regex& re;
  const std::vector<uint32_t>& keys;
  size_t seg_begin = 0, seg_end = 0;
  std::vector<std::pair<int32_t, size_t>> stack;
  size_t budget = 0;       // backtracking steps left for this segment
  bool exhausted = false;  // the budget ran out: no further match in the segment

  bool word_at(size_t pos) const { return pos >= seg_begin && pos < seg_end && is_word_key(keys[pos]); }

  // Runs the program from `pc` at `pos`; on success `end` is where the match
  // ends. With `not_null` an empty match does not count.
  bool run(int32_t pc, size_t pos, size_t& end, bool not_null) {
    const size_t base = stack.size();
    const size_t start = pos;
    for (;;) {
      const inst& in = re.prog_[static_cast<size_t>(pc)];
      bool ok = true;
      switch (in.code) {
        case op::cls:
          ok = pos < seg_end && contains(re.classes_[static_cast<size_t>(in.x)], keys[pos]);
          if (ok) ++pos;
          ++pc;
          break;
        case op::split:
          stack.emplace_back(in.y, pos);
          pc = in.x;
          break;
        case op::jmp: pc = in.x; break;
        case op::match:
          if (not_null && pos == start) {
            ok = false;
            break;
          }
          end = pos;
          stack.resize(base);
          return true;
        case op::look:
        case op::look_neg: {
          size_t ignored = 0;
          const bool found = run(in.x, pos, ignored, false);
          if (exhausted) {  // never read an aborted look-ahead as a failed one
            stack.resize(base);
            return false;
          }
          ok = found == (in.code == op::look);
          pc = in.y;  // the JMP over the sub-program
          break;
        }
        case op::bol:
          ok = pos == seg_begin;
          ++pc;
          break;
        case op::eol:
          ok = pos == seg_end;
          ++pc;
          break;
        case op::word_b:
        case op::not_word_b: {
          const bool before = pos > seg_begin && word_at(pos - 1);
          const bool boundary = before != word_at(pos);
          ok = boundary == (in.code == op::word_b);
          ++pc;
          break;
        }
      }
      if (ok) continue;
      if (budget == 0) exhausted = true;
      if (stack.size() == base || exhausted) {
        stack.resize(base);
        return false;
      }
      --budget;
      pc = stack.back().first;
      pos = stack.back().second;
      stack.pop_back();
    }
  }

  // regex_iterator over [seg_begin, seg_end): appends piece lengths.
  void split_segment(std::vector<size_t>& out) {
    size_t start_idx = seg_begin;  // end of the last piece emitted
    size_t pos = seg_begin;
    auto emit_to = [&](size_t to) {
      if (to > start_idx) out.push_back(to - start_idx);
      start_idx = to;
    };
    // One budget for the whole segment: linear work for every expression
    // brigade ships, and a bound on pathological text (the rest of the
    // segment then stays one piece).
    budget = 1000000 + 256 * (seg_end - seg_begin);
    exhausted = false;
    while (pos <= seg_end && !exhausted) {
      size_t s = pos, e = 0;
      bool found = false;
      for (; s <= seg_end && !exhausted; ++s) {
        if (run(re.start_, s, e, false)) {
          found = true;
          break;
        }
      }
      if (!found) break;
      emit_to(s);
      if (e > s) {
        emit_to(e);
        pos = e;
        continue;
      }
      // An empty match: try a non-empty one at the same place, else move on.
      if (run(re.start_, s, e, true)) {
        emit_to(e);
        pos = e;
      } else {
        pos = s + 1;
      }
    }
    emit_to(seg_end);
  }
};

std::vector<size_t> split_regex::split(const std::vector<uint32_t>& cpts, const std::vector<size_t>& offsets) const {
  std::vector<uint32_t> keys(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) keys[i] = collapsed_ ? collapsed_key(cpts[i]) : wide_key(cpts[i]);
  matcher m{*this, keys, 0, 0, {}, 0, false};
  std::vector<size_t> out;
  out.reserve(offsets.size());
  size_t at = 0;
  for (size_t len : offsets) {
    m.seg_begin = at;
    m.seg_end = at + len;
    m.split_segment(out);
    at += len;
  }
  return out;
}

}  // namespace brigade::unicode
