// Dequantisation kernels: F16, BF16, Q8_0 (and F32 copy) to F32, one thread
// per output element. Bit-exact with kernels/ggml_types.cpp's CPU reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstring>

#include "kernels/cuda/device.hpp"

namespace brigade::cuda {

namespace {

status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return {};
  return {errc::device, std::string("CUDA ") + what + " failed: " + cudaGetErrorString(e)};
}

__global__ void dequantize_f16(const __half* src, float* dst, int64_t n) {  // src, dst: (n)
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __half2float(src[i]);
}

__global__ void dequantize_bf16(const __nv_bfloat16* src, float* dst, int64_t n) {  // (n)
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __bfloat162float(src[i]);
}

__global__ void dequantize_q8_0(const q8_0_block* src, float* dst, int64_t n) {  // src: (n/32), dst: (n)
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const q8_0_block& b = src[i / q8_0_block_elems];
  __half_raw raw;
  raw.x = b.d;
  dst[i] = __half2float(__half(raw)) * static_cast<float>(b.qs[i % q8_0_block_elems]);
}

/// Frees device buffers on every path.
struct device_buffers {
  void* src = nullptr;
  float* dst = nullptr;
  ~device_buffers() {
    cudaFree(src);
    cudaFree(dst);
  }
};

}  // namespace

result<int> device_count() {
  int n = 0;
  if (auto s = check(cudaGetDeviceCount(&n), "cudaGetDeviceCount"); !s) return s;
  return n;
}

result<std::string> device_description(int device) {
  cudaDeviceProp p{};
  if (auto s = check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties"); !s) return s;
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.totalGlobalMem >> 30) + " GiB)";
}

status dequantize_rows(int device, ggml_type type, const void* src, float* dst, int64_t n_rows, int64_t row_len) {
  const ggml_type_traits tr = ggml_traits(type);
  if (n_rows < 0 || row_len <= 0 || row_len % tr.block_elems != 0)
    return {errc::invalid_argument,
            "dequantize_rows: row length " + std::to_string(row_len) + " is not a positive multiple of the block size"};
  const int64_t n = n_rows * row_len;
  if (n == 0) return {};
  const size_t src_bytes = static_cast<size_t>(n / tr.block_elems * tr.block_bytes);
  if (auto s = check(cudaSetDevice(device), "cudaSetDevice"); !s) return s;
  device_buffers b;
  if (auto s = check(cudaMalloc(&b.src, src_bytes), "cudaMalloc"); !s) return s;
  if (auto s = check(cudaMalloc(reinterpret_cast<void**>(&b.dst), n * sizeof(float)), "cudaMalloc"); !s) return s;
  if (auto s = check(cudaMemcpy(b.src, src, src_bytes, cudaMemcpyHostToDevice), "cudaMemcpy"); !s) return s;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
  switch (type) {
    case ggml_type::f32:
      if (auto s = check(cudaMemcpy(b.dst, b.src, src_bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy"); !s) return s;
      break;
    case ggml_type::f16: dequantize_f16<<<blocks, threads>>>(static_cast<const __half*>(b.src), b.dst, n); break;
    case ggml_type::bf16:
      dequantize_bf16<<<blocks, threads>>>(static_cast<const __nv_bfloat16*>(b.src), b.dst, n);
      break;
    case ggml_type::q8_0: dequantize_q8_0<<<blocks, threads>>>(static_cast<const q8_0_block*>(b.src), b.dst, n); break;
  }
  if (auto s = check(cudaGetLastError(), "kernel launch"); !s) return s;
  return check(cudaMemcpy(dst, b.dst, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
}

}  // namespace brigade::cuda
