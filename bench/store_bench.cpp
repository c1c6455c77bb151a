// Store benchmark: against a running redis-server,
//  - append (commit) latency p50/p99 and AOF bytes written per turn when the
//    session already holds 10, 100 and 1000 turns (appends must stay O(turn));
//  - commits per second with pipelining, many sessions appending at once.
// Prints a table and one JSON line. Run by bench/store_bench.py, which starts
// a durable redis-server (appendfsync always) for it.
// usage: store_bench PORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "runtime/hashing.hpp"
#include "runtime/redis_store.hpp"

using namespace brigade;
using namespace brigade::runtime;
using clock_type = std::chrono::steady_clock;

namespace {

/// aof_current_size over a plain socket (INFO persistence), cheap enough to
/// call around single appends.
int64_t aof_bytes(int port) {
  static int fd = -1;
  if (fd < 0) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  }
  const char cmd[] = "INFO persistence\r\n";
  if (::write(fd, cmd, sizeof cmd - 1) < 0) return 0;
  std::string reply;
  char buf[4096];
  // A bulk reply: "$LEN\r\n" then LEN bytes and "\r\n".
  while (reply.find("\r\n") == std::string::npos) {
    const ssize_t k = ::read(fd, buf, sizeof buf);
    if (k <= 0) return 0;
    reply.append(buf, static_cast<size_t>(k));
  }
  const size_t len = std::strtoul(reply.c_str() + 1, nullptr, 10);
  const size_t total = reply.find("\r\n") + 2 + len + 2;
  while (reply.size() < total) {
    const ssize_t k = ::read(fd, buf, sizeof buf);
    if (k <= 0) return 0;
    reply.append(buf, static_cast<size_t>(k));
  }
  const size_t at = reply.find("aof_current_size:");
  return at == std::string::npos ? 0 : std::atoll(reply.c_str() + at + 17);
}

store_status append_sync(session_store& s, const std::string& id, uint64_t seq) {
  std::promise<store_status> pr;
  s.append(id, 1, {seq, "What is on the menu tonight, chef?", std::string(200, 'x'), 40, 48, 0},
           [&](store_status st) { pr.set_value(st); });
  return pr.get_future().get();
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

store_status create_sync(session_store& s, const std::string& id) {
  session_meta m;
  m.id = id;
  m.owner = "bench";
  m.token_hash = sha256_hex("t");
  std::promise<store_status> p;
  s.create(m, [&](store_status st) { p.set_value(st); });
  return p.get_future().get();
}

struct latency_row {
  double p50 = 0, p99 = 0, bytes = 0;
};

/// `n` sequential appends (each waits for its acknowledgement) after
/// `history` turns: latency percentiles and AOF bytes per turn.
store_result<latency_row> measure_appends(session_store& s, int port, int history, int n) {
  const std::string id = random_hex(16);
  if (store_status st = create_sync(s, id); !st) return st;
  uint64_t seq = 1;
  for (; seq <= static_cast<uint64_t>(history); ++seq)
    if (store_status st = append_sync(s, id, seq); !st) return st;
  std::vector<double> lat;
  const int64_t before = aof_bytes(port);
  for (int i = 0; i < n; ++i, ++seq) {
    const auto t0 = clock_type::now();
    if (store_status st = append_sync(s, id, seq); !st) return st;
    lat.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let a background compaction land in the AOF
  return latency_row{pct(lat, 0.5), pct(lat, 0.99), static_cast<double>(aof_bytes(port) - before) / n};
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
  store_options no_compaction;
  no_compaction.compact_min = 0;
  auto plain = make_redis_store(url, no_compaction);
  auto store = make_redis_store(url, {});  // the defaults brigade serve uses (compaction from 64 turns)
  auto fail = [](const store_status& s) {
    std::fprintf(stderr, "store_bench: %s\n", s.message().c_str());
    return 1;
  };
  const int n = 1000;
  std::string json = "{\"benchmark\":\"store\",\"appends_per_row\":" + std::to_string(n) + ",\"history\":{";
  std::printf(
      "appends (commit path only; compaction off): %d rounds, each appends one turn to every session in "
      "turn (interleaved, so machine noise falls on all rows alike)\n",
      n);
  std::printf("%10s  %10s  %10s  %14s  %14s  %14s\n", "history", "p50 ms", "p99 ms", "AOF bytes/turn", "compact ms",
              "compact bytes");
  const std::vector<int> histories{10, 100, 1000};
  std::vector<std::string> ids;
  std::vector<uint64_t> next;
  for (int h : histories) {
    ids.push_back(random_hex(16));
    if (store_status st = create_sync(*plain, ids.back()); !st) return fail(st);
    for (uint64_t seq = 1; seq <= static_cast<uint64_t>(h); ++seq)
      if (store_status st = append_sync(*plain, ids.back(), seq); !st) return fail(st);
    next.push_back(static_cast<uint64_t>(h) + 1);
  }
  std::vector<std::vector<double>> lat(histories.size());
  std::vector<double> aof(histories.size(), 0);
  const int byte_rounds = 50;  // first: AOF bytes per append (INFO around each append; not timed)
  for (int round = 0; round < byte_rounds + n; ++round)
    for (size_t k = 0; k < histories.size(); ++k) {
      const size_t i = (k + static_cast<size_t>(round)) % histories.size();  // rotate the order
      if (round < byte_rounds) {
        const int64_t before = aof_bytes(port);
        if (store_status st = append_sync(*plain, ids[i], next[i]++); !st) return fail(st);
        aof[i] += static_cast<double>(aof_bytes(port) - before) / byte_rounds;
        continue;
      }
      const auto t0 = clock_type::now();
      if (store_status st = append_sync(*plain, ids[i], next[i]++); !st) return fail(st);
      lat[i].push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
  bool first = true;
  for (size_t i = 0; i < histories.size(); ++i) {
    const int history = histories[i];
    // Compaction, measured apart: fold a list of `history` turns into the snapshot.
    const std::string id = random_hex(16);
    if (store_status st = create_sync(*plain, id); !st) return fail(st);
    for (uint64_t seq = 1; seq <= static_cast<uint64_t>(history); ++seq)
      if (store_status st = append_sync(*plain, id, seq); !st) return fail(st);
    const int64_t before = aof_bytes(port);
    const auto t0 = clock_type::now();
    std::promise<store_status> pr;
    plain->compact(id, [&](store_status st) { pr.set_value(st); });
    if (store_status st = pr.get_future().get(); !st) return fail(st);
    const double compact_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    const double compact_bytes = static_cast<double>(aof_bytes(port) - before);
    const double p50 = pct(lat[i], 0.5), p99 = pct(lat[i], 0.99);
    std::printf("%10d  %10.3f  %10.3f  %14.0f  %14.2f  %14.0f\n", history, p50, p99, aof[i], compact_ms, compact_bytes);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s\"%d\":{\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"aof_bytes_per_turn\":%.0f,\"compact_ms\":%.3f,"
                  "\"compact_aof_bytes\":%.0f}",
                  first ? "" : ",", history, p50, p99, aof[i], compact_ms, compact_bytes);
    json += buf;
    first = false;
  }
  std::printf("p99 at 1000 turns / p99 at 10 turns: %.2f\n", pct(lat[2], 0.99) / pct(lat[0], 0.99));
  // With compaction on (defaults): its cost amortised over the appends.
  auto amort = measure_appends(*store, port, 0, 2 * n);
  if (!amort) return fail(amort.error());
  std::printf(
      "with compaction on (default): 2000 appends from an empty session: p50 %.3f ms, p99 %.3f ms, "
      "AOF bytes/turn %.0f (appends plus compactions)\n",
      amort->p50, amort->p99, amort->bytes);
  {
    char buf[192];
    std::snprintf(buf, sizeof buf, "},\"compaction_on\":{\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"aof_bytes_per_turn\":%.0f}",
                  amort->p50, amort->p99, amort->bytes);
    json += buf;
  }
  // Throughput: 64 sessions, each appending its next turn as soon as the last
  // is acknowledged; everything in flight is pipelined by the store's thread.
  const int sessions = 64;
  const double seconds = 3.0;
  ids.clear();
  for (int i = 0; i < sessions; ++i) {
    ids.push_back(random_hex(16));
    if (store_status st = create_sync(*store, ids.back()); !st) return fail(st);
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
  std::snprintf(buf, sizeof buf, ",\"sessions\":%d,\"commits_per_second\":%.0f}", sessions, rate);
  json += buf;
  std::printf("%s\n", json.c_str());
  return 0;
}
