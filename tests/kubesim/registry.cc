#include "tests/kubesim/registry.h"

#include <algorithm>
#include <regex>

namespace kiln::kubesim {
namespace {

SysTime Now() { return std::chrono::system_clock::now(); }

bool IsDns1123Subdomain(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  static const std::regex kRe("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return std::regex_match(name, kRe);
}

bool IsDns1123Label(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  static const std::regex kRe("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return std::regex_match(name, kRe);
}

std::string NameError(const ResourceInfo& r, const std::string& name) {
  if (r.name == "namespaces") {
    return "Invalid value: \"" + name +
           "\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
           "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
           "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
  }
  return "Invalid value: \"" + name +
         "\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
         "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
         "regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
}

bool IsTerminalPod(const json& pod) {
  std::string phase = Str(pod, {"status", "phase"});
  return phase == "Succeeded" || phase == "Failed";
}

void EnsureObject(json& obj, const char* key) {
  if (!obj.contains(key) || !obj[key].is_object()) obj[key] = json::object();
}

void DefaultContainer(json& c) {
  if (!c.is_object()) return;
  if (!c.contains("terminationMessagePath")) c["terminationMessagePath"] = "/dev/termination-log";
  if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
  if (!c.contains("imagePullPolicy")) {
    std::string image = c.value("image", "");
    std::string tail = image.substr(image.rfind('/') == std::string::npos ? 0 : image.rfind('/'));
    bool latest = tail.find(':') == std::string::npos || image.ends_with(":latest");
    if (image.find('@') != std::string::npos) latest = false;
    c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
  }
  EnsureObject(c, "resources");
  json& res = c["resources"];
  if (res.contains("limits") && res["limits"].is_object()) {
    for (const auto& [k, v] : res["limits"].items()) {
      if (!res.contains("requests") || !res["requests"].is_object()) res["requests"] = json::object();
      if (!res["requests"].contains(k)) res["requests"][k] = v;
    }
  }
}

void DefaultJob(json& job, const std::string& uid) {
  EnsureObject(job, "spec");
  json& spec = job["spec"];
  bool has_parallelism = spec.contains("parallelism") && !spec["parallelism"].is_null();
  bool has_completions = spec.contains("completions") && !spec["completions"].is_null();
  if (!has_parallelism) spec["parallelism"] = 1;
  if (!has_completions && !has_parallelism) spec["completions"] = 1;
  if (!spec.contains("completionMode")) spec["completionMode"] = "NonIndexed";
  if (!spec.contains("suspend")) spec["suspend"] = false;
  if (!spec.contains("backoffLimit")) {
    spec["backoffLimit"] = spec.contains("backoffLimitPerIndex") ? 2147483647 : 6;
  }
  if (!spec.contains("podReplacementPolicy")) {
    spec["podReplacementPolicy"] = spec.contains("podFailurePolicy") ? "Failed" : "TerminatingOrFailed";
  }
  EnsureObject(spec, "template");
  json& tmpl = spec["template"];
  EnsureObject(tmpl, "metadata");
  EnsureObject(tmpl, "spec");
  if (!uid.empty() && !spec.value("manualSelector", false)) {
    json& labels = tmpl["metadata"]["labels"];
    if (!labels.is_object()) labels = json::object();
    std::string name = Str(job, {"metadata", "name"});
    labels["batch.kubernetes.io/controller-uid"] = uid;
    labels["batch.kubernetes.io/job-name"] = name;
    labels["controller-uid"] = uid;
    labels["job-name"] = name;
    if (!spec.contains("selector")) {
      spec["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}};
    }
  }
  DefaultPodSpec(tmpl["spec"]);
}

std::vector<Cause> ValidateJob(const json& job) {
  std::vector<Cause> causes;
  const json* spec = Find(job, {"spec", "template", "spec"});
  if (spec == nullptr || !spec->contains("containers") || !(*spec)["containers"].is_array() ||
      (*spec)["containers"].empty()) {
    causes.push_back({"FieldValueRequired", "spec.template.spec.containers", "Required value"});
  }
  std::string policy = spec ? Str(*spec, {"restartPolicy"}) : "";
  if (policy != "Never" && policy != "OnFailure") {
    causes.push_back({"FieldValueNotSupported", "spec.template.spec.restartPolicy",
                      "Unsupported value: \"" + policy +
                          "\": supported values: \"OnFailure\", \"Never\""});
  }
  const json& job_spec = job["spec"];
  if (Str(job_spec, {"completionMode"}) == "Indexed" &&
      !(job_spec.contains("completions") && job_spec["completions"].is_number_integer())) {
    causes.push_back({"FieldValueRequired", "spec.completions",
                      "Required value: when completion mode is Indexed"});
  }
  if (job["spec"].contains("podFailurePolicy") && policy != "Never") {
    causes.push_back({"FieldValueInvalid", "spec.podFailurePolicy",
                      "Invalid value: \"" + policy +
                          "\": only \"Never\" is supported when podFailurePolicy is specified"});
  }
  return causes;
}

std::vector<Cause> ValidatePod(const json& pod) {
  std::vector<Cause> causes;
  const json* containers = Find(pod, {"spec", "containers"});
  if (containers == nullptr || !containers->is_array() || containers->empty()) {
    causes.push_back({"FieldValueRequired", "spec.containers", "Required value"});
    return causes;
  }
  for (size_t i = 0; i < containers->size(); ++i) {
    const json& c = (*containers)[i];
    std::string prefix = "spec.containers[" + std::to_string(i) + "].";
    if (Str(c, {"name"}).empty()) causes.push_back({"FieldValueRequired", prefix + "name", "Required value"});
    if (Str(c, {"image"}).empty()) causes.push_back({"FieldValueRequired", prefix + "image", "Required value"});
  }
  return causes;
}

bool OwnedBy(const json& obj, const std::string& uid) {
  const json* refs = Find(obj, {"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return false;
  for (const json& ref : *refs) {
    if (ref.value("uid", "") == uid) return true;
  }
  return false;
}

}  // namespace

void DefaultPodSpec(json& spec) {
  if (!spec.is_object()) return;
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("securityContext")) spec["securityContext"] = json::object();
  if (!spec.contains("serviceAccountName")) spec["serviceAccountName"] = "default";
  spec["serviceAccount"] = spec["serviceAccountName"];
  if (!spec.contains("enableServiceLinks")) spec["enableServiceLinks"] = true;
  if (!spec.contains("preemptionPolicy")) spec["preemptionPolicy"] = "PreemptLowerPriority";
  if (!spec.contains("priority")) spec["priority"] = 0;
  for (const char* list : {"containers", "initContainers"}) {
    if (spec.contains(list) && spec[list].is_array()) {
      for (json& c : spec[list]) DefaultContainer(c);
    }
  }
  // DefaultTolerationSeconds admission.
  if (!spec.contains("tolerations") || !spec["tolerations"].is_array()) spec["tolerations"] = json::array();
  for (const char* key : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
    bool present = false;
    for (const json& t : spec["tolerations"]) {
      if (t.value("key", "") == key) present = true;
    }
    if (!present) {
      spec["tolerations"].push_back({{"key", key},
                                     {"operator", "Exists"},
                                     {"effect", "NoExecute"},
                                     {"tolerationSeconds", 300}});
    }
  }
}

std::string QosClass(const json& spec) {
  bool any = false;
  bool guaranteed = true;
  const json* containers = Find(spec, {"containers"});
  if (containers == nullptr || !containers->is_array()) return "BestEffort";
  for (const json& c : *containers) {
    const json* req = Find(c, {"resources", "requests"});
    const json* lim = Find(c, {"resources", "limits"});
    if ((req && !req->empty()) || (lim && !lim->empty())) any = true;
    for (const char* res : {"cpu", "memory"}) {
      if (!lim || !lim->contains(res) || !req || !req->contains(res) || (*req)[res] != (*lim)[res]) {
        guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

void Registry::Bootstrap() {
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    (void)Create(Namespaces(), "", {{"metadata", {{"name", ns}}}});
    (void)Create(*FindResource("", "v1", "serviceaccounts"), ns,
                 {{"metadata", {{"name", "default"}, {"namespace", ns}}}});
  }
}

ApiResult<ObjectPtr> Registry::Create(const ResourceInfo& r, const std::string& ns, json obj) {
  if (!obj.is_object()) return Fail(BadRequest("the body of the request was not a JSON object"));
  if (obj.contains("kind") && obj["kind"] != r.kind) {
    return Fail(BadRequest("the kind in the data (" + obj["kind"].dump() +
                           ") does not match the expected kind (" + r.kind + ")"));
  }
  obj["kind"] = r.kind;
  obj["apiVersion"] = r.ApiVersion();
  EnsureObject(obj, "metadata");
  json& meta = obj["metadata"];
  if (r.namespaced) {
    std::string body_ns = meta.value("namespace", "");
    if (!body_ns.empty() && body_ns != ns) {
      return Fail(BadRequest(
          "the namespace of the provided object does not match the namespace sent on the request"));
    }
    meta["namespace"] = ns;
    if (!store_.Get(Namespaces(), "", ns)) return Fail(NotFound(Namespaces(), ns));
  } else {
    meta.erase("namespace");
  }
  std::string name = meta.value("name", "");
  if (name.empty()) {
    std::string generate = meta.value("generateName", "");
    if (generate.empty()) {
      return Fail(Invalid(r, "", {{"FieldValueRequired", "metadata.name",
                                   "Required value: name or generateName is required"}}));
    }
    do {
      name = generate + RandomSuffix();
    } while (store_.Get(r, ns, name));
    meta["name"] = name;
  }
  if (r.name == "namespaces" ? !IsDns1123Label(name) : !IsDns1123Subdomain(name)) {
    return Fail(Invalid(r, name, {{"FieldValueInvalid", "metadata.name", NameError(r, name)}}));
  }
  if (store_.Get(r, ns, name)) return Fail(AlreadyExists(r, name));
  std::string uid = NewUid();
  meta["uid"] = uid;
  meta["creationTimestamp"] = Rfc3339(Now());
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta.erase("managedFields");

  if (r.name == "pods") {
    EnsureObject(obj, "spec");
    DefaultPodSpec(obj["spec"]);
    auto causes = ValidatePod(obj);
    if (!causes.empty()) return Fail(Invalid(r, name, std::move(causes)));
    obj["status"] = {{"phase", "Pending"}, {"qosClass", QosClass(obj["spec"])}};
  } else if (r.name == "jobs") {
    DefaultJob(obj, uid);
    meta["generation"] = 1;
    auto causes = ValidateJob(obj);
    if (!causes.empty()) return Fail(Invalid(r, name, std::move(causes)));
    obj["status"] = json::object();
  } else if (r.name == "cronjobs") {
    EnsureObject(obj, "spec");
    json& spec = obj["spec"];
    if (!spec.contains("concurrencyPolicy")) spec["concurrencyPolicy"] = "Allow";
    if (!spec.contains("suspend")) spec["suspend"] = false;
    if (!spec.contains("successfulJobsHistoryLimit")) spec["successfulJobsHistoryLimit"] = 3;
    if (!spec.contains("failedJobsHistoryLimit")) spec["failedJobsHistoryLimit"] = 1;
    meta["generation"] = 1;
    obj["status"] = json::object();
  } else if (r.name == "namespaces") {
    if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
    meta["labels"]["kubernetes.io/metadata.name"] = name;
    obj["spec"] = {{"finalizers", {"kubernetes"}}};
    obj["status"] = {{"phase", "Active"}};
  } else if (r.name == "secrets") {
    if (!obj.contains("type")) obj["type"] = "Opaque";
  } else if (r.name == "persistentvolumeclaims") {
    obj["status"] = {{"phase", "Pending"}};
  }
  return store_.Put(r, std::move(obj));
}

ObjectPtr Registry::Commit(const ResourceInfo& r, json obj) {
  const json& meta = obj["metadata"];
  bool deleting = meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
  const json* finalizers = Find(obj, {"metadata", "finalizers"});
  bool has_finalizers = finalizers && finalizers->is_array() && !finalizers->empty();
  bool pod_pending_grace =
      r.name == "pods" && Int(obj, {"metadata", "deletionGracePeriodSeconds"}, 0) > 0;
  if (deleting && !has_finalizers && !pod_pending_grace) {
    std::string ns = Str(obj, {"metadata", "namespace"});
    std::string name = Str(obj, {"metadata", "name"});
    ObjectPtr removed = store_.Remove(r, ns, name, std::move(obj));
    if (r.name == "pods" && removed) ReleaseForegroundOwners(*removed);
    return removed;
  }
  return store_.Put(r, std::move(obj));
}

ApiResult<ObjectPtr> Registry::Update(const ResourceInfo& r, const std::string& ns,
                                      const std::string& name, json obj, bool status) {
  if (!obj.is_object()) return Fail(BadRequest("the body of the request was not a JSON object"));
  ObjectPtr old = store_.Get(r, ns, name);
  if (!old) return Fail(NotFound(r, name));
  EnsureObject(obj, "metadata");
  json& meta = obj["metadata"];
  std::string body_name = meta.value("name", "");
  if (body_name != name) {
    return Fail(BadRequest("the name of the object (" + body_name +
                           ") does not match the name on the URL (" + name + ")"));
  }
  if (r.namespaced && meta.contains("namespace") && meta.value("namespace", "") != ns) {
    return Fail(BadRequest(
        "the namespace of the provided object does not match the namespace sent on the request"));
  }
  std::string rv = meta.value("resourceVersion", "");
  if (!rv.empty() && rv != Str(*old, {"metadata", "resourceVersion"})) {
    return Fail(StaleConflict(r, name));
  }
  const json& old_meta = (*old)["metadata"];
  json updated;
  if (status) {
    updated = *old;
    if (obj.contains("status")) updated["status"] = obj["status"];
  } else {
    updated = std::move(obj);
    if (r.has_status) {
      if (old->contains("status")) updated["status"] = (*old)["status"];
      else updated.erase("status");
    }
    json& m = updated["metadata"];
    for (const char* keep : {"uid", "creationTimestamp", "deletionTimestamp",
                             "deletionGracePeriodSeconds", "generation"}) {
      if (old_meta.contains(keep)) m[keep] = old_meta[keep];
      else m.erase(keep);
    }
    if (r.namespaced) m["namespace"] = ns;
    if (r.name == "jobs") {
      DefaultJob(updated, Str(*old, {"metadata", "uid"}));
      auto causes = ValidateJob(updated);
      if (!causes.empty()) return Fail(Invalid(r, name, std::move(causes)));
    } else if (r.name == "pods" && updated.contains("spec")) {
      DefaultPodSpec(updated["spec"]);
    }
    if (m.contains("generation") && updated.value("spec", json()) != old->value("spec", json())) {
      m["generation"] = m["generation"].get<int64_t>() + 1;
    }
  }
  updated["kind"] = r.kind;
  updated["apiVersion"] = r.ApiVersion();
  return Commit(r, std::move(updated));
}

ApiResult<ObjectPtr> Registry::Mutate(const ResourceInfo& r, const std::string& ns,
                                      const std::string& name,
                                      const std::function<void(json&)>& mutate) {
  ObjectPtr old = store_.Get(r, ns, name);
  if (!old) return Fail(NotFound(r, name));
  json copy = *old;
  mutate(copy);
  if (copy == *old) return old;
  return Commit(r, std::move(copy));
}

ApiResult<DeleteResult> Registry::Delete(const ResourceInfo& r, const std::string& ns,
                                         const std::string& name, const DeleteOptions& options) {
  ObjectPtr old = store_.Get(r, ns, name);
  if (!old) return Fail(NotFound(r, name));
  const json& old_meta = (*old)["metadata"];
  if (options.precondition_uid && *options.precondition_uid != old_meta.value("uid", "")) {
    return Fail(Conflict(r, name,
                         "Precondition failed: UID in precondition: " + *options.precondition_uid +
                             ", UID in object meta: " + old_meta.value("uid", "")));
  }
  if (options.precondition_rv &&
      *options.precondition_rv != old_meta.value("resourceVersion", "")) {
    return Fail(Conflict(r, name,
                         "Precondition failed: ResourceVersion in precondition: " +
                             *options.precondition_rv + ", ResourceVersion in object meta: " +
                             old_meta.value("resourceVersion", "")));
  }
  DeleteResult result;
  std::string propagation;
  if (options.propagation) {
    propagation = *options.propagation;
  } else if (r.name == "jobs" || r.name == "cronjobs") {
    propagation = "Orphan";
    if (r.name == "jobs") {
      result.warnings.push_back(
          "299 - \"child pods are preserved by default when jobs are deleted; set "
          "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
          "this warning\"");
    }
  } else {
    propagation = "Background";
  }
  if (propagation != "Background" && propagation != "Foreground" && propagation != "Orphan") {
    return Fail(Invalid(r, name, {{"FieldValueNotSupported", "propagationPolicy",
                                   "Unsupported value: \"" + propagation +
                                       "\": supported values: \"Foreground\", \"Background\", "
                                       "\"Orphan\", \"nil\""}}));
  }

  json obj = *old;
  json& meta = obj["metadata"];
  bool already_deleting = meta.contains("deletionTimestamp");

  if (r.name == "pods") {
    int64_t grace = options.grace_period_seconds.value_or(
        Int(obj, {"spec", "terminationGracePeriodSeconds"}, 30));
    if (IsTerminalPod(obj) || Str(obj, {"spec", "nodeName"}).empty()) grace = 0;
    if (grace > 0) {
      if (!already_deleting) {
        meta["deletionTimestamp"] = Rfc3339(Now() + std::chrono::seconds(grace));
        meta["deletionGracePeriodSeconds"] = grace;
        result.object = store_.Put(r, std::move(obj));
      } else {
        result.object = old;
      }
      return result;
    }
    meta["deletionGracePeriodSeconds"] = 0;
  }

  if (propagation == "Orphan") OrphanDependents(obj);
  if (propagation == "Foreground") {
    if (!meta.contains("finalizers") || !meta["finalizers"].is_array()) meta["finalizers"] = json::array();
    if (std::find(meta["finalizers"].begin(), meta["finalizers"].end(), "foregroundDeletion") ==
        meta["finalizers"].end()) {
      meta["finalizers"].push_back("foregroundDeletion");
    }
  }
  if (!already_deleting) meta["deletionTimestamp"] = Rfc3339(Now());
  if (!meta.contains("deletionGracePeriodSeconds")) meta["deletionGracePeriodSeconds"] = 0;

  json owner = obj;
  const json* finalizers = Find(obj, {"metadata", "finalizers"});
  if (finalizers && finalizers->is_array() && !finalizers->empty()) {
    result.object = obj == *old ? old : store_.Put(r, std::move(obj));
    if (propagation == "Foreground") {
      DeleteDependents(owner, "Background");
      ReleaseForegroundOwners(owner);  // no dependents at all: done at once
      if (!store_.Get(r, ns, name)) result.removed = true;
    }
    return result;
  }
  if (r.name == "namespaces") DeleteNamespaceContents(name);
  result.object = store_.Remove(r, ns, name);
  result.removed = true;
  if (r.name == "pods") ReleaseForegroundOwners(*result.object);
  if (propagation == "Background") DeleteDependents(owner, "Background");
  return result;
}

void Registry::DeleteDependents(const json& owner, const std::string& propagation) {
  std::string uid = Str(owner, {"metadata", "uid"});
  std::string ns = Str(owner, {"metadata", "namespace"});
  for (const ResourceInfo* dep : {&Pods(), &Jobs()}) {
    for (const ObjectPtr& obj : store_.List(*dep, ns)) {
      if (!OwnedBy(*obj, uid) || Find(*obj, {"metadata", "deletionTimestamp"})) continue;
      DeleteOptions opts;
      opts.propagation = propagation;
      (void)Delete(*dep, ns, Str(*obj, {"metadata", "name"}), opts);
    }
  }
}

void Registry::OrphanDependents(const json& owner) {
  std::string uid = Str(owner, {"metadata", "uid"});
  std::string ns = Str(owner, {"metadata", "namespace"});
  for (const ResourceInfo* dep : {&Pods(), &Jobs()}) {
    for (const ObjectPtr& obj : store_.List(*dep, ns)) {
      if (!OwnedBy(*obj, uid)) continue;
      (void)Mutate(*dep, ns, Str(*obj, {"metadata", "name"}), [&](json& o) {
        json& refs = o["metadata"]["ownerReferences"];
        json kept = json::array();
        for (const json& ref : refs) {
          if (ref.value("uid", "") != uid) kept.push_back(ref);
        }
        if (kept.empty()) o["metadata"].erase("ownerReferences");
        else refs = kept;
      });
    }
  }
}

void Registry::ReleaseForegroundOwners(const json& dependent) {
  const json* refs = Find(dependent, {"metadata", "ownerReferences"});
  std::vector<std::pair<const ResourceInfo*, std::string>> owners;
  std::string ns = Str(dependent, {"metadata", "namespace"});
  if (refs && refs->is_array()) {
    for (const json& ref : *refs) {
      const ResourceInfo* r = FindKind(ref.value("apiVersion", ""), ref.value("kind", ""));
      if (r) owners.emplace_back(r, ref.value("name", ""));
    }
  }
  if (Find(dependent, {"metadata", "finalizers"})) {
    // The owner itself may be waiting with no dependents left (called with the owner).
    const ResourceInfo* self = FindKind(dependent.value("apiVersion", ""), dependent.value("kind", ""));
    if (self) owners.emplace_back(self, Str(dependent, {"metadata", "name"}));
  }
  for (const auto& [r, name] : owners) {
    ObjectPtr owner = store_.Get(*r, ns, name);
    if (!owner) continue;
    const json* fin = Find(*owner, {"metadata", "finalizers"});
    if (!fin || std::find(fin->begin(), fin->end(), "foregroundDeletion") == fin->end()) continue;
    std::string uid = Str(*owner, {"metadata", "uid"});
    bool blocked = false;
    for (const ResourceInfo* dep : {&Pods(), &Jobs()}) {
      for (const ObjectPtr& obj : store_.List(*dep, ns)) {
        if (OwnedBy(*obj, uid)) blocked = true;
      }
    }
    if (blocked) continue;
    (void)Mutate(*r, ns, name, [](json& o) {
      json& f = o["metadata"]["finalizers"];
      f.erase(std::remove(f.begin(), f.end(), "foregroundDeletion"), f.end());
      if (f.empty()) o["metadata"].erase("finalizers");
    });
  }
}

void Registry::DeleteNamespaceContents(const std::string& ns) {
  for (const ResourceInfo& r : AllResources()) {
    if (!r.namespaced) continue;
    for (const ObjectPtr& obj : store_.List(r, ns)) {
      store_.Remove(r, ns, Str(*obj, {"metadata", "name"}));
    }
  }
}

void Registry::RecordEvent(const json& involved, const std::string& type, const std::string& reason,
                           const std::string& message, const std::string& component,
                           const std::string& host) {
  std::string ns = Str(involved, {"metadata", "namespace"}, "default");
  std::string now = Rfc3339(Now());
  json source = {{"component", component}};
  if (!host.empty()) source["host"] = host;
  json event = {
      {"metadata", {{"name", Str(involved, {"metadata", "name"}) + "." + RandomHex(16)}, {"namespace", ns}}},
      {"involvedObject",
       {{"kind", involved.value("kind", "")},
        {"namespace", Str(involved, {"metadata", "namespace"})},
        {"name", Str(involved, {"metadata", "name"})},
        {"uid", Str(involved, {"metadata", "uid"})},
        {"apiVersion", involved.value("apiVersion", "")},
        {"resourceVersion", Str(involved, {"metadata", "resourceVersion"})}}},
      {"reason", reason},
      {"message", message},
      {"source", source},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1},
      {"type", type},
      {"eventTime", nullptr},
      {"reportingComponent", component},
      {"reportingInstance", host}};
  if (Str(involved, {"metadata", "namespace"}).empty()) event["involvedObject"].erase("namespace");
  (void)Create(Events(), ns, std::move(event));
}

}  // namespace kiln::kubesim
