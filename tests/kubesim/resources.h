// The resources kubesim serves, as discovery lists them. Thread-safety: immutable tables.
#ifndef KILN_TESTS_KUBESIM_RESOURCES_H_
#define KILN_TESTS_KUBESIM_RESOURCES_H_

#include <string>
#include <string_view>
#include <vector>

namespace kiln::kubesim {

struct ResourceInfo {
  std::string group;  // "" for core
  std::string version;
  std::string name;   // plural, "jobs"
  std::string singular;
  std::string kind;
  bool namespaced = true;
  bool has_status = false;  // a /status subresource; the main resource ignores status writes
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  // Field selector labels accepted beyond metadata.name and metadata.namespace.
  std::vector<std::string> field_labels;

  // "v1" or "batch/v1".
  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// Every served resource, in discovery order.
const std::vector<ResourceInfo>& AllResources();

// The resource `name` of group/version, or nullptr.
const ResourceInfo* FindResource(std::string_view group, std::string_view version,
                                 std::string_view name);
// The resource with `kind` in apiVersion `api_version`, or nullptr.
const ResourceInfo* FindKind(std::string_view api_version, std::string_view kind);
// Shortcuts used by the controllers.
const ResourceInfo& Pods();
const ResourceInfo& Jobs();
const ResourceInfo& Nodes();
const ResourceInfo& Events();
const ResourceInfo& Namespaces();

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_RESOURCES_H_
