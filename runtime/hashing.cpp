#include "runtime/hashing.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

namespace brigade::runtime {

namespace {
std::string to_hex(const unsigned char* p, size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += hex[p[i] >> 4];
    out += hex[p[i] & 15];
  }
  return out;
}
}  // namespace

std::string sha256_hex(const std::string& text) { return sha256_hex(std::vector<std::string_view>{text}); }

std::string sha256_hex(const std::vector<std::string_view>& parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (std::string_view p : parts) EVP_DigestUpdate(ctx, p.data(), p.size());
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, d, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex(d, len);
}

std::string random_hex(size_t n) {
  std::vector<unsigned char> b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "brigade: %s:%d: the OS gave no random bytes; refusing to mint guessable session ids\n",
                 __FILE__, __LINE__);
    std::abort();
  }
  return to_hex(b.data(), n);
}

}  // namespace brigade::runtime
