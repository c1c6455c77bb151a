// Helpers shared by the kernels/ tests: where BRIGADE_TESTDATA_DIR is, and
// exactly-sized heap copies so AddressSanitizer sees any read past the end.
#pragma once

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace brigade::test {

/// The test data (the environment's BRIGADE_TESTDATA_DIR overrides the configured path).
inline std::string testdata_dir() {
  if (const char* e = std::getenv("BRIGADE_TESTDATA_DIR")) return e;
  return BRIGADE_TESTDATA_DIR_DEFAULT;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A heap buffer of exactly `n` bytes (no slack for an over-read to hide in).
struct exact_buffer {
  std::unique_ptr<unsigned char[]> data;
  size_t size;
  exact_buffer(const unsigned char* src, size_t n) : data(new unsigned char[n ? n : 1]), size(n) {
    if (n) std::memcpy(data.get(), src, n);
  }
};

}  // namespace brigade::test
