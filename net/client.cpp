#include "net/client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>
#include <thread>

namespace brigade::net {

namespace {

struct client_system_config : caf::actor_system_config {
  client_system_config() {
    register_types(*this);
    load<caf::io::middleman>();
    set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
    set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(5)});
    set("scheduler.max-threads", size_t{2});
  }
};

bool retryable(const client_error& e) {
  if (e.transport) return true;
  // turn_in_progress: a re-send raced the first attempt, which may still
  // commit; retrying then replays it.
  return e.code == brigade_errc::overloaded || e.code == brigade_errc::engine_failed ||
         e.code == brigade_errc::session_crashed || e.code == brigade_errc::turn_in_progress ||
         e.code == brigade_errc::session_moved;
}

std::string name(const endpoint& e) { return e.host + ":" + std::to_string(e.port); }

}  // namespace

bool parse_endpoints(const std::string& list, int default_port, std::vector<endpoint>& out, std::string& error) {
  out.clear();
  size_t at = 0;
  while (at <= list.size()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string entry = list.substr(at, comma - at);
    at = comma + 1;
    if (entry.empty()) {
      error = "--host '" + list + "' has an empty entry; give host or host:port, separated by commas";
      return false;
    }
    endpoint e{entry, default_port};
    const size_t colon = entry.rfind(':');
    if (colon != std::string::npos && entry.find(':') == colon) {  // host:port (IPv6 literals have several)
      const std::string p = entry.substr(colon + 1);
      char* end = nullptr;
      const long v = std::strtol(p.c_str(), &end, 10);
      if (p.empty() || *end != '\0' || v < 1 || v > 65535 || colon == 0) {
        error = "--host entry '" + entry + "' is not host:port with a port from 1 to 65535";
        return false;
      }
      e.host = entry.substr(0, colon);
      e.port = static_cast<int>(v);
    }
    out.push_back(std::move(e));
  }
  return true;
}

std::vector<std::string> resolve_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::vector<std::string> out;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* addr = a->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                               : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    if (inet_ntop(a->ai_family, addr, buf, sizeof buf)) out.emplace_back(buf);
  }
  freeaddrinfo(res);
  return out;
}

std::vector<endpoint> expand_endpoints(const std::vector<endpoint>& eps, const resolver& resolve) {
  std::vector<endpoint> out;
  auto add = [&out](endpoint e) {
    for (const auto& o : out)
      if (o.host == e.host && o.port == e.port) return;
    out.push_back(std::move(e));
  };
  for (const endpoint& e : eps) {
    const std::vector<std::string> addrs = resolve(e.host);
    if (addrs.size() <= 1) {
      add(e);  // one address (or none: the connect says why) keeps the name
      continue;
    }
    for (const auto& a : addrs) add({a, e.port});
  }
  return out;
}

struct client::impl {
  client_options opt;
  std::vector<endpoint> eps;
  size_t current = 0;  // the endpoint in use (guarded by mu)
  client_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::mutex mu;
  caf::actor gateway;  // guarded by mu

  client_error to_error(const caf::error& e) {
    client_error out;
    if (const uint8_t c = brigade_code(e)) {
      out.code = static_cast<brigade_errc>(c);
      out.message = error_sentence(*sys, e);
    } else {
      out.transport = true;
      out.message = "lost the connection to " + name(eps[index()]) + " (" + sys->render(e) + ")";
    }
    return out;
  }

  size_t index() {
    std::lock_guard<std::mutex> g(mu);
    return current;
  }

  /// Connects to the endpoints in turn, from the current one (or, with
  /// `move_on`, the next), until one answers.
  bool connect(client_error& err, bool move_on = false) {
    const size_t first = (index() + (move_on ? 1 : 0)) % eps.size();
    std::string tried;
    for (size_t k = 0; k < eps.size(); ++k) {
      const size_t i = (first + k) % eps.size();
      if (connect_to(i, err)) return true;
      if (!err.transport) return false;  // a node answered and refused (e.g. its protocol version)
      tried += (tried.empty() ? "" : "; ") + err.message;
    }
    if (eps.size() > 1) err.message = "no node answered: " + tried;
    return false;
  }

  bool connect_to(size_t i, client_error& err) {
    const endpoint& ep = eps[i];
    caf::scoped_actor self{*sys};
    bool ok = false;
    caf::actor gw;
    self->request(sys->middleman().actor_handle(), opt.connect_timeout, caf::connect_atom::value, ep.host,
                  static_cast<uint16_t>(ep.port))
        .receive(
            [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              gw = caf::actor_cast<caf::actor>(ptr);
              ok = static_cast<bool>(gw);
              if (!ok) err = {brigade_errc::internal, true, "no brigade node is published on " + name(ep)};
            },
            [&](caf::error& e) {
              err = {brigade_errc::internal, true,
                     "cannot connect to " + name(ep) + " (" + sys->render(e) + "); is `brigade serve` running there?"};
            });
    if (!ok) return false;
    // Tests speak another version through this variable to check the refusal.
    const char* v = std::getenv("BRIGADE_TEST_PROTOCOL_VERSION");
    const uint32_t version = v ? static_cast<uint32_t>(std::strtoul(v, nullptr, 10)) : protocol_version;
    self->request(gw, opt.connect_timeout, hello_atom::value, version)
        .receive([&](uint32_t) {},
                 [&](caf::error& e) {
                   ok = false;
                   err = to_error(e);
                 });
    if (!ok) return false;
    std::lock_guard<std::mutex> g(mu);
    gateway = gw;
    current = i;
    return true;
  }

  caf::actor gw() {
    std::lock_guard<std::mutex> g(mu);
    return gateway;
  }

  /// Runs `call` with retries on transient failures.
  bool with_retries(const std::function<bool(client_error&)>& call, client_error& err, int* refused) {
    std::mt19937 rng(std::random_device{}());
    const bool several = eps.size() > 1;
    for (int attempt = 1;; ++attempt) {
      if (call(err)) return true;
      // With several nodes, a draining node's refusal sends the call to another.
      // So does one that cannot reach the store: another node may.
      const bool elsewhere = several && !err.transport &&
                             (err.code == brigade_errc::shutting_down || err.code == brigade_errc::session_moved ||
                              err.code == brigade_errc::store_unavailable);
      if (!(retryable(err) || elsewhere) || attempt >= opt.max_attempts) return false;
      if (err.code == brigade_errc::overloaded && !err.transport && refused) ++*refused;
      // Jittered exponential backoff: 100ms, 200ms, ... capped at 2s, +-50%;
      // none before the first try of another node after a lost connection.
      if (!(err.transport && several && attempt == 1)) {
        const double base = std::min(2000.0, 100.0 * (1 << std::min(attempt - 1, 5)));
        std::uniform_real_distribution<double> jitter(0.5, 1.5);
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(base * jitter(rng))));
      }
      if (err.transport || elsewhere) {
        client_error cerr;
        if (!connect(cerr, /*move_on=*/true)) err = cerr;  // keep trying until the attempts run out
      }
    }
  }
};

client::client(std::unique_ptr<impl> p) : p_(std::move(p)) {}

client::~client() {
  if (p_->sys) {
    {
      std::lock_guard<std::mutex> g(p_->mu);
      p_->gateway = nullptr;
    }
    p_->sys.reset();
  }
}

std::unique_ptr<client> client::connect(const client_options& opt, client_error& err) {
  auto p = std::make_unique<impl>();
  p->opt = opt;
  std::string why;
  if (!parse_endpoints(opt.host, opt.port, p->eps, why)) {
    err = {brigade_errc::bad_request, false, why};
    return nullptr;
  }
  p->eps = expand_endpoints(p->eps);
  p->sys = std::make_unique<caf::actor_system>(p->cfg);
  if (!p->connect(err)) return nullptr;
  return std::unique_ptr<client>(new client(std::move(p)));
}

bool client::open(std::string& id, std::string& token, client_error& err) {
  return p_->with_retries(
      [&](client_error& e) {
        caf::scoped_actor self{*p_->sys};
        bool ok = false;
        self->request(p_->gw(), p_->opt.connect_timeout * 2, open_atom::value)
            .receive(
                [&](std::string& i, std::string& t) {
                  id = std::move(i);
                  token = std::move(t);
                  ok = true;
                },
                [&](caf::error& x) { e = p_->to_error(x); });
        return ok;
      },
      err, nullptr);
}

namespace {

struct turn_outcome {
  bool ok = false;
  turn_result result;
  caf::error error;
  bool silent = false;  // no message for turn_timeout
};

/// One attempt of one turn: sends the request with itself as reply_to,
/// consumes chunks in order, grants credit, and reports the outcome.
caf::behavior turn_actor(caf::event_based_actor* self, caf::actor gateway, chat_request req,
                         std::function<void(uint32_t, const std::string&)> on_text, int credit_batch,
                         std::chrono::milliseconds timeout, std::shared_ptr<std::promise<turn_outcome>> done) {
  auto next = std::make_shared<uint32_t>(0);
  auto consumed = std::make_shared<int>(0);
  auto streamed = std::make_shared<std::string>();
  auto finished = std::make_shared<bool>(false);
  auto finish = [=](turn_outcome o) {
    if (*finished) return;
    *finished = true;
    done->set_value(std::move(o));
    self->quit();
  };
  req.reply_to = caf::actor_cast<caf::actor>(self);
  self->monitor(gateway);
  self->set_down_handler([=](caf::down_msg& d) {
    turn_outcome o;
    o.error = d.reason ? d.reason : caf::make_error(caf::sec::remote_linking_failed);
    finish(std::move(o));
  });
  self->request(gateway, caf::infinite, chat_atom::value, req)
      .then(
          [=](turn_result& r) {
            turn_outcome o;
            if (!r.stats.replayed && *streamed != r.reply) {
              o.error = make_error(brigade_errc::internal, "the streamed text differs from the stored reply");
            } else {
              o.ok = true;
              o.result = std::move(r);
            }
            finish(std::move(o));
          },
          [=](caf::error& e) {
            turn_outcome o;
            o.error = std::move(e);
            finish(std::move(o));
          });
  return {
      [=](token_chunk& c) {
        if (c.index != *next) {
          turn_outcome o;
          o.error = make_error(brigade_errc::internal, "chunk " + std::to_string(c.index) + " arrived when " +
                                                           std::to_string(*next) + " was expected");
          finish(std::move(o));
          return;
        }
        ++*next;
        *streamed += c.text;
        if (on_text) on_text(c.index, c.text);
        if (++*consumed >= credit_batch) {
          self->send(caf::actor_cast<caf::actor>(self->current_sender()), credit_atom::value, c.session_id, c.seq,
                     static_cast<uint32_t>(*consumed));
          *consumed = 0;
        }
      },
      caf::after(timeout) >>
          [=] {
            turn_outcome o;
            o.silent = true;
            o.error = caf::make_error(caf::sec::request_timeout);
            finish(std::move(o));
          },
  };
}

}  // namespace

bool client::chat(const std::string& id, const std::string& token, uint64_t seq, const std::string& text,
                  const sampling_params& sampling, const std::function<void(uint32_t, const std::string&)>& on_text,
                  turn_result& out, client_error& err, int* refused) {
  return p_->with_retries(
      [&](client_error& e) {
        chat_request req;
        req.session_id = id;
        req.token = token;
        req.seq = seq;
        req.text = text;
        req.sampling = sampling;
        auto done = std::make_shared<std::promise<turn_outcome>>();
        auto fut = done->get_future();
        p_->sys->spawn(turn_actor, p_->gw(), req, on_text, p_->opt.credit_batch, p_->opt.turn_timeout, done);
        turn_outcome o = fut.get();
        if (o.ok) {
          out = std::move(o.result);
          return true;
        }
        e = p_->to_error(o.error);
        if (o.silent) {
          e.transport = true;
          e.message = "no reply from the node for " + std::to_string(p_->opt.turn_timeout.count()) + " ms";
        }
        return false;
      },
      err, refused);
}

bool client::history(const std::string& id, const std::string& token, std::vector<turn_record>& out,
                     client_error& err) {
  return p_->with_retries(
      [&](client_error& e) {
        caf::scoped_actor self{*p_->sys};
        bool ok = false;
        self->request(p_->gw(), p_->opt.connect_timeout * 2, history_atom::value, id, token)
            .receive(
                [&](std::vector<turn_record>& v) {
                  out = std::move(v);
                  ok = true;
                },
                [&](caf::error& x) { e = p_->to_error(x); });
        return ok;
      },
      err, nullptr);
}

bool client::close(const std::string& id, const std::string& token, client_error& err) {
  return p_->with_retries(
      [&](client_error& e) {
        caf::scoped_actor self{*p_->sys};
        bool ok = false;
        self->request(p_->gw(), p_->opt.connect_timeout * 2, close_atom::value, id, token)
            .receive([&](bool) { ok = true; }, [&](caf::error& x) { e = p_->to_error(x); });
        return ok;
      },
      err, nullptr);
}

bool client::cluster(cluster_status& out, client_error& err) {
  return p_->with_retries(
      [&](client_error& e) {
        caf::scoped_actor self{*p_->sys};
        bool ok = false;
        self->request(p_->gw(), p_->opt.connect_timeout * 2, cluster_atom::value)
            .receive(
                [&](cluster_status& s) {
                  out = std::move(s);
                  ok = true;
                },
                [&](caf::error& x) { e = p_->to_error(x); });
        return ok;
      },
      err, nullptr);
}

bool client::drain(const std::string& node, const std::string& admin_token, std::string& sentence,
                   client_error& err) {
  caf::scoped_actor self{*p_->sys};
  bool ok = false;
  self->request(p_->gw(), p_->opt.connect_timeout * 2, drainreq_atom::value, node, admin_token)
      .receive(
          [&](std::string& s) {
            sentence = std::move(s);
            ok = true;
          },
          [&](caf::error& e) { err = p_->to_error(e); });
  return ok;
}

bool client::inject_fault(const std::string& id, const std::string& token, client_error& err) {
  caf::scoped_actor self{*p_->sys};
  bool ok = true;
  self->request(p_->gw(), p_->opt.connect_timeout * 2, fault_atom::value, id, token)
      .receive([&](bool) {},
               [&](caf::error& e) {
                 err = p_->to_error(e);
                 // The crash itself comes back as the session's exit reason: success.
                 ok = brigade_code(e) == static_cast<uint8_t>(brigade_errc::internal) ||
                      e == caf::sec::request_receiver_down || e == caf::exit_reason::unhandled_exception;
               });
  return ok;
}

}  // namespace brigade::net
