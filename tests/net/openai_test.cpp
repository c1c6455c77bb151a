// The OpenAI API's types as plain functions (label unit): parsing and
// validation of requests, refused fields, errors that always serialise,
// and the response and stream-chunk shapes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/openai.hpp"

namespace brigade::net::openai {
namespace {

using json = nlohmann::json;

api_error chat_error(const std::string& body) {
  chat_call c;
  auto e = parse_chat(body, c);
  EXPECT_TRUE(e.has_value()) << body;
  return e.value_or(api_error{});
}

TEST(OpenAI, ParsesAChatRequestWithEveryField) {
  chat_call c;
  auto e = parse_chat(R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
      "max_tokens":10,"max_completion_tokens":12,"temperature":0.5,"top_p":0.9,"top_k":40,"seed":-1,
      "stop":["\n\n","END"],"n":1,"user":"u","stream":true,"stream_options":{"include_usage":true},
      "presence_penalty":0,"logprobs":false,"response_format":{"type":"text"},"some_future_field":{"x":1}})",
                      c);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(c.model, "m");
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0].role, "system");
  EXPECT_EQ(c.messages[1].content, "Hi there");
  EXPECT_EQ(c.sampling.max_tokens, 12);  // max_completion_tokens wins
  EXPECT_FLOAT_EQ(c.sampling.temperature, 0.5f);
  EXPECT_EQ(c.sampling.top_k, 40);
  EXPECT_TRUE(c.sampling.seed_set);
  EXPECT_EQ(c.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(c.sampling.stop.size(), 2u);
  EXPECT_TRUE(c.stream);
  EXPECT_TRUE(c.include_usage);
}

TEST(OpenAI, RefusesKnownFieldsItDoesNotImplementNamingThem) {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  for (const auto& [field, body] : std::vector<std::pair<std::string, std::string>>{
           {"tools", R"({"tools":[{"type":"function"}],)" + msgs + "}"},
           {"tool_choice", R"({"tool_choice":"auto",)" + msgs + "}"},
           {"functions", R"({"functions":[],)" + msgs + "}"},
           {"response_format", R"({"response_format":{"type":"json_object"},)" + msgs + "}"},
           {"logprobs", R"({"logprobs":true,)" + msgs + "}"},
           {"top_logprobs", R"({"top_logprobs":2,)" + msgs + "}"},
           {"n", R"({"n":2,)" + msgs + "}"},
           {"logit_bias", R"({"logit_bias":{"1":5},)" + msgs + "}"},
           {"presence_penalty", R"({"presence_penalty":0.5,)" + msgs + "}"},
           {"frequency_penalty", R"({"frequency_penalty":-1,)" + msgs + "}"},
           {"messages[0].content[0].type",
            R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})"},
           {"messages[0].role", R"({"messages":[{"role":"tool","content":"x","tool_call_id":"1"}]})"}}) {
    const api_error e = chat_error(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, field) << body;
    EXPECT_EQ(e.code, "unsupported_parameter") << body;
  }
}

TEST(OpenAI, RefusesBadInputWithTheFieldNamed) {
  EXPECT_EQ(chat_error("").code, "invalid_json");
  EXPECT_EQ(chat_error("{").code, "invalid_json");
  EXPECT_EQ(chat_error("[]").code, "invalid_json");
  EXPECT_EQ(chat_error(R"({"messages":[]})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"robot","content":"x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":3})").param, "temperature");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})").param, "max_tokens");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})").param, "max_tokens");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})").param, "stop");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})").param, "stream");
  // Invalid UTF-8 and lone surrogates are refused by the JSON parser.
  EXPECT_EQ(chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}").code, "invalid_json");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"\ud800"}]})").code, "invalid_json");
  // Deep nesting is refused before parsing.
  EXPECT_EQ(chat_error(std::string(10000, '[') + std::string(10000, ']')).code, "invalid_json");
}

TEST(OpenAI, EveryErrorBodySerialisesEvenWithInvalidUtf8) {
  api_error e;
  e.message = "bad \xff\xfe input";
  const json j = json::parse(error_body(e));
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
}

TEST(OpenAI, CompletionsRefuseEchoSuffixBestOfAndPromptLists) {
  completion_call c;
  EXPECT_FALSE(parse_completion(R"({"prompt":"Once upon","max_tokens":4})", c));
  EXPECT_EQ(c.prompt, "Once upon");
  for (const auto& [field, body] : std::vector<std::pair<std::string, std::string>>{
           {"echo", R"({"prompt":"a","echo":true})"},
           {"suffix", R"({"prompt":"a","suffix":"b"})"},
           {"best_of", R"({"prompt":"a","best_of":2})"},
           {"prompt", R"({"prompt":["a","b"]})"}}) {
    completion_call x;
    auto e = parse_completion(body, x);
    ASSERT_TRUE(e) << body;
    EXPECT_EQ(e->param, field);
    EXPECT_EQ(e->code, "unsupported_parameter");
  }
}

TEST(OpenAI, ChunksAndResponsesHaveOpenAIsShape) {
  reply r{"chatcmpl-1", 1700000000, "m", "Hello", "stop", 3, 2};
  const json full = json::parse(chat_response(r));
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(full["usage"]["total_tokens"], 5);
  const std::string first = chat_chunk(r, "", true, "");
  ASSERT_EQ(first.rfind("data: ", 0), 0u);
  ASSERT_EQ(first.substr(first.size() - 2), "\n\n");
  const json j = json::parse(first.substr(6));
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  const json last = json::parse(chat_chunk(r, "", false, "length").substr(6));
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  const json usage = json::parse(usage_chunk(r, true).substr(6));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 2);
  EXPECT_EQ(finish_reason("max_tokens"), "length");
  EXPECT_EQ(finish_reason("eos"), "stop");
  EXPECT_EQ(finish_reason("stop_string"), "stop");
}

TEST(OpenAI, SessionOpenTakesAnEmptyBodyOrASystemPrompt) {
  std::string sys;
  EXPECT_FALSE(parse_session_open("", sys));
  EXPECT_FALSE(parse_session_open("{}", sys));
  EXPECT_FALSE(parse_session_open(R"({"system":"You are a chef."})", sys));
  EXPECT_EQ(sys, "You are a chef.");
  auto e = parse_session_open(R"({"system":5})", sys);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "system");
}

}  // namespace
}  // namespace brigade::net::openai
