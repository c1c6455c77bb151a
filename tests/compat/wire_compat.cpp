// Wire compatibility: every message type brigade registers for BASP keeps its
// registered name and field order across releases.
//
//   wire_compat write DIR   encodes the fixtures below into DIR/<name>.bin
//   wire_compat check DIR   for each DIR/<name>.bin: decodes it with this
//                           build, re-encodes it, and requires the same bytes;
//                           then requires this build's encoding of the
//                           fixture to equal the file too
//
// The committed files in tests/compat/golden/ were written by `write` built at
// commit fc05484 (the last commit before the redesign of issue 11), except
// chat_request.bin and hello.bin: protocol version 2 (issue 15, the HTTP
// API's Idempotency-Key) appended `idempotency_key` to chat_request, and
// hello carries the version; those two were rewritten by this build's
// `write` when the version was raised. stateless_request.bin (a type new in
// version 2) was written then too. `check` runs in CI (label unit). A message is captured whole (caf::message), so the
// bytes carry each element's registered type name as well as its fields.
#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/protocol.hpp"

using namespace brigade;

namespace {

using bytes = std::vector<char>;

sampling_params fixture_sampling() {
  sampling_params s;
  s.temperature = 0.25f;
  s.top_k = 17;
  s.top_p = 0.875f;
  s.seed = 0x0123456789abcdefULL;
  s.seed_set = true;
  s.max_tokens = 48;
  s.stop = {"\n\n", "Ende", "\xc3\xa9t\xc3\xa9"};
  return s;
}

turn_stats fixture_stats() {
  turn_stats s;
  s.prompt_tokens = 31;
  s.generated_tokens = 12;
  s.ttft_seconds = 0.0125;
  s.total_seconds = 0.5;
  s.mean_batch_size = 3.75;
  s.replayed = true;
  s.stop_reason = "stop_string";
  return s;
}

turn_record fixture_record(uint64_t seq) {
  turn_record r;
  r.seq = seq;
  r.user = "Table four wants the soup \xe2\x80\x94 #" + std::to_string(seq);
  r.assistant = "Coming right up \xf0\x9f\x8d\xb2";
  r.prompt_tokens = 40 + static_cast<uint32_t>(seq);
  r.generated_tokens = 9;
  r.committed_at_ms = 1764600000000 + static_cast<int64_t>(seq);
  return r;
}

const std::string sid = "0123456789abcdef0123456789abcdef";
const std::string tok = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

struct fixture {
  std::string name;
  std::function<caf::message()> make;
};

std::vector<fixture> fixtures() {
  std::vector<fixture> f;
  f.push_back({"sampling_spec", [] { return caf::make_message(fixture_sampling()); }});
  f.push_back({"chat_request", [] {
                 chat_request r;
                 r.session_id = sid;
                 r.token = tok;
                 r.seq = 7;
                 r.text = "Hello, kitchen";
                 r.sampling = fixture_sampling();
                 r.idempotency_key = "retry-7";
                 return caf::make_message(chat_atom::value, std::move(r));
               }});
  f.push_back({"stateless_request", [] {  // added with issue 15 (protocol 2)
                 stateless_request r;
                 r.roles = {"system", "user"};
                 r.contents = {"Be brief.", "Soup of the day?"};
                 r.raw = false;
                 r.sampling = fixture_sampling();
                 return caf::make_message(peer_atom::value, stateless_atom::value, std::move(r));
               }});
  f.push_back({"token_chunk", [] { return caf::make_message(token_chunk{sid, 7, 3, "sou"}); }});
  f.push_back({"turn_stats", [] { return caf::make_message(fixture_stats()); }});
  f.push_back({"turn_result", [] { return caf::make_message(turn_result{sid, 7, "the reply", fixture_stats()}); }});
  f.push_back({"turn_record", [] { return caf::make_message(fixture_record(1)); }});
  f.push_back({"history", [] {
                 return caf::make_message(std::vector<turn_record>{fixture_record(1), fixture_record(2)});
               }});
  f.push_back({"error", [] {
                 return caf::make_message(
                     make_error(brigade_errc::session_moved, "owned by node alpha for 1937 ms more; retry shortly"));
               }});
  f.push_back({"hello", [] { return caf::make_message(hello_atom::value, protocol_version); }});
  f.push_back({"open", [] { return caf::make_message(open_atom::value); }});
  f.push_back({"opened", [] { return caf::make_message(sid, tok); }});
  f.push_back({"credit", [] { return caf::make_message(credit_atom::value, sid, uint64_t{7}, uint32_t{16}); }});
  f.push_back({"history_request", [] { return caf::make_message(history_atom::value, sid, tok); }});
  f.push_back({"close", [] { return caf::make_message(close_atom::value, sid, tok); }});
  f.push_back({"fault", [] { return caf::make_message(fault_atom::value, sid, tok); }});
  return f;
}

bytes encode(caf::actor_system& sys, const caf::message& m) {
  bytes buf;
  caf::binary_serializer sink{sys, buf};
  auto copy = m;
  if (auto err = sink(copy)) throw std::runtime_error("encode: " + sys.render(err));
  return buf;
}

caf::message decode(caf::actor_system& sys, const bytes& buf) {
  caf::message m;
  caf::binary_deserializer source{sys, buf};
  if (auto err = source(m)) throw std::runtime_error("decode: " + sys.render(err));
  return m;
}

bool read_file(const std::string& path, bytes& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

int write_all(caf::actor_system& sys, const std::string& dir) {
  for (const auto& f : fixtures()) {
    const bytes b = encode(sys, f.make());
    std::ofstream out(dir + "/" + f.name + ".bin", std::ios::binary);
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
    if (!out) {
      std::cerr << "cannot write " << dir << "/" << f.name << ".bin\n";
      return 1;
    }
  }
  std::cout << "wrote " << fixtures().size() << " captures to " << dir << "\n";
  return 0;
}

int check_all(caf::actor_system& sys, const std::string& dir) {
  int failures = 0;
  for (const auto& f : fixtures()) {
    bytes golden;
    if (!read_file(dir + "/" + f.name + ".bin", golden)) {
      std::cerr << "FAIL " << f.name << ": no capture " << dir << "/" << f.name << ".bin\n";
      ++failures;
      continue;
    }
    try {
      const caf::message m = decode(sys, golden);
      const bytes again = encode(sys, m);
      const bytes fresh = encode(sys, f.make());
      const bool ok_round = again == golden;
      const bool ok_fresh = fresh == golden;
      if (!ok_round || !ok_fresh || caf::to_string(m) != caf::to_string(f.make())) {
        std::cerr << "FAIL " << f.name << ": " << (ok_round ? "" : "decoded and re-encoded bytes differ; ")
                  << (ok_fresh ? "" : "this build encodes the fixture differently; ") << "decoded " << caf::to_string(m)
                  << "\n";
        ++failures;
        continue;
      }
      std::cout << "ok   " << f.name << " (" << golden.size() << " bytes): " << caf::to_string(m) << "\n";
    } catch (const std::exception& e) {
      std::cerr << "FAIL " << f.name << ": " << e.what() << "\n";
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::cerr << "usage: wire_compat write|check DIR\n";
    return 2;
  }
  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  return std::string(argv[1]) == "write" ? write_all(sys, argv[2]) : check_all(sys, argv[2]);
}
