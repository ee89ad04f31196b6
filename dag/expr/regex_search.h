// Regular-expression search for the `=~`, `!~` and `matches` operators.
// Thread-safety: pure function.
#ifndef KILN_DAG_EXPR_REGEX_SEARCH_H_
#define KILN_DAG_EXPR_REGEX_SEARCH_H_

#include <expected>
#include <string>
#include <string_view>

namespace kiln::expr {

// Returns whether `pattern` (ECMAScript syntax, close to Go's RE2 for common patterns) matches
// anywhere in `text`, as Go's regexp.MatchString does.
// Errors: `invalid regular expression "<pattern>": <reason>`.
std::expected<bool, std::string> RegexSearch(std::string_view text, std::string_view pattern);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_REGEX_SEARCH_H_
