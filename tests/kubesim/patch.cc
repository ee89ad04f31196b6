#include "tests/kubesim/patch.h"

#include "kube/strategic_merge.h"

namespace kiln::kubesim {

ApiResult<json> ApplyPatch(const json& original, std::string_view content_type,
                           std::string_view patch_text) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  bool merge = type == "application/merge-patch+json";
  bool strategic = type == "application/strategic-merge-patch+json";
  bool json_patch = type == "application/json-patch+json";
  if (!merge && !strategic && !json_patch) return Fail(UnsupportedMediaType());
  json patch = json::parse(patch_text, nullptr, false);
  if (patch.is_discarded()) {
    return Fail(BadRequest("error decoding patch: invalid character in patch body"));
  }
  try {
    if (json_patch) {
      if (!patch.is_array()) {
        return Fail(BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch"));
      }
      return original.patch(patch);
    }
    if (!patch.is_object()) {
      return Fail(BadRequest("json: cannot unmarshal " + std::string(patch.type_name()) +
                             " into Go value of type map[string]interface {}"));
    }
    if (merge) {
      json out = original;
      out.merge_patch(patch);
      return out;
    }
    return kube::StrategicMerge(original, patch);
  } catch (const json::exception& e) {
    return Fail(BadRequest(std::string("the server rejected our request due to an error in our "
                                       "request: ") + e.what()));
  }
}

}  // namespace kiln::kubesim
