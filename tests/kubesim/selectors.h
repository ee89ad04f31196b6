// Label and field selectors (apimachinery labels.Parse, fields.ParseSelector) and
// metav1.LabelSelector. Thread-safety: immutable after parsing.
#ifndef KILN_TESTS_KUBESIM_SELECTORS_H_
#define KILN_TESTS_KUBESIM_SELECTORS_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tests/kubesim/api_error.h"

namespace kiln::kubesim {

struct ResourceInfo;

class LabelSelector {
 public:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };

  // Parses the string syntax: "a=b,c==d,e!=f,g in (x,y),h notin (z),i,!j". Returns 400
  // BadRequest with the parser's message on a syntax error.
  static ApiResult<LabelSelector> Parse(std::string_view text);
  // From a metav1.LabelSelector object ({matchLabels, matchExpressions}); null matches all.
  static ApiResult<LabelSelector> FromJson(const json& selector);

  bool Matches(const json& labels) const;
  bool empty() const { return requirements_.empty(); }

 private:
  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  // Parses "metadata.name=x,status.phase!=Running" (= == !=) and checks each field label
  // against `resource` ("field label not supported: x" otherwise, 400).
  static ApiResult<FieldSelector> Parse(std::string_view text, const ResourceInfo& resource);
  bool Matches(const json& object) const;

 private:
  struct Term {
    std::string field;
    bool equal;
    std::string value;
  };
  std::vector<Term> terms_;
};

// The value of a field label on an object ("status.successful" maps to status.succeeded),
// as text ("" when absent; numbers and booleans printed as Go would).
std::string FieldValue(const json& object, const std::string& field);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_SELECTORS_H_
