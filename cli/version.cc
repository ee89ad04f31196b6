#include <cstdio>

#include "cli/commands.h"

namespace kiln::cli {

namespace {
int g_exit_code = 0;
}

int ExitCode() { return g_exit_code; }
void SetExitCode(int code) { g_exit_code = code; }

void RegisterVersion(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("version", "Print kiln's version");
  cmd->callback([] { std::printf("kiln %.*s\n", static_cast<int>(kVersion.size()), kVersion.data()); });
}

}  // namespace kiln::cli
