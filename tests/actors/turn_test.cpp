// The in-flight turn without actors: streaming, stop strings (split across
// tokens, at the start and the end of a reply, overlapping candidates, next
// to multi-byte characters), credit and the pause rule, stalls, cancel, and
// the statistics. Tokens are the byte tokens (<0xNN>) of a real SentencePiece
// vocabulary, so any text can be split at any byte.
#include "actors/turn.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "kernels/model/unicode.hpp"
#include "tests/actors/test_vocab.hpp"

namespace brigade::actors {
namespace {

const tokenizer& vocab() { return test::spm_vocab(); }

token_id byte_token(unsigned char b) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", b);
  const token_id id = vocab().find(name);
  EXPECT_GE(id, 0) << name;
  return id;
}

/// Records what the turn did to the outside world.
struct recorder {
  std::vector<std::string> chunks;
  int pauses = 0, resumes = 0, cancels = 0;
  std::vector<uint64_t> stalls;
  std::string text() const {
    std::string s;
    for (const auto& c : chunks) s += c;
    return s;
  }
};

struct harness {
  recorder rec;
  std::unique_ptr<turn> t;
  explicit harness(std::vector<std::string> stop = {}, int window = 16) {
    turn::setup s;
    s.seq = 3;
    s.turn_id = 42;
    s.user = "hello";
    s.stop = std::move(stop);
    s.stream_window = window;
    s.plan.tokens = {1, 2, 3, 4, 5};
    turn::hooks h;
    h.send = [this](uint32_t index, std::string text) {
      EXPECT_EQ(index, rec.chunks.size()) << "chunks in index order";
      rec.chunks.push_back(std::move(text));
    };
    h.pause_job = [this] { ++rec.pauses; };
    h.resume_job = [this] { ++rec.resumes; };
    h.cancel_job = [this] { ++rec.cancels; };
    h.arm_stall = [this](uint64_t gen) { rec.stalls.push_back(gen); };
    t = std::make_unique<turn>(vocab(), std::move(s), std::move(h));
  }
  /// Feeds `text` one byte token at a time (until a stop string cancels).
  void feed(const std::string& text) {
    for (unsigned char c : text) t->on_token(byte_token(c), 2);
  }
  bool done(const std::string& reason = "eos") { return t->on_done(rec.cancels > 0 ? "cancelled" : reason, 0); }
};

TEST(Turn, StreamsTheReplyAndCommitsItWhole) {
  harness h;
  h.feed("Soup of the day");
  EXPECT_FALSE(h.t->committing());
  ASSERT_TRUE(h.done());
  EXPECT_TRUE(h.t->committing());
  EXPECT_EQ(h.rec.text(), "Soup of the day");
  EXPECT_EQ(h.t->reply(), "Soup of the day");
  const turn_record r = h.t->record(1234);
  EXPECT_EQ(r.seq, 3u);
  EXPECT_EQ(r.user, "hello");
  EXPECT_EQ(r.assistant, "Soup of the day");
  EXPECT_EQ(r.generated_tokens, 15u);
  EXPECT_EQ(r.prompt_tokens, 5u);
  EXPECT_EQ(r.committed_at_ms, 1234);
  EXPECT_EQ(h.t->stats().stop_reason, "eos");
}

TEST(Turn, StopStringSplitAcrossTokensIsNeverSent) {
  harness h({"STOP"});
  h.feed("one two STOP three");
  EXPECT_EQ(h.rec.cancels, 1) << "the engine is asked to cancel once";
  for (const auto& c : h.rec.chunks) EXPECT_EQ(c.find('S'), std::string::npos) << "no part of the stop string sent";
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.rec.text(), "one two ");
  EXPECT_EQ(h.t->reply(), "one two ");
  EXPECT_EQ(h.t->stats().stop_reason, "stop_string");
}

TEST(Turn, HoldsBackOnlyWhatCouldStartAStopString) {
  harness h({"END"});
  h.feed("abcdE");
  EXPECT_EQ(h.rec.text(), "abc") << "the last (3 - 1) bytes wait";
  h.feed("x");
  EXPECT_EQ(h.rec.text(), "abcd");
  h.feed("N");  // "ExN" is not a stop string
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.rec.text(), "abcdExN");
  EXPECT_EQ(h.rec.cancels, 0);
}

TEST(Turn, StopStringAtTheVeryStartGivesAnEmptyReply) {
  harness h({"###"});
  h.feed("###and more");
  EXPECT_EQ(h.rec.cancels, 1);
  ASSERT_TRUE(h.done());
  EXPECT_TRUE(h.rec.chunks.empty());
  EXPECT_EQ(h.t->reply(), "");
  EXPECT_EQ(h.t->stats().stop_reason, "stop_string");
}

TEST(Turn, StopStringAtTheVeryEndIsCut) {
  harness h({"</s>"});
  h.feed("bye</s>");
  EXPECT_EQ(h.rec.cancels, 1);
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.t->reply(), "bye");
  EXPECT_EQ(h.rec.text(), "bye");
}

TEST(Turn, APartialStopStringAtTheEndIsSentWhenTheReplyEnds) {
  harness h({"STOP"});
  h.feed("wait ST");
  EXPECT_EQ(h.rec.text(), "wait") << "' ST' could start the stop string";
  ASSERT_TRUE(h.done("max_tokens"));
  EXPECT_EQ(h.rec.text(), "wait ST");
  EXPECT_EQ(h.t->stats().stop_reason, "max_tokens");
}

TEST(Turn, OverlappingCandidatesCutAtTheEarliestWhateverTheListOrder) {
  // The "d" of "xabcd" completes "bcd" (listed first, at 2) and "abcd" (at
  // 1): the reply ends before the earliest, "abcd".
  harness h({"bcd", "abcd"});
  h.feed("xabcd");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.t->reply(), "x");
  EXPECT_EQ(h.rec.text(), "x");
  EXPECT_EQ(h.rec.cancels, 1);
}

TEST(Turn, AStopStringIsCutWhenItCompletesEvenIfAnotherIsListedFirst) {
  harness h({"bcd", "abc"});
  h.feed("xabcd");  // "abc" completes at the "c", before "bcd" could
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.t->reply(), "x");
}

TEST(Turn, OneTokenCompletingTwoCandidatesCutsAtTheEarliest) {
  harness h({"cd", "bcd"});
  h.feed("ab");
  // The "d" completes both "cd" (at 2) and "bcd" (at 1): the earliest wins,
  // whatever the list order.
  h.t->on_token(vocab().find("<0x63>"), 1);
  h.t->on_token(vocab().find("<0x64>"), 1);
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.t->reply(), "a");
}

TEST(Turn, MultiByteCharacterSplitAcrossTokensArrivesWhole) {
  harness h;
  const std::string soup = "\xf0\x9f\x8d\xb2";  // U+1F372, four byte tokens
  h.feed("a" + soup.substr(0, 2));
  EXPECT_EQ(h.rec.text(), "a") << "no chunk holds part of a character";
  h.feed(soup.substr(2));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.rec.text(), "a" + soup);
  for (const auto& c : h.rec.chunks) EXPECT_TRUE(unicode::valid_utf8(c)) << c;
}

TEST(Turn, MultiByteCharacterStraddlingAStopStringIsKeptWhole) {
  // The hold-back ends inside "é" (2 bytes): the chunk boundary moves back
  // to the character's start, and "é!" stops the reply right after "caf".
  harness h({"\xc3\xa9!"});
  h.feed("caf\xc3\xa9");
  for (const auto& c : h.rec.chunks) EXPECT_TRUE(unicode::valid_utf8(c)) << c;
  EXPECT_EQ(h.rec.text(), "caf");
  h.feed("!");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.t->reply(), "caf");
  EXPECT_EQ(h.rec.text(), "caf");
}

TEST(Turn, MultiByteCharacterNextToAStopStringIsSent) {
  harness h({"!!"});
  h.feed("caf\xc3\xa9!");
  EXPECT_EQ(h.rec.text(), "caf\xc3\xa9") << "only the '!' could start the stop string";
  h.feed("?");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.rec.text(), "caf\xc3\xa9!?");
}

TEST(Turn, PausesWhenCreditIsExhaustedAndResumesWhenGranted) {
  harness h({}, 4);
  h.feed("abcd");
  EXPECT_EQ(h.rec.chunks.size(), 4u) << "a window of chunks goes out on the initial credit";
  h.feed("efgh");
  EXPECT_EQ(h.rec.chunks.size(), 4u) << "nothing more without credit";
  EXPECT_EQ(h.rec.pauses, 0) << "a window unsent does not pause yet";
  h.feed("i");
  EXPECT_EQ(h.rec.pauses, 1) << "more than a window unsent pauses the job";
  EXPECT_TRUE(h.t->paused());
  ASSERT_EQ(h.rec.stalls.size(), 1u);
  h.t->grant(2);
  EXPECT_EQ(h.rec.chunks.size(), 6u);
  EXPECT_EQ(h.rec.resumes, 0) << "3 unsent is above half a window";
  EXPECT_TRUE(h.t->stalled(h.rec.stalls[0])) << "still behind: the stall timer would fail the turn";
  h.t->grant(1);
  EXPECT_EQ(h.rec.resumes, 1) << "2 unsent is half a window: resume";
  EXPECT_FALSE(h.t->paused());
  EXPECT_FALSE(h.t->stalled(h.rec.stalls[0])) << "a resumed turn is not stalled";
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.rec.text(), "abcdefghi") << "the rest goes out regardless of credit";
}

TEST(Turn, AStallTimerOfAnEarlierPauseDoesNotFire) {
  harness h({}, 2);
  h.feed("abcde");  // 2 sent, 3 unsent: paused (stall gen 1)
  ASSERT_EQ(h.rec.stalls.size(), 1u);
  h.t->grant(3);  // resumed
  h.feed("fgh");  // paused again (stall gen 3)
  ASSERT_EQ(h.rec.stalls.size(), 2u);
  EXPECT_FALSE(h.t->stalled(h.rec.stalls[0]));
  EXPECT_TRUE(h.t->stalled(h.rec.stalls[1]));
}

TEST(Turn, ACommittingTurnIsNeverStalled) {
  harness h({}, 2);
  h.feed("abcde");
  ASSERT_EQ(h.rec.stalls.size(), 1u);
  ASSERT_TRUE(h.done());
  EXPECT_FALSE(h.t->stalled(h.rec.stalls[0]));
  EXPECT_FALSE(h.t->paused());
  h.t->grant(5);
  h.t->on_token(byte_token('z'), 1);
  EXPECT_EQ(h.rec.text(), "abcde") << "nothing changes once committing";
}

TEST(Turn, ACancelItDidNotAskForCutsTheTurnShort) {
  harness h;
  h.feed("half a rep");
  EXPECT_FALSE(h.t->on_done("cancelled", 0)) << "cut short: must not be committed";
  EXPECT_FALSE(h.t->committing());
}

TEST(Turn, TheCancelAfterAStopStringCommits) {
  harness h({"."});
  h.feed("Done. More");
  EXPECT_EQ(h.rec.cancels, 1);
  EXPECT_TRUE(h.t->on_done("cancelled", 0));
  EXPECT_EQ(h.t->reply(), "Done");
  EXPECT_EQ(h.t->stats().stop_reason, "stop_string");
}

TEST(Turn, StatisticsCountTokensBatchesAndTimes) {
  turn::setup s;
  s.seq = 1;
  s.plan.tokens = std::vector<token_id>(7, 1);
  const auto t0 = turn::clock_type::now();
  s.t0 = t0;
  turn t(vocab(), std::move(s), {});
  using std::chrono::milliseconds;
  EXPECT_EQ(t.on_token(byte_token('a'), 2, t0 + milliseconds(100)), std::optional<double>(0.1));
  EXPECT_EQ(t.on_token(byte_token('b'), 4, t0 + milliseconds(150)), std::nullopt) << "ttft only once";
  t.on_token(byte_token('c'), 6, t0 + milliseconds(200));
  ASSERT_TRUE(t.on_done("max_tokens", 3));
  const turn_stats st = t.stats(t0 + milliseconds(300));
  EXPECT_EQ(st.prompt_tokens, 3u) << "what the engine prefilled after KV reuse";
  EXPECT_EQ(st.generated_tokens, 3u);
  EXPECT_DOUBLE_EQ(st.ttft_seconds, 0.1);
  EXPECT_DOUBLE_EQ(st.total_seconds, 0.3);
  EXPECT_DOUBLE_EQ(st.mean_batch_size, 4.0);
  EXPECT_FALSE(st.replayed);
  EXPECT_EQ(st.stop_reason, "max_tokens");
  ASSERT_TRUE(t.time_per_output_token(t0 + milliseconds(300)));
  EXPECT_DOUBLE_EQ(*t.time_per_output_token(t0 + milliseconds(300)), 0.1);
  EXPECT_EQ(t.reply_ids().size(), 3u);
}

TEST(Turn, WithoutTokensTimeToFirstTokenIsTheTotal) {
  turn::setup s;
  const auto t0 = turn::clock_type::now();
  s.t0 = t0;
  turn t(vocab(), std::move(s), {});
  ASSERT_TRUE(t.on_done("eos", 0));
  const turn_stats st = t.stats(t0 + std::chrono::milliseconds(20));
  EXPECT_DOUBLE_EQ(st.ttft_seconds, st.total_seconds);
  EXPECT_EQ(st.generated_tokens, 0u);
  EXPECT_FALSE(t.time_per_output_token());
}

}  // namespace
}  // namespace brigade::actors
