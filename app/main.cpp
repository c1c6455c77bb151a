// brigade: the command-line program. Parses the command line with CLI11
// (both `--flag VALUE` and `--flag=VALUE`; CAF 0.17's own parser only takes
// the latter) and dispatches to the subcommands of shared/cli.md. Later
// issues feed CAF's actor_system_config from the parsed values.
#include <CLI/CLI.hpp>

#include <map>

#include <iostream>
#include <string>
#include <vector>

#include "app/commands.hpp"
#include "kernels/model/unicode.hpp"
#ifdef BRIGADE_HAVE_SERVER_DEPS
#include "app/server_commands.hpp"
#include "runtime/build_info.hpp"
#include "runtime/config.hpp"
#endif

namespace {

std::string version_text() {
  std::string v = "brigade " BRIGADE_VERSION "\n";
#ifdef BRIGADE_HAVE_CUDA
  v += "cuda: kernels built for sm_90\n";
#else
  v += "cuda: not built\n";
#endif
#ifdef BRIGADE_HAVE_SERVER_DEPS
  v += "server: " + brigade::runtime::dependency_versions() + "\n";
#else
  v += "server: not built (engine-only configure; run deploy/setup.sh and rebuild)\n";
#endif
  v += std::string("unicode: ") + brigade::unicode::tables_version();
  return v;
}

/// The subcommand chain named by `topic` ("model info"), or nullptr.
CLI::App* find_topic(CLI::App& app, const std::vector<std::string>& topic) {
  CLI::App* at = &app;
  for (const auto& name : topic) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : at->get_subcommands([](CLI::App*) { return true; }))
      if (sub->get_name() == name) next = sub;
    if (!next) return nullptr;
    at = next;
  }
  return at;
}

}  // namespace

namespace {
int run(int argc, char** argv);
}  // namespace

int main(int argc, char** argv) {
  // Nothing below throws by design; this turns an unexpected exception (e.g.
  // out of memory) into the one-sentence error and exit code of cli.md.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    return brigade::app::fail(brigade::app::exit_other, std::string("internal error: ") + e.what());
  }
}

namespace {

int run(int argc, char** argv) {
  using namespace brigade::app;
  CLI::App app{"brigade: durable, batched LLM chat serving on an actor runtime.", "brigade"};
  app.set_version_flag("--version", version_text(), "Print the version and build options, then exit");
  app.require_subcommand(0, 1);

  std::vector<std::string> help_topic;
  CLI::App* help = app.add_subcommand("help", "Show help for brigade or for a subcommand (brigade help model info)");
  help->add_option("topic", help_topic, "Subcommand names");

  CLI::App* model = app.add_subcommand("model", "Make, inspect, tokenize with and benchmark GGUF model files");
  model->require_subcommand(1);

  std::string info_file;
  bool info_json = false;
  CLI::App* info =
      model->add_subcommand("info",
                            "Architecture, shapes, tensor types, tokenizer and chat template of a GGUF file "
                            "(vocabulary-only files too)");
  info->add_option("file", info_file, "GGUF file")->required();
  info->add_flag("--json", info_json, "Print one JSON object instead of text");

  std::string tok_model;
  CLI::App* tokenize =
      model->add_subcommand("tokenize",
                            "Tokenize all of standard input verbatim; print one line of space-separated token ids "
                            "(no BOS; special-token text is plain text)");
  tokenize->add_option("-m,--model", tok_model, "GGUF file with the vocabulary")->required();
  bool tok_pieces = false;
  tokenize->add_flag("--pieces", tok_pieces,
                     "Print one token per line: its id and the bytes it stands for (\\xNN for bytes of a split "
                     "UTF-8 character)");

  synth_cli synth_args;
  CLI::App* synth = model->add_subcommand(
      "synth", "Write a GGUF llama model with seeded random weights (same arguments, same bytes)");
  synth->add_option("--preset", synth_args.preset, "tiny, small (~52M parameters) or tinyllama-1b")
      ->required()
      ->check(CLI::IsMember({"tiny", "small", "tinyllama-1b"}));
  synth->add_option("--seed", synth_args.seed, "Random seed")->required();
  synth->add_option("--type", synth_args.type, "Weight type: f32, f16, bf16 or q8_0")->capture_default_str();
  synth->add_option("--vocab-from", synth_args.vocab_from, "Take the tokenizer from this GGUF file");
  synth->add_option("-o,--output", synth_args.out, "Output file")->required();
  synth->add_option("--threads", synth_args.threads, "Threads (0: all cores; does not change the output)");

  generate_cli gen_args;
  CLI::App* gen = app.add_subcommand("generate",
                                     "Continue a prompt with a model on the CPU: the continuation on standard output, "
                                     "statistics on standard error");
  gen->add_option("-m,--model", gen_args.model, "GGUF model file")->required();
  gen->add_option("-p,--prompt", gen_args.prompt, "Text to continue")->required();
  gen->add_option("-n,--max-tokens", gen_args.n_tokens, "Tokens to generate at most")->capture_default_str();
  gen->add_option("--temp", gen_args.temp, "Temperature (0: greedy)")->capture_default_str();
  gen->add_option("--top-k", gen_args.top_k, "Keep the k most likely tokens (0: all)")->capture_default_str();
  gen->add_option("--top-p", gen_args.top_p, "Keep the most likely tokens up to this mass")->capture_default_str();
  CLI::Option* seed_opt = gen->add_option("--seed", gen_args.seed, "Sampling seed (default: random, printed)");
  gen->add_option("--threads", gen_args.threads, "CPU threads (0: all cores)");
  gen->add_option("--device", gen_args.device, "Engine: cpu or cuda:N")->capture_default_str();
  gen->add_flag("--ids", gen_args.ids, "Print token ids instead of text");
  gen->add_option("--trace", gen_args.trace,
                  "Write one JSON line per generated token to this file: position, token, top-2 ids and logits");
  gen->add_option("--force-ids", gen_args.force,
                  "Continue with these token ids (comma-separated) instead of sampling; with --trace this scores "
                  "another engine's output")
      ->delimiter(',');

  bench_cli bench_args;
  CLI::App* mbench = model->add_subcommand("bench", "Aggregate decode tokens/s of the engine per batch size");
  mbench->add_option("-m,--model", bench_args.model, "GGUF model file")->required();
  mbench->add_option("--batch", bench_args.batches, "Batch sizes, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  mbench->add_option("--prompt-tokens", bench_args.prompt_tokens, "Prompt tokens per sequence")->capture_default_str();
  mbench->add_option("--gen-tokens", bench_args.gen_tokens, "Timed decode steps")->capture_default_str();
  mbench->add_option("--threads", bench_args.threads, "CPU threads (0: all cores)");
  mbench->add_option("--device", bench_args.device, "Engine: cpu or cuda:N")->capture_default_str();
  mbench->add_flag("--json", bench_args.json, "Print one JSON object as the last line");

  // Server and clients (need the server dependencies).
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run a node: sessions, batching, the gateway over BASP, metrics");
  CLI::App* chat_cmd = app.add_subcommand("chat", "Chat with a node (interactive, or -p TEXT for scripts)");
  CLI::App* bench_cmd = app.add_subcommand("bench", "Load a node with many concurrent sessions over BASP");
  CLI::App* demo_cmd = app.add_subcommand("demo", "Start a node in-process and chat with it as many users, live");
#ifdef BRIGADE_HAVE_SERVER_DEPS
  server_cli serve_args;
  std::map<std::string, std::string> flag_values;
  std::vector<std::pair<std::string, CLI::Option*>> flag_opts;
  for (const auto& k : brigade::runtime::config_keys()) {
    const std::string help = k.help + (k.unit.empty() ? "" : " (" + k.unit + ")") + "; env " +
                             brigade::runtime::env_name(k.name) + ", default " + k.get(brigade::runtime::node_config{});
    std::string names = "--" + k.name;
    if (k.name == "model") names = "-m,--model";
    flag_opts.emplace_back(k.name, serve_cmd->add_option(names, flag_values[k.name], help));
  }
  serve_cmd->add_option("--config", serve_args.config_file, "Config file of key = value lines (env BRIGADE_CONFIG)");
  serve_cmd->add_flag("--fault-injection", serve_args.fault_injection,
                      "Accept b_fault requests that crash a session actor (supervision tests only)");

  chat_cli chat_args;
  chat_cmd->add_option("--host", chat_args.host, "Node address")->capture_default_str();
  chat_cmd->add_option("--port", chat_args.port, "Node BASP port")->capture_default_str();
  chat_cmd->add_option("-p,--prompt", chat_args.prompt, "Send this one message, print the reply, exit");
  chat_cmd->add_option("--session", chat_args.session, "Session id (with --token)");
  chat_cmd->add_option("--token", chat_args.token, "Session token");
  chat_cmd->add_option("--seq", chat_args.seq, "Turn number (default: the next after the last committed)");
  chat_cmd->add_flag("--open", chat_args.open, "Open a session and print SESSION_ID TOKEN");
  chat_cmd->add_flag("--history", chat_args.history, "Print the committed turns as JSON lines");
  chat_cmd->add_flag("--close", chat_args.close, "Delete the session");
  chat_cmd->add_flag("--fault", chat_args.fault, "Crash the session's actor (node with --fault-injection)");
  chat_cmd->add_option("-n,--max-tokens", chat_args.max_tokens, "Cap on generated tokens (0: the node's cap)");
  chat_cmd->add_option("--temp", chat_args.temp, "Temperature (0: greedy)")->capture_default_str();
  chat_cmd->add_option("--top-k", chat_args.top_k, "Top-k (0: no limit)")->capture_default_str();
  chat_cmd->add_option("--top-p", chat_args.top_p, "Top-p")->capture_default_str();
  CLI::Option* chat_seed = chat_cmd->add_option("--seed", chat_args.seed, "Sampling seed");
  chat_cmd->add_option("--stop", chat_args.stop, "Stop string (repeatable)");
  chat_cmd->add_option("--timeout", chat_args.timeout_s, "Seconds without a token before retrying")
      ->capture_default_str();

  bench_server_cli bench_args2;
  bench_cmd->add_option("--host", bench_args2.host, "Node address")->capture_default_str();
  bench_cmd->add_option("--port", bench_args2.port, "Node BASP port")->capture_default_str();
  bench_cmd->add_option("--sessions", bench_args2.sessions, "Concurrent sessions")->capture_default_str();
  bench_cmd->add_option("--turns", bench_args2.turns, "Turns per session")->capture_default_str();
  bench_cmd->add_option("-n,--max-tokens", bench_args2.max_tokens, "Tokens per reply at most")->capture_default_str();
  bench_cmd->add_flag("--json", bench_args2.json, "Print one JSON object as the last line");
  bench_cmd->add_flag("--verify", bench_args2.verify,
                      "Afterwards, check every acknowledged turn is in its session's history exactly once");

  demo_cli demo_args;
  demo_cmd->add_option("--seconds", demo_args.seconds, "How long the users chat")->capture_default_str();
  demo_cmd->add_option("--users", demo_args.users, "Simulated users")->capture_default_str();
  demo_cmd->add_option("-m,--model", demo_args.model, "GGUF model (default: the built-in model)");
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();  // delegates to the subcommand that was given --help
    return exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return exit_ok;
  } catch (const CLI::CallForVersion&) {
    std::cout << version_text() << "\n";
    return exit_ok;
  } catch (const CLI::ParseError& e) {
    return fail(exit_bad_input, std::string(e.what()) + "; run 'brigade help' for usage");
  }

  if (*help) {
    CLI::App* topic = find_topic(app, help_topic);
    if (!topic)
      return fail(exit_bad_input,
                  "no such subcommand: " + CLI::detail::join(help_topic, " ") + "; run 'brigade help' for the list");
    std::cout << topic->help();
    return exit_ok;
  }
  if (*info) return model_info(info_file, info_json);
  if (*tokenize) return model_tokenize(tok_model, tok_pieces);
  if (*synth) return model_synth(synth_args);
  if (*gen) {
    gen_args.seed_set = seed_opt->count() > 0;
    return generate(gen_args);
  }
  if (*mbench) return model_bench(bench_args);
#ifdef BRIGADE_HAVE_SERVER_DEPS
  if (*serve_cmd) {
    for (auto& [name, opt] : flag_opts)
      if (opt->count() > 0) serve_args.flags[name] = flag_values[name];
    return serve(serve_args);
  }
  if (*chat_cmd) {
    chat_args.seed_set = chat_seed->count() > 0;
    return chat(chat_args);
  }
  if (*bench_cmd) return bench(bench_args2);
  if (*demo_cmd) return demo(demo_args);
#else
  for (CLI::App* sub : {serve_cmd, chat_cmd, bench_cmd, demo_cmd})
    if (*sub)
      return fail(exit_other, "'" + sub->get_name() +
                                  "' is not built in this engine-only build (CAF, hiredis, msgpack-cxx, "
                                  "prometheus-cpp were missing); run deploy/setup.sh and rebuild");
#endif

  std::cerr << app.help();
  return exit_bad_input;
}

}  // namespace
