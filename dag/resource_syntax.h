// Resource templates' small languages, shared by the linter and the Kubernetes executor
// (executor/kubernetes_resource.h): Argo's successCondition / failureCondition, and the
// kubectl-style flags kiln understands. Thread-safety: pure functions.
#ifndef KILN_DAG_RESOURCE_SYNTAX_H_
#define KILN_DAG_RESOURCE_SYNTAX_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace kiln::dag {

// One requirement of a successCondition / failureCondition. Argo parses a condition as a
// Kubernetes label selector whose keys are paths into the object: requirements joined by
// commas ("status.succeeded > 9", "status.phase in (Failed, Error)",
// "!status.failed", "metadata.labels.ready"). A successCondition holds when all of them do, a
// failureCondition when any one does (as Argo evaluates them).
struct ResourceRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist, kGreaterThan, kLessThan };
  std::string path;  // dotted; "\." escapes a dot inside a key; a number indexes an array
  Op op = Op::kExists;
  std::vector<std::string> values;
};

// Errors: kInvalidArgument naming the condition and what is wrong in it.
Result<std::vector<ResourceRequirement>> ParseResourceCondition(std::string_view text);
// Whether `object` meets every requirement. A path's value compares as text: a string as it
// is, a number or boolean as JSON writes it, null as "" (gjson's String(), as Argo reads it);
// > and < compare integers (a value that is not one does not match).
bool MatchesResourceCondition(const std::vector<ResourceRequirement>& requirements, const nlohmann::json& object);

// The kubectl-style flags of a resource template that kiln understands: a positional TYPE
// [NAME] (or TYPE/NAME) naming the object without a manifest, --selector/-l, --namespace/-n,
// --ignore-not-found and --validate (accepted; the API server validates). Errors:
// kInvalidArgument naming the flag kiln does not support.
struct ResourceFlags {
  std::string type;  // a resource, kind or short name: "configmap", "cm", "jobs.batch", "Workflow"
  std::string name;
  std::string selector;
  std::string namespace_;
  bool ignore_not_found = false;
};
Result<ResourceFlags> ParseResourceFlags(const std::vector<std::string>& flags);

}  // namespace kiln::dag

#endif  // KILN_DAG_RESOURCE_SYNTAX_H_
