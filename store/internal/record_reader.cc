#include "store/internal/record_reader.h"

#include <nlohmann/json.hpp>

namespace kiln::store::internal {

std::map<std::string, std::string> LabelsFromJson(std::string_view json) {
  std::map<std::string, std::string> labels;
  if (json.empty()) return labels;
  nlohmann::json object = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) return labels;
  for (const auto& [key, value] : object.items()) {
    if (value.is_string()) labels.emplace(key, value.get<std::string>());
  }
  return labels;
}

}  // namespace kiln::store::internal
