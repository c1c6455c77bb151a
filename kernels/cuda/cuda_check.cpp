// The GPU check program: runs each CUDA kernel against the CPU reference on
// fresh random inputs with awkward sizes, output poisoned before every run.
// Needs only CUDA (no GoogleTest, none of our Debian packages), so it runs on
// a bare GPU machine. Exit codes: 0 all passed, 1 a mismatch or CUDA error,
// 77 skipped (no usable GPU; CTest reports the test as skipped).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/device.hpp"
#include "kernels/ggml_types.hpp"

using namespace brigade;

namespace {

int check_type(ggml_type type, int64_t n_rows, int64_t row_len, std::mt19937& rng) {
  const ggml_type_traits tr = ggml_traits(type);
  const int64_t n = n_rows * row_len;
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  std::vector<unsigned char> src(static_cast<size_t>(n / tr.block_elems * tr.block_bytes));
  switch (type) {
    case ggml_type::f32: std::memcpy(src.data(), x.data(), src.size()); break;
    case ggml_type::f16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(src.data() + 2 * i, &h, 2);
      }
      break;
    case ggml_type::bf16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(src.data() + 2 * i, &h, 2);
      }
      break;
    case ggml_type::q8_0: quantize_row_q8_0(x.data(), reinterpret_cast<q8_0_block*>(src.data()), n); break;
  }
  std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), std::nanf(""));
  for (int64_t r = 0; r < n_rows; ++r)
    dequantize_row(type, src.data() + r * (row_len / tr.block_elems) * tr.block_bytes, want.data() + r * row_len,
                   row_len);
  const status s = cuda::dequantize_rows(0, type, src.data(), got.data(), n_rows, row_len);
  const char* name = ggml_type_name(static_cast<uint32_t>(type));
  if (!s.ok()) {
    std::printf("FAIL dequantize %-4s %lldx%lld: %s\n", name, (long long)n_rows, (long long)row_len,
                s.message().c_str());
    return 1;
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(&want[i], &got[i], sizeof(float)) != 0) ++bad;
  std::printf("%s dequantize %-4s %4lldx%-4lld %lld mismatches (bit-exact required)\n", bad ? "FAIL" : "ok  ", name,
              (long long)n_rows, (long long)row_len, (long long)bad);
  return bad ? 1 : 0;
}

}  // namespace

int main() {
  // Skip only where there is no GPU at all; a GPU machine whose driver or
  // device fails is a failure. BRIGADE_REQUIRE_GPU=1 (the GPU script) makes
  // a missing GPU a failure too.
  auto n = cuda::device_count();
  if (!n.ok() || *n == 0) {
    const bool has_gpu_node = ::access("/dev/nvidia0", F_OK) == 0 || ::access("/dev/nvidiactl", F_OK) == 0;
    const char* require = std::getenv("BRIGADE_REQUIRE_GPU");
    const std::string why = n.ok() ? "0 devices" : n.error().message();
    if (has_gpu_node || (require && std::string(require) == "1")) {
      std::printf("FAILED: a GPU was expected but CUDA reports: %s\n", why.c_str());
      return 1;
    }
    std::printf("skipped: no CUDA device on this machine (%s)\n", why.c_str());
    return 77;
  }
  auto desc = cuda::device_description(0);
  std::printf("device 0: %s\n", desc.ok() ? desc->c_str() : desc.error().message().c_str());
  std::mt19937 rng(20261127);
  int failures = 0;
  for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q8_0})
    for (auto [rows, len] : {std::pair<int64_t, int64_t>{1, 32}, {37, 96}, {3, 4096}, {513, 160}})
      failures += check_type(t, rows, len, rng);
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
