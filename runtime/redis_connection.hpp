// One hiredis connection on a thread of its own (never a CAF scheduler
// thread): requests queue without blocking the caller, and the thread
// pipelines everything queued into one round trip. When Redis is
// unreachable, queued and in-flight requests fail with the connection's
// error ("redis 127.0.0.1:6379: connection refused") and the next request
// reconnects (backoff up to 2 s). The Redis store uses two: one for commits,
// one for compaction in the background.
#pragma once

#include <hiredis/hiredis.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/redis_store.hpp"

namespace brigade::runtime::redis {

using reply_ptr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;
using command = std::vector<std::string>;

struct request {
  std::vector<command> commands;  // pipelined together
  // Gets one reply per command (nullptr replies mean the connection failed).
  std::function<void(std::vector<redisReply*>&, const std::string& conn_error)> done;
};

class connection {
 public:
  explicit connection(redis_url url) : url_(std::move(url)), thread_([this] { run(); }) {}

  ~connection() { close(); }

  /// Runs what is queued, including what its callbacks queue (when
  /// connected), then stops; later requests fail at once.
  void close() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (ctx_) redisFree(ctx_);
    ctx_ = nullptr;
  }

  std::string where() const { return "redis " + url_.host + ":" + std::to_string(url_.port); }

  void submit(std::vector<command> commands, decltype(request::done) done) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!closed_) {
        queue_.push_back({std::move(commands), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    std::vector<redisReply*> none(commands.size(), nullptr);
    done(none, "the store is shutting down");
  }

 private:
  /// Connects (with AUTH and SELECT); "" on success, else the reason.
  std::string connect() {
    if (ctx_) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    timeval tv{2, 0};
    ctx_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
    if (!ctx_ || ctx_->err) {
      std::string why = ctx_ ? ctx_->errstr : "cannot allocate a connection";
      if (ctx_) redisFree(ctx_);
      ctx_ = nullptr;
      return why;
    }
    redisSetTimeout(ctx_, tv);
    auto simple = [&](command cmd) -> std::string {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      reply_ptr rep(
          static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data())),
          freeReplyObject);
      if (!rep) return ctx_->errstr;
      if (rep->type == REDIS_REPLY_ERROR) return std::string(rep->str, rep->len);
      return "";
    };
    std::string e;
    if (!url_.password.empty()) {
      e = url_.user.empty() ? simple({"AUTH", url_.password}) : simple({"AUTH", url_.user, url_.password});
      if (!e.empty()) e = "authentication failed (" + e + ")";
    }
    if (e.empty() && url_.db != 0) e = simple({"SELECT", std::to_string(url_.db)});
    if (!e.empty()) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    return e;
  }

  static void fail(std::deque<request>& batch, const std::string& why) {
    for (auto& r : batch) {
      std::vector<redisReply*> none(r.commands.size(), nullptr);
      r.done(none, why);
    }
  }

  void run() {
    auto backoff = std::chrono::milliseconds(100);
    std::chrono::steady_clock::time_point retry_at{};
    for (;;) {
      std::deque<request> batch;
      bool stopping = false;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        stopping = stop_;
        batch.swap(queue_);
        if (stopping && batch.empty()) {
          closed_ = true;
          return;
        }
      }
      std::string conn_error;
      if (!ctx_) {
        if (stopping) {
          fail(batch, "the store is shutting down");
          continue;  // callbacks may have queued more: fail those too, then stop
        }
        if (std::chrono::steady_clock::now() < retry_at) {
          conn_error = last_error_ + " (reconnecting)";
        } else {
          conn_error = connect();
          if (conn_error.empty()) {
            backoff = std::chrono::milliseconds(100);
          } else {
            last_error_ = conn_error;
            retry_at = std::chrono::steady_clock::now() + backoff;
            backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
          }
        }
      }
      if (!ctx_) {
        fail(batch, conn_error);
        continue;
      }
      // Pipeline: every command of every request, then every reply in order.
      for (auto& r : batch)
        for (auto& cmd : r.commands) {
          std::vector<const char*> argv;
          std::vector<size_t> lens;
          for (auto& a : cmd) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
          redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
        }
      bool broken = false;
      for (auto& r : batch) {
        std::vector<reply_ptr> owned;
        std::vector<redisReply*> replies;
        for (size_t k = 0; k < r.commands.size(); ++k) {
          void* rep = nullptr;
          if (!broken && redisGetReply(ctx_, &rep) != REDIS_OK) {
            broken = true;
            last_error_ = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
          }
          owned.emplace_back(broken ? nullptr : static_cast<redisReply*>(rep), freeReplyObject);
          replies.push_back(owned.back().get());
        }
        r.done(replies, last_error_);
      }
      if (broken) {  // the next request reconnects
        redisFree(ctx_);
        ctx_ = nullptr;
        retry_at = {};
      }
    }
  }

  redis_url url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<request> queue_;
  bool stop_ = false;
  bool closed_ = false;          // the thread has ended
  redisContext* ctx_ = nullptr;  // I/O thread only
  std::string last_error_;
  std::thread thread_;
};

}  // namespace brigade::runtime::redis
