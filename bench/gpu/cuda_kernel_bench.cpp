// Kernel-level GPU measurements on tinyllama-1b's shapes, timed
// with CUDA events (median of many launches after a warm-up; weights rotated
// among copies so they come from memory, not L2):
//   copy        device-to-device copy bandwidth, counting bytes read and
//               written: the ceiling a decode step is measured against
//   projections our matmul launcher on the projections (fused QKV, output,
//               gate+up with SwiGLU, down, logits) at each batch size: the
//               numbers to set beside cuBLAS (bench/gpu/torch_peer.py)
//   attention   our paged attention on the shapes torch_peer.py gives to
//               scaled_dot_product_attention (cuDNN and the others)
// usage: cuda_kernel_bench [--batch 1,8,32,64,128] [--json FILE]
// Exit codes: 0, 1 on a CUDA error, 77 without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/kernels.cuh"

using namespace brigade;

namespace {

std::string json;

bool ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "cuda_kernel_bench: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

void emit(const std::string& obj) {
  std::printf("%s\n", obj.c_str());
  json += (json.empty() ? "" : ",\n") + obj;
}

/// Median ms of `fn` over `reps` launches (each timed alone), after 5 warm-ups.
double timed(const std::function<void(int)>& fn, int reps = 50) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) fn(i);
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    fn(i);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

/// Random F16 bits of N(0, 0.02) (device-side fill would need a kernel; the
/// host fill is done once per buffer).
void fill_f16(void* dst, size_t n) {
  std::vector<uint16_t> h(n);
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (auto& v : h) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const float x = (static_cast<float>(s % 20001) - 10000.0f) * 2e-6f;  // in [-0.02, 0.02]
    v = f32_to_f16(x);
  }
  cudaMemcpy(dst, h.data(), n * 2, cudaMemcpyHostToDevice);
}

void fill_f32(float* dst, size_t n) {
  std::vector<float> h(n);
  uint64_t s = 0xD1B54A32D192ED03ull;
  for (auto& v : h) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v = (static_cast<float>(s % 20001) - 10000.0f) * 1e-4f;
  }
  cudaMemcpy(dst, h.data(), n * 4, cudaMemcpyHostToDevice);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches{1, 8, 32, 64, 128};
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else if (a == "--batch" && i + 1 < argc) {
      batches.clear();
      const std::string list = argv[++i];
      for (size_t p = 0; p < list.size();) {
        const size_t c = list.find(',', p);
        batches.push_back(std::max(1, std::atoi(list.substr(p, c - p).c_str())));
        p = c == std::string::npos ? list.size() : c + 1;
      }
    } else {
      std::fprintf(stderr, "usage: cuda_kernel_bench [--batch 1,8,32,64,128] [--json FILE]\n");
      return 2;
    }
  }
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("%s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);

  // Copy bandwidth: 1 GiB each way.
  {
    const size_t bytes = size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    if (!ok(cudaMalloc(&a, bytes), "cudaMalloc") || !ok(cudaMalloc(&b, bytes), "cudaMalloc")) return 1;
    cudaMemset(a, 1, bytes);
    const double ms = timed([&](int) { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); }, 20);
    char buf[160];
    std::snprintf(buf, sizeof buf, "{\"part\":\"copy\",\"bytes\":%zu,\"ms\":%.4f,\"gb_per_s\":%.1f}", 2 * bytes, ms,
                  2.0 * bytes / ms / 1e6);
    emit(buf);
    cudaFree(a);
    cudaFree(b);
  }

  // Projections of tinyllama-1b (F16 weights), each batch size.
  struct proj {
    const char* name;
    int64_t K, N;
    bool swiglu;
  };
  const std::vector<proj> projs{{"qkv", 2048, 2560, false},
                                {"o", 2048, 2048, false},
                                {"gate_up", 2048, 5632, true},
                                {"down", 5632, 2048, false},
                                {"logits", 2048, 32000, false}};
  const int max_b = *std::max_element(batches.begin(), batches.end());
  float *x = nullptr, *y = nullptr, *scratch = nullptr;
  const size_t scratch_floats = size_t{8} * max_b * 32000 * 2;  // split-K parts, as the engine provides them
  if (!ok(cudaMalloc(&x, sizeof(float) * max_b * 5632), "cudaMalloc") ||
      !ok(cudaMalloc(&y, sizeof(float) * max_b * 32000), "cudaMalloc") ||
      !ok(cudaMalloc(&scratch, sizeof(float) * scratch_floats), "cudaMalloc"))
    return 1;
  fill_f32(x, static_cast<size_t>(max_b) * 5632);
  for (const proj& p : projs) {
    const size_t row_bytes = static_cast<size_t>(p.K) * 2;
    const size_t w_bytes = row_bytes * static_cast<size_t>(p.N) * (p.swiglu ? 2 : 1);
    const int copies = static_cast<int>(std::max<size_t>(2, 4 * static_cast<size_t>(prop.l2CacheSize) / w_bytes + 1));
    std::vector<unsigned char*> ws(static_cast<size_t>(copies));
    for (auto& w : ws) {
      if (!ok(cudaMalloc(reinterpret_cast<void**>(&w), w_bytes), "cudaMalloc")) return 1;
      fill_f16(w, w_bytes / 2);
    }
    for (int B : batches) {
      cudaError_t err = cudaSuccess;  // the first failed launch, kept (the launcher has read the error)
      const double ms = timed([&](int i) {
        unsigned char* w = ws[static_cast<size_t>(i % copies)];
        const cudaError_t e =
            cuda::k::matmul(ggml_type::f16, w, p.swiglu ? w + row_bytes * p.N : nullptr, row_bytes, p.K, p.N, x, p.K, B,
                            y, p.N, false, nullptr, scratch, scratch_floats, prop.multiProcessorCount);
        if (err == cudaSuccess) err = e;
      });
      if (!ok(err, p.name)) return 1;
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "{\"part\":\"projection\",\"proj\":\"%s\",\"batch\":%d,\"K\":%lld,\"N\":%lld,\"ms\":%.5f,"
                    "\"weight_gb_per_s\":%.1f,\"tflops\":%.2f}",
                    p.name, B, static_cast<long long>(p.K), static_cast<long long>(p.N), ms, w_bytes / ms / 1e6,
                    2.0 * B * p.K * p.N * (p.swiglu ? 2 : 1) / ms / 1e9);
      emit(buf);
    }
    for (auto* w : ws) cudaFree(w);
  }
  cudaFree(x);
  cudaFree(y);
  cudaFree(scratch);

  // Attention on torch_peer.py's shapes: 32 query heads, 4 KV heads, hd 64,
  // contiguous block tables (block size 16).
  struct att_case {
    const char* kind;
    int batch, q_len, kv_len;
  };
  const std::vector<att_case> cases{
      {"prefill", 1, 512, 512}, {"prefill", 8, 512, 512}, {"decode", 64, 1, 1024}, {"decode", 1, 1, 2048}};
  const int heads = 32, kv_heads = 4, hd = 64, bs = 16;
  const int64_t kv_dim = kv_heads * hd, d = heads * hd;
  for (const att_case& c : cases) {
    const int64_t T = static_cast<int64_t>(c.batch) * c.q_len;
    const int64_t slots = static_cast<int64_t>(c.batch) * c.kv_len;
    float *q = nullptr, *kc = nullptr, *vc = nullptr, *out = nullptr;
    int32_t *npos = nullptr, *boff = nullptr, *blocks = nullptr;
    std::vector<int32_t> h_npos(static_cast<size_t>(T)), h_boff(static_cast<size_t>(T)),
        h_blocks(static_cast<size_t>(slots / bs));
    for (int b = 0; b < c.batch; ++b)
      for (int i = 0; i < c.q_len; ++i) {
        const size_t t = static_cast<size_t>(b) * c.q_len + i;
        h_npos[t] = c.kv_len - c.q_len + i + 1;  // causal within the prompt
        h_boff[t] = b * (c.kv_len / bs);
      }
    for (size_t i = 0; i < h_blocks.size(); ++i) h_blocks[i] = static_cast<int32_t>(i);
    const int splits = cuda::k::attention_splits(T, heads, prop.multiProcessorCount);
    float* part = nullptr;
    if (!ok(cudaMalloc(&part, sizeof(float) * T * heads * splits * (hd + 2)), "cudaMalloc") ||
        !ok(cudaMalloc(&q, sizeof(float) * T * d), "cudaMalloc") ||
        !ok(cudaMalloc(&out, sizeof(float) * T * d), "cudaMalloc") ||
        !ok(cudaMalloc(&kc, sizeof(float) * slots * kv_dim), "cudaMalloc") ||
        !ok(cudaMalloc(&vc, sizeof(float) * slots * kv_dim), "cudaMalloc") ||
        !ok(cudaMalloc(&npos, 4 * T), "cudaMalloc") || !ok(cudaMalloc(&boff, 4 * T), "cudaMalloc") ||
        !ok(cudaMalloc(&blocks, 4 * h_blocks.size()), "cudaMalloc"))
      return 1;
    fill_f32(q, static_cast<size_t>(T * d));
    fill_f32(kc, static_cast<size_t>(slots * kv_dim));
    fill_f32(vc, static_cast<size_t>(slots * kv_dim));
    cudaMemcpy(npos, h_npos.data(), 4 * T, cudaMemcpyHostToDevice);
    cudaMemcpy(boff, h_boff.data(), 4 * T, cudaMemcpyHostToDevice);
    cudaMemcpy(blocks, h_blocks.data(), 4 * h_blocks.size(), cudaMemcpyHostToDevice);
    cudaError_t err = cudaSuccess;
    const double ms = timed(
        [&](int) {
          const cudaError_t e = cuda::k::attention(q, kc, vc, out, npos, boff, blocks, bs, T, heads, heads / kv_heads,
                                                   hd, d, d, kv_dim, 0.125f, splits, part, nullptr);
          if (err == cudaSuccess) err = e;
        },
        30);
    if (!ok(err, "attention")) return 1;
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "{\"part\":\"attention\",\"kind\":\"%s\",\"batch\":%d,\"q\":%d,\"kv\":%d,\"hd\":%d,\"splits\":%d,"
                  "\"ms\":%.5f}",
                  c.kind, c.batch, c.q_len, c.kv_len, hd, splits, ms);
    emit(buf);
    for (void* p :
         {static_cast<void*>(part), static_cast<void*>(q), static_cast<void*>(out), static_cast<void*>(kc),
          static_cast<void*>(vc), static_cast<void*>(npos), static_cast<void*>(boff), static_cast<void*>(blocks)})
      cudaFree(p);
  }
  if (!json_path.empty())
    if (FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "[%s]\n", json.c_str());
      std::fclose(f);
    }
  return 0;
}
