#include "actors/batch_loop.hpp"

#include <algorithm>

#include "runtime/metrics.hpp"

namespace brigade::actors {

using clock_type = std::chrono::steady_clock;

batch_loop::batch_loop(std::unique_ptr<engine> e, batch_config cfg, runtime::node_metrics* metrics,
                       engine_factory restart)
    : engine_(std::move(e)),
      restart_(std::move(restart)),
      vocab_(&engine_->vocab()),
      n_ctx_(engine_->n_ctx()),
      backend_name_(engine_->backend_name()),
      cfg_(cfg),
      metrics_(metrics) {
  thread_ = std::thread([this] { run(); });
}

int batch_loop::restarts() const {
  std::lock_guard<std::mutex> g(mu_);
  return restarts_;
}

void batch_loop::restart_engine(const std::string& why) {
  // The engine's sequences are gone with it: every admitted turn fails
  // (retryable: its session re-sends and re-prefills on the new engine);
  // waiting turns stay queued.
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto next = std::next(it);
    if (it->second.admitted) {
      gen_event e;
      e.kind = gen_event::failed;
      e.turn_id = it->first;
      e.reason = "the engine failed (" + why + ") and is restarting; retry";
      e.retryable = true;
      finish(it, e);
    }
    it = next;
  }
  resident_.clear();
  engine_.reset();
  if (!restart_) {
    broken_ = "the engine failed (" + why + ") and this node cannot restart it";
    return;
  }
  auto fresh = restart_();
  if (!fresh) {
    broken_ = "the engine failed (" + why + ") and could not restart (" + fresh.error().message() + ")";
    return;
  }
  engine_ = std::move(*fresh);
  std::lock_guard<std::mutex> g(mu_);
  ++restarts_;
}

batch_loop::~batch_loop() { shutdown(true); }

void batch_loop::shutdown(bool notify) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!thread_.joinable()) return;
    inbox_.push_back({notify ? command::stop : command::stop_silently, {}, 0, {}});
  }
  cv_.notify_one();
  thread_.join();
}

status batch_loop::submit(gen_job job) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (waiting_count_ >= cfg_.queue_limit)
      return {errc::resource, std::to_string(waiting_count_) + " turns are already waiting for the engine"};
    ++waiting_count_;
    inbox_.push_back({command::submit, std::move(job), 0, {}});
  }
  cv_.notify_one();
  return {};
}

void batch_loop::pause(uint64_t id) {
  {
    std::lock_guard<std::mutex> g(mu_);
    inbox_.push_back({command::pause, {}, id, {}});
  }
  cv_.notify_one();
}
void batch_loop::resume(uint64_t id) {
  {
    std::lock_guard<std::mutex> g(mu_);
    inbox_.push_back({command::resume, {}, id, {}});
  }
  cv_.notify_one();
}
void batch_loop::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> g(mu_);
    inbox_.push_back({command::cancel, {}, id, {}});
  }
  cv_.notify_one();
}
void batch_loop::release(const std::string& key) {
  {
    std::lock_guard<std::mutex> g(mu_);
    inbox_.push_back({command::release, {}, 0, key});
  }
  cv_.notify_one();
}

int batch_loop::load() const {
  std::lock_guard<std::mutex> g(mu_);
  return waiting_count_ + running_count_;
}

void batch_loop::apply(command& c) {
  switch (c.kind) {
    case command::submit: {
      const uint64_t id = c.job.turn_id;
      if (waiting_.empty()) first_wait_ = clock_type::now();
      job_state j;
      j.job = std::move(c.job);
      jobs_[id] = std::move(j);
      waiting_.push_back(id);
      break;
    }
    case command::pause:
      if (auto it = jobs_.find(c.turn_id); it != jobs_.end()) it->second.paused = true;
      break;
    case command::resume:
      if (auto it = jobs_.find(c.turn_id); it != jobs_.end()) it->second.paused = false;
      break;
    case command::cancel:
      if (auto it = jobs_.find(c.turn_id); it != jobs_.end()) {
        gen_event e;
        e.kind = gen_event::done;
        e.turn_id = c.turn_id;
        e.reason = "cancelled";
        finish(it, e);
      }
      break;
    case command::release: {
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
        if (it->second.job.session_key == c.key) {
          gen_event e;
          e.kind = gen_event::done;
          e.turn_id = it->first;
          e.reason = "cancelled";
          finish(it, e);
          break;
        }
      if (auto r = resident_.find(c.key); r != resident_.end()) {
        if (r->second.seq >= 0 && engine_) engine_->free_sequence(r->second.seq);
        resident_.erase(r);
      }
      break;
    }
    case command::stop:
    case command::stop_silently: break;
  }
}

bool batch_loop::evict_one(const std::string& except) {
  auto victim = resident_.end();
  for (auto it = resident_.begin(); it != resident_.end(); ++it)
    if (!it->second.busy && it->first != except && it->second.seq >= 0 &&
        (victim == resident_.end() || it->second.last_used < victim->second.last_used))
      victim = it;
  if (victim == resident_.end()) return false;
  engine_->free_sequence(victim->second.seq);
  resident_.erase(victim);
  return true;
}

bool batch_loop::admit(job_state& j) {
  resident& r = resident_[j.job.session_key];
  if (r.seq < 0) {
    auto s = engine_->create_sequence();
    while (!s && evict_one(j.job.session_key)) s = engine_->create_sequence();
    if (!s) {
      if (r.tokens.empty()) resident_.erase(j.job.session_key);
      return false;
    }
    r.seq = *s;
    r.tokens.clear();
  }
  // Reuse what the cache already holds for this session; always re-feed at
  // least the last token so the step has logits to sample from.
  size_t p = 0;
  while (p < r.tokens.size() && p < j.job.tokens.size() && r.tokens[p] == j.job.tokens[p]) ++p;
  if (p == j.job.tokens.size()) p = j.job.tokens.size() - 1;
  (void)engine_->truncate(r.seq, static_cast<int32_t>(p));
  r.tokens.resize(p);
  r.busy = true;
  r.last_used = ++clock_;
  j.seq = r.seq;
  j.pending.assign(j.job.tokens.begin() + static_cast<std::ptrdiff_t>(p), j.job.tokens.end());
  j.prompt_fed = static_cast<int32_t>(j.pending.size());
  // Never run past the context: the session trims history, this is the backstop.
  const int64_t room = static_cast<int64_t>(engine_->n_ctx()) - static_cast<int64_t>(j.job.tokens.size());
  j.job.max_new = static_cast<int32_t>(std::max<int64_t>(0, std::min<int64_t>(j.job.max_new, room)));
  j.admitted = true;
  return true;
}

void batch_loop::finish(std::map<uint64_t, job_state>::iterator it, const gen_event& e) {
  job_state& j = it->second;
  if (j.admitted) {
    if (auto r = resident_.find(j.job.session_key); r != resident_.end()) {
      r->second.busy = false;
      r->second.last_used = ++clock_;
    }
  } else {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), it->first), waiting_.end());
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (j.admitted)
      --running_count_;
    else
      --waiting_count_;
  }
  gen_event out = e;
  out.prompt_tokens = j.prompt_fed;
  auto cb = std::move(j.job.on_event);
  jobs_.erase(it);
  if (cb) cb(out);
}

void batch_loop::fail_all(const std::string& why) {
  while (!jobs_.empty()) {
    gen_event e;
    e.kind = gen_event::failed;
    e.turn_id = jobs_.begin()->first;
    e.reason = why;
    e.retryable = true;
    finish(jobs_.begin(), e);
  }
}

void batch_loop::run() {
  std::vector<step_item> batch;
  std::vector<uint64_t> batch_ids;
  std::vector<step_result> out;
  auto window_start = clock_type::now();
  double busy_seconds = 0;
  for (;;) {
    std::deque<command> cmds;
    {
      std::unique_lock<std::mutex> lk(mu_);
      auto runnable = [&] {
        for (const auto& [id, j] : jobs_)
          if (j.admitted && !j.paused) return true;
        return false;
      };
      if (!runnable() && waiting_.empty()) cv_.wait(lk, [&] { return !inbox_.empty(); });
      cmds.swap(inbox_);
    }
    for (auto& c : cmds) {
      if (c.kind == command::stop) {
        fail_all("the node is shutting down; retry on another node");
        return;
      }
      if (c.kind == command::stop_silently) {
        jobs_.clear();  // drops the callbacks (and the actor handles in them) unrun
        waiting_.clear();
        return;
      }
      apply(c);
    }
    if (!engine_) {  // no engine any more: every turn fails with the cause, at once
      while (!jobs_.empty()) {
        gen_event e;
        e.kind = gen_event::failed;
        e.turn_id = jobs_.begin()->first;
        e.reason = broken_;
        finish(jobs_.begin(), e);
      }
      continue;
    }

    int running = 0;
    bool active = false;
    for (const auto& [id, j] : jobs_)
      if (j.admitted) {
        ++running;
        active = active || !j.paused;
      }
    // Deadline coalescing: an idle engine waits briefly for company.
    if (!active && !waiting_.empty() && static_cast<int>(waiting_.size()) < cfg_.max_batch) {
      const auto deadline = first_wait_ + cfg_.batch_window;
      if (clock_type::now() < deadline) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_until(lk, deadline, [&] { return !inbox_.empty(); });
        continue;
      }
    }
    bool blocked = false;
    while (!waiting_.empty() && running < cfg_.max_batch) {
      auto it = jobs_.find(waiting_.front());
      if (it == jobs_.end()) {
        waiting_.pop_front();
        continue;
      }
      if (!admit(it->second)) {
        blocked = true;
        break;
      }
      waiting_.pop_front();
      ++running;
      std::lock_guard<std::mutex> g(mu_);
      --waiting_count_;
      ++running_count_;
    }
    if (!waiting_.empty()) first_wait_ = clock_type::now();

    // Plan: decoding jobs first (one token each), then prefill chunks.
    batch.clear();
    batch_ids.clear();
    int budget = cfg_.step_tokens;
    for (int pass = 0; pass < 2; ++pass)
      for (auto& [id, j] : jobs_) {
        if (!j.admitted || j.paused || j.pending.empty() || budget <= 0) continue;
        if (static_cast<int>(batch.size()) >= cfg_.max_batch) break;
        const bool decoding = j.pending.size() == 1;
        if ((pass == 0) != decoding) continue;
        const int n = std::min<int>(static_cast<int>(j.pending.size()), budget);
        step_item it;
        it.seq = j.seq;
        it.tokens.assign(j.pending.begin(), j.pending.begin() + n);
        it.sample = n == static_cast<int>(j.pending.size());
        it.sampling = j.job.sampling;
        batch.push_back(std::move(it));
        batch_ids.push_back(id);
        budget -= n;
      }
    if (batch.empty()) {
      // Nothing can run (every admitted job is paused, or nothing fits):
      // sleep until a command (resume, cancel, release, submit) arrives; the
      // timeout retries admission after evictable state changed.
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(blocked ? 50 : 200), [&] { return !inbox_.empty(); });
      continue;
    }

    const auto t0 = clock_type::now();
    const status st = engine_->step(batch, out);
    busy_seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
    if (st.code() == errc::resource) {
      // KV full: evict an idle session and retry the same plan; if there is
      // none, the newest job yields (its client retries later).
      if (evict_one("")) continue;
      auto newest = jobs_.find(*std::max_element(batch_ids.begin(), batch_ids.end()));
      gen_event e;
      e.kind = gen_event::failed;
      e.turn_id = newest->first;
      e.reason = "the KV cache is full; retry shortly";
      e.retryable = true;
      const std::string key = newest->second.job.session_key;
      finish(newest, e);
      if (auto r = resident_.find(key); r != resident_.end()) {
        engine_->free_sequence(r->second.seq);
        resident_.erase(r);
      }
      continue;
    }
    if (st.code() == errc::device) {
      restart_engine(st.message());
      continue;
    }
    if (!st) {
      for (uint64_t id : batch_ids) {
        auto it = jobs_.find(id);
        const std::string key = it->second.job.session_key;
        gen_event e;
        e.kind = gen_event::failed;
        e.turn_id = id;
        e.reason = "engine step failed: " + st.message();
        e.retryable = false;
        finish(it, e);
        if (auto r = resident_.find(key); r != resident_.end()) {
          engine_->free_sequence(r->second.seq);
          resident_.erase(r);
        }
      }
      continue;
    }
    const int32_t bs = static_cast<int32_t>(batch.size());
    const tokenizer& vocab = engine_->vocab();
    for (size_t k = 0; k < batch.size(); ++k) {
      auto it = jobs_.find(batch_ids[k]);
      job_state& j = it->second;
      resident& r = resident_[j.job.session_key];
      r.tokens.insert(r.tokens.end(), batch[k].tokens.begin(), batch[k].tokens.end());
      j.pending.erase(j.pending.begin(), j.pending.begin() + static_cast<std::ptrdiff_t>(batch[k].tokens.size()));
      if (!batch[k].sample) continue;
      const token_id t = out[k].token;
      gen_event e;
      e.turn_id = it->first;
      e.batch_size = bs;
      if (vocab.is_end_of_generation(t) || j.job.max_new == 0) {
        e.kind = gen_event::done;
        e.reason = j.job.max_new == 0 ? "max_tokens" : "eos";
        finish(it, e);
        continue;
      }
      ++j.generated;
      e.kind = gen_event::token_event;
      e.token = t;
      if (j.job.on_event) j.job.on_event(e);
      if (j.generated >= j.job.max_new) {
        gen_event d;
        d.kind = gen_event::done;
        d.turn_id = it->first;
        d.batch_size = bs;
        d.reason = "max_tokens";
        finish(it, d);
      } else {
        j.pending = {t};
      }
    }
    if (metrics_) {
      metrics_->observe_batch_size(bs);
      const kv_usage u = engine_->usage();
      metrics_->set_kv_cache_usage(u.ratio());
      metrics_->set_queue_depth(static_cast<double>(waiting_.size()));
      const double wall = std::chrono::duration<double>(clock_type::now() - window_start).count();
      if (wall >= 1.0) {
        metrics_->set_engine_busy_ratio(busy_seconds / wall);
        busy_seconds = 0;
        window_start = clock_type::now();
      }
    }
  }
}

}  // namespace brigade::actors
