#include "app/load_generator.hpp"

namespace brigade::app {

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

/// One simulated user: opens a session and runs turns until `stop` or `turns`.
void run_user(net::client& c, int turns, int max_tokens, const std::atomic<bool>& stop, load_report& rep, int user,
              bool verify) {
  std::vector<std::pair<uint64_t, std::string>> acked;
  net::client_error err;
  std::string id, token;
  if (!c.open(id, token, err)) {
    std::lock_guard<std::mutex> g(rep.mu);
    ++rep.errors;
    if (rep.first_error.empty()) rep.first_error = err.message;
    return;
  }
  static const char* prompts[] = {"What is on the menu tonight?", "Table four wants the soup.",
                                  "How long for the risotto?",    "Fire two steaks, medium rare.",
                                  "Can you plate the dessert?",   "Thanks, chef!"};
  for (int t = 0; (turns <= 0 || t < turns) && !stop.load(); ++t) {
    sampling_params s;  // the chat command's defaults
    s.temperature = 0.8f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.max_tokens = max_tokens;
    s.seed = static_cast<uint64_t>(user * 1000 + t);
    s.seed_set = true;
    auto t0 = clock_type::now();
    double ttft = -1;
    turn_result r;
    int refused = 0;
    const bool ok = c.chat(
        id, token, static_cast<uint64_t>(t + 1), prompts[(user + t) % 6], s,
        [&](uint32_t, const std::string&) {
          if (ttft < 0) ttft = seconds_since(t0);
          rep.streamed.fetch_add(1, std::memory_order_relaxed);
        },
        r, err, &refused);
    std::lock_guard<std::mutex> g(rep.mu);
    rep.refused += refused;
    if (!ok) {
      ++rep.errors;
      if (rep.first_error.empty()) rep.first_error = err.message;
      return;
    }
    ++rep.turns;
    acked.emplace_back(r.seq, r.reply);
    rep.tokens += r.stats.generated_tokens;
    if (!r.stats.replayed) rep.prompt_tokens += r.stats.prompt_tokens;
    rep.ttft.push_back(ttft >= 0 ? ttft : r.stats.ttft_seconds);
    if (r.stats.mean_batch_size > 0) {
      rep.batch_sum += r.stats.mean_batch_size;
      ++rep.batch_n;
    }
  }
  if (!verify) return;
  // Every acknowledged turn must be in the history exactly once, in seq order.
  std::vector<turn_record> hist;
  if (!c.history(id, token, hist, err)) {
    std::lock_guard<std::mutex> g(rep.mu);
    ++rep.errors;
    if (rep.first_error.empty()) rep.first_error = err.message;
    return;
  }
  int64_t lost = 0, dup = 0;
  for (size_t i = 0; i < hist.size(); ++i)
    if (hist[i].seq != i + 1) ++dup;
  for (const auto& [seq, reply] : acked) {
    if (seq == 0 || seq > hist.size())
      ++lost;
    else if (hist[seq - 1].assistant != reply)
      ++dup;
  }
  std::lock_guard<std::mutex> g(rep.mu);
  rep.lost += lost;
  rep.duplicated += dup;
}

}  // namespace brigade::app
