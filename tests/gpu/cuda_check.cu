// The GPU check program: every CUDA kernel against the CPU backend
// (or a double-precision reference where the CPU backend has no separate
// kernel) on fresh random inputs, outputs poisoned with NaN before every run,
// awkward sizes; then the whole CUDA engine against the CPU engine on the
// synthetic `tiny` and `small` models: greedy tokens must agree except at a
// near-tie (docs/design.md, invariant 6: where they differ, the CPU's top-2 logit
// gap is under 1e-3 relative).
//
// Needs only CUDA and kernels/ (no GoogleTest, none of our Debian packages).
// usage: cuda_check [--quick] [--json FILE]
//   --quick  kernels and the tiny model only (for compute-sanitizer runs)
// BRIGADE_CHECK_SEED=N replays the random inputs of an earlier run.
// Exit codes: 0 all passed, 1 a mismatch or CUDA error, 77 skipped (no GPU;
// CTest reports the test as skipped). BRIGADE_REQUIRE_GPU=1 makes a missing
// GPU a failure.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/kernels.cuh"
#include "kernels/engine/engine.hpp"
#include "kernels/engine/sampling.hpp"
#include "kernels/model/ggml_types.hpp"
#include "kernels/model/synth.hpp"

using namespace brigade;

namespace {

int failures = 0;
std::string json_rows;  // one JSON object per check
std::mt19937_64 rng;

void report(bool ok, const std::string& what, const std::string& detail, double err = -1) {
  std::printf("%s %-58s %s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
  if (!json_rows.empty()) json_rows += ",";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3e", err);
  json_rows += "{\"check\":\"" + what + "\",\"ok\":" + (ok ? "true" : "false") + ",\"error\":" + buf + "}";
}

bool cuda_ok(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return true;
  report(false, what, std::string("CUDA error: ") + cudaGetErrorString(e));
  return false;
}

/// A device array, poisoned (all bits set: NaN for floats) on request.
template <typename T>
struct dvec {
  T* p = nullptr;
  size_t n = 0;
  explicit dvec(size_t count) : n(count) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  explicit dvec(const std::vector<T>& v) : dvec(v.size()) { put(v); }
  ~dvec() { cudaFree(p); }
  dvec(const dvec&) = delete;
  void put(const std::vector<T>& v) { cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice); }
  void poison() { cudaMemset(p, 0xFF, n * sizeof(T)); }
  std::vector<T> get() const {
    std::vector<T> v(n);
    cudaDeviceSynchronize();
    cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
};

std::vector<float> randn(size_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

/// ||got - want|| / ||want||; infinity when got has a NaN or infinity.
double rel_err(const float* got, const double* want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  std::vector<double> w(want.begin(), want.end());
  return rel_err(got.data(), w.data(), std::min(got.size(), w.size()));
}

std::string fmt(double e) {
  char b[48];
  std::snprintf(b, sizeof b, "rel err %.2e", e);
  return b;
}

/// `n_rows` x `row_len` random weights of `type`, in ggml's layout.
std::vector<unsigned char> random_weights(ggml_type type, int64_t n_rows, int64_t row_len) {
  const ggml_type_traits tr = ggml_traits(type);
  const std::vector<float> x = randn(static_cast<size_t>(n_rows * row_len), 0.5f);
  const size_t row_bytes = static_cast<size_t>(row_len / tr.block_elems * tr.block_bytes);
  std::vector<unsigned char> out(row_bytes * static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* src = x.data() + r * row_len;
    unsigned char* dst = out.data() + static_cast<size_t>(r) * row_bytes;
    for (int64_t i = 0; i < row_len; ++i) switch (type) {
        case ggml_type::f32: std::memcpy(dst + 4 * i, src + i, 4); break;
        case ggml_type::f16: {
          const uint16_t h = f32_to_f16(src[i]);
          std::memcpy(dst + 2 * i, &h, 2);
          break;
        }
        case ggml_type::bf16: {
          const uint16_t h = f32_to_bf16(src[i]);
          std::memcpy(dst + 2 * i, &h, 2);
          break;
        }
        case ggml_type::q8_0: break;
      }
    if (type == ggml_type::q8_0) quantize_row_q8_0(src, reinterpret_cast<q8_0_block*>(dst), row_len);
  }
  return out;
}

const char* tname(ggml_type t) { return ggml_type_name(static_cast<uint32_t>(t)); }

// --- kernels -----------------------------------------------------------------------

void check_dequantize(ggml_type type, int64_t n_rows, int64_t row_len) {
  const auto src = random_weights(type, n_rows, row_len);
  const ggml_type_traits tr = ggml_traits(type);
  const int64_t n = n_rows * row_len;
  std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), std::nanf(""));
  for (int64_t r = 0; r < n_rows; ++r)
    dequantize_row(type, src.data() + r * (row_len / tr.block_elems) * tr.block_bytes, want.data() + r * row_len,
                   row_len);
  const status s = cuda::dequantize_rows(0, type, src.data(), got.data(), n_rows, row_len);
  const std::string what =
      std::string("dequantize ") + tname(type) + " " + std::to_string(n_rows) + "x" + std::to_string(row_len);
  if (!s.ok()) return report(false, what, s.message());
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += std::memcmp(&want[i], &got[i], sizeof(float)) != 0;
  report(bad == 0, what, std::to_string(bad) + " mismatches (bit-exact required)", static_cast<double>(bad));
}

void check_embed(ggml_type type, int64_t d) {
  const int64_t vocab = 53, T = 13;
  const auto table = random_weights(type, vocab, d);
  const size_t row_bytes = table.size() / vocab;
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(randint(0, vocab - 1));
  dvec<unsigned char> dt(table);
  dvec<int32_t> dtok(tokens);
  dvec<float> x(static_cast<size_t>(T * d));
  x.poison();
  const std::string what = std::string("embed ") + tname(type) + " d=" + std::to_string(d);
  if (!cuda_ok(cuda::k::embed(type, dt.p, row_bytes, dtok.p, x.p, T, d, nullptr), what)) return;
  const auto got = x.get();
  std::vector<float> want(static_cast<size_t>(T * d));
  for (int64_t i = 0; i < T; ++i)
    dequantize_row(type, table.data() + static_cast<size_t>(tokens[i]) * row_bytes, want.data() + i * d, d);
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += std::memcmp(&want[i], &got[i], 4) != 0;
  report(bad == 0, what, std::to_string(bad) + " mismatches (bit-exact required)", static_cast<double>(bad));
}

void check_rmsnorm(int64_t T, int64_t d, bool with_delta, bool gather) {
  const float eps = 1e-5f;
  auto x0 = randn(static_cast<size_t>(T * d), 2.0f), delta = randn(static_cast<size_t>(T * d)),
       g = randn(static_cast<size_t>(d));
  for (auto& v : g) v = 1.0f + 0.1f * v;
  std::vector<int32_t> rows;
  if (gather)
    for (int64_t r = T - 1; r >= 0; r -= 2) rows.push_back(static_cast<int32_t>(r));
  const int64_t n_out = gather ? static_cast<int64_t>(rows.size()) : T;
  dvec<float> x(x0), dd(delta), dg(g), y(static_cast<size_t>(n_out * d));
  dvec<int32_t> drows(rows);
  y.poison();
  const std::string what = "add_rmsnorm T=" + std::to_string(T) + " d=" + std::to_string(d) +
                           (with_delta ? " +residual" : "") + (gather ? " gather" : "");
  if (!cuda_ok(cuda::k::add_rmsnorm(x.p, with_delta ? dd.p : nullptr, dg.p, y.p, gather ? drows.p : nullptr, n_out, d,
                                    eps, nullptr),
               what))
    return;
  const auto got = y.get(), xs = x.get();
  std::vector<double> want(static_cast<size_t>(n_out * d));
  std::vector<float> xw = x0;
  for (int64_t b = 0; b < n_out; ++b) {
    const int64_t r = gather ? rows[static_cast<size_t>(b)] : b;
    double ss = 0;
    for (int64_t e = 0; e < d; ++e) {
      if (with_delta) xw[r * d + e] += delta[r * d + e];
      ss += static_cast<double>(xw[r * d + e]) * xw[r * d + e];
    }
    const double sc = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t e = 0; e < d; ++e) want[b * d + e] = xw[r * d + e] * sc * g[e];
  }
  const double err = rel_err(got.data(), want.data(), want.size());
  const bool residual_ok = std::memcmp(xs.data(), xw.data(), xw.size() * 4) == 0;
  report(err < 1e-5 && residual_ok, what, fmt(err) + (residual_ok ? "" : ", residual sum differs"), err);
}

std::string fmt_scale(float v) {
  char b[16];
  std::snprintf(b, sizeof b, "%.0e", static_cast<double>(v));
  return b;
}

void check_matmul(ggml_type type, int64_t K, int64_t N, int64_t T, int mode /*0 plain, 1 accumulate, 2 swiglu*/,
                  int64_t ldx_pad = 0, int64_t ldy_pad = 0, float x_scale = 1.0f, int sm_count = 0) {
  const auto w = random_weights(type, N, K), w2 = random_weights(type, N, K);
  const size_t row_bytes = w.size() / N;
  const int64_t ldx = K + ldx_pad, ldy = N + ldy_pad;  // rows of x and y further apart, as in the fused QKV buffer
  auto x = randn(static_cast<size_t>(T * ldx));
  for (auto& v : x) v *= x_scale;  // beyond F16's range: the tensor-core path must scale, not overflow
  const auto y0 = randn(static_cast<size_t>(T * ldy));
  dvec<unsigned char> dw(w), dw2(w2);
  dvec<float> dx(x), dy(static_cast<size_t>(T * ldy));
  if (mode == 1)
    dy.put(y0);
  else
    dy.poison();
  const bool fast = !cuda::k::generic_kernels() && (type == ggml_type::f16 || type == ggml_type::bf16) && K % 8 == 0;
  const bool tensor = fast && type == ggml_type::f16 && T >= 16 && K % 32 == 0;
  const std::string what =
      std::string(tensor ? "matmul (tensor cores) "
                  : fast ? "matmul (16-byte) "
                         : "matmul ") +
      tname(type) + " K=" + std::to_string(K) + " N=" + std::to_string(N) + " T=" + std::to_string(T) +
      (mode == 1   ? " accumulate"
       : mode == 2 ? " swiglu"
                   : "") +
      (ldx_pad || ldy_pad ? " strided" : "") + (x_scale != 1.0f ? " |x|~" + fmt_scale(x_scale) : "");
  // With a multiprocessor count, the tensor-core path may split K (scratch given).
  const int splits = cuda::k::matmul_splits(type, K, N, T, sm_count);
  dvec<float> scratch(static_cast<size_t>(splits) * T * N * 2);
  scratch.poison();
  const std::string label = what + (splits > 1 ? " split-K " + std::to_string(splits) : "");
  if (!cuda_ok(cuda::k::matmul(type, dw.p, mode == 2 ? dw2.p : nullptr, row_bytes, K, N, dx.p, ldx, T, dy.p, ldy,
                               mode == 1, nullptr, sm_count ? scratch.p : nullptr, scratch.n, sm_count),
               label))
    return;
  const auto got = dy.get();
  // The CPU backend's matrix kernel on the same bytes.
  const auto& cpu = cpu::best_kernels();
  weight W{w.data(), type, K, N, row_bytes}, W2{w2.data(), type, K, N, row_bytes};
  std::vector<float> want = mode == 1 ? y0 : std::vector<float>(static_cast<size_t>(T * ldy));
  if (mode == 2) {
    std::vector<float> g(static_cast<size_t>(T * ldy)), u(static_cast<size_t>(T * ldy));
    cpu.matmul(W, x.data(), ldx, T, g.data(), ldy, 0, N, false);
    cpu.matmul(W2, x.data(), ldx, T, u.data(), ldy, 0, N, false);
    for (size_t i = 0; i < want.size(); ++i) want[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  } else {
    cpu.matmul(W, x.data(), ldx, T, want.data(), ldy, 0, N, mode == 1);
  }
  // Only the N columns of each row are outputs (the rest stays poisoned or as it was).
  std::vector<float> got_cols, want_cols;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      got_cols.push_back(got[static_cast<size_t>(t * ldy + n)]);
      want_cols.push_back(want[static_cast<size_t>(t * ldy + n)]);
    }
  const double err = rel_err(got_cols, want_cols);
  report(err < 1e-5, label, fmt(err) + " vs the CPU backend (" + cpu.name + ")", err);
}

void check_rope_kv(int n_head, int n_head_kv, int hd, int64_t T, bool fused = false) {
  const int64_t d = static_cast<int64_t>(n_head) * hd, kv_dim = static_cast<int64_t>(n_head_kv) * hd;
  const int64_t n_slots = 64 * 16;
  const float theta_scale = std::pow(10000.0f, -2.0f / static_cast<float>(hd));
  const auto q0 = randn(static_cast<size_t>(T * d)), k = randn(static_cast<size_t>(T * kv_dim)),
             v = randn(static_cast<size_t>(T * kv_dim));
  std::vector<int32_t> pos(static_cast<size_t>(T)), slot(static_cast<size_t>(T));
  std::vector<int32_t> all(static_cast<size_t>(n_slots));
  for (int64_t i = 0; i < n_slots; ++i) all[i] = static_cast<int32_t>(i);
  std::shuffle(all.begin(), all.end(), rng);
  for (int64_t i = 0; i < T; ++i) {
    pos[i] = static_cast<int32_t>(randint(0, 2047));
    slot[i] = all[i];
  }
  // Separate q, k, v buffers, or the engine's fused layout: one row of
  // d + 2 kv_dim floats per token holding q, k, v side by side.
  const int64_t ld = d + 2 * kv_dim;
  std::vector<float> qkv(static_cast<size_t>(T * ld));
  for (int64_t i = 0; i < T; ++i) {
    std::copy_n(q0.begin() + i * d, d, qkv.begin() + i * ld);
    std::copy_n(k.begin() + i * kv_dim, kv_dim, qkv.begin() + i * ld + d);
    std::copy_n(v.begin() + i * kv_dim, kv_dim, qkv.begin() + i * ld + d + kv_dim);
  }
  dvec<float> dq(q0), dk(k), dv(v), dqkv(qkv), kc(static_cast<size_t>(n_slots * kv_dim)),
      vc(static_cast<size_t>(n_slots * kv_dim));
  dvec<int32_t> dpos(pos), dslot(slot);
  kc.poison();
  vc.poison();
  const std::string what = "rope_kv heads=" + std::to_string(n_head) + "/" + std::to_string(n_head_kv) +
                           " hd=" + std::to_string(hd) + " T=" + std::to_string(T) + (fused ? " fused-qkv" : "");
  const cudaError_t e = fused ? cuda::k::rope_kv(dqkv.p, dqkv.p + d, dqkv.p + d + kv_dim, kc.p, vc.p, dpos.p, dslot.p,
                                                 T, n_head, n_head_kv, hd, ld, ld, kv_dim, theta_scale, nullptr)
                              : cuda::k::rope_kv(dq.p, dk.p, dv.p, kc.p, vc.p, dpos.p, dslot.p, T, n_head, n_head_kv,
                                                 hd, d, kv_dim, kv_dim, theta_scale, nullptr);
  if (!cuda_ok(e, what)) return;
  std::vector<float> q = dq.get();
  if (fused) {
    const auto all_rows = dqkv.get();
    for (int64_t i = 0; i < T; ++i) std::copy_n(all_rows.begin() + i * ld, d, q.begin() + i * d);
  }
  const auto kcs = kc.get(), vcs = vc.get();
  // Reference: the CPU backend's angles (float, built by repeated
  // multiplication), rotation in double.
  auto rotate = [&](const float* src, int64_t p0, int heads, std::vector<double>& dst) {
    for (int h = 0; h < heads; ++h) {
      float theta = static_cast<float>(p0);
      for (int i = 0; i < hd / 2; ++i) {
        const double c = std::cos(static_cast<double>(theta)), s = std::sin(static_cast<double>(theta));
        const double x0 = src[h * hd + 2 * i], x1 = src[h * hd + 2 * i + 1];
        dst.push_back(x0 * c - x1 * s);
        dst.push_back(x0 * s + x1 * c);
        theta *= theta_scale;
      }
    }
  };
  std::vector<double> want_q, want_k;
  std::vector<float> got_k;
  int64_t v_bad = 0, untouched_bad = 0;
  std::vector<char> written(static_cast<size_t>(n_slots), 0);
  for (int64_t i = 0; i < T; ++i) {
    rotate(q0.data() + i * d, pos[i], n_head, want_q);
    rotate(k.data() + i * kv_dim, pos[i], n_head_kv, want_k);
    got_k.insert(got_k.end(), kcs.begin() + slot[i] * kv_dim, kcs.begin() + (slot[i] + 1) * kv_dim);
    v_bad += std::memcmp(vcs.data() + slot[i] * kv_dim, v.data() + i * kv_dim, kv_dim * 4) != 0;
    written[static_cast<size_t>(slot[i])] = 1;
  }
  for (int64_t s = 0; s < n_slots; ++s)
    if (!written[static_cast<size_t>(s)])
      for (int64_t e = 0; e < kv_dim; ++e)
        untouched_bad += !std::isnan(kcs[s * kv_dim + e]) || !std::isnan(vcs[s * kv_dim + e]);
  const double eq = rel_err(q.data(), want_q.data(), want_q.size());
  const double ek = rel_err(got_k.data(), want_k.data(), want_k.size());
  const bool ok = eq < 1e-5 && ek < 1e-5 && v_bad == 0 && untouched_bad == 0;
  report(ok, what,
         "q " + fmt(eq) + ", k " + fmt(ek) + ", v rows differing " + std::to_string(v_bad) +
             ", foreign slots written " + std::to_string(untouched_bad),
         std::max(eq, ek));
}

void check_attention(int n_head, int n_head_kv, int hd, const std::vector<int32_t>& npos_per_token, int splits,
                     bool fused = false) {
  const int bs = 16, n_blocks = 96;
  const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd, d = static_cast<int64_t>(n_head) * hd;
  const int64_t T = static_cast<int64_t>(npos_per_token.size());
  const auto kc = randn(static_cast<size_t>(n_blocks * bs * kv_dim)),
             vc = randn(static_cast<size_t>(n_blocks * bs * kv_dim));
  const int64_t ldq = fused ? d + 2 * kv_dim : d;  // the engine's fused QKV buffer
  const auto q = randn(static_cast<size_t>(T * ldq));
  // Each token its own random block table (blocks drawn without repetition).
  std::vector<int32_t> ids(n_blocks);
  for (int i = 0; i < n_blocks; ++i) ids[i] = i;
  std::vector<int32_t> blocks, boff;
  for (int64_t i = 0; i < T; ++i) {
    std::shuffle(ids.begin(), ids.end(), rng);
    boff.push_back(static_cast<int32_t>(blocks.size()));
    const int nb = (npos_per_token[i] + bs - 1) / bs;
    blocks.insert(blocks.end(), ids.begin(), ids.begin() + nb);
  }
  dvec<float> dq(q), dk(kc), dv(vc), out(static_cast<size_t>(T * d)),
      part(static_cast<size_t>(T * n_head * splits * (hd + 2)));
  part.poison();
  dvec<int32_t> dnpos(npos_per_token), dboff(boff), dblocks(blocks);
  out.poison();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::string what = "attention heads=" + std::to_string(n_head) + "/" + std::to_string(n_head_kv) +
                     " hd=" + std::to_string(hd) + " npos=";
  for (size_t i = 0; i < npos_per_token.size() && i < 4; ++i)
    what += (i ? "," : "") + std::to_string(npos_per_token[i]);
  if (npos_per_token.size() > 4) what += ",...";
  if (splits > 1) what += " splits=" + std::to_string(splits);
  if (fused) what += " fused-qkv";
  if (!cuda_ok(cuda::k::attention(dq.p, dk.p, dv.p, out.p, dnpos.p, dboff.p, dblocks.p, bs, T, n_head,
                                  n_head / n_head_kv, hd, ldq, d, kv_dim, scale, splits, part.p, nullptr),
               what))
    return;
  const auto got = out.get();
  const auto& cpu = cpu::best_kernels();
  std::vector<float> want(static_cast<size_t>(T * d));
  const int group = n_head / n_head_kv;
  for (int64_t i = 0; i < T; ++i) {
    const int32_t n = npos_per_token[i];
    std::vector<int32_t> slots(static_cast<size_t>(n));
    for (int32_t j = 0; j < n; ++j) slots[j] = blocks[boff[i] + j / bs] * bs + j % bs;
    std::vector<float> scores(static_cast<size_t>(group * n));
    for (int kvh = 0; kvh < n_head_kv; ++kvh)
      cpu.attend(q.data() + i * ldq + kvh * group * hd, group, hd, kc.data() + kvh * hd, vc.data() + kvh * hd,
                 slots.data(), n, kv_dim, scale, scores.data(), want.data() + i * d + kvh * group * hd);
  }
  const double err = rel_err(got, want);
  report(err < 1e-5, what, fmt(err) + " vs the CPU backend", err);
}

void check_sampling(int32_t n_vocab, int rows) {
  std::vector<cuda::k::sample_desc> desc(static_cast<size_t>(rows));
  std::vector<sampling_params> params(static_cast<size_t>(rows));
  auto logits = randn(static_cast<size_t>(rows) * n_vocab, 3.0f);
  // Ties: in every third row the maximum is copied to a lower and a higher
  // id, a run of equal values appears, and -0 meets +0 (equal: the lower id
  // first, on the CPU as on the GPU).
  for (int r = 0; r < rows; r += 3) {
    float* l = logits.data() + static_cast<size_t>(r) * n_vocab;
    const int32_t top = static_cast<int32_t>(std::max_element(l, l + n_vocab) - l);
    l[(top + n_vocab / 2) % n_vocab] = l[top];
    l[(top + 7) % n_vocab] = l[top];
    for (int32_t i = 10; i < 40; ++i) l[i] = l[9];
    l[41] = -0.0f;
    l[42] = 0.0f;
  }
  for (int r = 0; r < rows; ++r) {
    sampling_params p;
    switch (r % 6) {
      case 0: p.temperature = 0.0f; break;
      case 1: p.temperature = 0.8f; break;
      case 2: p.temperature = 1.3f, p.top_k = 40; break;
      case 3: p.temperature = 0.7f, p.top_p = 0.9f; break;
      case 4: p.temperature = 1.0f, p.top_k = 200, p.top_p = 0.5f; break;
      case 5: p.temperature = 0.9f, p.top_k = r % 12 == 5 ? 1 : n_vocab + 5; break;
    }
    p.seed = rng();
    params[r] = p;
    desc[r] = {p.temperature, p.top_k, p.top_p, static_cast<uint32_t>(randint(0, 100000)), p.seed};
  }
  const int32_t pow2 = cuda::k::pow2_at_least(n_vocab);
  dvec<float> dl(logits);
  dvec<uint64_t> probs(static_cast<size_t>(rows) * n_vocab);
  dvec<uint64_t> keys(static_cast<size_t>(rows) * pow2);
  dvec<cuda::k::sample_desc> dd(desc);
  dvec<int32_t> out(static_cast<size_t>(rows));
  out.poison();
  const std::string what = "sample vocab=" + std::to_string(n_vocab) + " rows=" + std::to_string(rows);
  if (!cuda_ok(cuda::k::sample(dl.p, n_vocab, dd.p, keys.p, probs.p, pow2, out.p, rows, nullptr), what)) return;
  const auto got = out.get();
  std::vector<std::pair<float, int32_t>> scratch;
  int bad = 0;
  std::string first_bad;
  for (int r = 0; r < rows; ++r) {
    const int32_t want =
        sample_token(logits.data() + static_cast<size_t>(r) * n_vocab, n_vocab, params[r], desc[r].position, scratch);
    if (want != got[r]) {
      if (!bad)
        first_bad =
            ", first at row " + std::to_string(r) + ": cpu " + std::to_string(want) + " gpu " + std::to_string(got[r]);
      ++bad;
    }
  }
  report(bad == 0, what, std::to_string(bad) + " tokens differ from the CPU's sample_token" + first_bad, bad);
}

// --- the whole engine ----------------------------------------------------------------

/// One sequence of the engine check: its prompt, when it starts, how its
/// prompt is split, and how it samples.
struct seq_plan {
  int prompt = 0;       // tokens
  int start = 0;        // step at which its first chunk goes in
  int chunk = 1 << 20;  // prompt tokens per step (chunked prefill: earlier chunks neither sample nor return logits)
  sampling_params sampling;
};

/// How the CUDA engine runs in an engine check: as shipped, or with one of
/// its speed-ups off, so a failure points at the part that causes it.
enum class variant { shipped, no_graphs, generic_kernels };

void check_engine(const std::string& preset, ggml_type type, int decode_steps, variant how = variant::shipped) {
  const std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  const std::string path =
      dir + "/brigade-check-" + preset + "-" + tname(type) + "-" + std::to_string(::getpid()) + ".gguf";
  synth_options so;
  so.preset = preset;
  so.seed = 7;
  so.type = type;
  const std::string what = "engine " + preset + " " + tname(type) +
                           (how == variant::no_graphs         ? " (CUDA graphs off)"
                            : how == variant::generic_kernels ? " (plain kernels)"
                                                              : "");
  if (auto s = synthesize_model(so, path); !s) return report(false, what, "cannot synthesise: " + s.message());
  auto model = llama_model::load(path);
  std::remove(path.c_str());
  if (!model) return report(false, what, model.error().message());
  engine_config cfg;
  cfg.max_sequences = 8;
  cfg.kv_memory_bytes = 256ll << 20;
  cfg.max_step_tokens = 512;
  cfg.n_ctx = 1024;
  auto cpu_e = make_cpu_engine(*model, cfg);
  // The engine reads BRIGADE_CUDA_GRAPHS when made, and captures the kernels
  // chosen then; both are put back after the check.
  const char* graphs_env = std::getenv("BRIGADE_CUDA_GRAPHS");
  const std::string graphs_before = graphs_env ? graphs_env : "";
  const bool had_graphs_env = graphs_env != nullptr;
  struct restore_kernels {
    bool generic = cuda::k::generic_kernels();
    ~restore_kernels() { cuda::k::set_generic_kernels(generic); }
  } restore;
  if (how == variant::no_graphs) setenv("BRIGADE_CUDA_GRAPHS", "0", 1);
  if (how == variant::generic_kernels) cuda::k::set_generic_kernels(true);
  auto gpu_e = cuda::make_cuda_engine(*model, cfg, 0);
  if (had_graphs_env)
    setenv("BRIGADE_CUDA_GRAPHS", graphs_before.c_str(), 1);
  else
    unsetenv("BRIGADE_CUDA_GRAPHS");
  if (!cpu_e || !gpu_e) return report(false, what, (!cpu_e ? cpu_e.error() : gpu_e.error()).message());
  engine& c = **cpu_e;
  engine& g = **gpu_e;
  const int32_t n_vocab = c.hparams().n_vocab;
  // Steps of 43 prompt tokens (padded to 64), of 5-6 decode tokens (padded to
  // 8), one mixing decode tokens with a 150-token prompt (not padded), a
  // prompt in three chunks, and a sequence that samples (temperature, top-k,
  // top-p, its own seed).
  sampling_params sampled;
  sampled.temperature = 0.8f;
  sampled.top_k = 40;
  sampled.top_p = 0.95f;
  sampled.seed = 20261127;
  const int whole = 1 << 20;
  const std::vector<seq_plan> plans{{1, 0, whole, {}},   {7, 0, whole, {}},       {33, 0, whole, {}}, {2, 0, whole, {}},
                                    {150, 3, whole, {}}, {20, 1, whole, sampled}, {60, 2, 20, {}}};
  struct live {
    seq_id cs = -1, gs = -1;
    std::vector<token_id> prompt;
    size_t fed = 0;      // prompt tokens given so far
    token_id next = -1;  // the token to feed next (after the prompt)
  };
  std::vector<live> seqs(plans.size());
  for (size_t k = 0; k < plans.size(); ++k) {
    auto a = c.create_sequence();
    auto b = g.create_sequence();
    if (!a || !b) return report(false, what, "create_sequence failed");
    seqs[k].cs = *a;
    seqs[k].gs = *b;
    for (int i = 0; i < plans[k].prompt; ++i) seqs[k].prompt.push_back(static_cast<token_id>(randint(3, n_vocab - 1)));
  }
  int compared = 0, differ = 0, not_near_tie = 0, sampled_compared = 0, sampled_differ = 0;
  double max_logit_err = 0, worst_gap = 0;
  std::vector<step_result> cr, gr;
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step <= decode_steps; ++step) {
    std::vector<step_item> cb, gb;
    std::vector<size_t> who;
    for (size_t k = 0; k < plans.size(); ++k) {
      live& L = seqs[k];
      if (step < plans[k].start) continue;
      step_item it;
      it.sampling = plans[k].sampling;
      if (L.fed < L.prompt.size()) {
        const size_t n = std::min<size_t>(static_cast<size_t>(plans[k].chunk), L.prompt.size() - L.fed);
        it.tokens.assign(L.prompt.begin() + static_cast<long>(L.fed), L.prompt.begin() + static_cast<long>(L.fed + n));
        L.fed += n;
        it.sample = it.want_logits = L.fed == L.prompt.size();
      } else {
        it.tokens = {L.next};
        it.want_logits = true;
      }
      it.seq = L.cs;
      cb.push_back(it);
      it.seq = L.gs;
      gb.push_back(it);
      who.push_back(k);
    }
    if (auto s = c.step(cb, cr); !s)
      return report(false, what, "cpu step " + std::to_string(step) + ": " + s.message());
    if (auto s = g.step(gb, gr); !s)
      return report(false, what, "cuda step " + std::to_string(step) + ": " + s.message());
    for (size_t j = 0; j < cb.size(); ++j) {
      if (!cb[j].sample) {
        if (!gr[j].logits.empty()) return report(false, what, "logits returned for an item that did not ask");
        continue;
      }
      max_logit_err = std::max(max_logit_err, rel_err(gr[j].logits, cr[j].logits));
      const bool greedy = cb[j].sampling.temperature <= 0.0f;
      (greedy ? compared : sampled_compared)++;
      if (cr[j].token != gr[j].token) {
        if (!greedy) {
          ++sampled_differ;
        } else {
          ++differ;
          // Near-tie rule: the CPU's top two logits within 1e-3 relative.
          std::vector<float> l = cr[j].logits;
          std::partial_sort(l.begin(), l.begin() + 2, l.end(), std::greater<float>());
          const double gap = (l[0] - l[1]) / std::max(std::fabs(l[0]), 1e-30f);
          worst_gap = std::max(worst_gap, gap);
          if (gap >= 1e-3) ++not_near_tie;
        }
      }
      seqs[who[j]].next = cr[j].token;  // teacher forcing: both go on with the CPU's token
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char detail[320];
  std::snprintf(detail, sizeof detail,
                "greedy %d/%d agree (%d differ, %d not near-ties, worst gap %.1e); sampled %d/%d agree; max logits "
                "%s (%.1fs)",
                compared - differ, compared, differ, not_near_tie, worst_gap, sampled_compared - sampled_differ,
                sampled_compared, fmt(max_logit_err).c_str(), secs);
  // Sampled tokens come from slightly different logits: a draw that lands
  // within ~1e-6 of a boundary may go either way, so one difference is allowed.
  report(not_near_tie == 0 && sampled_differ <= 1 && max_logit_err < 1e-3, what, detail, max_logit_err);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: cuda_check [--quick] [--json FILE]\n");
      return 2;
    }
  }
  // Skip only where there is no GPU at all; a GPU machine whose driver or
  // device fails is a failure.
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
  const char* seed_env = std::getenv("BRIGADE_CHECK_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
  rng.seed(seed);
  auto desc = cuda::device_description(0);
  std::printf("device 0: %s; random seed %llu (BRIGADE_CHECK_SEED=%llu replays it)\n",
              desc.ok() ? desc->c_str() : desc.error().message().c_str(), (unsigned long long)seed,
              (unsigned long long)seed);
  for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q8_0}) {
    for (auto [rows, len] : {std::pair<int64_t, int64_t>{1, 32}, {37, 96}, {513, 160}}) check_dequantize(t, rows, len);
    check_embed(t, 96);
    if (t != ggml_type::q8_0) check_embed(t, 100);
  }
  const bool generic_from_env = cuda::k::generic_kernels();  // BRIGADE_CUDA_GENERIC
  for (bool generic : {false, true}) {                       // the fast paths, then the plain kernels
    cuda::k::set_generic_kernels(generic);
    for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q8_0}) {
      for (auto [K, N, T] : {std::tuple<int64_t, int64_t, int64_t>{96, 77, 1},
                             {96, 77, 13},
                             {160, 33, 8},
                             {2048, 64, 3},
                             {5632, 9, 2},
                             {2048, 77, 16},
                             {96, 40, 64},
                             {160, 33, 77},
                             {64, 300, 130}})
        check_matmul(t, K, N, T, 0);
      check_matmul(t, 96, 77, 9, 1);
      check_matmul(t, 96, 77, 33, 1);
      check_matmul(t, 160, 45, 11, 2);
      check_matmul(t, 160, 45, 20, 2);
      check_matmul(t, 96, 40, 5, 0, 4, 3);  // strided rows (ldx = K + 4, ldy = N + 3)
      check_matmul(t, 96, 40, 40, 0, 4, 3);
      check_matmul(t, 96, 40, 20, 0, 0, 0, 1e6f);
      check_matmul(t, 160, 45, 20, 2, 0, 0, 1e6f);
      // Split-K (as on a 132-multiprocessor H100): plain, accumulate, SwiGLU, strided, two token tiles.
      check_matmul(t, 2048, 77, 16, 0, 0, 0, 1.0f, 132);
      check_matmul(t, 2048, 77, 33, 1, 0, 0, 1.0f, 132);
      check_matmul(t, 1024, 45, 20, 2, 0, 0, 1.0f, 132);
      check_matmul(t, 2048, 40, 70, 0, 4, 3, 1.0f, 132);
      check_matmul(t, 320, 77, 16, 0, 0, 0, 1.0f, 132);    // 10 slices over 8 splits: uneven
      check_matmul(t, 96, 40, 20, 0, 0, 0, 1.0f, 132);     // 3 splits: as many as slices
      check_matmul(t, 2048, 45, 20, 2, 0, 0, 1e6f, 132);   // scaling and split-K together
      check_matmul(t, 2048, 45, 20, 0, 0, 0, 1e-4f, 132);  // small activations keep their accuracy
    }
    check_matmul(ggml_type::f16, 100, 31, 5, 0);  // a row length that is not a multiple of 8: the plain kernel
  }
  cuda::k::set_generic_kernels(generic_from_env);
  for (auto [T, d] : {std::pair<int64_t, int64_t>{1, 100}, {7, 2048}, {9, 38}}) {
    check_rmsnorm(T, d, false, false);
    check_rmsnorm(T, d, true, false);
    check_rmsnorm(T, d, true, true);
  }
  check_rope_kv(6, 2, 38, 9);
  check_rope_kv(32, 4, 64, 17);
  check_rope_kv(4, 4, 128, 1);
  check_rope_kv(32, 4, 64, 17, true);
  for (int splits : {1, 3, 16}) {  // split along the positions (flash-decoding) too; slices may be empty
    check_attention(6, 2, 38, {1, 17, 300, 16, 33}, splits);
    check_attention(32, 4, 64, {5, 1024, 77}, splits);
    check_attention(8, 8, 128, {64, 2, 129}, splits);
    check_attention(4, 1, 256, {200, 1}, splits);
  }
  check_attention(32, 4, 64, {5, 700, 77}, 1, true);
  check_attention(32, 4, 64, {5, 700, 77}, 4, true);
  check_sampling(1000, 36);
  check_sampling(32000, 24);
  for (ggml_type t : {ggml_type::f16, ggml_type::f32, ggml_type::bf16, ggml_type::q8_0}) check_engine("tiny", t, 24);
  // The same without CUDA graphs, and with the plain kernels: if the shipped
  // engine fails, these say whether graphs or the fast paths are the cause.
  check_engine("tiny", ggml_type::f16, 24, variant::no_graphs);
  check_engine("tiny", ggml_type::f16, 24, variant::generic_kernels);
  if (!quick) {
    check_engine("small", ggml_type::f16, 32);
    check_engine("small", ggml_type::f16, 32, variant::generic_kernels);
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  if (!json_path.empty())
    if (FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "{\"device\":\"%s\",\"seed\":%llu,\"failures\":%d,\"checks\":[%s]}\n",
                   desc.ok() ? desc->c_str() : "?", (unsigned long long)seed, failures, json_rows.c_str());
      std::fclose(f);
    }
  return failures ? 1 : 0;
}
