// Store benchmark (issue 5): against a running redis-server,
//  - append (commit) latency p50/p99 and AOF bytes written per turn when the
//    session already holds 10, 100 and 1000 turns (appends must stay O(turn));
//  - commits per second with pipelining, many sessions appending at once.
// Prints a table and one JSON line. Run by bench/store_bench.py, which starts
// a durable redis-server (appendfsync always) for it.
// usage: store_bench PORT
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>
#include <string>
#include <vector>

#include "runtime/redis_store.hpp"

using namespace brigade;
using namespace brigade::runtime;
using clock_type = std::chrono::steady_clock;

namespace {

int64_t aof_bytes(int port) {
  const std::string cmd = "redis-cli -p " + std::to_string(port) + " info persistence | grep aof_current_size";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[128] = {0};
  if (p && fgets(buf, sizeof buf, p)) {
    pclose(p);
    const char* c = std::strchr(buf, ':');
    return c ? std::atoll(c + 1) : 0;
  }
  if (p) pclose(p);
  return 0;
}

status append_sync(session_store& s, const std::string& id, uint64_t seq) {
  std::promise<status> pr;
  s.append(id, 1, {seq, "What is on the menu tonight, chef?", std::string(200, 'x'), 40, 48, 0},
           [&](status st) { pr.set_value(st); });
  return pr.get_future().get();
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_bench PORT\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  redis_url url;
  url.port = port;
  auto store = make_redis_store(url, {});
  std::string json = "{\"benchmark\":\"store\",\"history\":{";
  std::printf("%10s  %10s  %10s  %14s\n", "history", "p50 ms", "p99 ms", "AOF bytes/turn");
  bool first = true;
  for (int history : {10, 100, 1000}) {
    const std::string id = random_hex(16);
    session_meta m;
    m.id = id;
    m.token_hash = sha256_hex("t");
    std::promise<status> created;
    store->create(m, [&](status s) { created.set_value(s); });
    if (auto s = created.get_future().get(); !s) {
      std::fprintf(stderr, "store_bench: %s\n", s.message().c_str());
      return 1;
    }
    uint64_t seq = 1;
    for (; seq <= static_cast<uint64_t>(history); ++seq) append_sync(*store, id, seq);
    const int n = 300;
    std::vector<double> lat;
    const int64_t before = aof_bytes(port);
    for (int i = 0; i < n; ++i, ++seq) {
      const auto t0 = clock_type::now();
      if (auto s = append_sync(*store, id, seq); !s) {
        std::fprintf(stderr, "store_bench: %s\n", s.message().c_str());
        return 1;
      }
      lat.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
    const double bytes = static_cast<double>(aof_bytes(port) - before) / n;
    std::printf("%10d  %10.3f  %10.3f  %14.0f\n", history, pct(lat, 0.5), pct(lat, 0.99), bytes);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s\"%d\":{\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"aof_bytes_per_turn\":%.0f}",
                  first ? "" : ",", history, pct(lat, 0.5), pct(lat, 0.99), bytes);
    json += buf;
    first = false;
  }
  // Throughput: 64 sessions, each appending its next turn as soon as the last
  // is acknowledged; everything in flight is pipelined by the store's thread.
  const int sessions = 64;
  const double seconds = 3.0;
  std::vector<std::string> ids;
  for (int i = 0; i < sessions; ++i) {
    session_meta m;
    m.id = random_hex(16);
    std::promise<status> c;
    store->create(m, [&](status s) { c.set_value(s); });
    c.get_future().get();
    ids.push_back(m.id);
  }
  std::atomic<int64_t> commits{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < sessions; ++i)
    threads.emplace_back([&, i] {
      for (uint64_t seq = 1; !stop.load(); ++seq)
        if (append_sync(*store, ids[static_cast<size_t>(i)], seq).ok()) ++commits;
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double rate = static_cast<double>(commits.load()) / seconds;
  std::printf("commits/s with %d sessions appending at once: %.0f\n", sessions, rate);
  char buf[96];
  std::snprintf(buf, sizeof buf, "},\"sessions\":%d,\"commits_per_second\":%.0f}", sessions, rate);
  json += buf;
  std::printf("%s\n", json.c_str());
  return 0;
}
