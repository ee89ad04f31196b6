// Expansion of a workflow into its node graph: templates instantiated into nodes, fan-outs and
// recursive calls left as placeholders for run time, topological order and ready sets.
//
// Shape of the graph, modelled on Argo's node tree:
//   - The entrypoint is node 0 (the root), named after the workflow. A leaf entrypoint is the only
//     node; a dag/steps entrypoint is a call node plus a boundary node, with its children between.
//   - A task or step whose template is dag/steps is a call node (kDag/kSteps) and a boundary node
//     (kBoundary); its children hang between the two: the call node precedes the child roots, the
//     child leaves precede the boundary, and the task's successors wait on the boundary.
//   - A steps template runs its groups in sequence; between group g-1 and group g sits one
//     kGroupBarrier node (named like Argo's step group node, `wf[g]`), so edges stay linear.
//   - withItems / withParam / withSequence make one kFanOut node; a call to a template that is
//     already being expanded (recursion, e.g. coinflip) makes one kDeferred node. Both are expanded
//     at run time.
//   - `when`, `depends` logic, onExit and hooks are not edges: the scheduler reads them from the
//     node's invocation. The workflow's exit handler is recorded on the graph.
// Node names follow Argo: `wf.task`, `wf.outer.inner`, steps `wf[0].step`, `wf[0].step[1].inner`;
// a boundary is its call node's name followed by "/end" (Argo has no such node).
//
// Thread-safety: a Graph is immutable once built; const methods are safe from any thread.
// A ReadyTracker is owned by one thread.
#ifndef KILN_DAG_GRAPH_H_
#define KILN_DAG_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "dag/spec.h"
#include "dag/validate.h"

namespace kiln::dag {

enum class NodeKind : uint8_t {
  kLeaf,          // container, script, resource, suspend, http, data, plugin, containerSet
  kDag,           // call of a dag template; its boundary ends it
  kSteps,         // call of a steps template; its boundary ends it
  kGroupBarrier,  // zero-cost join between two step groups
  kBoundary,      // end of a kDag/kSteps call: done when all its children are
  kFanOut,        // withItems / withParam / withSequence, expanded at run time
  kDeferred,      // recursive template call, expanded at run time
};

// "Leaf", "DAG", "Steps", "GroupBarrier", "Boundary", "FanOut", "Deferred".
std::string_view NodeKindName(NodeKind kind);

enum class FanOutKind : uint8_t { kNone, kItems, kParam, kSequence };

inline constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();
inline constexpr uint32_t kUnknownCount = std::numeric_limits<uint32_t>::max();

// 40 bytes; names live in the graph's arena.
struct Node {
  // The template the node runs (for kFanOut and kDeferred: the callee; for kGroupBarrier and
  // kBoundary: the enclosing steps/dag template). Points into the manifests or the library.
  const Template* tmpl = nullptr;
  // The task or step that made the node; nullptr for the root and for group barriers. A boundary
  // shares its call node's invocation.
  const Invocation* invocation = nullptr;
  uint32_t parent = kNoNode;   // the enclosing kDag/kSteps call node; kNoNode for the root
  uint32_t partner = kNoNode;  // kDag/kSteps: its boundary; kBoundary: its call node
  uint32_t name_offset = 0;
  uint32_t name_size = 0;
  // kFanOut: number of items when known statically (withItems length, a numeric withSequence),
  // else kUnknownCount (withParam, templated counts).
  uint32_t fan_out_count = kUnknownCount;
  NodeKind kind = NodeKind::kLeaf;
  FanOutKind fan_out = FanOutKind::kNone;
};

struct ExpandOptions {
  size_t max_nodes = 1'000'000;  // more nodes: kResourceExhausted
  size_t max_depth = 1000;       // deeper template nesting: kResourceExhausted
  std::string entrypoint;        // overrides spec.entrypoint when not empty
  // The root node's name; defaults to metadata.name, else metadata.generateName as written.
  std::string workflow_name;
};

class Graph {
 public:
  size_t size() const { return nodes_.size(); }
  size_t edge_count() const { return succ_.size(); }
  // REQUIRES: i < size().
  const Node& node(uint32_t i) const { return nodes_[i]; }
  std::string_view name(uint32_t i) const {
    const Node& n = nodes_[i];
    return std::string_view(names_).substr(n.name_offset, n.name_size);
  }
  std::span<const uint32_t> Successors(uint32_t i) const {
    return {succ_.data() + succ_offsets_[i], succ_offsets_[i + 1] - succ_offsets_[i]};
  }
  std::span<const uint32_t> Predecessors(uint32_t i) const {
    return {pred_.data() + pred_offsets_[i], pred_offsets_[i + 1] - pred_offsets_[i]};
  }

  // Every node once, each after all its predecessors (Kahn's algorithm, FIFO: deterministic).
  std::vector<uint32_t> TopologicalOrder() const;
  // The nodes without predecessors, in index order (the root alone, by construction).
  std::vector<uint32_t> Roots() const;
  // The index of the node named `name`, or nullopt. Linear: for tests and tools.
  std::optional<uint32_t> Find(std::string_view name) const;

  // spec.onExit, or spec.hooks.exit's template; empty when the workflow has none.
  const std::string& exit_handler() const { return exit_handler_; }
  // The resolved exit handler template; nullptr when there is none.
  const Template* exit_template() const { return exit_template_; }

  // Heap bytes held by the graph (nodes, names, edges), for benchmarks.
  size_t MemoryBytes() const;

 private:
  friend class GraphBuilder;

  std::vector<Node> nodes_;
  std::string names_;
  std::vector<uint32_t> succ_offsets_;  // size() + 1 entries
  std::vector<uint32_t> succ_;
  std::vector<uint32_t> pred_offsets_;  // size() + 1 entries
  std::vector<uint32_t> pred_;
  std::string exit_handler_;
  const Template* exit_template_ = nullptr;
};

// Returns the node graph of `m`'s workflow, starting at its entrypoint (opts.entrypoint, else
// spec.entrypoint, else the entrypoint of spec.workflowTemplateRef's template in `lib`).
// Template names resolve within the spec that holds the calling template (a templateRef'd
// WorkflowTemplate resolves its own names), templateRef through `lib`.
// Errors: kInvalidArgument for no entrypoint, a depends that does not parse, a dependency on an
// unknown task, a duplicate task name, or a dependency cycle ("... a -> b -> c -> a", where
// "a -> b" means a depends on b); kNotFound for a template, templateRef or workflowTemplateRef
// that does not resolve (the message names it); kResourceExhausted past opts.max_nodes or
// opts.max_depth. Validation reports such problems with their locations; expansion only refuses.
// The graph points into `m` and `lib`'s manifests: they must outlive it.
// Thread-safety: reentrant.
Result<Graph> ExpandWorkflow(const Manifest& m, const TemplateLibrary& lib,
                             const ExpandOptions& opts = {});

// Ready-set computation over a Graph: a node is ready when all its predecessors completed.
// O(nodes + edges) over a whole run. The graph must outlive the tracker.
class ReadyTracker {
 public:
  explicit ReadyTracker(const Graph& graph);

  // Returns the nodes with no predecessors, in index order.
  std::vector<uint32_t> Initial() const;
  // Marks `node` complete and appends to `newly_ready` the successors whose predecessors are now
  // all complete, in successor order.
  // REQUIRES: node is ready (all its predecessors completed) and not completed before.
  void Complete(uint32_t node, std::vector<uint32_t>* newly_ready);
  size_t completed() const { return completed_; }
  bool done() const { return completed_ == graph_->size(); }

 private:
  static constexpr uint32_t kCompleted = std::numeric_limits<uint32_t>::max();

  const Graph* graph_;
  std::vector<uint32_t> pending_;  // predecessors not yet completed; kCompleted once done
  size_t completed_ = 0;
};

}  // namespace kiln::dag

#endif  // KILN_DAG_GRAPH_H_
