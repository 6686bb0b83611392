// Error reporting shared by every module. An Error carries one line: "<where>: <problem>", where
// <where> names the file, flag or tensor at fault. The CLI prints it and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace linearard {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<where>: <problem>").
[[noreturn]] void fail(const std::string& where, const std::string& problem);

}  // namespace linearard
