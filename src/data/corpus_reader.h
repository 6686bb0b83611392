// Reads raw text documents from the inputs of `linearard tokenize`: .jsonl files (one JSON object
// per line, the document in a named string field), any other file as one plain-text document,
// folders (recursively, in sorted path order for determinism) and "-" for stdin (plain text).
// Built into linearard_tokenizer (it needs the UTF-8 checks). Errors name the file, and the line
// for JSONL.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace linearard::data {

struct CorpusOptions {
  std::string jsonl_field = "text";
  bool replace_invalid_utf8 = false;  // U+FFFD for ill-formed bytes instead of an error
};

struct Document {
  std::string text;    // valid UTF-8
  std::string source;  // "path" or "path:line"
};

class CorpusReader {
 public:
  CorpusReader(const std::vector<std::string>& inputs, CorpusOptions options);
  ~CorpusReader();
  // The next non-empty document; false after the last one.
  bool next(Document& doc);
  uint64_t bytes_read() const { return bytes_read_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  bool open_next_file();
  std::string checked_utf8(std::string s, const std::string& where);

  CorpusOptions options_;
  std::vector<std::string> files_;  // expanded inputs
  size_t next_file_ = 0;
  std::unique_ptr<std::ifstream> jsonl_;  // the open JSONL file
  std::string jsonl_path_;
  uint64_t line_ = 0, jsonl_docs_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace linearard::data
