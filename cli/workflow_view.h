// How `kiln get` and `kiln watch` show one workflow, whatever its records came from: the embedded
// store (`kiln run`'s data directory) or a kiln server (converted by cli/client.h). Also a small
// YAML emitter for `-o yaml`.
// Thread-safety: pure functions of their arguments.
#ifndef KILN_CLI_WORKFLOW_VIEW_H_
#define KILN_CLI_WORKFLOW_VIEW_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/records.h"

namespace kiln::cli {

// One workflow's rows, as the store keeps them.
struct WorkflowRecords {
  store::WorkflowRecord workflow;
  std::vector<store::NodeRecord> nodes;
  std::vector<store::ParameterRecord> parameters;
  std::vector<store::ArtifactRecord> artifacts;
};

// One row of the node tree: a node and the drawing in front of its name ("│  ├─ ").
struct TreeRow {
  const store::NodeRecord* node;
  std::string prefix;
};

// The nodes in tree order (depth first, children by start time then id), each with its
// `argo get`-style prefix. Nodes unreachable from a root (a broken parent chain) come last,
// unindented. The rows point into `nodes`.
std::vector<TreeRow> Tree(const std::vector<store::NodeRecord>& nodes);

// `kiln get`'s text: the header (name, namespace, phase, times, parameters and `logs_line` as
// "Logs:"), the node table (STEP TEMPLATE PHASE DURATION ATTEMPTS MESSAGE, with an ID column
// before MESSAGE when `wide`) and the outputs. Ends with a newline.
std::string RenderWorkflowText(const WorkflowRecords& records, const std::string& logs_line,
                               bool wide);

// `value` as a YAML block document ending with a newline, written with libyaml's emitter (the
// project does not use yaml-cpp, and nlohmann::json writes only JSON). Strings that a YAML 1.1
// reader (Go's, kubectl's) would take for another type ("true", "on", "1e3", "~", "") are
// double-quoted; libyaml quotes the others where plain text would not read back unchanged.
std::string ToYaml(const nlohmann::json& value);

}  // namespace kiln::cli

#endif  // KILN_CLI_WORKFLOW_VIEW_H_
