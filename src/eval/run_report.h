// The restoration report as one library call: what `linearard report` does after parsing its
// flags. Three ways in: evaluate the teacher, the scaled and the restored model (teacher, scaled,
// restored); redraw report.md and the charts from a report.json (from_json); or build the report
// from three run_eval results (from_results). Options are named like the flags without the dashes;
// a bad value is an OptionError naming the option (common/option_error.h).
#pragma once
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/eval_options.h"

namespace linearard::eval {

struct ReportOptions {
  std::string teacher;   // the original model (native RoPE)
  std::string scaled;    // a checkpoint of its own, or a RoPE scaling (inline JSON or a file) on the teacher's weights
  std::string restored;  // the restored model
  std::string out;       // report.json, report.md, the charts, results_<role>.json
  std::string from_json;                  // redraw from this report.json
  std::vector<std::string> from_results;  // teacher, scaled, restored: run_eval's JSON files
  int64_t native_context = 0;             // short/long boundary (0: the teacher's max_position_embeddings)
  bool overwrite = false;                 // write into a non-empty `out`
  TaskOptions tasks;
};

// Writes the report into options.out, prints report.md to `log` and returns report.json's content.
nlohmann::json run_report(ReportOptions options, std::ostream& log = std::cout);

}  // namespace linearard::eval
