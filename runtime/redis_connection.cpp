#include "runtime/redis_connection.hpp"

namespace brigade::runtime {

result<redis_url> parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  const status bad{errc::invalid_argument,
                   "'" + url + "' is not a Redis URL; use redis://[user:password@]host:port/db"};
  if (url.rfind(scheme, 0) != 0) return bad;
  std::string rest = url.substr(scheme.size());
  redis_url u;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string::npos) {
      u.password = cred;
      u.single_credential = true;
    } else {
      u.user = cred.substr(0, colon);
      u.password = cred.substr(colon + 1);
    }
  }
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      char* end = nullptr;
      const long v = std::strtol(db.c_str(), &end, 10);
      if (*end || v < 0 || v > 1024) return bad;
      u.db = static_cast<int>(v);
    }
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    char* end = nullptr;
    const long p = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) return bad;
    u.port = static_cast<int>(p);
    rest = rest.substr(0, colon);
  }
  if (!rest.empty()) u.host = rest;
  return u;
}

}  // namespace brigade::runtime
