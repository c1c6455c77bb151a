#include "kernels/model/model.hpp"

#include <cstdio>

namespace brigade {

namespace {

status get_weight(const gguf::gguf_file& f, const std::string& name, int64_t cols, int64_t rows, weight& out,
                  bool must_be_f32 = false) {
  const gguf::tensor_info* t = f.find_tensor(name);
  if (!t) return {errc::not_found, f.name() + ": tensor '" + name + "' is missing"};
  const int64_t want_rows = rows;
  const bool is_vector = rows == 0;
  if ((is_vector && (t->ne[0] != cols || t->n_rows() != 1)) ||
      (!is_vector && (t->ne[0] != cols || t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1)))
    return {errc::malformed, f.name() + ": tensor '" + name + "' has shape (" + std::to_string(t->ne[0]) + ", " +
                                 std::to_string(t->ne[1]) + "), expected (" + std::to_string(cols) +
                                 (is_vector ? "" : ", " + std::to_string(rows)) + ")"};
  if (must_be_f32 && t->type != ggml_type::f32)
    return {errc::unsupported,
            f.name() + ": tensor '" + name + "' must be F32, not " + ggml_type_name(static_cast<uint32_t>(t->type))};
  out.data = t->data;
  out.type = t->type;
  out.n_cols = t->ne[0];
  out.n_rows = t->n_rows();
  out.row_bytes = static_cast<size_t>(t->n_bytes / static_cast<uint64_t>(out.n_rows));
  return {};
}

}  // namespace

result<std::shared_ptr<llama_model>> llama_model::load(const std::string& path) {
  auto file = gguf::gguf_file::open(path);
  if (!file) return file.error();
  std::shared_ptr<llama_model> m(new llama_model(std::move(*file)));
  const gguf::gguf_file& f = m->file_;
  auto arch = f.get_string("general.architecture", "");
  if (!arch) return arch.error();
  if (*arch != "llama")
    return status{errc::unsupported, path + ": architecture '" + *arch + "' is not supported (brigade runs llama)"};
  if (f.tensors().empty())
    return status{errc::invalid_argument, path + ": has no tensors (a vocabulary-only file cannot generate)"};

  auto tok = tokenizer::from_gguf(f);
  if (!tok) return tok.error();
  m->tok_ = std::make_unique<tokenizer>(std::move(*tok));

  llama_hparams& hp = m->hp_;
  struct {
    const char* key;
    int32_t* out;
    bool required;
  } ints[] = {
      {"llama.context_length", &hp.n_ctx_train, true},  {"llama.embedding_length", &hp.n_embd, true},
      {"llama.block_count", &hp.n_layer, true},         {"llama.feed_forward_length", &hp.n_ff, true},
      {"llama.attention.head_count", &hp.n_head, true}, {"llama.attention.head_count_kv", &hp.n_head_kv, false}};
  for (auto& k : ints) {
    if (k.required && !f.find(k.key))
      return status{errc::not_found, path + ": required key '" + k.key + "' is missing"};
    auto v = f.get_uint(k.key, 0);
    if (!v) return v.error();
    if (*v > (1u << 24))
      return status{errc::malformed, path + ": " + k.key + " = " + std::to_string(*v) + " is absurd"};
    *k.out = static_cast<int32_t>(*v);
  }
  if (hp.n_head_kv == 0) hp.n_head_kv = hp.n_head;
  auto theta = f.get_float("llama.rope.freq_base", 10000.0);
  if (!theta) return theta.error();
  auto eps = f.get_float("llama.attention.layer_norm_rms_epsilon", 1e-5);
  if (!eps) return eps.error();
  hp.rope_theta = static_cast<float>(*theta);
  hp.rms_eps = static_cast<float>(*eps);
  hp.n_vocab = m->tok_->n_vocab();
  if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_ff <= 0 || hp.n_head <= 0 || hp.n_embd % hp.n_head != 0 ||
      hp.n_head % hp.n_head_kv != 0 || (hp.n_embd / hp.n_head) % 2 != 0 || hp.n_ctx_train <= 0)
    return status{errc::malformed, path + ": inconsistent shapes (embedding " + std::to_string(hp.n_embd) + ", heads " +
                                       std::to_string(hp.n_head) + ", kv heads " + std::to_string(hp.n_head_kv) +
                                       "); the embedding must split into heads of even size and heads into kv groups"};
  if (!(hp.rope_theta > 0) || !(hp.rms_eps > 0))
    return status{errc::malformed, path + ": rope.freq_base and layer_norm_rms_epsilon must be positive"};
  hp.head_dim = hp.n_embd / hp.n_head;
  if (auto v = f.get_uint("llama.vocab_size", static_cast<uint64_t>(hp.n_vocab));
      !v || *v != static_cast<uint64_t>(hp.n_vocab))
    return status{errc::malformed,
                  path + ": llama.vocab_size does not match the tokenizer's " + std::to_string(hp.n_vocab) + " tokens"};

  const int64_t d = hp.n_embd, kv = static_cast<int64_t>(hp.n_head_kv) * hp.head_dim;
  if (auto s = get_weight(f, "token_embd.weight", d, hp.n_vocab, m->token_embd_); !s) return s;
  if (auto s = get_weight(f, "output_norm.weight", d, 0, m->output_norm_, true); !s) return s;
  if (f.find_tensor("output.weight")) {
    if (auto s = get_weight(f, "output.weight", d, hp.n_vocab, m->output_); !s) return s;
  } else {
    m->output_ = m->token_embd_;
    m->tied_ = true;
  }
  m->layers_.resize(static_cast<size_t>(hp.n_layer));
  for (int32_t i = 0; i < hp.n_layer; ++i) {
    llama_layer& l = m->layers_[static_cast<size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    const struct {
      const char* name;
      int64_t cols, rows;
      weight* w;
      bool f32;
    } ws[] = {{"attn_norm.weight", d, 0, &l.attn_norm, true},
              {"attn_q.weight", d, d, &l.wq, false},
              {"attn_k.weight", d, kv, &l.wk, false},
              {"attn_v.weight", d, kv, &l.wv, false},
              {"attn_output.weight", d, d, &l.wo, false},
              {"ffn_norm.weight", d, 0, &l.ffn_norm, true},
              {"ffn_gate.weight", d, hp.n_ff, &l.w_gate, false},
              {"ffn_up.weight", d, hp.n_ff, &l.w_up, false},
              {"ffn_down.weight", hp.n_ff, d, &l.w_down, false}};
    for (const auto& w : ws)
      if (auto s = get_weight(f, p + w.name, w.cols, w.rows, *w.w, w.f32); !s) return s;
  }
  for (const auto& t : f.tensors()) m->n_params_ += static_cast<uint64_t>(t.n_elements());
  return m;
}

std::string llama_model::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s (llama, %s, %.1fM params, %d layers, embedding %d)", file_.name().c_str(),
                ggml_type_name(static_cast<uint32_t>(main_type())), static_cast<double>(n_params_) / 1e6, hp_.n_layer,
                hp_.n_embd);
  return buf;
}

}  // namespace brigade
