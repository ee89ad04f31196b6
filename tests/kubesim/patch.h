// PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for
// the built-in types kubesim serves. Thread-safety: pure functions.
#ifndef KILN_TESTS_KUBESIM_PATCH_H_
#define KILN_TESTS_KUBESIM_PATCH_H_

#include <string_view>

#include "tests/kubesim/api_error.h"

namespace kiln::kubesim {

// Applies `patch` of media type `content_type` to `original`. Returns the patched object, 400
// for a malformed patch or a failed json-patch test/path, 415 for other media types
// (server-side apply included). Strategic merge is kube::StrategicMerge, shared with the
// executor's podSpecPatch.
ApiResult<json> ApplyPatch(const json& original, std::string_view content_type,
                           std::string_view patch);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_PATCH_H_
