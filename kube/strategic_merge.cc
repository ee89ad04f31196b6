#include "kube/strategic_merge.h"

#include <algorithm>
#include <map>
#include <string>
#include <string_view>

namespace kiln::kube {
namespace {

using nlohmann::json;

// Field name -> merge key, from the patchMergeKey tags of k8s.io/api.
const std::map<std::string, std::string, std::less<>>& MergeKeys() {
  static const std::map<std::string, std::string, std::less<>> kKeys = {
      {"containers", "name"},        {"initContainers", "name"}, {"ephemeralContainers", "name"},
      {"env", "name"},               {"volumes", "name"},        {"volumeMounts", "mountPath"},
      {"volumeDevices", "devicePath"}, {"ports", "containerPort"}, {"imagePullSecrets", "name"},
      {"conditions", "type"},        {"ownerReferences", "uid"}, {"hostAliases", "ip"},
      {"containerStatuses", "name"}, {"podIPs", "ip"},           {"addresses", "type"},
      {"taints", "key"},             {"resourceClaims", "name"},
  };
  return kKeys;
}

bool IsPrimitiveMergeList(std::string_view field) { return field == "finalizers"; }

// The `$patch` directive of `o` ("" when there is none, or it is not a string).
std::string Directive(const json& o) {
  if (!o.is_object()) return "";
  auto it = o.find("$patch");
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

json StripDirectives(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (const auto& [k, item] : v.items()) {
      if (k.starts_with("$")) continue;
      out[k] = StripDirectives(item);
    }
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const json& item : v) {
      if (item.is_object() && item.contains("$patch")) continue;
      out.push_back(StripDirectives(item));
    }
    return out;
  }
  return v;
}

json MergeList(const json& original, const json& patch, const std::string& key) {
  for (const json& item : patch) {
    if (Directive(item) == "replace") {
      return StripDirectives(patch);
    }
  }
  json out = original;
  for (const json& item : patch) {
    if (!item.is_object() || !item.contains(key)) {
      out.push_back(StripDirectives(item));
      continue;
    }
    auto same = [&](const json& o) { return o.is_object() && o.contains(key) && o[key] == item[key]; };
    if (Directive(item) == "delete") {
      out.erase(std::remove_if(out.begin(), out.end(), same), out.end());
      continue;
    }
    auto it = std::find_if(out.begin(), out.end(), same);
    if (it != out.end()) {
      *it = StrategicMerge(*it, item);
    } else {
      out.push_back(StripDirectives(item));
    }
  }
  return out;
}

}  // namespace

json StrategicMerge(const json& original, const json& patch) {
  if (!patch.is_object()) return patch;
  if (Directive(patch) == "replace") return StripDirectives(patch);
  json out = original.is_object() ? original : json::object();
  for (const auto& [k, v] : patch.items()) {
    if (k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/")) continue;
    if (k.starts_with("$deleteFromPrimitiveList/")) {
      std::string field = k.substr(std::string_view("$deleteFromPrimitiveList/").size());
      if (out.contains(field) && out[field].is_array() && v.is_array()) {
        json kept = json::array();
        for (const json& e : out[field]) {
          if (std::find(v.begin(), v.end(), e) == v.end()) kept.push_back(e);
        }
        out[field] = kept;
      }
      continue;
    }
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      if (Directive(v) == "delete") {
        out.erase(k);
      } else {
        out[k] = StrategicMerge(out.contains(k) ? out[k] : json::object(), v);
      }
    } else if (v.is_array() && out.contains(k) && out[k].is_array()) {
      auto key = MergeKeys().find(k);
      if (key != MergeKeys().end()) {
        out[k] = MergeList(out[k], v, key->second);
      } else if (IsPrimitiveMergeList(k)) {
        json merged = out[k];
        for (const json& e : v) {
          if (std::find(merged.begin(), merged.end(), e) == merged.end()) merged.push_back(e);
        }
        out[k] = merged;
      } else {
        out[k] = StripDirectives(v);
      }
    } else {
      out[k] = StripDirectives(v);
    }
  }
  if (auto retain = patch.find("$retainKeys"); retain != patch.end() && retain->is_array()) {
    json kept = json::object();
    for (const auto& [k, v] : out.items()) {
      if (std::find(retain->begin(), retain->end(), k) != retain->end()) kept[k] = v;
    }
    out = kept;
  }
  return out;
}

}  // namespace kiln::kube
