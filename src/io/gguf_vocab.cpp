// See gguf_vocab.h.
#include "io/gguf_vocab.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "io/gguf_llama.h"
#include "io/sentencepiece_model.h"

namespace linearard::io {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json read_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
}

bool has_type(const json& node, const std::string& type) {
  if (!node.is_object()) return false;
  if (node.value("type", "") == type) return true;
  for (const char* list : {"pretokenizers", "normalizers", "decoders"})
    if (node.contains(list) && node[list].is_array())
      for (const auto& c : node[list])
        if (has_type(c, type)) return true;
  return false;
}

// The tokenizer.ggml.pre value whose split (llama.cpp's llama-vocab.cpp) is this pre-tokenizer.
std::string pre_name(const json& pre, const std::string& path) {
  auto is_byte_level = [](const json& n, bool regex) {
    return n.is_object() && n.value("type", "") == "ByteLevel" && n.value("use_regex", true) == regex;
  };
  if (is_byte_level(pre, true)) return "gpt2";
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
    const json& p = pre["pretokenizers"];
    if (p.size() == 2 && p[0].value("type", "") == "Digits" && p[0].value("individual_digits", false) &&
        is_byte_level(p[1], true))
      return "smollm";
    if (p.size() == 2 && p[0].value("type", "") == "Split" && is_byte_level(p[1], false) && p[0].contains("pattern")) {
      const std::string rx = p[0]["pattern"].value("Regex", "");
      if (rx == kGgufLlama3Pattern) return "llama-bpe";
      if (rx == kGgufQwen2Pattern) return "qwen2";
    }
  }
  fail(path, "pre_tokenizer: this byte-level pre-tokenizer has no llama.cpp tokenizer.ggml.pre counterpart "
             "(known: ByteLevel = gpt2, Digits + ByteLevel = smollm, the Llama 3 and Qwen2 splits)");
}

// Does the post_processor's single-sequence template add `id`'s token at the start / end?
std::pair<bool, bool> added_specials(const json& tok, std::optional<int64_t> bos, std::optional<int64_t> eos) {
  const json& pp = tok.contains("post_processor") ? tok["post_processor"] : json();
  std::vector<std::string> single_specials;
  std::function<void(const json&)> scan = [&](const json& n) {
    if (!n.is_object()) return;
    if (n.value("type", "") == "TemplateProcessing" && n.contains("single")) {
      for (const auto& piece : n["single"])
        single_specials.push_back(piece.contains("SpecialToken") ? piece["SpecialToken"].value("id", "") : "");
      return;
    }
    if (n.contains("processors"))
      for (const auto& c : n["processors"]) scan(c);
  };
  scan(pp);
  if (single_specials.empty()) return {false, false};
  auto id_of = [&](const std::string& content) -> std::optional<int64_t> {
    for (const auto& a : tok.value("added_tokens", json::array()))
      if (a.value("content", "") == content) return a.value("id", int64_t{-1});
    return std::nullopt;
  };
  const auto first = id_of(single_specials.front()), last = id_of(single_specials.back());
  return {bos && first && *first == *bos && !single_specials.front().empty(),
          eos && last && *last == *eos && !single_specials.back().empty()};
}

std::optional<int64_t> id_field(const json& config, const char* key) {
  if (config.contains(key) && config[key].is_number_integer()) return config[key].get<int64_t>();
  if (config.contains(key) && config[key].is_array() && !config[key].empty() && config[key][0].is_number_integer())
    return config[key][0].get<int64_t>();  // eos_token_id lists: the first, as convert_hf_to_gguf.py's SpecialVocab
  return std::nullopt;
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

struct Vocab {
  std::string model;  // gpt2 / llama
  std::string pre;    // gpt2 only
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;  // llama only
  std::vector<std::string> merges;
  std::optional<bool> add_space_prefix;
  bool add_bos = false, add_eos = false;
};

Vocab from_tokenizer_json(const std::string& path, const json& config, int64_t vocab_size) {
  const json tok = read_json(path);
  const json& model = tok.contains("model") ? tok["model"] : json();
  const std::string type = model.is_object() ? model.value("type", "") : "";
  if (type != "BPE")
    fail(path, "model.type: '" + type + "' tokenizers cannot be written to GGUF (only BPE: byte-level, or "
                   "SentencePiece-style with byte fallback)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, "model.vocab: missing");
  Vocab v;
  const json& pre = tok.contains("pre_tokenizer") ? tok["pre_tokenizer"] : json();
  const bool byte_level = has_type(pre, "ByteLevel");
  const bool metaspace = has_type(pre, "Metaspace") || has_type(tok.value("normalizer", json()), "Prepend") ||
                         model.value("byte_fallback", false);
  if (!byte_level && !metaspace)
    fail(path, "pre_tokenizer: neither byte-level nor SentencePiece-style (Metaspace / byte fallback): no GGUF tokenizer model fits");
  v.model = byte_level ? "gpt2" : "llama";
  if (byte_level) v.pre = pre_name(pre, path);

  std::map<int64_t, std::string> by_id;
  for (const auto& [t, id] : model["vocab"].items()) by_id[id.get<int64_t>()] = t;
  std::map<int64_t, bool> added;  // id -> special
  for (const auto& a : tok.value("added_tokens", json::array())) {
    const int64_t id = a.value("id", int64_t{-1});
    by_id[id] = a.value("content", "");
    added[id] = a.value("special", false);
  }
  if (!by_id.empty() && by_id.rbegin()->first >= vocab_size)
    fail(path, "token id " + std::to_string(by_id.rbegin()->first) + " is outside the model's vocab_size " +
                   std::to_string(vocab_size));
  if (!by_id.empty() && by_id.begin()->first < 0) fail(path, "added_tokens: negative token id");

  // Merges, as "a b" strings (tokenizers writes either form).
  std::map<std::string, size_t> merge_rank;  // merged token -> first rank
  for (const auto& m : model.value("merges", json::array())) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m;
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) fail(path, "model.merges: '" + s + "' is not two tokens");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0], b = m[1];
    } else {
      fail(path, "model.merges: malformed entry " + m.dump());
    }
    merge_rank.emplace(a + b, v.merges.size());
    v.merges.push_back(a + " " + b);
  }
  const auto unk = model.contains("unk_token") && model["unk_token"].is_string() ? std::optional<std::string>(model["unk_token"])
                                                                                 : std::nullopt;
  for (int64_t id = 0; id < vocab_size; ++id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      v.tokens.push_back("[PAD" + std::to_string(id) + "]");
      v.types.push_back(static_cast<int32_t>(GgufTokenType::kUnused));
      if (!byte_level) v.scores.push_back(-1000.0f);
      continue;
    }
    const std::string& t = it->second;
    GgufTokenType ty = GgufTokenType::kNormal;
    if (auto a = added.find(id); a != added.end()) ty = a->second ? GgufTokenType::kControl : GgufTokenType::kUserDefined;
    else if (!byte_level && unk && t == *unk) ty = GgufTokenType::kUnknown;
    else if (!byte_level && is_byte_token(t)) ty = GgufTokenType::kByte;
    v.tokens.push_back(t);
    v.types.push_back(static_cast<int32_t>(ty));
    if (!byte_level) {
      auto r = merge_rank.find(t);
      v.scores.push_back(r == merge_rank.end() ? 0.0f : -static_cast<float>(r->second + 1));
    }
  }
  if (!byte_level) v.add_space_prefix = has_type(tok.value("normalizer", json()), "Prepend") ||
                                        (has_type(pre, "Metaspace") && tok.dump().find("\"prepend_scheme\":\"never\"") == std::string::npos);
  const auto [add_bos, add_eos] = added_specials(tok, id_field(config, "bos_token_id"), id_field(config, "eos_token_id"));
  v.add_bos = add_bos, v.add_eos = add_eos;
  return v;
}

Vocab from_sentencepiece(const std::string& path, int64_t vocab_size) {
  const std::string bytes = read_file(path);
  const SentencePieceModel sp = parse_sentencepiece_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
  if (static_cast<int64_t>(sp.pieces.size()) > vocab_size)
    fail(path, std::to_string(sp.pieces.size()) + " pieces for a vocab_size of " + std::to_string(vocab_size));
  Vocab v;
  v.model = "llama";
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (id >= static_cast<int64_t>(sp.pieces.size())) {
      v.tokens.push_back("[PAD" + std::to_string(id) + "]");
      v.scores.push_back(-1000.0f);
      v.types.push_back(static_cast<int32_t>(GgufTokenType::kUnused));
      continue;
    }
    const auto& p = sp.pieces[id];
    v.tokens.push_back(p.piece);
    v.scores.push_back(p.score);
    // sentencepiece_model.proto Type: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE
    // (the same numbers as GGUF's token types).
    v.types.push_back(p.type);
  }
  v.add_space_prefix = sp.add_dummy_prefix;
  v.add_bos = true;  // SentencePiece llama tokenizers (LlamaTokenizer's add_bos_token default)
  return v;
}

}  // namespace

void add_gguf_vocab(GgufWriter& w, const std::string& dir, const json& config) {
  const int64_t vocab_size = config.value("vocab_size", int64_t{0});
  if (vocab_size <= 0) fail(dir + "/config.json", "vocab_size: missing");
  Vocab v;
  if (fs::exists(dir + "/tokenizer.json")) v = from_tokenizer_json(dir + "/tokenizer.json", config, vocab_size);
  else if (fs::exists(dir + "/tokenizer.model")) v = from_sentencepiece(dir + "/tokenizer.model", vocab_size);
  else fail(dir, "no tokenizer.json or tokenizer.model: a GGUF file needs the tokenizer");
  w.add_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w.add_f32_array("tokenizer.ggml.scores", v.scores);
  w.add_i32_array("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) w.add_string_array("tokenizer.ggml.merges", v.merges);
  for (const auto& [hf, key] : std::vector<std::pair<const char*, const char*>>{
           {"bos_token_id", "tokenizer.ggml.bos_token_id"}, {"eos_token_id", "tokenizer.ggml.eos_token_id"},
           {"unk_token_id", "tokenizer.ggml.unknown_token_id"}, {"pad_token_id", "tokenizer.ggml.padding_token_id"}}) {
    if (auto id = id_field(config, hf); id && *id >= 0 && *id < vocab_size) w.add_u32(key, static_cast<uint32_t>(*id));
  }
  w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.add_space_prefix) w.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
  if (fs::exists(dir + "/tokenizer_config.json")) {
    const json tc = read_json(dir + "/tokenizer_config.json");
    if (tc.contains("chat_template") && tc["chat_template"].is_string())
      w.add_string("tokenizer.chat_template", tc["chat_template"].get<std::string>());
  }
}

}  // namespace linearard::io
