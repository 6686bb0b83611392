// load_tokenizer(): picks tokenizer.json or tokenizer.model and reads tokenizer_config.json.
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {
namespace {

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// bos_token / eos_token are either a string or an AddedToken dict {"content": ...}.
std::string token_name(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return "";
  const auto& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return "";
}

}  // namespace

void require_utf8(std::string_view text, const std::string& where) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) fail(where, "invalid UTF-8 at byte " + std::to_string(bad));
}

TokenizerConfig read_tokenizer_config(const std::string& dir) {
  TokenizerConfig c;
  const std::string path = dir + "/tokenizer_config.json";
  if (!is_file(path)) return c;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    // Depth-limited like tokenizer.json (nested values are copied recursively).
    j = nlohmann::json::parse(ss.str(), [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > 64) fail(path, "JSON nested deeper than 64 levels");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "expected a JSON object");
  for (auto [key, field] : {std::pair{"add_bos_token", &c.add_bos_token}, std::pair{"add_eos_token", &c.add_eos_token}}) {
    if (!j.contains(key) || j.at(key).is_null()) continue;
    if (!j.at(key).is_boolean()) fail(path, std::string(key) + " must be true or false");
    *field = j.at(key).get<bool>();
  }
  c.bos_token = token_name(j, "bos_token");
  c.eos_token = token_name(j, "eos_token");
  return c;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, "not a directory");
  const TokenizerConfig config = read_tokenizer_config(dir);
  if (is_file(dir + "/tokenizer.json")) return load_hf_tokenizer(dir + "/tokenizer.json", config);
  if (is_file(dir + "/tokenizer.model")) return load_sp_tokenizer(dir + "/tokenizer.model", config);
  fail(dir, "no tokenizer.json or tokenizer.model");
}

}  // namespace linearard::tok
