#include "actors/api_server.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <httplib.h>
#include <caf/all.hpp>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

#include "actors/messages.hpp"
#include "actors/oneshot.hpp"
#include "kernels/model/unicode.hpp"
#include "net/openai.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace oa = net::openai;
using clock_type = std::chrono::steady_clock;

namespace {

// -- the bridge between an HTTP thread and the actors ------------------------------

/// What one turn sends back, handed from its bridge actor to the HTTP thread.
struct channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<token_chunk> chunks;
  bool streamed = false;  // a chunk has arrived (the client may have seen text)
  caf::actor source;  // who sends the chunks (gets the credit)
  bool done = false;
  bool ok = false;
  turn_result result;
  uint8_t code = 0;  // brigade_errc of a failure, 0 for a transport or CAF error
  std::string sentence;
};

using starter = std::function<void(caf::event_based_actor*, std::shared_ptr<channel>)>;

void finish_ok(const std::shared_ptr<channel>& ch, turn_result& r) {
  std::lock_guard<std::mutex> g(ch->mu);
  ch->done = true;
  ch->ok = true;
  ch->result = std::move(r);
  ch->cv.notify_all();
}

void finish_error(caf::event_based_actor* self, const std::shared_ptr<channel>& ch, const caf::error& e) {
  std::lock_guard<std::mutex> g(ch->mu);
  if (ch->done) return;
  ch->done = true;
  ch->code = brigade_code(e);
  ch->sentence = error_sentence(self->system(), e);
  ch->cv.notify_all();
}

/// Sends the request (`start`, with itself as reply_to), passes chunks and
/// the result on. (b_drain) from the HTTP thread: the client is gone, quit
/// (the session or oneshot sees its reader end and cancels the turn).
caf::behavior bridge_fn(caf::event_based_actor* self, std::shared_ptr<channel> ch, starter start) {
  start(self, ch);
  return {
      [=](token_chunk& c) {
        std::lock_guard<std::mutex> g(ch->mu);
        // Set once, before the first chunk is visible: the HTTP thread reads
        // it (for credit) only after taking a chunk under the lock.
        if (!ch->source) ch->source = caf::actor_cast<caf::actor>(self->current_sender());
        ch->chunks.push_back(std::move(c));
        ch->streamed = true;
        ch->cv.notify_all();
      },
      [=](drain_atom) {
        finish_error(self, ch, make_error(brigade_errc::stalled, "the client went away"));
        self->quit();
      },
  };
}

template <class Req>
starter then_finish(caf::actor target, Req make) {
  return [target, make](caf::event_based_actor* self, std::shared_ptr<channel> ch) mutable {
    self->request(target, caf::infinite, make(caf::actor_cast<caf::actor>(self)))
        .then(
            [self, ch](turn_result& r) {
              finish_ok(ch, r);
              self->quit();
            },
            [self, ch](caf::error& e) {
              finish_error(self, ch, e);
              self->quit();
            });
  };
}

// -- errors ---------------------------------------------------------------------------

/// brigade's error codes as OpenAI's errors (docs/api.md, "Errors").
oa::api_error api_error_for(uint8_t code, const std::string& sentence) {
  oa::api_error e;
  e.message = sentence;
  switch (static_cast<brigade_errc>(code)) {
    case brigade_errc::overloaded: e = {429, sentence, "rate_limit_error", "", "overloaded"}; break;
    case brigade_errc::unauthorized: e = {401, sentence, "authentication_error", "", "invalid_session"}; break;
    case brigade_errc::bad_request: e = {400, sentence, "invalid_request_error", "", ""}; break;
    case brigade_errc::seq_gap: e = {400, sentence, "invalid_request_error", "x-brigade-seq", "seq_gap"}; break;
    case brigade_errc::turn_in_progress: e = {409, sentence, "conflict_error", "", "turn_in_progress"}; break;
    case brigade_errc::store_unavailable: e = {503, sentence, "server_error", "", "store_unavailable"}; break;
    case brigade_errc::context_full:
      e = {400, sentence, "invalid_request_error", "messages", "context_length_exceeded"};
      break;
    case brigade_errc::stalled: e = {408, sentence, "timeout_error", "", "stalled"}; break;
    case brigade_errc::session_failed: e = {410, sentence, "invalid_request_error", "", "session_failed"}; break;
    case brigade_errc::shutting_down: e = {503, sentence, "server_error", "", "shutting_down"}; break;
    case brigade_errc::session_moved: e = {503, sentence, "server_error", "", "session_moved"}; break;
    case brigade_errc::engine_failed: e = {500, sentence, "server_error", "", "engine_failed"}; break;
    case brigade_errc::session_crashed: e = {500, sentence, "server_error", "", "session_crashed"}; break;
    default:
      e = {code == 0 ? 502 : 500, sentence.empty() ? "internal error" : sentence, "server_error", "", "internal"};
  }
  return e;
}

void send_error(httplib::Response& res, const oa::api_error& e) {
  res.status = e.status;
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  if (e.status == 409) res.set_header("x-should-retry", "true");
  res.set_content(oa::error_body(e), "application/json");
}

// -- the connection cap ------------------------------------------------------------------

/// True on the threads that answer connections past the cap (429 at once).
thread_local bool past_the_cap = false;

/// cpp-httplib's task queue with a cap: `n` threads serve connections, at
/// most `backlog` more wait for one; past that, a connection goes to one of
/// `spare` threads that only answer 429 and close it, so a flood gets a
/// prompt answer instead of an unbounded queue.
class capped_pool : public httplib::TaskQueue {
 public:
  capped_pool(size_t n, size_t backlog, size_t spare) : n_(n), backlog_(backlog) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(jobs_, false); });
    for (size_t i = 0; i < spare; ++i) threads_.emplace_back([this] { work(spares_, true); });
  }
  ~capped_pool() override = default;

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (busy_ + jobs_.size() < n_ + backlog_)
        jobs_.push_back(std::move(fn));
      else
        spares_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work(std::deque<std::function<void()>>& q, bool spare) {
    past_the_cap = spare;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !q.empty(); });
        if (q.empty()) return;  // stopping, nothing left
        fn = std::move(q.front());
        q.pop_front();
        if (!spare) ++busy_;
      }
      fn();
      if (!spare) {
        std::lock_guard<std::mutex> g(mu_);
        --busy_;
      }
    }
  }

  const size_t n_, backlog_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_, spares_;
  size_t busy_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

oa::api_error not_found(const std::string& what) { return {404, what, "not_found_error", "", "not_found"}; }

std::string route_of(const std::string& path) {
  // One more path segment, not empty and with no further '/'.
  auto one_below = [&](const std::string& base) {
    return path.size() > base.size() && path.compare(0, base.size(), base) == 0 &&
           path.find('/', base.size()) == std::string::npos;
  };
  if (one_below("/v1/sessions/")) return "/v1/sessions/{id}";
  if (one_below("/v1/models/")) return "/v1/models/{id}";
  for (const char* r : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/sessions", "/health"})
    if (path == r) return r;
  return "other";
}

}  // namespace

// -- the server -----------------------------------------------------------------------

struct api_server::impl {
  caf::actor_system* sys = nullptr;
  std::shared_ptr<node_context> ctx;
  caf::actor gateway;
  api_options opt;
  httplib::Server http;
  std::thread thread;
  int port = 0;
  int64_t created = 0;
  int max_in_flight = 0;
  std::atomic<int> in_flight{0};
  bool stopped = false;

  const runtime::node_config& cfg() const { return ctx->cfg; }

  bool authorized(const httplib::Request& req) const {
    if (opt.key_hashes.empty()) return true;
    const std::string h = req.get_header_value("Authorization");
    if (h.size() <= 7 || h.compare(0, 7, "Bearer ") != 0) return false;
    const std::string hash = runtime::sha256_hex(h.substr(7));
    bool ok = false;
    for (const auto& k : opt.key_hashes)  // constant time per key; every key checked
      ok |= k.size() == hash.size() && CRYPTO_memcmp(k.data(), hash.data(), hash.size()) == 0;
    return ok;
  }

  /// The model a request names must be this node's (or left out).
  std::optional<oa::api_error> check_model(const std::string& model) const {
    if (model.empty()) return std::nullopt;
    for (const auto& id : opt.model_ids)
      if (id == model) return std::nullopt;
    const std::string shown = model.size() > 64 ? model.substr(0, 64) + "..." : model;
    return oa::api_error{404,
                         "the model '" + (unicode::valid_utf8(shown) ? shown : std::string("(not UTF-8)")) +
                             "' does not exist here; this node serves '" + opt.model_ids[0] + "'",
                         "not_found_error", "model", "model_not_found"};
  }

  /// One request of the generation routes in flight; past the limit: 429.
  struct admission {
    impl* p;
    bool ok;
    explicit admission(impl* s) : p(s), ok(s->in_flight.fetch_add(1) < s->max_in_flight) {}
    ~admission() { p->in_flight.fetch_sub(1); }
  };

  oa::api_error overloaded_error() const {
    ctx->metrics->add_rejected("overloaded");
    return {429,
            "the node is answering " + std::to_string(max_in_flight) +
                " requests (max-batch + queue-limit + 16); retry after about 1s",
            "rate_limit_error", "", "overloaded"};
  }

  std::optional<oa::api_error> refuse_when_draining(bool durable) const {
    if (!opt.draining()) return std::nullopt;
    // A cluster member that drains forwards durable requests to the
    // session's place; stateless ones (and a single node) are refused.
    if (durable && opt.clustered()) return std::nullopt;
    ctx->metrics->add_rejected("shutting_down");
    return oa::api_error{503, "this node is draining; retry on another node", "server_error", "", "shutting_down"};
  }

  // -- a turn: stream or collect ------------------------------------------------------

  struct turn_call {
    bool chat = true;  // chat.completion vs text_completion
    bool stream = false;
    bool include_usage = false;
    oa::reply rep;
    std::shared_ptr<admission> slot;  // held until the response (a stream: its last byte) is written
  };

  static oa::api_error error_of(const turn_call& call, const channel& ch) {
    oa::api_error e = api_error_for(ch.code, ch.sentence);
    if (!call.chat && e.code == "context_length_exceeded") e.param = "prompt";
    return e;
  }

  /// Waits for the next chunks, the end, or `until`; false on timeout.
  static bool wait(channel& ch, std::unique_lock<std::mutex>& lk, clock_type::time_point until) {
    return ch.cv.wait_until(lk, until, [&] { return !ch.chunks.empty() || ch.done; });
  }

  void grant(channel& ch, const token_chunk& c, uint32_t n) {
    if (ch.source) caf::anon_send(ch.source, credit_atom::value, c.session_id, c.seq, n);
  }

  void run_turn(const httplib::Request&, httplib::Response& res, turn_call call, starter start) {
    auto ch = std::make_shared<channel>();
    caf::actor bridge = sys->spawn(bridge_fn, ch, std::move(start));
    const auto deadline = clock_type::now() + cfg().api_request_timeout;
    if (!call.stream) return collect(res, std::move(call), ch, bridge, deadline);
    // Headers go out with the first chunk or the end: an error before any
    // token still gets its own status, and X-Brigade-Seq is known.
    {
      std::unique_lock<std::mutex> lk(ch->mu);
      if (!ch->cv.wait_until(lk, deadline, [&] { return !ch->chunks.empty() || ch->done; })) {
        lk.unlock();
        caf::anon_send(bridge, drain_atom::value);
        return send_error(res, {504, "no reply within api-request-timeout", "timeout_error", "", "timeout"});
      }
      if (ch->done && !ch->ok) return send_error(res, error_of(call, *ch));
      const uint64_t seq = !ch->chunks.empty() ? ch->chunks.front().seq : ch->result.seq;
      if (seq != 0) res.set_header("X-Brigade-Seq", std::to_string(seq));
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream", [this, call = std::move(call), ch, bridge, deadline](size_t, httplib::DataSink& sink) {
          stream(sink, call, *ch, bridge, deadline);
          sink.done();
          return true;
        });
  }

  void collect(httplib::Response& res, turn_call call, const std::shared_ptr<channel>& ch, const caf::actor& bridge,
               clock_type::time_point deadline) {
    std::unique_lock<std::mutex> lk(ch->mu);
    uint32_t consumed = 0;
    for (;;) {
      if (!wait(*ch, lk, deadline)) {
        lk.unlock();
        caf::anon_send(bridge, drain_atom::value);
        return send_error(res, {504, "no reply within api-request-timeout", "timeout_error", "", "timeout"});
      }
      while (!ch->chunks.empty()) {
        const token_chunk c = std::move(ch->chunks.front());
        ch->chunks.pop_front();
        if (++consumed >= 8) {
          grant(*ch, c, consumed);
          consumed = 0;
        }
      }
      if (ch->done) break;
    }
    if (!ch->ok) return send_error(res, error_of(call, *ch));
    const turn_result& r = ch->result;
    call.rep.text = r.reply;
    call.rep.finish_reason = oa::finish_reason(r.stats.stop_reason);
    call.rep.prompt_tokens = r.stats.prompt_tokens;
    call.rep.completion_tokens = r.stats.generated_tokens;
    if (r.seq != 0) res.set_header("X-Brigade-Seq", std::to_string(r.seq));
    res.set_content(call.chat ? oa::chat_response(call.rep) : oa::completion_response(call.rep), "application/json");
  }

  /// Writes the stream; a failed write (the client went away) stops the
  /// turn at once through the bridge.
  void stream(httplib::DataSink& sink, const turn_call& call, channel& ch, const caf::actor& bridge,
              clock_type::time_point deadline) {
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    auto gone = [&] { caf::anon_send(bridge, drain_atom::value); };
    if (call.chat && !write(oa::chat_chunk(call.rep, "", true, ""))) return gone();
    std::unique_lock<std::mutex> lk(ch.mu);
    uint32_t consumed = 0;
    for (;;) {
      const auto beat = std::min(deadline, clock_type::now() + std::chrono::seconds(1));
      if (!wait(ch, lk, beat)) {
        if (clock_type::now() >= deadline) {
          lk.unlock();
          gone();
          write(oa::error_event({504, "no reply within api-request-timeout", "timeout_error", "", "timeout"}));
          return;
        }
        lk.unlock();
        const bool alive = write(": keep-alive\n\n");  // an SSE comment: finds a client that went away
        lk.lock();
        if (!alive) {
          lk.unlock();
          return gone();
        }
        continue;
      }
      std::deque<token_chunk> batch;
      batch.swap(ch.chunks);
      const bool done = ch.done;
      lk.unlock();
      // The events of what arrived together go out in one write (one
      // chunk of the chunked encoding, one system call).
      std::string events;
      for (const token_chunk& c : batch)
        events += call.chat ? oa::chat_chunk(call.rep, c.text, false, "") : oa::completion_chunk(call.rep, c.text, "");
      if (!events.empty() && !write(events)) return gone();
      for (const token_chunk& c : batch) {
        if (++consumed >= 8) {
          grant(ch, c, consumed);
          consumed = 0;
        }
      }
      lk.lock();
      if (done && ch.chunks.empty()) break;
    }
    if (!ch.ok) {
      const oa::api_error e = error_of(call, ch);
      lk.unlock();
      write(oa::error_event(e));  // no [DONE]: the SDK raises it
      return;
    }
    oa::reply rep = call.rep;
    rep.prompt_tokens = ch.result.stats.prompt_tokens;
    rep.completion_tokens = ch.result.stats.generated_tokens;
    const std::string finish = oa::finish_reason(ch.result.stats.stop_reason);
    lk.unlock();
    if (!write(call.chat ? oa::chat_chunk(rep, "", false, finish) : oa::completion_chunk(rep, "", finish))) return;
    if (call.include_usage && !write(oa::usage_chunk(rep, call.chat))) return;
    write(oa::done_event());
  }

  // -- routes -----------------------------------------------------------------------------

  struct durable_headers {
    std::string id, token, key;
    uint64_t seq = 0;
  };

  /// X-Brigade-Session and its companions; nullopt when absent (stateless).
  std::optional<oa::api_error> read_durable(const httplib::Request& req, std::optional<durable_headers>& out) const {
    const bool has_id = req.has_header("X-Brigade-Session"), has_token = req.has_header("X-Brigade-Token");
    if (!has_id && !has_token) return std::nullopt;
    if (!has_id || !has_token)
      return oa::api_error{400, "a durable request needs both X-Brigade-Session and X-Brigade-Token",
                           "invalid_request_error", has_id ? "x-brigade-token" : "x-brigade-session", ""};
    durable_headers d;
    d.id = req.get_header_value("X-Brigade-Session");
    d.token = req.get_header_value("X-Brigade-Token");
    d.key = req.get_header_value("Idempotency-Key");
    if (req.has_header("X-Brigade-Seq")) {
      const std::string s = req.get_header_value("X-Brigade-Seq");
      char* end = nullptr;
      errno = 0;
      const unsigned long long v = s.empty() || s[0] == '-' ? 0 : std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || s[0] == '-' || *end != '\0' || errno == ERANGE || v == 0)
        return oa::api_error{400, "X-Brigade-Seq must be a whole number from 1 (the turn's seq), not '" + s + "'",
                             "invalid_request_error", "x-brigade-seq", ""};
      d.seq = v;
    }
    if (req.has_header("Idempotency-Key") && (d.key.empty() || d.key.size() > 255 || !unicode::valid_utf8(d.key)))
      return oa::api_error{400, "Idempotency-Key must be 1 to 255 bytes of UTF-8", "invalid_request_error",
                           "idempotency-key", ""};
    if (d.seq == 0 && d.key.empty())
      return oa::api_error{400,
                           "a durable request (X-Brigade-Session) must say which turn it is: send X-Brigade-Seq: N "
                           "(the next seq after the last committed one) or an Idempotency-Key, so that a retried "
                           "request never runs twice",
                           "invalid_request_error", "x-brigade-seq", "missing_seq"};
    out = std::move(d);
    return std::nullopt;
  }

  oa::reply new_reply(bool chat, const std::string& model) const {
    oa::reply r;
    r.id = (chat ? "chatcmpl-" : "cmpl-") + runtime::random_hex(12);
    r.created = static_cast<int64_t>(std::time(nullptr));
    r.model = model.empty() ? opt.model_ids[0] : model;
    return r;
  }

  void chat(const httplib::Request& req, httplib::Response& res) {
    oa::chat_call c;
    if (auto e = oa::parse_chat(req.body, c)) return send_error(res, *e);
    if (auto e = check_model(c.model)) return send_error(res, *e);
    std::optional<durable_headers> d;
    if (auto e = read_durable(req, d)) return send_error(res, *e);
    if (auto e = refuse_when_draining(d.has_value())) return send_error(res, *e);
    auto slot = std::make_shared<admission>(this);
    if (!slot->ok) return send_error(res, overloaded_error());
    turn_call call{true, c.stream, c.include_usage, new_reply(true, c.model), slot};
    if (d) {
      if (c.messages.back().role != "user")
        return send_error(res, {400,
                                "the last message of a durable request must be the user's (it is the new turn; "
                                "the earlier ones come from the store)",
                                "invalid_request_error", "messages", ""});
      chat_request r;
      r.session_id = d->id;
      r.token = d->token;
      r.seq = d->seq;
      r.idempotency_key = d->key;
      r.text = c.messages.back().content;
      r.sampling = c.sampling;
      return run_turn(req, res, std::move(call), then_finish(gateway, [r](caf::actor me) mutable {
                        r.reply_to = std::move(me);
                        return caf::make_message(chat_atom::value, std::move(r));
                      }));
    }
    oneshot_request o;
    o.messages = std::move(c.messages);
    o.sampling = c.sampling;
    run_oneshot(req, res, std::move(call), std::move(o));
  }

  void completion(const httplib::Request& req, httplib::Response& res) {
    oa::completion_call c;
    if (auto e = oa::parse_completion(req.body, c)) return send_error(res, *e);
    if (auto e = check_model(c.model)) return send_error(res, *e);
    if (req.has_header("X-Brigade-Session"))
      return send_error(res, {400, "durable sessions take chat requests (/v1/chat/completions), not completions",
                              "invalid_request_error", "x-brigade-session", ""});
    if (auto e = refuse_when_draining(false)) return send_error(res, *e);
    auto slot = std::make_shared<admission>(this);
    if (!slot->ok) return send_error(res, overloaded_error());
    oneshot_request o;
    o.raw = true;
    o.prompt = std::move(c.prompt);
    o.sampling = c.sampling;
    run_oneshot(req, res, {false, c.stream, c.include_usage, new_reply(false, c.model), slot}, std::move(o));
  }

  void run_oneshot(const httplib::Request& req, httplib::Response& res, turn_call call, oneshot_request o) {
    if (static_cast<int64_t>(o.prompt.size()) > cfg().max_message_bytes * 64)
      return send_error(res, {400, "the prompt is too long", "invalid_request_error", "prompt", ""});
    caf::actor worker = spawn_oneshot(*sys, ctx, gateway);
    // A full engine here: in a cluster another member runs it (before any
    // byte went out, so the client sees one answer).
    starter s = [this, worker, o = std::move(o)](caf::event_based_actor* self, std::shared_ptr<channel> ch) mutable {
      o.reply_to = caf::actor_cast<caf::actor>(self);
      stateless_request wire = to_wire(o);
      self->request(worker, caf::infinite, oneshot_atom::value, std::move(o))
          .then(
              [self, ch](turn_result& r) {
                finish_ok(ch, r);
                self->quit();
              },
              [this, self, ch, wire](caf::error& e) mutable {
                bool streamed;
                {
                  std::lock_guard<std::mutex> g(ch->mu);
                  streamed = ch->streamed;
                }
                // Only a refusal before any text (a full queue) goes on: a
                // turn that failed after it streamed must not be run twice.
                if (!streamed && brigade_code(e) == static_cast<uint8_t>(brigade_errc::overloaded) &&
                    opt.clustered()) {
                  self->request(gateway, caf::infinite, fwd_atom::value, stateless_atom::value, std::move(wire))
                      .then(
                          [self, ch](turn_result& r) {
                            finish_ok(ch, r);
                            self->quit();
                          },
                          [self, ch](caf::error& e2) {
                            finish_error(self, ch, e2);
                            self->quit();
                          });
                  return;
                }
                finish_error(self, ch, e);
                self->quit();
              });
    };
    run_turn(req, res, std::move(call), std::move(s));
  }

  /// A blocking call on the gateway from this HTTP thread (a scoped actor).
  template <class OnOk, class... Ts>
  void call_gateway(httplib::Response& res, OnOk on_ok, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    self->request(gateway, std::chrono::seconds(30), std::forward<Ts>(xs)...)
        .receive(on_ok, [&](caf::error& e) { send_error(res, api_error_for(brigade_code(e), error_sentence(*sys, e))); });
  }

  void open_session(const httplib::Request& req, httplib::Response& res) {
    std::string system;
    if (auto e = oa::parse_session_open(req.body, system)) return send_error(res, *e);
    if (auto e = refuse_when_draining(true)) return send_error(res, *e);
    call_gateway(
        res,
        [&](std::string& id, std::string& token) { res.set_content(oa::session_opened(id, token), "application/json"); },
        open_atom::value, system);
  }

  void session_history(const httplib::Request& req, httplib::Response& res, const std::string& id) {
    call_gateway(
        res,
        [&](std::vector<turn_record>& turns) {
          std::vector<oa::turn_view> v;
          for (auto& t : turns)
            v.push_back({t.seq, std::move(t.user), std::move(t.assistant), t.prompt_tokens, t.generated_tokens,
                         t.committed_at_ms});
          res.set_content(oa::session_history(id, v), "application/json");
        },
        history_atom::value, id, req.get_header_value("X-Brigade-Token"));
  }

  void session_close(const httplib::Request& req, httplib::Response& res, const std::string& id) {
    call_gateway(
        res, [&](bool) { res.set_content(oa::session_deleted(id), "application/json"); }, close_atom::value, id,
        req.get_header_value("X-Brigade-Token"));
  }

  void routes() {
    using R = const httplib::Request&;
    using W = httplib::Response&;
    http.Post("/v1/chat/completions", [this](R q, W r) { chat(q, r); });
    http.Post("/v1/completions", [this](R q, W r) { completion(q, r); });
    http.Get("/v1/models", [this](R, W r) {
      r.set_content(oa::models_list({opt.model_ids[0]}, created), "application/json");
    });
    http.Post("/v1/sessions", [this](R q, W r) { open_session(q, r); });
    // /v1/models/{id} and /v1/sessions/{id} are routed by hand in the
    // pre-routing handler: std::regex (cpp-httplib's routes) recurses once
    // per byte of a long id, on the HTTP thread's stack.
    http.Get("/health", [this](R, W r) {
      const bool d = opt.draining();
      r.status = d ? 503 : 200;
      r.set_content(d ? R"({"status":"draining"})" : R"({"status":"ok"})", "application/json");
    });
    // Auth and CORS before routing; unknown routes and methods in OpenAI's shape.
    http.set_pre_routing_handler([this](R q, W r) {
      if (past_the_cap) {
        ctx->metrics->add_rejected("overloaded");
        send_error(r, {429, "this node has as many HTTP connections open as it serves at once; retry after about 1s",
                       "rate_limit_error", "", "too_many_connections"});
        r.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!cfg().api_cors_origin.empty()) {
        r.set_header("Access-Control-Allow-Origin", cfg().api_cors_origin);
        r.set_header("Vary", "Origin");
        r.set_header("Access-Control-Expose-Headers", "X-Brigade-Seq, Retry-After");
        if (q.method == "OPTIONS") {
          r.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
          // The headers the browser asks for (the OpenAI SDK adds its own
          // X-Stainless-* ones), else the ones the API reads.
          const std::string asked = q.get_header_value("Access-Control-Request-Headers");
          r.set_header("Access-Control-Allow-Headers",
                       !asked.empty() ? asked
                                      : std::string("Authorization, Content-Type, X-Brigade-Session, X-Brigade-Token, "
                                                    "X-Brigade-Seq, Idempotency-Key"));
          r.set_header("Access-Control-Max-Age", "600");
          r.status = 204;
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      if (q.path.size() > 256) {
        send_error(r, {414, "the path is longer than 256 bytes; see docs/api.md for the routes", "invalid_request_error",
                       "", "uri_too_long"});
        return httplib::Server::HandlerResponse::Handled;
      }
      if (q.path != "/health" && !authorized(q)) {
        ctx->metrics->add_rejected("unauthorized");
        send_error(r, {401,
                       q.has_header("Authorization") ? "the API key is not valid"
                                                     : "this node needs an API key: send Authorization: Bearer KEY",
                       "authentication_error", "", "invalid_api_key"});
        return httplib::Server::HandlerResponse::Handled;
      }
      if (q.method == "POST" && q.has_header("Content-Type")) {
        const std::string ct = q.get_header_value("Content-Type");
        std::string media = ct.substr(0, ct.find(';'));
        media.erase(media.find_last_not_of(" \t") + 1);
        for (auto& ch : media) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (media != "application/json") {
          send_error(r, {415, "the body is sent as '" + ct.substr(0, 64) + "'; send it as Content-Type: application/json",
                         "invalid_request_error", "", "unsupported_media_type"});
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      const std::string route = route_of(q.path);
      if (route == "/v1/models/{id}" || route == "/v1/sessions/{id}") {
        const std::string id = q.path.substr(q.path.rfind('/') + 1);
        if (route == "/v1/models/{id}" && q.method == "GET") {
          if (auto e = check_model(id)) send_error(r, *e);
          else r.set_content(oa::model_object(opt.model_ids[0], created), "application/json");
        } else if (route == "/v1/sessions/{id}" && q.method == "GET") {
          session_history(q, r, id);
        } else if (route == "/v1/sessions/{id}" && q.method == "DELETE") {
          session_close(q, r, id);
        } else {
          send_error(r, {405, "method " + q.method + " is not allowed on " + route, "invalid_request_error", "",
                         "method_not_allowed"});
        }
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([](R q, W r) {
      if (!r.body.empty()) return;  // an answer of ours
      if (r.status == 404) {
        const std::string route = route_of(q.path);
        if (route != "other")
          return send_error(r, {405, "method " + q.method + " is not allowed on " + route, "invalid_request_error",
                                "", "method_not_allowed"});
        return send_error(r, not_found("no route " + q.method + " " + q.path + "; see docs/api.md"));
      }
      if (r.status == 413) {
        const bool form = q.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos;
        return send_error(r, {413,
                              form ? "the body is sent as a form (Content-Type: application/x-www-form-urlencoded, "
                                     "limited to 8 KiB); send it as Content-Type: application/json"
                                   : "the request body is larger than api-max-body",
                              "invalid_request_error", "", "request_too_large"});
      }
      if (r.status == 400) return send_error(r, {400, "malformed HTTP request", "invalid_request_error", "", ""});
      send_error(r, {r.status, "HTTP error " + std::to_string(r.status), "invalid_request_error", "", ""});
    });
    http.set_exception_handler([](R, W r, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(r, {500, "internal error (" + what + ")", "server_error", "", "internal"});
    });
    http.set_logger([this](R q, const httplib::Response& r) { ctx->metrics->add_http_request(route_of(q.path), r.status); });
  }
};

api_server::api_server(std::unique_ptr<impl> p) : p_(std::move(p)) {}
api_server::~api_server() { stop(); }
int api_server::port() const { return p_->port; }
int api_server::in_flight() const { return p_->in_flight.load(); }

void api_server::stop() {
  if (p_->stopped) return;
  p_->stopped = true;
  p_->http.stop();
  if (p_->thread.joinable()) p_->thread.join();
}

result<std::unique_ptr<api_server>> api_server::start(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                                                      caf::actor gateway, api_options opt, int port) {
  auto p = std::make_unique<impl>();
  p->sys = &sys;
  p->ctx = ctx;
  p->gateway = std::move(gateway);
  p->opt = std::move(opt);
  p->created = static_cast<int64_t>(std::time(nullptr));
  const auto& cfg = ctx->cfg;
  p->max_in_flight = cfg.max_batch + cfg.queue_limit + 16;
  const size_t threads = static_cast<size_t>(p->max_in_flight) + 8;
  p->http.new_task_queue = [threads] { return new capped_pool(threads, 64, 2); };
  p->http.set_payload_max_length(static_cast<size_t>(cfg.api_max_body));
  p->http.set_read_timeout(5, 0);  // a body slower than this is a stuck (or hostile) client
  p->http.set_write_timeout(30, 0);
  p->http.set_keep_alive_timeout(2);
  p->http.set_keep_alive_max_count(1000);
  p->routes();
  // cpp-httplib 0.11 listens with a backlog of 5 (compiled in): a burst of
  // clients connecting at once overflows it and some see their connection
  // dropped. Remember the socket (set up as cpp-httplib's default does) and
  // listen again with a backlog that takes a burst of the in-flight limit.
  auto sock = std::make_shared<int>(-1);
  p->http.set_socket_options([sock](int fd) {
    httplib::default_socket_options(fd);
    *sock = fd;
  });
  const int bound = port == 0 ? p->http.bind_to_any_port(cfg.api_host.c_str())
                              : (p->http.bind_to_port(cfg.api_host.c_str(), port) ? port : -1);
  if (bound <= 0)
    return status{errc::io, "cannot serve the HTTP API on " + cfg.api_host + ":" + std::to_string(port) +
                                " (the address is taken or not this machine's); pick another --api-port (or off) "
                                "or stop the other process"};
  p->port = bound;
  if (*sock >= 0) ::listen(*sock, std::max(1024, p->max_in_flight * 2));
  impl* raw = p.get();
  p->thread = std::thread([raw] { raw->http.listen_after_bind(); });
  return std::unique_ptr<api_server>(new api_server(std::move(p)));
}

result<std::vector<std::string>> load_api_keys(const runtime::node_config& cfg) {
  std::vector<std::string> keys;
  if (!cfg.api_key.empty()) keys.push_back(runtime::sha256_hex(cfg.api_key));
  if (!cfg.api_keys_file.empty()) {
    std::ifstream in(cfg.api_keys_file);
    if (!in) return status{errc::io, "--api-keys-file " + cfg.api_keys_file + ": cannot open the file"};
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      const size_t a = line.find_first_not_of(" \t\r");
      if (a == std::string::npos || line[a] == '#') continue;
      const size_t b = line.find_last_not_of(" \t\r");
      keys.push_back(runtime::sha256_hex(line.substr(a, b - a + 1)));
      ++n;
    }
    if (n == 0)
      return status{errc::invalid_argument,
                    "--api-keys-file " + cfg.api_keys_file + ": the file holds no key; write one key a line"};
  }
  return keys;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

}  // namespace brigade::actors
