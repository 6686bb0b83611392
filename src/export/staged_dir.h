// The output directory of an export: checked before anything is written, built in a temporary
// directory next to it ("<parent>/.<name>.tmp.<pid>"), then renamed into place (an old one is moved
// aside first and deleted after), so OUT never holds a half-written export.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace linearard::exporter {

class StagedDir {
 public:
  // Refuses (one line naming --out) an OUT equal to, inside or containing the base model directory
  // or one of `protected_dirs` (the export's inputs), and a non-empty OUT without `overwrite`.
  StagedDir(const std::string& out_dir, const std::string& base_model_dir,
            const std::vector<std::string>& protected_dirs, bool overwrite);
  ~StagedDir();  // removes the temporary directory unless committed
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::filesystem::path& temp() const { return temp_; }
  const std::filesystem::path& out() const { return out_; }
  void commit();

 private:
  std::filesystem::path out_, temp_, old_;
  bool committed_ = false;
};

}  // namespace linearard::exporter
