#include "net/openai.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "kernels/model/unicode.hpp"

namespace brigade::net::openai {

using json = nlohmann::json;

namespace {

/// Every body is dumped with invalid UTF-8 replaced: serialising never throws.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

api_error bad(std::string message, std::string param = {}, std::string code = {}) {
  return api_error{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

api_error unsupported(const std::string& param, const std::string& what) {
  return bad("'" + param + "' is not supported by brigade: " + what, param, "unsupported_parameter");
}

/// An input excerpt for a message: at most 40 bytes, cut at a character boundary.
std::string excerpt(const std::string& s) {
  if (s.size() <= 40) return s;
  size_t n = 40;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "...";
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "a number";
  }
}

std::optional<api_error> parse_object(std::string_view body, json& out) {
  if (body.empty()) return bad("the request body is empty; send a JSON object", "", "invalid_json");
  // JSON text holds no raw NUL (escaped as \u0000 in strings); nlohmann's
  // lexer would take one as the end of the input and ignore what follows.
  if (body.find('\0') != std::string_view::npos)
    return bad("the request body holds a NUL byte; JSON escapes it as \\u0000", "", "invalid_json");
  if (json_depth(body) > max_json_depth)
    return bad("the JSON nests deeper than " + std::to_string(max_json_depth) + " levels", "", "invalid_json");
  try {
    out = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    // nlohmann's sentence names the byte and, for strings, "ill-formed UTF-8".
    return bad(std::string("the request body is not valid JSON (") + e.what() + ")", "", "invalid_json");
  } catch (const json::exception& e) {  // a number out of double's range (out_of_range.406), ...
    return bad(std::string("the request body cannot be read (") + e.what() + ")", "", "invalid_json");
  }
  if (!out.is_object()) return bad("the request body must be a JSON object, not " + type_name(out), "", "invalid_json");
  return std::nullopt;
}

bool present(const json& o, const char* k) { return o.contains(k) && !o.at(k).is_null(); }

std::optional<api_error> get_bool(const json& o, const char* k, bool& out) {
  if (!present(o, k)) return std::nullopt;
  if (!o.at(k).is_boolean()) return bad(std::string("'") + k + "' must be a boolean, not " + type_name(o.at(k)), k);
  out = o.at(k).get<bool>();
  return std::nullopt;
}

std::optional<api_error> get_string(const json& o, const char* k, std::string& out) {
  if (!present(o, k)) return std::nullopt;
  if (!o.at(k).is_string()) return bad(std::string("'") + k + "' must be a string, not " + type_name(o.at(k)), k);
  out = o.at(k).get<std::string>();
  return std::nullopt;
}

/// A number in [lo, hi]; integers only when `integer`.
std::optional<api_error> get_number(const json& o, const char* k, double lo, double hi, bool integer,
                                    std::optional<double>& out) {
  if (!present(o, k)) return std::nullopt;
  const json& v = o.at(k);
  if (!v.is_number() || (integer && !v.is_number_integer()))
    return bad(std::string("'") + k + "' must be " + (integer ? "an integer" : "a number") + ", not " + type_name(v),
               k);
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    auto fmt = [](double x) {
      if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
      return std::to_string(x);
    };
    return bad(std::string("'") + k + "' must be from " + fmt(lo) + " to " + fmt(hi) + ", not " + dump(v), k);
  }
  out = d;
  return std::nullopt;
}

/// Fields every generation request shares: sampling, stream, n, penalties.
std::optional<api_error> parse_common(const json& o, sampling_params& s, bool& stream, bool& include_usage,
                                      std::string& model) {
  s.temperature = 1.0f;  // OpenAI's default when the request leaves it out (brigade's own default is greedy)
  if (auto e = get_string(o, "model", model)) return e;
  if (!unicode::valid_utf8(model)) return bad("'model' is not valid UTF-8", "model");
  std::optional<double> v;
  // max_completion_tokens is the newer name; it wins when both are given.
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    v.reset();
    if (auto e = get_number(o, k, 1, 9.2e18, true, v)) return e;
    if (v) s.max_tokens = static_cast<int32_t>(std::min(*v, static_cast<double>(std::numeric_limits<int32_t>::max())));
  }
  v.reset();
  if (auto e = get_number(o, "temperature", 0, 2, false, v)) return e;
  if (v) s.temperature = static_cast<float>(*v);
  v.reset();
  if (auto e = get_number(o, "top_p", 0, 1, false, v)) return e;
  if (v) {
    if (*v <= 0) return bad("'top_p' must be more than 0 and at most 1, not 0", "top_p");
    s.top_p = static_cast<float>(*v);
  }
  v.reset();
  if (auto e = get_number(o, "top_k", -1, 1e9, true, v)) return e;  // -1: no limit, as vLLM
  if (v) s.top_k = *v < 0 ? 0 : static_cast<int32_t>(*v);
  if (present(o, "seed")) {
    const json& sd = o.at("seed");
    if (!sd.is_number_integer()) return bad("'seed' must be an integer, not " + type_name(sd), "seed");
    s.seed = sd.is_number_unsigned() ? sd.get<uint64_t>() : static_cast<uint64_t>(sd.get<int64_t>());
    s.seed_set = true;
  }
  if (present(o, "stop")) {
    const json& st = o.at("stop");
    if (st.is_string()) {
      s.stop = {st.get<std::string>()};
    } else if (st.is_array()) {
      for (size_t i = 0; i < st.size(); ++i) {
        if (!st[i].is_string())
          return bad("'stop' must be a string or a list of strings; item " + std::to_string(i) + " is " +
                         type_name(st[i]),
                     "stop");
        s.stop.push_back(st[i].get<std::string>());
      }
    } else {
      return bad("'stop' must be a string or a list of strings, not " + type_name(st), "stop");
    }
    if (s.stop.size() > 8) return bad("'stop' has " + std::to_string(s.stop.size()) + " strings; send at most 8", "stop");
    for (const auto& x : s.stop) {
      if (!unicode::valid_utf8(x)) return bad("a 'stop' string is not valid UTF-8", "stop");
      if (x.empty() || x.size() > 64) return bad("each 'stop' string must be 1 to 64 bytes", "stop");
    }
  }
  v.reset();
  if (auto e = get_number(o, "n", -9.2e18, 9.2e18, true, v)) return e;
  if (v && *v > 1) return unsupported("n", "one choice per request (n = 1)");
  if (v && *v < 1) return bad("'n' must be 1", "n");
  for (const char* k : {"presence_penalty", "frequency_penalty"}) {
    v.reset();
    if (auto e = get_number(o, k, -2, 2, false, v)) return e;
    if (v && *v != 0) return unsupported(k, "penalties are not implemented (leave it out or send 0)");
  }
  if (present(o, "logit_bias")) {
    const json& lb = o.at("logit_bias");
    if (!lb.is_object()) return bad("'logit_bias' must be an object, not " + type_name(lb), "logit_bias");
    if (!lb.empty()) return unsupported("logit_bias", "logit biases are not implemented");
  }
  if (auto e = get_bool(o, "stream", stream)) return e;
  if (present(o, "stream_options")) {
    const json& so = o.at("stream_options");
    if (!so.is_object()) return bad("'stream_options' must be an object, not " + type_name(so), "stream_options");
    if (auto e = get_bool(so, "include_usage", include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  std::string user;
  if (auto e = get_string(o, "user", user)) return e;
  if (auto st = validate(s); !st) return bad(st.message());
  return std::nullopt;
}

/// A message's content: a string, or a list of text parts.
std::optional<api_error> parse_content(const json& m, const std::string& where, std::string& out) {
  if (!m.contains("content") || m.at("content").is_null())
    return bad(where + " has no content; send its text", where + ".content");
  const json& c = m.at("content");
  if (c.is_string()) {
    out = c.get<std::string>();
    return std::nullopt;
  }
  if (!c.is_array()) return bad(where + ".content must be a string or a list of parts, not " + type_name(c), where + ".content");
  for (size_t j = 0; j < c.size(); ++j) {
    const std::string pw = where + ".content[" + std::to_string(j) + "]";
    const json& part = c[j];
    if (!part.is_object() || !part.contains("type") || !part.at("type").is_string())
      return bad(pw + " must be an object with a string 'type'", pw);
    const std::string type = part.at("type").get<std::string>();
    if (type == "image_url" || type == "input_image" || type == "image" || type == "input_audio" || type == "audio" ||
        type == "file" || type == "video_url")
      return unsupported(pw + ".type", "only text parts are accepted (this model reads text)");
    if (type != "text") return bad(pw + " has type '" + excerpt(type) + "'; use 'text'", pw + ".type");
    if (!part.contains("text") || !part.at("text").is_string()) return bad(pw + " needs a string 'text'", pw + ".text");
    out += part.at("text").get<std::string>();
  }
  return std::nullopt;
}

std::optional<api_error> parse_messages(const json& o, std::vector<chat_message>& out) {
  if (!o.contains("messages")) return bad("'messages' is missing; send the conversation as a list", "messages");
  const json& ms = o.at("messages");
  if (!ms.is_array()) return bad("'messages' must be a list, not " + type_name(ms), "messages");
  if (ms.empty()) return bad("'messages' is empty; send at least one user message", "messages");
  for (size_t i = 0; i < ms.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& m = ms[i];
    if (!m.is_object()) return bad(where + " must be an object, not " + type_name(m), where);
    if (!m.contains("role") || !m.at("role").is_string()) return bad(where + " needs a string 'role'", where + ".role");
    std::string role = m.at("role").get<std::string>();
    if (role == "tool" || role == "function") return unsupported(where + ".role", "tool and function calls");
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      return bad(where + " has the unknown role '" + excerpt(role) + "'; use system, user or assistant",
                 where + ".role");
    if (present(m, "tool_calls") || present(m, "function_call"))
      return unsupported(where + ".tool_calls", "tool and function calls");
    if (present(m, "audio")) return unsupported(where + ".audio", "audio");
    chat_message cm{role, {}};
    if (auto e = parse_content(m, where, cm.content)) return e;
    if (!unicode::valid_utf8(cm.content)) return bad(where + " is not valid UTF-8", where + ".content");
    out.push_back(std::move(cm));
  }
  return std::nullopt;
}

/// Known OpenAI fields brigade refuses rather than ignores.
std::optional<api_error> refuse_chat_only(const json& o) {
  for (const char* k : {"tools", "functions"})
    if (present(o, k)) return unsupported(k, "tool and function calls");
  for (const char* k : {"tool_choice", "function_call"}) {
    if (!present(o, k)) continue;
    if (o.at(k).is_string() && o.at(k).get<std::string>() == "none") continue;
    return unsupported(k, "tool and function calls");
  }
  if (present(o, "response_format")) {
    const json& rf = o.at("response_format");
    if (!rf.is_object() || !rf.contains("type") || !rf.at("type").is_string())
      return bad("'response_format' must be an object with a string 'type'", "response_format");
    if (rf.at("type").get<std::string>() != "text")
      return unsupported("response_format", "only {\"type\": \"text\"} (structured output is not implemented)");
  }
  if (present(o, "logprobs")) {
    if (!o.at("logprobs").is_boolean()) return bad("'logprobs' must be a boolean", "logprobs");
    if (o.at("logprobs").get<bool>()) return unsupported("logprobs", "log probabilities are not returned");
  }
  if (present(o, "top_logprobs")) return unsupported("top_logprobs", "log probabilities are not returned");
  if (present(o, "audio")) return unsupported("audio", "audio output");
  if (present(o, "modalities")) {
    const json& md = o.at("modalities");
    if (!md.is_array()) return bad("'modalities' must be a list", "modalities");
    for (const auto& x : md)
      if (!x.is_string() || x.get<std::string>() != "text") return unsupported("modalities", "only text output");
  }
  return std::nullopt;
}

json usage_json(const reply& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

json finish_json(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }

std::string event(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace

std::optional<api_error> parse_chat_unguarded(std::string_view body, chat_call& out);
std::optional<api_error> parse_completion_unguarded(std::string_view body, completion_call& out);
std::optional<api_error> parse_session_open_unguarded(std::string_view body, std::string& system);

int json_depth(std::string_view body) {
  int depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) max = depth;
      if (max > max_json_depth) return max;  // enough to refuse
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max;
}

std::string error_body(const api_error& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return dump(json{{"error", err}});
}

std::string error_event(const api_error& e) { return "data: " + error_body(e) + "\n\n"; }

/// Runs a parser; any JSON exception left (a bug: the checks should come
/// first) is a 400, never an escape.
template <class F>
std::optional<api_error> guarded(F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return bad(std::string("the request cannot be read (") + e.what() + ")");
  }
}

std::optional<api_error> parse_chat(std::string_view body, chat_call& out) {
  return guarded([&] { return parse_chat_unguarded(body, out); });
}

std::optional<api_error> parse_completion(std::string_view body, completion_call& out) {
  return guarded([&] { return parse_completion_unguarded(body, out); });
}

std::optional<api_error> parse_session_open(std::string_view body, std::string& system) {
  return guarded([&] { return parse_session_open_unguarded(body, system); });
}

std::optional<api_error> parse_chat_unguarded(std::string_view body, chat_call& out) {
  json o;
  if (auto e = parse_object(body, o)) return e;
  if (auto e = refuse_chat_only(o)) return e;
  if (auto e = parse_messages(o, out.messages)) return e;
  return parse_common(o, out.sampling, out.stream, out.include_usage, out.model);
}

std::optional<api_error> parse_completion_unguarded(std::string_view body, completion_call& out) {
  json o;
  if (auto e = parse_object(body, o)) return e;
  if (present(o, "echo")) {
    if (!o.at("echo").is_boolean()) return bad("'echo' must be a boolean", "echo");
    if (o.at("echo").get<bool>()) return unsupported("echo", "echoing the prompt");
  }
  if (present(o, "suffix")) {
    if (!o.at("suffix").is_string()) return bad("'suffix' must be a string", "suffix");
    if (!o.at("suffix").get<std::string>().empty()) return unsupported("suffix", "insertion (suffix)");
  }
  std::optional<double> bo;
  if (auto e = get_number(o, "best_of", -9.2e18, 9.2e18, true, bo)) return e;
  if (bo && *bo != 1) return unsupported("best_of", "one candidate per request (best_of = 1)");
  if (present(o, "logprobs")) return unsupported("logprobs", "log probabilities are not returned");
  if (!present(o, "prompt")) return bad("'prompt' is missing; send the text to continue", "prompt");
  const json& p = o.at("prompt");
  if (p.is_array()) return unsupported("prompt", "one prompt string per request (not a list, not token ids)");
  if (!p.is_string()) return bad("'prompt' must be a string, not " + type_name(p), "prompt");
  out.prompt = p.get<std::string>();
  if (out.prompt.empty()) return bad("'prompt' is empty; send some text", "prompt");
  if (!unicode::valid_utf8(out.prompt)) return bad("'prompt' is not valid UTF-8", "prompt");
  return parse_common(o, out.sampling, out.stream, out.include_usage, out.model);
}

std::optional<api_error> parse_session_open_unguarded(std::string_view body, std::string& system) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  json o;
  if (auto e = parse_object(body, o)) return e;
  if (auto e = get_string(o, "system", system)) return e;
  if (!unicode::valid_utf8(system)) return bad("'system' is not valid UTF-8", "system");
  return std::nullopt;
}

std::string finish_reason(const std::string& stop_reason) {
  return stop_reason == "max_tokens" ? "length" : "stop";
}

std::string chat_response(const reply& r) {
  json j = {{"id", r.id},
            {"object", "chat.completion"},
            {"created", r.created},
            {"model", r.model},
            {"choices",
             json::array({{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", r.text}}},
                           {"logprobs", nullptr},
                           {"finish_reason", finish_json(r.finish_reason)}}})},
            {"usage", usage_json(r)}};
  return dump(j);
}

std::string completion_response(const reply& r) {
  json j = {{"id", r.id},
            {"object", "text_completion"},
            {"created", r.created},
            {"model", r.model},
            {"choices",
             json::array({{{"index", 0},
                           {"text", r.text},
                           {"logprobs", nullptr},
                           {"finish_reason", finish_json(r.finish_reason)}}})},
            {"usage", usage_json(r)}};
  return dump(j);
}

std::string chat_chunk(const reply& r, const std::string& content, bool role, const std::string& finish) {
  json delta = json::object();
  if (role) delta["role"] = "assistant";
  if (role || !content.empty()) delta["content"] = content;
  json j = {{"id", r.id},
            {"object", "chat.completion.chunk"},
            {"created", r.created},
            {"model", r.model},
            {"choices",
             json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish)}}})}};
  return event(j);
}

std::string completion_chunk(const reply& r, const std::string& text, const std::string& finish) {
  json j = {{"id", r.id},
            {"object", "text_completion"},
            {"created", r.created},
            {"model", r.model},
            {"choices",
             json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish)}}})}};
  return event(j);
}

std::string usage_chunk(const reply& r, bool chat) {
  json j = {{"id", r.id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", r.created},
            {"model", r.model},
            {"choices", json::array()},
            {"usage", usage_json(r)}};
  return event(j);
}

std::string model_object(const std::string& id, int64_t created) {
  return dump(json{{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "brigade"}});
}

std::string models_list(const std::vector<std::string>& ids, int64_t created) {
  json data = json::array();
  for (const auto& id : ids) data.push_back({{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "brigade"}});
  return dump(json{{"object", "list"}, {"data", data}});
}

std::string session_history(const std::string& id, const std::vector<turn_view>& turns) {
  json arr = json::array();
  for (const auto& t : turns)
    arr.push_back({{"seq", t.seq},
                   {"user", t.user},
                   {"assistant", t.assistant},
                   {"prompt_tokens", t.prompt_tokens},
                   {"generated_tokens", t.generated_tokens},
                   {"committed_at_ms", t.committed_at_ms}});
  return dump(json{{"id", id}, {"object", "brigade.session"}, {"turns", arr}});
}

std::string session_opened(const std::string& id, const std::string& token) {
  return dump(json{{"id", id}, {"object", "brigade.session"}, {"token", token}});
}

std::string session_deleted(const std::string& id) {
  return dump(json{{"id", id}, {"object", "brigade.session"}, {"deleted", true}});
}

}  // namespace brigade::net::openai
