// chat_render: renders llama.cpp's fixed test conversation with our chat
// templates, for tests/peer/chat_template_test.py.
//
// stdin: records (4-byte little-endian length, then the bytes), three per case:
// the Jinja template text, the BOS text, the EOS text; until end of input.
// stdout: two records per case: the detected format (to_string, or
// "unrecognised:" + llama.cpp's name, "" when llama.cpp has none), then the
// conversation rendered in that format (ChatML when unrecognised) with the
// generation prompt. Exit status 2 on a truncated record.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "kernels/model/chat_template.hpp"

namespace {

// Reads one record; nullopt at a clean end of input. `truncated` is set when
// the input ends inside a record.
std::optional<std::string> read_record(bool& truncated) {
  unsigned char len_bytes[4];
  const size_t got = std::fread(len_bytes, 1, 4, stdin);
  if (got != 4) {
    truncated = got != 0;
    return std::nullopt;
  }
  const uint32_t n = uint32_t(len_bytes[0]) | uint32_t(len_bytes[1]) << 8 | uint32_t(len_bytes[2]) << 16 |
                     uint32_t(len_bytes[3]) << 24;
  std::string s(n, '\0');
  if (n != 0 && std::fread(s.data(), 1, n, stdin) != n) {
    truncated = true;
    return std::nullopt;
  }
  return s;
}

void write_record(const std::string& s) {
  const auto n = static_cast<uint32_t>(s.size());
  const unsigned char len_bytes[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                                      static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
  std::fwrite(len_bytes, 1, 4, stdout);
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// main_automated_tests' `conversation` in llama.cpp's tests/test-chat-template.cpp.
const std::vector<brigade::chat_message> conversation = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

}  // namespace

int main() {
  bool truncated = false;
  for (;;) {
    auto tmpl = read_record(truncated);
    if (!tmpl) break;
    auto bos = read_record(truncated);
    auto eos = bos ? read_record(truncated) : std::nullopt;
    if (!bos || !eos) {
      truncated = true;
      break;
    }
    const brigade::chat_detection d = brigade::detect_chat_format(*tmpl);
    write_record(d.recognised ? std::string(to_string(d.format)) : "unrecognised:" + d.llama_cpp_name);
    write_record(join(render_chat(d.format, conversation, true, *bos, *eos)));
  }
  std::fflush(stdout);
  if (truncated) {
    std::fprintf(stderr, "chat_render: input ends inside a record; expected 3 length-prefixed records per case\n");
    return 2;
  }
  return 0;
}
