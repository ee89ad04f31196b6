#include "tests/kubesim/resources.h"

namespace kiln::kubesim {

const std::vector<ResourceInfo>& AllResources() {
  static const std::vector<ResourceInfo> kResources = {
      {"", "v1", "namespaces", "namespace", "Namespace", false, true, {"ns"}, {}, {"status.phase"}},
      {"", "v1", "nodes", "node", "Node", false, true, {"no"}, {}, {"spec.unschedulable"}},
      {"", "v1", "pods", "pod", "Pod", true, true, {"po"}, {"all"},
       {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "status.phase", "status.podIP", "status.nominatedNodeName"}},
      {"", "v1", "events", "event", "Event", true, false, {"ev"}, {},
       {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}},
      {"", "v1", "configmaps", "configmap", "ConfigMap", true, false, {"cm"}, {}, {}},
      {"", "v1", "secrets", "secret", "Secret", true, false, {}, {}, {"type"}},
      {"", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
       true, {"pvc"}, {}, {}},
      {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, false, {"sa"}, {}, {}},
      {"batch", "v1", "jobs", "job", "Job", true, true, {}, {"all"}, {"status.successful"}},
      {"batch", "v1", "cronjobs", "cronjob", "CronJob", true, true, {"cj"}, {"all"}, {}},
      {"coordination.k8s.io", "v1", "leases", "lease", "Lease", true, false, {}, {}, {}},
  };
  return kResources;
}

const ResourceInfo* FindResource(std::string_view group, std::string_view version,
                                 std::string_view name) {
  for (const ResourceInfo& r : AllResources()) {
    if (r.group == group && r.version == version && r.name == name) return &r;
  }
  return nullptr;
}

const ResourceInfo* FindKind(std::string_view api_version, std::string_view kind) {
  for (const ResourceInfo& r : AllResources()) {
    if (r.ApiVersion() == api_version && r.kind == kind) return &r;
  }
  return nullptr;
}

const ResourceInfo& Pods() { return *FindResource("", "v1", "pods"); }
const ResourceInfo& Jobs() { return *FindResource("batch", "v1", "jobs"); }
const ResourceInfo& Nodes() { return *FindResource("", "v1", "nodes"); }
const ResourceInfo& Events() { return *FindResource("", "v1", "events"); }
const ResourceInfo& Namespaces() { return *FindResource("", "v1", "namespaces"); }

}  // namespace kiln::kubesim
