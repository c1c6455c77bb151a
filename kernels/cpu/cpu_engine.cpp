// The CPU backend of the engine (see engine.hpp for the contract).
//
// One step, for T tokens from all items together (llama.cpp's graph, by hand):
//   x = embed(tokens)                                   x: (T, n_embd)
//   per layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = h Wq, h Wk, h Wv                        q: (T, n_embd)  k, v: (T, n_kv * head_dim)
//     rope(q, k) at each token's position; k, v -> cache slots
//     a = softmax(q K^T / sqrt(head_dim)) V  per head, over the token's own sequence (causal)
//     x += a Wo
//     h = rmsnorm(x) * ffn_norm
//     x += (silu(h Wgate) * (h Wup)) Wdown
//   logits = (rmsnorm(x) * output_norm) Wout            only for the last token of sampled items
// Matrix products run on the thread pool split by weight rows; attention is
// split by (token, head). Reductions that llama.cpp does in double (RMS
// norm, softmax sums) are done in double here too.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.hpp"
#include "kernels/engine/engine.hpp"
#include "kernels/base/thread_pool.hpp"

namespace brigade {

namespace {

class cpu_engine final : public paged_engine {
 public:
  cpu_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg, engine_size size)
      : paged_engine(std::move(model), cfg, size), pool_(cfg.n_threads), kernels_(cpu::best_kernels()) {
    const int32_t n_blocks = size.n_blocks;
    const auto& hp = model_->hparams();
    kv_dim_ = static_cast<int64_t>(hp.n_head_kv) * hp.head_dim;
    const size_t n_slots = static_cast<size_t>(n_blocks) * static_cast<size_t>(cfg.kv_block_size);
    // Left uninitialised: a slot is written before any step reads it, and
    // untouched pages cost no memory.
    for (int32_t l = 0; l < hp.n_layer; ++l) {
      k_cache_.emplace_back(new float[n_slots * static_cast<size_t>(kv_dim_)]);
      v_cache_.emplace_back(new float[n_slots * static_cast<size_t>(kv_dim_)]);
    }
    scores_.resize(static_cast<size_t>(pool_.size()));
    sample_scratch_.resize(static_cast<size_t>(pool_.size()));
    slots_.resize(static_cast<size_t>(pool_.size()));
    const int32_t group = hp.n_head / hp.n_head_kv;
    for (auto& s : scores_) s.resize(static_cast<size_t>(n_ctx_) * static_cast<size_t>(group));
  }

  std::string backend_name() const override {
    return std::string("cpu (") + kernels_.name + ", " + std::to_string(pool_.size()) + " threads)";
  }

  status step(const std::vector<step_item>& batch, std::vector<step_result>& out) override;

 private:
  void rmsnorm(const float* x, const weight& w, float* y, int64_t n_rows) const;
  void rope(float* v, int64_t n_rows, int64_t row_stride, int32_t n_heads) const;
  void attention(int32_t layer, int64_t n_tokens);

  thread_pool pool_;
  const cpu::kernel_set& kernels_;
  int64_t kv_dim_ = 0;
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;  // per layer: (slot, n_kv, head_dim)

  // Per-step buffers, reused between steps.
  std::vector<seq_id> tok_seq_;
  std::vector<int32_t> tok_pos_;
  std::vector<float> rope_cs_;  // (T, head_dim / 2, 2): cos, sin
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_;
  std::vector<float> hout_, logits_;
  std::vector<std::vector<float>> scores_;   // per thread: (group, n_ctx)
  std::vector<std::vector<int32_t>> slots_;  // per thread: cache slots of one token's positions
  std::vector<std::vector<std::pair<float, int32_t>>> sample_scratch_;  // per thread
};

void cpu_engine::rmsnorm(const float* x, const weight& w, float* y, int64_t n_rows) const {
  const int64_t d = w.n_cols;
  const float* g = reinterpret_cast<const float*>(w.data);
  const float eps = model_->hparams().rms_eps;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(d)) + eps);
    for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] * scale) * g[i];
  }
}

void cpu_engine::rope(float* v, int64_t n_rows, int64_t row_stride, int32_t n_heads) const {
  const int32_t hd = model_->hparams().head_dim;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* cs = rope_cs_.data() + r * hd;
    for (int32_t h = 0; h < n_heads; ++h) {
      float* p = v + r * row_stride + static_cast<int64_t>(h) * hd;
      for (int32_t i = 0; i < hd / 2; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = p[2 * i], x1 = p[2 * i + 1];
        p[2 * i] = x0 * c - x1 * s;
        p[2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

void cpu_engine::attention(int32_t layer, int64_t n_tokens) {
  const auto& hp = model_->hparams();
  const int32_t hd = hp.head_dim, group = hp.n_head / hp.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* kc = k_cache_[static_cast<size_t>(layer)].get();
  const float* vc = v_cache_[static_cast<size_t>(layer)].get();
  const int64_t d = hp.n_embd;
  // One task per (token, KV head): its query heads share every K/V row load.
  pool_.run([&](int ti, int nt) {
    int64_t b, e;
    thread_pool::split(n_tokens * hp.n_head_kv, ti, nt, 1, b, e);
    float* sc = scores_[static_cast<size_t>(ti)].data();
    std::vector<int32_t>& slots = slots_[static_cast<size_t>(ti)];
    int64_t slots_for = -1;
    for (int64_t task = b; task < e; ++task) {
      const int64_t i = task / hp.n_head_kv;
      const int32_t kvh = static_cast<int32_t>(task % hp.n_head_kv);
      const seq_id s = tok_seq_[static_cast<size_t>(i)];
      const int32_t n_pos = tok_pos_[static_cast<size_t>(i)] + 1;  // causal: itself and earlier
      if (slots_for != i) {
        slots.resize(static_cast<size_t>(n_pos));
        for (int32_t j = 0; j < n_pos; ++j) slots[static_cast<size_t>(j)] = kv_.slot(s, j);
        slots_for = i;
      }
      const int64_t h0 = static_cast<int64_t>(kvh) * group;
      kernels_.attend(q_.data() + i * d + h0 * hd, group, hd, kc + static_cast<int64_t>(kvh) * hd,
                      vc + static_cast<int64_t>(kvh) * hd, slots.data(), n_pos, kv_dim_, scale, sc,
                      att_.data() + i * d + h0 * hd);
    }
  });
}

status cpu_engine::step(const std::vector<step_item>& batch, std::vector<step_result>& out) {
  out.clear();
  if (batch.empty()) return {};
  int64_t T = 0;
  if (auto s = validate_and_reserve(batch, T); !s) return s;

  const auto& hp = model_->hparams();
  const int64_t d = hp.n_embd, ff = hp.n_ff, hd = hp.head_dim;
  tok_seq_.resize(static_cast<size_t>(T));
  tok_pos_.resize(static_cast<size_t>(T));
  x_.resize(static_cast<size_t>(T * d));
  {
    int64_t i = 0;
    const weight& emb = model_->token_embd();
    for (const auto& it : batch) {
      const int32_t base = kv_.length(it.seq);
      for (size_t j = 0; j < it.tokens.size(); ++j, ++i) {
        tok_seq_[static_cast<size_t>(i)] = it.seq;
        tok_pos_[static_cast<size_t>(i)] = base + static_cast<int32_t>(j);
        dequantize_row(emb.type, emb.data + static_cast<size_t>(it.tokens[j]) * emb.row_bytes, x_.data() + i * d, d);
      }
    }
  }
  // RoPE angles as llama.cpp computes them: theta = pos * scale^i, in float.
  rope_cs_.resize(static_cast<size_t>(T * hd));
  const float theta_scale = std::pow(hp.rope_theta, -2.0f / static_cast<float>(hd));
  for (int64_t i = 0; i < T; ++i) {
    float theta = static_cast<float>(tok_pos_[static_cast<size_t>(i)]);
    for (int64_t k = 0; k < hd / 2; ++k) {
      rope_cs_[static_cast<size_t>(i * hd + 2 * k)] = std::cos(theta);
      rope_cs_[static_cast<size_t>(i * hd + 2 * k + 1)] = std::sin(theta);
      theta *= theta_scale;
    }
  }

  h_.resize(static_cast<size_t>(T * d));
  q_.resize(static_cast<size_t>(T * d));
  k_.resize(static_cast<size_t>(T * kv_dim_));
  v_.resize(static_cast<size_t>(T * kv_dim_));
  att_.resize(static_cast<size_t>(T * d));
  gate_.resize(static_cast<size_t>(T * ff));
  up_.resize(static_cast<size_t>(T * ff));
  const auto& mm = kernels_.matmul;
  auto split_rows = [](const weight& w, int i, int n, int64_t& b, int64_t& e) {
    thread_pool::split(w.n_rows, i, n, 12, b, e);
  };

  for (int32_t l = 0; l < hp.n_layer; ++l) {
    const llama_layer& L = model_->layers()[static_cast<size_t>(l)];
    rmsnorm(x_.data(), L.attn_norm, h_.data(), T);
    pool_.run([&](int i, int n) {
      int64_t b, e;
      split_rows(L.wq, i, n, b, e);
      mm(L.wq, h_.data(), d, T, q_.data(), d, b, e, false);
      split_rows(L.wk, i, n, b, e);
      mm(L.wk, h_.data(), d, T, k_.data(), kv_dim_, b, e, false);
      split_rows(L.wv, i, n, b, e);
      mm(L.wv, h_.data(), d, T, v_.data(), kv_dim_, b, e, false);
    });
    rope(q_.data(), T, d, hp.n_head);
    rope(k_.data(), T, kv_dim_, hp.n_head_kv);
    float* kc = k_cache_[static_cast<size_t>(l)].get();
    float* vc = v_cache_[static_cast<size_t>(l)].get();
    for (int64_t i = 0; i < T; ++i) {
      const int64_t slot = kv_.slot(tok_seq_[static_cast<size_t>(i)], tok_pos_[static_cast<size_t>(i)]);
      std::copy_n(k_.data() + i * kv_dim_, kv_dim_, kc + slot * kv_dim_);
      std::copy_n(v_.data() + i * kv_dim_, kv_dim_, vc + slot * kv_dim_);
    }
    attention(l, T);
    pool_.run([&](int i, int n) {
      int64_t b, e;
      split_rows(L.wo, i, n, b, e);
      mm(L.wo, att_.data(), d, T, x_.data(), d, b, e, true);
    });
    rmsnorm(x_.data(), L.ffn_norm, h_.data(), T);
    pool_.run([&](int i, int n) {
      int64_t b, e;
      split_rows(L.w_gate, i, n, b, e);
      mm(L.w_gate, h_.data(), d, T, gate_.data(), ff, b, e, false);
      mm(L.w_up, h_.data(), d, T, up_.data(), ff, b, e, false);
      // SwiGLU on this thread's own columns, for every token.
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = b; c < e; ++c) {
          const float g = gate_[static_cast<size_t>(t * ff + c)];
          gate_[static_cast<size_t>(t * ff + c)] = g / (1.0f + std::exp(-g)) * up_[static_cast<size_t>(t * ff + c)];
        }
    });
    pool_.run([&](int i, int n) {
      int64_t b, e;
      split_rows(L.w_down, i, n, b, e);
      mm(L.w_down, gate_.data(), ff, T, x_.data(), d, b, e, true);
    });
  }

  // Logits for the last token of each item that samples or asks for them.
  std::vector<int64_t> rows;
  std::vector<size_t> row_item;
  {
    int64_t end = 0;
    for (size_t k = 0; k < batch.size(); ++k) {
      end += static_cast<int64_t>(batch[k].tokens.size());
      if (batch[k].sample || batch[k].want_logits) {
        rows.push_back(end - 1);
        row_item.push_back(k);
      }
    }
  }
  const int64_t n_out = static_cast<int64_t>(rows.size());
  const int64_t n_vocab = hp.n_vocab;
  out.resize(batch.size());
  if (n_out > 0) {
    hout_.resize(static_cast<size_t>(n_out * d));
    for (int64_t r = 0; r < n_out; ++r)
      rmsnorm(x_.data() + rows[static_cast<size_t>(r)] * d, model_->output_norm(), hout_.data() + r * d, 1);
    logits_.resize(static_cast<size_t>(n_out * n_vocab));
    const weight& wout = model_->output();
    pool_.run([&](int i, int n) {
      int64_t b, e;
      thread_pool::split(wout.n_rows, i, n, 12, b, e);
      mm(wout, hout_.data(), d, n_out, logits_.data(), n_vocab, b, e, false);
    });
    // Sampling: items split across the threads, each with its own scratch.
    pool_.run([&](int i, int n) {
      int64_t b, e;
      thread_pool::split(n_out, i, n, 1, b, e);
      for (int64_t r = b; r < e; ++r) {
        const step_item& it = batch[row_item[static_cast<size_t>(r)]];
        step_result& res = out[row_item[static_cast<size_t>(r)]];
        const float* lg = logits_.data() + r * n_vocab;
        if (it.sample) {
          const uint32_t position = static_cast<uint32_t>(kv_.length(it.seq) + static_cast<int32_t>(it.tokens.size()));
          res.token = sample_token(lg, static_cast<int32_t>(n_vocab), it.sampling, position,
                                   sample_scratch_[static_cast<size_t>(i)]);
        }
        if (it.want_logits) res.logits.assign(lg, lg + n_vocab);
      }
    });
  }
  for (const auto& it : batch) kv_.set_length(it.seq, kv_.length(it.seq) + static_cast<int32_t>(it.tokens.size()));
  return {};
}

}  // namespace

result<std::unique_ptr<engine>> make_cpu_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg) {
  if (!model) return status{errc::invalid_argument, "make_cpu_engine: no model"};
  auto size = size_engine(model->hparams(), cfg);
  if (!size) return size.error();
  return std::unique_ptr<engine>(new cpu_engine(std::move(model), cfg, *size));
}

}  // namespace brigade
