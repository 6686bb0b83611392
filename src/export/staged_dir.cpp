#include "export/staged_dir.h"

#include <unistd.h>

#include "common/error.h"
#include "common/option_error.h"
#include "io/atomic_file.h"

namespace linearard::exporter {
namespace {

namespace fs = std::filesystem;

fs::path normalized(const std::string& p) { return fs::path(io::normalized_path(p)); }

bool within(const fs::path& inner, const fs::path& outer) { return io::path_within(inner.string(), outer.string()); }

}  // namespace

StagedDir::StagedDir(const std::string& out_dir, const std::string& base_model_dir,
                     const std::vector<std::string>& protected_dirs, bool overwrite) {
  if (out_dir.empty()) fail_option("out", "no output directory given");
  out_ = normalized(out_dir);
  const fs::path base = normalized(base_model_dir);
  if (within(out_, base))
    fail_option_value("out", out_dir, "is the base model directory or inside it (" + base.string() + "); refusing to write there");
  if (within(base, out_))
    fail_option_value("out", out_dir, "contains the base model directory " + base.string() + "; refusing to replace it");
  for (const auto& p : protected_dirs) {
    if (p.empty()) continue;
    if (within(normalized(p), out_))
      fail_option_value("out", out_dir, "contains " + normalized(p).string() + ", an input of this export; refusing to replace it");
    if (within(out_, normalized(p)))
      fail_option_value("out", out_dir, "lies inside " + normalized(p).string() + ", an input of this export; refusing to write there");
  }
  if (fs::exists(out_)) {
    if (!fs::is_directory(out_)) fail_option_value("out", out_dir, "exists and is not a directory");
    if (!fs::is_empty(out_) && !overwrite) fail_option_value("out", out_dir, "directory is not empty (pass --overwrite to replace it)");
  }
  if (out_.filename().empty() || out_ == out_.root_path()) fail_option_value("out", out_dir, "not a usable output directory");
  std::error_code ec;
  fs::create_directories(out_.parent_path(), ec);
  if (ec) fail_option_value("out", out_dir, "cannot create parent directory: " + ec.message());
  const std::string suffix = "." + std::to_string(::getpid());
  temp_ = out_.parent_path() / ("." + out_.filename().string() + ".tmp" + suffix);
  old_ = out_.parent_path() / ("." + out_.filename().string() + ".old" + suffix);
  fs::remove_all(temp_, ec);
  if (!fs::create_directory(temp_, ec) || ec)
    fail_option_value("out", out_dir, "cannot create temporary directory " + temp_.string() + ": " + ec.message());
}

StagedDir::~StagedDir() {
  std::error_code ec;
  if (!committed_) fs::remove_all(temp_, ec);
}

void StagedDir::commit() {
  std::error_code ec;
  const bool replace = fs::exists(out_);
  if (replace) {
    fs::rename(out_, old_, ec);
    if (ec) fail(out_.string(), "cannot move the old directory aside: " + ec.message());
  }
  fs::rename(temp_, out_, ec);
  if (ec) {
    if (replace) fs::rename(old_, out_);
    fail(out_.string(), "cannot rename " + temp_.string() + " into place: " + ec.message());
  }
  committed_ = true;
  if (replace) fs::remove_all(old_, ec);
}

}  // namespace linearard::exporter
