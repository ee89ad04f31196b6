// Argo's `depends` logic for DAG tasks: "A && (B.Failed || !C.Succeeded)".
// Thread-safety: DependsExpr is immutable; const methods are safe to call from any thread.
#ifndef KILN_DAG_EXPR_DEPENDS_H_
#define KILN_DAG_EXPR_DEPENDS_H_

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/expr/syntax_error.h"

namespace kiln::expr {

enum class TaskResult {
  kSucceeded,
  kFailed,
  kErrored,
  kSkipped,
  kOmitted,
  kDaemoned,
  kAnySucceeded,
  kAllFailed
};

// "Succeeded", "Failed", ... as written in a depends expression.
std::string_view TaskResultName(TaskResult result);

// One task reference: "NAME" (result empty) or "NAME.RESULT".
struct DependsRef {
  std::string task;
  std::optional<TaskResult> result;  // nullopt for a bare name
  size_t offset = 0;                 // offset of the task name in the text
};

// A parsed depends expression. Immutable, cheap to move: one flat vector of nodes.
class DependsExpr {
 public:
  // How a finished task ended.
  struct Outcome {
    enum class Phase { kSucceeded, kFailed, kErrored, kSkipped, kOmitted } phase;
    bool daemoned = false;
    bool any_child_succeeded = false;  // for expanded tasks (withItems/withParam)
    bool all_children_failed = false;
  };
  // Returns the task's outcome, or nullopt while it has not finished.
  using Lookup = std::function<std::optional<Outcome>(std::string_view task)>;

  // Every task reference in order of appearance (a task may appear more than once).
  const std::vector<DependsRef>& refs() const { return refs_; }

  // Returns whether the dependency is satisfied, or nullopt while any referenced task has not
  // finished. A bare name means (NAME.Succeeded || NAME.Skipped || NAME.Daemoned), as in Argo.
  std::optional<bool> Evaluate(const Lookup& lookup) const;

  // The expression in canonical form, e.g. "A && (B.Failed || !C)".
  std::string ToString() const;

 private:
  friend class DependsParser;
  enum class Kind : uint8_t { kRef, kNot, kAnd, kOr };
  struct Node {
    Kind kind;
    uint32_t first;  // kRef: index into refs_; kNot: child node; kAnd/kOr: index into children_
    uint32_t count;  // kAnd/kOr: number of children
  };

  bool EvaluateNode(uint32_t node, const std::vector<Outcome>& outcomes) const;
  void Print(uint32_t node, bool nested, std::string& out) const;

  std::vector<DependsRef> refs_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> children_;
  uint32_t root_ = 0;
};

// Returns the parsed expression.
// Errors: empty text, unexpected characters or tokens, a missing operand or ")", an unknown
// result suffix (the message lists the valid ones), nesting deeper than kMaxNestingDepth.
std::expected<DependsExpr, SyntaxError> ParseDepends(std::string_view text);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_DEPENDS_H_
