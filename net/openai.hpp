// OpenAI's HTTP API types to and from brigade's (docs/api.md): request
// parsing and validation, response and stream-chunk serialisation, errors in
// OpenAI's shape. Plain functions on strings (nlohmann-json), no sockets, no
// actors, no threads: the API server (actors/api_server.hpp) calls them, and
// so can tests and fuzzers.
//
// Parsing never throws and never trusts its input: malformed JSON, invalid
// UTF-8, nesting deeper than `max_json_depth`, wrong types and values out of
// range each give a 400 naming the field. Known OpenAI fields that brigade
// does not implement are refused (400, code "unsupported_parameter", param
// the field), never silently ignored; unknown fields are ignored. Every
// body produced serialises, whatever the input (invalid UTF-8 echoed in a
// message is replaced, never thrown on).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/engine/sampling.hpp"
#include "kernels/model/chat_template.hpp"

namespace brigade::net::openai {

/// Arrays and objects nested deeper than this are refused before parsing.
constexpr int max_json_depth = 32;

/// An error as OpenAI answers it: HTTP status and {"error": {...}}.
struct api_error {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
};

/// `{"error": {"message", "type", "param", "code"}}`.
std::string error_body(const api_error& e);
/// The `data: {...}\n\n` event that ends a stream that failed after it began.
std::string error_event(const api_error& e);

struct chat_call {
  std::string model;  // "" when absent
  std::vector<chat_message> messages;
  sampling_params sampling;  // max_tokens 0: the server's cap
  bool stream = false;
  bool include_usage = false;
};

struct completion_call {
  std::string model;
  std::string prompt;
  sampling_params sampling;
  bool stream = false;
  bool include_usage = false;
};

/// POST /v1/chat/completions. On success `out` is complete; messages are
/// system/user/assistant ("developer" is read as system) with text content.
std::optional<api_error> parse_chat(std::string_view body, chat_call& out);
/// POST /v1/completions: one prompt string.
std::optional<api_error> parse_completion(std::string_view body, completion_call& out);
/// POST /v1/sessions: an empty body, {} or {"system": "..."}.
std::optional<api_error> parse_session_open(std::string_view body, std::string& system);

/// What a finished turn reports.
struct reply {
  std::string id;  // chatcmpl-... / cmpl-...
  int64_t created = 0;
  std::string model;
  std::string text;
  std::string finish_reason;  // stop | length
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

/// brigade's stop reason (eos, stop_string, max_tokens, replayed) as OpenAI's.
std::string finish_reason(const std::string& stop_reason);

std::string chat_response(const reply& r);
std::string completion_response(const reply& r);

/// One `data: {...}\n\n` event of a chat stream: with `role` the first
/// (delta {"role": "assistant", "content": ""}), else content; with a
/// finish reason the last choice chunk (empty delta).
std::string chat_chunk(const reply& r, const std::string& content, bool role, const std::string& finish);
std::string completion_chunk(const reply& r, const std::string& text, const std::string& finish);
/// The usage chunk (stream_options.include_usage): choices [] and usage.
std::string usage_chunk(const reply& r, bool chat);
inline const char* done_event() { return "data: [DONE]\n\n"; }

/// GET /v1/models and /v1/models/{id}.
std::string model_object(const std::string& id, int64_t created);
std::string models_list(const std::vector<std::string>& ids, int64_t created);

/// Committed turns as GET /v1/sessions/{id} returns them.
struct turn_view {
  uint64_t seq = 0;
  std::string user, assistant;
  uint32_t prompt_tokens = 0, generated_tokens = 0;
  int64_t committed_at_ms = 0;
};
std::string session_history(const std::string& id, const std::vector<turn_view>& turns);
std::string session_opened(const std::string& id, const std::string& token);
std::string session_deleted(const std::string& id);

/// The nesting depth of a JSON text (strings skipped), for the depth check.
int json_depth(std::string_view body);

}  // namespace brigade::net::openai
