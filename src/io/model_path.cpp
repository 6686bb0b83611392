// GGUF inputs -> cached HF directories (see model_path.h).
#include "io/model_path.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "data/xxhash64.h"
#include "io/atomic_file.h"
#include "io/gguf_import.h"
#include "io/mapped_file.h"

namespace linearard::io {
namespace fs = std::filesystem;

namespace {

// Written last into a cache entry: its presence means the import completed.
constexpr const char* kDoneFile = "gguf_import.json";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".gguf";
}

std::string gguf_cache_root() {
  if (auto c = env("LINEARARD_CACHE"); !c.empty()) return c + "/gguf";
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/linearard/gguf";
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache/linearard/gguf";
  fail("gguf cache", "no cache folder: set LINEARARD_CACHE (or XDG_CACHE_HOME / HOME)");
}

// Bump when the import's output changes (config keys, tokenizer, tensor layout or dtype).
constexpr const char* kImportFormatVersion = "v1";

std::string resolve_model_path(const std::string& path) {
  if (path.empty() || !is_gguf_path(path) || fs::is_directory(path)) return path;
  const auto mapped = MappedFile::open(path);  // "<path>: cannot open: ..." when missing
  // The importer's version is part of the key: a fixed importer re-imports instead of serving old output.
  const std::string key = hex64(data::xxhash64(mapped->data(), mapped->size())) + "-" + std::to_string(mapped->size()) +
                          "-" + kImportFormatVersion;
  const std::string root = gguf_cache_root();
  const std::string dir = root + "/" + key;
  if (fs::exists(dir + "/" + kDoneFile)) return dir;

  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail(root, "cannot create the GGUF cache folder: " + ec.message());
  const std::string tmp = root + "/." + key + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  std::fprintf(stderr, "linearard: importing %s into %s (once; later runs reuse it)\n", path.c_str(), dir.c_str());
  try {
    import_gguf(path, tmp, ImportDType::kBF16);
    const nlohmann::json done = {{"source", normalized_path(path)}, {"xxhash64", key}, {"dtype", "bf16"}};
    write_file_atomic(tmp + "/" + kDoneFile, done.dump(2) + "\n");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  // `dir` only ever appears complete (renamed from a finished temp folder), so rename never replaces it.
  fs::rename(tmp, dir, ec);
  if (ec) {
    fs::remove_all(tmp, ec);
    // Another process published the same entry first: use it.
    if (!fs::exists(dir + "/" + kDoneFile)) fail(dir, "cannot publish the imported GGUF: " + ec.message());
  }
  return dir;
}

}  // namespace linearard::io
