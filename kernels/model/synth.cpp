#include "kernels/model/synth.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "kernels/model/gguf.hpp"
#include "kernels/model/gguf_writer.hpp"
#include "kernels/base/philox.hpp"
#include "kernels/base/thread_pool.hpp"

namespace brigade {

const std::vector<synth_preset>& synth_presets() {
  static const std::vector<synth_preset> p = {
      // name, embd, layers, heads, kv heads, ff, ctx, vocab, tied
      {"tiny", 64, 2, 4, 2, 160, 256, 512, true},
      {"small", 512, 6, 8, 4, 1536, 2048, 32000, false},
      {"tinyllama-1b", 2048, 22, 32, 4, 5632, 2048, 32000, false},
  };
  return p;
}

bool parse_ggml_type(const std::string& s, ggml_type& out) {
  std::string l = s;
  for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "f32")
    out = ggml_type::f32;
  else if (l == "f16")
    out = ggml_type::f16;
  else if (l == "bf16")
    out = ggml_type::bf16;
  else if (l == "q8_0")
    out = ggml_type::q8_0;
  else
    return false;
  return true;
}

builtin_vocab make_builtin_vocab(int32_t n_vocab) {
  // Token ids follow Llama 2's convention: 0 <unk>, 1 <s>, 2 </s>, 3..258 the
  // byte tokens; then ChatML's control tokens and text pieces, shorter and
  // more common pieces first (higher score, so they merge first).
  builtin_vocab v;
  auto add = [&](std::string text, int32_t type) {
    if (static_cast<int32_t>(v.tokens.size()) >= n_vocab) return;
    if (std::find(v.tokens.begin(), v.tokens.end(), text) != v.tokens.end() && type == 1) return;
    v.scores.push_back(type == 1 ? -static_cast<float>(v.tokens.size()) : 0.0f);
    v.tokens.push_back(std::move(text));
    v.types.push_back(type);
  };
  add("<unk>", 2);
  add("<s>", 3);
  add("</s>", 3);
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    add(hex, 6);
  }
  add("<|im_start|>", 3);
  add("<|im_end|>", 3);
  const std::string sp = "\xE2\x96\x81";  // "▁"
  add(sp, 1);
  for (int c = 33; c < 127; ++c) add(std::string(1, static_cast<char>(c)), 1);
  for (int c = 33; c < 127; ++c) add(sp + static_cast<char>(c), 1);
  static const char* const words[] = {
      "the",     "and",      "you",    "that",  "was",     "for",     "are",     "with",  "his",   "they",   "this",
      "have",    "from",     "one",    "had",   "word",    "but",     "not",     "what",  "all",   "were",   "when",
      "your",    "can",      "said",   "there", "use",     "each",    "which",   "she",   "how",   "their",  "will",
      "other",   "about",    "out",    "many",  "then",    "them",    "these",   "some",  "her",   "would",  "make",
      "like",    "him",      "into",   "time",  "has",     "look",    "two",     "more",  "write", "see",    "number",
      "way",     "could",    "people", "than",  "first",   "water",   "been",    "call",  "who",   "now",    "find",
      "long",    "down",     "day",    "did",   "get",     "come",    "made",    "may",   "part",  "hello",  "world",
      "chat",    "model",    "token",  "batch", "session", "durable", "kitchen", "order", "cook",  "table",  "llama",
      "brigade", "GPU",      "CPU",    "Hello", "The",     "What",    "How",     "Yes",   "No",    "Thanks", "please",
      "answer",  "question", "help",   "ing",   "ed",      "er",      "ly",      "tion",  "es",    "en",     "al",
      "re",      "in",       "on",     "at",    "an",      "or",      "it",      "is",    "to",    "of",     "be",
      "as",      "by",       "we",     "he",    "do",      "if",      "me",      "my",    "so",    "up",     "go",
      "no",      "us",       "am"};
  for (const char* w : words) add(sp + w, 1);
  for (const char* w : words) add(w, 1);
  for (char a = 'a'; a <= 'z'; ++a)
    for (char b = 'a'; b <= 'z'; ++b) {
      add(std::string{a, b}, 1);
      add(sp + a + b, 1);
    }
  for (char a = 'a'; a <= 'z'; ++a)
    for (char b = 'a'; b <= 'z'; ++b)
      for (char c = 'a'; c <= 'z'; ++c) {
        add(std::string{a, b, c}, 1);
        add(sp + a + b + c, 1);
      }
  // Past 35,000 pieces (larger presets than today's), number the rest.
  for (int32_t i = 0; static_cast<int32_t>(v.tokens.size()) < n_vocab; ++i) add(sp + "w" + std::to_string(i), 1);
  return v;
}

namespace {

constexpr const char* chatml_template =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct tensor_plan {
  std::string name;
  std::vector<int64_t> shape;  // (cols, rows) or (n)
  enum kind { matrix, norm, embedding } k;
};

/// Uniform in [-1, 1) for element `i` of tensor `t`.
inline float synth_uniform(uint64_t seed, uint32_t t, uint64_t i) {
  const philox_out r = philox4x32(static_cast<uint32_t>(i >> 2), static_cast<uint32_t>(i >> 34), t, 0x73796E74u,
                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<float>(r.v[i & 3] >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

}  // namespace

status synthesize_model(const synth_options& opt, const std::string& out_path) {
  const synth_preset* p = nullptr;
  for (const auto& pr : synth_presets())
    if (opt.preset == pr.name) p = &pr;
  if (!p) return {errc::invalid_argument, "unknown preset '" + opt.preset + "' (use tiny, small or tinyllama-1b)"};
  return synthesize_model(*p, opt, out_path);
}

status synthesize_model(const synth_preset& shape, const synth_options& opt, const std::string& out_path) {
  const synth_preset* p = &shape;
  if (p->n_head <= 0 || p->n_head_kv <= 0 || p->n_embd % p->n_head != 0 || (p->n_embd / p->n_head) % 2 != 0 ||
      p->n_head % p->n_head_kv != 0 || p->n_layer <= 0 || p->n_ff <= 0 || p->n_vocab < 300)
    return {errc::invalid_argument, "synth: inconsistent shapes"};

  gguf::writer w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", std::string("brigade-synth-") + p->name);
  w.add_u32("general.file_type", static_cast<uint32_t>(opt.type));
  w.add_u64("brigade.synth.seed", opt.seed);
  w.add_string("brigade.synth.preset", p->name);

  int32_t n_vocab = p->n_vocab;
  if (!opt.vocab_from.empty()) {
    auto vf = gguf::gguf_file::open(opt.vocab_from);
    if (!vf) return vf.error();
    const gguf::value* toks = vf->find("tokenizer.ggml.tokens");
    if (!toks || toks->type != gguf::value_type::array || toks->elem_type != gguf::value_type::string)
      return {errc::not_found, opt.vocab_from + ": has no tokenizer.ggml.tokens to take the vocabulary from"};
    n_vocab = static_cast<int32_t>(toks->count);
  }
  w.add_u32("llama.vocab_size", static_cast<uint32_t>(n_vocab));
  w.add_u32("llama.context_length", static_cast<uint32_t>(p->n_ctx));
  w.add_u32("llama.embedding_length", static_cast<uint32_t>(p->n_embd));
  w.add_u32("llama.block_count", static_cast<uint32_t>(p->n_layer));
  w.add_u32("llama.feed_forward_length", static_cast<uint32_t>(p->n_ff));
  w.add_u32("llama.attention.head_count", static_cast<uint32_t>(p->n_head));
  w.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(p->n_head_kv));
  w.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(p->n_embd / p->n_head));
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  if (opt.vocab_from.empty()) {
    const builtin_vocab v = make_builtin_vocab(n_vocab);
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_string_array("tokenizer.ggml.tokens", v.tokens);
    w.add_f32_array("tokenizer.ggml.scores", v.scores);
    w.add_i32_array("tokenizer.ggml.token_type", v.types);
    w.add_u32("tokenizer.ggml.bos_token_id", 1);
    w.add_u32("tokenizer.ggml.eos_token_id", 2);
    w.add_u32("tokenizer.ggml.unknown_token_id", 0);
    w.add_bool("tokenizer.ggml.add_bos_token", true);
    w.add_bool("tokenizer.ggml.add_eos_token", false);
    w.add_string("tokenizer.chat_template", chatml_template);
  } else {
    auto vf = gguf::gguf_file::open(opt.vocab_from);
    if (!vf) return vf.error();
    for (const auto& [key, val] : vf->metadata())
      if (key.rfind("tokenizer.", 0) == 0) w.add_value(key, val);
  }

  std::vector<tensor_plan> plan;
  const int64_t d = p->n_embd, kv = static_cast<int64_t>(p->n_head_kv) * (p->n_embd / p->n_head);
  plan.push_back({"token_embd.weight", {d, n_vocab}, tensor_plan::embedding});
  for (int32_t l = 0; l < p->n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    plan.push_back({b + "attn_norm.weight", {d}, tensor_plan::norm});
    plan.push_back({b + "attn_q.weight", {d, d}, tensor_plan::matrix});
    plan.push_back({b + "attn_k.weight", {d, kv}, tensor_plan::matrix});
    plan.push_back({b + "attn_v.weight", {d, kv}, tensor_plan::matrix});
    plan.push_back({b + "attn_output.weight", {d, d}, tensor_plan::matrix});
    plan.push_back({b + "ffn_norm.weight", {d}, tensor_plan::norm});
    plan.push_back({b + "ffn_gate.weight", {d, p->n_ff}, tensor_plan::matrix});
    plan.push_back({b + "ffn_up.weight", {d, p->n_ff}, tensor_plan::matrix});
    plan.push_back({b + "ffn_down.weight", {p->n_ff, d}, tensor_plan::matrix});
  }
  plan.push_back({"output_norm.weight", {d}, tensor_plan::norm});
  if (!p->tied_output) plan.push_back({"output.weight", {d, n_vocab}, tensor_plan::matrix});

  for (const auto& t : plan) {
    const ggml_type type = t.k == tensor_plan::norm ? ggml_type::f32 : opt.type;
    if (auto s = w.add_tensor_info(t.name, type, t.shape); !s) return s;
  }

  thread_pool pool(opt.n_threads);
  const uint64_t seed = opt.seed;
  auto fill = [&](size_t index, unsigned char* dst, size_t) {
    const tensor_plan& t = plan[index];
    const int64_t cols = t.shape[0];
    const int64_t rows = t.shape.size() > 1 ? t.shape[1] : 1;
    const ggml_type type = t.k == tensor_plan::norm ? ggml_type::f32 : opt.type;
    // Matrices: variance 1/fan_in (uniform on +-sqrt(3/fan_in)), so each
    // layer keeps activations at unit scale; the embedding and the output
    // matrix twice that, so logits have a standard deviation near 2 (tied or
    // not): peaked enough to be interesting, rarely near-tied. Norm gains:
    // 1 +- 0.1.
    const bool is_io = t.k == tensor_plan::embedding || t.name == "output.weight";
    const float scale =
        t.k == tensor_plan::norm ? 0.1f : (is_io ? 2.0f : 1.0f) * std::sqrt(3.0f / static_cast<float>(cols));
    const float offset = t.k == tensor_plan::norm ? 1.0f : 0.0f;
    const ggml_type_traits tr = ggml_traits(type);
    const size_t row_bytes = static_cast<size_t>(cols / tr.block_elems * tr.block_bytes);
    pool.run([&](int i, int n) {
      int64_t r0, r1;
      thread_pool::split(rows, i, n, 1, r0, r1);
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = 0; c < cols; ++c)
          row[static_cast<size_t>(c)] =
              offset + scale * synth_uniform(seed, static_cast<uint32_t>(index), static_cast<uint64_t>(r * cols + c));
        unsigned char* out = dst + static_cast<size_t>(r) * row_bytes;
        switch (type) {
          case ggml_type::f32: std::memcpy(out, row.data(), row_bytes); break;
          case ggml_type::f16:
            for (int64_t c = 0; c < cols; ++c) {
              const uint16_t h = f32_to_f16(row[static_cast<size_t>(c)]);
              std::memcpy(out + 2 * c, &h, 2);
            }
            break;
          case ggml_type::bf16:
            for (int64_t c = 0; c < cols; ++c) {
              const uint16_t h = f32_to_bf16(row[static_cast<size_t>(c)]);
              std::memcpy(out + 2 * c, &h, 2);
            }
            break;
          case ggml_type::q8_0: quantize_row_q8_0(row.data(), reinterpret_cast<q8_0_block*>(out), cols); break;
        }
      }
    });
  };
  return w.write_file(out_path, fill);
}

}  // namespace brigade
