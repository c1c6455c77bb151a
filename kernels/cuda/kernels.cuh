// The CUDA kernels of the engine's batched step: their launchers, compiled
// once in kernels.cu and used by the backend (cuda_engine.cu) and the check
// program (tests/gpu/cuda_check.cu). Each has a plain path and, where it pays,
// a fast one (16-byte loads, tensor cores, split attention). Layouts follow the CPU backend (cpu_engine.cpp):
//
//   activations   row-major (token, feature), float
//   weights       ggml rows: weight row n holds the K inputs of output n,
//                 F32, F16, BF16 or Q8_0 (34-byte blocks of 32)
//   KV cache      per layer (slot, n_head_kv * head_dim) float; the slot of
//                 position j of a token's sequence is
//                 blocks[boff + j / bs] * bs + j % bs
//
// Every launcher enqueues on `st` and returns the launch error
// (cudaGetLastError); none aborts.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/model/ggml_types.hpp"

namespace brigade::cuda::k {

constexpr int mm_tokens = 8;          // matmul: tokens per warp pass (a weight element is loaded once per 8 tokens)
constexpr int mm_warps = 8;           // matmul: weight rows per block, one per warp
constexpr int att_warps = 4;          // attention: warps per (token, head)
constexpr int att_max_per_lane = 8;   // attention: head_dim <= 256
constexpr int sample_threads = 1024;  // sampling: threads per row

/// Sampling parameters of one output row (sampling.hpp's, flattened).
struct sample_desc {
  float temperature;  // <= 0: greedy
  int32_t top_k;      // 0: no limit
  float top_p;        // 1: no limit
  uint32_t position;  // counter of the draw
  uint64_t seed;
};

/// x[i] = row tokens[i] of `table` (ggml rows of `type`), as float; x: (T, d).
cudaError_t embed(ggml_type type, const unsigned char* table, size_t row_bytes, const int32_t* tokens, float* x,
                  int64_t T, int64_t d, cudaStream_t st);

/// For b < n_rows, row r = rows ? rows[b] : b: when `delta` is set,
/// x[r] += delta[r] (the residual); then y[b] = x[r] / sqrt(mean(x[r]^2) + eps) * g,
/// the sum of squares in double as on the CPU.
cudaError_t add_rmsnorm(float* x, const float* delta, const float* g, float* y, const int32_t* rows, int64_t n_rows,
                        int64_t d, float eps, cudaStream_t st);

/// y[t * ldy + n] (+)= dot(x[t * ldx ...], weight row n) for t < T, n < N;
/// with `w2` (SwiGLU, same shape): y = silu(dot(x, w row)) * dot(x, w2 row).
/// F16 and BF16 weights with K a multiple of 8 and 16-byte aligned rows take
/// the 16-byte-load path; with F16 weights, 16 tokens or more and K a
/// multiple of 32, the tensor-core path (activations split into F16 high and
/// low halves, each token's 32-wide slice scaled by a power of two so any
/// magnitude fits); unless generic kernels are forced.
/// With `scratch` (and the device's multiprocessor count), the tensor-core
/// path splits K across blocks when N / 32 blocks would leave
/// multiprocessors idle (matmul_splits says how many), if
/// splits * T * N (x2 with SwiGLU) floats fit in scratch_floats; the parts
/// are added in a fixed order, so results are the same on every run.
cudaError_t matmul(ggml_type type, const unsigned char* w, const unsigned char* w2, size_t row_bytes, int64_t K,
                   int64_t N, const float* x, int64_t ldx, int64_t T, float* y, int64_t ldy, bool accumulate,
                   cudaStream_t st, float* scratch = nullptr, size_t scratch_floats = 0, int sm_count = 0);

/// Whether matmul takes the tensor-core path for these shapes, and into how
/// many K runs it splits (1: none). They depend only on the shapes, so a
/// step's CUDA graph stays valid.
bool tensor_core_path(ggml_type type, int64_t K, int64_t T);
int matmul_splits(ggml_type type, int64_t K, int64_t N, int64_t T, int sm_count);

/// RoPE (llama.cpp's "normal" pairs; angles pos * theta_scale^p built by
/// repeated float multiplication, as on the CPU) on q in place and on k into
/// k_cache at slot[i]; v is copied into v_cache there. Rows of q are ldq
/// floats apart, rows of k and v ldkv (a fused QKV buffer).
cudaError_t rope_kv(float* q, const float* k, const float* v, float* k_cache, float* v_cache, const int32_t* pos,
                    const int32_t* slot, int64_t T, int n_head, int n_head_kv, int hd, int64_t ldq, int64_t ldkv,
                    int64_t kv_dim, float theta_scale, cudaStream_t st);

/// Paged grouped-query attention: token i, head h (KV head h / group) over
/// positions 0 .. npos[i] - 1 of its sequence:
///   out = softmax(scale * q . k_j) . v_j      (rows: q ldq, out ldo floats apart)
/// With splits > 1 the positions are cut into that many slices run in
/// parallel (flash-decoding) and merged; `partial` then holds
/// T * n_head * splits * (hd + 2) floats. cudaErrorInvalidValue when
/// hd > 256 or splits is not in 1..64.
cudaError_t attention(const float* q, const float* k_cache, const float* v_cache, float* out, const int32_t* npos,
                      const int32_t* boff, const int32_t* blocks, int bs, int64_t T, int n_head, int group, int hd,
                      int64_t ldq, int64_t ldo, int64_t kv_dim, float scale, int splits, float* partial,
                      cudaStream_t st);

/// How many slices attention should cut the positions into for T tokens so
/// that about two blocks per multiprocessor run: 1 when T * n_head already
/// gives that, else up to 16. Depends only on T (and the model), so CUDA
/// graphs of a step stay valid.
int attention_splits(int64_t T, int n_head, int sm_count);

/// out[r] = the token sampled from logits[r] with desc[r], exactly as
/// sampling.cpp does on the CPU (greedy: first index of the maximum;
/// otherwise (logit / T desc, id asc) order, top-k, softmax as integer
/// weights (det_math.hpp), top-p, one Philox draw keyed on (seed, position)):
/// the same logits give the same token.
/// Scratch: `keys` pow2 and `probs` n_vocab values per row.
cudaError_t sample(const float* logits, int32_t n_vocab, const sample_desc* desc, uint64_t* keys, uint64_t* probs,
                   int32_t pow2, int32_t* out, int64_t rows, cudaStream_t st);

/// Forces the plain kernels (no fast paths), for comparisons; also set by the
/// environment variable BRIGADE_CUDA_GENERIC. Set it before creating engines:
/// a step already captured as a CUDA graph keeps the kernels it had.
void set_generic_kernels(bool on);
bool generic_kernels();

/// The power of two at or above n (the sort length for a vocabulary).
int32_t pow2_at_least(int32_t n);

}  // namespace brigade::cuda::k
