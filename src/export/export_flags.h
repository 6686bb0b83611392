// The options of `linearard export` (exporter::ExportOptions) as one CLI11 option table
// (common/option_layers.h): the command line parses into it, export_options() fills an
// ExportOptions from option values given as JSON (the Python binding) through the same table.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "export/run_export.h"

namespace linearard::exporter {

// export's options (its --out required on the command line).
void add_export_flags(CLI::App& sub, ExportOptions& o);

// The ExportOptions of `given` (option name -> value); OptionError naming an unknown option or a
// value that does not convert.
ExportOptions export_options(const nlohmann::json& given);
// export's option table (common/option_layers.h describe_options): for help texts.
nlohmann::json describe_export_options();

}  // namespace linearard::exporter
