// Kubernetes label selectors (the `labelSelector` of list calls), as WorkflowFilter takes them:
// requirements separated by commas, all of which must hold.
//
//   k=v, k==v     the label k exists and is v
//   k!=v          the label k is absent or is not v
//   k             the label k exists
//   !k            the label k is absent
//   k in (a,b)    the label k exists and is a or b
//   k notin (a,b) the label k is absent or is neither a nor b
//
// Keys and values are words: runs of any characters but whitespace and = ! ( ) , < >, taken as
// written. This checks the syntax only; a key or value that Kubernetes would refuse (a label
// key or value of more than 63 characters, say) is accepted and matches no label Kubernetes
// allows. Callers that must refuse what Kubernetes refuses check the requirements' keys and
// values with dag/names.h (ValidateLabelKey, ValidateLabelValue). The numeric operators "<"
// and ">" are refused. Whitespace around words and operators is ignored.
// Thread-safety: pure functions over values.
#ifndef KILN_STORE_LABEL_SELECTOR_H_
#define KILN_STORE_LABEL_SELECTOR_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace kiln::store {

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };

  std::string key;
  Op op = Op::kExists;
  // Sorted, without repeats: one value for kEquals and kNotEquals, one or more for kIn and
  // kNotIn, none for kExists and kDoesNotExist.
  std::vector<std::string> values;

  // Whether the requirement holds for a workflow without the label `key` (kNotEquals, kNotIn,
  // kDoesNotExist): such a requirement excludes the labels it names rather than asking for them.
  bool negated() const {
    return op == Op::kNotEquals || op == Op::kNotIn || op == Op::kDoesNotExist;
  }

  bool operator==(const LabelRequirement&) const = default;
};

// The requirements of `selector`, in the order written; none for "" (which matches everything).
// Errors: kInvalidArgument for a selector that is not UTF-8 or holds a NUL byte (which no label
// can hold), or that does not parse, naming the selector and the requirement, e.g.
//   label selector "app=web,tier web": requirement "tier web": unexpected "web" after key
//   "tier"; expected =, ==, !=, in or notin
Result<std::vector<LabelRequirement>> ParseLabelSelector(std::string_view selector);

// Whether `labels` meet every one of `requirements` (so an empty list matches everything).
bool MatchesLabels(const std::vector<LabelRequirement>& requirements,
                   const std::map<std::string, std::string>& labels);

}  // namespace kiln::store

#endif  // KILN_STORE_LABEL_SELECTOR_H_
