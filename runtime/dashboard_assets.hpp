// The live dashboard's files, compiled into the binary (no CDN, no network
// at run time): the page (runtime/dashboard_page/) and Chart.js from
// Debian's libjs-chart.js, embedded at build time from the system's copy
// (runtime/CMakeLists.txt). Immutable, safe from any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace brigade::runtime {

struct dash_asset {
  std::string_view path;  // the URL path: "/", "/dashboard.js", ...
  std::string_view type;  // Content-Type
  std::string_view body;
};

/// The asset served at `path`, or nullptr.
const dash_asset* find_dash_asset(std::string_view path);

}  // namespace brigade::runtime
