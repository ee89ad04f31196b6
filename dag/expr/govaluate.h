// Argo's `when` conditions: govaluate expressions evaluated the way Argo does it. Argo substitutes
// "{{...}}" tags first, then turns every bare word (a govaluate variable) into a string, so
// `tails == heads` compares two strings and `Succeeded == Succeeded` is true.
// Thread-safety: WhenExpr is immutable; const methods are safe to call from any thread.
#ifndef KILN_DAG_EXPR_GOVALUATE_H_
#define KILN_DAG_EXPR_GOVALUATE_H_

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dag/expr/syntax_error.h"

namespace kiln::expr {

// A parsed govaluate expression. Values are numbers (float64), strings, bools and, for `in`,
// arrays written "(a, b, c)".
class WhenExpr {
 public:
  // Returns the value with no parameters (bare words are strings): a JSON number (always a float),
  // string, bool or array.
  // Errors: type errors such as `cannot compare "a" and 1 with "<"`, `invalid regular expression
  // ...`, `undefined function "f"`.
  std::expected<nlohmann::json, std::string> Evaluate() const;

 private:
  friend class WhenParser;
  enum class Op : uint8_t {
    kLiteral, kArray, kCall,
    kNot, kNegate,
    kOr, kAnd, kEq, kNe, kLt, kLe, kGt, kGe, kMatch, kNotMatch, kIn,
    kAdd, kSub, kMul, kDiv, kMod,
  };
  struct Node {
    Op op;
    uint32_t lhs = 0;    // child, or first index into list_ for kArray
    uint32_t rhs = 0;    // child, or element count for kArray
    uint32_t value = 0;  // kLiteral: index into literals_; kCall: index into literals_ (the name)
  };

  std::expected<nlohmann::json, std::string> Eval(uint32_t node) const;

  std::vector<Node> nodes_;
  std::vector<uint32_t> list_;
  std::vector<nlohmann::json> literals_;
  uint32_t root_ = 0;
};

// Returns the parsed expression (syntax only; lint calls this after replacing each tag with a
// placeholder word).
// Errors: empty text, unterminated strings, unexpected tokens, a missing operand or ")", numbers
// that do not parse, nesting deeper than kMaxNestingDepth.
std::expected<WhenExpr, SyntaxError> ParseWhen(std::string_view text);

// Parses and evaluates with Argo's rules and returns the boolean result.
// Errors: "invalid 'when' expression '<text>': <syntax error>", "failed to evaluate expression
// '<text>': <error>", "expected boolean evaluation for '<text>', got <value>".
std::expected<bool, std::string> EvaluateWhen(std::string_view text);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_GOVALUATE_H_
