// Chooses the engine backend by device name: "cpu" or "cuda:N" ("cuda" is
// cuda:0). Header-only so each program decides by its own build: targets
// that link brigade_cuda define BRIGADE_HAVE_CUDA.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "kernels/engine/engine.hpp"
#ifdef BRIGADE_HAVE_CUDA
#include "kernels/cuda/device.hpp"
#endif

namespace brigade {

/// -1 for "cpu", N for "cuda:N" (and "cuda"), or invalid_argument.
inline result<int> parse_device(const std::string& device) {
  if (device == "cpu") return -1;
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5) {
    char* end = nullptr;
    const long n = std::strtol(device.c_str() + 5, &end, 10);
    if (*end == '\0' && n >= 0 && n < 1024) return static_cast<int>(n);
  }
  return status{errc::invalid_argument, "device '" + device + "' is not cpu or cuda:N (e.g. cuda:0)"};
}

inline result<std::unique_ptr<engine>> make_engine(const std::string& device, std::shared_ptr<const llama_model> model,
                                                   const engine_config& cfg) {
  auto d = parse_device(device);
  if (!d) return d.error();
  if (*d < 0) return make_cpu_engine(std::move(model), cfg);
#ifdef BRIGADE_HAVE_CUDA
  return cuda::make_cuda_engine(std::move(model), cfg, *d);
#else
  return status{errc::unsupported, "device " + device +
                                       ": this build of brigade has no CUDA backend (nvcc was not found when it was "
                                       "built); use cpu, or build where the CUDA toolkit is installed"};
#endif
}

}  // namespace brigade
