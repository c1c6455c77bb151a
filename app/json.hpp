// Minimal JSON output for the engine commands' `--json` (model info, model
// bench, generate): an ordered object builder with correct string escaping.
// Output only. The engine-only build (a GPU machine without Debian's
// packages) has no nlohmann-json; the server commands and the HTTP API use
// nlohmann-json (app/server_commands.cpp, net/openai.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace brigade::json {

/// `s` as a JSON string literal (quotes included). Invalid UTF-8 bytes are
/// replaced by U+FFFD so the output is always valid JSON.
std::string quote(std::string_view s);

/// Builds `{"k":v,...}` in insertion order.
class object {
 public:
  object& add(std::string_view key, std::string_view v);
  object& add(std::string_view key, const char* v) { return add(key, std::string_view(v)); }
  object& add(std::string_view key, int64_t v);
  object& add(std::string_view key, uint64_t v);
  object& add(std::string_view key, int v) { return add(key, static_cast<int64_t>(v)); }
  object& add(std::string_view key, double v);
  object& add(std::string_view key, bool v);
  object& add_null(std::string_view key);
  /// `raw` must already be valid JSON (a nested object or array).
  object& add_raw(std::string_view key, std::string_view raw);
  std::string str() const { return body_ + "}"; }

 private:
  void key(std::string_view k);
  std::string body_ = "{";
};

}  // namespace brigade::json
