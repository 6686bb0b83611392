#include "tokenizer/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include "common/error.h"

namespace linearard::tok {
namespace {

class SpTokenizer : public Tokenizer {
 public:
  SpTokenizer(const std::string& path, const TokenizerConfig& config) : path_(path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) fail(path, "cannot load SentencePiece model: " + status.ToString());
    // LLaMA / Mistral SentencePiece tokenizers (transformers LlamaTokenizer) add BOS and not EOS
    // unless tokenizer_config.json says otherwise.
    add_bos_ = config.add_bos_token.value_or(true) && sp_.bos_id() >= 0;
    add_eos_ = config.add_eos_token.value_or(false) && sp_.eos_id() >= 0;
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    require_utf8(text);
    std::vector<int> pieces;
    const auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &pieces);
    if (!status.ok()) fail(path_, "SentencePiece encode failed: " + status.ToString());
    std::vector<int32_t> ids;
    ids.reserve(pieces.size() + 2);
    if (add_special && add_bos_) ids.push_back(sp_.bos_id());
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    if (add_special && add_eos_) ids.push_back(sp_.eos_id());
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<int> kept;
    for (int32_t id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize())
        fail("ids", "token id " + std::to_string(id) + " is outside the vocabulary of " + path_);
      if (skip_special && sp_.IsControl(id)) continue;
      kept.push_back(id);
    }
    std::string out;
    const auto status = sp_.Decode(kept, &out);
    if (!status.ok()) fail(path_, "SentencePiece decode failed: " + status.ToString());
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  bool adds_eos() const override { return add_eos_; }
  std::vector<std::string> special_tokens() const override {
    std::vector<std::string> out;
    for (int i = 0; i < sp_.GetPieceSize(); ++i)
      if (sp_.IsControl(i) || sp_.IsUnknown(i)) out.push_back(sp_.IdToPiece(i));
    return out;
  }
  std::string describe() const override {
    return "SentencePiece (" + std::to_string(sp_.GetPieceSize()) + " ids) from " + path_;
  }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  bool add_bos_ = false, add_eos_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sp_tokenizer(const std::string& path, const TokenizerConfig& config) {
  return std::make_unique<SpTokenizer>(path, config);
}

}  // namespace linearard::tok
