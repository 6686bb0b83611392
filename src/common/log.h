// The global verbosity: `linearard --verbose ...` (main.cpp) turns it on; code that has something
// to say only on request (the relation-KL kernel choice, relation_kl_cuda.cu) checks verbose() and
// writes one line with log_verbose. Header-only, so the CUDA library and any bench-only link use it
// without another object.
#pragma once
#include <cstdarg>
#include <cstdio>

namespace linearard {

inline bool& verbose_flag() {
  static bool on = false;
  return on;
}
inline bool verbose() { return verbose_flag(); }

// printf-style, to stderr, prefixed "linearard: ", newline appended; nothing unless verbose().
__attribute__((format(printf, 1, 2))) inline void log_verbose(const char* format, ...) {
  if (!verbose()) return;
  std::va_list args;
  va_start(args, format);
  std::fputs("linearard: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
}

}  // namespace linearard
