// `linearard bench <what>`: the parent of the benchmark subcommands (the other files of bench/).
#include "cli/command.h"

namespace {
linearard::cli::CommandRegistration bench_command(
    "bench", "benchmarks (run on the GPU machine; numbers go to docs/perf.md)", nullptr);
}  // namespace
