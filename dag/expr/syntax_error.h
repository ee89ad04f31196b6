// Errors from the parsers of Argo's expression languages.
// Thread-safety: plain values, safe to copy between threads.
#ifndef KILN_DAG_EXPR_SYNTAX_ERROR_H_
#define KILN_DAG_EXPR_SYNTAX_ERROR_H_

#include <cstddef>
#include <string>

namespace kiln::expr {

// Where and why a text failed to parse.
struct SyntaxError {
  size_t offset = 0;     // byte offset into the parsed text
  std::string message;   // for humans, lower-case start, e.g. `unexpected ")" at offset 7`
};

// How deeply any expression may nest (parentheses, operators, calls) before the parsers refuse it,
// so that untrusted input can never exhaust the stack.
inline constexpr int kMaxNestingDepth = 256;

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_SYNTAX_ERROR_H_
