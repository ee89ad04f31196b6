// Strategic merge patch, as the API server applies it to the built-in types (and as Argo applies
// a template's podSpecPatch to the pod it builds): objects merge key by key, lists of the fields
// below merge by their patchMergeKey (containers by name, volumeMounts by mountPath, ...),
// finalizers merge as a set, and other lists are replaced. The `$patch` (replace/delete),
// `$deleteFromPrimitiveList/<field>`, `$retainKeys` and `$setElementOrder/<field>` directives
// are honoured (element order is not). Thread-safety: a pure function.
#ifndef KILN_KUBE_STRATEGIC_MERGE_H_
#define KILN_KUBE_STRATEGIC_MERGE_H_

#include <nlohmann/json.hpp>

namespace kiln::kube {

// `original` with `patch` merged in; a patch that is not an object replaces it.
nlohmann::json StrategicMerge(const nlohmann::json& original, const nlohmann::json& patch);

}  // namespace kiln::kube

#endif  // KILN_KUBE_STRATEGIC_MERGE_H_
