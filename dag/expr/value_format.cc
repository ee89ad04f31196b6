#include "dag/expr/value_format.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "base/strings.h"

namespace kiln::expr {

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e21) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

namespace {

// Integral floats print as integers inside containers too, as Go prints float64 values.
nlohmann::json Normalize(const nlohmann::json& value) {
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (d == std::trunc(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
    return value;
  }
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : value) out.push_back(Normalize(item));
    return out;
  }
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, item] : value.items()) out[key] = Normalize(item);
    return out;
  }
  return value;
}

}  // namespace

std::string FormatValue(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string:
      return value.get_ref<const std::string&>();
    case nlohmann::json::value_t::number_float:
      return FormatNumber(value.get<double>());
    case nlohmann::json::value_t::null:
      return "<nil>";
    case nlohmann::json::value_t::discarded:
      return "<nil>";
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
      return Normalize(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    default:
      return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

std::string ToJson(const nlohmann::json& value) {
  return Normalize(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string DescribeValue(const nlohmann::json& value) {
  if (value.is_string()) return Quote(value.get_ref<const std::string&>());
  if (value.is_null()) return "nil";
  return FormatValue(value);
}

std::string TypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "nil";
    case nlohmann::json::value_t::boolean: return "bool";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "int";
    case nlohmann::json::value_t::number_float: return "float";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::object: return "map";
    default: return "nil";
  }
}

}  // namespace kiln::expr
