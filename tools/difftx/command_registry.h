// Registration of `difftx` subcommands: each command file defines one static CommandRegistration
// that adds its subcommand (options, help text, callback) to the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace difftx::cli {

using CommandAdder = std::function<void(CLI::App& app)>;

struct CommandRegistration {
  CommandRegistration(int order, CommandAdder adder);
};

// All registered adders, sorted by `order` (so `difftx --help` lists commands predictably).
std::vector<CommandAdder> registered_commands();

// Returns the subcommand `name` of `app`, creating it with `description` if needed, so that
// several files can add commands under one group (e.g. `model info` and `model match`).
CLI::App* command_group(CLI::App& app, const std::string& name, const std::string& description);

}  // namespace difftx::cli
