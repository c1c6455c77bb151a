// The batching loop: one engine, one thread of its
// own, many concurrent generation jobs (docs/design.md, "Batching").
//
//   job states:  waiting --admit--> prefilling --last chunk--> decoding --eos/max/cancel--> done
//                                        \_________ paused (reader stalled) _________/
//
// - Bounded queue: `submit` refuses at once (errc::resource, "overloaded")
//   when `queue_limit` jobs wait.
// - Deadline coalescing: when nothing runs and a job arrives, the loop waits
//   up to `batch_window` or until `max_batch` jobs wait, then steps.
// - Continuous batching: jobs join and leave at step boundaries; decoding
//   jobs first (one token each), then prefill chunks under `step_tokens`.
// - KV residency: each session keeps its sequence (and the tokens in it)
//   between turns; a new turn re-feeds only what differs from what is
//   resident (common prefix). Under memory pressure the least recently used
//   idle sessions are evicted; their next turn re-prefills from history.
//
// - Engine failure (docs/design.md, "Supervision"): a step that fails with
//   errc::device (a CUDA error) loses every sequence of that engine. The
//   running turns fail with a retryable error, the engine is destroyed and a
//   new one made by `restart` (waiting turns then run on it). If there is no
//   `restart`, or it fails, every turn fails with the cause from then on.
//
// Events (tokens, done, failure) go to the job's `on_event`, called on the
// loop thread: it must not block (actors post a message). Thread-safe API.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/engine/engine.hpp"

namespace brigade::runtime {
class node_metrics;
}

namespace brigade::actors {

struct batch_config {
  int max_batch = 64;
  std::chrono::microseconds batch_window{2000};
  int step_tokens = 512;
  int queue_limit = 256;
};

struct gen_event {
  enum kind_t : uint8_t { token_event = 0, done = 1, failed = 2 } kind = token_event;
  uint64_t turn_id = 0;
  token_id token = -1;
  int32_t batch_size = 0;     // sequences in the step that produced this event
  int32_t prompt_tokens = 0;  // done: tokens prefilled for this turn (after reuse)
  std::string reason;         // done: eos, max_tokens, cancelled; failed: the sentence
  bool retryable = false;     // failed: whether retrying may succeed
};

struct gen_job {
  uint64_t turn_id = 0;
  std::string session_key;
  std::vector<token_id> tokens;  // the whole conversation to condition on
  sampling_params sampling;
  int32_t max_new = 0;
  std::function<void(const gen_event&)> on_event;
};

/// Makes a fresh engine (same model and configuration) after a device failure.
using engine_factory = std::function<result<std::unique_ptr<engine>>()>;

class batch_loop {
 public:
  batch_loop(std::unique_ptr<engine> e, batch_config cfg, runtime::node_metrics* metrics, engine_factory restart = {});
  ~batch_loop();  // stops the thread (as shutdown(true) if still running)
  batch_loop(const batch_loop&) = delete;
  batch_loop& operator=(const batch_loop&) = delete;

  /// Queues a job; errc::resource when the queue is full (nothing queued).
  status submit(gen_job job);
  void pause(uint64_t turn_id);
  void resume(uint64_t turn_id);
  /// Ends a job; it gets a `done` event with reason "cancelled" (or none if
  /// it had already finished).
  void cancel(uint64_t turn_id);
  /// Frees a session's resident KV (session closed or passivated).
  void release(const std::string& session_key);
  /// Stops the loop thread. With `notify`, unfinished jobs get `failed`;
  /// without, their callbacks are dropped unrun (node shutdown: the actors
  /// are gone, and the callbacks' actor handles must be released while the
  /// actor system still exists). Calls after this one are ignored.
  void shutdown(bool notify);
  /// Waiting plus running jobs (for /readyz and metrics).
  int load() const;
  /// Fixed at construction (a restarted engine has the same model and context).
  const tokenizer& vocab() const { return model_->vocab(); }
  int n_ctx() const { return n_ctx_; }
  const std::string& backend_name() const { return backend_name_; }
  /// Engines made after device failures so far.
  int restarts() const;

 private:
  struct command {
    enum { submit, pause, resume, cancel, release, stop, stop_silently } kind;
    gen_job job;
    uint64_t turn_id = 0;
    std::string key;
  };
  struct job_state {
    gen_job job;
    seq_id seq = -1;
    std::vector<token_id> pending;  // tokens to feed next
    int32_t generated = 0;
    int32_t prompt_fed = 0;
    bool paused = false;
    bool admitted = false;
  };
  struct resident {
    seq_id seq = -1;
    std::vector<token_id> tokens;  // exactly what the KV cache holds
    uint64_t last_used = 0;
    bool busy = false;
  };

  struct step_plan {
    std::vector<step_item> batch;
    std::vector<uint64_t> ids;  // the job of each item
  };

  // The loop thread, one iteration: take_commands, then (with an engine)
  // wait_for_company or admit_waiting, plan_step, the engine's step, then
  // apply_results and publish_metrics, or on_step_error.
  void run();
  bool take_commands();  // waits for work, applies the inbox; false: stop
  void apply(command& c);
  bool wait_for_company();  // deadline coalescing; true: waited, look again
  bool admit_waiting();     // false: a job could not get a sequence (KV full)
  bool admit(job_state& j);
  void plan_step(step_plan& plan);
  void idle_wait(bool blocked);
  void on_step_error(const status& st, const step_plan& plan);
  void on_kv_full(const step_plan& plan);
  void restart_engine(const std::string& why);
  void apply_results(const step_plan& plan);
  void publish_metrics(int32_t batch_size);
  void publish_kv();  // the KV the live sessions want, for scaling (docs/scaling.md)

  static gen_event event(gen_event::kind_t kind, uint64_t turn_id, std::string reason = {}, bool retryable = false);
  /// Ends a job with `e` (prompt_tokens filled in; batch_size if > 0).
  void finish(std::map<uint64_t, job_state>::iterator it, const gen_event& e, int32_t batch_size = 0);
  void fail_jobs(const std::string& why, bool retryable);
  bool evict_one(const std::string& except);
  void drop_resident(const std::string& key);  // frees a session's sequence

  std::unique_ptr<engine> engine_;  // null once it failed and could not be restarted
  engine_factory restart_;
  std::shared_ptr<const llama_model> model_;  // shared with every engine made (vocab, n_ctx)
  int n_ctx_;
  std::string backend_name_;
  std::string broken_;  // why there is no engine (loop thread)
  int restarts_ = 0;    // guarded by mu_
  batch_config cfg_;
  runtime::node_metrics* metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<command> inbox_;
  int waiting_count_ = 0;  // submitted, not yet admitted (guarded by mu_)
  int running_count_ = 0;  // guarded by mu_ (for load())
  // loop-thread state
  std::deque<uint64_t> waiting_;
  std::map<uint64_t, job_state> jobs_;
  std::map<std::string, resident> resident_;
  std::map<std::string, size_t> evicted_;  // sessions evicted under pressure -> the tokens they held (until released)
  uint64_t clock_ = 0;
  std::chrono::steady_clock::time_point first_wait_{};
  std::vector<step_result> out_;
  double busy_seconds_ = 0;  // engine time in the current metrics window
  std::chrono::steady_clock::time_point busy_window_start_{};
  std::thread thread_;
};

}  // namespace brigade::actors
