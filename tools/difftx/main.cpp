// Entry point of the `difftx` program: builds the CLI from the registered commands, runs the
// selected one, and keeps the promise of every failure being one line `difftx: error: ...`
// with exit status 1 (parse errors included; --help and --version exit 0).
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>

#include "cli_options.h"
#include "command_registry.h"
#include "difftx/core/error.h"
#include "difftx/core/version.h"

namespace difftx::cli {
namespace {
std::vector<std::pair<int, CommandAdder>>& registry() {
  static std::vector<std::pair<int, CommandAdder>> entries;
  return entries;
}

// "train, generate, ..." for the subcommands of `app`.
std::string command_list(const CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    out += (out.empty() ? "" : ", ") + sub->get_name();
  }
  return out;
}

// "difftx", "difftx model", ... for a (sub)command.
std::string command_path(const CLI::App* app) {
  std::string path;
  for (; app != nullptr; app = app->get_parent()) {
    path = app->get_parent() == nullptr ? "difftx" + path : " " + app->get_name() + path;
  }
  return path;
}

// Before parsing: a word where a command is expected that names no command.
std::optional<std::string> unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') return std::nullopt;
    if (current->get_subcommands([](const CLI::App*) { return true; }).empty()) return std::nullopt;
    CLI::App* next = nullptr;
    try {
      next = current->get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      const bool top = current == &app;
      return fmt::format("unknown command '{}'{}; {} commands: {} (see `{} --help`)", word,
                         top ? "" : fmt::format(" for `{}`", command_path(current)),
                         top ? "the" : "its", command_list(*current), command_path(current));
    }
    current = next;
  }
  return std::nullopt;
}

// The deepest (sub)command the parser entered, for the hint after a parse error.
const CLI::App* deepest_parsed(const CLI::App& app) {
  const CLI::App* current = &app;
  for (;;) {
    auto parsed = current->get_subcommands();
    if (parsed.empty()) return current;
    current = parsed.front();
  }
}

// One line for a CLI11 parse error.
std::string parse_error_line(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* where = deepest_parsed(app);
  const std::string path = command_path(where);
  std::string what = e.what();
  if (what.find("subcommand is required") != std::string::npos) {
    return where == &app ? fmt::format("no command given; the commands: {} (see `difftx --help`)",
                                       command_list(app))
                         : fmt::format("`{}` needs a command: {} (see `{} --help`)", path,
                                       command_list(*where), path);
  }
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  return fmt::format("{} (see `{} --help`)", what, path);
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
  app.set_version_flag("--version", std::string("difftx ") + difftx::difftx_version());
  // A repeated option takes its last value (repeatable options such as --set keep them all).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  for (const auto& add : difftx::cli::registered_commands()) add(app);
  auto error_line = [](const std::string& message) {
    std::fflush(stdout);
    fmt::print(stderr, "difftx: error: {}\n", message);
    return 1;
  };
  if (auto unknown = difftx::cli::unknown_command(app, argc, argv)) return error_line(*unknown);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return error_line(difftx::cli::parse_error_line(app, e));
  } catch (const difftx::Error& e) {
    return error_line(e.what());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "difftx: internal error: {}\n", e.what());
    return 2;
  }
  return difftx::cli::exit_status();
}
