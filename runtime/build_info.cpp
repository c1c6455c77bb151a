#include "runtime/build_info.hpp"

#include <hiredis/hiredis.h>
#include <caf/config.hpp>
#include <msgpack/version.hpp>

namespace brigade::runtime {

std::string dependency_versions() {
  return "CAF " + std::to_string(CAF_VERSION / 10000) + "." + std::to_string(CAF_VERSION / 100 % 100) + "." +
         std::to_string(CAF_VERSION % 100) + ", hiredis " + std::to_string(HIREDIS_MAJOR) + "." +
         std::to_string(HIREDIS_MINOR) + "." + std::to_string(HIREDIS_PATCH) + ", msgpack-c " + msgpack_version() +
         ", prometheus-cpp";
}

}  // namespace brigade::runtime
