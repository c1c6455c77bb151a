// A fixed pool of worker threads for the CPU engine's parallel regions.
//
// `run(fn)` calls fn(i, n) on every thread i of n (the caller is thread 0)
// and returns when all are done. Workers spin briefly between regions (a
// decode step has ~10 regions per layer, microseconds apart), then sleep on
// an atomic wait. One caller at a time: the engine's step is single-threaded
// from the outside (the batch loop's own thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace brigade {

class thread_pool {
 public:
  /// `n_threads` in total, the caller included; 0 means the hardware count.
  explicit thread_pool(int n_threads);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int size() const { return n_; }
  void run(const std::function<void(int, int)>& fn);

  /// [begin, end) of `n_items` for thread `i` of `n`, in multiples of `grain`.
  static void split(int64_t n_items, int i, int n, int64_t grain, int64_t& begin, int64_t& end);

 private:
  void worker(int index);

  int n_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace brigade
