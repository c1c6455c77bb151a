// CUDA backend entry points, as plain C++ (no CUDA headers), so the rest of
// brigade builds on machines without CUDA. Only files under kernels/cuda/
// include CUDA headers.
//
// Every call checks the CUDA runtime's result and returns errc::device with
// its message; none aborts or exits.
#pragma once

#include <cstdint>
#include <string>

#include <memory>

#include "kernels/engine/engine.hpp"
#include "kernels/model/ggml_types.hpp"
#include "kernels/base/status.hpp"

namespace brigade::cuda {

/// The number of CUDA devices; errc::device (with the driver's reason) when
/// there is no usable driver or device.
result<int> device_count();

/// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)".
result<std::string> device_description(int device);

/// Converts `n_rows` rows of `row_len` elements of `type` (host memory, ggml
/// layout) to F32 in host memory `dst`, on `device`. `row_len` must be a
/// multiple of the type's block size. State is unchanged on failure.
status dequantize_rows(int device, ggml_type type, const void* src, float* dst, int64_t n_rows, int64_t row_len);

/// The CUDA backend of the engine on `device` (cuda_engine.cu): the weights
/// are copied to the device once; KV cache and step buffers are allocated
/// at their largest here. Errors: invalid_argument (no such device, the
/// configuration), unsupported (head size over 256 or odd), device (CUDA,
/// e.g. out of memory, with the runtime's message).
result<std::unique_ptr<engine>> make_cuda_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg,
                                                 int device);

}  // namespace brigade::cuda
