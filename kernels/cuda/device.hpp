// CUDA backend entry points, as plain C++ (no CUDA headers), so the rest of
// brigade builds on machines without CUDA. Only files under kernels/cuda/
// include CUDA headers.
//
// This issue provides the first kernel (tensor dequantisation to F32, used
// for weight upload checks); the batched engine step comes with issue 6.
// Every call checks the CUDA runtime's result and returns errc::device with
// its message; none aborts or exits.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/ggml_types.hpp"
#include "kernels/status.hpp"

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

}  // namespace brigade::cuda
