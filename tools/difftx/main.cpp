// Entry point of the `difftx` program: builds the CLI from the registered commands, runs the
// selected one and turns difftx::Error into one line on stderr and exit code 1.
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "command_registry.h"
#include "difftx/core/error.h"

namespace difftx::cli {
namespace {
std::vector<std::pair<int, CommandAdder>>& registry() {
  static std::vector<std::pair<int, CommandAdder>> entries;
  return entries;
}
}  // namespace

CommandRegistration::CommandRegistration(int order, CommandAdder adder) {
  registry().emplace_back(order, std::move(adder));
}

std::vector<CommandAdder> registered_commands() {
  auto entries = registry();
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CommandAdder> adders;
  for (auto& e : entries) adders.push_back(e.second);
  return adders;
}

CLI::App* command_group(CLI::App& app, const std::string& name, const std::string& description) {
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == name) return sub;
  }
  CLI::App* group = app.add_subcommand(name, description);
  group->require_subcommand(1);
  return group;
}

}  // namespace difftx::cli

int main(int argc, char** argv) {
  CLI::App app{"difftx: train, evaluate and run Differential Transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "difftx 0.1.0");
  for (const auto& add : difftx::cli::registered_commands()) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const difftx::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "difftx: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "difftx: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
