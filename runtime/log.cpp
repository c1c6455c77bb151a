#include "runtime/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace brigade::runtime {

namespace {
std::atomic<int> g_level{static_cast<int>(log_level::info)};
std::mutex g_mu;
std::string g_node = "-";
}  // namespace

void configure_log(const std::string& level, const std::string& node) {
  int l = static_cast<int>(log_level::info);
  if (level == "error")
    l = 0;
  else if (level == "warn")
    l = 1;
  else if (level == "debug")
    l = 3;
  g_level = l;
  std::lock_guard<std::mutex> g(g_mu);
  g_node = node;
}

bool log_enabled(log_level l) { return static_cast<int>(l) <= g_level.load(); }

void log(log_level l, const std::string& session, const std::string& message) {
  if (!log_enabled(l)) return;
  static const char* names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &t);
  std::string line;
  {
    std::lock_guard<std::mutex> g(g_mu);
    char head[96];
    std::snprintf(head, sizeof head, "%s.%03dZ %s node=", ts, static_cast<int>(tv.tv_usec / 1000),
                  names[static_cast<int>(l)]);
    line = head + g_node;
  }
  if (!session.empty()) line += " session=" + session;
  line += " " + message + "\n";
  (void)!::write(2, line.data(), line.size());
}

}  // namespace brigade::runtime
