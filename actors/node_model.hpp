// The model a node serves, as files and as an identity: the built-in model
// that `brigade serve` runs without -m (synthesised once into the cache), and
// the identity stored with every session so another model never continues it.
#pragma once

#include <string>

#include "kernels/base/status.hpp"
#include "kernels/model/model.hpp"

namespace brigade::actors {

/// The built-in model's file (BRIGADE_CACHE_DIR, default ~/.cache/brigade,
/// then models/small-f16-seed1.gguf), synthesised there if missing; errc::io
/// when the cache directory cannot be made.
result<std::string> builtin_model_path();

/// The model's identity, stored with every session: its name, parameter
/// count and a fingerprint (see node_model.cpp).
std::string model_identity(const llama_model& m);

}  // namespace brigade::actors
