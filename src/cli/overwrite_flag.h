// --overwrite of the commands that write an output folder or file (the guards: io/output_guard.h).
// Header-only: src/cli/*.cpp are the binary's sources.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace linearard::cli {

inline void add_overwrite_flag(CLI::App& sub, bool& overwrite, const std::string& help) {
  sub.add_flag("--overwrite", overwrite, help);
}

}  // namespace linearard::cli
