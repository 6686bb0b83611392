// Subcommand registry: each src/cli/<name>.cpp registers its subcommand with a static
// CommandRegistration, so adding a command never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace linearard::cli {

// Adds the subcommand's options to `sub` and sets its callback (sub.callback(...)).
using CommandSetup = std::function<void(CLI::App& sub)>;

struct CommandRegistration {
  // `parent` names another registered command ("bench") to nest under, or is empty.
  CommandRegistration(std::string name, std::string description, CommandSetup setup,
                      std::string parent = "");
};

// Builds every registered subcommand into `app`.
void add_registered_commands(CLI::App& app);

}  // namespace linearard::cli
