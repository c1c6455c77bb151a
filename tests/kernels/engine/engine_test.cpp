// The CPU engine against a plain double-precision reference forward pass,
// and the engine's own consistency: batched = one at a time, prefill then
// decode = full recomputation, reused KV blocks, a full KV cache, bad input.
#include "kernels/engine/engine.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

#include "kernels/cpu/cpu_ops.hpp"
#include "kernels/base/philox.hpp"
#include "kernels/model/synth.hpp"

namespace brigade {
namespace {

/// Awkward shapes: head size 38, row lengths 76 and 100 (not multiples of 8).
constexpr synth_preset odd_shape{"odd", 76, 2, 2, 1, 100, 64, 300, false};
/// Q8_0 needs rows in multiples of 32: still odd head counts and sizes.
constexpr synth_preset q8_shape{"q8", 96, 2, 3, 1, 160, 64, 300, true};

std::string temp_model(const synth_preset& shape, ggml_type type, uint64_t seed = 7) {
  const std::string path = ::testing::TempDir() + "brigade_engine_test_" + shape.name + "_" +
                           ggml_type_name(static_cast<uint32_t>(type)) + "_" + std::to_string(seed) + "_" +
                           std::to_string(::getpid()) + ".gguf";
  synth_options o;
  o.seed = seed;
  o.type = type;
  o.n_threads = 2;
  const status s = synthesize_model(shape, o, path);
  EXPECT_TRUE(s.ok()) << s.message();
  return path;
}

std::shared_ptr<const llama_model> load(const std::string& path) {
  auto m = llama_model::load(path);
  EXPECT_TRUE(m.ok()) << m.error().message();
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<engine> make(std::shared_ptr<const llama_model> m, int threads = 2, int64_t kv_bytes = 64 << 20) {
  engine_config cfg;
  cfg.n_threads = threads;
  cfg.max_sequences = 16;
  cfg.kv_memory_bytes = kv_bytes;
  auto e = make_cpu_engine(std::move(m), cfg);
  EXPECT_TRUE(e.ok()) << e.error().message();
  return std::move(*e);
}

/// The whole model in double precision, written from the math, not from the
/// engine: logits of the last position of `tokens`.
std::vector<double> reference_logits(const llama_model& m, const std::vector<token_id>& tokens) {
  const llama_hparams& hp = m.hparams();
  const int d = hp.n_embd, hd = hp.head_dim, nh = hp.n_head, nkv = hp.n_head_kv, ff = hp.n_ff;
  auto mat = [](const weight& w) {
    std::vector<double> out(static_cast<size_t>(w.n_rows * w.n_cols));
    std::vector<float> row(static_cast<size_t>(w.n_cols));
    for (int64_t r = 0; r < w.n_rows; ++r) {
      dequantize_row(w.type, w.data + r * w.row_bytes, row.data(), w.n_cols);
      for (int64_t c = 0; c < w.n_cols; ++c) out[static_cast<size_t>(r * w.n_cols + c)] = row[static_cast<size_t>(c)];
    }
    return out;
  };
  auto matvec = [](const std::vector<double>& W, const std::vector<double>& x, int rows) {
    const size_t cols = x.size();
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) y[static_cast<size_t>(r)] += W[r * cols + c] * x[c];
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const weight& g) {
    const std::vector<double> gw = mat(g);
    double ss = 0;
    for (double v : x) ss += v * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + hp.rms_eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * gw[i];
    return y;
  };
  auto rope = [&](std::vector<double>& v, int n_heads, int pos) {
    for (int h = 0; h < n_heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double theta = pos * std::pow(static_cast<double>(hp.rope_theta), -2.0 * i / hd);
        double& a = v[static_cast<size_t>(h * hd + 2 * i)];
        double& b = v[static_cast<size_t>(h * hd + 2 * i + 1)];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(theta) - b0 * std::sin(theta);
        b = a0 * std::sin(theta) + b0 * std::cos(theta);
      }
  };
  const size_t T = tokens.size();
  const std::vector<double> emb = mat(m.token_embd());
  std::vector<std::vector<double>> x(T);
  for (size_t t = 0; t < T; ++t)
    x[t].assign(emb.begin() + static_cast<long>(tokens[t]) * d, emb.begin() + static_cast<long>(tokens[t] + 1) * d);
  for (const llama_layer& L : m.layers()) {
    const auto wq = mat(L.wq), wk = mat(L.wk), wv = mat(L.wv), wo = mat(L.wo);
    const auto wg = mat(L.w_gate), wu = mat(L.w_up), wd = mat(L.w_down);
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const auto h = rmsnorm(x[t], L.attn_norm);
      q[t] = matvec(wq, h, d);
      k[t] = matvec(wk, h, nkv * hd);
      v[t] = matvec(wv, h, nkv * hd);
      rope(q[t], nh, static_cast<int>(t));
      rope(k[t], nkv, static_cast<int>(t));
    }
    for (size_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(d), 0.0);
      for (int h = 0; h < nh; ++h) {
        const int kvh = h / (nh / nkv);
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i)
            dot += q[t][static_cast<size_t>(h * hd + i)] * k[j][static_cast<size_t>(kvh * hd + i)];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t j = 0; j <= t; ++j)
          for (int i = 0; i < hd; ++i)
            att[static_cast<size_t>(h * hd + i)] += s[j] / sum * v[j][static_cast<size_t>(kvh * hd + i)];
      }
      const auto o = matvec(wo, att, d);
      for (int i = 0; i < d; ++i) x[t][static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      const auto h = rmsnorm(x[t], L.ffn_norm);
      const auto g = matvec(wg, h, ff), u = matvec(wu, h, ff);
      std::vector<double> a(static_cast<size_t>(ff));
      for (int i = 0; i < ff; ++i)
        a[static_cast<size_t>(i)] =
            g[static_cast<size_t>(i)] / (1 + std::exp(-g[static_cast<size_t>(i)])) * u[static_cast<size_t>(i)];
      const auto dn = matvec(wd, a, d);
      for (int i = 0; i < d; ++i) x[t][static_cast<size_t>(i)] += dn[static_cast<size_t>(i)];
    }
  }
  const auto h = rmsnorm(x[T - 1], m.output_norm());
  return matvec(mat(m.output()), h, hp.n_vocab);
}

double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::fabs(got[i] - want[i]));
    den = std::max(den, std::fabs(want[i]));
  }
  return num / den;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  return rel_error(got, std::vector<double>(want.begin(), want.end()));
}

std::vector<token_id> some_tokens(int n, int32_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<token_id> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<token_id>(3 + rng() % static_cast<uint32_t>(n_vocab - 3));
  return t;
}

/// Logits after prefilling `tokens` in one step.
std::vector<float> engine_logits(engine& e, const std::vector<token_id>& tokens) {
  auto s = e.create_sequence();
  EXPECT_TRUE(s.ok());
  step_item it;
  it.seq = *s;
  it.tokens = tokens;
  it.sample = false;
  it.want_logits = true;
  std::vector<step_result> out;
  const status st = e.step({it}, out);
  EXPECT_TRUE(st.ok()) << st.message();
  e.free_sequence(*s);
  return out.at(0).logits;
}

TEST(CpuEngine, MatchesADoublePrecisionReferenceWithF32Weights) {
  for (const synth_preset* shape : {&odd_shape, &q8_shape}) {
    auto m = load(temp_model(*shape, ggml_type::f32));
    auto e = make(m);
    for (int n : {1, 5, 23}) {
      const auto tokens = some_tokens(n, m->hparams().n_vocab, static_cast<uint32_t>(n));
      const double err = rel_error(engine_logits(*e, tokens), reference_logits(*m, tokens));
      EXPECT_LT(err, 1e-4) << shape->name << ", " << n << " tokens";
    }
    std::remove(m->file().name().c_str());
  }
}

TEST(CpuEngine, MatchesTheReferenceOnDequantisedF16Bf16AndQ8Weights) {
  for (ggml_type type : {ggml_type::f16, ggml_type::bf16, ggml_type::q8_0}) {
    auto m = load(temp_model(q8_shape, type));
    auto e = make(m);
    const auto tokens = some_tokens(17, m->hparams().n_vocab, 3);
    EXPECT_LT(rel_error(engine_logits(*e, tokens), reference_logits(*m, tokens)), 1e-4)
        << ggml_type_name(static_cast<uint32_t>(type));
    std::remove(m->file().name().c_str());
  }
}

TEST(CpuEngine, GenericAndAvx2KernelsAgree) {
  const cpu::kernel_set* avx2 = cpu::avx2_kernels();
  if (!avx2) GTEST_SKIP() << "this CPU has no AVX2/FMA/F16C";
  const cpu::kernel_set& gen = cpu::generic_kernels();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (ggml_type type : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q8_0}) {
    for (int64_t K : {32, 96, 100, 517}) {
      if (type == ggml_type::q8_0 && K % 32) continue;
      for (int64_t T : {1, 2, 5, 9, 70}) {
        const int64_t N = 13;
        std::vector<float> wf(static_cast<size_t>(N * K)), x(static_cast<size_t>(T * K));
        for (auto& v : wf) v = u(rng);
        for (auto& v : x) v = u(rng);
        const ggml_type_traits tr = ggml_traits(type);
        const size_t row_bytes = static_cast<size_t>(K / tr.block_elems * tr.block_bytes);
        std::vector<unsigned char> wb(row_bytes * N);
        for (int64_t r = 0; r < N; ++r) {
          const float* src = wf.data() + r * K;
          unsigned char* dst = wb.data() + r * row_bytes;
          for (int64_t k = 0; k < K; ++k) {
            if (type == ggml_type::f32) std::memcpy(dst + 4 * k, src + k, 4);
            if (type == ggml_type::f16) {
              const uint16_t h = f32_to_f16(src[k]);
              std::memcpy(dst + 2 * k, &h, 2);
            }
            if (type == ggml_type::bf16) {
              const uint16_t h = f32_to_bf16(src[k]);
              std::memcpy(dst + 2 * k, &h, 2);
            }
          }
          if (type == ggml_type::q8_0) quantize_row_q8_0(src, reinterpret_cast<q8_0_block*>(dst), K);
        }
        const weight w{wb.data(), type, K, N, row_bytes};
        std::vector<float> y1(static_cast<size_t>(T * N), 1.0f), y2 = y1;
        gen.matmul(w, x.data(), K, T, y1.data(), N, 0, N, true);
        avx2->matmul(w, x.data(), K, T, y2.data(), N, 0, N, true);
        EXPECT_LT(rel_error(y2, y1), 1e-5) << ggml_type_name(static_cast<uint32_t>(type)) << " K=" << K << " T=" << T;
      }
    }
  }
}

TEST(CpuEngine, BatchedStepEqualsSequencesRunOneAtATime) {
  auto m = load(temp_model(odd_shape, ggml_type::f16));
  const int32_t V = m->hparams().n_vocab;
  const std::vector<std::vector<token_id>> prompts = {some_tokens(3, V, 1), some_tokens(11, V, 2), some_tokens(1, V, 3),
                                                      some_tokens(7, V, 4)};
  const int n_steps = 6;
  // One at a time, greedy.
  std::vector<std::vector<token_id>> solo_tokens;
  std::vector<std::vector<float>> solo_last_logits;
  {
    auto e = make(m, 1);
    for (const auto& p : prompts) {
      auto s = *e->create_sequence();
      std::vector<step_result> out;
      step_item it{s, p, true, true, {}};
      ASSERT_TRUE(e->step({it}, out).ok());
      std::vector<token_id> gen{out[0].token};
      for (int k = 0; k < n_steps; ++k) {
        it.tokens = {gen.back()};
        ASSERT_TRUE(e->step({it}, out).ok());
        gen.push_back(out[0].token);
      }
      solo_tokens.push_back(gen);
      solo_last_logits.push_back(out[0].logits);
    }
  }
  // All together: prefills of different lengths in one step, then decode
  // steps; sequence 2 joins one step late (continuous batching).
  auto e = make(m, 2);
  std::vector<seq_id> seqs;
  for (size_t i = 0; i < prompts.size(); ++i) seqs.push_back(*e->create_sequence());
  std::vector<std::vector<token_id>> gen(prompts.size());
  std::vector<step_item> batch;
  for (size_t i = 0; i < prompts.size(); ++i)
    if (i != 2) batch.push_back({seqs[i], prompts[i], true, true, {}});
  std::vector<step_result> out;
  ASSERT_TRUE(e->step(batch, out).ok());
  for (size_t b = 0, i = 0; i < prompts.size(); ++i)
    if (i != 2) gen[i].push_back(out[b++].token);
  std::vector<std::vector<float>> last(prompts.size());
  for (int k = 0; k <= n_steps; ++k) {
    batch.clear();
    std::vector<size_t> who;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (static_cast<int>(gen[i].size()) > n_steps) continue;
      if (i == 2 && gen[i].empty())
        batch.push_back({seqs[i], prompts[i], true, true, {}});
      else
        batch.push_back({seqs[i], {gen[i].back()}, true, true, {}});
      who.push_back(i);
    }
    if (batch.empty()) break;
    ASSERT_TRUE(e->step(batch, out).ok());
    for (size_t b = 0; b < who.size(); ++b) {
      gen[who[b]].push_back(out[b].token);
      last[who[b]] = out[b].logits;
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(gen[i], solo_tokens[i]) << "sequence " << i;
    EXPECT_LT(rel_error(last[i], solo_last_logits[i]), 1e-5) << "sequence " << i;
  }
}

TEST(CpuEngine, PrefillThenDecodeEqualsFullRecomputation) {
  auto m = load(temp_model(odd_shape, ggml_type::f32));
  auto e = make(m);
  const auto prompt = some_tokens(9, m->hparams().n_vocab, 11);
  auto s = *e->create_sequence();
  std::vector<step_result> out;
  std::vector<token_id> all = prompt;
  step_item it{s, prompt, true, false, {}};
  ASSERT_TRUE(e->step({it}, out).ok());
  for (int k = 0; k < 8; ++k) {
    all.push_back(out[0].token);
    it.tokens = {out[0].token};
    it.want_logits = true;
    ASSERT_TRUE(e->step({it}, out).ok());
  }
  EXPECT_EQ(e->sequence_length(s), static_cast<int32_t>(all.size()));
  const auto full = engine_logits(*e, all);
  EXPECT_LT(rel_error(out[0].logits, full), 1e-5);
}

TEST(CpuEngine, FreedBlocksAreReusedWithIdenticalResults) {
  auto m = load(temp_model(odd_shape, ggml_type::f16));
  auto e = make(m);
  const auto a = some_tokens(40, m->hparams().n_vocab, 21), b = some_tokens(25, m->hparams().n_vocab, 22);
  const auto fresh = engine_logits(*e, b);
  // Fill blocks with sequence a, free them, then b lands on a's old blocks.
  auto s = *e->create_sequence();
  std::vector<step_result> out;
  ASSERT_TRUE(e->step({{s, a, false, false, {}}}, out).ok());
  const int32_t used = e->usage().blocks_used;
  EXPECT_EQ(used, 3);  // 40 tokens in blocks of 16
  e->free_sequence(s);
  EXPECT_EQ(e->usage().blocks_used, 0);
  EXPECT_EQ(engine_logits(*e, b), fresh);
}

TEST(CpuEngine, FullKvCacheIsARetryableErrorThatChangesNothing) {
  auto m = load(temp_model(odd_shape, ggml_type::f16));
  const auto& hp = m->hparams();
  // Exactly 4 blocks (64 tokens) of KV memory: one full-context sequence.
  const int64_t block_bytes = 2ll * hp.n_layer * hp.n_head_kv * hp.head_dim * 16 * 4;
  auto e = make(m, 2, 4 * block_bytes);
  ASSERT_EQ(e->usage().blocks_total, 4);
  auto s1 = *e->create_sequence();
  auto s2 = *e->create_sequence();
  std::vector<step_result> out;
  ASSERT_TRUE(e->step({{s1, some_tokens(40, hp.n_vocab, 1), false, false, {}}}, out).ok());
  const kv_usage before = e->usage();
  const status full = e->step({{s1, {5}, true, false, {}}, {s2, some_tokens(20, hp.n_vocab, 2), true, false, {}}}, out);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.code(), errc::resource);
  EXPECT_NE(full.message().find("KV cache full"), std::string::npos) << full.message();
  EXPECT_EQ(e->usage().blocks_used, before.blocks_used);
  EXPECT_EQ(e->sequence_length(s1), 40);
  EXPECT_EQ(e->sequence_length(s2), 0);
  // Evict s1 (the caller's LRU decision) and the same step goes through.
  ASSERT_TRUE(e->truncate(s1, 16).ok());
  EXPECT_EQ(e->usage().blocks_used, 1);
  const status retry =
      e->step({{s1, {5}, true, false, {}}, {s2, some_tokens(20, hp.n_vocab, 2), true, false, {}}}, out);
  EXPECT_TRUE(retry.ok()) << retry.message();
  EXPECT_EQ(e->sequence_length(s1), 17);
  EXPECT_EQ(e->sequence_length(s2), 20);
}

TEST(CpuEngine, RejectsBadStepsWithoutChangingState) {
  auto m = load(temp_model(odd_shape, ggml_type::f16));
  auto e = make(m);
  auto s = *e->create_sequence();
  std::vector<step_result> out;
  auto expect_invalid = [&](const std::vector<step_item>& b, const std::string& words) {
    const status st = e->step(b, out);
    EXPECT_EQ(st.code(), errc::invalid_argument) << words;
    EXPECT_NE(st.message().find(words), std::string::npos) << st.message();
    EXPECT_EQ(e->sequence_length(s), 0);
    EXPECT_EQ(e->usage().blocks_used, 0);
  };
  expect_invalid({{s + 5, {1}, true, false, {}}}, "unknown sequence");
  expect_invalid({{s, {1}, true, false, {}}, {s, {2}, true, false, {}}}, "appears twice");
  expect_invalid({{s, {300}, true, false, {}}}, "outside the vocabulary");
  expect_invalid({{s, {}, true, false, {}}}, "no tokens");
  expect_invalid({{s, some_tokens(65, 300, 1), true, false, {}}}, "over the context");
  sampling_params bad;
  bad.temperature = -1;
  expect_invalid({{s, {1}, true, false, bad}}, "temperature");
}

TEST(Sampling, PhiloxMatchesTheRandom123KnownAnswers) {
  const philox_out zero = philox4x32(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const philox_out ones = philox4x32(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Sampling, IsDeterministicPerSeedAndPositionAndRespectsFilters) {
  std::vector<float> logits(1000);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 2);
  for (auto& l : logits) l = nd(rng);
  const int32_t best = argmax(logits.data(), 1000);
  std::vector<std::pair<float, int32_t>> scratch;
  sampling_params p;
  EXPECT_EQ(sample_token(logits.data(), 1000, p, 0, scratch), best);  // greedy
  p.temperature = 1.0f;
  p.seed = 42;
  std::set<int32_t> seen;
  for (uint32_t pos = 0; pos < 200; ++pos) {
    const int32_t a = sample_token(logits.data(), 1000, p, pos, scratch);
    EXPECT_EQ(a, sample_token(logits.data(), 1000, p, pos, scratch));
    seen.insert(a);
  }
  EXPECT_GT(seen.size(), 10u);  // it really samples
  p.top_k = 5;
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  for (uint32_t pos = 0; pos < 200; ++pos)
    EXPECT_GE(logits[static_cast<size_t>(sample_token(logits.data(), 1000, p, pos, scratch))], sorted[4]);
  p.top_k = 0;
  p.top_p = 1e-6f;
  for (uint32_t pos = 0; pos < 50; ++pos) EXPECT_EQ(sample_token(logits.data(), 1000, p, pos, scratch), best);
  p.top_p = 1.0f;
  p.temperature = 1e-4f;  // a very low temperature is greedy in effect
  EXPECT_EQ(sample_token(logits.data(), 1000, p, 7, scratch), best);
  std::vector<float> ties{1.0f, 3.0f, 3.0f, 0.0f};
  EXPECT_EQ(argmax(ties.data(), 4), 1);
}

TEST(Synth, SameArgumentsGiveTheSameBytesOnAnyThreadCount) {
  auto write = [](int threads, uint64_t seed) {
    const std::string path = ::testing::TempDir() + "brigade_synth_" + std::to_string(threads) + "_" +
                             std::to_string(seed) + "_" + std::to_string(::getpid()) + ".gguf";
    synth_options o;
    o.preset = "tiny";
    o.seed = seed;
    o.type = ggml_type::q8_0;
    o.n_threads = threads;
    EXPECT_TRUE(synthesize_model(o, path).ok());
    std::FILE* f = std::fopen(path.c_str(), "rb");
    std::string bytes;
    char buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
    std::fclose(f);
    std::remove(path.c_str());
    return bytes;
  };
  const std::string one = write(1, 9);
  EXPECT_GT(one.size(), 100000u);
  EXPECT_EQ(one, write(3, 9));
  EXPECT_NE(one, write(1, 10));
}

}  // namespace
}  // namespace brigade
