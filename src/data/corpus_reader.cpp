#include "data/corpus_reader.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/option_error.h"
#include "tokenizer/utf8.h"

namespace linearard::data {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_jsonl(const std::string& path) { return ends_with(path, ".jsonl"); }

// Files a folder contributes: text and JSONL, not hidden files.
bool wanted_in_folder(const std::string& name) {
  return name[0] != '.' && (ends_with(name, ".txt") || ends_with(name, ".jsonl") || ends_with(name, ".md"));
}

void walk(const std::string& dir, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(dir, "cannot open folder");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    const std::string path = dir + "/" + n;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (n[0] != '.') walk(path, out);
    } else if (S_ISREG(st.st_mode) && wanted_in_folder(n)) {
      out.push_back(path);
    }
  }
}

std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

CorpusReader::CorpusReader(const std::vector<std::string>& inputs, CorpusOptions options)
    : options_(std::move(options)) {
  if (inputs.empty()) fail_option("input", "no inputs given");
  for (const auto& in : inputs) {
    if (in == "-") {
      files_.push_back(in);
      continue;
    }
    struct stat st;
    if (::stat(in.c_str(), &st) != 0) fail(in, "not found");
    if (S_ISDIR(st.st_mode)) {
      const size_t before = files_.size();
      walk(in, files_);
      if (files_.size() == before) fail(in, "empty input: no .txt, .md or .jsonl files in this folder");
    } else {
      files_.push_back(in);
    }
  }
}

CorpusReader::~CorpusReader() = default;

std::string CorpusReader::checked_utf8(std::string s, const std::string& where) {
  const size_t bad = tok::find_invalid_utf8(s);
  if (bad == std::string::npos) return s;
  if (options_.replace_invalid_utf8) return tok::replace_invalid_utf8(s);
  fail(where, "invalid UTF-8 at byte " + std::to_string(bad) + " (use --replace-invalid-utf8 to replace it with U+FFFD)");
}

bool CorpusReader::next(Document& doc) {
  while (true) {
    if (jsonl_) {
      std::string line;
      while (std::getline(*jsonl_, line)) {
        ++line_;
        bytes_read_ += line.size() + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = jsonl_path_ + ":" + std::to_string(line_);
        line = checked_utf8(std::move(line), where);
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          fail(where, "not a JSON object (" + std::string(e.what()) + ")");
        }
        if (!j.is_object()) fail(where, "not a JSON object");
        auto it = j.find(options_.jsonl_field);
        if (it == j.end() || !it->is_string())
          fail(where, "no string field '" + options_.jsonl_field + "' (set --jsonl-field)");
        ++jsonl_docs_;
        doc.text = it->get<std::string>();
        doc.source = where;
        if (!doc.text.empty()) return true;
      }
      if (jsonl_->bad()) fail(jsonl_path_, "read error");
      if (line_ == 0) fail(jsonl_path_, "empty input");
      if (jsonl_docs_ == 0) fail(jsonl_path_, "empty input: only blank lines");
      jsonl_.reset();
    }
    if (!open_next_file()) return false;
    if (jsonl_) continue;
    // A plain-text file (or stdin) is one document.
    const std::string& path = files_[next_file_ - 1];
    std::string text;
    if (path == "-") {
      text = read_all(std::cin);
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) fail(path, "cannot open");
      text = read_all(in);
      if (in.bad()) fail(path, "read error");
    }
    bytes_read_ += text.size();
    if (text.empty()) fail(path == "-" ? "stdin" : path, "empty input");
    doc.text = checked_utf8(std::move(text), path == "-" ? "stdin" : path);
    doc.source = path;
    return true;
  }
}

bool CorpusReader::open_next_file() {
  if (next_file_ >= files_.size()) return false;
  const std::string& path = files_[next_file_++];
  if (path != "-" && is_jsonl(path)) {
    jsonl_ = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!*jsonl_) fail(path, "cannot open");
    jsonl_path_ = path;
    line_ = 0;
    jsonl_docs_ = 0;
  }
  return true;
}

}  // namespace linearard::data
