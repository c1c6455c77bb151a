#include "kernels/model/pretokenizer.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "kernels/model/split_regex.hpp"
#include "kernels/model/unicode.hpp"

namespace brigade {

namespace {

// The expressions of each llama.cpp pre-tokenizer type, in llama.cpp's order
// and its rewritten forms, copied from llama.cpp's src/llama-vocab.cpp
// (llm_tokenizer_bpe; MIT licence, Copyright (c) 2023-2024 The ggml authors).
// They are data of each tokenizer's definition: the family is the first of
// llama.cpp's LLAMA_VOCAB_PRE_TYPE_* cases that share them.
struct family_spec {
  const char* family;
  bool byte_encode;
  std::vector<const char*> exprs;
};

// clang-format off
const std::vector<family_spec>& families() {
  static const std::vector<family_spec> table = {
    {"llama3", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"jais2", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}",
    }},
    {"dbrx", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},  // also llama.cpp's smaug
    {"deepseek_llm", true, {
        "[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}+",
    }},
    {"deepseek3_llm", true, {
        "\\p{N}{1,3}",
        "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    }},  // also llama.cpp's hunyuan_dense, joyai_llm
    {"youtu", true, {
        "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"deepseek_coder", true, {
        "[\r\n]",
        "\\s?\\p{L}+",
        "\\s?\\p{P}+",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}",
    }},
    {"falcon", true, {
        "[\\p{P}\\$\\+<=>\\^~\\|`]+",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
        "[0-9][0-9][0-9]",
    }},
    {"starcoder", true, {
        "\\p{N}",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    }},  // also llama.cpp's refact, command_r, smollm, codeshell, exaone, minerva, mellum2
    {"gpt2", true, {
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    }},  // also llama.cpp's mpt, olmo, jais, trillion, granite_docling
    {"stablelm2", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},  // also llama.cpp's qwen2, hunyuan, solar_open
    {"qwen35", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"poro", true, {
        " ?[^(\\s|.,!?…。，、।۔،)]+",
    }},  // also llama.cpp's bloom, gpt3_finnish
    {"chatglm4", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"viking", true, {
        " ?[^(\\s|.,!?…。，、।۔،)]+",
        "\\p{N}",
    }},
    {"tekken", true, {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"chameleon", true, {
        "<sentinel:[0-9]+>",
        "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
        "([\\t\\n]|    |  )",
        "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    }},
    {"gpt4o", true, {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},  // also llama.cpp's minimax_m2
    {"granite_emb_multi", true, {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"tiny_aya", true, {
        "\\d{1,3}(?=(?:\\d{3})*\\b)",
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"kimi_k2", true, {
        "\\p{Han}+",
    }},
    {"superbpe", true, {
        "\\p{N}+",
        "(?=(\\d{3})+(?!\\d))",
    }},
    {"bailingmoe", true, {
        "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    }},
    {"seed_coder", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"grok_2", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"afmoe", true, {
        "\\p{AFMoE_digits}",
        "[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"laguna", true, {
        "[^\\n]+|[\\n]+",
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"exaone_moe", true, {
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    }},
    {"gemma4", false, {
        "[^\\n]+|[\\n]+",
    }},
    {"sarvam_moe", false, {
        "[^\\n]+|[\\n]+",
    }},
    {"minicpm5", true, {
        "\\p{N}{1,3}",
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"whitespace", false, {
        "\\S+",
    }},
    {"default", true, {
        "[\\p{P}\\$\\+<=>\\^~\\|]+",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
        "\\p{N}+",
        "[0-9][0-9][0-9]",
    }},
  };
  return table;
}
// clang-format on

constexpr const char* kEmbedding =
    "it belongs to an embedding (encoder) model, whose separator tokens and attributes brigade does not add; "
    "brigade serves chat models";
constexpr const char* kCustomDigits =
    "llama.cpp groups its digits with a hand-written splitter rather than its expression, which brigade does not "
    "implement";

struct name_spec {
  const char* name;
  const char* family;
  bool ignore_merges = false;
  bool add_bos = false;
  bool escape_whitespaces = false;
  bool no_bos = false;
  const char* refusal = nullptr;
};

// Every tokenizer.ggml.pre name of the bundled llama.cpp (llama_vocab::impl::load),
// with what the name sets besides its expressions.
const std::vector<name_spec>& names() {
  static const std::vector<name_spec> table = {
  // name, family, ignore_merges, default add_bos, escape whitespaces, no BOS, refusal
  {"default", "default"},
  {"minicpm5", "minicpm5", true},
  {"llama3", "llama3", true, true},
  {"llama-v3", "llama3", true, true},
  {"llama-bpe", "llama3", true, true},
  {"falcon3", "llama3", true, true},
  {"falcon-h1", "llama3", true, true},
  {"pixtral", "llama3", true, true},
  {"midm-2.0", "llama3", true, true},
  {"lfm2", "llama3", true, true},
  {"jina-v5-nano", "llama3", true, true},
  {"deepseek-llm", "deepseek_llm"},
  {"deepseek-coder", "deepseek_coder"},
  {"deepseek-v3", "deepseek3_llm"},
  {"youtu", "youtu", true},
  {"falcon", "falcon"},
  {"mpt", "gpt2"},
  {"starcoder", "starcoder"},
  {"gpt-2", "gpt2"},
  {"phi-2", "gpt2"},
  {"jina-es", "gpt2"},
  {"jina-de", "gpt2"},
  {"gigachat", "gpt2"},
  {"jina-v2-es", "gpt2", false, false, false, false, kEmbedding},
  {"jina-v2-de", "gpt2", false, false, false, false, kEmbedding},
  {"a.x-4.0", "gpt2"},
  {"mellum", "gpt2"},
  {"modern-bert", "gpt2", false, false, false, false, kEmbedding},
  {"jais-2", "jais2"},
  {"gemma4", "gemma4", false, true, true},
  {"granite-embed-multi-311m", "gemma4", false, true, true, false, kEmbedding},
  {"sarvam-moe", "sarvam_moe", false, false, true},
  {"jina-v1-en", "gpt2", false, false, false, false, kEmbedding},
  {"jina-v2-code", "gpt2", false, false, false, false, kEmbedding},
  {"roberta-bpe", "gpt2", false, false, false, false, kEmbedding},
  {"whitespace", "whitespace", false, false, false, false,
   "its words are split at whitespace only and tokenized by a separate whitespace tokenizer in llama.cpp "
   "(jina-embeddings-v2-base-zh, an embedding model), which brigade does not implement"},
  {"refact", "starcoder"},
  {"command-r", "starcoder"},
  {"qwen2", "stablelm2"},
  {"deepseek-r1-qwen", "stablelm2"},
  {"kormo", "stablelm2"},
  {"f2llmv2", "stablelm2"},
  {"qwen35", "qwen35"},
  {"stablelm2", "stablelm2"},
  {"olmo", "gpt2"},
  {"dbrx", "dbrx"},
  {"smaug-bpe", "dbrx"},
  {"poro-chat", "poro"},
  {"glm4", "chatglm4", false, false, false, true},
  {"chatglm-bpe", "chatglm4", false, false, false, true},
  {"viking", "viking"},
  {"jais", "gpt2"},
  {"tekken", "tekken", true, true},
  {"smollm", "starcoder"},
  {"codeshell", "starcoder"},
  {"bloom", "poro"},
  {"gpt3-finnish", "poro"},
  {"exaone", "starcoder"},
  {"exaone4", "gpt2"},
  {"exaone-moe", "exaone_moe"},
  {"chameleon", "chameleon", false, true},
  {"minerva-7b", "starcoder"},
  {"megrez", "stablelm2"},
  {"gpt-4o", "gpt4o"},
  {"llama4", "gpt4o"},
  {"kanana2", "gpt4o"},
  {"talkie", "gpt4o"},
  {"granite-embed-multi-97m", "granite_emb_multi", true, false, false, false, kEmbedding},
  {"tiny_aya", "tiny_aya", false, false, false, false, kCustomDigits},
  {"cohere2moe", "tiny_aya", false, false, false, false, kCustomDigits},
  {"superbpe", "superbpe"},
  {"trillion", "gpt2"},
  {"granite-docling", "gpt2"},
  {"bailingmoe", "bailingmoe"},
  {"bailingmoe2", "bailingmoe"},
  {"llada-moe", "bailingmoe"},
  {"seed-coder", "seed_coder"},
  {"hunyuan", "stablelm2"},
  {"hunyuan-dense", "deepseek3_llm"},
  {"joyai-llm", "deepseek3_llm"},
  {"kimi-k2", "kimi_k2", false, false, false, false,
   "llama.cpp splits it with a hand-written Han-script splitter and reads no merges for it (a tiktoken-style "
   "vocabulary), neither of which brigade implements"},
  {"grok-2", "grok_2"},
  {"afmoe", "afmoe", false, false, false, false, kCustomDigits},
  {"laguna", "laguna"},
  {"minimax-m2", "gpt4o"},
  {"solar-open", "stablelm2"},
  {"mellum2", "starcoder"},
  };
  return table;
}

const family_spec* find_family(std::string_view f) {
  for (const auto& s : families())
    if (f == s.family) return &s;
  return nullptr;
}

// Compiled expressions, shared by every tokenizer of the process.
result<std::vector<std::shared_ptr<const unicode::split_regex>>> compiled(const family_spec& f) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::vector<std::shared_ptr<const unicode::split_regex>>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(f.family);
  if (it != cache.end()) return it->second;
  std::vector<std::shared_ptr<const unicode::split_regex>> out;
  for (const char* e : f.exprs) {
    auto re = unicode::split_regex::compile(e);
    if (!re) return re.error();
    out.push_back(std::make_shared<const unicode::split_regex>(std::move(*re)));
  }
  cache.emplace(f.family, out);
  return out;
}

}  // namespace

result<pretokenizer> pretokenizer::make(std::string_view name) {
  const auto& table = names();
  auto it = std::find_if(table.begin(), table.end(), [&](const name_spec& s) { return name == s.name; });
  if (it == table.end())
    return status{errc::unsupported, "pre-tokenizer '" + std::string(name) +
                                         "' (tokenizer.ggml.pre) is unknown to brigade and to the llama.cpp release "
                                         "it follows; docs/formats.md lists the names brigade serves"};
  if (it->refusal)
    return status{errc::unsupported, "pre-tokenizer '" + std::string(name) + "' is not supported: " + it->refusal};
  const family_spec* fam = find_family(it->family);
  if (!fam) return status{errc::unsupported, "pre-tokenizer '" + std::string(name) + "' has no expressions"};
  auto exprs = compiled(*fam);
  if (!exprs)
    return status{errc::unsupported, "pre-tokenizer '" + std::string(name) + "' is not supported: its " +
                                         exprs.error().message()};
  pretokenizer p;
  p.name_ = name;
  p.family_ = fam->family;
  p.exprs_ = std::move(*exprs);
  p.byte_encode_ = fam->byte_encode;
  p.ignore_merges_ = it->ignore_merges;
  p.default_add_bos_ = it->add_bos;
  p.escape_whitespaces_ = it->escape_whitespaces;
  p.no_bos_ = it->no_bos;
  return p;
}

std::vector<std::string> pretokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cpts = unicode::decode_utf8(text);
  std::vector<size_t> offsets{cpts.size()};
  for (const auto& re : exprs_) offsets = re->split(cpts, offsets);
  std::vector<std::string> words;
  words.reserve(offsets.size());
  size_t at = 0;
  for (size_t len : offsets) {
    std::string w;
    for (size_t i = at; i < at + len; ++i) {
      if (!byte_encode_) {
        unicode::append_utf8(w, cpts[i]);
        continue;
      }
      std::string utf8;
      unicode::append_utf8(utf8, cpts[i]);
      for (unsigned char b : utf8) w += unicode::byte_to_unicode(b);
    }
    words.push_back(std::move(w));
    at += len;
  }
  return words;
}

std::vector<pretokenizer_name> pretokenizer_names() {
  std::vector<pretokenizer_name> out;
  for (const auto& s : names()) {
    std::string refusal = s.refusal ? s.refusal : "";
    if (refusal.empty()) {
      auto p = pretokenizer::make(s.name);
      if (!p) refusal = p.error().message();
    }
    out.push_back({s.name, s.family, refusal});
  }
  return out;
}

}  // namespace brigade
