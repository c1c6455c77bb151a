// Writes the Redis golden records: two sessions stored through the Redis
// store of this build, read back raw (the meta hash, the turn list's msgpack
// records, the snapshot) into files that redis_compat_test loads into a fresh
// redis-server and reads with a later build.
//
//   redis_capture PORT DIR     (a redis-server on 127.0.0.1:PORT, empty db 0)
//
// The committed captures in tests/compat/golden/redis/ were written by this
// program built at commit fc05484 (before the redesign of issue 11):
//   session aaaa…  (compact_min 4): 6 turns appended, the first 4 compacted
//                  into brigade:{SID}:snap, turns 5 and 6 in the list;
//   session bbbb…  (compaction off): 3 turns in the list.
// Each turn is compat_turn(seq) below; redis_compat_test makes the same ones.
#include <hiredis/hiredis.h>

#include <fstream>
#include <future>
#include <iostream>
#include <string>

#include "runtime/hashing.hpp"
#include "runtime/redis_store.hpp"
#include "tests/compat/compat_fixtures.hpp"

using namespace brigade;
using namespace brigade::runtime;

namespace {

store_status wait_status(const std::function<void(session_store::done_fn)>& call) {
  std::promise<store_status> p;
  auto f = p.get_future();
  call([&](store_status s) { p.set_value(std::move(s)); });
  return f.get();
}

bool store_session(int port, const std::string& id, uint32_t compact_min, uint64_t turns, uint64_t compact_upto) {
  redis_url u;
  u.port = port;
  store_options o;
  o.compact_min = 0;  // compaction by explicit call only: deterministic contents
  o.retention = std::chrono::microseconds(0);
  auto st = make_redis_store(u, o);
  session_meta m;
  m.id = id;
  m.token_hash = sha256_hex(compat::token_of(id));
  m.model = compat::model_id;
  m.owner = "alpha";
  m.created_ms = compat::created_ms;
  if (auto s = wait_status([&](auto done) { st->create(m, done); }); !s) {
    std::cerr << "create: " << s.message() << "\n";
    return false;
  }
  for (uint64_t seq = 1; seq <= turns; ++seq) {
    if (auto s = wait_status([&](auto done) { st->append(id, 1, compat::compat_turn(seq), done); }); !s) {
      std::cerr << "append: " << s.message() << "\n";
      return false;
    }
    if (compact_min > 0 && seq == compact_upto)
      if (auto s = wait_status([&](auto done) { st->compact(id, done); }); !s) {
        std::cerr << "compact: " << s.message() << "\n";
        return false;
      }
  }
  return true;
}

void write_bytes(const std::string& path, const char* p, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(p, static_cast<std::streamsize>(n));
}

bool dump(int port, const std::string& id, const std::string& dir) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) return false;
  const std::string meta = "brigade:{" + id + "}:meta", turns = "brigade:{" + id + "}:turns",
                    snap = "brigade:{" + id + "}:snap";
  auto* r = static_cast<redisReply*>(redisCommand(c, "HGETALL %s", meta.c_str()));
  std::ofstream m(dir + "/" + id + ".meta");
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    m << r->element[i]->str << "\t" << std::string(r->element[i + 1]->str, r->element[i + 1]->len) << "\n";
  freeReplyObject(r);
  r = static_cast<redisReply*>(redisCommand(c, "LRANGE %s 0 -1", turns.c_str()));
  for (size_t i = 0; i < r->elements; ++i)
    write_bytes(dir + "/" + id + ".turn." + std::to_string(i), r->element[i]->str, r->element[i]->len);
  freeReplyObject(r);
  r = static_cast<redisReply*>(redisCommand(c, "GET %s", snap.c_str()));
  if (r->type == REDIS_REPLY_STRING) write_bytes(dir + "/" + id + ".snap", r->str, r->len);
  freeReplyObject(r);
  redisFree(c);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: redis_capture PORT DIR\n";
    return 2;
  }
  const int port = std::stoi(argv[1]);
  const std::string dir = argv[2];
  if (!store_session(port, compat::compacted_id, 4, 6, 4) || !store_session(port, compat::plain_id, 0, 3, 0)) return 1;
  if (!dump(port, compat::compacted_id, dir) || !dump(port, compat::plain_id, dir)) return 1;
  std::cout << "wrote the records of " << compat::compacted_id << " and " << compat::plain_id << " to " << dir << "\n";
  return 0;
}
