// kiln lint: parse and validate manifests, print compiler-style diagnostics or JSON.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "dag/lint.h"

namespace kiln::cli {

namespace {

struct LintFlags {
  std::vector<std::string> paths;
  bool strict = false;
  std::string output = "text";
  size_t max_file_bytes = 8u << 20;
  size_t max_nodes = 4'000'000;
  size_t max_depth = 100;
  bool quiet = false;
};

std::string_view SeverityName(dag::Severity s) {
  switch (s) {
    case dag::Severity::kError: return "error";
    case dag::Severity::kWarning: return "warning";
    case dag::Severity::kNote: return "note";
  }
  return "error";
}

int RunLint(const LintFlags& flags) {
  dag::LintOptions options;
  options.parse.strict = flags.strict;
  options.parse.max_file_bytes = flags.max_file_bytes;
  options.parse.max_nodes = flags.max_nodes;
  options.parse.max_depth = flags.max_depth;
  dag::LintResult result = dag::Lint(flags.paths, options);
  const dag::Diagnostics& d = result.diags;
  if (flags.output == "json") {
    nlohmann::json out;
    out["files"] = result.files;
    out["errors"] = d.error_count();
    out["warnings"] = d.warning_count();
    nlohmann::json items = nlohmann::json::array();
    for (const dag::Diagnostic& x : d.items()) {
      items.push_back({{"severity", SeverityName(x.severity)},
                       {"file", x.file},
                       {"line", x.loc.line},
                       {"column", x.loc.column},
                       {"path", x.path},
                       {"message", x.message}});
    }
    out["diagnostics"] = std::move(items);
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    for (const dag::Diagnostic& x : d.items()) {
      if (flags.quiet && x.severity != dag::Severity::kError) continue;
      std::printf("%s\n", x.ToString().c_str());
    }
    std::fprintf(stdout, "%zu file%s, %zu manifest%s: %zu error%s, %zu warning%s\n", result.files.size(),
                 result.files.size() == 1 ? "" : "s", result.manifests.size(),
                 result.manifests.size() == 1 ? "" : "s", d.error_count(), d.error_count() == 1 ? "" : "s",
                 d.warning_count(), d.warning_count() == 1 ? "" : "s");
  }
  return d.has_errors() ? 1 : 0;
}

}  // namespace

void RegisterLint(CLI::App& app) {
  auto flags = std::make_shared<LintFlags>();
  CLI::App* cmd = app.add_subcommand(
      "lint", "Validate Argo Workflows manifests (files or directories of .yaml/.yml); exit 1 on errors");
  cmd->add_option("paths", flags->paths, "Files or directories to lint")->required();
  cmd->add_flag("--strict", flags->strict, "Treat unknown fields as errors");
  cmd->add_option("-o,--output", flags->output, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--max-file-size", flags->max_file_bytes, "Refuse files larger than this many bytes")
      ->default_val(flags->max_file_bytes);
  cmd->add_option("--max-nodes", flags->max_nodes, "Refuse documents with more YAML nodes (aliases expanded)")
      ->default_val(flags->max_nodes);
  cmd->add_option("--max-depth", flags->max_depth, "Refuse YAML nested deeper than this")
      ->default_val(flags->max_depth);
  cmd->add_flag("-q,--quiet", flags->quiet, "Print errors only");
  cmd->callback([flags] { SetExitCode(RunLint(*flags)); });
}

}  // namespace kiln::cli
