// `brigade model info` and `brigade model tokenize`.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "app/commands.hpp"
#include "app/json.hpp"
#include "kernels/chat_template.hpp"
#include "kernels/gguf.hpp"
#include "kernels/tokenizer.hpp"

namespace brigade::app {

int fail(int code, const std::string& message) {
  std::cerr << "brigade: " << message << "\n";
  return code;
}

namespace {

/// Exit code for a kernels/ error: files the user named are input.
int code_for(const status& s) {
  switch (s.code()) {
    case errc::io:
    case errc::malformed:
    case errc::unsupported:
    case errc::invalid_argument:
    case errc::not_found: return exit_bad_input;
    default: return exit_other;
  }
}

struct hparams {
  uint64_t context_length = 0, embedding_length = 0, block_count = 0, feed_forward_length = 0;
  uint64_t head_count = 0, head_count_kv = 0, vocab_size = 0, rope_dimension_count = 0;
  double rope_freq_base = 0, rms_epsilon = 0;
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

}  // namespace

int model_info(const std::string& path, bool as_json) {
  auto file = gguf::gguf_file::open(path);
  if (!file) return fail(code_for(file.error()), file.error().message());
  const gguf::gguf_file& f = *file;

  auto arch = f.get_string("general.architecture", "");
  if (!arch) return fail(exit_bad_input, arch.error().message());
  auto name = f.get_string("general.name", "");
  if (!name) return fail(exit_bad_input, name.error().message());

  // Shapes under "<arch>.": read what is there; wrong types are errors.
  hparams hp;
  const std::string a = *arch + ".";
  status bad;
  auto u = [&](const char* key, uint64_t& out) {
    auto v = f.get_uint(a + key, 0);
    if (!v) bad = v.error();
    else out = *v;
  };
  auto d = [&](const char* key, double& out) {
    auto v = f.get_float(a + key, 0);
    if (!v) bad = v.error();
    else out = *v;
  };
  u("context_length", hp.context_length);
  u("embedding_length", hp.embedding_length);
  u("block_count", hp.block_count);
  u("feed_forward_length", hp.feed_forward_length);
  u("attention.head_count", hp.head_count);
  u("attention.head_count_kv", hp.head_count_kv);
  u("vocab_size", hp.vocab_size);
  u("rope.dimension_count", hp.rope_dimension_count);
  d("rope.freq_base", hp.rope_freq_base);
  d("attention.layer_norm_rms_epsilon", hp.rms_epsilon);
  if (!bad) return fail(exit_bad_input, bad.message());

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
  bool recognised = false;
  const chat_format fmt = detect_chat_format(tmpl_text, &recognised);

  if (as_json) {
    json::object shapes;
    shapes.add("context_length", hp.context_length)
        .add("embedding_length", hp.embedding_length)
        .add("block_count", hp.block_count)
        .add("feed_forward_length", hp.feed_forward_length)
        .add("head_count", hp.head_count)
        .add("head_count_kv", hp.head_count_kv)
        .add("vocab_size", hp.vocab_size)
        .add("rope_dimension_count", hp.rope_dimension_count)
        .add("rope_freq_base", hp.rope_freq_base)
        .add("rms_epsilon", hp.rms_epsilon);
    json::object types;
    for (const auto& [t, n] : by_type) types.add(t, n);
    json::object tj;
    tj.add("model", tok_model ? *tok_model : "").add("pre", tok_pre ? *tok_pre : "");
    if (tok) {
      tj.add("supported", true)
          .add("n_tokens", static_cast<int64_t>(tok->n_vocab()))
          .add("bos", static_cast<int64_t>(tok->bos()))
          .add("eos", static_cast<int64_t>(tok->eos()))
          .add("add_bos", tok->add_bos());
    } else {
      tj.add("supported", false).add("error", tok_error);
    }
    json::object cj;
    cj.add("format", to_string(fmt)).add("recognised", recognised).add("present", !tmpl_text.empty());
    json::object o;
    o.add("file", path)
        .add("size_bytes", static_cast<uint64_t>(f.size()))
        .add("gguf_version", static_cast<int64_t>(f.version()))
        .add("alignment", static_cast<int64_t>(f.alignment()))
        .add("metadata_keys", static_cast<uint64_t>(f.metadata().size()))
        .add("architecture", *arch)
        .add("name", *name)
        .add_raw("shapes", shapes.str())
        .add("n_tensors", static_cast<uint64_t>(f.tensors().size()))
        .add("n_parameters", n_params)
        .add("tensor_bytes", n_tensor_bytes)
        .add_raw("tensor_types", types.str())
        .add_raw("tokenizer", tj.str())
        .add_raw("chat_template", cj.str());
    std::cout << o.str() << "\n";
    return exit_ok;
  }

  std::ostringstream out;
  out << "file:          " << path << " (" << human_bytes(f.size()) << ", GGUF v" << f.version() << ", "
      << f.metadata().size() << " metadata keys)\n";
  out << "architecture:  " << (arch->empty() ? "(none)" : *arch);
  if (!name->empty()) out << " \"" << *name << "\"";
  out << "\n";
  out << "shapes:        context " << hp.context_length << ", embedding " << hp.embedding_length << ", layers "
      << hp.block_count << ", feed-forward " << hp.feed_forward_length << ", heads " << hp.head_count << " (kv "
      << hp.head_count_kv << ")";
  if (hp.rope_freq_base > 0) out << ", rope theta " << hp.rope_freq_base;
  if (hp.rms_epsilon > 0) out << ", rms eps " << hp.rms_epsilon;
  out << "\n";
  out << "tensors:       " << f.tensors().size();
  if (!f.tensors().empty()) {
    out << " (";
    bool first = true;
    for (const auto& [t, n] : by_type) {
      out << (first ? "" : ", ") << t << ": " << n;
      first = false;
    }
    out << "), " << n_params << " parameters, " << human_bytes(n_tensor_bytes);
  } else {
    out << " (vocabulary only)";
  }
  out << "\n";
  out << "tokenizer:     ";
  if (tok) {
    out << to_string(tok->type()) << ", " << tok->n_vocab() << " tokens, pre '" << tok->pre() << "', bos "
        << tok->bos() << ", eos " << tok->eos() << (tok->add_bos() ? " (BOS added)" : " (no BOS)");
  } else {
    out << "unusable: " << tok_error;
  }
  out << "\n";
  out << "chat template: " << to_string(fmt)
      << (tmpl_text.empty() ? " (no template in the file; default)"
                            : recognised ? " (recognised)" : " (unrecognised template; default)")
      << "\n";
  std::cout << out.str();
  return exit_ok;
}

int model_tokenize(const std::string& path) {
  auto file = gguf::gguf_file::open(path);
  if (!file) return fail(code_for(file.error()), file.error().message());
  auto tok = tokenizer::from_gguf(*file);
  if (!tok) return fail(code_for(tok.error()), tok.error().message());
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) return fail(exit_other, "cannot read standard input");
  const std::vector<token_id> ids = tok->encode(text, /*add_bos=*/false, /*parse_special=*/false);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return std::fflush(stdout) == 0 ? exit_ok : exit_other;
}

}  // namespace brigade::app
