#include "tokenizer/hf_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace linearard::tok {
namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  // nlohmann copies values and the loaders recurse into Sequence entries, so nesting is limited
  // (a few hundred KB of '[' would overflow the stack); real files nest under 10 levels.
  const auto limit_depth = [&](int depth, json::parse_event_t, json&) {
    if (depth > 64) fail(path, "JSON nested deeper than 64 levels");
    return true;
  };
  try {
    return json::parse(ss.str(), limit_depth);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

// nlohmann's get<int32_t>() casts floats (undefined out of range) and wide integers unchecked.
int32_t token_id_value(const json& v, const std::string& what, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    fail(where, what + " has id " + v.dump() + ", not an integer in [0, 2^31)");
  return v.get<int32_t>();
}

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(const std::string& path, const TokenizerConfig& config) : path_(path) {
    const json j = read_json(path);
    try {
      build(j, config);
    } catch (const json::exception& e) {
      fail(path, std::string("unexpected tokenizer.json layout: ") + e.what());
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    require_utf8(text);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    std::vector<Segment> raw_segments, norm;
    std::vector<Piece> pieces;
    if (raw_matcher_) raw_matcher_->split(text, raw_segments);
    else if (!text.empty()) raw_segments.push_back({0, text.size(), -1});
    for (const Segment& seg : raw_segments) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::string s(text.substr(seg.begin, seg.end - seg.begin));
      if (normalizer_) normalizer_->normalize(s);
      norm.clear();
      if (norm_matcher_) norm_matcher_->split(s, norm);
      else if (!s.empty()) norm.push_back({0, s.size(), -1});
      for (const Segment& sub : norm) {
        if (sub.id >= 0) {
          ids.push_back(sub.id);
          continue;
        }
        pieces.clear();
        pieces.push_back({s.substr(sub.begin, sub.end - sub.begin), seg.begin == 0 && sub.begin == 0});
        if (pre_.pre) pre_.pre->split(pieces);
        for (const Piece& p : pieces) model_->encode_word(p.text, ids);
      }
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      auto added = added_by_id_.find(id);
      if (added != added_by_id_.end()) {
        if (skip_special && added->second.special) continue;
        tokens.push_back(added->second.content);
      } else if (id >= 0 && id < model_->size()) {
        tokens.push_back(model_->token(id));
      } else {
        fail("ids", "token id " + std::to_string(id) + " is outside the vocabulary of " + path_);
      }
    }
    if (!decoder_) {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  int64_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  bool adds_eos() const override { return !suffix_.empty() && suffix_.back() == eos_id_ && eos_id_ >= 0; }
  std::vector<std::string> special_tokens() const override {
    std::vector<std::string> out;
    for (const auto& t : added_) if (t.special) out.push_back(t.content);
    return out;
  }
  std::string describe() const override {
    return "tokenizer.json BPE (" + std::string(pre_.byte_level ? "byte-level" : "character/byte-fallback") +
           ", " + std::to_string(vocab_size_) + " ids) from " + path_;
  }

 private:
  int32_t token_id(const std::string& token) const {
    for (const auto& t : added_) if (t.content == token) return t.id;
    return model_->find(token);
  }

  void build(const json& j, const TokenizerConfig& config) {
    const json null;
    if (!j.contains("model")) fail(path_, "no \"model\" entry");
    const std::string model_type = j.at("model").value("type", std::string("BPE"));
    if (model_type != "BPE")
      fail(path_, "unsupported model type '" + model_type + "' (only BPE is supported in tokenizer.json)");
    normalizer_ = make_normalizer(j.value("normalizer", null), path_);
    pre_ = make_pre_tokenizer(j.value("pre_tokenizer", null), path_);
    model_ = std::make_unique<BpeModel>(j.at("model"), pre_.byte_level, path_);
    decoder_ = make_decoder(j.value("decoder", null), path_);
    vocab_size_ = model_->size();

    std::vector<AddedToken> raw, normed;
    std::vector<std::string> raw_patterns, norm_patterns;
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedToken t;
      t.content = a.at("content").get<std::string>();
      t.id = token_id_value(a.at("id"), "added token '" + t.content + "'", path_);
      t.single_word = a.value("single_word", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.normalized = a.value("normalized", !a.value("special", false));
      t.special = a.value("special", false);
      if (t.content.empty()) continue;
      added_.push_back(t);
      added_by_id_[t.id] = t;
      vocab_size_ = std::max<int64_t>(vocab_size_, int64_t{t.id} + 1);
      if (t.normalized) {
        std::string p = t.content;
        if (normalizer_) normalizer_->normalize(p);
        normed.push_back(t);
        norm_patterns.push_back(p);
      } else {
        raw.push_back(t);
        raw_patterns.push_back(t.content);
      }
    }
    if (!raw.empty()) raw_matcher_ = std::make_unique<AddedTokenMatcher>(raw, raw_patterns);
    if (!normed.empty()) norm_matcher_ = std::make_unique<AddedTokenMatcher>(normed, norm_patterns);

    bos_id_ = config.bos_token.empty() ? -1 : token_id(config.bos_token);
    eos_id_ = config.eos_token.empty() ? -1 : token_id(config.eos_token);
    const json post = j.value("post_processor", null);
    // transformers 5.17 (tokenization_utils_base.py, from_pretrained) drops add_bos_token /
    // add_eos_token from tokenizer_config.json whenever tokenizer.json exists, so the
    // post_processor alone decides; without one, the generic fast tokenizer adds nothing.
    if (!post.is_null()) parse_post_processor(post);
    (void)config.add_bos_token;
    if (bos_id_ < 0 && !prefix_.empty()) bos_id_ = prefix_.front();
  }

  void parse_post_processor(const json& p) {
    const std::string type = p.value("type", "");
    if (type == "ByteLevel") return;  // only adjusts offsets
    if (type == "Sequence") {
      for (const auto& q : p.at("processors")) parse_post_processor(q);
      return;
    }
    if (type != "TemplateProcessing")
      fail(path_, "unsupported post_processor type '" + type + "' (supported: TemplateProcessing, ByteLevel, Sequence)");
    const json& specials = p.at("special_tokens");
    bool seen_sequence = false;
    for (const auto& item : p.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string id = item.at("SpecialToken").at("id").get<std::string>();
        if (!specials.contains(id)) fail(path_, "post_processor uses special token '" + id + "' it does not define");
        for (const auto& v : specials.at(id).at("ids"))
          (seen_sequence ? suffix_ : prefix_).push_back(token_id_value(v, "post_processor token '" + id + "'", path_));
      }
    }
  }

  std::string path_;
  std::unique_ptr<Normalizer> normalizer_;
  PreTokenizerChain pre_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, AddedToken> added_by_id_;
  std::unique_ptr<AddedTokenMatcher> raw_matcher_, norm_matcher_;
  std::vector<int32_t> prefix_, suffix_;  // post-processor ids around the text's ids
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path, const TokenizerConfig& config) {
  return std::make_unique<HfTokenizer>(path, config);
}

}  // namespace linearard::tok
