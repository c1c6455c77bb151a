// `brigade model info` and `brigade model tokenize`.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>

#include "app/commands.hpp"
#include "app/json.hpp"
#include "kernels/model/chat_choice.hpp"
#include "kernels/model/chat_template.hpp"
#include "kernels/model/gguf.hpp"
#include "kernels/model/tokenizer.hpp"

namespace brigade::app {

int exit_code_for(const status& s) {
  switch (s.code()) {
    case errc::io:
    case errc::malformed:
    case errc::unsupported:
    case errc::invalid_argument:
    case errc::not_found: return exit_bad_input;
    default: return exit_other;
  }
}

int fail(int code, const std::string& message) {
  std::cerr << "brigade: " << message << "\n";
  return code;
}

namespace {

/// Shape keys read from "<architecture>.<suffix>"; absent keys stay unset.
struct shape_key {
  const char* json_name;
  const char* suffix;
  const char* text_name;
  bool is_float;
};
constexpr shape_key shape_keys[] = {
    {"context_length", "context_length", "context", false},
    {"embedding_length", "embedding_length", "embedding", false},
    {"block_count", "block_count", "layers", false},
    {"feed_forward_length", "feed_forward_length", "feed-forward", false},
    {"head_count", "attention.head_count", "heads", false},
    {"head_count_kv", "attention.head_count_kv", "kv heads", false},
    {"vocab_size", "vocab_size", "vocab", false},
    {"rope_dimension_count", "rope.dimension_count", "rope dims", false},
    {"rope_freq_base", "rope.freq_base", "rope theta", true},
    {"rms_epsilon", "attention.layer_norm_rms_epsilon", "rms eps", true},
};

std::string human_bytes(uint64_t b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
  return buf;
}

/// Valid UTF-8 as is; control characters and bytes of incomplete or invalid
/// sequences as escapes, so a piece is always visible on one line.
std::string printable(const std::string& bytes) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  auto hex = [&](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", c);
    out += buf;
  };
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c == '\n') {
      out += "\\n";
      ++i;
      continue;
    }
    if (c == '\t') {
      out += "\\t";
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F || c == '\\') {
      if (c == '\\')
        out += "\\\\";
      else
        hex(c);
      ++i;
      continue;
    }
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (!ok) {
      hex(c);
      ++i;
      continue;
    }
    out.append(bytes, i, len);
    i += len;
  }
  return out;
}

}  // namespace

// What `model info` reports about a file, gathered once for both outputs.
struct model_facts {
  std::string path, arch, name;
  std::vector<std::optional<double>> shapes;
  std::map<std::string, uint64_t> by_type;
  uint64_t n_params = 0, n_tensor_bytes = 0;
  const tokenizer* tok = nullptr;  // null when unusable
  std::string tok_error, tok_model, tok_pre, tmpl_text;
  chat_detection detected;
  const chat_choice* choice = nullptr;  // null when auto cannot decide
  std::vector<std::string> problems;    // what a node would refuse
};

int print_info_json(const gguf::gguf_file& f, const model_facts& m) {
  json::object shapes_json;
  for (size_t i = 0; i < m.shapes.size(); ++i) {
    const shape_key& k = shape_keys[i];
    if (!m.shapes[i])
      shapes_json.add_null(k.json_name);
    else if (k.is_float)
      shapes_json.add(k.json_name, *m.shapes[i]);
    else
      shapes_json.add(k.json_name, static_cast<uint64_t>(*m.shapes[i]));
  }
  json::object types;
  for (const auto& [t, n] : m.by_type) types.add(t, n);
  json::object tj;
  tj.add("model", m.tok_model).add("pre", m.tok_pre);
  if (m.tok) {
    tj.add("supported", true)
        .add("n_tokens", static_cast<int64_t>(m.tok->n_vocab()))
        .add("bos", static_cast<int64_t>(m.tok->bos()))
        .add("eos", static_cast<int64_t>(m.tok->eos()))
        .add("add_bos", m.tok->add_bos())
        .add("add_eos", m.tok->add_eos())
        .add("pre_family", m.tok->pre_family())
        .add("ignore_merges", m.tok->ignore_merges());
    std::string eog = "[";
    for (token_id id : m.tok->end_of_generation()) eog += (eog.size() > 1 ? "," : "") + std::to_string(id);
    tj.add_raw("end_of_generation", eog + "]");
  } else {
    tj.add("supported", false).add("error", m.tok_error);
  }
  json::object cj;
  cj.add("present", !m.tmpl_text.empty()).add("recognised", m.detected.recognised);
  if (!m.detected.llama_cpp_name.empty()) cj.add("llama_cpp_format", m.detected.llama_cpp_name);
  if (m.choice) {
    cj.add("format", to_string(m.choice->format)).add("reason", m.choice->reason);
    if (!m.choice->warning.empty()) cj.add("warning", m.choice->warning);
  } else {
    cj.add_null("format");
  }
  std::string pj = "[";
  for (const auto& pr : m.problems) pj += (pj.size() > 1 ? "," : "") + json::quote(pr);
  pj += "]";
  json::object o;
  o.add("file", m.path)
      .add("size_bytes", static_cast<uint64_t>(f.size()))
      .add("gguf_version", static_cast<int64_t>(f.version()))
      .add("alignment", static_cast<int64_t>(f.alignment()))
      .add("metadata_keys", static_cast<uint64_t>(f.metadata().size()))
      .add("architecture", m.arch)
      .add("name", m.name)
      .add_raw("shapes", shapes_json.str())
      .add("n_tensors", static_cast<uint64_t>(f.tensors().size()))
      .add("n_parameters", m.n_params)
      .add("tensor_bytes", m.n_tensor_bytes)
      .add_raw("tensor_types", types.str())
      .add_raw("tokenizer", tj.str())
      .add_raw("chat_template", cj.str())
      .add("servable", m.problems.empty())
      .add_raw("problems", pj);
  std::cout << o.str() << "\n";
  return exit_ok;
}

int print_info_text(const gguf::gguf_file& f, const model_facts& m) {
  std::ostringstream out;
  out << "file:          " << m.path << " (" << human_bytes(f.size()) << ", GGUF v" << f.version() << ", "
      << f.metadata().size() << " metadata keys)\n";
  out << "architecture:  " << (m.arch.empty() ? "(none)" : m.arch);
  if (!m.name.empty()) out << " \"" << m.name << "\"";
  out << "\n";
  out << "shapes:       ";
  bool any_shape = false;
  for (size_t i = 0; i < m.shapes.size(); ++i) {
    if (!m.shapes[i]) continue;
    out << (any_shape ? ", " : " ") << shape_keys[i].text_name << " ";
    if (shape_keys[i].is_float)
      out << *m.shapes[i];
    else
      out << static_cast<uint64_t>(*m.shapes[i]);
    any_shape = true;
  }
  out << (any_shape ? "\n" : " (none in the file)\n");
  out << "tensors:       " << f.tensors().size();
  if (!f.tensors().empty()) {
    out << " (";
    bool first = true;
    for (const auto& [t, n] : m.by_type) {
      out << (first ? "" : ", ") << t << ": " << n;
      first = false;
    }
    out << "), " << m.n_params << " parameters, " << human_bytes(m.n_tensor_bytes);
  } else {
    out << " (vocabulary only)";
  }
  out << "\n";
  out << "tokenizer:     ";
  if (m.tok) {
    out << m.tok->model_name() << ", " << m.tok->n_vocab() << " tokens, ";
    if (m.tok->type() == vocab_type::gpt2)
      out << "pre-tokenizer '" << m.tok->pre() << "' (llama.cpp's " << m.tok->pre_family() << ")";
    else
      out << "SentencePiece";
    out << ", bos " << m.tok->bos() << ", eos " << m.tok->eos() << (m.tok->add_bos() ? " (BOS added)" : " (no BOS)");
    out << ", end of generation:";
    for (token_id id : m.tok->end_of_generation()) out << " " << id << " " << m.tok->text(id);
  } else {
    out << "unusable: " << m.tok_error;
  }
  out << "\n";
  out << "chat template: ";
  if (m.choice)
    out << to_string(m.choice->format) << " (" << m.choice->reason << ")";
  else
    out << "none";
  out << "\n";
  if (m.choice && !m.choice->warning.empty()) out << "warning:       " << m.choice->warning << "\n";
  out << "servable:      " << (m.problems.empty() ? "yes" : "no") << "\n";
  for (const auto& pr : m.problems) out << "  cannot serve: " << pr << "\n";
  std::cout << out.str();
  return exit_ok;
}

int model_info(const std::string& path, bool as_json) {
  auto file = gguf::gguf_file::open(path);
  if (!file) return fail(exit_code_for(file.error()), file.error().message());
  const gguf::gguf_file& f = *file;

  auto arch = f.get_string("general.architecture", "");
  if (!arch) return fail(exit_bad_input, arch.error().message());
  auto name = f.get_string("general.name", "");
  if (!name) return fail(exit_bad_input, name.error().message());

  // Shapes under "<arch>.": read what is there; wrong types are errors.
  std::vector<std::optional<double>> shapes;
  for (const auto& k : shape_keys) {
    const std::string key = *arch + "." + k.suffix;
    const gguf::value* v = f.find(key);
    // Absent, or per-layer arrays (some architectures): not a single number.
    if (!v || v->type == gguf::value_type::array) {
      shapes.emplace_back();
      continue;
    }
    if (k.is_float) {
      auto v = f.get_float(key, 0);
      if (!v) return fail(exit_bad_input, v.error().message());
      shapes.emplace_back(*v);
    } else {
      auto v = f.get_uint(key, 0);
      if (!v) return fail(exit_bad_input, v.error().message());
      shapes.emplace_back(static_cast<double>(*v));
    }
  }

  std::map<std::string, uint64_t> by_type;
  uint64_t n_params = 0, n_tensor_bytes = 0;
  for (const auto& t : f.tensors()) {
    ++by_type[ggml_type_name(static_cast<uint32_t>(t.type))];
    n_params += static_cast<uint64_t>(t.n_elements());
    n_tensor_bytes += t.n_bytes;
  }

  auto tok = tokenizer::from_gguf(f);
  const std::string tok_error = tok ? "" : tok.error().message();
  auto tok_model = f.get_string("tokenizer.ggml.model", "");
  auto tok_pre = f.get_string("tokenizer.ggml.pre", "");
  auto tmpl = f.get_string("tokenizer.chat_template", "");
  const std::string tmpl_text = tmpl ? *tmpl : "";
  const chat_detection detected = detect_chat_format(tmpl_text);
  result<chat_choice> choice = tok ? choose_chat_format(tmpl_text, *tok, "auto")
                                   : result<chat_choice>(status{errc::unsupported, "no usable tokenizer"});
  // What a node would refuse, before it tries to load the file.
  std::vector<std::string> problems;
  if (!tok) problems.push_back(tok_error);
  if (tok && !choice) problems.push_back(choice.error().message());
  if (*arch != "llama")
    problems.push_back("architecture '" + *arch + "' is not supported (brigade runs llama)");
  else if (f.tensors().empty())
    problems.push_back("no tensors: a vocabulary-only file cannot generate");

  model_facts m;
  m.path = path;
  m.arch = *arch;
  m.name = *name;
  m.shapes = std::move(shapes);
  m.by_type = std::move(by_type);
  m.n_params = n_params;
  m.n_tensor_bytes = n_tensor_bytes;
  m.tok = tok ? &*tok : nullptr;
  m.tok_error = tok_error;
  m.tok_model = tok_model ? *tok_model : "";
  m.tok_pre = tok_pre ? *tok_pre : "";
  m.tmpl_text = tmpl_text;
  m.detected = detected;
  m.choice = choice ? &*choice : nullptr;
  m.problems = std::move(problems);
  return as_json ? print_info_json(f, m) : print_info_text(f, m);
}

int model_tokenize(const std::string& path, bool pieces, bool parse_special, bool continuation) {
  auto file = gguf::gguf_file::open(path);
  if (!file) return fail(exit_code_for(file.error()), file.error().message());
  auto tok = tokenizer::from_gguf(*file);
  if (!tok) return fail(exit_code_for(tok.error()), tok.error().message());
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) return fail(exit_other, "cannot read standard input");
  if (continuation && parse_special)
    return fail(exit_bad_input, "--continuation and --parse-special cannot be combined");
  const std::vector<token_id> ids =
      continuation ? tok->encode_continuation(text) : tok->encode(text, /*add_bos=*/false, parse_special);
  std::string line;
  if (pieces) {
    for (token_id id : ids) line += std::to_string(id) + "\t" + printable(tok->piece(id, true)) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    return std::fflush(stdout) == 0 ? exit_ok : exit_other;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return std::fflush(stdout) == 0 ? exit_ok : exit_other;
}

}  // namespace brigade::app
