// Every tokenizer kind against its reference (make_tokenizer_fixtures.py): ids identical to
// transformers / sentencepiece on >= 1 MB of KJV chapters and the edge-case list, decode
// identical to the reference decoder, and decode(encode(x)) == x wherever the reference is
// lossless for x.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_env.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace linearard;

std::string excerpt(const std::string& s) {
  std::string e = s.substr(0, 60);
  for (char& c : e) if (c == '\n') c = '|';
  return "\"" + e + (s.size() > 60 ? "...\"" : "\"");
}

std::string ids_near(const std::vector<int32_t>& v, size_t at) {
  std::string out;
  for (size_t i = at >= 3 ? at - 3 : 0; i < std::min(v.size(), at + 4); ++i) out += std::to_string(v[i]) + " ";
  return out;
}

class TokenizerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParity, IdsAndDecodeMatchReference) {
  const std::string dir = test_env::fixtures_dir() + "/tokenizer/" + GetParam();
  const auto tok = tok::load_tokenizer(dir);
  std::ifstream in(dir + "/refs.jsonl");
  ASSERT_TRUE(in) << dir << "/refs.jsonl missing: run the tokenizer_fixtures test first";
  size_t rows = 0, corpus_bytes = 0, id_mismatch = 0, decode_mismatch = 0, roundtrips = 0, tokens = 0;
  double encode_s = 0;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string text = j.at("text");
    const auto want = j.at("ids").get<std::vector<int32_t>>();
    ++rows;
    if (j.at("kind") == "corpus") corpus_bytes += text.size();
    const auto t0 = std::chrono::steady_clock::now();
    const auto got = tok->encode(text);
    encode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    tokens += got.size();
    if (got != want) {
      size_t at = 0;
      while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
      if (++id_mismatch <= 5)
        ADD_FAILURE() << GetParam() << ": ids differ for " << excerpt(text) << " at id #" << at << ": got [" << ids_near(got, at)
                      << "] want [" << ids_near(want, at) << "] (" << got.size() << " vs " << want.size() << " ids)";
    }
    const std::string decoded = tok->decode(want);
    if (decoded != j.at("decoded").get<std::string>() && ++decode_mismatch <= 5)
      ADD_FAILURE() << GetParam() << ": decode differs for " << excerpt(text) << ": got " << excerpt(decoded)
                    << " want " << excerpt(j.at("decoded").get<std::string>());
    if (j.at("lossless").get<bool>()) {
      ++roundtrips;
      EXPECT_EQ(tok->decode(tok->encode(text, false)), text) << GetParam() << ": round trip of " << excerpt(text);
    }
  }
  EXPECT_GE(corpus_bytes, 1000000u) << "the parity corpus must hold at least 1 MB";
  EXPECT_EQ(id_mismatch, 0u) << "of " << rows << " texts";
  EXPECT_EQ(decode_mismatch, 0u) << "of " << rows << " texts";
  std::printf("%-8s %zu texts (%.2f MB corpus), %zu tokens, %zu round trips, encode %.2f M tokens/s (1 thread)\n",
              GetParam().c_str(), rows, corpus_bytes / 1e6, tokens, roundtrips, tokens / encode_s / 1e6);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, TokenizerParity,
                         ::testing::Values("gpt2", "llama3", "qwen2", "smollm", "llama2", "mistral", "sp"),
                         [](const auto& info) { return info.param; });

}  // namespace
