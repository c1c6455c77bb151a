#include "actors/node_model.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "kernels/model/gguf.hpp"
#include "kernels/model/synth.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"

namespace brigade::actors {

result<std::string> builtin_model_path() {
  const char* env = std::getenv("BRIGADE_CACHE_DIR");
  const char* home = std::getenv("HOME");
  std::string dir = env && *env ? env : std::string(home ? home : "/tmp") + "/.cache/brigade";
  std::string models = dir + "/models";
  for (const std::string& d : {dir, models})
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST)
      return status{errc::io, d + ": cannot create the cache directory (" + std::strerror(errno) + ")"};
  const std::string path = models + "/small-f16-seed1.gguf";
  struct stat s {};
  if (::stat(path.c_str(), &s) == 0) return path;
  runtime::log(runtime::log_level::info, "", "synthesising the built-in model into " + path);
  synth_options o;
  o.preset = "small";
  o.seed = 1;
  o.type = ggml_type::f16;
  if (auto st = synthesize_model(o, path); !st) return st;  // written atomically
  return path;
}

/// The model's identity, stored with every session: its name, parameter
/// count and a fingerprint (SHA-256 of the GGUF header, i.e. all metadata,
/// vocabulary and tensor shapes, plus the first and last 4 KiB of every
/// tensor's data). The same weights under another file name are the same
/// model; other weights under the same name are not.
std::string model_identity(const llama_model& m) {
  const gguf::gguf_file& f = m.file();
  std::vector<std::string_view> parts{{reinterpret_cast<const char*>(f.bytes()), f.data_offset()}};
  for (const auto& t : f.tensors()) {
    const size_t n = std::min<uint64_t>(t.n_bytes, 4096);
    parts.emplace_back(reinterpret_cast<const char*>(t.data), n);
    parts.emplace_back(reinterpret_cast<const char*>(t.data + t.n_bytes - n), n);
  }
  auto name = f.get_string("general.name", "");
  const std::string base = name && !name->empty() ? *name : "model";
  return base + ":" + std::to_string(m.n_params()) + ":" + runtime::sha256_hex(parts).substr(0, 16);
}

}  // namespace brigade::actors
