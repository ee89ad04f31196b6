// Formatting of expression values for messages and templates, shared by the expression modules.
// Thread-safety: pure functions.
#ifndef KILN_DAG_EXPR_VALUE_FORMAT_H_
#define KILN_DAG_EXPR_VALUE_FORMAT_H_

#include <string>

#include <nlohmann/json.hpp>

namespace kiln::expr {

// Returns a float64 the way Go's "%v" prints it: "5", "35.8", "1e+21", "NaN", "+Inf".
std::string FormatNumber(double value);

// Returns a value the way Argo puts it into a template: strings as-is, integral numbers without a
// trailing ".0", bools as true/false, null as "<nil>" (Go's %v), arrays and maps as compact JSON.
std::string FormatValue(const nlohmann::json& value);

// Returns compact JSON the way Go's json.Marshal writes it: keys sorted, integral floats without
// ".0" ("15", not "15.0").
std::string ToJson(const nlohmann::json& value);

// Returns a value for an error message: strings quoted, everything else as FormatValue.
std::string DescribeValue(const nlohmann::json& value);

// "nil", "bool", "int", "float", "string", "array" or "map".
std::string TypeName(const nlohmann::json& value);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_VALUE_FORMAT_H_
