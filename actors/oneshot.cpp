#include "actors/oneshot.hpp"

#include <caf/all.hpp>

#include <optional>

#include "actors/conversation.hpp"
#include "actors/messages.hpp"
#include "actors/turn.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

using clock_type = std::chrono::steady_clock;

struct cleanup_info {
  std::atomic<uint64_t> turn{0};  // the job to cancel if the actor ends with it running
  std::string key;                // its KV in the engine, freed at the end
};

struct oneshot_state {
  std::shared_ptr<node_context> ctx;
  std::shared_ptr<cleanup_info> cleanup;
  caf::response_promise rp;
  caf::actor reply_to;
  std::optional<turn> t;
  static inline const char* name = "brigade.oneshot";
};

using self_ptr = caf::stateful_actor<oneshot_state>*;

void finish(self_ptr self, caf::error err, bool cancel) {
  auto& st = self->state;
  if (const uint64_t id = st.cleanup->turn.exchange(0)) {
    if (cancel) st.ctx->loop->cancel(id);
    st.ctx->turns_in_flight.fetch_sub(1);
  }
  if (st.rp.pending()) st.rp.deliver(std::move(err));
  self->quit();
}

caf::result<turn_result> start(self_ptr self, oneshot_request& req) {
  auto& st = self->state;
  const auto& cfg = st.ctx->cfg;
  const int32_t max_new =
      req.sampling.max_tokens > 0 ? std::min(req.sampling.max_tokens, cfg.max_tokens) : cfg.max_tokens;
  const int32_t n_ctx = st.ctx->loop->n_ctx();
  auto plan = req.raw ? prompt_for_text(st.ctx->vocab(), n_ctx, req.prompt, max_new)
                      : prompt_for_messages(st.ctx->vocab(), st.ctx->format, n_ctx, req.messages, max_new);
  if (!plan || plan->tokens.empty()) {
    self->quit();
    if (!plan) {
      st.ctx->metrics->add_rejected("context_full");
      return make_error(brigade_errc::context_full, plan.error().message() + "; shorten the conversation or max_tokens");
    }
    return make_error(brigade_errc::bad_request, "the prompt is empty; send some text");
  }
  const uint64_t turn_id = st.ctx->next_turn_id.fetch_add(1);
  st.cleanup->key = "oneshot:" + std::to_string(turn_id);
  gen_job job;
  job.turn_id = turn_id;
  job.session_key = st.cleanup->key;
  job.tokens = plan->tokens;
  job.sampling = req.sampling;
  job.sampling.stop.clear();  // the turn applies them
  if (!req.sampling.seed_set) job.sampling.seed = turn_id;
  job.max_new = max_new;
  job.on_event = [me = caf::actor_cast<caf::actor>(self)](const gen_event& e) { caf::anon_send(me, e); };
  if (auto s = st.ctx->loop->submit(std::move(job)); !s) {
    st.ctx->metrics->add_rejected("overloaded");
    self->quit();
    return make_error(brigade_errc::overloaded, "node busy (" + s.message() + "); retry after about 100ms");
  }
  st.cleanup->turn = turn_id;
  st.ctx->turns_in_flight.fetch_add(1);
  auto loop = st.ctx->loop;
  turn::hooks h;
  h.send = [self](uint32_t index, std::string text) {
    if (self->state.reply_to) self->send(self->state.reply_to, token_chunk{"", 0, index, std::move(text)});
  };
  h.pause_job = [loop, turn_id] { loop->pause(turn_id); };
  h.resume_job = [loop, turn_id] { loop->resume(turn_id); };
  h.cancel_job = [loop, turn_id] { loop->cancel(turn_id); };
  h.arm_stall = [self](uint64_t gen) {
    self->delayed_send(self, self->state.ctx->cfg.stall_timeout, stall_atom::value, uint64_t{0}, gen);
  };
  turn::setup s{0, turn_id, "", req.sampling.stop, cfg.stream_window, std::move(*plan), clock_type::now(), ""};
  st.reply_to = req.reply_to;
  if (st.reply_to) self->monitor(st.reply_to);
  st.t.emplace(st.ctx->vocab(), std::move(s), std::move(h));
  st.rp = self->make_response_promise();
  return st.rp;
}

void on_event(self_ptr self, const gen_event& e) {
  auto& st = self->state;
  if (!st.t || e.turn_id != st.t->turn_id() || st.t->committing()) return;
  switch (e.kind) {
    case gen_event::token_event:
      if (auto ttft = st.t->on_token(e.token, e.batch_size)) st.ctx->metrics->observe_ttft(*ttft);
      break;
    case gen_event::done: {
      if (!st.t->on_done(e.reason, e.prompt_tokens))
        return finish(self, make_error(brigade_errc::engine_failed, "the turn was cancelled by the engine; retry"),
                      false);
      const auto now = clock_type::now();
      const turn_stats stats = st.t->stats(now);
      st.ctx->metrics->observe_generation_latency(stats.total_seconds);
      st.ctx->metrics->add_tokens_generated(stats.generated_tokens);
      st.ctx->metrics->add_prompt_tokens(stats.prompt_tokens);
      if (auto tpot = st.t->time_per_output_token(now)) st.ctx->metrics->observe_time_per_output_token(*tpot);
      st.rp.deliver(turn_result{"", 0, st.t->reply(), stats});
      finish(self, {}, false);
      break;
    }
    case gen_event::failed:
      st.ctx->metrics->add_rejected(e.retryable ? "engine_busy" : "engine_failed");
      finish(self, make_error(e.retryable ? brigade_errc::overloaded : brigade_errc::engine_failed, e.reason), false);
      break;
  }
}

caf::behavior oneshot_fn(self_ptr self, std::shared_ptr<node_context> ctx, caf::actor gateway) {
  self->state.ctx = ctx;
  self->state.cleanup = std::make_shared<cleanup_info>();
  self->attach_functor([ctx, c = self->state.cleanup] {
    if (const uint64_t t = c->turn.exchange(0)) {
      ctx->loop->cancel(t);
      ctx->turns_in_flight.fetch_sub(1);
    }
    if (!c->key.empty()) ctx->loop->release(c->key);
  });
  if (gateway) self->monitor(gateway);
  self->set_down_handler([=](caf::down_msg& d) {
    auto& st = self->state;
    if (gateway && d.source == gateway.address()) return finish(self, shutting_down_error(), true);
    if (!st.reply_to || d.source != st.reply_to.address()) return;
    st.ctx->metrics->add_rejected("client_gone");
    finish(self, make_error(brigade_errc::stalled, "client disconnected"), true);
  });
  self->set_exit_handler([=](caf::exit_msg& m) {
    finish(self, shutting_down_error(), true);
    self->quit(m.reason);
  });
  return {
      [=](oneshot_atom, oneshot_request& req) -> caf::result<turn_result> { return start(self, req); },
      [=](gen_event& e) { on_event(self, e); },
      [=](credit_atom, const std::string&, uint64_t, uint32_t n) {
        if (self->state.t) self->state.t->grant(n);
      },
      [=](stall_atom, uint64_t, uint64_t gen) {
        auto& st = self->state;
        if (!st.t || !st.t->stalled(gen)) return;
        st.ctx->metrics->add_rejected("stalled");
        finish(self,
               make_error(brigade_errc::stalled, "the client stopped reading; the request was cancelled"), true);
      },
  };
}

}  // namespace

oneshot_request from_wire(stateless_request r) {
  oneshot_request o;
  for (size_t i = 0; i < r.roles.size() && i < r.contents.size(); ++i)
    o.messages.push_back({std::move(r.roles[i]), std::move(r.contents[i])});
  o.raw = r.raw;
  o.prompt = std::move(r.prompt);
  o.sampling = std::move(r.sampling);
  o.reply_to = std::move(r.reply_to);
  return o;
}

stateless_request to_wire(const oneshot_request& o) {
  stateless_request r;
  for (const auto& m : o.messages) {
    r.roles.push_back(m.role);
    r.contents.push_back(m.content);
  }
  r.raw = o.raw;
  r.prompt = o.prompt;
  r.sampling = o.sampling;
  r.reply_to = o.reply_to;
  return r;
}

caf::actor spawn_oneshot(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor gateway) {
  return sys.spawn(oneshot_fn, std::move(ctx), std::move(gateway));
}

}  // namespace brigade::actors
