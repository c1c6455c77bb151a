// `brigade model synth`, `brigade generate`, `brigade model bench`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>

#include "app/commands.hpp"
#include "app/json.hpp"
#include "kernels/engine/engine.hpp"
#include "kernels/engine/make_engine.hpp"
#include "kernels/model/synth.hpp"

namespace brigade::app {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

}  // namespace

int model_synth(const synth_cli& a) {
  synth_options o;
  o.preset = a.preset;
  o.seed = a.seed;
  o.vocab_from = a.vocab_from;
  o.n_threads = a.threads;
  if (!parse_ggml_type(a.type, o.type))
    return fail(exit_bad_input, "--type " + a.type + " is not one of f32, f16, bf16, q8_0");
  const auto t0 = clock_type::now();
  if (auto s = synthesize_model(o, a.out); !s) return fail(exit_code_for(s), s.message());
  auto m = llama_model::load(a.out);
  if (!m) return fail(exit_other, "the synthesised model does not load back: " + m.error().message());
  std::fprintf(stderr, "synth: wrote %s in %.1f s\n", (*m)->describe().c_str(), seconds_since(t0));
  return exit_ok;
}

int generate(const generate_cli& a) {
  sampling_params sp;
  sp.temperature = a.temp;
  sp.top_k = a.top_k;
  sp.top_p = a.top_p;
  sp.seed = a.seed_set ? a.seed : std::random_device{}();
  if (auto s = validate(sp); !s) return fail(exit_bad_input, s.message());
  if (a.n_tokens < 0) return fail(exit_bad_input, "-n must be >= 0");

  auto model = llama_model::load(a.model);
  if (!model) return fail(exit_code_for(model.error()), model.error().message());
  const tokenizer& tok = (*model)->vocab();
  std::vector<token_id> prompt;
  if (tok.add_bos()) prompt.push_back(tok.bos());
  const auto text_ids = tok.encode(a.prompt, false, false);
  prompt.insert(prompt.end(), text_ids.begin(), text_ids.end());
  if (prompt.empty()) return fail(exit_bad_input, "the prompt is empty and the model adds no BOS token; give -p TEXT");
  const int32_t n_ctx_model = (*model)->hparams().n_ctx_train;
  const int64_t n_gen_max = a.force.empty() ? a.n_tokens : static_cast<int64_t>(a.force.size());
  if (static_cast<int64_t>(prompt.size()) + n_gen_max > n_ctx_model)
    return fail(exit_bad_input, "the prompt (" + std::to_string(prompt.size()) + " tokens) plus -n " +
                                    std::to_string(a.n_tokens) + " exceeds the model's context of " +
                                    std::to_string(n_ctx_model) + " tokens");

  engine_config cfg;
  cfg.n_threads = a.threads;
  cfg.max_sequences = 1;
  cfg.n_ctx = static_cast<int32_t>(prompt.size() + std::max<int64_t>(n_gen_max, 1));
  auto eng = make_engine(a.device, *model, cfg);
  if (!eng) return fail(exit_code_for(eng.error()), eng.error().message());
  engine& e = **eng;
  auto seq = e.create_sequence();
  if (!seq) return fail(exit_other, seq.error().message());

  std::FILE* trace = nullptr;
  if (!a.trace.empty()) {
    trace = std::fopen(a.trace.c_str(), "w");
    if (!trace) return fail(exit_bad_input, a.trace + ": cannot write the trace file");
  }
  for (token_id f : a.force)
    if (f < 0 || f >= tok.n_vocab())
      return fail(exit_bad_input, "--force-ids: token " + std::to_string(f) + " is outside the vocabulary");
  const int32_t n_wanted = a.force.empty() ? a.n_tokens : static_cast<int32_t>(a.force.size());
  // Per generated token: the engine's choice and its top-2 logits.
  auto record = [&](const step_result& r, int32_t index, int32_t position) {
    if (!trace) return;
    const auto& lg = r.logits;
    int32_t t1 = argmax(lg.data(), static_cast<int32_t>(lg.size())), t2 = t1 == 0 ? 1 : 0;
    for (int32_t i = 0; i < static_cast<int32_t>(lg.size()); ++i)
      if (i != t1 && lg[static_cast<size_t>(i)] > lg[static_cast<size_t>(t2)]) t2 = i;
    std::fprintf(trace, "{\"index\":%d,\"position\":%d,\"sampled\":%d,\"top\":[[%d,%.9g],[%d,%.9g]]}\n", index,
                 position, r.token, t1, lg[static_cast<size_t>(t1)], t2, lg[static_cast<size_t>(t2)]);
  };

  const auto t0 = clock_type::now();
  std::vector<step_result> out;
  token_id next = -1;
  constexpr size_t chunk = 512;
  for (size_t at = 0; at < prompt.size(); at += chunk) {
    step_item it;
    it.seq = *seq;
    it.tokens.assign(prompt.begin() + static_cast<std::ptrdiff_t>(at),
                     prompt.begin() + static_cast<std::ptrdiff_t>(std::min(prompt.size(), at + chunk)));
    it.sample = at + chunk >= prompt.size();
    it.want_logits = it.sample && trace;
    it.sampling = sp;
    if (auto s = e.step({it}, out); !s) return fail(exit_code_for(s), s.message());
    next = out[0].token;
  }
  if (trace) record(out[0], 0, static_cast<int32_t>(prompt.size()));
  if (!a.force.empty()) next = a.force[0];
  const double t_prefill = seconds_since(t0);

  const auto t1 = clock_type::now();
  stream_decoder dec(tok);
  int32_t n_gen = 0;
  bool eos = false;
  std::string ids_line;
  while (n_gen < n_wanted) {
    if (a.force.empty() && tok.is_end_of_generation(next)) {
      eos = true;
      break;
    }
    ++n_gen;
    if (a.ids) {
      if (!ids_line.empty()) ids_line += ' ';
      ids_line += std::to_string(next);
    } else {
      const std::string piece = dec.push(next);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (n_gen == n_wanted) break;
    step_item it;
    it.seq = *seq;
    it.tokens = {next};
    it.sampling = sp;
    it.want_logits = trace != nullptr;
    if (auto s = e.step({it}, out); !s) return fail(exit_code_for(s), s.message());
    next = out[0].token;
    record(out[0], n_gen, static_cast<int32_t>(prompt.size()) + n_gen);
    if (!a.force.empty()) next = a.force[static_cast<size_t>(n_gen)];
  }
  if (trace) std::fclose(trace);
  const double t_decode = seconds_since(t1);
  if (a.ids) {
    ids_line += '\n';
    std::fwrite(ids_line.data(), 1, ids_line.size(), stdout);
  } else {
    const std::string rest = dec.finish() + "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::fflush(stdout);
  std::fprintf(stderr,
               "generate: %s\n  backend %s, seed %llu\n  prompt %zu tokens in %.3f s (%.1f tokens/s)\n"
               "  generated %d tokens in %.3f s (%.1f tokens/s)%s\n",
               (*model)->describe().c_str(), e.backend_name().c_str(), static_cast<unsigned long long>(sp.seed),
               prompt.size(), t_prefill, static_cast<double>(prompt.size()) / std::max(t_prefill, 1e-9), n_gen,
               t_decode, n_gen > 1 ? (n_gen - 1) / std::max(t_decode, 1e-9) : 0.0,
               eos ? ", stopped at end of generation" : "");
  return exit_ok;
}

int model_bench(const bench_cli& a) {
  if (a.batches.empty()) return fail(exit_bad_input, "--batch needs at least one size, e.g. --batch 1,8,32,64");
  for (int b : a.batches)
    if (b <= 0 || b > 1024) return fail(exit_bad_input, "--batch sizes must be 1..1024, not " + std::to_string(b));
  if (a.prompt_tokens <= 0 || a.gen_tokens <= 0)
    return fail(exit_bad_input, "--prompt-tokens and --gen-tokens must be positive");
  auto model = llama_model::load(a.model);
  if (!model) return fail(exit_code_for(model.error()), model.error().message());
  const auto& hp = (*model)->hparams();
  const int warmup = 4;
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  engine_config cfg;
  cfg.n_threads = a.threads;
  cfg.max_sequences = max_batch;
  cfg.n_ctx = a.prompt_tokens + warmup + a.gen_tokens + 1;
  if (cfg.n_ctx > hp.n_ctx_train)
    return fail(exit_bad_input, "--prompt-tokens plus --gen-tokens exceed the model's context");
  cfg.max_step_tokens = std::max(4096, max_batch * a.prompt_tokens);
  cfg.kv_memory_bytes =
      static_cast<int64_t>(max_batch) * (cfg.n_ctx + 16) * 2 * hp.n_layer * hp.n_head_kv * hp.head_dim * 4 + (1 << 20);
  auto eng = make_engine(a.device, *model, cfg);
  if (!eng) return fail(exit_code_for(eng.error()), eng.error().message());
  engine& e = **eng;

  std::mt19937 rng(1234);  // prompt ids: the same for every run
  std::vector<std::pair<int, double>> results, step_ms;
  for (int B : a.batches) {
    std::vector<seq_id> seqs;
    std::vector<step_item> batch(static_cast<size_t>(B));
    for (int i = 0; i < B; ++i) {
      auto s = e.create_sequence();
      if (!s) return fail(exit_other, s.error().message());
      seqs.push_back(*s);
      batch[static_cast<size_t>(i)].seq = *s;
      batch[static_cast<size_t>(i)].tokens.resize(static_cast<size_t>(a.prompt_tokens));
      for (auto& t : batch[static_cast<size_t>(i)].tokens) t = static_cast<token_id>(3 + rng() % (hp.n_vocab - 3));
    }
    std::vector<step_result> out;
    if (auto s = e.step(batch, out); !s) return fail(exit_code_for(s), s.message());  // prefill
    auto feed = [&] {
      for (int i = 0; i < B; ++i) batch[static_cast<size_t>(i)].tokens = {out[static_cast<size_t>(i)].token};
    };
    for (int w = 0; w < warmup; ++w) {
      feed();
      if (auto s = e.step(batch, out); !s) return fail(exit_code_for(s), s.message());
    }
    const auto t0 = clock_type::now();
    for (int g = 0; g < a.gen_tokens; ++g) {
      feed();
      if (auto s = e.step(batch, out); !s) return fail(exit_code_for(s), s.message());
    }
    const double dt = seconds_since(t0);
    results.emplace_back(B, static_cast<double>(B) * a.gen_tokens / dt);
    step_ms.emplace_back(B, dt * 1000.0 / a.gen_tokens);
    for (seq_id s : seqs) e.free_sequence(s);
  }

  std::printf("model bench: %s\n  backend %s; prompt %d tokens, %d decode steps after %d warm-up\n",
              (*model)->describe().c_str(), e.backend_name().c_str(), a.prompt_tokens, a.gen_tokens, warmup);
  std::printf("  %6s  %12s  %10s  %10s\n", "batch", "tokens/s", "ms/step", "vs batch 1");
  const double base = results.front().first == 1 ? results.front().second : 0.0;
  for (size_t i = 0; i < results.size(); ++i) {
    std::printf("  %6d  %12.1f  %10.2f", results[i].first, results[i].second, step_ms[i].second);
    if (base > 0) std::printf("  %9.2fx", results[i].second / base);
    std::printf("\n");
  }
  if (a.json) {
    json::object batch_json, ms_json;
    for (size_t i = 0; i < results.size(); ++i) {
      batch_json.add(std::to_string(results[i].first), results[i].second);
      ms_json.add(std::to_string(results[i].first), step_ms[i].second);
    }
    const char* commit = std::getenv("BRIGADE_COMMIT");
    json::object o;
    o.add_raw("batch", batch_json.str())
        .add_raw("step_ms", ms_json.str())
        .add("threads", static_cast<int64_t>(a.threads))
        .add("backend", e.backend_name())
        .add("model", a.model)
        .add("type", ggml_type_name(static_cast<uint32_t>((*model)->main_type())))
        .add("n_params", (*model)->n_params())
        .add("prompt_tokens", static_cast<int64_t>(a.prompt_tokens))
        .add("gen_tokens", static_cast<int64_t>(a.gen_tokens))
        .add("machine", cpu_model_name())
        .add("commit", commit ? commit : "unknown");
    std::printf("%s\n", o.str().c_str());
  }
  return exit_ok;
}

}  // namespace brigade::app
