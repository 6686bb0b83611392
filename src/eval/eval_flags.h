// The options of `linearard eval` and `report` as CLI11 option tables (common/option_layers.h):
// the tasks and their inputs, device, dtype and batch size (eval::TaskOptions), and report's own
// (eval::ReportOptions). The command line parses into them; report_options() fills a ReportOptions
// from option values given as JSON (the Python binding), through the same table.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/eval_options.h"
#include "eval/run_report.h"

namespace linearard::eval {

// The task options, the task list's flag spelled `task_flag` ("--tasks,--task").
void add_eval_flags(CLI::App& sub, TaskOptions& o, const std::string& task_flag);
// report's options (its --out required on the command line), the task options among them.
void add_report_flags(CLI::App& sub, ReportOptions& o);

// The ReportOptions of `given` (option name -> value); OptionError naming an unknown option or a
// value that does not convert.
ReportOptions report_options(const nlohmann::json& given);
// report's option table (common/option_layers.h describe_options): for help texts.
nlohmann::json describe_report_options();

}  // namespace linearard::eval
