// UTF-8 handling (replacement identical to Python's bytes.decode(errors="replace"), values
// below printed by CPython 3.11) and the one-line errors of bad tokenizer directories.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using namespace linearard;

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ReplacementMatchesPython) {
  EXPECT_EQ(tok::replace_invalid_utf8("\xed\xa0\x80"), kFffd + kFffd + kFffd);  // surrogate
  EXPECT_EQ(tok::replace_invalid_utf8("\xe2\x82"), kFffd);                      // truncated
  EXPECT_EQ(tok::replace_invalid_utf8("\xf0\x80"), kFffd + kFffd);              // bad second byte
  EXPECT_EQ(tok::replace_invalid_utf8("\xc0\xaf"), kFffd + kFffd);              // overlong
  EXPECT_EQ(tok::replace_invalid_utf8("a\xf0\x9f\x98"), "a" + kFffd);
  EXPECT_EQ(tok::replace_invalid_utf8("\xf4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(tok::replace_invalid_utf8("\xe0\x80\x80z"), kFffd + kFffd + kFffd + "z");
  EXPECT_EQ(tok::replace_invalid_utf8("caf\xc3\xa9 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

TEST(Utf8, FindsFirstInvalidByte) {
  EXPECT_EQ(tok::find_invalid_utf8("plain ascii text, long enough for the 8-byte path"), std::string::npos);
  EXPECT_EQ(tok::find_invalid_utf8("0123456789abcdef\xff"), 16u);
  EXPECT_EQ(tok::find_invalid_utf8("\xc3\xa9\xc3"), 2u);
}

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/tok_unit_" + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

void write(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }

std::string error_of(const std::string& dir) {
  try {
    tok::load_tokenizer(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_one_line_naming(const std::string& msg, const std::string& file, const std::string& what) {
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(TokenizerErrors, UnsupportedModelTypesNameTheFile) {
  for (const std::string type : {"WordPiece", "Unigram", "WordLevel"}) {
    const std::string d = temp_dir(type);
    write(d + "/tokenizer.json", R"({"normalizer": null, "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": ")" + type + R"(", "vocab": {"a": 0}}})");
    expect_one_line_naming(error_of(d), d + "/tokenizer.json", "unsupported model type '" + type + "'");
  }
}

TEST(TokenizerErrors, BadFilesNameTheFile) {
  std::string d = temp_dir("badjson");
  write(d + "/tokenizer.json", "{ not json");
  expect_one_line_naming(error_of(d), d + "/tokenizer.json", "not valid JSON");

  d = temp_dir("badpre");
  write(d + "/tokenizer.json", R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_one_line_naming(error_of(d), d + "/tokenizer.json", "unsupported pre_tokenizer type 'Whitespace'");

  d = temp_dir("badmerge");
  write(d + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})");
  expect_one_line_naming(error_of(d), d + "/tokenizer.json", "missing from the vocabulary");

  d = temp_dir("empty");
  expect_one_line_naming(error_of(d), d, "no tokenizer.json or tokenizer.model");

  d = temp_dir("badsp");
  write(d + "/tokenizer.model", "not a protobuf");
  expect_one_line_naming(error_of(d), d + "/tokenizer.model", "cannot load SentencePiece model");

  d = temp_dir("badconfig");
  write(d + "/tokenizer_config.json", R"({"add_bos_token": "yes"})");
  write(d + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_one_line_naming(error_of(d), d + "/tokenizer_config.json", "add_bos_token must be true or false");
}

TEST(TokenizerErrors, InvalidUtf8TextIsRejected) {
  const std::string d = temp_dir("tiny");
  write(d + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})");
  const auto t = tok::load_tokenizer(d);
  EXPECT_EQ(t->encode("abab"), (std::vector<int32_t>{2, 2}));
  try {
    t->encode("ab\xff");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "text: invalid UTF-8 at byte 2");
  }
}

}  // namespace
