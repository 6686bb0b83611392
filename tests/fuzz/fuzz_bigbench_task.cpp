// libFuzzer target: BIG-bench task.json -> BigBenchTask (eval/bigbench_task.cpp, torch-free), and on
// success what `--tasks bbh` does with it: every document's few-shot context.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "eval/bigbench_task.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::eval;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const BigBenchTask t = parse_bigbench_task(text, "task.json", "fuzz");
    for (int64_t d = 0; d < static_cast<int64_t>(t.examples.size()) && d < 64; ++d) (void)bigbench_context(t, d, 3, 1234);
  } catch (const linearard::Error&) {
  }
  return 0;
}
