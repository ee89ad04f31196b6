// Subcommands of the kiln binary. Each Register* adds one CLI11 subcommand whose callback
// records the process exit code, read back by ExitCode().
#ifndef KILN_CLI_COMMANDS_H_
#define KILN_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <string_view>

namespace kiln::cli {

inline constexpr std::string_view kVersion = "0.1.0";

void RegisterVersion(CLI::App& app);
void RegisterLint(CLI::App& app);
void RegisterRun(CLI::App& app);
void RegisterResume(CLI::App& app);
void RegisterGet(CLI::App& app);
void RegisterList(CLI::App& app);
void RegisterLogs(CLI::App& app);
// Clients of a kiln server (cli/client.h): submit, watch, and stop, terminate, retry, resubmit,
// resume and delete.
void RegisterSubmit(CLI::App& app);
void RegisterWatch(CLI::App& app);
void RegisterWorkflowActions(CLI::App& app);
void RegisterServer(CLI::App& app);
// The agent in a Kubernetes step's pod (cli/exec.cc): `kiln exec ...`, parsed by hand (not
// CLI11) since everything after its own flags is the step's command, flags and all.
int ExecMain(int argc, char** argv);

// The exit code set by the subcommand that ran (0 when none set one).
int ExitCode();
void SetExitCode(int code);

}  // namespace kiln::cli

#endif  // KILN_CLI_COMMANDS_H_
