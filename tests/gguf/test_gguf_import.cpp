// `linearard import` and `--model FILE.gguf` against transformers' from_pretrained(gguf_file=...)
// (references written by make_gguf_fixtures.py): every tensor bit-equal in float32, the config
// fields, tokenizer ids on 333 strings (unicode, whitespace, special tokens), and logits within
// 1e-5 relative; a v3 byte-level BPE model and a v2 SentencePiece-style one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/llama.h"
#include "test_env.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace linearard;
using json = nlohmann::json;

std::string fixture(const std::string& name) { return test_env::fixtures_dir() + "/gguf/" + name; }

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

class GgufImport : public ::testing::TestWithParam<const char*> {
 protected:
  std::string imported(const std::string& dtype) {
    const std::string out = ::testing::TempDir() + "/gguf_import_" + GetParam() + "_" + dtype;
    const auto r = test_env::run_command(test_env::linearard_bin() + " import " + fixture(std::string(GetParam()) + ".gguf") +
                                         " --out " + out + " --overwrite --dtype " + dtype + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }
  std::string ref(const std::string& file) { return fixture(std::string(GetParam()) + ".ref/" + file); }
};

TEST_P(GgufImport, TensorsBitEqualTransformers) {
  const std::string dir = imported("f32");
  const auto ours = io::SafetensorsFile::open(dir + "/model.safetensors");
  const auto theirs = io::SafetensorsFile::open(ref("model.safetensors"));
  ASSERT_EQ(ours.tensors().size(), theirs.tensors().size());
  for (const auto& [name, info] : theirs.tensors()) {
    ASSERT_TRUE(ours.has(name)) << name;
    const auto& mine = ours.info(name);
    EXPECT_EQ(mine.shape, info.shape) << name;
    ASSERT_EQ(mine.nbytes(), info.nbytes()) << name;
    EXPECT_EQ(std::memcmp(ours.data(name), theirs.data(name), info.nbytes()), 0) << name;
  }
}

TEST_P(GgufImport, ConfigMatchesTransformers) {
  const json ours = read_json(imported("bf16") + "/config.json"), theirs = read_json(ref("config.json"));
  for (const char* k : {"model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "vocab_size",
                        "tie_word_embeddings", "bos_token_id", "eos_token_id"})
    EXPECT_EQ(ours.value(k, json()), theirs.value(k, json())) << k;
  EXPECT_EQ(ours["rope_parameters"]["rope_theta"], theirs["rope_parameters"]["rope_theta"]);
  EXPECT_EQ(ours["dtype"], "bfloat16");
}

TEST_P(GgufImport, TokenizerIdsMatchTheReference) {
  const auto tok = tok::load_tokenizer(imported("bf16"));
  const json ids = read_json(ref("ids.json"));
  // The byte-level model is compared with the tokenizer it was made from (see make_gguf_fixtures.py:
  // transformers' GGUF loader ignores tokenizer.ggml.pre); the SentencePiece one with transformers.
  const json& want = ids.contains("original") ? ids["original"] : ids["transformers"];
  int bad = 0;
  for (size_t k = 0; k < ids["strings"].size(); ++k) {
    const std::string s = ids["strings"][k];
    const std::vector<int32_t> got = tok->encode(s, true);
    if (json(got) != want[k] && bad++ < 5) ADD_FAILURE() << "ids of '" << s << "': " << json(got) << " vs " << want[k];
  }
  EXPECT_EQ(bad, 0);
}

TEST_P(GgufImport, LogitsMatchTransformers) {
  const std::string dir = imported("f32");
  const auto model = model::DecoderModel::load(dir, at::kFloat, at::kCPU);
  const auto refs = io::SafetensorsFile::open(ref("logits.safetensors"));
  const auto& li = refs.info("logits");
  const int64_t T = li.shape[0], V = li.shape[1];
  at::Tensor ids = at::from_blob(const_cast<uint8_t*>(refs.data("ids")), {1, T}, at::kLong).clone();
  at::Tensor want = at::from_blob(const_cast<uint8_t*>(refs.data("logits")), {T, V}, at::kFloat).clone();
  const auto tables = model.rope_tables_for(model.config().rope, T);
  model::ForwardRequest request;
  request.rope = &tables;
  const at::Tensor got = model.forward(ids, request).logits[0].to(at::kFloat);
  const double rel = (got - want).abs().max().item<double>() / want.abs().max().item<double>();
  EXPECT_LT(rel, 1e-5);
}

TEST_P(GgufImport, GgufFileAcceptedAsModel) {
  // The build's own folder, emptied first: a cache left by an earlier run would skip the import.
  const std::string cache = test_env::fixtures_dir() + "/gguf_cache_" + GetParam();
  std::filesystem::remove_all(cache);
  const std::string cmd = "LINEARARD_CACHE=" + cache + " " + test_env::linearard_bin() + " inspect " +
                          fixture(std::string(GetParam()) + ".gguf") + " --forward-tokens 8 2>&1";
  const auto first = test_env::run_command(cmd);
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("importing"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("2 layers, hidden 256"), std::string::npos) << first.output;
  const auto again = test_env::run_command(cmd);  // the cached import is reused
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("importing"), std::string::npos) << again.output;
}

INSTANTIATE_TEST_SUITE_P(Models, GgufImport, ::testing::Values("tiny_bpe", "tiny_spm"));

}  // namespace
