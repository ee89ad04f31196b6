// The kiln command line: subcommands are wired here, their work lives in the modules.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string_view>

#include "cli/commands.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "exec") return kiln::cli::ExecMain(argc, argv);
  CLI::App app{"kiln: a workflow orchestrator for batch machine learning that runs Argo Workflows manifests"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(kiln::cli::kVersion));
  kiln::cli::RegisterVersion(app);
  kiln::cli::RegisterLint(app);
  kiln::cli::RegisterRun(app);
  kiln::cli::RegisterResume(app);
  kiln::cli::RegisterGet(app);
  kiln::cli::RegisterList(app);
  kiln::cli::RegisterLogs(app);
  kiln::cli::RegisterSubmit(app);
  kiln::cli::RegisterWatch(app);
  kiln::cli::RegisterWorkflowActions(app);
  kiln::cli::RegisterServer(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    // A subcommand that finished its work while parsing (cli/actions.cc) exits with its code.
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a usage error (a missing file, an unknown flag) exits 2,
    // as command-line tools conventionally do, not with CLI11's internal codes (105, ...).
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return kiln::cli::ExitCode();
}
