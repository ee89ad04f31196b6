// Argo's "{{=...}}" expressions: the commonly used subset of expr-lang/expr, with Argo's functions
// (asInt, asFloat, jsonpath, toJson, string) and sprig.* helpers.
// Thread-safety: ExprProgram is immutable; all functions here are safe to call from any thread.
#ifndef KILN_DAG_EXPR_EXPR_LANG_H_
#define KILN_DAG_EXPR_EXPR_LANG_H_

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dag/expr/syntax_error.h"

namespace kiln::expr {

// A parsed expression: one flat vector of nodes, cheap to move and copy.
class ExprProgram {
 public:
  enum class Kind : uint8_t {
    kLiteral,     // constants_[text]
    kIdent,       // names_[text]
    kPointer,     // "#", the element inside a closure
    kMember,      // a.name / a?.name: a = object, text = name
    kIndex,       // a[b] / a?.[b]
    kSlice,       // a[b:c]; b or c is kNone when omitted
    kCall,        // names_[text](list): a builtin, or "sprig.x"
    kMethodCall,  // a.name(list)
    kUnary,       // op a
    kBinary,      // a op b
    kTernary,     // a ? b : c
    kArray,       // [list]
    kMap,         // {list}: key, value, key, value...
    kClosure,     // {a}: the predicate argument of filter/map/all/...
    kLet,         // let names_[text] = a; b
  };
  enum class Op : uint8_t {
    kNone, kNot, kNeg, kPlus, kOr, kAnd, kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn, kMatches,
    kNotMatches, kContains, kNotContains, kStartsWith, kNotStartsWith, kEndsWith, kNotEndsWith,
    kRange, kAdd, kSub, kMul, kDiv, kMod, kPow, kCoalesce,
  };
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Node {
    Kind kind;
    Op op = Op::kNone;
    bool optional = false;  // "?." member or index
    uint32_t a = kNone, b = kNone, c = kNone;
    uint32_t list_begin = 0, list_size = 0;  // into lists_
    uint32_t text = 0;                       // into names_ or constants_
    uint32_t offset = 0;                     // byte offset in the source
  };

  const std::vector<Node>& nodes() const { return nodes_; }
  uint32_t root() const { return root_; }
  const std::string& name(uint32_t index) const { return names_[index]; }
  const nlohmann::json& constant(uint32_t index) const { return constants_[index]; }
  uint32_t list(uint32_t index) const { return lists_[index]; }

 private:
  friend class ExprParser;
  std::vector<Node> nodes_;
  std::vector<uint32_t> lists_;
  std::vector<std::string> names_;
  std::vector<nlohmann::json> constants_;
  uint32_t root_ = 0;
};

// Returns the parsed expression.
// Errors: unexpected tokens (`unexpected ")" at offset 7`), unterminated strings, bad escapes or
// numbers, a missing ")", "]", "}" or ":", nesting deeper than kMaxNestingDepth.
std::expected<ExprProgram, SyntaxError> ParseExpr(std::string_view text);

// Returns the variable paths the expression reads, each once, in order of first appearance:
// inputs.parameters["should-print"] -> {"inputs", "parameters", "should-print"}. A path stops at
// the first index that is not a constant. Function names, "sprig", "#" and closure shorthands are
// not variables.
std::vector<std::vector<std::string>> ReferencedPaths(const ExprProgram& program);

// Returns the value of the expression with `env` (a JSON object) as its variables.
// Errors: "unknown name inputs.foo", type errors ("invalid operation: + (mismatched types string
// and int)"), bad calls ("asInt: cannot parse \"x\" as an integer"), never an exception.
std::expected<nlohmann::json, std::string> Evaluate(const ExprProgram& program,
                                                    const nlohmann::json& env);

// Returns the expr environment for Argo's flat variables: {"inputs.parameters.x": "1"} ->
// {"inputs": {"parameters": {"x": "1"}}}. Values stay strings. Where a name is both a value and
// a prefix of others ("inputs.parameters" and "inputs.parameters.x"), the nested map wins.
nlohmann::json BuildEnv(const std::map<std::string, std::string>& flat);

// Returns a value the way Argo puts it into a template: strings as-is, numbers without a trailing
// ".0" when integral, bools as true/false, arrays and maps as compact JSON, null as "<nil>".
std::string RenderValue(const nlohmann::json& value);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_EXPR_LANG_H_
