#include "export/export_student.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>

#include "common/error.h"
#include "common/option_error.h"
#include "export/adapter_weights.h"
#include "export/merged_hf.h"
#include "export/peft_adapter.h"
#include "export/staged_dir.h"

namespace linearard::exporter {

namespace fs = std::filesystem;

ExportFormat parse_export_format(const std::string& text, const std::string& flag) {
  if (text == "peft") return ExportFormat::kPeft;
  if (text == "merged") return ExportFormat::kMerged;
  if (text == "both") return ExportFormat::kBoth;
  fail(flag, "unknown format '" + text + "' (expected peft, merged or both)");
}

uint64_t parse_size_bytes(const std::string& text, const std::string& flag) {
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    fail(flag, "'" + text + "' is not a size such as 5GB, 500MB or 123456");
  }
  std::string unit = text.substr(end);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char ch) { return std::toupper(ch); });
  static const std::map<std::string, double> kUnits = {
      {"", 1},       {"B", 1},          {"KB", 1e3},          {"MB", 1e6},          {"GB", 1e9},
      {"TB", 1e12},  {"KIB", 1024.0},   {"MIB", 1048576.0},   {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end() || !(value > 0) || !std::isfinite(value))
    fail(flag, "'" + text + "' is not a size such as 5GB, 500MB or 123456");
  return static_cast<uint64_t>(value * it->second);
}

void export_student(const ExportRequest& r, const train::TrainedAdapter& adapter, const model::RopeParams& rope) {
  const model::ModelConfig base = model::load_model_config(r.base_model_dir);
  model::validate_rope(rope, base, "student RoPE");
  validate_adapter(adapter, base, "adapter");
  if (r.format != ExportFormat::kMerged && !adapter.spec.is_lora())
    fail_option("format", "only LoRA adapters can be exported as PEFT adapters (this one is '" + adapter.spec.json_kind() +
                         "'); use --format merged");
  StagedDir staged(r.out_dir, r.base_model_dir, r.protected_dirs, r.overwrite);
  switch (r.format) {
    case ExportFormat::kPeft:
      write_peft_files(staged.temp(), r.base_model_dir, adapter, base, rope);
      break;
    case ExportFormat::kMerged:
      write_merged_files(staged.temp(), r.base_model_dir, r.max_shard_bytes, adapter, base, rope);
      break;
    case ExportFormat::kBoth:
      fs::create_directory(staged.temp() / "peft");
      fs::create_directory(staged.temp() / "merged");
      write_peft_files(staged.temp() / "peft", r.base_model_dir, adapter, base, rope);
      write_merged_files(staged.temp() / "merged", r.base_model_dir, r.max_shard_bytes, adapter, base, rope);
      break;
  }
  staged.commit();
}

void write_peft_adapter(const ExportRequest& request, const train::TrainedAdapter& adapter,
                        const model::RopeParams& student_rope) {
  ExportRequest r = request;
  r.format = ExportFormat::kPeft;
  export_student(r, adapter, student_rope);
}

void write_merged_checkpoint(const ExportRequest& request, const train::TrainedAdapter& adapter,
                             const model::RopeParams& student_rope) {
  ExportRequest r = request;
  r.format = ExportFormat::kMerged;
  export_student(r, adapter, student_rope);
}

}  // namespace linearard::exporter
