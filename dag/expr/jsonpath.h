// JSONPath queries, as Argo's `jsonpath()` expression function runs them.
// Thread-safety: pure functions.
#ifndef KILN_DAG_EXPR_JSONPATH_H_
#define KILN_DAG_EXPR_JSONPATH_H_

#include <expected>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kiln::expr {

// Returns what `path` selects in `doc`. Supported: `$`, `.key`, `['key']`, `['a','b']`, `[n]`,
// `[-1]`, `[0,2]`, `[*]`, `.*`, `[a:b]` and `[a:b:step]` slices (end exclusive), `..key` and
// `..[...]` recursive descent, filters `[?(@.x == 'v')]`, `[?(@.age>42 && @.age<44)]`,
// `[?(@.isbn)]` with ==, !=, <, <=, >, >=, &&, ||, ! and parentheses; filter operands are `@...`,
// `$...`, numbers, 'strings', "strings", true, false, null.
// A path of only keys and single indices returns the value itself; any other path returns an
// array of every match (possibly empty), as Argo's library does.
// Errors: a syntax error with its offset, a missing key or index on a single-value path
// (`key "x" not found`), a path that does not start with "$".
std::expected<nlohmann::json, std::string> JsonPath(const nlohmann::json& doc,
                                                    std::string_view path);

// Returns `text` parsed as JSON, refusing documents nested deeper than 256 levels.
// Errors: `invalid JSON: <parser message>`, `JSON nested too deeply`.
std::expected<nlohmann::json, std::string> ParseJson(std::string_view text);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_JSONPATH_H_
