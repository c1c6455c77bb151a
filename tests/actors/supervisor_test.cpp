// The supervisor and sessions as actors, on CAF's deterministic test
// scheduler: virtual time instead of sleeps. A crashed session restarts from
// the store after the backoff; past max-restarts within restart-window it is
// marked failed and callers are told why; idle sessions passivate and are
// restored on the next call.
#include "actors/supervisor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <caf/all.hpp>

#include "kernels/model/synth.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {
namespace {

struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    register_types(*this);
  }
};

std::shared_ptr<node_context> make_context() {
  static std::shared_ptr<const llama_model> model = [] {
    const std::string path = ::testing::TempDir() + "brigade_supervisor_" + std::to_string(::getpid()) + ".gguf";
    synth_options o;
    o.preset = "tiny";
    o.type = ggml_type::f32;
    EXPECT_TRUE(synthesize_model(o, path).ok());
    auto m = llama_model::load(path);
    std::remove(path.c_str());
    return std::shared_ptr<const llama_model>(*m);
  }();
  auto ctx = std::make_shared<node_context>();
  ctx->cfg.max_restarts = 2;
  ctx->cfg.restart_window = std::chrono::seconds(60);
  ctx->cfg.restart_backoff = std::chrono::milliseconds(100);
  ctx->cfg.idle_timeout = std::chrono::minutes(5);
  ctx->metrics = std::make_shared<runtime::node_metrics>();
  ctx->store = runtime::make_memory_store({std::chrono::microseconds(0)});
  engine_config ec;
  ec.n_threads = 1;
  ec.kv_memory_bytes = 4 << 20;
  ctx->loop =
      std::make_shared<batch_loop>(std::move(make_cpu_engine(model, ec)).value(), batch_config{}, ctx->metrics.get());
  ctx->model_id = "tiny";
  ctx->fault_injection = true;
  return ctx;
}

struct SupervisorActor : ::testing::Test {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<node_context> ctx = make_context();
  caf::actor sup = spawn_supervisor(sys, ctx);

  ~SupervisorActor() override {
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
    ctx->loop->shutdown(false);
  }

  /// Sends a request from a fresh actor, runs the scheduler, returns the
  /// error (none on success) and passes the reply to `ok`.
  template <class Handler, class... Ts>
  caf::error ask(Handler ok, Ts... xs) {
    auto err = std::make_shared<caf::error>();
    sys.spawn([=, this](caf::event_based_actor* self) {
      self->request(sup, caf::infinite, xs...).then(ok, [=](caf::error& e) { *err = e; });
    });
    sched.run();
    return *err;
  }

  double restarts() {
    const std::string text = ctx->metrics->serialize();
    const auto pos = text.find("\nbrigade_session_restarts_total ");
    return pos == std::string::npos ? -1 : std::stod(text.substr(pos + 32));
  }
};

TEST_F(SupervisorActor, RestartsACrashedSessionFromTheStoreAfterTheBackoff) {
  std::string id, token;
  ASSERT_FALSE(ask([&](std::string& i, std::string& t) { id = i, token = t; }, open_atom::value));
  ASSERT_EQ(id.size(), 32u);
  auto history_ok = [&] { return !ask([](std::vector<turn_record>&) {}, history_atom::value, id, token); };
  ASSERT_TRUE(history_ok());
  const caf::error crash = ask([](bool) {}, fault_atom::value, id, token);
  EXPECT_TRUE(crash);  // the caller sees the crash as an error
  EXPECT_EQ(restarts(), 1);
  auto active = [&] { return ctx->metrics->serialize().find("brigade_sessions_active 1") != std::string::npos; };
  EXPECT_FALSE(active());
  // Before the backoff has passed, nothing is respawned...
  sched.advance_time(std::chrono::milliseconds(50));
  sched.run();
  EXPECT_FALSE(active());
  // ...after it, the session is restored from the store and answers with the
  // same token.
  sched.advance_time(std::chrono::milliseconds(60));
  sched.run();
  EXPECT_TRUE(active());
  EXPECT_TRUE(history_ok());
  const caf::error wrong = ask([](std::vector<turn_record>&) {}, history_atom::value, id, std::string(64, '0'));
  EXPECT_EQ(brigade_code(wrong), static_cast<uint8_t>(brigade_errc::unauthorized));
}

TEST_F(SupervisorActor, MarksASessionFailedPastTheRestartIntensity) {
  std::string id, token;
  ASSERT_FALSE(ask([&](std::string& i, std::string& t) { id = i, token = t; }, open_atom::value));
  for (int crash = 1; crash <= 3; ++crash) {
    EXPECT_TRUE(ask([](bool) {}, fault_atom::value, id, token)) << "crash " << crash;
    sched.advance_time(std::chrono::seconds(1));  // past every backoff, well inside the window
    sched.run();
  }
  EXPECT_EQ(restarts(), 2);  // the third crash exceeded max-restarts = 2
  const caf::error e = ask([](std::vector<turn_record>&) {}, history_atom::value, id, token);
  EXPECT_EQ(brigade_code(e), static_cast<uint8_t>(brigade_errc::session_failed));
  EXPECT_NE(error_sentence(sys, e).find("crashed 3 times"), std::string::npos) << error_sentence(sys, e);
}

TEST_F(SupervisorActor, IdleSessionsPassivateAndComeBackOnTheNextCall) {
  std::string id, token;
  ASSERT_FALSE(ask([&](std::string& i, std::string& t) { id = i, token = t; }, open_atom::value));
  EXPECT_NE(ctx->metrics->serialize().find("brigade_sessions_active 1"), std::string::npos);
  sched.advance_time(std::chrono::minutes(6));
  sched.run();
  EXPECT_NE(ctx->metrics->serialize().find("brigade_sessions_active 0"), std::string::npos);
  EXPECT_EQ(restarts(), 0);  // passivation is not a crash
  EXPECT_FALSE(ask([](std::vector<turn_record>&) {}, history_atom::value, id, token));
  EXPECT_NE(ctx->metrics->serialize().find("brigade_sessions_active 1"), std::string::npos);
}

TEST_F(SupervisorActor, UnknownSessionsAreRefusedLikeWrongTokens) {
  const caf::error e =
      ask([](std::vector<turn_record>&) {}, history_atom::value, std::string(32, 'a'), std::string(64, 'b'));
  EXPECT_EQ(brigade_code(e), static_cast<uint8_t>(brigade_errc::unauthorized));
}

}  // namespace
}  // namespace brigade::actors
