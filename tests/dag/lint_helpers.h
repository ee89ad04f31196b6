// Test helpers: parse and validate YAML text, return the diagnostics as strings.
#ifndef KILN_TESTS_DAG_LINT_HELPERS_H_
#define KILN_TESTS_DAG_LINT_HELPERS_H_

#include <string>
#include <vector>

#include "dag/parse.h"
#include "dag/validate.h"

namespace kiln::dag::testing {

inline std::vector<std::string> LintText(const std::string& text, bool include_warnings = false,
                                         ParseOptions options = {}) {
  Diagnostics diags;
  std::vector<Manifest> manifests = ParseManifests("t.yaml", text, options, diags);
  TemplateLibrary lib;
  for (const Manifest& m : manifests) lib.Add(m);
  for (const Manifest& m : manifests) Validate(m, lib, diags);
  diags.Sort();
  std::vector<std::string> out;
  for (const Diagnostic& d : diags.items()) {
    if (d.severity == Severity::kError || include_warnings) out.push_back(d.ToString());
  }
  return out;
}

}  // namespace kiln::dag::testing

#endif  // KILN_TESTS_DAG_LINT_HELPERS_H_
