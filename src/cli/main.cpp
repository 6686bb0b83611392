// linearard: one binary, subcommands registered by the files of src/cli/.
#include <c10/util/Exception.h>

#include <cstdio>

#include "cli/command.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"linearard: restore the short-text quality of context-extended LLaMA-family models"};
  app.require_subcommand(1);
  linearard::cli::add_registered_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const linearard::Error& e) {
    std::fprintf(stderr, "linearard: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "linearard: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linearard: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
