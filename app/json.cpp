#include "app/json.hpp"

#include <cmath>
#include <cstdio>

#include "kernels/model/unicode.hpp"

namespace brigade::json {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (uint32_t c : unicode::decode_utf8(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
          out += "\xEF\xBF\xBD";
        } else {
          unicode::append_utf8(out, c);
        }
    }
  }
  return out + "\"";
}

void object::key(std::string_view k) {
  if (body_.size() > 1) body_ += ",";
  body_ += quote(k);
  body_ += ":";
}

object& object::add(std::string_view k, std::string_view v) {
  key(k);
  body_ += quote(v);
  return *this;
}
object& object::add(std::string_view k, int64_t v) {
  key(k);
  body_ += std::to_string(v);
  return *this;
}
object& object::add(std::string_view k, uint64_t v) {
  key(k);
  body_ += std::to_string(v);
  return *this;
}
object& object::add(std::string_view k, double v) {
  key(k);
  if (!std::isfinite(v)) {
    body_ += "null";
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    body_ += buf;
  }
  return *this;
}
object& object::add(std::string_view k, bool v) {
  key(k);
  body_ += v ? "true" : "false";
  return *this;
}
object& object::add_null(std::string_view k) {
  key(k);
  body_ += "null";
  return *this;
}
object& object::add_raw(std::string_view k, std::string_view raw) {
  key(k);
  body_ += raw;
  return *this;
}

}  // namespace brigade::json
