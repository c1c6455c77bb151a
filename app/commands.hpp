// Subcommand entry points of the `brigade` program and its exit codes
// (docs/cli.md). Each returns the process exit code; errors are printed to
// standard error as one sentence naming the cause.
#pragma once

#include <cstdint>

#include <string>
#include <vector>
#include "kernels/base/status.hpp"

namespace brigade::app {

enum exit_code : int {
  exit_ok = 0,
  exit_other = 1,         // anything not below
  exit_bad_input = 2,     // bad usage or bad input (unreadable or malformed files included)
  exit_overloaded = 3,    // refused (overloaded) after retries
  exit_store = 4,         // store unavailable
  exit_unauthorized = 5,  // unauthorized or unknown session
};

/// `brigade model info FILE [--json]`
int model_info(const std::string& file, bool json);
/// `brigade model tokenize -m FILE [--pieces]`: standard input verbatim -> one
/// line of ids, or with `pieces` one line per token: id, tab, its bytes.
int model_tokenize(const std::string& file, bool pieces, bool parse_special, bool continuation);

using token_id_t = int32_t;

struct synth_cli {
  std::string preset = "tiny", type = "f16", vocab_from, out;
  uint64_t seed = 1;
  int threads = 0;
};
/// `brigade model synth --preset P --seed N [--type T] [--vocab-from F] -o OUT`
int model_synth(const synth_cli& a);

struct generate_cli {
  std::string model, prompt;
  int n_tokens = 64;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  bool seed_set = false;
  int threads = 0;
  std::string device = "cpu";  // or cuda:N
  bool ids = false;
  std::string trace;              // JSON lines per generated token: top-2 logits (debugging, peer checks)
  std::vector<token_id_t> force;  // teacher forcing: continue with these ids instead of sampled ones
};
/// `brigade generate -m FILE -p PROMPT [...]`: the continuation on stdout.
int generate(const generate_cli& a);

struct bench_cli {
  std::string model;
  std::vector<int> batches{1, 8, 32, 64};
  int prompt_tokens = 32, gen_tokens = 64, threads = 0;
  std::string device = "cpu";  // or cuda:N
  bool json = false;
};
/// `brigade model bench -m FILE --batch 1,8,32,64 [...]`: decode tokens/s per batch size.
int model_bench(const bench_cli& a);

/// The exit code for an error of kernels/: files and values the user gave
/// are input (2); anything else is 1.
int exit_code_for(const status& s);

/// Prints "brigade: <message>" to standard error and returns `code`.
int fail(int code, const std::string& message);

}  // namespace brigade::app
