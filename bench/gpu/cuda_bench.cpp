// The decode-step benchmark of the CUDA backend: for each batch size B, B sequences each holding a `--context`-token
// prompt, then timed greedy decode steps of one token per sequence. Reports
// ms per step, tokens/s, and the bytes a step must read (weights once, plus
// every sequence's K and V) over the step time.
// usage: cuda_bench -m MODEL [--synth PRESET] [--batch 1,64] [--context 128]
//                   [--steps 64] [--device 0] [--json FILE]
//   --synth PRESET  first writes the synthetic model PRESET (F16, seed 1) to
//                   MODEL unless that file exists (GPU machines have no
//                   `brigade` program to do it)
// Exit codes: 0, 1 on an error, 2 on bad usage, 77 without a GPU.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/device.hpp"
#include "kernels/model/synth.hpp"

using namespace brigade;

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "cuda_bench: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, json_path, synth;
  std::vector<int> batches{1, 64};
  int context = 128, steps = 64, device = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-m" || a == "--model")
      model_path = next();
    else if (a == "--context")
      context = std::atoi(next().c_str());
    else if (a == "--steps")
      steps = std::atoi(next().c_str());
    else if (a == "--device")
      device = std::atoi(next().c_str());
    else if (a == "--json")
      json_path = next();
    else if (a == "--synth")
      synth = next();
    else if (a == "--batch") {
      batches.clear();
      const std::string list = next();
      for (size_t p = 0; p < list.size();) {
        const size_t c = list.find(',', p);
        batches.push_back(std::atoi(list.substr(p, c - p).c_str()));
        p = c == std::string::npos ? list.size() : c + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: cuda_bench -m MODEL [--synth PRESET] [--batch 1,64] [--context 128] [--steps 64] "
                   "[--device 0] [--json FILE]\n");
      return 2;
    }
  }
  if (model_path.empty() || context < 1 || steps < 1 || batches.empty() ||
      *std::min_element(batches.begin(), batches.end()) < 1)
    return fail("need -m MODEL, and positive --context, --steps and batch sizes");
  auto n = cuda::device_count();
  if (!n.ok() || *n == 0) {
    std::printf("skipped: no CUDA device (%s)\n", n.ok() ? "0 devices" : n.error().message().c_str());
    return 77;
  }
  if (!synth.empty() && ::access(model_path.c_str(), F_OK) != 0) {
    synth_options so;
    so.preset = synth;
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = synthesize_model(so, model_path); !s) return fail(s.message());
    std::printf("synthesised %s into %s in %.1fs\n", synth.c_str(), model_path.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  auto model = llama_model::load(model_path);
  if (!model) return fail(model.error().message());
  const auto& hp = (*model)->hparams();
  const int max_b = *std::max_element(batches.begin(), batches.end());
  engine_config cfg;
  cfg.max_sequences = max_b;
  cfg.n_ctx = context + steps + 8;
  cfg.max_step_tokens = std::max({512, max_b, context});
  const int64_t kv_token_bytes = 2ll * hp.n_layer * hp.n_head_kv * hp.head_dim * 4;
  cfg.kv_memory_bytes = kv_token_bytes * (cfg.n_ctx + 16) * max_b + (64ll << 20);
  auto eng = cuda::make_cuda_engine(*model, cfg, device);
  if (!eng) return fail(eng.error().message());
  engine& e = **eng;
  // Bytes of weights a decode step reads: every matrix once (the embedding
  // table only for the looked-up rows: not counted).
  int64_t weight_bytes = static_cast<int64_t>((*model)->output_norm().row_bytes);
  weight_bytes += static_cast<int64_t>((*model)->output().row_bytes) * (*model)->output().n_rows;
  for (const auto& L : (*model)->layers())
    for (const weight* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
      weight_bytes += static_cast<int64_t>(w->row_bytes) * w->n_rows;
  std::printf("%s on %s; context %d, %d timed steps\n", (*model)->describe().c_str(), e.backend_name().c_str(), context,
              steps);
  std::printf("%6s  %10s  %12s  %14s  %12s\n", "batch", "ms/step", "tokens/s", "bytes/step MB", "GB/s");
  std::string json = "{\"benchmark\":\"cuda_decode\",\"model\":\"" + (*model)->describe() + "\",\"device\":\"" +
                     e.backend_name() + "\",\"context\":" + std::to_string(context) + ",\"rows\":[";
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const int B = batches[bi];
    std::vector<seq_id> seqs;
    std::vector<step_item> batch;
    std::vector<step_result> out;
    for (int s = 0; s < B; ++s) {
      auto id = e.create_sequence();
      if (!id) return fail(id.error().message());
      seqs.push_back(*id);
      step_item it;
      it.seq = *id;
      for (int t = 0; t < context; ++t) it.tokens.push_back(3 + (t * 7919 + s * 104729) % (hp.n_vocab - 3));
      std::vector<step_item> one{it};
      if (auto st = e.step(one, out); !st) return fail(st.message());
      it.tokens = {out[0].token};
      batch.push_back(it);
    }
    auto run = [&]() -> status {
      if (auto st = e.step(batch, out); !st) return st;
      for (size_t k = 0; k < batch.size(); ++k) batch[k].tokens = {out[k].token};
      return {};
    };
    for (int w = 0; w < 3; ++w)
      if (auto st = run(); !st) return fail(st.message());
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s)
      if (auto st = run(); !st) return fail(st.message());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ms = secs * 1e3 / steps;
    // K and V read per step: every sequence's whole history (about context + 3 + steps / 2 positions).
    const double kv_bytes = static_cast<double>(kv_token_bytes) * B * (context + 3 + steps / 2.0);
    const double bytes = static_cast<double>(weight_bytes) + kv_bytes;
    const double tps = B / (ms / 1e3);
    std::printf("%6d  %10.3f  %12.0f  %14.1f  %12.1f\n", B, ms, tps, bytes / 1e6, bytes / (ms / 1e3) / 1e9);
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "%s{\"batch\":%d,\"ms_per_step\":%.4f,\"tokens_per_s\":%.1f,\"bytes_per_step\":%.0f,\"gb_per_s\":%.2f}",
        bi ? "," : "", B, ms, tps, bytes, bytes / (ms / 1e3) / 1e9);
    json += buf;
    for (seq_id s : seqs) e.free_sequence(s);
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  if (!json_path.empty())
    if (FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "%s\n", json.c_str());
      std::fclose(f);
    }
  return 0;
}
