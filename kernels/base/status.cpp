#include "kernels/base/status.hpp"

namespace brigade {

const char* to_string(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::io: return "I/O error";
    case errc::malformed: return "malformed input";
    case errc::unsupported: return "not supported";
    case errc::invalid_argument: return "invalid argument";
    case errc::not_found: return "not found";
    case errc::resource: return "out of resources";
    case errc::device: return "device error";
  }
  return "unknown error";
}

}  // namespace brigade
