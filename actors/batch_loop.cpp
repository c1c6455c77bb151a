#include "actors/batch_loop.hpp"

#include <algorithm>

#include "runtime/metrics.hpp"

namespace brigade::actors {

using clock_type = std::chrono::steady_clock;

batch_loop::batch_loop(std::unique_ptr<engine> e, batch_config cfg, runtime::node_metrics* metrics,
                       engine_factory restart)
    : engine_(std::move(e)),
      restart_(std::move(restart)),
      model_(engine_->model()),
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
      finish(it, event(gen_event::failed, it->first, "the engine failed (" + why + ") and is restarting; retry", true));
    }
    it = next;
  }
  for (const auto& [key, r] : resident_) evicted_[key] = r.tokens.size();  // lost with the engine, still wanted
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
  if (metrics_) metrics_->add_turn_arrival();  // demand, whether it is queued or refused
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
      if (auto it = jobs_.find(c.turn_id); it != jobs_.end())
        finish(it, event(gen_event::done, c.turn_id, "cancelled"));
      break;
    case command::release: {
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
        if (it->second.job.session_key == c.key) {
          finish(it, event(gen_event::done, it->first, "cancelled"));
          break;
        }
      drop_resident(c.key);
      publish_kv();
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
  evicted_[victim->first] = victim->second.tokens.size();  // still wanted: its next turn re-prefills
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
    evicted_.erase(j.job.session_key);
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

void batch_loop::finish(std::map<uint64_t, job_state>::iterator it, const gen_event& e, int32_t batch_size) {
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
  if (metrics_ && e.kind == gen_event::done && e.reason != "cancelled")
    metrics_->observe_turn_work(j.prompt_fed, j.generated);
  gen_event out = e;
  out.prompt_tokens = j.prompt_fed;
  if (batch_size > 0) out.batch_size = batch_size;
  auto cb = std::move(j.job.on_event);
  jobs_.erase(it);
  if (jobs_.empty()) publish_kv();  // idle from now on: no step publishes the figures
  if (cb) cb(out);
}

gen_event batch_loop::event(gen_event::kind_t kind, uint64_t turn_id, std::string reason, bool retryable) {
  gen_event e;
  e.kind = kind;
  e.turn_id = turn_id;
  e.reason = std::move(reason);
  e.retryable = retryable;
  return e;
}

void batch_loop::fail_jobs(const std::string& why, bool retryable) {
  while (!jobs_.empty()) finish(jobs_.begin(), event(gen_event::failed, jobs_.begin()->first, why, retryable));
}

void batch_loop::drop_resident(const std::string& key) {
  evicted_.erase(key);
  if (auto r = resident_.find(key); r != resident_.end()) {
    if (r->second.seq >= 0 && engine_) engine_->free_sequence(r->second.seq);
    resident_.erase(r);
  }
}

bool batch_loop::take_commands() {
  std::deque<command> cmds;
  {
    std::unique_lock<std::mutex> lk(mu_);
    const bool runnable =
        std::any_of(jobs_.begin(), jobs_.end(), [](const auto& kv) { return kv.second.admitted && !kv.second.paused; });
    if (!runnable && waiting_.empty()) cv_.wait(lk, [&] { return !inbox_.empty(); });
    cmds.swap(inbox_);
  }
  for (auto& c : cmds) {
    if (c.kind == command::stop) {
      fail_jobs("the node is shutting down; retry on another node", true);
      return false;
    }
    if (c.kind == command::stop_silently) {
      jobs_.clear();  // drops the callbacks (and the actor handles in them) unrun
      waiting_.clear();
      return false;
    }
    apply(c);
  }
  return true;
}

bool batch_loop::wait_for_company() {
  const bool active =
      std::any_of(jobs_.begin(), jobs_.end(), [](const auto& kv) { return kv.second.admitted && !kv.second.paused; });
  if (active || waiting_.empty() || static_cast<int>(waiting_.size()) >= cfg_.max_batch) return false;
  const auto deadline = first_wait_ + cfg_.batch_window;
  if (clock_type::now() >= deadline) return false;
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_until(lk, deadline, [&] { return !inbox_.empty(); });
  return true;
}

bool batch_loop::admit_waiting() {
  int running =
      static_cast<int>(std::count_if(jobs_.begin(), jobs_.end(), [](const auto& kv) { return kv.second.admitted; }));
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
  return !blocked;
}

void batch_loop::plan_step(step_plan& plan) {
  plan.batch.clear();
  plan.ids.clear();
  int budget = cfg_.step_tokens;
  for (int pass = 0; pass < 2; ++pass)  // decoding jobs first (one token each), then prefill chunks
    for (auto& [id, j] : jobs_) {
      if (!j.admitted || j.paused || j.pending.empty() || budget <= 0) continue;
      if (static_cast<int>(plan.batch.size()) >= cfg_.max_batch) break;
      const bool decoding = j.pending.size() == 1;
      if ((pass == 0) != decoding) continue;
      const int n = std::min<int>(static_cast<int>(j.pending.size()), budget);
      step_item it;
      it.seq = j.seq;
      it.tokens.assign(j.pending.begin(), j.pending.begin() + n);
      it.sample = n == static_cast<int>(j.pending.size());
      it.sampling = j.job.sampling;
      plan.batch.push_back(std::move(it));
      plan.ids.push_back(id);
      budget -= n;
    }
}

void batch_loop::idle_wait(bool blocked) {
  // Nothing can run (every admitted job is paused, or nothing fits): sleep
  // until a command (resume, cancel, release, submit) arrives; the timeout
  // retries admission after evictable state changed.
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::milliseconds(blocked ? 50 : 200), [&] { return !inbox_.empty(); });
}

void batch_loop::on_step_error(const status& st, const step_plan& plan) {
  if (st.code() == errc::resource) return on_kv_full(plan);
  if (st.code() == errc::device) return restart_engine(st.message());
  for (uint64_t id : plan.ids) {  // any other error: this step's jobs fail for good
    auto it = jobs_.find(id);
    const std::string key = it->second.job.session_key;
    finish(it, event(gen_event::failed, id, "engine step failed: " + st.message(), false));
    drop_resident(key);
  }
}

void batch_loop::on_kv_full(const step_plan& plan) {
  // Evict an idle session and retry the same plan; if there is none, the
  // newest job yields (its client retries later).
  if (evict_one("")) return;
  auto newest = jobs_.find(*std::max_element(plan.ids.begin(), plan.ids.end()));
  const std::string key = newest->second.job.session_key;
  finish(newest, event(gen_event::failed, newest->first, "the KV cache is full; retry shortly", true));
  drop_resident(key);
}

void batch_loop::apply_results(const step_plan& plan) {
  const int32_t bs = static_cast<int32_t>(plan.batch.size());
  const tokenizer& vocab = model_->vocab();
  for (size_t k = 0; k < plan.batch.size(); ++k) {
    auto it = jobs_.find(plan.ids[k]);
    job_state& j = it->second;
    const auto& fed = plan.batch[k].tokens;
    auto& cached = resident_[j.job.session_key].tokens;
    cached.insert(cached.end(), fed.begin(), fed.end());
    j.pending.erase(j.pending.begin(), j.pending.begin() + static_cast<std::ptrdiff_t>(fed.size()));
    if (!plan.batch[k].sample) continue;
    const token_id t = out_[k].token;
    if (vocab.is_end_of_generation(t) || j.job.max_new == 0) {
      finish(it, event(gen_event::done, it->first, j.job.max_new == 0 ? "max_tokens" : "eos"), bs);
      continue;
    }
    ++j.generated;
    gen_event e = event(gen_event::token_event, it->first);
    e.token = t;
    e.batch_size = bs;
    if (j.job.on_event) j.job.on_event(e);
    if (j.generated >= j.job.max_new)
      finish(it, event(gen_event::done, it->first, "max_tokens"), bs);
    else
      j.pending = {t};
  }
}

void batch_loop::publish_metrics(int32_t batch_size) {
  if (!metrics_) return;
  metrics_->observe_batch_size(batch_size);
  metrics_->set_kv_cache_usage(engine_->usage().ratio());
  metrics_->set_queue_depth(static_cast<double>(waiting_.size()));
  const double wall = std::chrono::duration<double>(clock_type::now() - busy_window_start_).count();
  if (wall >= 1.0) {
    metrics_->set_engine_busy_ratio(busy_seconds_ / wall);
    busy_seconds_ = 0;
    busy_window_start_ = clock_type::now();
    publish_kv();
  }
}

void batch_loop::publish_kv() {
  if (!metrics_ || !engine_) return;
  double wanted = 0;
  for (const auto& [key, r] : resident_) wanted += static_cast<double>(r.tokens.size());
  for (const auto& [key, n] : evicted_) wanted += static_cast<double>(n);
  const kv_usage u = engine_->usage();
  metrics_->set_kv_demand(wanted, static_cast<double>(u.blocks_total) * u.block_size);
  // Tokens in flight: what waiting turns (less what their session still
  // holds) and prefilling ones have left to feed, and what running ones may
  // still generate.
  double prompt = 0, generated = 0;
  for (const auto& [id, j] : jobs_) {
    if (j.admitted) {
      if (j.pending.size() > 1) prompt += static_cast<double>(j.pending.size());
      generated += std::max(0, j.job.max_new - j.generated);
      continue;
    }
    size_t held = 0;
    if (auto r = resident_.find(j.job.session_key); r != resident_.end())
      while (held < r->second.tokens.size() && held < j.job.tokens.size() && r->second.tokens[held] == j.job.tokens[held])
        ++held;
    prompt += static_cast<double>(j.job.tokens.size() - held);
  }
  metrics_->set_tokens_in_flight(prompt, generated);
}

void batch_loop::run() {
  step_plan plan;
  busy_window_start_ = clock_type::now();
  publish_kv();  // the capacity is known before the first turn
  while (take_commands()) {
    if (!engine_) {  // no engine any more: every turn fails with the cause, at once
      fail_jobs(broken_, false);
      continue;
    }
    if (wait_for_company()) continue;  // deadline coalescing: an idle engine waits briefly
    const bool blocked = !admit_waiting();
    plan_step(plan);
    if (plan.batch.empty()) {
      idle_wait(blocked);
      continue;
    }
    const auto t0 = clock_type::now();
    const status st = engine_->step(plan.batch, out_);
    const double took = std::chrono::duration<double>(clock_type::now() - t0).count();
    busy_seconds_ += took;
    if (!st) {
      on_step_error(st, plan);
      continue;
    }
    if (metrics_) {
      size_t fed = 0;
      for (const auto& item : plan.batch) fed += item.tokens.size();
      metrics_->observe_step(static_cast<double>(fed), took);
    }
    apply_results(plan);
    publish_metrics(static_cast<int32_t>(plan.batch.size()));
  }
}

}  // namespace brigade::actors
