// The batch loop on a real CPU engine (tiny model): many concurrent jobs give
// the same greedy tokens as one job alone, the queue bound refuses at once,
// cancel/pause/resume, KV reuse across turns, LRU eviction under memory
// pressure, and a restart of the engine after a device failure. Waits on
// futures, never on sleeps.
#include "actors/batch_loop.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <random>

#include "kernels/model/synth.hpp"

namespace brigade::actors {
namespace {

std::shared_ptr<const llama_model> tiny() {
  static std::shared_ptr<const llama_model> m = [] {
    const std::string path = ::testing::TempDir() + "brigade_batch_loop_" + std::to_string(::getpid()) + ".gguf";
    synth_options o;
    o.preset = "tiny";
    o.seed = 3;
    o.type = ggml_type::f32;
    EXPECT_TRUE(synthesize_model(o, path).ok());
    auto r = llama_model::load(path);
    std::remove(path.c_str());
    return std::shared_ptr<const llama_model>(*r);
  }();
  return m;
}

std::unique_ptr<batch_loop> make_loop(batch_config bc = {}, int64_t kv_bytes = 16 << 20, int max_seqs = 64,
                                      int n_ctx = 0) {
  engine_config ec;
  ec.n_threads = 2;
  ec.n_ctx = n_ctx;
  ec.kv_memory_bytes = kv_bytes;
  ec.max_sequences = max_seqs;
  auto e = make_cpu_engine(tiny(), ec);
  EXPECT_TRUE(e.ok());
  return std::make_unique<batch_loop>(std::move(e).value(), bc, nullptr);
}

struct collected {
  std::vector<token_id> tokens;
  gen_event last;
};

/// Submits a job and returns a future for all its events.
std::future<collected> run(batch_loop& loop, uint64_t id, const std::string& key, std::vector<token_id> prompt,
                           int max_new, status* submit_status = nullptr) {
  auto prom = std::make_shared<std::promise<collected>>();
  auto acc = std::make_shared<collected>();
  gen_job j;
  j.turn_id = id;
  j.session_key = key;
  j.tokens = std::move(prompt);
  j.max_new = max_new;
  j.on_event = [prom, acc](const gen_event& e) {
    if (e.kind == gen_event::token_event) {
      acc->tokens.push_back(e.token);
      return;
    }
    acc->last = e;
    prom->set_value(*acc);
  };
  status s = loop.submit(std::move(j));
  if (submit_status) *submit_status = s;
  return prom->get_future();
}

std::vector<token_id> prompt(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  std::vector<token_id> t{1};
  for (int i = 1; i < n; ++i) t.push_back(static_cast<token_id>(262 + rng() % 250));
  return t;
}

TEST(BatchLoop, ConcurrentJobsGiveTheSameTokensAsOneAlone) {
  std::vector<std::vector<token_id>> alone;
  {
    auto loop = make_loop();
    for (uint32_t s = 0; s < 6; ++s)
      alone.push_back(run(*loop, s + 1, "solo" + std::to_string(s), prompt(s, 5 + s * 7), 12).get().tokens);
  }
  batch_config bc;
  bc.max_batch = 4;     // fewer slots than jobs: some join while others decode
  bc.step_tokens = 16;  // prefill is chunked
  auto loop = make_loop(bc);
  std::vector<std::future<collected>> futs;
  for (uint32_t s = 0; s < 6; ++s)
    futs.push_back(run(*loop, 100 + s, "s" + std::to_string(s), prompt(s, 5 + s * 7), 12));
  for (uint32_t s = 0; s < 6; ++s) {
    const collected c = futs[s].get();
    EXPECT_EQ(c.last.kind, gen_event::done);
    EXPECT_EQ(c.tokens, alone[s]) << "job " << s;
    if (c.last.reason == "max_tokens") {
      EXPECT_EQ(c.tokens.size(), 12u);
    }
  }
}

/// A real CPU engine whose step number `fail_at` fails as a GPU does when its
/// context is lost (errc::device); every other call goes to the engine.
class failing_engine final : public engine {
 public:
  failing_engine(std::unique_ptr<engine> inner, int fail_at) : inner_(std::move(inner)), fail_at_(fail_at) {}
  const llama_hparams& hparams() const override { return inner_->hparams(); }
  const tokenizer& vocab() const override { return inner_->vocab(); }
  std::shared_ptr<const llama_model> model() const override { return inner_->model(); }
  int32_t n_ctx() const override { return inner_->n_ctx(); }
  std::string backend_name() const override { return "failing " + inner_->backend_name(); }
  result<seq_id> create_sequence() override { return inner_->create_sequence(); }
  void free_sequence(seq_id s) override { inner_->free_sequence(s); }
  int32_t sequence_length(seq_id s) const override { return inner_->sequence_length(s); }
  status truncate(seq_id s, int32_t n) override { return inner_->truncate(s, n); }
  kv_usage usage() const override { return inner_->usage(); }
  status step(const std::vector<step_item>& batch, std::vector<step_result>& out) override {
    if (++steps_ == fail_at_) return {errc::device, "CUDA step: an illegal memory access was encountered"};
    return inner_->step(batch, out);
  }

 private:
  std::unique_ptr<engine> inner_;
  int fail_at_, steps_ = 0;
};

std::unique_ptr<engine> cpu_engine_for_tests() {
  engine_config ec;
  ec.n_threads = 2;
  ec.kv_memory_bytes = 16 << 20;
  auto e = make_cpu_engine(tiny(), ec);
  EXPECT_TRUE(e.ok());
  return std::move(e).value();
}

TEST(BatchLoop, ADeviceFailureFailsRunningTurnsRetryablyAndRestartsTheEngine) {
  const auto want = run(*make_loop(), 1, "ref", prompt(7, 9), 10).get().tokens;
  int made = 0;
  batch_loop loop(std::make_unique<failing_engine>(cpu_engine_for_tests(), 3), {}, nullptr,
                  [&made]() -> result<std::unique_ptr<engine>> {
                    ++made;
                    return cpu_engine_for_tests();
                  });
  const collected failed = run(loop, 2, "a", prompt(7, 9), 10).get();
  EXPECT_EQ(failed.last.kind, gen_event::failed);
  EXPECT_TRUE(failed.last.retryable);
  EXPECT_NE(failed.last.reason.find("illegal memory access"), std::string::npos) << failed.last.reason;
  EXPECT_NE(failed.last.reason.find("restarting; retry"), std::string::npos) << failed.last.reason;
  // The retry runs on the new engine, from scratch, and gives the same tokens.
  const collected again = run(loop, 3, "a", prompt(7, 9), 10).get();
  EXPECT_EQ(again.last.kind, gen_event::done);
  EXPECT_EQ(again.tokens, want);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(loop.restarts(), 1);
}

TEST(BatchLoop, AnEngineThatCannotRestartFailsEveryTurnWithTheCause) {
  batch_loop loop(std::make_unique<failing_engine>(cpu_engine_for_tests(), 1), {}, nullptr,
                  []() -> result<std::unique_ptr<engine>> {
                    return status{errc::device, "cuda:0: no usable CUDA device (device lost)"};
                  });
  EXPECT_EQ(run(loop, 1, "a", prompt(1, 5), 4).get().last.kind, gen_event::failed);
  const collected later = run(loop, 2, "b", prompt(2, 5), 4).get();
  EXPECT_EQ(later.last.kind, gen_event::failed);
  EXPECT_NE(later.last.reason.find("could not restart (cuda:0: no usable CUDA device (device lost))"),
            std::string::npos)
      << later.last.reason;
  EXPECT_EQ(loop.restarts(), 0);
}

TEST(BatchLoop, RefusesAtOnceWhenTheQueueIsFull) {
  batch_config bc;
  bc.queue_limit = 2;
  bc.max_batch = 1;
  auto loop = make_loop(bc);
  std::vector<std::future<collected>> futs;
  int refused = 0;
  for (uint32_t s = 0; s < 12; ++s) {
    status st;
    auto f = run(*loop, s + 1, "q" + std::to_string(s), prompt(s, 40), 40, &st);
    if (st.ok())
      futs.push_back(std::move(f));
    else {
      ++refused;
      EXPECT_EQ(st.code(), errc::resource);
      EXPECT_NE(st.message().find("waiting for the engine"), std::string::npos);
    }
  }
  EXPECT_GT(refused, 0);
  for (auto& f : futs) EXPECT_EQ(f.get().last.kind, gen_event::done);  // the accepted ones all finish
}

TEST(BatchLoop, CancelEndsAJobAndPauseHoldsIt) {
  auto loop = make_loop();
  auto paused = run(*loop, 1, "p", prompt(1, 8), 200);
  loop->pause(1);
  auto other = run(*loop, 2, "o", prompt(2, 8), 10);
  EXPECT_EQ(other.get().last.kind, gen_event::done);  // runs while 1 is paused
  EXPECT_EQ(paused.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  loop->cancel(1);  // while paused: it cannot have run on to eos or max_tokens
  const collected c = paused.get();
  EXPECT_EQ(c.last.kind, gen_event::done);
  EXPECT_EQ(c.last.reason, "cancelled");
  EXPECT_LT(c.tokens.size(), 200u);
}

TEST(BatchLoop, ASecondTurnReusesTheSessionsResidentCache) {
  auto loop = make_loop();
  const auto first_prompt = prompt(7, 30);
  const collected first = run(*loop, 1, "conv", first_prompt, 8).get();
  EXPECT_EQ(first.last.prompt_tokens, 30);
  auto second_prompt = first_prompt;
  second_prompt.insert(second_prompt.end(), first.tokens.begin(), first.tokens.end());
  for (token_id t : prompt(8, 6)) second_prompt.push_back(t);
  const collected second = run(*loop, 2, "conv", second_prompt, 8).get();
  // Everything but the last generated token (never fed) and the new text was resident.
  EXPECT_LE(second.last.prompt_tokens, 8);
  // A different session with the same tokens prefills everything, and agrees.
  const collected fresh = run(*loop, 3, "other", second_prompt, 8).get();
  EXPECT_EQ(fresh.last.prompt_tokens, static_cast<int32_t>(second_prompt.size()));
  EXPECT_EQ(fresh.tokens, second.tokens);
}

TEST(BatchLoop, EvictsTheLeastRecentlyUsedSessionUnderMemoryPressure) {
  // Room for 5 blocks of 16 tokens: two 30-token sessions take 4.
  const auto& hp = tiny()->hparams();
  const int64_t block = 2ll * hp.n_layer * hp.n_head_kv * hp.head_dim * 16 * 4;
  auto loop = make_loop({}, 5 * block, 8, 64);
  EXPECT_EQ(run(*loop, 1, "a", prompt(1, 28), 2).get().last.kind, gen_event::done);
  EXPECT_EQ(run(*loop, 2, "b", prompt(2, 28), 2).get().last.kind, gen_event::done);
  // c needs room: a (least recently used) is evicted, b stays resident.
  EXPECT_EQ(run(*loop, 3, "c", prompt(3, 28), 2).get().last.kind, gen_event::done);
  const collected b_again = run(*loop, 4, "b", prompt(2, 28), 2).get();
  EXPECT_EQ(b_again.last.kind, gen_event::done);
  EXPECT_LE(b_again.last.prompt_tokens, 1);  // b was still resident
  const collected a_again = run(*loop, 5, "a", prompt(1, 28), 2).get();
  EXPECT_EQ(a_again.last.prompt_tokens, 28);  // a re-prefilled from scratch
}

}  // namespace
}  // namespace brigade::actors
