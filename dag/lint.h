// Lint: parse and validate a set of files and directories, as `kiln lint` does.
// Thread-safety: reentrant.
#ifndef KILN_DAG_LINT_H_
#define KILN_DAG_LINT_H_

#include <string>
#include <vector>

#include "dag/diagnostic.h"
#include "dag/parse.h"
#include "dag/spec.h"

namespace kiln::dag {

struct LintOptions {
  ParseOptions parse;
};

struct LintResult {
  std::vector<std::string> files;      // every file read, in order
  std::vector<Manifest> manifests;     // every Argo document that parsed
  Diagnostics diags;                   // sorted by file and position
};

// Expands directories (recursively, *.yaml and *.yml, sorted), parses every file, then validates
// each manifest against the others (a templateRef may name a WorkflowTemplate in another file).
LintResult Lint(const std::vector<std::string>& paths, const LintOptions& options);

}  // namespace kiln::dag

#endif  // KILN_DAG_LINT_H_
