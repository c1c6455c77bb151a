// The CUDA backend of the engine (engine.hpp's contract; kernels in
// kernels.cuh). One step, for T tokens of all items together, on one stream:
//
//   x = embed(tokens)
//   per layer l:   h = rmsnorm(x [+= tmp of layer l-1]) * attn_norm      add_rmsnorm
//                  q, k, v = h Wq, h Wk, h Wv                              3 x matmul
//                  rope(q, k); k, v -> cache slots                         rope_kv
//                  att = paged GQA attention (decode and prefill alike)    attention
//                  tmp = att Wo;  h = rmsnorm(x += tmp) * ffn_norm         matmul, add_rmsnorm
//                  ff = silu(h Wgate) * (h Wup)                            matmul (SwiGLU fused)
//                  tmp = ff Wdown                                          matmul
//   hout = rmsnorm(x += tmp) * output_norm, for output rows only          add_rmsnorm (gather)
//   logits = hout Wout; tokens = sample(logits)                            matmul, sample
//
// Only the sampled token ids (and logits where asked) come back to the host.
// The KV block tables stay on the host (kv_block_pool, as on the CPU) and go
// to the device with the step's inputs. Every device buffer is allocated once
// at its largest size, so its address never changes; steps of up to 128
// tokens are padded to a power of two (padding tokens compute into a scratch
// KV block and are never read back), so the launches of a step depend only on
// its bucket: what CUDA graph capture needs.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "kernels/cuda/device.hpp"
#include "kernels/cuda/kernels.cuh"
#include "kernels/engine/engine.hpp"

namespace brigade::cuda {

namespace {

status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return {};
  return {errc::device, std::string("CUDA ") + what + ": " + cudaGetErrorString(e)};
}

#define BRIGADE_CUDA_TRY(call, what) \
  if (status s_ = check((call), what); !s_) return s_

struct dweight {
  const unsigned char* data = nullptr;
  ggml_type type = ggml_type::f32;
  int64_t n_cols = 0, n_rows = 0;
  size_t row_bytes = 0;
};

struct dlayer {
  dweight attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
  dweight wqkv;  // wq, wk, wv back to back (one launch) when they share a type; else data is null
};

/// The step's inputs, laid out in one host (pinned) and one device buffer so
/// they go over in one copy.
struct input_layout {
  size_t tokens, pos, slot, npos, boff, blocks, rows, desc, bytes;
};

constexpr int32_t pad_limit = 128;  // steps up to this many tokens are padded to a power of two

class cuda_engine final : public paged_engine {
 public:
  cuda_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg, int device, engine_size size)
      : paged_engine(std::move(model), cfg, size), device_(device), n_blocks_(size.n_blocks) {}

  ~cuda_engine() override {
    cudaSetDevice(device_);
    if (failed_) {
      // A step failed on the device: the context may hold a sticky error (an
      // illegal address), after which no call on it succeeds. Resetting the
      // device frees everything of this engine (one engine per device) and
      // lets the next engine start on a clean context.
      cudaDeviceReset();
      return;
    }
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    if (stream_) cudaStreamDestroy(stream_);
    for (void* p : allocations_) cudaFree(p);
    if (host_in_) cudaFreeHost(host_in_);
    if (host_out_) cudaFreeHost(host_out_);
  }

  status init();

  std::string backend_name() const override { return "cuda:" + std::to_string(device_) + " (" + device_name_ + ")"; }

  status step(const std::vector<step_item>& batch, std::vector<step_result>& out) override;

 private:
  status step_on_device(const std::vector<step_item>& batch, std::vector<step_result>& out, int64_t n_tokens);
  template <typename T>
  status alloc(T*& p, size_t n) {
    void* v = nullptr;
    BRIGADE_CUDA_TRY(cudaMalloc(&v, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
    allocations_.push_back(v);
    p = static_cast<T*>(v);
    return {};
  }
  status upload(const weight& w, dweight& d, unsigned char*& cursor);
  status enqueue(int64_t T, int64_t n_out, bool any_sample);
  status run(int64_t T, int64_t n_out, bool any_sample);

  int device_;
  std::string device_name_;
  int32_t n_blocks_;
  cudaStream_t stream_ = nullptr;
  std::vector<void*> allocations_;

  // Weights (one allocation) and the KV cache (n_blocks + 1 blocks: the last
  // is the padding tokens' scratch).
  dweight token_embd_, output_norm_, output_;
  std::vector<dlayer> layers_;
  std::vector<float*> k_cache_, v_cache_;
  int64_t kv_dim_ = 0;
  int64_t ldqkv_ = 0;  // q, k, v of a token side by side: d + 2 kv_dim floats
  int sm_count_ = 1;
  float theta_scale_ = 1.0f;

  // Fixed-address activations, sized for t_cap_ tokens and rows_cap_ output rows.
  int64_t t_cap_ = 0, rows_cap_ = 0;
  int32_t pow2_vocab_ = 1;
  float *x_ = nullptr, *h_ = nullptr, *qkv_ = nullptr, *att_ = nullptr, *part_ = nullptr;
  float *tmp_ = nullptr, *ff_ = nullptr, *hout_ = nullptr, *logits_ = nullptr;
  uint64_t *keys_ = nullptr, *probs_ = nullptr;
  float* mm_scratch_ = nullptr;  // split-K parts of the tensor-core matmul
  size_t mm_scratch_floats_ = 0;
  int32_t* out_tokens_ = nullptr;

  // Step inputs.
  input_layout in_{};
  unsigned char* host_in_ = nullptr;  // pinned
  unsigned char* dev_in_ = nullptr;
  int32_t* host_out_ = nullptr;  // pinned: sampled ids

  // CUDA graphs of whole steps (input copy, every kernel, the copy of the
  // sampled ids), one per (tokens, output rows, sampling) of a padded step:
  // the buffers never move, so a graph replays any step of its shape.
  // BRIGADE_CUDA_GRAPHS=0 turns them off (for comparisons).
  bool use_graphs_ = true;
  bool failed_ = false;  // a step failed on the device (see the destructor)
  std::map<std::tuple<int64_t, int64_t, bool>, cudaGraphExec_t> graphs_;
};

status cuda_engine::upload(const weight& w, dweight& d, unsigned char*& cursor) {
  d.type = w.type;
  d.n_cols = w.n_cols;
  d.n_rows = w.n_rows;
  d.row_bytes = w.row_bytes;
  d.data = cursor;
  const size_t bytes = w.row_bytes * static_cast<size_t>(w.n_rows);
  BRIGADE_CUDA_TRY(cudaMemcpy(cursor, w.data, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
  cursor += (bytes + 255) / 256 * 256;
  return {};
}

status cuda_engine::init() {
  int n_dev = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&n_dev); e != cudaSuccess)
    return {errc::device, "cuda:" + std::to_string(device_) + ": no usable CUDA device (" + cudaGetErrorString(e) +
                              "); use the cpu device"};
  if (device_ < 0 || device_ >= n_dev)
    return {errc::invalid_argument,
            "cuda:" + std::to_string(device_) + ": this machine has " + std::to_string(n_dev) + " CUDA device(s)"};
  BRIGADE_CUDA_TRY(cudaSetDevice(device_), "cudaSetDevice");
  cudaDeviceProp prop{};
  BRIGADE_CUDA_TRY(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  device_name_ = prop.name;
  sm_count_ = prop.multiProcessorCount;
  if (const char* g = std::getenv("BRIGADE_CUDA_GRAPHS")) use_graphs_ = std::string(g) != "0";
  BRIGADE_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  const auto& hp = model_->hparams();
  if (hp.head_dim > k::att_max_per_lane * 32)
    return {errc::unsupported, "cuda: head size " + std::to_string(hp.head_dim) + " is over 256"};
  if (hp.head_dim % 2 != 0) return {errc::unsupported, "cuda: odd head size " + std::to_string(hp.head_dim)};

  // Weights: one allocation, each tensor 256-byte aligned.
  auto size_of = [](const weight& w) { return (w.row_bytes * static_cast<size_t>(w.n_rows) + 255) / 256 * 256; };
  size_t total = size_of(model_->token_embd()) + size_of(model_->output_norm());
  if (!model_->tied_output()) total += size_of(model_->output());
  for (const auto& L : model_->layers()) {
    for (const weight* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
      total += size_of(*w);
    total += 256;  // a fused QKV block may round up once more than the three apart
  }
  unsigned char* cursor = nullptr;
  if (auto s = alloc(cursor, total); !s) return s;
  if (auto s = upload(model_->token_embd(), token_embd_, cursor); !s) return s;
  if (auto s = upload(model_->output_norm(), output_norm_, cursor); !s) return s;
  if (model_->tied_output())
    output_ = token_embd_;
  else if (auto s = upload(model_->output(), output_, cursor); !s)
    return s;
  for (size_t l = 0; l < model_->layers().size(); ++l) {
    const auto& L = model_->layers()[l];
    if (L.w_gate.type != L.w_up.type || L.w_gate.row_bytes != L.w_up.row_bytes)
      return {errc::unsupported, "cuda: layer " + std::to_string(l) + " stores ffn_gate as " +
                                     ggml_type_name(static_cast<uint32_t>(L.w_gate.type)) + " and ffn_up as " +
                                     ggml_type_name(static_cast<uint32_t>(L.w_up.type)) +
                                     "; the fused SwiGLU needs one type (convert the file, or use the cpu device)"};
    dlayer D;
    // Q, K and V back to back when they share a type: one matmul for all
    // three (wq, wk, wv then point into that block).
    const bool fuse = L.wq.type == L.wk.type && L.wq.type == L.wv.type && L.wq.row_bytes == L.wk.row_bytes &&
                      L.wq.row_bytes == L.wv.row_bytes;
    if (fuse) {
      unsigned char* at = cursor;
      for (auto [w, dw] : {std::pair{&L.wq, &D.wq}, {&L.wk, &D.wk}, {&L.wv, &D.wv}}) {
        const size_t bytes = w->row_bytes * static_cast<size_t>(w->n_rows);
        *dw = {at, w->type, w->n_cols, w->n_rows, w->row_bytes};
        BRIGADE_CUDA_TRY(cudaMemcpy(at, w->data, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
        at += bytes;
      }
      D.wqkv = D.wq;
      D.wqkv.n_rows = L.wq.n_rows + L.wk.n_rows + L.wv.n_rows;
      cursor += (static_cast<size_t>(at - cursor) + 255) / 256 * 256;
    }
    const weight* src[] = {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down};
    dweight* dst[] = {&D.attn_norm, &D.wq, &D.wk, &D.wv, &D.wo, &D.ffn_norm, &D.w_gate, &D.w_up, &D.w_down};
    for (int i = 0; i < 9; ++i) {
      if (fuse && i >= 1 && i <= 3) continue;
      if (auto s = upload(*src[i], *dst[i], cursor); !s) return s;
    }
    layers_.push_back(D);
  }

  // KV cache: per layer (n_blocks + 1) * block_size slots of kv_dim floats.
  kv_dim_ = static_cast<int64_t>(hp.n_head_kv) * hp.head_dim;
  const size_t slots = (static_cast<size_t>(n_blocks_) + 1) * static_cast<size_t>(cfg_.kv_block_size);
  k_cache_.resize(static_cast<size_t>(hp.n_layer));
  v_cache_.resize(static_cast<size_t>(hp.n_layer));
  for (int32_t l = 0; l < hp.n_layer; ++l) {
    if (auto s = alloc(k_cache_[static_cast<size_t>(l)], slots * static_cast<size_t>(kv_dim_)); !s) return s;
    if (auto s = alloc(v_cache_[static_cast<size_t>(l)], slots * static_cast<size_t>(kv_dim_)); !s) return s;
  }
  theta_scale_ = std::pow(hp.rope_theta, -2.0f / static_cast<float>(hp.head_dim));  // as the CPU backend

  // Activations at their largest.
  t_cap_ = cfg_.max_step_tokens <= pad_limit ? k::pow2_at_least(cfg_.max_step_tokens) : cfg_.max_step_tokens;
  rows_cap_ = std::min<int64_t>(t_cap_, cfg_.max_sequences);
  pow2_vocab_ = k::pow2_at_least(hp.n_vocab);
  const size_t T = static_cast<size_t>(t_cap_), R = static_cast<size_t>(rows_cap_);
  const size_t d = static_cast<size_t>(hp.n_embd), ff = static_cast<size_t>(hp.n_ff);
  for (float** p : {&x_, &h_, &att_, &tmp_})
    if (auto s = alloc(*p, T * d); !s) return s;
  ldqkv_ = static_cast<int64_t>(d) + 2 * kv_dim_;
  if (auto s = alloc(qkv_, T * static_cast<size_t>(ldqkv_)); !s) return s;
  // Attention partials for the step sizes that split the positions.
  size_t part = 0;
  for (int64_t t = 1; t <= t_cap_; ++t) {
    const int sp = k::attention_splits(t, hp.n_head, sm_count_);
    if (sp > 1)
      part = std::max(part, static_cast<size_t>(t * hp.n_head * sp * (hp.head_dim + 2)));
    else
      break;  // more tokens never split again
  }
  if (auto s = alloc(part_, part); !s) return s;
  // Split-K parts: the most any projection of any step size needs. Only F16
  // weights take the tensor-core path, and the split depends on nothing else
  // of the type, so every shape is sized as F16 (layers may mix types).
  {
    const int64_t D = hp.n_embd, F = hp.n_ff;
    const int64_t shapes[][4] = {// K, N, factor (2: SwiGLU's two parts), largest T
                                 {D, ldqkv_, 1, t_cap_}, {D, D, 1, t_cap_}, {D, kv_dim_, 1, t_cap_},
                                 {D, F, 2, t_cap_},      {F, D, 1, t_cap_}, {D, hp.n_vocab, 1, rows_cap_}};
    for (const auto& sh : shapes)
      for (int64_t t = 16; t <= sh[3]; ++t) {
        const int splits = k::matmul_splits(ggml_type::f16, sh[0], sh[1], t, sm_count_);
        if (splits > 1)
          mm_scratch_floats_ = std::max(mm_scratch_floats_, static_cast<size_t>(splits * t * sh[1] * sh[2]));
      }
  }
  if (auto s = alloc(mm_scratch_, mm_scratch_floats_); !s) return s;
  if (auto s = alloc(ff_, T * ff); !s) return s;
  if (auto s = alloc(hout_, R * d); !s) return s;
  if (auto s = alloc(logits_, R * static_cast<size_t>(hp.n_vocab)); !s) return s;
  if (auto s = alloc(probs_, R * static_cast<size_t>(hp.n_vocab)); !s) return s;
  if (auto s = alloc(keys_, R * static_cast<size_t>(pow2_vocab_)); !s) return s;
  if (auto s = alloc(out_tokens_, R); !s) return s;

  // Inputs: tokens, positions, slots, npos, block-table offsets (T each),
  // block ids (every block once, plus the scratch block), output rows (R),
  // sampling descriptors (R).
  auto align = [](size_t v) { return (v + 15) / 16 * 16; };
  size_t off = 0;
  for (size_t* f : {&in_.tokens, &in_.pos, &in_.slot, &in_.npos, &in_.boff}) {
    *f = off;
    off = align(off + T * sizeof(int32_t));
  }
  in_.blocks = off;
  off = align(off + (static_cast<size_t>(n_blocks_) + 1) * sizeof(int32_t));
  in_.rows = off;
  off = align(off + R * sizeof(int32_t));
  in_.desc = off;
  off = align(off + R * sizeof(k::sample_desc));
  in_.bytes = off;
  BRIGADE_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&host_in_), in_.bytes), "cudaMallocHost");
  BRIGADE_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&host_out_), R * sizeof(int32_t)), "cudaMallocHost");
  if (auto s = alloc(dev_in_, in_.bytes); !s) return s;
  return {};
}

status cuda_engine::enqueue(int64_t T, int64_t n_out, bool any_sample) {
  const auto& hp = model_->hparams();
  const int64_t d = hp.n_embd, ff = hp.n_ff, hd = hp.head_dim;
  const auto* in = dev_in_;
  const auto* tokens = reinterpret_cast<const int32_t*>(in + in_.tokens);
  const auto* pos = reinterpret_cast<const int32_t*>(in + in_.pos);
  const auto* slot = reinterpret_cast<const int32_t*>(in + in_.slot);
  const auto* npos = reinterpret_cast<const int32_t*>(in + in_.npos);
  const auto* boff = reinterpret_cast<const int32_t*>(in + in_.boff);
  const auto* blocks = reinterpret_cast<const int32_t*>(in + in_.blocks);
  const auto* rows = reinterpret_cast<const int32_t*>(in + in_.rows);
  const auto* desc = reinterpret_cast<const k::sample_desc*>(in + in_.desc);
  cudaStream_t st = stream_;
  auto mm = [&](const dweight& w, const dweight* w2, const float* x, int64_t ldx, int64_t n_tok, float* y,
                int64_t ldy) {
    return k::matmul(w.type, w.data, w2 ? w2->data : nullptr, w.row_bytes, w.n_cols, w.n_rows, x, ldx, n_tok, y, ldy,
                     false, st, mm_scratch_, mm_scratch_floats_, sm_count_);
  };
  BRIGADE_CUDA_TRY(k::embed(token_embd_.type, token_embd_.data, token_embd_.row_bytes, tokens, x_, T, d, st), "embed");
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int32_t l = 0; l < hp.n_layer; ++l) {
    const dlayer& L = layers_[static_cast<size_t>(l)];
    const float* attn_norm = reinterpret_cast<const float*>(L.attn_norm.data);
    BRIGADE_CUDA_TRY(k::add_rmsnorm(x_, l == 0 ? nullptr : tmp_, attn_norm, h_, nullptr, T, d, hp.rms_eps, st),
                     "rmsnorm");
    if (L.wqkv.data) {
      BRIGADE_CUDA_TRY(mm(L.wqkv, nullptr, h_, d, T, qkv_, ldqkv_), "matmul (qkv)");
    } else {
      BRIGADE_CUDA_TRY(mm(L.wq, nullptr, h_, d, T, qkv_, ldqkv_), "matmul (q)");
      BRIGADE_CUDA_TRY(mm(L.wk, nullptr, h_, d, T, qkv_ + d, ldqkv_), "matmul (k)");
      BRIGADE_CUDA_TRY(mm(L.wv, nullptr, h_, d, T, qkv_ + d + kv_dim_, ldqkv_), "matmul (v)");
    }
    float* kc = k_cache_[static_cast<size_t>(l)];
    float* vc = v_cache_[static_cast<size_t>(l)];
    BRIGADE_CUDA_TRY(k::rope_kv(qkv_, qkv_ + d, qkv_ + d + kv_dim_, kc, vc, pos, slot, T, hp.n_head, hp.n_head_kv,
                                static_cast<int>(hd), ldqkv_, ldqkv_, kv_dim_, theta_scale_, st),
                     "rope");
    BRIGADE_CUDA_TRY(k::attention(qkv_, kc, vc, att_, npos, boff, blocks, cfg_.kv_block_size, T, hp.n_head,
                                  hp.n_head / hp.n_head_kv, static_cast<int>(hd), ldqkv_, d, kv_dim_, scale,
                                  k::attention_splits(T, hp.n_head, sm_count_), part_, st),
                     "attention");
    BRIGADE_CUDA_TRY(mm(L.wo, nullptr, att_, d, T, tmp_, d), "matmul (o)");
    BRIGADE_CUDA_TRY(
        k::add_rmsnorm(x_, tmp_, reinterpret_cast<const float*>(L.ffn_norm.data), h_, nullptr, T, d, hp.rms_eps, st),
        "rmsnorm");
    BRIGADE_CUDA_TRY(mm(L.w_gate, &L.w_up, h_, d, T, ff_, ff), "matmul (gate, up)");
    BRIGADE_CUDA_TRY(mm(L.w_down, nullptr, ff_, ff, T, tmp_, d), "matmul (down)");
  }
  if (n_out == 0) return {};
  BRIGADE_CUDA_TRY(k::add_rmsnorm(x_, tmp_, reinterpret_cast<const float*>(output_norm_.data), hout_, rows, n_out, d,
                                  hp.rms_eps, st),
                   "rmsnorm (output)");
  BRIGADE_CUDA_TRY(mm(output_, nullptr, hout_, d, n_out, logits_, hp.n_vocab), "matmul (logits)");
  if (any_sample)
    BRIGADE_CUDA_TRY(k::sample(logits_, hp.n_vocab, desc, keys_, probs_, pow2_vocab_, out_tokens_, n_out, st),
                     "sample");
  return {};
}

status cuda_engine::run(int64_t T, int64_t n_out, bool any_sample) {
  auto direct = [&]() -> status {
    BRIGADE_CUDA_TRY(cudaMemcpyAsync(dev_in_, host_in_, in_.bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    if (auto s = enqueue(T, n_out, any_sample); !s) return s;
    if (any_sample)
      BRIGADE_CUDA_TRY(cudaMemcpyAsync(host_out_, out_tokens_, static_cast<size_t>(n_out) * sizeof(int32_t),
                                       cudaMemcpyDeviceToHost, stream_),
                       "cudaMemcpyAsync");
    return {};
  };
  if (!use_graphs_ || T > pad_limit) return direct();
  const auto key = std::make_tuple(T, n_out, any_sample);
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    if (graphs_.size() >= 512) return direct();  // unusual shapes: do not grow without bound
    BRIGADE_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    const status s = direct();
    cudaGraph_t graph = nullptr;
    const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (!s) {
      if (graph) cudaGraphDestroy(graph);
      return s;
    }
    BRIGADE_CUDA_TRY(e, "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    BRIGADE_CUDA_TRY(ie, "cudaGraphInstantiate");
    it = graphs_.emplace(key, exec).first;
  }
  BRIGADE_CUDA_TRY(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
  return {};
}

status cuda_engine::step(const std::vector<step_item>& batch, std::vector<step_result>& out) {
  out.clear();
  if (batch.empty()) return {};
  int64_t n_tokens = 0;
  if (auto s = validate_and_reserve(batch, n_tokens); !s) return s;
  status s = step_on_device(batch, out, n_tokens);
  if (!s) {
    failed_ = failed_ || s.code() == errc::device;
    cudaStreamSynchronize(stream_);  // nothing of this step may still read the pinned inputs
    (void)cudaGetLastError();
    out.clear();
    for (const auto& it : batch) kv_.truncate(it.seq, kv_.length(it.seq));  // give back the reserved blocks
    return s;
  }
  for (const auto& it : batch) kv_.set_length(it.seq, kv_.length(it.seq) + static_cast<int32_t>(it.tokens.size()));
  return {};
}

status cuda_engine::step_on_device(const std::vector<step_item>& batch, std::vector<step_result>& out,
                                   int64_t n_tokens) {
  BRIGADE_CUDA_TRY(cudaSetDevice(device_), "cudaSetDevice");
  (void)cudaGetLastError();  // an error left by an earlier failure must not fail this step's first launch

  const int64_t T = n_tokens <= pad_limit ? k::pow2_at_least(static_cast<int32_t>(n_tokens)) : n_tokens;
  auto* tokens = reinterpret_cast<int32_t*>(host_in_ + in_.tokens);
  auto* pos = reinterpret_cast<int32_t*>(host_in_ + in_.pos);
  auto* slot = reinterpret_cast<int32_t*>(host_in_ + in_.slot);
  auto* npos = reinterpret_cast<int32_t*>(host_in_ + in_.npos);
  auto* boff = reinterpret_cast<int32_t*>(host_in_ + in_.boff);
  auto* blocks = reinterpret_cast<int32_t*>(host_in_ + in_.blocks);
  auto* rows = reinterpret_cast<int32_t*>(host_in_ + in_.rows);
  auto* desc = reinterpret_cast<k::sample_desc*>(host_in_ + in_.desc);
  const int32_t bs = cfg_.kv_block_size;
  int32_t n_block_ids = 0;
  int64_t i = 0, n_out = 0;
  bool any_sample = false;
  std::vector<size_t> row_item;
  for (size_t b = 0; b < batch.size(); ++b) {
    const step_item& it = batch[b];
    const int32_t base = kv_.length(it.seq);
    const int32_t off = n_block_ids;
    for (int32_t id : kv_.blocks(it.seq)) blocks[n_block_ids++] = id;
    for (size_t j = 0; j < it.tokens.size(); ++j, ++i) {
      tokens[i] = it.tokens[j];
      pos[i] = base + static_cast<int32_t>(j);
      slot[i] = kv_.slot(it.seq, pos[i]);
      npos[i] = pos[i] + 1;
      boff[i] = off;
    }
    if (it.sample || it.want_logits) {
      rows[n_out] = static_cast<int32_t>(i - 1);
      const sampling_params& sp = it.sampling;
      desc[n_out] = {it.sample ? sp.temperature : 0.0f, sp.top_k, sp.top_p,
                     static_cast<uint32_t>(base + static_cast<int32_t>(it.tokens.size())), sp.seed};
      any_sample = any_sample || it.sample;
      row_item.push_back(b);
      ++n_out;
    }
  }
  // Padding tokens: token 0 at position 0 of the scratch block.
  blocks[n_block_ids] = n_blocks_;
  for (; i < T; ++i) {
    tokens[i] = 0;
    pos[i] = 0;
    slot[i] = n_blocks_ * bs;
    npos[i] = 1;
    boff[i] = n_block_ids;
  }
  if (auto s = run(T, n_out, any_sample); !s) return s;
  out.resize(batch.size());
  const int64_t n_vocab = model_->hparams().n_vocab;
  for (int64_t r = 0; r < n_out; ++r) {
    const step_item& it = batch[row_item[static_cast<size_t>(r)]];
    if (!it.want_logits) continue;
    auto& lg = out[row_item[static_cast<size_t>(r)]].logits;
    lg.resize(static_cast<size_t>(n_vocab));
    BRIGADE_CUDA_TRY(cudaMemcpyAsync(lg.data(), logits_ + r * n_vocab, static_cast<size_t>(n_vocab) * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_),
                     "cudaMemcpyAsync");
  }
  BRIGADE_CUDA_TRY(cudaStreamSynchronize(stream_), "step");
  for (int64_t r = 0; r < n_out; ++r) {
    const step_item& it = batch[row_item[static_cast<size_t>(r)]];
    if (it.sample) out[row_item[static_cast<size_t>(r)]].token = host_out_[r];
  }
  return {};
}

}  // namespace

result<std::unique_ptr<engine>> make_cuda_engine(std::shared_ptr<const llama_model> model, const engine_config& cfg,
                                                 int device) {
  if (!model) return status{errc::invalid_argument, "make_cuda_engine: no model"};
  auto size = size_engine(model->hparams(), cfg);
  if (!size) return size.error();
  auto e = std::make_unique<cuda_engine>(std::move(model), cfg, device, *size);
  if (auto s = e->init(); !s) return s;
  return std::unique_ptr<engine>(std::move(e));
}

}  // namespace brigade::cuda
