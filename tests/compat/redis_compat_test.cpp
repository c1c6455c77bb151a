// Redis records written by the build before the redesign of issue 11
// (tests/compat/golden/redis/, made by redis_capture at commit fc05484) are
// read by this build, and this build writes the same bytes: the stored
// msgpack layout and the meta hash are unchanged. Runs against the redis
// fixture (label redis).
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <sstream>
#include <tuple>

#include "runtime/hashing.hpp"
#include "runtime/redis_store.hpp"
#include "tests/compat/compat_fixtures.hpp"
#include "tests/redis/redis_fixture.hpp"

namespace brigade::compat {
namespace {

using runtime::session_snapshot;
using runtime::session_store;
using runtime::store_result;
using runtime::store_status;

int fixture_port() { return test::redis_fixture_port(); }

std::string golden(const std::string& name) {
  std::ifstream in(std::string(BRIGADE_SOURCE_DIR) + "/tests/compat/golden/redis/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing golden file " << name;
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::pair<std::string, std::string>> golden_meta(const std::string& id) {
  std::istringstream in(golden(id + ".meta"));
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return out;
}

class redis_raw {
 public:
  explicit redis_raw(int port) : c_(redisConnect("127.0.0.1", port)) {}
  ~redis_raw() { redisFree(c_); }
  redisReply* run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
  }
  void exec(const std::vector<std::string>& args) { freeReplyObject(run(args)); }
  std::vector<std::string> list(const std::string& key) {
    redisReply* r = run({"LRANGE", key, "0", "-1"});
    std::vector<std::string> out;
    for (size_t i = 0; i < r->elements; ++i) out.emplace_back(r->element[i]->str, r->element[i]->len);
    freeReplyObject(r);
    return out;
  }
  std::string get_field(const std::string& key, const std::string& field) {
    redisReply* r = run({"HGET", key, field});
    std::string out = r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
    freeReplyObject(r);
    return out;
  }
  std::string get(const std::string& key) {
    redisReply* r = run({"GET", key});
    std::string out = r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
    freeReplyObject(r);
    return out;
  }

 private:
  redisContext* c_;
};

std::string key(const std::string& id, const char* part) { return "brigade:{" + id + "}:" + part; }

/// Writes a golden session into Redis exactly as the old build left it.
void load_golden(redis_raw& r, const std::string& id, size_t n_list) {
  r.exec({"DEL", key(id, "meta"), key(id, "turns"), key(id, "snap")});
  std::vector<std::string> hset = {"HSET", key(id, "meta")};
  for (const auto& [f, v] : golden_meta(id)) {
    hset.push_back(f);
    hset.push_back(v);
  }
  r.exec(hset);
  for (size_t i = 0; i < n_list; ++i) r.exec({"RPUSH", key(id, "turns"), golden(id + ".turn." + std::to_string(i))});
  if (id == compacted_id) r.exec({"SET", key(id, "snap"), golden(id + ".snap")});
}

std::unique_ptr<session_store> store(uint32_t compact_min = 0) {
  runtime::redis_url u;
  u.port = fixture_port();
  runtime::store_options o;
  o.compact_min = compact_min;
  o.retention = std::chrono::microseconds(0);
  return runtime::make_redis_store(u, o);
}

store_result<session_snapshot> wait_load(session_store& st, const std::string& id) {
  std::promise<store_result<session_snapshot>> p;
  st.load(id, [&](store_result<session_snapshot> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

store_status wait(const std::function<void(session_store::done_fn)>& call) {
  std::promise<store_status> p;
  call([&](store_status s) { p.set_value(std::move(s)); });
  return p.get_future().get();
}

void expect_turns(const session_snapshot& s, uint64_t n) {
  ASSERT_EQ(s.turns.size(), n);
  for (uint64_t seq = 1; seq <= n; ++seq) {
    const auto want = compat_turn(seq);
    const auto& got = s.turns[seq - 1];
    EXPECT_EQ(got.seq, want.seq);
    EXPECT_EQ(got.user, want.user);
    EXPECT_EQ(got.assistant, want.assistant);
    EXPECT_EQ(got.prompt_tokens, want.prompt_tokens);
    EXPECT_EQ(got.generated_tokens, want.generated_tokens);
    EXPECT_EQ(got.committed_at_ms, want.committed_at_ms);
  }
}

TEST(RedisCompat, ReadsSessionsTheEarlierBuildWrote) {
  redis_raw r(fixture_port());
  load_golden(r, compacted_id, 2);
  load_golden(r, plain_id, 3);
  auto st = store();
  for (const auto& [id, n] : {std::pair{compacted_id, uint64_t{6}}, std::pair{plain_id, uint64_t{3}}}) {
    auto s = wait_load(*st, id);
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->meta.id, id);
    EXPECT_EQ(s->meta.model, model_id);
    EXPECT_EQ(s->meta.owner, "alpha");
    EXPECT_EQ(s->meta.epoch, 1u);
    EXPECT_EQ(s->meta.created_ms, created_ms);
    EXPECT_EQ(s->meta.token_hash, runtime::sha256_hex(token_of(id)));
    expect_turns(*s, n);
  }
}

TEST(RedisCompat, ContinuesSessionsTheEarlierBuildWrote) {
  redis_raw r(fixture_port());
  load_golden(r, compacted_id, 2);
  auto st = store();
  std::promise<store_result<session_snapshot>> p;
  st->acquire(compacted_id, "alpha", [&](store_result<session_snapshot> s) { p.set_value(std::move(s)); });
  auto s = p.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->meta.epoch, 2u);
  expect_turns(*s, 6);
  EXPECT_EQ(r.get_field(key(compacted_id, "meta"), "v"), "2");  // rewritten as meta schema 2
  ASSERT_TRUE(wait([&](auto done) { st->append(compacted_id, 2, compat_turn(7), done); }));
  ASSERT_TRUE(wait([&](auto done) { st->compact(compacted_id, done); }));
  auto again = wait_load(*st, compacted_id);
  ASSERT_TRUE(again.ok()) << again.error().message();
  expect_turns(*again, 7);
}

TEST(RedisCompat, WritesTheSameBytesAsTheEarlierBuild) {
  // The same session written by this build: every record and the snapshot
  // equal the earlier build's bytes, and the meta hash has the same fields
  // and values (but the lease deadline, which is Redis' clock), except that
  // meta schema 2 (issue 13) names the holder's incarnation in `inc`.
  redis_raw r(fixture_port());
  for (const auto& id : {compacted_id, plain_id}) r.exec({"DEL", key(id, "meta"), key(id, "turns"), key(id, "snap")});
  auto st = store();
  for (const auto& [id, n, compact_at] :
       {std::tuple{compacted_id, uint64_t{6}, uint64_t{4}}, std::tuple{plain_id, uint64_t{3}, uint64_t{0}}}) {
    runtime::session_meta m;
    m.id = id;
    m.token_hash = runtime::sha256_hex(token_of(id));
    m.model = model_id;
    m.owner = "alpha";
    m.created_ms = created_ms;
    m.owner_incarnation = "0123abcd";
    ASSERT_TRUE(wait([&](auto done) { st->create(m, done); }));
    for (uint64_t seq = 1; seq <= n; ++seq) {
      ASSERT_TRUE(wait([&](auto done) { st->append(id, 1, compat_turn(seq), done); }));
      if (seq == compact_at) ASSERT_TRUE(wait([&](auto done) { st->compact(id, done); }));
    }
    const auto list = r.list(key(id, "turns"));
    const size_t n_list = id == compacted_id ? 2 : 3;
    ASSERT_EQ(list.size(), n_list);
    for (size_t i = 0; i < n_list; ++i) EXPECT_EQ(list[i], golden(id + ".turn." + std::to_string(i))) << id << " " << i;
    if (id == compacted_id) EXPECT_EQ(r.get(key(id, "snap")), golden(id + ".snap"));
    redisReply* h = r.run({"HGETALL", key(id, "meta")});
    std::map<std::string, std::string> got;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
      got[h->element[i]->str] = std::string(h->element[i + 1]->str, h->element[i + 1]->len);
    freeReplyObject(h);
    const auto fields = golden_meta(id);
    std::map<std::string, std::string> want(fields.begin(), fields.end());
    want["v"] = "2";
    want["inc"] = "0123abcd";
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [f, v] : want)
      if (f != "lease") EXPECT_EQ(got[f], v) << id << " meta field " << f;
  }
}

}  // namespace
}  // namespace brigade::compat
