// brigade: the command-line program. Parses the command line with CLI11
// (both `--flag VALUE` and `--flag=VALUE`; CAF 0.17's own parser only takes
// the latter) and dispatches to the subcommands of docs/cli.md; the server
// commands build a runtime::node_config from the parsed values.
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
  v += std::string("unicode: ") + brigade::unicode::tables_source();
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
  // out of memory) into the one-sentence error and exit code of docs/cli.md.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    return brigade::app::fail(brigade::app::exit_other, std::string("internal error: ") + e.what());
  }
}

namespace {

using namespace brigade::app;

/// Every subcommand's arguments, filled by CLI11, and the subcommand given.
struct command_line {
  CLI::App* help = nullptr;
  std::vector<std::string> help_topic;
  CLI::App* info = nullptr;
  std::string info_file;
  bool info_json = false;
  CLI::App* tokenize = nullptr;
  std::string tok_model;
  bool tok_pieces = false;
  bool tok_parse_special = false;
  bool tok_continuation = false;
  CLI::App* synth = nullptr;
  synth_cli synth_args;
  CLI::App* gen = nullptr;
  CLI::Option* gen_seed = nullptr;
  generate_cli gen_args;
  CLI::App* mbench = nullptr;
  bench_cli bench_args;
  CLI::App* serve = nullptr;
  CLI::App* chat = nullptr;
  CLI::App* bench = nullptr;
  CLI::App* demo = nullptr;
  CLI::App* cluster = nullptr;
  CLI::App* cluster_status = nullptr;
  CLI::App* cluster_drain = nullptr;
  CLI::App* scaling = nullptr;
  CLI::App* scaling_sim = nullptr;
  CLI::App* top = nullptr;
#ifdef BRIGADE_HAVE_SERVER_DEPS
  top_cli top_args;
  cluster_cli cluster_args;
  cluster_drain_cli drain_args;
  scaling_cli scaling_args;
  server_cli serve_args;
  std::map<std::string, std::string> flag_values;
  std::vector<std::pair<std::string, CLI::Option*>> flag_opts;
  chat_cli chat_args;
  CLI::Option* chat_seed = nullptr;
  bench_server_cli bench_server_args;
  demo_cli demo_args;
#endif
};

void add_help(CLI::App& app, command_line& c) {
  c.help = app.add_subcommand("help", "Show help for brigade or for a subcommand (brigade help model info)");
  c.help->add_option("topic", c.help_topic, "Subcommand names");
}

void add_model_info(CLI::App& model, command_line& c) {
  c.info = model.add_subcommand("info",
                                "Architecture, shapes, tensor types, tokenizer and chat template of a GGUF file "
                                "(vocabulary-only files too)");
  c.info->add_option("file", c.info_file, "GGUF file")->required();
  c.info->add_flag("--json", c.info_json, "Print one JSON object instead of text");
}

void add_model_tokenize(CLI::App& model, command_line& c) {
  c.tokenize = model.add_subcommand("tokenize",
                                    "Tokenize all of standard input verbatim; print one line of space-separated token "
                                    "ids (no BOS; special-token text is plain text)");
  c.tokenize->add_option("-m,--model", c.tok_model, "GGUF file with the vocabulary")->required();
  c.tokenize->add_flag("--pieces", c.tok_pieces,
                       "Print one token per line: its id and the bytes it stands for (\\xNN for bytes of a split "
                       "UTF-8 character)");
  c.tokenize->add_flag("--parse-special", c.tok_parse_special,
                       "Turn the text of control tokens (e.g. <|im_start|>) into those tokens, as a chat template's "
                       "markup is tokenized");
  c.tokenize->add_flag("--continuation", c.tok_continuation,
                       "Tokenize as text that continues earlier text: no SentencePiece space prefix (how the raw "
                       "chat format tokenizes later turns)");
}

void add_model_synth(CLI::App& model, command_line& c) {
  auto& a = c.synth_args;
  c.synth =
      model.add_subcommand("synth", "Write a GGUF llama model with seeded random weights (same arguments, same bytes)");
  c.synth->add_option("--preset", a.preset, "tiny, small (~52M parameters) or tinyllama-1b")
      ->required()
      ->check(CLI::IsMember({"tiny", "small", "tinyllama-1b"}));
  c.synth->add_option("--seed", a.seed, "Random seed")->required();
  c.synth->add_option("--type", a.type, "Weight type: f32, f16, bf16 or q8_0")->capture_default_str();
  c.synth->add_option("--vocab-from", a.vocab_from, "Take the tokenizer from this GGUF file");
  c.synth->add_option("-o,--output", a.out, "Output file")->required();
  c.synth->add_option("--threads", a.threads, "Threads (0: all cores; does not change the output)");
}

void add_model_bench(CLI::App& model, command_line& c) {
  auto& a = c.bench_args;
  c.mbench = model.add_subcommand("bench", "Aggregate decode tokens/s of the engine per batch size");
  c.mbench->add_option("-m,--model", a.model, "GGUF model file")->required();
  c.mbench->add_option("--batch", a.batches, "Batch sizes, comma-separated")->delimiter(',')->capture_default_str();
  c.mbench->add_option("--prompt-tokens", a.prompt_tokens, "Prompt tokens per sequence")->capture_default_str();
  c.mbench->add_option("--gen-tokens", a.gen_tokens, "Timed decode steps")->capture_default_str();
  c.mbench->add_option("--threads", a.threads, "CPU threads (0: all cores)");
  c.mbench->add_option("--device", a.device, "Engine: cpu or cuda:N")->capture_default_str();
  c.mbench->add_flag("--json", a.json, "Print one JSON object as the last line");
}

void add_generate(CLI::App& app, command_line& c) {
  auto& a = c.gen_args;
  c.gen = app.add_subcommand("generate",
                             "Continue a prompt with a model on the CPU: the continuation on standard output, "
                             "statistics on standard error");
  c.gen->add_option("-m,--model", a.model, "GGUF model file")->required();
  c.gen->add_option("-p,--prompt", a.prompt, "Text to continue")->required();
  c.gen->add_option("-n,--max-tokens", a.n_tokens, "Tokens to generate at most")->capture_default_str();
  c.gen->add_option("--temp", a.temp, "Temperature (0: greedy)")->capture_default_str();
  c.gen->add_option("--top-k", a.top_k, "Keep the k most likely tokens (0: all)")->capture_default_str();
  c.gen->add_option("--top-p", a.top_p, "Keep the most likely tokens up to this mass")->capture_default_str();
  c.gen_seed = c.gen->add_option("--seed", a.seed, "Sampling seed (default: random, printed)");
  c.gen->add_option("--threads", a.threads, "CPU threads (0: all cores)");
  c.gen->add_option("--device", a.device, "Engine: cpu or cuda:N")->capture_default_str();
  c.gen->add_flag("--ids", a.ids, "Print token ids instead of text");
  c.gen->add_option("--trace", a.trace,
                    "Write one JSON line per generated token to this file: position, token, top-2 ids and logits");
  c.gen
      ->add_option("--force-ids", a.force,
                   "Continue with these token ids (comma-separated) instead of sampling; with --trace this scores "
                   "another engine's output")
      ->delimiter(',');
}

#ifdef BRIGADE_HAVE_SERVER_DEPS
void add_serve(command_line& c) {
  for (const auto& k : brigade::runtime::config_keys()) {
    const std::string help = k.help + (k.unit.empty() ? "" : " (" + k.unit + ")") + "; env " +
                             brigade::runtime::env_name(k.name) + ", default " + k.get(brigade::runtime::node_config{});
    std::string names = "--" + k.name;
    if (k.name == "model") names = "-m,--model";
    c.flag_opts.emplace_back(k.name, c.serve->add_option(names, c.flag_values[k.name], help));
  }
  c.serve->add_option("--config", c.serve_args.config_file, "Config file of key = value lines (env BRIGADE_CONFIG)");
  c.serve->add_flag("--fault-injection", c.serve_args.fault_injection,
                    "Accept b_fault requests that crash a session actor (supervision tests only)");
}

void add_chat(command_line& c) {
  auto& a = c.chat_args;
  CLI::App* cmd = c.chat;
  cmd->add_option("--host", a.host,
                  "Node address, or several nodes: HOST:PORT,HOST:PORT,... (the client uses one that answers and moves "
                  "to the next when it dies)")
      ->capture_default_str();
  cmd->add_option("--port", a.port, "Node BASP port (for --host entries without one)")->capture_default_str();
  cmd->add_option("-p,--prompt", a.prompt, "Send this one message, print the reply, exit");
  cmd->add_option("--session", a.session, "Session id (with --token)");
  cmd->add_option("--token", a.token, "Session token");
  cmd->add_option("--seq", a.seq, "Turn number (default: the next after the last committed)");
  cmd->add_flag("--open", a.open, "Open a session and print SESSION_ID TOKEN");
  cmd->add_flag("--history", a.history, "Print the committed turns as JSON lines");
  cmd->add_flag("--close", a.close, "Delete the session");
  cmd->add_flag("--fault", a.fault, "Crash the session's actor (node with --fault-injection)");
  cmd->add_option("-n,--max-tokens", a.max_tokens, "Cap on generated tokens (0: the node's cap)");
  cmd->add_option("--temp", a.temp, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", a.top_k, "Top-k (0: no limit)")->capture_default_str();
  cmd->add_option("--top-p", a.top_p, "Top-p")->capture_default_str();
  c.chat_seed = cmd->add_option("--seed", a.seed, "Sampling seed");
  cmd->add_option("--stop", a.stop, "Stop string (repeatable)");
  cmd->add_option("--timeout", a.timeout_s, "Seconds without a token before retrying")->capture_default_str();
}

void add_bench(command_line& c) {
  auto& a = c.bench_server_args;
  CLI::App* cmd = c.bench;
  cmd->add_option("--host", a.host,
                  "Node address, or several nodes: HOST:PORT,HOST:PORT,... (the client uses one that answers and moves "
                  "to the next when it dies)")
      ->capture_default_str();
  cmd->add_option("--port", a.port, "Node BASP port (for --host entries without one)")->capture_default_str();
  cmd->add_option("--sessions", a.sessions, "Concurrent sessions")->capture_default_str();
  cmd->add_option("--turns", a.turns, "Turns per session")->capture_default_str();
  cmd->add_option("-n,--max-tokens", a.max_tokens, "Tokens per reply at most")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object as the last line");
  cmd->add_flag("--verify", a.verify,
                "Afterwards, check every acknowledged turn is in its session's history exactly once");
  cmd->add_flag("--api", a.api,
                "Drive the node's OpenAI-compatible HTTP API (streamed chat in durable sessions) instead of BASP");
  cmd->add_option("--api-port", a.api_port, "The node's HTTP API port (with --api)")->capture_default_str();
  cmd->add_option("--api-key", a.api_key, "Bearer key for the HTTP API (with --api; default: BRIGADE_API_KEY)");
}

void add_cluster(command_line& c) {
  auto& a = c.cluster_args;
  CLI::App* cmd = c.cluster_status;
  cmd->add_option("--host", a.host, "Any node, or several: HOST:PORT,HOST:PORT,... (the first that answers)")
      ->capture_default_str();
  cmd->add_option("--port", a.port, "Node BASP port (for --host entries without one)")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object as the last line");
  auto& d = c.drain_args;
  CLI::App* dr = c.cluster_drain;
  dr->add_option("node", d.node, "The member to drain (its --node-name)")->required();
  dr->add_option("--host", d.host, "Any node, or several: HOST:PORT,HOST:PORT,... (the first that answers)")
      ->capture_default_str();
  dr->add_option("--port", d.port, "Node BASP port (for --host entries without one)")->capture_default_str();
  dr->add_option("--admin-token-file", d.admin_token_file, "File with the admin token the nodes were started with");
  dr->add_option("--timeout", d.timeout_s, "Seconds to wait until the node has left")->capture_default_str();
}

void add_top(command_line& c) {
  auto& a = c.top_args;
  CLI::App* cmd = c.top;
  cmd->add_option("--host", a.host, "Any node, or several: HOST:PORT,HOST:PORT,... (fails over between them)")
      ->capture_default_str();
  cmd->add_option("--port", a.port, "Node BASP port (for --host entries without one)")->capture_default_str();
  cmd->add_option("--interval", a.interval_s, "Seconds between refreshes")->capture_default_str();
  cmd->add_option("--iterations", a.iterations, "Frames to show before exiting (0: until q)")->capture_default_str();
}

void add_scaling(command_line& c) {
  auto& a = c.scaling_args;
  CLI::App* cmd = c.scaling_sim;
  cmd->add_option("--ttft-target", a.ttft_target, "Time-to-first-token objective")->capture_default_str();
  cmd->add_option("--min-replicas", a.min_replicas, "Fewest nodes (at least 1)")->capture_default_str();
  cmd->add_option("--max-replicas", a.max_replicas, "Most nodes")->capture_default_str();
  cmd->add_option("--scale-interval", a.interval, "Time between evaluations (the trace sends one line per evaluation)")
      ->capture_default_str();
  cmd->add_option("--scale-down-window", a.down_window, "How long the load must need fewer nodes before going down")
      ->capture_default_str();
  cmd->add_option("--backlog-horizon", a.backlog, "Drain waiting turns within this (0: the TTFT objective)")
      ->capture_default_str();
}

void add_demo(command_line& c) {
  c.demo->add_option("--seconds", c.demo_args.seconds, "How long the users chat")->capture_default_str();
  c.demo->add_option("--users", c.demo_args.users, "Simulated users")->capture_default_str();
  c.demo->add_option("-m,--model", c.demo_args.model, "GGUF model (default: the built-in model)");
}
#endif

void add_server_commands(CLI::App& app, command_line& c) {
  c.serve = app.add_subcommand("serve", "Run a node: sessions, batching, the gateway over BASP, metrics");
  c.chat = app.add_subcommand("chat", "Chat with a node (interactive, or -p TEXT for scripts)");
  c.bench = app.add_subcommand("bench", "Load a node with many concurrent sessions over BASP (or --api: HTTP)");
  c.demo = app.add_subcommand("demo", "Start a node in-process and chat with it as many users, live");
  c.cluster = app.add_subcommand("cluster", "Inspect and drain the cluster of nodes that share a Redis database");
  c.cluster->require_subcommand(1);
  c.cluster_status = c.cluster->add_subcommand("status", "One line per member (name, state, load), read from any node");
  c.cluster_drain = c.cluster->add_subcommand(
      "drain", "Drain a member as on SIGTERM (sessions hand over, it leaves, exits 0); needs the admin token");
  c.top = app.add_subcommand("top", "The cluster in the terminal, refreshed every second (q quits)");
  c.scaling = app.add_subcommand("scaling", "The cluster-wide replica signal (docs/scaling.md)");
  c.scaling->require_subcommand(1);
  c.scaling_sim = c.scaling->add_subcommand(
      "simulate", "Run the replica formula on JSON lines from standard input, one evaluation per line (bench/scaling_sim.py)");
#ifdef BRIGADE_HAVE_SERVER_DEPS
  add_cluster(c);
  add_top(c);
  add_scaling(c);
  add_serve(c);
  add_chat(c);
  add_bench(c);
  add_demo(c);
#endif
}

int show_help(CLI::App& app, const command_line& c) {
  CLI::App* topic = find_topic(app, c.help_topic);
  if (!topic)
    return fail(exit_bad_input,
                "no such subcommand: " + CLI::detail::join(c.help_topic, " ") + "; run 'brigade help' for the list");
  std::cout << topic->help();
  return exit_ok;
}

/// Runs the subcommand that was given (-1: none was).
int dispatch(command_line& c) {
  if (*c.info) return model_info(c.info_file, c.info_json);
  if (*c.tokenize) return model_tokenize(c.tok_model, c.tok_pieces, c.tok_parse_special, c.tok_continuation);
  if (*c.synth) return model_synth(c.synth_args);
  if (*c.gen) {
    c.gen_args.seed_set = c.gen_seed->count() > 0;
    return generate(c.gen_args);
  }
  if (*c.mbench) return model_bench(c.bench_args);
#ifdef BRIGADE_HAVE_SERVER_DEPS
  if (*c.serve) {
    for (auto& [name, opt] : c.flag_opts)
      if (opt->count() > 0) c.serve_args.flags[name] = c.flag_values[name];
    return serve(c.serve_args);
  }
  if (*c.chat) {
    c.chat_args.seed_set = c.chat_seed->count() > 0;
    return chat(c.chat_args);
  }
  if (*c.bench) return bench(c.bench_server_args);
  if (*c.demo) return demo(c.demo_args);
  if (*c.cluster_status) return cluster_status_command(c.cluster_args);
  if (*c.cluster_drain) return cluster_drain_command(c.drain_args);
  if (*c.scaling_sim) return scaling_simulate(c.scaling_args);
  if (*c.top) return top(c.top_args);
#else
  for (CLI::App* sub : {c.serve, c.chat, c.bench, c.demo, c.cluster, c.scaling, c.top})
    if (*sub)
      return fail(exit_other, "'" + sub->get_name() +
                                  "' is not built in this engine-only build (CAF, hiredis, msgpack-cxx, "
                                  "prometheus-cpp were missing); run deploy/setup.sh and rebuild");
#endif
  return -1;
}

int run(int argc, char** argv) {
  CLI::App app{"brigade: durable, batched LLM chat serving on an actor runtime.", "brigade"};
  app.set_version_flag("--version", version_text(), "Print the version and build options, then exit");
  app.require_subcommand(0, 1);
  command_line c;
  add_help(app, c);
  CLI::App* model = app.add_subcommand("model", "Make, inspect, tokenize with and benchmark GGUF model files");
  model->require_subcommand(1);
  add_model_info(*model, c);
  add_model_tokenize(*model, c);
  add_model_synth(*model, c);
  add_generate(app, c);
  add_model_bench(*model, c);
  add_server_commands(app, c);
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
  if (*c.help) return show_help(app, c);
  if (const int rc = dispatch(c); rc >= 0) return rc;
  std::cerr << app.help();
  return exit_bad_input;
}

}  // namespace
