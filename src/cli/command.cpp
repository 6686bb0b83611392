#include "cli/command.h"

#include <vector>

namespace linearard::cli {
namespace {

struct Entry {
  std::string name, description, parent;
  CommandSetup setup;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> entries;  // filled during static initialisation
  return entries;
}

}  // namespace

CommandRegistration::CommandRegistration(std::string name, std::string description,
                                         CommandSetup setup, std::string parent) {
  registry().push_back({std::move(name), std::move(description), std::move(parent), std::move(setup)});
}

void add_registered_commands(CLI::App& app) {
  // Parents first, so nesting does not depend on static-initialisation order.
  for (const Entry& e : registry()) {
    if (!e.parent.empty()) continue;
    CLI::App* sub = app.add_subcommand(e.name, e.description);
    if (e.setup) e.setup(*sub);
  }
  for (const Entry& e : registry()) {
    if (e.parent.empty()) continue;
    CLI::App* parent = app.get_subcommand(e.parent);
    parent->require_subcommand(1);
    CLI::App* sub = parent->add_subcommand(e.name, e.description);
    e.setup(*sub);
  }
}

}  // namespace linearard::cli
