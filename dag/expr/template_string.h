// Argo's "{{...}}" template tags: simple variables ("{{inputs.parameters.x}}") and expressions
// ("{{=asInt(inputs.parameters.x) * 2}}").
// Thread-safety: pure functions.
#ifndef KILN_DAG_EXPR_TEMPLATE_STRING_H_
#define KILN_DAG_EXPR_TEMPLATE_STRING_H_

#include <cstddef>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/expr/syntax_error.h"

namespace kiln::expr {

struct TemplateTag {
  size_t offset = 0;           // offset of "{{" in the text
  size_t length = 0;           // length of the whole tag including braces
  bool is_expression = false;  // "{{=...}}" (expr-lang) vs "{{name.path}}" (simple variable)
  std::string body;            // inner text, trimmed; for expressions without the leading '='
};

// Returns every tag in order of appearance. A simple tag ends at the first "}}"; an expression tag
// ends at the first "}}" outside string literals ('...', "...", `...`) and outside map braces, so
// "{{={a: '}}'}}}" is one tag.
// Errors: `unterminated "{{" at offset N` when a tag has no end.
std::expected<std::vector<TemplateTag>, SyntaxError> FindTags(std::string_view text);

// Returns the replacement text for a tag, or nullopt to leave the tag verbatim (Argo leaves
// unresolved tags in place).
using TagResolver = std::function<std::optional<std::string>(const TemplateTag&)>;

// Returns `text` with each tag replaced by resolver(tag) where it returns a value.
// Errors: those of FindTags.
std::expected<std::string, SyntaxError> Substitute(std::string_view text,
                                                   const TagResolver& resolver);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_TEMPLATE_STRING_H_
