// `linearard tokenize` end to end: shard contents equal the reference ids of every document
// joined by EOS, the output does not depend on the thread count, folders / stdin inputs work,
// and every bad input fails with one line naming the file (and line for JSONL).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/shard.h"
#include "test_env.h"

namespace {

using namespace linearard;

std::string fixtures() { return test_env::fixtures_dir() + "/tokenizer"; }

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/tok_cli_" + name;
  std::filesystem::remove_all(d);  // tokenize refuses a non-empty --out (a rerun's leftovers)
  ::mkdir(d.c_str(), 0755);
  return d;
}

void write(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }

test_env::CommandResult tokenize(const std::string& args) {
  return test_env::run_command(test_env::linearard_bin() + " tokenize --quiet " + args);
}

std::vector<int32_t> read_all(const std::string& out_dir, uint64_t* documents = nullptr) {
  std::vector<int32_t> ids;
  if (documents) *documents = 0;
  for (const auto& path : data::shard_paths(out_dir)) {
    const auto s = data::Shard::open(path);
    const size_t at = ids.size();
    ids.resize(at + s.tokens());
    s.read(0, s.tokens(), ids.data() + at);
    if (documents) *documents += s.documents();
  }
  return ids;
}

// The one error line: "linearard: error: <where>: <problem>".
void expect_error(const test_env::CommandResult& r, const std::string& where, const std::string& what) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string want = "linearard: error: " + where + ": ";
  EXPECT_NE(r.output.find(want), std::string::npos) << "expected '" << want << "' in: " << r.output;
  EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(TokenizeCli, ShardsHoldReferenceIdsForAnyThreadCount) {
  // The reference: llama3 ids of each corpus chapter (BOS from its template), EOS between.
  std::vector<int32_t> want;
  std::ifstream refs(fixtures() + "/llama3/refs.jsonl");
  std::string line;
  size_t docs = 0;
  const int32_t eos = 1;  // <|end_of_text|>: the second special token of the trained vocabulary
  while (std::getline(refs, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("kind") != "corpus") continue;
    const auto ids = j.at("ids").get<std::vector<int32_t>>();
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(eos);
    ++docs;
  }
  ASSERT_GT(docs, 100u);
  std::vector<int32_t> first;
  for (int threads : {1, 2}) {
    const std::string out = temp_dir("corpus" + std::to_string(threads));
    const auto r = tokenize("--tokenizer " + fixtures() + "/llama3 --input " + fixtures() + "/corpus.jsonl --out " + out +
                            " --threads " + std::to_string(threads) + " --shard-tokens 100000");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    uint64_t n_docs = 0;
    const auto got = read_all(out, &n_docs);
    EXPECT_EQ(n_docs, docs);
    EXPECT_EQ(got.size(), want.size());
    EXPECT_TRUE(got == want) << threads << " threads: shard ids differ from the reference";
    const auto m = data::read_manifest(out + "/manifest.json");
    EXPECT_GT(m.shards.size(), 1u);
    EXPECT_EQ(m.total_tokens, want.size());
    EXPECT_EQ(m.eos_id, eos);
  }
}

TEST(TokenizeCli, InvalidUtf8FailsOrIsReplaced) {
  const std::string bad = fixtures() + "/invalid_utf8.txt";
  const std::string out = temp_dir("utf8");
  expect_error(tokenize("--tokenizer " + fixtures() + "/llama3 --input " + bad + " --out " + out), bad,
               "invalid UTF-8 at byte 6");
  const auto r = tokenize("--tokenizer " + fixtures() + "/llama3 --input " + bad + " --out " + out + " --replace-invalid-utf8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(fixtures() + "/invalid_utf8_expected.json");
  const auto j = nlohmann::json::parse(in);
  auto want = j.at("ids").get<std::vector<int32_t>>();
  want.push_back(1);
  EXPECT_EQ(read_all(out), want) << "replacement must match Python's bytes.decode(errors='replace')";
}

TEST(TokenizeCli, FoldersAndStdin) {
  const std::string in = temp_dir("folder_in");
  ::mkdir((in + "/sub").c_str(), 0755);
  write(in + "/b.txt", "second");
  write(in + "/a.txt", "first");
  write(in + "/sub/c.jsonl", "{\"text\": \"third\"}\n\n{\"text\": \"fourth\"}\n");
  write(in + "/.hidden.txt", "never");
  write(in + "/notes.bin", "never");
  const std::string out = temp_dir("folder_out");
  auto r = tokenize("--tokenizer " + fixtures() + "/gpt2 --input " + in + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  uint64_t docs = 0;
  read_all(out, &docs);
  EXPECT_EQ(docs, 4u);

  const std::string out2 = temp_dir("stdin_out");
  r = test_env::run_command("printf 'Hello world' | " + test_env::linearard_bin() + " tokenize --quiet --tokenizer " +
                            fixtures() + "/gpt2 --input - --out " + out2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<int32_t> want;
  std::ifstream refs(fixtures() + "/gpt2/refs.jsonl");
  std::string line;
  while (std::getline(refs, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("text") == "Hello world") want = j.at("ids").get<std::vector<int32_t>>();
  }
  ASSERT_FALSE(want.empty());
  want.push_back(0);  // <|endoftext|>, the gpt2 fixture's EOS
  EXPECT_EQ(read_all(out2), want);
}

TEST(TokenizeCli, BadInputsNameTheFile) {
  const std::string d = temp_dir("bad");
  const std::string tok = " --tokenizer " + fixtures() + "/gpt2 --out " + d + "/out";
  write(d + "/empty.txt", "");
  expect_error(tokenize("--input " + d + "/empty.txt" + tok), d + "/empty.txt", "empty input");
  write(d + "/empty.jsonl", "");
  expect_error(tokenize("--input " + d + "/empty.jsonl" + tok), d + "/empty.jsonl", "empty input");
  write(d + "/notjson.jsonl", "{\"text\": \"ok\"}\n{text: oops}\n");
  expect_error(tokenize("--input " + d + "/notjson.jsonl" + tok), d + "/notjson.jsonl:2", "not a JSON object");
  write(d + "/nofield.jsonl", "{\"content\": \"ok\"}\n");
  expect_error(tokenize("--input " + d + "/nofield.jsonl" + tok), d + "/nofield.jsonl:1", "no string field 'text'");
  write(d + "/badutf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"a\xff\"}\n");
  expect_error(tokenize("--input " + d + "/badutf8.jsonl" + tok), d + "/badutf8.jsonl:2", "invalid UTF-8");
  expect_error(tokenize("--input " + d + "/missing.txt" + tok), d + "/missing.txt", "not found");

  ::mkdir((d + "/wordpiece").c_str(), 0755);
  write(d + "/wordpiece/tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  write(d + "/ok.txt", "text");
  expect_error(tokenize("--input " + d + "/ok.txt --tokenizer " + d + "/wordpiece --out " + d + "/out"),
               d + "/wordpiece/tokenizer.json", "unsupported model type 'WordPiece'");
}

}  // namespace
