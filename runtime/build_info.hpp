// Versions of the server-side libraries brigade was built against, for
// `brigade --version` and bug reports. Header kept free of CAF includes.
#pragma once

#include <string>

namespace brigade::runtime {

/// "CAF 0.17.6, hiredis 0.14.1, msgpack-c 4.1.3, prometheus-cpp".
std::string dependency_versions();

}  // namespace brigade::runtime
