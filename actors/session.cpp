#include "actors/session.hpp"

#include <openssl/crypto.h>
#include <caf/all.hpp>

#include <optional>

#include "actors/conversation.hpp"
#include "actors/messages.hpp"
#include "actors/turn.hpp"
#include "runtime/clock.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

using clock_type = std::chrono::steady_clock;
using runtime::log;
using runtime::log_level;

/// The turn being generated, with who waits for it.
struct inflight {
  caf::response_promise rp;  // the turn_result, after the store acknowledged
  caf::actor reply_to;       // receives the token chunks (null once gone)
  turn t;
  int64_t committed_at_ms = 0;  // the time stamped on the record sent to the store
};

/// Set by the session, read by its attach functor when the actor ends.
struct cleanup_info {
  std::atomic<uint64_t> turn{0};
  std::atomic<bool> engine{false};  // it ran a turn: the engine may hold its KV (else another actor of the id may)
};

struct session_state {
  std::shared_ptr<node_context> ctx;
  runtime::session_meta meta;
  std::unique_ptr<conversation> conv;
  std::optional<inflight> turn;
  uint64_t idle_gen = 0;
  int restore_waits = 0;  // acquires retried while the lease holder is out of reach
  bool placing = false;   // a client's request on a node that is not its place: ask who holds it first
  bool handing_over = false;  // this node drains: hand the session over once its turn ends
  bool owner = false;  // holds the lease (meta.epoch is current) until released or lost
  std::shared_ptr<cleanup_info> cleanup;
  caf::typed_response_promise<bool> closing;
  std::vector<std::pair<caf::typed_response_promise<turn_result>, caf::error>> gap_waiting;  // see check_gap
  caf::actor supervisor;
  static inline const char* name = "brigade.session";
};

using self_ptr = caf::stateful_actor<session_state>*;

caf::actor me(self_ptr self) { return caf::actor_cast<caf::actor>(self); }

// -- lease, idle timer ---------------------------------------------------------

bool authorized(const session_state& st, const std::string& token) {
  const std::string h = runtime::sha256_hex(token);
  return h.size() == st.meta.token_hash.size() && CRYPTO_memcmp(h.data(), st.meta.token_hash.data(), h.size()) == 0;
}

void arm_idle(self_ptr self) {
  self->delayed_send(self, self->state.ctx->cfg.idle_timeout, idle_atom::value, ++self->state.idle_gen);
}

void arm_renew(self_ptr self) {
  self->delayed_send(self, std::max<runtime::duration>(self->state.ctx->cfg.lease / 3, std::chrono::milliseconds(10)),
                     renew_atom::value);
}

/// Gives the ownership lease back so any node may take the session at once
/// (passivation, shutdown); fire and forget: an unreleased lease expires.
void release_lease(self_ptr self) {
  auto& st = self->state;
  if (!st.owner) return;
  st.owner = false;
  st.ctx->store->release(st.meta.id, st.meta.epoch, [](runtime::store_status) {});
}

void renew(self_ptr self) {
  auto& st = self->state;
  if (!st.owner) return;
  st.ctx->store->renew(st.meta.id, st.meta.epoch, [me = me(self)](runtime::store_status s) {
    caf::anon_send(me, renew_atom::value, store_reply{std::move(s)});
  });
}

void end_turn(self_ptr self);
void fail_turn(self_ptr self, caf::error err, bool cancel_job);
void hand_over(self_ptr self);
caf::behavior dead(self_ptr self, caf::error why);

void on_renewed(self_ptr self, const runtime::store_status& s) {
  auto& st = self->state;
  if (!st.owner) return;
  if (s.code() == runtime::store_errc::conflict || s.code() == runtime::store_errc::not_found) {
    // Lost: another node took the session (or it expired). A turn being
    // stored will be refused by the epoch check; others end now.
    log(log_level::warn, st.meta.id, "ownership lost (" + s.message() + "); the session stops here");
    st.owner = false;
    if (!st.turn || !st.turn->t.committing()) {
      if (st.turn) fail_turn(self, session_moved_error(s.message()), true);
      // Requests routed here meanwhile are answered, not bounced.
      self->set_default_handler(caf::print_and_drop);
      self->become(dead(self, session_moved_error("session " + st.meta.id + ": " + s.message() + "; retry")));
    }
    return;
  }
  if (!s.ok()) log(log_level::warn, st.meta.id, "cannot renew the lease: " + s.message());
  arm_renew(self);
}

void on_idle(self_ptr self, uint64_t gen) {
  auto& st = self->state;
  if (st.turn || gen != st.idle_gen) return;
  log(log_level::debug, st.meta.id, "idle: passivated");
  release_lease(self);
  self->quit();
}

// -- the turn ---------------------------------------------------------------------

void end_turn(self_ptr self) {
  auto& st = self->state;
  if (!st.turn) return;
  if (st.turn->reply_to) self->demonitor(st.turn->reply_to);
  st.turn.reset();
  st.cleanup->turn = 0;
  st.ctx->turns_in_flight.fetch_sub(1);
  if (st.handing_over) return hand_over(self);
  arm_idle(self);
}

void fail_turn(self_ptr self, caf::error err, bool cancel_job) {
  auto& st = self->state;
  if (!st.turn) return;
  if (cancel_job) st.ctx->loop->cancel(st.turn->t.turn_id());
  st.turn->rp.deliver(std::move(err));
  end_turn(self);
}

/// A re-sent seq (or idempotency key) that is already committed: the
/// stored reply, no model run.
caf::result<turn_result> replay(self_ptr self, const chat_request& req, const turn_record& rec) {
  auto& st = self->state;
  if (rec.user != req.text)
    return make_error(brigade_errc::bad_request,
                      (req.seq == rec.seq ? "seq " + std::to_string(rec.seq) : "Idempotency-Key '" + rec.key + "'") +
                          " was already committed with a different message; send seq " +
                          std::to_string(st.conv->last_seq() + 1) + " (or a new key) for a new turn");
  if (req.reply_to) self->send(req.reply_to, token_chunk{st.meta.id, rec.seq, 0, rec.assistant});
  turn_stats stats;
  stats.prompt_tokens = rec.prompt_tokens;
  stats.generated_tokens = rec.generated_tokens;
  stats.replayed = true;
  stats.stop_reason = "replayed";
  return turn_result{st.meta.id, rec.seq, rec.assistant, stats};
}

/// Why this session cannot start a turn for `req` now, or none.
caf::error refuse_new_turn(self_ptr self, const chat_request& req) {
  auto& st = self->state;
  if (st.conv->classify(req.seq) == conversation::seq_action::gap)
    return make_error(brigade_errc::seq_gap, "seq " + std::to_string(req.seq) +
                                                 " skips ahead: the last committed seq is " +
                                                 std::to_string(st.conv->last_seq()) + "; send seq " +
                                                 std::to_string(st.conv->last_seq() + 1));
  if (st.closing.pending()) return unknown_session_error();
  if (st.turn)
    return make_error(brigade_errc::turn_in_progress,
                      "seq " + std::to_string(st.turn->t.seq()) +
                          (st.turn->t.key().empty() ? "" : " (Idempotency-Key '" + st.turn->t.key() + "')") +
                          " is still running in this session; wait for it");
  return {};
}

/// The turn's effects on the outside world: chunks to the client, calls on
/// the batch loop, the stall timer.
turn::hooks hooks_for(self_ptr self, uint64_t turn_id) {
  auto loop = self->state.ctx->loop;
  turn::hooks h;
  h.send = [self](uint32_t index, std::string text) {
    auto& st = self->state;
    if (st.turn->reply_to)
      self->send(st.turn->reply_to, token_chunk{st.meta.id, st.turn->t.seq(), index, std::move(text)});
  };
  h.pause_job = [loop, turn_id] { loop->pause(turn_id); };
  h.resume_job = [loop, turn_id] { loop->resume(turn_id); };
  h.cancel_job = [loop, turn_id] { loop->cancel(turn_id); };
  h.arm_stall = [self, turn_id](uint64_t gen) {
    self->delayed_send(self, self->state.ctx->cfg.stall_timeout, stall_atom::value, turn_id, gen);
  };
  return h;
}

/// The engine job for a turn; its events come back to this actor as messages.
gen_job job_for(self_ptr self, const chat_request& req, uint64_t turn_id, const conversation::prompt_plan& plan,
                int32_t max_new) {
  gen_job job;
  job.turn_id = turn_id;
  job.session_key = self->state.meta.id;
  job.tokens = plan.tokens;
  job.sampling = req.sampling;
  job.sampling.stop.clear();  // the turn applies them; the engine copies sampling into every step
  if (!req.sampling.seed_set) job.sampling.seed = turn_id;
  job.max_new = max_new;
  job.on_event = [me = me(self)](const gen_event& e) { caf::anon_send(me, e); };
  return job;
}

/// A seq past the next one: in a cluster this copy may be stale (another
/// node took the session and committed more while this one did not know).
/// A renewal says: refused, this copy stops and the client's retry finds
/// the owner; accepted, the gap is the client's.
caf::result<turn_result> check_gap(self_ptr self, const chat_request& req) {
  auto& st = self->state;
  auto rp = self->make_response_promise<turn_result>();
  st.gap_waiting.emplace_back(rp, refuse_new_turn(self, req));
  st.ctx->store->renew(st.meta.id, st.meta.epoch, [me = me(self)](runtime::store_status s) {
    caf::anon_send(me, gapchk_atom::value, store_reply{std::move(s)});
  });
  return rp;
}

void on_gap_checked(self_ptr self, const runtime::store_status& s) {
  auto& st = self->state;
  auto waiting = std::move(st.gap_waiting);
  st.gap_waiting.clear();
  const bool lost = s.code() == runtime::store_errc::conflict || s.code() == runtime::store_errc::not_found;
  for (auto& [rp, gap] : waiting)
    rp.deliver(lost ? session_moved_error("session " + st.meta.id + ": this node's copy is stale (" + s.message() +
                                          "); retry")
                    : gap);
  if (lost && st.owner) on_renewed(self, s);
}

caf::result<turn_result> start_turn(self_ptr self, chat_request& req) {
  auto& st = self->state;
  if (!authorized(st, req.token)) return unknown_session_error();
  if (!req.idempotency_key.empty()) {
    // A key names its turn: committed, it replays; in flight, wait; new,
    // it runs as the given seq or (seq 0) the next one.
    if (const turn_record* rec = st.conv->find_key(req.idempotency_key)) return replay(self, req, *rec);
    if (req.seq == 0) req.seq = st.conv->last_seq() + 1;  // in flight: turn_in_progress below
  }
  if (st.conv->classify(req.seq) == conversation::seq_action::replay)
    return replay(self, req, st.conv->turn(req.seq));
  if (st.conv->classify(req.seq) == conversation::seq_action::gap && st.ctx->cluster->enabled() && st.owner)
    return check_gap(self, req);
  if (auto err = refuse_new_turn(self, req)) return err;
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
  if (auto s = st.ctx->loop->submit(job_for(self, req, turn_id, *plan, max_new)); !s) {
    st.ctx->metrics->add_rejected("overloaded");
    return make_error(brigade_errc::overloaded, "node busy (" + s.message() + "); retry after about 100ms");
  }
  turn::setup s{req.seq,         turn_id, req.text, req.sampling.stop, cfg.stream_window, std::move(*plan),
                clock_type::now(), req.idempotency_key};
  st.turn.emplace(inflight{self->make_response_promise(), req.reply_to,
                           turn(st.ctx->vocab(), std::move(s), hooks_for(self, turn_id))});
  if (req.reply_to) self->monitor(req.reply_to);
  st.cleanup->turn = turn_id;
  st.cleanup->engine = true;
  st.ctx->turns_in_flight.fetch_add(1);
  if (runtime::log_enabled(log_level::debug))
    log(log_level::debug, st.meta.id, "turn " + std::to_string(req.seq) + " user: " + req.text);
  return st.turn->rp;
}

/// The reply is complete: store it (the acknowledgement waits for the store).
void commit(self_ptr self) {
  auto& st = self->state;
  const uint64_t turn_id = st.turn->t.turn_id();
  auto metrics = st.ctx->metrics;
  const auto t_store = clock_type::now();
  st.turn->committed_at_ms = runtime::now_ms();
  st.ctx->store->append(
      st.meta.id, st.meta.epoch, st.turn->t.record(st.turn->committed_at_ms),
      [me = me(self), turn_id, metrics, t_store](runtime::store_status s) {
        metrics->observe_store_latency(std::chrono::duration<double>(clock_type::now() - t_store).count());
        caf::anon_send(me, stored_atom::value, turn_id, store_reply{std::move(s)});
      });
}

void on_engine_failed(self_ptr self, const gen_event& e) {
  auto& st = self->state;
  st.ctx->metrics->add_rejected(e.retryable ? "engine_busy" : "engine_failed");
  fail_turn(self,
            make_error(e.retryable ? brigade_errc::overloaded : brigade_errc::engine_failed,
                       "session " + st.meta.id + ": " + e.reason),
            false);
}

void on_event(self_ptr self, const gen_event& e) {
  auto& st = self->state;
  if (!st.turn || e.turn_id != st.turn->t.turn_id() || st.turn->t.committing()) return;
  switch (e.kind) {
    case gen_event::token_event:
      if (auto ttft = st.turn->t.on_token(e.token, e.batch_size)) st.ctx->metrics->observe_ttft(*ttft);
      break;
    case gen_event::done:
      if (st.turn->t.on_done(e.reason, e.prompt_tokens))
        commit(self);
      else  // cancelled, not by this session (e.g. a stale release): the reply is cut short
        fail_turn(self,
                  make_error(brigade_errc::engine_failed,
                             "session " + st.meta.id + ": the turn was cancelled by the engine; retry"),
                  false);
      break;
    case gen_event::failed: on_engine_failed(self, e); break;
  }
}

/// The store acknowledged the turn: the conversation has it, the client gets its result.
void acknowledge(self_ptr self) {
  auto& st = self->state;
  auto& t = st.turn->t;
  const auto now = clock_type::now();
  st.conv->commit(t.record(st.turn->committed_at_ms), t.plan(), t.reply_ids());  // what the store holds
  const turn_stats stats = t.stats(now);
  st.ctx->metrics->observe_generation_latency(stats.total_seconds);
  st.ctx->metrics->add_tokens_generated(stats.generated_tokens);
  st.ctx->metrics->add_prompt_tokens(stats.prompt_tokens);
  if (auto tpot = t.time_per_output_token(now)) st.ctx->metrics->observe_time_per_output_token(*tpot);
  if (runtime::log_enabled(log_level::debug))
    log(log_level::debug, st.meta.id, "turn " + std::to_string(t.seq()) + " assistant: " + t.reply());
  st.turn->rp.deliver(turn_result{st.meta.id, t.seq(), t.reply(), stats});
  end_turn(self);
}

void on_stored(self_ptr self, uint64_t turn_id, const runtime::store_status& s) {
  auto& st = self->state;
  if (!st.turn || st.turn->t.turn_id() != turn_id) return;
  if (s.ok()) return acknowledge(self);
  log(log_level::warn, st.meta.id, "turn " + std::to_string(st.turn->t.seq()) + " not saved: " + s.message());
  if (s.code() == runtime::store_errc::conflict) {  // another owner took the session: this actor is stale
    st.ctx->metrics->add_rejected("session_moved");
    st.owner = false;
    fail_turn(self, session_moved_error(s.message() + "; the turn was not saved"), false);
  } else {
    st.ctx->metrics->add_rejected("store_unavailable");
    fail_turn(self,
              make_error(brigade_errc::store_unavailable, "session " + st.meta.id + ": store unavailable (" +
                                                              s.message() + "); the turn was not saved, retry later"),
              false);
  }
  // This actor no longer knows what the store holds (the write may have
  // landed with its reply lost; the session may have expired or moved): it
  // ends, and the next request restores the session from the store, whose
  // history then answers a re-sent seq.
  self->quit();
}

void on_credit(self_ptr self, uint64_t seq, uint32_t n) {
  auto& st = self->state;
  if (st.turn && st.turn->t.seq() == seq) st.turn->t.grant(n);
}

void on_stall(self_ptr self, uint64_t turn_id, uint64_t gen) {
  auto& st = self->state;
  if (!st.turn || st.turn->t.turn_id() != turn_id || !st.turn->t.stalled(gen)) return;
  st.ctx->metrics->add_rejected("stalled");
  log(log_level::info, st.meta.id, "reader stalled; turn " + std::to_string(st.turn->t.seq()) + " cancelled");
  fail_turn(self,
            make_error(brigade_errc::stalled, "the client stopped reading for " +
                                                  runtime::format_duration(st.ctx->cfg.stall_timeout) +
                                                  "; the turn was cancelled and not saved"),
            true);
}

/// A client that disconnects (or whose node link dies) cancels its turn; a
/// turn already being stored completes (it was generated in full).
void on_down(self_ptr self, const caf::down_msg& d) {
  auto& st = self->state;
  if (!st.turn || !st.turn->reply_to || d.source != st.turn->reply_to.address()) return;
  if (st.turn->t.committing()) {
    st.turn->reply_to = nullptr;
    return;
  }
  st.ctx->metrics->add_rejected("client_gone");
  log(log_level::info, st.meta.id, "client gone; turn " + std::to_string(st.turn->t.seq()) + " cancelled");
  fail_turn(self, make_error(brigade_errc::stalled, "client disconnected"), true);
}

// -- history, close, fault injection -------------------------------------------

caf::result<std::vector<turn_record>> history(self_ptr self, const std::string& token) {
  if (!authorized(self->state, token)) return unknown_session_error();
  return self->state.conv->turns();
}

caf::result<bool> close(self_ptr self, const std::string& token) {
  auto& st = self->state;
  if (!authorized(st, token)) return unknown_session_error();
  if (st.turn && st.turn->t.committing())
    return make_error(brigade_errc::turn_in_progress, "a turn is being stored; close after it is acknowledged");
  if (st.turn) fail_turn(self, make_error(brigade_errc::bad_request, "the session was closed"), true);
  st.closing = self->make_response_promise<bool>();
  st.ctx->store->remove(
      st.meta.id, [me = me(self)](runtime::store_status s) { caf::anon_send(me, close_atom::value, store_reply{s}); });
  return st.closing;
}

void on_closed(self_ptr self, const runtime::store_status& s) {
  auto& st = self->state;
  if (s.ok())
    st.closing.deliver(true);
  else
    st.closing.deliver(
        make_error(brigade_errc::store_unavailable, "cannot delete the session: " + s.message() + "; retry later"));
  self->quit();
}

caf::result<bool> fault(self_ptr self, const std::string& token) {
  auto& st = self->state;
  if (!authorized(st, token)) return unknown_session_error();
  if (!st.ctx->fault_injection) return make_error(brigade_errc::bad_request, "fault injection is off");
  log(log_level::warn, st.meta.id, "injected fault: the session actor crashes now");
  throw std::runtime_error("injected fault");
}

// -- behaviours -------------------------------------------------------------------

void on_fenced(self_ptr self);

caf::behavior running(self_ptr self) {
  using str = const std::string&;
  return {
      [=](chat_atom, chat_request& req) { return start_turn(self, req); },
      [=](peer_atom, chat_atom, chat_request& req) { return start_turn(self, req); },
      [=](gen_event& e) { on_event(self, e); },
      [=](stored_atom, uint64_t turn_id, store_reply& s) { on_stored(self, turn_id, s.st); },
      [=](credit_atom, str, uint64_t seq, uint32_t n) { on_credit(self, seq, n); },
      [=](stall_atom, uint64_t turn_id, uint64_t gen) { on_stall(self, turn_id, gen); },
      [=](history_atom, str, str token) { return history(self, token); },
      [=](peer_atom, history_atom, str, str token) { return history(self, token); },
      [=](close_atom, str, str token) { return close(self, token); },
      [=](peer_atom, close_atom, str, str token) { return close(self, token); },
      [=](close_atom, store_reply& s) { on_closed(self, s.st); },
      [=](fence_atom) { on_fenced(self); },
      [=](drain_atom) {
        release_lease(self);
        self->quit();
      },
      [=](handover_atom) {
        self->state.handing_over = true;
        if (!self->state.turn) hand_over(self);
      },
      [=](renew_atom) { renew(self); },
      [=](renew_atom, store_reply& s) { on_renewed(self, s.st); },
      [=](gapchk_atom, store_reply& s) { on_gap_checked(self, s.st); },
      [=](fault_atom, str, str token) { return fault(self, token); },
      [=](idle_atom, uint64_t gen) { on_idle(self, gen); },
  };
}

/// Timers and answers a session that ran may still receive after it stopped
/// serving (handed over): ignored.
caf::message_handler leftovers() {
  return {
      [](renew_atom) {},
      [](renew_atom, store_reply&) {},
      [](idle_atom, uint64_t) {},
      [](stall_atom, uint64_t, uint64_t) {},
      [](stored_atom, uint64_t, store_reply&) {},
      [](gapchk_atom, store_reply&) {},
      [](gen_event&) {},
  };
}

/// Asks the supervisor to route nothing more here. The b_drain it sends
/// back comes after every request it routed here (one sender, one
/// receiver: in order), so quitting on it leaves none unanswered.
void retire(self_ptr self) { self->send(self->state.supervisor, retire_atom::value, self->state.meta.id); }

/// Answers what was queued for a session that could not be restored, then quits.
caf::behavior dead(self_ptr self, caf::error why) {
  using str = const std::string&;
  retire(self);
  return caf::message_handler{
      [=](chat_atom, chat_request&) -> caf::result<turn_result> { return why; },
      [=](peer_atom, chat_atom, chat_request&) -> caf::result<turn_result> { return why; },
      [=](history_atom, str, str) -> caf::result<std::vector<turn_record>> { return why; },
      [=](peer_atom, history_atom, str, str) -> caf::result<std::vector<turn_record>> { return why; },
      [=](close_atom, str, str) -> caf::result<bool> { return why; },
      [=](peer_atom, close_atom, str, str) -> caf::result<bool> { return why; },
      [=](fault_atom, str, str) -> caf::result<bool> { return why; },
      [=](credit_atom, str, uint64_t, uint32_t) {},
      [=](handover_atom) {},
      [=](drain_atom) { self->quit(); },
  }.or_else(leftovers());
}

/// The session is owned by another live node: what was queued here goes to
/// it through the cluster actor (requests that a peer forwarded here are not
/// forwarded again), then this actor quits; the supervisor sends later
/// requests straight to the owner.
caf::behavior forwarding(self_ptr self, std::string node, caf::error moved) {
  using str = const std::string&;
  auto sup = self->state.supervisor;
  self->send(sup, owner_atom::value, self->state.meta.id, node);
  retire(self);  // after the owner: the supervisor forwards later requests itself
  return caf::message_handler{
      [=](chat_atom a, chat_request& r) { return self->delegate(sup, fwd_atom::value, node, a, std::move(r)); },
      [=](history_atom a, str id, str token) { return self->delegate(sup, fwd_atom::value, node, a, id, token); },
      [=](close_atom a, str id, str token) { return self->delegate(sup, fwd_atom::value, node, a, id, token); },
      [=](peer_atom, chat_atom, chat_request&) -> caf::result<turn_result> { return moved; },
      [=](peer_atom, history_atom, str, str) -> caf::result<std::vector<turn_record>> { return moved; },
      [=](peer_atom, close_atom, str, str) -> caf::result<bool> { return moved; },
      [=](fault_atom, str, str) -> caf::result<bool> { return moved; },
      [=](credit_atom, str, uint64_t, uint32_t) {},
      [=](fence_atom) {},  // it quits anyway once its queue is handed over
      [=](handover_atom) {},
      [=](drain_atom) { self->quit(); },
  }.or_else(leftovers());
}

/// Where requests for this session go once this node no longer serves it:
/// to its place among the other active nodes, or refused when there is none.
caf::behavior hand_on(self_ptr self, const std::string& why) {
  auto& st = self->state;
  self->set_default_handler(caf::print_and_drop);
  const std::string target = st.ctx->cluster->place(st.meta.id, st.ctx->cfg.node_name);
  if (target.empty()) return dead(self, shutting_down_error());
  return forwarding(self, target, session_moved_error("session " + st.meta.id + " " + why + "; retry"));
}

/// This node drains: give the lease back (waiting for the store, so that
/// the next owner takes it at once), then pass queued requests on.
void hand_over(self_ptr self) {
  auto& st = self->state;
  if (!st.owner) return self->quit();
  st.owner = false;
  st.ctx->metrics->add_session_handoff("drain");
  st.ctx->event("handoff", st.meta.id, "handed over: this node drains");
  log(log_level::debug, st.meta.id, "handed over: this node drains");
  self->set_default_handler(caf::skip);
  st.ctx->store->release(st.meta.id, st.meta.epoch, [me = me(self)](runtime::store_status s) {
    caf::anon_send(me, released_atom::value, store_reply{std::move(s)});
  });
  self->become(caf::behavior{
      [=](released_atom, store_reply&) {
        self->become(hand_on(self, "was handed over by draining node " + self->state.ctx->cfg.node_name));
      },
      [=](fence_atom) {  // answer the held requests rather than bounce them
        self->become(dead(self, session_moved_error("session " + self->state.meta.id +
                                                    ": this node was declared dead by the cluster")));
      },
  });
}

/// Why a loaded session cannot run here, or none.
caf::error restore_error(self_ptr self, const runtime::store_result<runtime::session_snapshot>& r) {
  auto& st = self->state;
  if (!r.ok() && r.error().code() == runtime::store_errc::conflict) {
    log(log_level::info, st.meta.id, "not restored: " + r.error().message());
    return session_moved_error(r.error().message());
  }
  if (!r.ok() && r.error().code() == runtime::store_errc::not_found) return unknown_session_error();
  if (!r.ok()) {
    log(log_level::warn, st.meta.id, "cannot restore: " + r.error().message());
    return make_error(brigade_errc::store_unavailable,
                      "session " + st.meta.id + ": cannot load it (" + r.error().message() + "); retry later");
  }
  if (!r->meta.model.empty() && r->meta.model != st.ctx->model_id) {
    st.ctx->store->release(st.meta.id, r->meta.epoch, [](runtime::store_status) {});  // another node may serve it
    return make_error(brigade_errc::session_failed, "session " + st.meta.id + " was created with model " +
                                                        r->meta.model + " but this node serves " + st.ctx->model_id);
  }
  return {};
}

void on_loaded(self_ptr self, runtime::store_result<runtime::session_snapshot>& r,
               const runtime::lease_holder& holder) {
  auto& st = self->state;
  self->set_default_handler(caf::print_and_drop);
  if (auto err = restore_error(self, r)) {
    if (st.ctx->cluster->enabled() && !holder.node.empty() && holder.node != st.ctx->cfg.node_name) {
      // A holder this node cannot reach is likely being declared dead right
      // now: ask again shortly (requests stay queued) rather than send the
      // client away, for up to a second.
      // A draining holder gives the lease back in a moment: wait likewise.
      if ((!st.ctx->cluster->reachable(holder.node) || st.ctx->cluster->leaving(holder.node)) &&
          st.restore_waits < 20) {
        ++st.restore_waits;
        self->set_default_handler(caf::skip);
        self->delayed_send(self, std::chrono::milliseconds(50), restart_atom::value);
        return;
      }
      return self->become(forwarding(self, holder.node, std::move(err)));
    }
    return self->become(dead(self, std::move(err)));
  }
  if (r->failover) {
    st.ctx->metrics->add_session_handoff("failover");
    st.ctx->event("failover", r->meta.id, "taken over from a node declared dead");
    log(log_level::info, st.meta.id, "taken over from a node declared dead");
  }
  st.meta = r->meta;
  st.owner = true;
  st.conv->set_system(st.meta.system);
  st.conv->restore(std::move(r->turns));
  log(log_level::debug, st.meta.id,
      "restored " + std::to_string(st.conv->last_seq()) + " turns, epoch " + std::to_string(st.meta.epoch));
  arm_idle(self);
  arm_renew(self);
  self->become(running(self));
}

/// Restoring: take the lease (epoch + 1) and load the history, keeping
/// requests queued until then.
void acquire(self_ptr self) {
  auto& st = self->state;
  st.ctx->store->acquire(
      st.meta.id, st.ctx->cluster->claimant(st.ctx->cfg.node_name),
      [me = me(self)](runtime::store_result<runtime::session_snapshot> r, runtime::lease_holder holder) {
        caf::anon_send(me, loaded_atom::value,
                       loaded_snapshot{std::make_shared<runtime::store_result<runtime::session_snapshot>>(std::move(r)),
                                       std::move(holder)});
      });
}

/// A client's request for a session without a live actor here, on a node
/// that is not where placement puts it: a live holder elsewhere keeps it;
/// with none, it goes to its place (which takes the lease); only when this
/// node is its place does it take the lease itself.
void place(self_ptr self) {
  auto& st = self->state;
  const std::string target = st.ctx->cluster->place(st.meta.id, st.ctx->cfg.node_name);
  if (target.empty()) {
    self->set_default_handler(caf::print_and_drop);
    return self->become(dead(self, st.ctx->cluster->draining() ? shutting_down_error() : no_place_error(*st.ctx)));
  }
  if (target == st.ctx->cfg.node_name) {
    st.placing = false;
    return acquire(self);
  }
  st.ctx->store->locate(st.meta.id, st.ctx->cluster->claimant(st.ctx->cfg.node_name).dead,
                        [me = me(self), target](runtime::store_result<runtime::lease_holder> r) {
                          caf::anon_send(me, located_atom::value, target,
                                         located_reply{std::make_shared<runtime::store_result<runtime::lease_holder>>(
                                             std::move(r))});
                        });
}

void on_located(self_ptr self, const std::string& target, const runtime::store_result<runtime::lease_holder>& r) {
  auto& st = self->state;
  if (!r.ok()) {
    self->set_default_handler(caf::print_and_drop);
    if (r.error().code() == runtime::store_errc::not_found) return self->become(dead(self, unknown_session_error()));
    log(log_level::warn, st.meta.id, "cannot look up its owner: " + r.error().message());
    return self->become(dead(self, make_error(brigade_errc::store_unavailable,
                                              "session " + st.meta.id + ": store unavailable, cannot look up its owner (" +
                                                  r.error().message() + "); retry later")));
  }
  const std::string& holder = r->node;
  if (holder == st.ctx->cfg.node_name) {  // this node's own lease (an earlier process, a crashed actor)
    st.placing = false;
    return acquire(self);
  }
  if (!holder.empty() && (!st.ctx->cluster->reachable(holder) || st.ctx->cluster->leaving(holder)) &&
      st.restore_waits < 20) {
    ++st.restore_waits;  // being declared dead, or handing it over: ask again shortly
    self->delayed_send(self, std::chrono::milliseconds(50), restart_atom::value);
    return;
  }
  self->set_default_handler(caf::print_and_drop);
  const std::string to = holder.empty() ? target : holder;
  self->become(forwarding(self, to, session_moved_error("session " + st.meta.id + " is served by node " + to)));
}

caf::behavior restoring(self_ptr self) {
  self->set_default_handler(caf::skip);
  if (self->state.placing)
    self->send(self, restart_atom::value);  // placing may end in become(): not while this behaviour is being made
  else
    acquire(self);
  return {
      [=](loaded_atom, loaded_snapshot& snap) { on_loaded(self, *snap.r, snap.holder); },
      [=](located_atom, const std::string& target, located_reply& r) { on_located(self, target, *r.r); },
      [=](restart_atom) {
        if (self->state.placing)
          place(self);
        else
          acquire(self);
      },
  };
}

/// A crash: CAF does not fail promises the actor held, so fail the turn's
/// here (retryable: the supervisor restores the session from the store).
caf::error on_exception(caf::scheduled_actor* sa, std::exception_ptr& eptr) {
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
}

/// This node was declared dead: the session stops without touching the
/// store (another node may own it already); a waiting client retries
/// elsewhere, and a turn whose append landed replays there.
void on_fenced(self_ptr self) {
  auto& st = self->state;
  st.owner = false;
  fail_turn(self,
            session_moved_error("session " + st.meta.id + ": this node was declared dead by the cluster and stopped "
                                "serving it"),
            true);
  self->quit();
}

/// Shutdown: tell a waiting client, do not leave its promise hanging.
void on_exit(self_ptr self, const caf::exit_msg& m) {
  fail_turn(self, shutting_down_error(), true);
  // A turn being stored is still written (its append is queued before this
  // release on the store's one commit connection); a retry replays it.
  release_lease(self);
  self->quit(m.reason);
}

caf::behavior session_fn(self_ptr self, std::shared_ptr<node_context> ctx, runtime::session_meta meta, bool restore,
                         bool place, caf::actor supervisor) {
  auto& st = self->state;
  st.placing = restore && place && ctx->cluster->enabled();
  st.ctx = ctx;
  st.supervisor = std::move(supervisor);
  st.meta = std::move(meta);
  st.cleanup = std::make_shared<cleanup_info>();
  st.conv = std::make_unique<conversation>(ctx->vocab(), ctx->format, ctx->loop->n_ctx(),
                                           ctx->cfg.context_policy == "drop-oldest");
  // Whatever ends this actor (passivation, close, crash): free its engine work.
  self->attach_functor([ctx, cleanup = st.cleanup, id = st.meta.id] {
    if (const uint64_t t = cleanup->turn.load()) {
      ctx->loop->cancel(t);
      ctx->turns_in_flight.fetch_sub(1);
    }
    if (cleanup->engine.load()) ctx->loop->release(id);
  });
  self->set_down_handler([=](caf::down_msg& d) { on_down(self, d); });
  self->set_exit_handler([=](caf::exit_msg& m) { on_exit(self, m); });
  self->set_exception_handler(on_exception);
  if (restore) return restoring(self);
  st.owner = true;  // created by the supervisor with epoch 1 and the lease
  st.conv->set_system(st.meta.system);
  arm_idle(self);
  arm_renew(self);
  return running(self);
}

}  // namespace

caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<node_context> ctx, runtime::session_meta meta,
                         bool restore, bool place, caf::actor supervisor) {
  return sys.spawn(session_fn, std::move(ctx), std::move(meta), restore, place, std::move(supervisor));
}

}  // namespace brigade::actors
