// Argo's nodeFieldSelector (`argo retry --node-field-selector`, `argo resume`): which nodes of a
// workflow a request is about. Thread-safety: values and pure functions.
#ifndef KILN_SCHEDULER_NODE_SELECTOR_H_
#define KILN_SCHEDULER_NODE_SELECTOR_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "scheduler/state.h"

namespace kiln::scheduler {

// Requirements separated by commas, all of which a node must meet: FIELD=VALUE, FIELD==VALUE or
// FIELD!=VALUE. Fields, as Argo names them in a Workflow's status.nodes: id, name (both the
// node's id, e.g. "wf.train"), displayName ("train"), templateName, phase ("Failed"), type
// ("Pod"), inputs.parameters.NAME.value. An empty selector matches every node. Argo's
// templateRef.name / templateRef.template fields and set-based forms (in, notin) are not
// supported.
struct NodeSelector {
  struct Requirement {
    std::string field;
    std::string value;
    bool equals = true;  // false: !=
  };
  std::vector<Requirement> requirements;
};

// Errors: kInvalidArgument naming the requirement that cannot be read or the unknown field.
Result<NodeSelector> ParseNodeSelector(std::string_view text);

// Whether `node` meets every requirement of `selector`.
bool Matches(const NodeSelector& selector, const NodeState& node);

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_NODE_SELECTOR_H_
