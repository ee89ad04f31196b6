// The OpenAPI v3 documents kubectl reads (/openapi/v3 and one per group-version), built from a
// compact table of the served kinds' fields, and the apiserver's unknown-field check
// (fieldValidation=Strict|Warn) driven by the same table. Thread-safety: immutable tables.
#ifndef KILN_TESTS_KUBESIM_OPENAPI_H_
#define KILN_TESTS_KUBESIM_OPENAPI_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/kubesim/resources.h"

namespace kiln::kubesim {

using nlohmann::json;

// The /openapi/v3 index: {"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=..."},
// ...}}, one entry per served group-version.
json OpenApiV3Index();

// The document of `gv_path` ("api/v1", "apis/batch/v1"): paths with their operations (each
// carrying x-kubernetes-action and x-kubernetes-group-version-kind; PATCH takes the
// fieldValidation query parameter) and components.schemas for the group-version's kinds
// (with x-kubernetes-group-version-kind) and the types they use. nullopt for an unknown path.
std::optional<json> OpenApiV3Document(std::string_view gv_path);

// Removes the fields of `object` (a `r` object) that its schema does not know, as the
// apiserver's decoder drops them, and returns their paths in the words of its strict decoding
// errors: "spec.foo", "spec.template.spec.containers[0].bar". Parts of the schema left open
// (statuses, most nested types) accept anything.
std::vector<std::string> PruneUnknownFields(const ResourceInfo& r, json& object);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_OPENAPI_H_
