#include "actors/session.hpp"

#include <openssl/crypto.h>
#include <caf/all.hpp>

#include <deque>
#include <optional>

#include "actors/conversation.hpp"
#include "actors/messages.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

using clock_type = std::chrono::steady_clock;
using runtime::log;
using runtime::log_level;

struct inflight {
  uint64_t seq = 0;
  uint64_t turn_id = 0;
  std::string user;
  caf::response_promise rp;
  caf::actor reply_to;
  std::unique_ptr<stream_decoder> dec;
  std::string reply;    // text so far (after stop-string cuts)
  size_t produced = 0;  // bytes of `reply` turned into chunks
  std::deque<std::string> unsent;
  uint32_t next_index = 0;
  int64_t credit = 0;
  bool paused = false;
  uint64_t stall_gen = 0;
  clock_type::time_point t0;
  std::optional<clock_type::time_point> t_first;
  double batch_sum = 0;
  uint32_t steps = 0;
  uint32_t prompt_tokens = 0;
  uint32_t generated = 0;
  std::string stop_reason;
  conversation::prompt_plan plan;   // the prompt as sent to the engine
  std::vector<token_id> reply_ids;  // generated token ids, in order
  std::vector<std::string> stop;
  size_t holdback = 0;    // bytes kept back so a stop string is never half-sent
  bool stopping = false;  // a stop string matched; waiting for the cancel to land
  bool committing = false;
};

struct cleanup_info {
  std::atomic<uint64_t> turn{0};
};

struct session_state {
  std::shared_ptr<node_context> ctx;
  runtime::session_meta meta;
  std::unique_ptr<conversation> conv;
  std::optional<inflight> turn;
  uint64_t idle_gen = 0;
  bool owner = false;  // holds the lease (meta.epoch is current) until released or lost
  std::shared_ptr<cleanup_info> cleanup;
  caf::typed_response_promise<bool> closing;
  static inline const char* name = "brigade.session";
};

using self_ptr = caf::stateful_actor<session_state>*;

bool authorized(const session_state& st, const std::string& token) {
  const std::string h = runtime::sha256_hex(token);
  return h.size() == st.meta.token_hash.size() && CRYPTO_memcmp(h.data(), st.meta.token_hash.data(), h.size()) == 0;
}

caf::error unauthorized() {
  return make_error(brigade_errc::unauthorized, "unknown session or wrong token; open a new session");
}

void arm_idle(self_ptr self) {
  self->delayed_send(self, self->state.ctx->cfg.idle_timeout, idle_atom::value, ++self->state.idle_gen);
}

/// Gives the ownership lease back so any node may take the session at once
/// (passivation, shutdown); fire and forget: an unreleased lease expires.
void release_lease(self_ptr self) {
  auto& st = self->state;
  if (!st.owner) return;
  st.owner = false;
  st.ctx->store->release(st.meta.id, st.meta.epoch, [](status) {});
}

void arm_renew(self_ptr self) {
  self->delayed_send(self, std::max<runtime::duration>(self->state.ctx->cfg.lease / 3, std::chrono::milliseconds(10)),
                     renew_atom::value);
}

caf::error moved_error(const std::string& why) {
  return make_error(brigade_errc::session_moved, why + "; retry shortly (the client does)");
}

void end_turn(self_ptr self) {
  auto& st = self->state;
  if (!st.turn) return;
  if (st.turn->reply_to) self->demonitor(st.turn->reply_to);
  st.turn.reset();
  st.cleanup->turn = 0;
  st.ctx->turns_in_flight.fetch_sub(1);
  arm_idle(self);
}

void fail_turn(self_ptr self, caf::error err, bool cancel_job) {
  auto& st = self->state;
  if (!st.turn) return;
  if (cancel_job) st.ctx->loop->cancel(st.turn->turn_id);
  st.turn->rp.deliver(std::move(err));
  end_turn(self);
}

/// Sends chunks while the client has credit; pauses generation when the
/// client falls a whole window behind.
void pump(self_ptr self) {
  auto& t = *self->state.turn;
  const auto& cfg = self->state.ctx->cfg;
  while (t.credit > 0 && !t.unsent.empty()) {
    self->send(t.reply_to, token_chunk{self->state.meta.id, t.seq, t.next_index++, std::move(t.unsent.front())});
    t.unsent.pop_front();
    --t.credit;
  }
  if (!t.paused && static_cast<int>(t.unsent.size()) > cfg.stream_window) {
    t.paused = true;
    self->state.ctx->loop->pause(t.turn_id);
    self->delayed_send(self, cfg.stall_timeout, stall_atom::value, t.turn_id, ++t.stall_gen);
  }
}

/// Turns new reply text into a chunk, keeping back what could be the start
/// of a stop string (and never splitting a UTF-8 character).
void produce(self_ptr self, bool final) {
  auto& t = *self->state.turn;
  size_t end = final ? t.reply.size() : (t.reply.size() > t.holdback ? t.reply.size() - t.holdback : 0);
  while (end > t.produced && end < t.reply.size() && (static_cast<unsigned char>(t.reply[end]) & 0xC0) == 0x80) --end;
  if (end > t.produced) {
    t.unsent.push_back(t.reply.substr(t.produced, end - t.produced));
    t.produced = end;
  }
}

void append_text(self_ptr self, const std::string& piece) {
  auto& t = *self->state.turn;
  if (piece.empty() || t.stopping) return;
  const size_t before = t.reply.size();
  t.reply += piece;
  for (const auto& s : t.stop) {
    const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    const size_t pos = t.reply.find(s, from);
    if (pos != std::string::npos && pos >= t.produced) {
      t.reply.resize(pos);
      t.stopping = true;
      t.stop_reason = "stop_string";
      self->state.ctx->loop->cancel(t.turn_id);
      break;
    }
  }
  produce(self, false);
  pump(self);
}

void commit(self_ptr self) {
  auto& st = self->state;
  auto& t = *st.turn;
  produce(self, true);
  // The reply is complete: deliver what is left regardless of credit (at most
  // two windows, by the pause rule), so every chunk precedes turn_done.
  t.credit = static_cast<int64_t>(t.unsent.size());
  pump(self);
  t.committing = true;
  t.paused = false;
  ++t.stall_gen;  // no stall timer may end a turn that is being stored
  runtime::stored_turn rec{t.seq, t.user, t.reply, t.prompt_tokens, t.generated, runtime::now_ms()};
  const uint64_t turn_id = t.turn_id;
  caf::actor me = caf::actor_cast<caf::actor>(self);
  auto metrics = st.ctx->metrics;
  const auto t_store = clock_type::now();
  st.ctx->store->append(st.meta.id, st.meta.epoch, rec, [me, turn_id, metrics, t_store](status s) {
    metrics->observe_store_latency(std::chrono::duration<double>(clock_type::now() - t_store).count());
    caf::anon_send(me, stored_atom::value, turn_id, store_status{std::move(s)});
  });
}

caf::behavior running(self_ptr self);

caf::behavior dead(self_ptr self, caf::error why) {
  // Answers what was queued for a session that could not be restored, then quits.
  self->send(self, drain_atom::value);
  return {
      [=](chat_atom, chat_request&) -> caf::result<turn_result> { return why; },
      [=](history_atom, const std::string&, const std::string&) -> caf::result<std::vector<turn_record>> {
        return why;
      },
      [=](close_atom, const std::string&, const std::string&) -> caf::result<bool> { return why; },
      [=](fault_atom, const std::string&, const std::string&) -> caf::result<bool> { return why; },
      [=](credit_atom, const std::string&, uint64_t, uint32_t) {},
      [=](drain_atom) { self->quit(); },
  };
}

caf::behavior running(self_ptr self) {
  return {
      [=](chat_atom, chat_request& req) -> caf::result<turn_result> {
        auto& st = self->state;
        if (!authorized(st, req.token)) return unauthorized();
        const auto action = st.conv->classify(req.seq);
        if (action == conversation::seq_action::replay) {
          const auto& rec = st.conv->turn(req.seq);
          if (rec.user != req.text)
            return make_error(brigade_errc::bad_request, "seq " + std::to_string(req.seq) +
                                                             " was already committed with a different message; "
                                                             "send seq " +
                                                             std::to_string(st.conv->last_seq() + 1) +
                                                             " for a new turn");
          if (req.reply_to) self->send(req.reply_to, token_chunk{st.meta.id, req.seq, 0, rec.assistant});
          turn_stats stats;
          stats.prompt_tokens = rec.prompt_tokens;
          stats.generated_tokens = rec.generated_tokens;
          stats.replayed = true;
          stats.stop_reason = "replayed";
          return turn_result{st.meta.id, req.seq, rec.assistant, stats};
        }
        if (action == conversation::seq_action::gap)
          return make_error(brigade_errc::seq_gap, "seq " + std::to_string(req.seq) +
                                                       " skips ahead: the last "
                                                       "committed seq is " +
                                                       std::to_string(st.conv->last_seq()) + "; send seq " +
                                                       std::to_string(st.conv->last_seq() + 1));
        if (st.closing.pending())
          return make_error(brigade_errc::unauthorized, "unknown session or wrong token; open a new session");
        if (st.turn)
          return make_error(brigade_errc::turn_in_progress,
                            "seq " + std::to_string(st.turn->seq) + " is still running in this session; wait for it");
        const auto& cfg = st.ctx->cfg;
        const int32_t max_new =
            req.sampling.max_tokens > 0 ? std::min(req.sampling.max_tokens, cfg.max_tokens) : cfg.max_tokens;
        auto plan = st.conv->prompt(req.text, max_new);
        if (!plan) {
          st.ctx->metrics->add_rejected("context_full");
          return make_error(brigade_errc::context_full,
                            plan.error().message() + "; start a new session (context-policy is refuse)");
        }
        const uint64_t turn_id = st.ctx->next_turn_id.fetch_add(1);
        gen_job job;
        job.turn_id = turn_id;
        job.session_key = st.meta.id;
        job.tokens = plan->tokens;
        job.sampling.temperature = req.sampling.temperature;
        job.sampling.top_k = req.sampling.top_k;
        job.sampling.top_p = req.sampling.top_p;
        job.sampling.seed = req.sampling.seed_set ? req.sampling.seed : turn_id;
        job.max_new = max_new;
        caf::actor me = caf::actor_cast<caf::actor>(self);
        job.on_event = [me](const gen_event& e) { caf::anon_send(me, e); };
        const uint32_t prompt_size = static_cast<uint32_t>(job.tokens.size());
        if (auto s = st.ctx->loop->submit(std::move(job)); !s) {
          st.ctx->metrics->add_rejected("overloaded");
          return make_error(brigade_errc::overloaded, "node busy (" + s.message() + "); retry after about 100ms");
        }
        inflight t;
        t.seq = req.seq;
        t.turn_id = turn_id;
        t.user = req.text;
        t.reply_to = req.reply_to;
        t.dec = std::make_unique<stream_decoder>(st.ctx->vocab());
        t.credit = cfg.stream_window;
        t.t0 = clock_type::now();
        t.stop = req.sampling.stop;
        for (const auto& s : t.stop) t.holdback = std::max(t.holdback, s.empty() ? 0 : s.size() - 1);
        t.prompt_tokens = prompt_size;
        t.plan = std::move(*plan);
        t.rp = self->make_response_promise();
        if (t.reply_to) self->monitor(t.reply_to);
        st.turn = std::move(t);
        st.cleanup->turn = turn_id;
        st.ctx->turns_in_flight.fetch_add(1);
        if (runtime::log_enabled(log_level::debug))
          log(log_level::debug, st.meta.id, "turn " + std::to_string(req.seq) + " user: " + req.text);
        return st.turn->rp;
      },
      [=](gen_event& e) {
        auto& st = self->state;
        if (!st.turn || e.turn_id != st.turn->turn_id || st.turn->committing) return;
        auto& t = *st.turn;
        switch (e.kind) {
          case gen_event::token_event: {
            if (!t.t_first) {
              t.t_first = clock_type::now();
              st.ctx->metrics->observe_ttft(std::chrono::duration<double>(*t.t_first - t.t0).count());
            }
            t.batch_sum += e.batch_size;
            ++t.steps;
            ++t.generated;
            t.reply_ids.push_back(e.token);
            append_text(self, t.dec->push(e.token));
            break;
          }
          case gen_event::done:
            if (e.reason == "cancelled" && !t.stopping) {
              // Not asked for by this session (e.g. a stale release): the reply
              // is cut short, so it must not be committed.
              fail_turn(self,
                        make_error(brigade_errc::engine_failed,
                                   "session " + st.meta.id + ": the turn was cancelled by the engine; retry"),
                        false);
              break;
            }
            if (t.stop_reason.empty()) t.stop_reason = e.reason;
            if (e.prompt_tokens > 0) t.prompt_tokens = static_cast<uint32_t>(e.prompt_tokens);
            if (!t.stopping) append_text(self, t.dec->finish());
            commit(self);
            break;
          case gen_event::failed:
            st.ctx->metrics->add_rejected(e.retryable ? "engine_busy" : "engine_failed");
            fail_turn(self,
                      make_error(e.retryable ? brigade_errc::overloaded : brigade_errc::engine_failed,
                                 "session " + st.meta.id + ": " + e.reason),
                      false);
            break;
        }
      },
      [=](stored_atom, uint64_t turn_id, store_status& s) {
        auto& st = self->state;
        if (!st.turn || st.turn->turn_id != turn_id) return;
        auto& t = *st.turn;
        if (s.st.code() == errc::conflict) {  // another owner took the session: this actor is stale
          st.ctx->metrics->add_rejected("session_moved");
          log(log_level::warn, st.meta.id, "turn " + std::to_string(t.seq) + " not saved: " + s.st.message());
          st.owner = false;
          fail_turn(self, moved_error(s.st.message() + "; the turn was not saved"), false);
          self->quit();
          return;
        }
        if (!s.st.ok()) {
          st.ctx->metrics->add_rejected("store_unavailable");
          log(log_level::warn, st.meta.id, "turn " + std::to_string(t.seq) + " not saved: " + s.st.message());
          fail_turn(self,
                    make_error(brigade_errc::store_unavailable, "session " + st.meta.id + ": store unavailable (" +
                                                                    s.st.message() +
                                                                    "); the turn was not saved, retry later"),
                    false);
          // This actor no longer knows what the store holds (the write may
          // have landed with its reply lost; the session may have expired):
          // it ends, and the next request restores the session from the
          // store, whose history then answers a re-sent seq.
          self->quit();
          return;
        }
        st.conv->commit({t.seq, t.user, t.reply, t.prompt_tokens, t.generated, runtime::now_ms()}, t.plan, t.reply_ids);
        const double total = std::chrono::duration<double>(clock_type::now() - t.t0).count();
        turn_stats stats;
        stats.prompt_tokens = t.prompt_tokens;
        stats.generated_tokens = t.generated;
        stats.ttft_seconds = t.t_first ? std::chrono::duration<double>(*t.t_first - t.t0).count() : total;
        stats.total_seconds = total;
        stats.mean_batch_size = t.steps ? t.batch_sum / t.steps : 0;
        stats.stop_reason = t.stop_reason;
        st.ctx->metrics->observe_generation_latency(total);
        st.ctx->metrics->add_tokens_generated(t.generated);
        st.ctx->metrics->add_prompt_tokens(t.prompt_tokens);
        if (t.generated > 1 && t.t_first)
          st.ctx->metrics->observe_time_per_output_token(
              std::chrono::duration<double>(clock_type::now() - *t.t_first).count() / (t.generated - 1));
        if (runtime::log_enabled(log_level::debug))
          log(log_level::debug, st.meta.id, "turn " + std::to_string(t.seq) + " assistant: " + t.reply);
        t.rp.deliver(turn_result{st.meta.id, t.seq, t.reply, stats});
        end_turn(self);
      },
      [=](credit_atom, const std::string&, uint64_t seq, uint32_t n) {
        auto& st = self->state;
        if (!st.turn || st.turn->seq != seq || st.turn->committing) return;
        auto& t = *st.turn;
        t.credit += n;
        pump(self);
        if (t.paused && static_cast<int>(t.unsent.size()) <= st.ctx->cfg.stream_window / 2) {
          t.paused = false;
          ++t.stall_gen;
          st.ctx->loop->resume(t.turn_id);
        }
      },
      [=](stall_atom, uint64_t turn_id, uint64_t gen) {
        auto& st = self->state;
        if (!st.turn || st.turn->turn_id != turn_id || st.turn->stall_gen != gen || !st.turn->paused ||
            st.turn->committing)
          return;
        st.ctx->metrics->add_rejected("stalled");
        log(log_level::info, st.meta.id, "reader stalled; turn " + std::to_string(st.turn->seq) + " cancelled");
        fail_turn(self,
                  make_error(brigade_errc::stalled, "the client stopped reading for " +
                                                        runtime::format_duration(st.ctx->cfg.stall_timeout) +
                                                        "; the turn was cancelled and not saved"),
                  true);
      },
      [=](history_atom, const std::string&, const std::string& token) -> caf::result<std::vector<turn_record>> {
        auto& st = self->state;
        if (!authorized(st, token)) return unauthorized();
        std::vector<turn_record> out;
        for (const auto& t : st.conv->turns())
          out.push_back({t.seq, t.user, t.assistant, t.prompt_tokens, t.generated_tokens, t.committed_at_ms});
        return out;
      },
      [=](close_atom, const std::string&, const std::string& token) -> caf::result<bool> {
        auto& st = self->state;
        if (!authorized(st, token)) return unauthorized();
        if (st.turn && st.turn->committing)
          return make_error(brigade_errc::turn_in_progress, "a turn is being stored; close after it is acknowledged");
        if (st.turn) fail_turn(self, make_error(brigade_errc::bad_request, "the session was closed"), true);
        st.closing = self->make_response_promise<bool>();
        caf::actor me = caf::actor_cast<caf::actor>(self);
        st.ctx->store->remove(st.meta.id, [me](status s) { caf::anon_send(me, close_atom::value, store_status{s}); });
        return st.closing;
      },
      [=](close_atom, store_status& s) {
        auto& st = self->state;
        if (s.st.ok())
          st.closing.deliver(true);
        else
          st.closing.deliver(make_error(brigade_errc::store_unavailable,
                                        "cannot delete the session: " + s.st.message() + "; retry later"));
        self->quit();
      },
      [=](drain_atom) {
        release_lease(self);
        self->quit();
      },
      [=](renew_atom) {
        auto& st = self->state;
        if (!st.owner) return;
        caf::actor me = caf::actor_cast<caf::actor>(self);
        st.ctx->store->renew(st.meta.id, st.meta.epoch,
                             [me](status s) { caf::anon_send(me, renew_atom::value, store_status{std::move(s)}); });
      },
      [=](renew_atom, store_status& s) {
        auto& st = self->state;
        if (!st.owner) return;
        if (s.st.code() == errc::conflict || s.st.code() == errc::not_found) {
          // Lost: another node took the session (or it expired). A turn being
          // stored will be refused by the epoch check; others end now.
          log(log_level::warn, st.meta.id, "ownership lost (" + s.st.message() + "); the session stops here");
          st.owner = false;
          if (!st.turn || !st.turn->committing) {
            if (st.turn) fail_turn(self, moved_error(s.st.message()), true);
            self->quit();
          }
          return;
        }
        if (!s.st.ok()) log(log_level::warn, st.meta.id, "cannot renew the lease: " + s.st.message());
        arm_renew(self);
      },
      [=](fault_atom, const std::string&, const std::string& token) -> caf::result<bool> {
        auto& st = self->state;
        if (!authorized(st, token)) return unauthorized();
        if (!st.ctx->fault_injection) return make_error(brigade_errc::bad_request, "fault injection is off");
        log(log_level::warn, st.meta.id, "injected fault: the session actor crashes now");
        throw std::runtime_error("injected fault");
      },
      [=](idle_atom, uint64_t gen) {
        auto& st = self->state;
        if (st.turn || gen != st.idle_gen) return;
        log(log_level::debug, st.meta.id, "idle: passivated");
        release_lease(self);
        self->quit();
      },
  };
}

caf::behavior session_fn(self_ptr self, std::shared_ptr<node_context> ctx, runtime::session_meta meta, bool restore) {
  auto& st = self->state;
  st.ctx = ctx;
  st.meta = meta;
  st.cleanup = std::make_shared<cleanup_info>();
  st.conv = std::make_unique<conversation>(ctx->vocab(), ctx->format, ctx->loop->n_ctx(),
                                           ctx->cfg.context_policy == "drop-oldest");
  // Whatever ends this actor (passivation, close, crash): free its engine work.
  auto cleanup = st.cleanup;
  self->attach_functor([ctx, loop = ctx->loop, cleanup, id = meta.id] {
    if (const uint64_t t = cleanup->turn.load()) {
      loop->cancel(t);
      ctx->turns_in_flight.fetch_sub(1);
    }
    loop->release(id);
  });
  // A client that disconnects (or whose node link dies) cancels its turn;
  // a turn already being stored completes (it was generated in full).
  self->set_down_handler([=](caf::down_msg& d) {
    auto& st = self->state;
    if (!st.turn || !st.turn->reply_to || d.source != st.turn->reply_to.address()) return;
    if (st.turn->committing) {
      st.turn->reply_to = nullptr;
      return;
    }
    st.ctx->metrics->add_rejected("client_gone");
    log(log_level::info, st.meta.id, "client gone; turn " + std::to_string(st.turn->seq) + " cancelled");
    fail_turn(self, make_error(brigade_errc::stalled, "client disconnected"), true);
  });
  // Shutdown: tell a waiting client, do not leave its promise hanging.
  self->set_exit_handler([=](caf::exit_msg& m) {
    fail_turn(self, make_error(brigade_errc::shutting_down, "the node is shutting down; retry on another node"), true);
    // A turn being stored is still written (its append is queued before this
    // release on the store's one commit connection); a retry replays it.
    release_lease(self);
    self->quit(m.reason);
  });
  // A crash: CAF does not fail promises the actor held, so fail the turn's
  // here (retryable: the supervisor restores the session from the store).
  self->set_exception_handler([](caf::scheduled_actor* sa, std::exception_ptr& eptr) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    auto* self = static_cast<self_ptr>(sa);
    if (self->state.turn)
      self->state.turn->rp.deliver(make_error(
          brigade_errc::session_crashed,
          "session " + self->state.meta.id + " crashed (" + what + "); it restarts from the store, retry the turn"));
    return make_error(brigade_errc::internal, "session crashed: " + what);
  });
  if (!restore) {  // created by the supervisor with epoch 1 and the lease
    st.owner = true;
    arm_idle(self);
    arm_renew(self);
    return running(self);
  }
  // Restoring: take the lease (epoch + 1) and load the history, keeping
  // requests queued until then.
  self->set_default_handler(caf::skip);
  caf::actor me = caf::actor_cast<caf::actor>(self);
  ctx->store->acquire(meta.id, ctx->cfg.node_name, [me](result<runtime::session_snapshot> r) {
    caf::anon_send(me, loaded_atom::value,
                   loaded_snapshot{std::make_shared<result<runtime::session_snapshot>>(std::move(r))});
  });
  return {
      [=](loaded_atom, loaded_snapshot& snap) {
        auto& st = self->state;
        self->set_default_handler(caf::print_and_drop);
        auto& r = *snap.r;
        if (!r.ok() && r.error().code() == errc::conflict) {
          log(log_level::info, st.meta.id, "not restored: " + r.error().message());
          self->become(dead(self, moved_error(r.error().message())));
          return;
        }
        if (!r.ok()) {
          const bool missing = r.error().code() == errc::not_found;
          if (!missing) log(log_level::warn, st.meta.id, "cannot restore: " + r.error().message());
          self->become(dead(self, missing ? unauthorized()
                                          : make_error(brigade_errc::store_unavailable,
                                                       "session " + st.meta.id + ": cannot load it (" +
                                                           r.error().message() + "); retry later")));
          return;
        }
        if (!r->meta.model.empty() && r->meta.model != st.ctx->model_id) {
          st.ctx->store->release(st.meta.id, r->meta.epoch, [](status) {});  // another node may serve it
          self->become(dead(self, make_error(brigade_errc::session_failed,
                                             "session " + st.meta.id + " was created with model " + r->meta.model +
                                                 " but this node serves " + st.ctx->model_id)));
          return;
        }
        st.meta = r->meta;
        st.owner = true;
        st.conv->restore(std::move(r->turns));
        log(log_level::debug, st.meta.id,
            "restored " + std::to_string(st.conv->last_seq()) + " turns, epoch " + std::to_string(st.meta.epoch));
        arm_idle(self);
        arm_renew(self);
        self->become(running(self));
      },
  };
}

}  // namespace

caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<node_context> ctx, runtime::session_meta meta,
                         bool restore) {
  return sys.spawn(session_fn, std::move(ctx), std::move(meta), restore);
}

}  // namespace brigade::actors
