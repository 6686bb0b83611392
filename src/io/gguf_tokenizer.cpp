// GGUF vocabulary -> tokenizer.json (see gguf_tokenizer.h).
#include "io/gguf_tokenizer.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "common/error.h"
#include "io/gguf_llama.h"

namespace linearard::io {
namespace {

using json = nlohmann::json;

constexpr int64_t kTokenTypeControl = static_cast<int64_t>(GgufTokenType::kControl);
const char* const kLlama3Pattern = kGgufLlama3Pattern;
const char* const kQwen2Pattern = kGgufQwen2Pattern;

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<double> scores;  // empty when absent
  std::vector<int64_t> types;  // empty when absent
  std::vector<std::string> merges;
  bool has_merges = false;
};

class Keys {
 public:
  Keys(const GgufFile& f) : f_(f) {}
  const GgufValue* get(const std::string& key) const { return f_.find(key); }
  std::string where(const std::string& key) const { return f_.path() + ": " + key; }
  const GgufValue& array(const std::string& key, GgufValueType elem) const {
    const GgufValue* v = get(key);
    if (!v) fail(f_.path(), key + ": missing (needed for the tokenizer)");
    if (v->type != GgufValueType::ARRAY) fail(f_.path(), key + ": expected an array");
    if (elem == GgufValueType::STRING && v->elem_type != elem)
      fail(f_.path(), key + std::string(": expected an array of strings, found ") + gguf_value_type_name(v->elem_type));
    return *v;
  }
  std::optional<int64_t> token_id(const std::string& key, size_t vocab_size) const {
    const GgufValue* v = get(key);
    if (!v) return std::nullopt;
    const int64_t id = v->as_int(where(key));
    if (id < 0 || static_cast<size_t>(id) >= vocab_size)
      fail(f_.path(), key + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                          std::to_string(vocab_size));
    return id;
  }
  std::optional<bool> flag(const std::string& key) const {
    const GgufValue* v = get(key);
    if (!v) return std::nullopt;
    return v->as_bool(where(key));
  }
  const std::string& path() const { return f_.path(); }

 private:
  const GgufFile& f_;
};

Vocab read_vocab(const Keys& k) {
  Vocab v;
  for (const auto& t : k.array("tokenizer.ggml.tokens", GgufValueType::STRING).array) v.tokens.push_back(t.s);
  if (v.tokens.empty()) fail(k.path(), "tokenizer.ggml.tokens: empty vocabulary");
  if (k.get("tokenizer.ggml.scores")) {
    for (const auto& s : k.array("tokenizer.ggml.scores", GgufValueType::FLOAT32).array)
      v.scores.push_back(s.as_double(k.where("tokenizer.ggml.scores")));
    if (v.scores.size() != v.tokens.size())
      fail(k.path(), "tokenizer.ggml.scores: " + std::to_string(v.scores.size()) + " scores for " +
                         std::to_string(v.tokens.size()) + " tokens");
  }
  if (k.get("tokenizer.ggml.token_type")) {
    for (const auto& t : k.array("tokenizer.ggml.token_type", GgufValueType::INT32).array)
      v.types.push_back(t.as_int(k.where("tokenizer.ggml.token_type")));
    if (v.types.size() != v.tokens.size())
      fail(k.path(), "tokenizer.ggml.token_type: " + std::to_string(v.types.size()) + " types for " +
                         std::to_string(v.tokens.size()) + " tokens");
  }
  if (k.get("tokenizer.ggml.merges")) {
    v.has_merges = true;
    for (const auto& m : k.array("tokenizer.ggml.merges", GgufValueType::STRING).array) v.merges.push_back(m.s);
  }
  return v;
}

json merge_pairs(const Vocab& v, const std::string& path) {
  json out = json::array();
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || m.find(' ', sp + 1) != std::string::npos)
      fail(path, "tokenizer.ggml.merges: entry " + std::to_string(i) + " '" + m + "' is not two tokens separated by one space");
    out.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
  }
  return out;
}

// Code point boundaries of a UTF-8 string (Python slices strings by code point).
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> b;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) b.push_back(i);
  return b;
}

// transformers GGUFTokenizerSkeleton: merges of a SentencePiece vocabulary rebuilt from the scores.
// For each token (first-seen order), every split into two vocabulary pieces, ordered by the
// pieces' scores (descending); then all of them by the merged token's score (descending), both
// sorts stable as Python's sorted(reverse=True).
json merges_from_scores(const Vocab& v) {
  std::map<std::string, double> score;  // {token: score}, a later duplicate wins
  std::vector<std::string> order;       // first-seen order of the dict
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (!score.count(v.tokens[i])) order.push_back(v.tokens[i]);
    score[v.tokens[i]] = v.scores[i];
  }
  struct Merge {
    std::string l, r;
    double s;
  };
  std::vector<Merge> merges;
  for (const std::string& tok : order) {
    std::vector<Merge> local;
    const auto starts = char_starts(tok);
    for (size_t k = 1; k < starts.size(); ++k) {
      std::string l = tok.substr(0, starts[k]), r = tok.substr(starts[k]);
      if (score.count(l) && score.count(r)) local.push_back({std::move(l), std::move(r), score[tok]});
    }
    std::stable_sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
      const double al = score[a.l], bl = score[b.l];
      if (al != bl) return al > bl;
      return score[a.r] > score[b.r];
    });
    for (auto& m : local) merges.push_back(std::move(m));
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.s > b.s; });
  json out = json::array();
  for (const auto& m : merges) out.push_back(json::array({m.l, m.r}));
  return out;
}

json added_token(int64_t id, const std::string& content) {
  return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", false}, {"special", true}};
}

json byte_level_pre(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", use_regex}};
}

json split_then_byte_level(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers", json::array({{{"type", "Split"},
                                          {"pattern", {{"Regex", pattern}}},
                                          {"behavior", "Isolated"},
                                          {"invert", false}},
                                         byte_level_pre(false)})}};
}

// tokenizer.ggml.pre -> the pre-tokenizer (llama-vocab.cpp's groups of pre types).
json byte_level_pre_tokenizer(const Keys& k) {
  const GgufValue* v = k.get("tokenizer.ggml.pre");
  const std::string pre = v ? v->as_string(k.where("tokenizer.ggml.pre")) : "default";
  static const std::set<std::string> gpt2_like = {"default", "gpt2", "gpt-2", "phi-2", "jina-es", "jina-de",
                                                  "jina-v2-es", "jina-v2-de", "olmo", "jais"};
  static const std::set<std::string> digits_first = {"smollm", "starcoder", "refact", "command-r"};
  static const std::set<std::string> llama3 = {"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe"};
  if (gpt2_like.count(pre)) return byte_level_pre(true);
  if (digits_first.count(pre))
    return {{"type", "Sequence"},
            {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level_pre(true)})}};
  if (llama3.count(pre)) return split_then_byte_level(kLlama3Pattern);
  if (pre == "qwen2") return split_then_byte_level(kQwen2Pattern);
  fail(k.path(), "tokenizer.ggml.pre: pre-tokenizer '" + pre +
                     "' is not supported (supported: default, gpt2, smollm, starcoder, refact, command-r, llama-bpe, "
                     "llama3, dbrx, smaug-bpe, qwen2, olmo, phi-2, jais)");
}

json no_special_template() {
  // What transformers 5.17 saves for GGUF tokenizers: no BOS/EOS added (add_bos_token is not read).
  return {{"type", "TemplateProcessing"},
          {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
          {"pair", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
          {"special_tokens", json::object()}};
}

json replace(const std::string& from, const std::string& to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

}  // namespace

GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& file, const std::string& model_type) {
  const Keys k(file);
  const GgufValue* model_key = k.get("tokenizer.ggml.model");
  if (!model_key) fail(file.path(), "tokenizer.ggml.model: missing (the file has no tokenizer)");
  const std::string kind = model_key->as_string(k.where("tokenizer.ggml.model"));
  if (kind != "gpt2" && kind != "llama")
    fail(file.path(), "tokenizer.ggml.model: tokenizer '" + kind + "' is not supported (supported: gpt2, llama)");
  const Vocab v = read_vocab(k);
  const auto bos = k.token_id("tokenizer.ggml.bos_token_id", v.tokens.size());
  const auto eos = k.token_id("tokenizer.ggml.eos_token_id", v.tokens.size());
  const auto unk = k.token_id("tokenizer.ggml.unknown_token_id", v.tokens.size());
  const auto pad = k.token_id("tokenizer.ggml.padding_token_id", v.tokens.size());
  const bool qwen2 = model_type == "qwen2";

  json vocab = json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab[v.tokens[i]] = static_cast<int64_t>(i);

  // Special tokens: the CONTROL tokens; GGUFLlamaConverter's unk and bos tokens become special too
  // (TokenizersBackend registers them); GGUFQwen2Converter adds its three chat tokens.
  std::map<int64_t, std::string> special;
  for (size_t i = 0; i < v.types.size(); ++i)
    if (v.types[i] == kTokenTypeControl) special[static_cast<int64_t>(i)] = v.tokens[i];
  if (!qwen2) {
    if (unk) special[*unk] = v.tokens[*unk];
    if (bos) special[*bos] = v.tokens[*bos];
  } else {
    for (const char* t : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
      if (vocab.contains(t)) special[vocab[t].get<int64_t>()] = t;
  }
  json added = json::array();
  for (const auto& [id, content] : special) added.push_back(added_token(id, content));

  json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  json model = {{"type", "BPE"},          {"dropout", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"ignore_merges", false}, {"vocab", vocab}};
  const bool add_prefix_space = k.flag("tokenizer.ggml.add_space_prefix").value_or(true);
  if (qwen2) {
    if (kind != "gpt2") fail(file.path(), "tokenizer.ggml.model: qwen2 models need a gpt2 (byte-level BPE) tokenizer");
    if (!v.has_merges) fail(file.path(), "tokenizer.ggml.merges: missing (needed for a gpt2 tokenizer)");
    model["unk_token"] = nullptr;
    model["fuse_unk"] = false;
    model["byte_fallback"] = false;
    model["merges"] = merge_pairs(v, file.path());
    tok["normalizer"] = {{"type", "NFC"}};
    tok["pre_tokenizer"] = split_then_byte_level(kQwen2Pattern);
    tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  } else {
    model["unk_token"] = unk ? json(v.tokens[*unk]) : json(nullptr);
    model["fuse_unk"] = true;
    model["byte_fallback"] = true;
    json decoders = json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}, replace("\u2581", " ")});
    if (kind == "gpt2") {
      // GGUFLlamaConverter's "llama 3" branch: byte-level BPE, an empty normalizer.
      if (!v.has_merges) fail(file.path(), "tokenizer.ggml.merges: missing (needed for a gpt2 tokenizer)");
      model["merges"] = merge_pairs(v, file.path());
      tok["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
      tok["pre_tokenizer"] = byte_level_pre_tokenizer(k);
      decoders.push_back({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}});
    } else {
      // SentencePiece-style: legacy LlamaConverter normalizer, merges rebuilt from the scores.
      if (v.scores.empty()) fail(file.path(), "tokenizer.ggml.scores: missing (needed for a llama tokenizer)");
      model["merges"] = v.has_merges ? merge_pairs(v, file.path()) : merges_from_scores(v);
      json norm = json::array();
      if (add_prefix_space) norm.push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
      norm.push_back(replace(" ", "\u2581"));
      tok["normalizer"] = {{"type", "Sequence"}, {"normalizers", norm}};
      tok["pre_tokenizer"] = nullptr;
    }
    if (add_prefix_space)  // GGUFLlamaConverter.decoder, for both kinds
      decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    tok["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  }
  tok["post_processor"] = no_special_template();
  tok["model"] = model;

  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"clean_up_tokenization_spaces", false},
              {"add_bos_token", false}, {"add_eos_token", false}};
  if (bos) cfg["bos_token"] = v.tokens[*bos];
  if (eos) cfg["eos_token"] = v.tokens[*eos];
  if (unk) cfg["unk_token"] = v.tokens[*unk];
  if (pad) cfg["pad_token"] = v.tokens[*pad];
  if (const GgufValue* t = k.get("tokenizer.chat_template")) cfg["chat_template"] = t->as_string(k.where("tokenizer.chat_template"));
  return {tok, cfg};
}

}  // namespace linearard::io
