// Tokenizes many texts with one vocabulary, for the peer tests: reads records
// (4-byte little-endian length, then the bytes) from standard input and
// prints one line of space-separated ids per record.
//
// usage: tokenize_batch VOCAB.gguf [--parse-special]
//        tokenize_batch --list-pre    (every pre-tokenizer name: name, family, refusal; tab-separated)
// Exit 0; 2 with the reason on stderr when the file cannot be loaded.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "kernels/model/gguf.hpp"
#include "kernels/model/pretokenizer.hpp"
#include "kernels/model/tokenizer.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tokenize_batch VOCAB.gguf [--parse-special]\n");
    return 2;
  }
  if (std::string(argv[1]) == "--list-pre") {
    for (const auto& n : brigade::pretokenizer_names())
      std::printf("%s\t%s\t%s\n", n.name.c_str(), n.family.c_str(), n.refusal.c_str());
    return 0;
  }
  const bool parse_special = argc > 2 && std::string(argv[2]) == "--parse-special";
  auto file = brigade::gguf::gguf_file::open(argv[1]);
  if (!file) {
    std::fprintf(stderr, "%s\n", file.error().message().c_str());
    return 2;
  }
  auto tok = brigade::tokenizer::from_gguf(*file);
  if (!tok) {
    std::fprintf(stderr, "%s\n", tok.error().message().c_str());
    return 2;
  }
  const std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string out;
  for (size_t at = 0; at + 4 <= in.size();) {
    const auto* p = reinterpret_cast<const unsigned char*>(in.data() + at);
    const uint32_t len = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
    at += 4;
    const std::string text = in.substr(at, len);
    at += len;
    const auto ids = tok->encode(text, false, parse_special);
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
