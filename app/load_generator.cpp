#include "app/load_generator.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <random>

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

// -- the same load over the HTTP API (bench --api) -------------------------------------

namespace brigade::app {

namespace {

using json = nlohmann::json;

struct api_turn {
  bool ok = false;
  int status = 0;
  std::string error;
  std::string text;
  uint64_t seq = 0;
  int64_t completion_tokens = 0, prompt_tokens = 0;
  double ttft = -1;
};

httplib::Headers api_headers(const api_target& t) {
  httplib::Headers h;
  if (!t.key.empty()) h.emplace("Authorization", "Bearer " + t.key);
  return h;
}

/// One streamed chat turn of a durable session: SSE parsed as it arrives.
api_turn api_chat(httplib::Client& cli, const api_target& t, const std::string& id, const std::string& token,
                  uint64_t seq, const std::string& text, const sampling_params& s, load_report& rep) {
  api_turn out;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = api_headers(t);
  req.headers.emplace("Content-Type", "application/json");
  req.headers.emplace("X-Brigade-Session", id);
  req.headers.emplace("X-Brigade-Token", token);
  req.headers.emplace("X-Brigade-Seq", std::to_string(seq));
  req.body = json{{"messages", json::array({{{"role", "user"}, {"content", text}}})},
                  {"max_tokens", s.max_tokens},
                  {"temperature", s.temperature},
                  {"top_k", s.top_k},
                  {"top_p", s.top_p},
                  {"seed", s.seed},
                  {"stream", true},
                  {"stream_options", {{"include_usage", true}}}}
                 .dump();
  const auto t0 = clock_type::now();
  std::string buf, body;
  bool done = false;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buf.append(data, len);
    body.append(data, std::min<size_t>(len, 4096 - std::min<size_t>(body.size(), 4096)));
    for (size_t end; (end = buf.find("\n\n")) != std::string::npos;) {
      const std::string ev = buf.substr(0, end);
      buf.erase(0, end + 2);
      if (ev.rfind("data: ", 0) != 0) continue;  // a comment (keep-alive)
      const std::string data_text = ev.substr(6);
      if (data_text == "[DONE]") {
        done = true;
        continue;
      }
      json j = json::parse(data_text, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        out.error = j["error"].value("message", "error event");
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        out.completion_tokens = j["usage"].value("completion_tokens", 0);
        out.prompt_tokens = j["usage"].value("prompt_tokens", 0);
      }
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& d = j["choices"][0]["delta"];
      if (d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty()) {
        if (out.ttft < 0) out.ttft = std::chrono::duration<double>(clock_type::now() - t0).count();
        out.text += d["content"].get<std::string>();
        rep.streamed.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return true;
  };
  auto res = cli.send(req);
  if (!res) {
    out.error = "HTTP request failed (" + httplib::to_string(res.error()) + ")";
    return out;
  }
  out.status = res->status;
  if (res->has_header("X-Brigade-Seq")) out.seq = std::strtoull(res->get_header_value("X-Brigade-Seq").c_str(), nullptr, 10);
  if (res->status != 200) {
    json j = json::parse(body, nullptr, false);
    out.error = "HTTP " + std::to_string(res->status) +
                (j.is_object() && j.contains("error") ? ": " + j["error"].value("message", "") : "");
    return out;
  }
  out.ok = done && out.error.empty();
  if (!done && out.error.empty()) out.error = "the stream ended without [DONE]";
  return out;
}

void note_error(load_report& rep, const std::string& e) {
  std::lock_guard<std::mutex> g(rep.mu);
  ++rep.errors;
  if (rep.first_error.empty()) rep.first_error = e;
}

}  // namespace

void run_api_user(const api_target& t, int turns, int max_tokens, const std::atomic<bool>& stop, load_report& rep,
                  int user, bool verify) {
  httplib::Client cli(t.host, t.port);
  cli.set_read_timeout(300, 0);
  cli.set_connection_timeout(5, 0);
  cli.set_keep_alive(true);
  std::string id, token;
  {
    auto r = cli.Post("/v1/sessions", api_headers(t), "{}", "application/json");
    if (!r || r->status != 200) {
      note_error(rep, r ? "POST /v1/sessions: HTTP " + std::to_string(r->status) + " " + r->body
                        : "POST /v1/sessions: " + httplib::to_string(r.error()));
      return;
    }
    json j = json::parse(r->body, nullptr, false);
    id = j.value("id", "");
    token = j.value("token", "");
  }
  static const char* prompts[] = {"What is on the menu tonight?", "Table four wants the soup.",
                                  "How long for the risotto?",    "Fire two steaks, medium rare.",
                                  "Can you plate the dessert?",   "Thanks, chef!"};
  std::vector<std::pair<uint64_t, std::string>> acked;
  std::mt19937 rng(static_cast<uint32_t>(user));
  for (int k = 0; (turns <= 0 || k < turns) && !stop.load(); ++k) {
    sampling_params s;
    s.temperature = 0.8f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.max_tokens = max_tokens;
    s.seed = static_cast<uint64_t>(user * 1000 + k);
    const uint64_t seq = static_cast<uint64_t>(k + 1);
    api_turn r;
    int refused = 0;
    // Retried as the SDKs do (429, 409, 5xx, a dropped connection), the same seq each time.
    for (int attempt = 1; attempt <= 8; ++attempt) {
      r = api_chat(cli, t, id, token, seq, prompts[(user + k) % 6], s, rep);
      if (r.ok) break;
      const bool retry = r.status == 0 || r.status == 429 || r.status == 409 || r.status >= 500;
      if (!retry) break;
      if (r.status == 429) ++refused;
      std::uniform_real_distribution<double> jitter(0.5, 1.5);
      std::this_thread::sleep_for(
          std::chrono::milliseconds(static_cast<int>(std::min(2000, 100 << std::min(attempt - 1, 5)) * jitter(rng))));
    }
    std::lock_guard<std::mutex> g(rep.mu);
    rep.refused += refused;
    if (!r.ok) {
      ++rep.errors;
      if (rep.first_error.empty()) rep.first_error = r.error;
      return;
    }
    ++rep.turns;
    acked.emplace_back(r.seq, r.text);
    rep.tokens += r.completion_tokens;
    rep.prompt_tokens += r.prompt_tokens;
    if (r.ttft >= 0) rep.ttft.push_back(r.ttft);
  }
  if (!verify) return;
  auto h = cli.Get(("/v1/sessions/" + id).c_str(), [&] {
    auto hs = api_headers(t);
    hs.emplace("X-Brigade-Token", token);
    return hs;
  }());
  if (!h || h->status != 200) return note_error(rep, "GET /v1/sessions/" + id + " failed");
  json j = json::parse(h->body, nullptr, false);
  if (!j.is_object() || !j.contains("turns")) return note_error(rep, "GET /v1/sessions/" + id + ": no turns");
  const json& hist = j["turns"];
  int64_t lost = 0, dup = 0;
  for (size_t i = 0; i < hist.size(); ++i)
    if (hist[i].value("seq", uint64_t{0}) != i + 1) ++dup;
  for (const auto& [seq, reply] : acked) {
    if (seq == 0 || seq > hist.size())
      ++lost;
    else if (hist[seq - 1].value("assistant", "") != reply)
      ++dup;
  }
  std::lock_guard<std::mutex> g(rep.mu);
  rep.lost += lost;
  rep.duplicated += dup;
}

}  // namespace brigade::app
