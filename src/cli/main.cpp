// linearard: one binary, subcommands registered by the files of src/cli/.
#include <c10/util/Exception.h>

#include <cstdio>

#include "cli/command.h"
#include "common/error.h"
#include "common/log.h"
#include "common/option_error.h"
#include "train/oom_report.h"
#include "train/stop_signals.h"

int main(int argc, char** argv) {
  CLI::App app{"linearard: restore the short-text quality of context-extended LLaMA-family models"};
  app.require_subcommand(1);
  // Global: `linearard --verbose <command>` or `linearard <command> ... --verbose` (subcommands
  // pass options they do not know up to here; common/log.h).
  app.add_flag("--verbose", linearard::verbose_flag(),
               "log decisions made on the way (e.g. each relation-KL kernel choice) to stderr");
  app.fallthrough();
  linearard::cli::add_registered_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const linearard::train::Interrupted& e) {
    linearard::train::exit_interrupted(e.signo());  // the run wrote its checkpoint and said so
  } catch (const linearard::OptionError& e) {
    // The library names the option ("context"); the command line spells it as its flag.
    std::fprintf(stderr, "linearard: error: %s\n", e.message_as("--" + e.option()).c_str());
    return 1;
  } catch (const linearard::Error& e) {
    std::fprintf(stderr, "linearard: error: %s\n", e.what());
    return 1;
  } catch (const c10::OutOfMemoryError& e) {
    // Training commands report their own (with a memory estimate, train/oom_report.h); this is
    // the one line for the others (eval, report, export, bench).
    const auto subs = app.get_subcommands();
    const std::string command = subs.empty() ? "linearard" : subs.front()->get_name();
    const std::string facts =
        linearard::train::describe_oom_facts(linearard::train::parse_oom_text(e.what_without_backtrace()));
    std::fprintf(stderr,
                 "linearard: error: %s: out of GPU memory%s; use a smaller --batch-size, shorter --contexts / "
                 "--lengths / --max-length (eval, report) or --context (bench), or a GPU with more memory\n",
                 command.c_str(), facts.c_str());
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
