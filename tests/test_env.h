// Paths that CTest hands every test (see tests/CMakeLists.txt).
#pragma once
#include <cstdlib>
#include <string>

namespace linearard::test_env {

inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
inline std::string fixtures_dir() { return env_or_empty("LINEARARD_FIXTURES_DIR"); }
inline std::string source_dir() { return env_or_empty("LINEARARD_SOURCE_DIR"); }
inline std::string python() { return env_or_empty("LINEARARD_PYTHON"); }
inline std::string linearard_bin() { return env_or_empty("LINEARARD_BIN"); }

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command and captures its output.
CommandResult run_command(const std::string& command);

}  // namespace linearard::test_env
