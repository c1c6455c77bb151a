// Hashing and random ids (OpenSSL): session tokens are stored only as their
// SHA-256, session ids and tokens come from the OS's random source, and the
// model identity is a SHA-256 over parts of the file. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace brigade::runtime {

/// SHA-256 of `text` as lowercase hex.
std::string sha256_hex(const std::string& text);
/// SHA-256 of the parts one after another (no copy), as lowercase hex.
std::string sha256_hex(const std::vector<std::string_view>& parts);
/// `n` random bytes from the OS, as lowercase hex. Aborts with file:line if
/// the OS has none (a guessable session id would be a security hole).
std::string random_hex(size_t n);

}  // namespace brigade::runtime
