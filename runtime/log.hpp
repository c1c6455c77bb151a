// Logging: one line per event on standard error,
//   2026-11-27T08:00:00.123Z INFO node=127.0.0.1:7420 session=7f3a… message
// Levels error < warn < info < debug; conversation text only at debug.
// Thread-safe (one write per line).
#pragma once

#include <string>

namespace brigade::runtime {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

/// Sets the level ("error", "warn", "info", "debug") and the node name.
void configure_log(const std::string& level, const std::string& node);
bool log_enabled(log_level l);
void log(log_level l, const std::string& session, const std::string& message);

}  // namespace brigade::runtime
