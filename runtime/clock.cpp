#include "runtime/clock.hpp"

#include <chrono>

namespace brigade::runtime {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace brigade::runtime
