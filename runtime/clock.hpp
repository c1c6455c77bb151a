// The wall clock of stored data (commit times, creation times, the memory
// store's leases and expiry). Redis keeps its own clock for leases (TIME in
// the Lua scripts).
#pragma once

#include <cstdint>

namespace brigade::runtime {

/// Milliseconds since the Unix epoch.
int64_t now_ms();

}  // namespace brigade::runtime
