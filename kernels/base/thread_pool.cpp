#include "kernels/base/thread_pool.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BRIGADE_PAUSE() _mm_pause()
#else
#define BRIGADE_PAUSE() std::this_thread::yield()
#endif

namespace brigade {

thread_pool::thread_pool(int n_threads) {
  n_ = n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void thread_pool::split(int64_t n_items, int i, int n, int64_t grain, int64_t& begin, int64_t& end) {
  const int64_t n_grains = (n_items + grain - 1) / grain;
  const int64_t per = n_grains / n, extra = n_grains % n;
  const int64_t g0 = i * per + std::min<int64_t>(i, extra);
  const int64_t g1 = g0 + per + (i < extra ? 1 : 0);
  begin = std::min(n_items, g0 * grain);
  end = std::min(n_items, g1 * grain);
}

void thread_pool::run(const std::function<void(int, int)>& fn) {
  if (n_ == 1) {
    fn(0, 1);
    return;
  }
  fn_ = &fn;
  pending_.store(n_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  fn(0, n_);
  // Spin briefly, then sleep: when the machine is oversubscribed (a server
  // shares its cores with actors and network threads) a descheduled worker
  // would otherwise cost a whole time slice of spinning here.
  for (int spin = 0; spin < 4000; ++spin) {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    BRIGADE_PAUSE();
  }
  for (int left; (left = pending_.load(std::memory_order_acquire)) != 0;)
    pending_.wait(left, std::memory_order_acquire);
}

void thread_pool::worker(int index) {
  // Spin only briefly (regions inside a step follow each other within
  // microseconds); between steps, sleep, so the threads that deliver tokens
  // (actors, network) get the cores.
  constexpr int spin_limit = 4000;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < spin_limit; ++spin) {
      BRIGADE_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    (*fn_)(index, n_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace brigade
