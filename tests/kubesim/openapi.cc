#include "tests/kubesim/openapi.h"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>

namespace kiln::kubesim {
namespace {

// A field and its type: "string", "integer", "boolean", "object" (any object), "map" (string
// values), "[]string", "[]object", or a definition of the table below by its short name, plain
// ("ObjectMeta") or as a list ("[]Container"). Objects reached through a definition are closed:
// a field the definition does not list is unknown; "object" ones are open.
struct Field {
  const char* name;
  const char* type;
};

struct Definition {
  const char* id;      // short name used in Field::type
  const char* schema;  // the component name, as the apiserver's OpenAPI names it
  std::vector<Field> fields;
};

const std::vector<Field>& KindHead() {
  static const std::vector<Field> kHead = {
      {"apiVersion", "string"}, {"kind", "string"}, {"metadata", "ObjectMeta"}};
  return kHead;
}

// The Kubernetes 1.32 fields of the types kubectl's manifests for kiln's executor use; types
// further down (probes, volumes, affinity, statuses) stay open.
const std::vector<Definition>& Definitions() {
  static const std::vector<Definition> kDefs = {
      {"ObjectMeta",
       "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
       {{"annotations", "map"},
        {"creationTimestamp", "string"},
        {"deletionGracePeriodSeconds", "integer"},
        {"deletionTimestamp", "string"},
        {"finalizers", "[]string"},
        {"generateName", "string"},
        {"generation", "integer"},
        {"labels", "map"},
        {"managedFields", "[]object"},
        {"name", "string"},
        {"namespace", "string"},
        {"ownerReferences", "[]object"},
        {"resourceVersion", "string"},
        {"selfLink", "string"},
        {"uid", "string"}}},
      {"Container",
       "io.k8s.api.core.v1.Container",
       {{"args", "[]string"},
        {"command", "[]string"},
        {"env", "[]object"},
        {"envFrom", "[]object"},
        {"image", "string"},
        {"imagePullPolicy", "string"},
        {"lifecycle", "object"},
        {"livenessProbe", "object"},
        {"name", "string"},
        {"ports", "[]object"},
        {"readinessProbe", "object"},
        {"resizePolicy", "[]object"},
        {"resources", "object"},
        {"restartPolicy", "string"},
        {"securityContext", "object"},
        {"startupProbe", "object"},
        {"stdin", "boolean"},
        {"stdinOnce", "boolean"},
        {"terminationMessagePath", "string"},
        {"terminationMessagePolicy", "string"},
        {"tty", "boolean"},
        {"volumeDevices", "[]object"},
        {"volumeMounts", "[]object"},
        {"workingDir", "string"}}},
      {"PodSpec",
       "io.k8s.api.core.v1.PodSpec",
       {{"activeDeadlineSeconds", "integer"},
        {"affinity", "object"},
        {"automountServiceAccountToken", "boolean"},
        {"containers", "[]Container"},
        {"dnsConfig", "object"},
        {"dnsPolicy", "string"},
        {"enableServiceLinks", "boolean"},
        {"ephemeralContainers", "[]object"},
        {"hostAliases", "[]object"},
        {"hostIPC", "boolean"},
        {"hostNetwork", "boolean"},
        {"hostPID", "boolean"},
        {"hostUsers", "boolean"},
        {"hostname", "string"},
        {"imagePullSecrets", "[]object"},
        {"initContainers", "[]Container"},
        {"nodeName", "string"},
        {"nodeSelector", "map"},
        {"os", "object"},
        {"overhead", "map"},
        {"preemptionPolicy", "string"},
        {"priority", "integer"},
        {"priorityClassName", "string"},
        {"readinessGates", "[]object"},
        {"resourceClaims", "[]object"},
        {"resources", "object"},
        {"restartPolicy", "string"},
        {"runtimeClassName", "string"},
        {"schedulerName", "string"},
        {"schedulingGates", "[]object"},
        {"securityContext", "object"},
        {"serviceAccount", "string"},
        {"serviceAccountName", "string"},
        {"setHostnameAsFQDN", "boolean"},
        {"shareProcessNamespace", "boolean"},
        {"subdomain", "string"},
        {"terminationGracePeriodSeconds", "integer"},
        {"tolerations", "[]object"},
        {"topologySpreadConstraints", "[]object"},
        {"volumes", "[]object"}}},
      {"PodTemplateSpec",
       "io.k8s.api.core.v1.PodTemplateSpec",
       {{"metadata", "ObjectMeta"}, {"spec", "PodSpec"}}},
      {"JobSpec",
       "io.k8s.api.batch.v1.JobSpec",
       {{"activeDeadlineSeconds", "integer"},
        {"backoffLimit", "integer"},
        {"backoffLimitPerIndex", "integer"},
        {"completionMode", "string"},
        {"completions", "integer"},
        {"managedBy", "string"},
        {"manualSelector", "boolean"},
        {"maxFailedIndexes", "integer"},
        {"parallelism", "integer"},
        {"podFailurePolicy", "object"},
        {"podReplacementPolicy", "string"},
        {"selector", "object"},
        {"successPolicy", "object"},
        {"suspend", "boolean"},
        {"template", "PodTemplateSpec"},
        {"ttlSecondsAfterFinished", "integer"}}},
      {"JobTemplateSpec",
       "io.k8s.api.batch.v1.JobTemplateSpec",
       {{"metadata", "ObjectMeta"}, {"spec", "JobSpec"}}},
      {"CronJobSpec",
       "io.k8s.api.batch.v1.CronJobSpec",
       {{"concurrencyPolicy", "string"},
        {"failedJobsHistoryLimit", "integer"},
        {"jobTemplate", "JobTemplateSpec"},
        {"schedule", "string"},
        {"startingDeadlineSeconds", "integer"},
        {"successfulJobsHistoryLimit", "integer"},
        {"suspend", "boolean"},
        {"timeZone", "string"}}},
  };
  return kDefs;
}

// The fields of each served kind after apiVersion, kind and metadata.
std::vector<Field> KindFields(const std::string& kind) {
  static const std::map<std::string, std::vector<Field>> kKinds = {
      {"Namespace", {{"spec", "object"}, {"status", "object"}}},
      {"Node", {{"spec", "object"}, {"status", "object"}}},
      {"Pod", {{"spec", "PodSpec"}, {"status", "object"}}},
      {"Event",
       {{"action", "string"},
        {"count", "integer"},
        {"eventTime", "string"},
        {"firstTimestamp", "string"},
        {"involvedObject", "object"},
        {"lastTimestamp", "string"},
        {"message", "string"},
        {"reason", "string"},
        {"related", "object"},
        {"reportingComponent", "string"},
        {"reportingInstance", "string"},
        {"series", "object"},
        {"source", "object"},
        {"type", "string"}}},
      {"ConfigMap", {{"binaryData", "map"}, {"data", "map"}, {"immutable", "boolean"}}},
      {"Secret",
       {{"data", "map"}, {"immutable", "boolean"}, {"stringData", "map"}, {"type", "string"}}},
      {"PersistentVolumeClaim", {{"spec", "object"}, {"status", "object"}}},
      {"ServiceAccount",
       {{"automountServiceAccountToken", "boolean"},
        {"imagePullSecrets", "[]object"},
        {"secrets", "[]object"}}},
      {"Job", {{"spec", "JobSpec"}, {"status", "object"}}},
      {"CronJob", {{"spec", "CronJobSpec"}, {"status", "object"}}},
      {"Lease", {{"spec", "object"}}},
  };
  std::vector<Field> fields = KindHead();
  auto it = kKinds.find(kind);
  if (it != kKinds.end()) fields.insert(fields.end(), it->second.begin(), it->second.end());
  return fields;
}

const Definition* FindDefinition(std::string_view id) {
  for (const Definition& d : Definitions()) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

// "io.k8s.api.batch.v1.Job".
std::string KindSchemaName(const ResourceInfo& r) {
  std::string package = r.group.empty() ? "core" : r.group.substr(0, r.group.find('.'));
  return "io.k8s.api." + package + "." + r.version + "." + r.kind;
}

std::string Ref(const std::string& schema) { return "#/components/schemas/" + schema; }

json PropertySchema(std::string_view type) {
  bool list = type.starts_with("[]");
  std::string_view item = list ? type.substr(2) : type;
  json schema;
  if (const Definition* d = FindDefinition(item)) {
    schema = {{"allOf", json::array({{{"$ref", Ref(d->schema)}}})}, {"default", json::object()}};
  } else if (item == "map") {
    schema = {{"type", "object"}, {"additionalProperties", {{"type", "string"}, {"default", ""}}}};
  } else if (item == "object") {
    schema = {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
  } else {
    schema = {{"type", std::string(item)}};
    if (item == "integer") schema["format"] = "int64";
  }
  if (!list) return schema;
  if (schema.contains("allOf")) schema = schema["allOf"][0];
  return {{"type", "array"}, {"items", schema}};
}

json ObjectSchema(const std::vector<Field>& fields) {
  json properties = json::object();
  for (const Field& f : fields) properties[f.name] = PropertySchema(f.type);
  return {{"type", "object"}, {"properties", properties}};
}

json Gvk(const ResourceInfo& r) {
  return {{"group", r.group}, {"kind", r.kind}, {"version", r.version}};
}

json Param(const std::string& name, const std::string& in, const std::string& description,
           bool required = false) {
  json p = {{"name", name},
            {"in", in},
            {"description", description},
            {"schema", {{"type", "string"}, {"uniqueItems", true}}}};
  if (required) p["required"] = true;
  return p;
}

json WriteParams(bool patch) {
  json params = json::array(
      {Param("dryRun", "query",
             "When present, indicates that modifications should not be persisted."),
       Param("fieldManager", "query",
             "fieldManager is a name associated with the actor or entity that is making these "
             "changes."),
       Param("fieldValidation", "query",
             "fieldValidation instructs the server on how to handle objects in the request "
             "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore "
             "- Warn - Strict")});
  if (patch) {
    params.push_back({{"name", "force"},
                      {"in", "query"},
                      {"description", "Force is going to \"force\" Apply requests."},
                      {"schema", {{"type", "boolean"}, {"uniqueItems", true}}}});
  }
  return params;
}

// One operation of `r` (or its status subresource).
json Operation(const ResourceInfo& r, const std::string& action, const std::string& verb_id,
               bool status) {
  std::string group_id = r.group.empty() ? "Core" : r.group.substr(0, r.group.find('.'));
  group_id[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(group_id[0])));
  std::string version_id = r.version;
  version_id[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(version_id[0])));
  std::string tag = (r.group.empty() ? std::string("core") : r.group.substr(0, r.group.find('.'))) +
                    "_" + r.version;
  std::string object = r.namespaced ? "Namespaced" + r.kind : r.kind;
  std::string schema = KindSchemaName(r);
  if (action == "list") schema += "List";
  if (action == "deletecollection" || action == "delete") {
    schema = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
  }
  json op = {{"tags", {tag}},
             {"operationId", verb_id + group_id + version_id + object + (status ? "Status" : "")},
             {"responses",
              {{"200",
                {{"description", "OK"},
                 {"content", {{"application/json", {{"schema", {{"$ref", Ref(schema)}}}}}}}}},
               {"401", {{"description", "Unauthorized"}}}}},
             {"x-kubernetes-action", action},
             {"x-kubernetes-group-version-kind", Gvk(r)}};
  if (action == "post" || action == "put") {
    op["parameters"] = WriteParams(false);
    op["requestBody"] = {{"content", {{"*/*", {{"schema", {{"$ref", Ref(KindSchemaName(r))}}}}}}},
                         {"required", true}};
  } else if (action == "patch") {
    // No strategic-merge-patch+json here: kubectl then builds its apply patches from its
    // compiled-in types, not from these (shallow) schemas.
    json patch = {{"schema", {{"$ref", Ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}}}};
    op["parameters"] = WriteParams(true);
    op["requestBody"] = {{"content",
                          {{"application/apply-patch+yaml", patch},
                           {"application/json-patch+json", patch},
                           {"application/merge-patch+json", patch}}},
                         {"required", true}};
  } else if (action == "list" || action == "deletecollection") {
    op["parameters"] = json::array({Param("labelSelector", "query", "A selector on labels."),
                                    Param("fieldSelector", "query", "A selector on fields.")});
  }
  return op;
}

std::string GvPath(const std::string& group, const std::string& version) {
  return group.empty() ? "api/" + version : "apis/" + group + "/" + version;
}

json BuildDocument(const std::string& gv_path) {
  json paths = json::object();
  json schemas = json::object();
  for (const ResourceInfo& r : AllResources()) {
    if (GvPath(r.group, r.version) != gv_path) continue;
    std::string base = "/" + gv_path + (r.namespaced ? "/namespaces/{namespace}/" : "/") + r.name;
    json scope = json::array();
    if (r.namespaced) {
      scope.push_back(Param("namespace", "path",
                            "object name and auth scope, such as for teams and projects", true));
    }
    json named = scope;
    named.insert(named.begin(), Param("name", "path", "name of the " + r.kind, true));
    paths[base] = {{"get", Operation(r, "list", "list", false)},
                   {"post", Operation(r, "post", "create", false)},
                   {"delete", Operation(r, "deletecollection", "deleteCollection", false)},
                   {"parameters", scope}};
    paths[base + "/{name}"] = {{"get", Operation(r, "get", "read", false)},
                               {"put", Operation(r, "put", "replace", false)},
                               {"patch", Operation(r, "patch", "patch", false)},
                               {"delete", Operation(r, "delete", "delete", false)},
                               {"parameters", named}};
    if (r.has_status) {
      paths[base + "/{name}/status"] = {{"get", Operation(r, "get", "read", true)},
                                        {"put", Operation(r, "put", "replace", true)},
                                        {"patch", Operation(r, "patch", "patch", true)},
                                        {"parameters", named}};
    }
    json kind = ObjectSchema(KindFields(r.kind));
    kind["x-kubernetes-group-version-kind"] = json::array({Gvk(r)});
    schemas[KindSchemaName(r)] = kind;
    ResourceInfo list = r;
    list.kind += "List";
    schemas[KindSchemaName(r) + "List"] = {
        {"type", "object"},
        {"properties",
         {{"apiVersion", {{"type", "string"}}},
          {"kind", {{"type", "string"}}},
          {"items", {{"type", "array"}, {"items", {{"$ref", Ref(KindSchemaName(r))}}}}},
          {"metadata", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}},
        {"x-kubernetes-group-version-kind", json::array({Gvk(list)})}};
  }
  if (paths.empty()) return nullptr;
  for (const Definition& d : Definitions()) schemas[d.schema] = ObjectSchema(d.fields);
  schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = {{"type", "object"}};
  schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Status"] = {
      {"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0-kubesim"}}},
          {"paths", paths},
          {"components", {{"schemas", schemas}}}};
}

struct Documents {
  std::map<std::string, json, std::less<>> by_path;
  json index;
};

const Documents& AllDocuments() {
  static const Documents kDocs = [] {
    Documents docs;
    docs.index = {{"paths", json::object()}};
    for (const ResourceInfo& r : AllResources()) {
      std::string path = GvPath(r.group, r.version);
      if (docs.by_path.contains(path)) continue;
      json doc = BuildDocument(path);
      // The index pins each document by a hash of its content, as the apiserver does (the
      // client caches by it).
      uint64_t hash = 14695981039346656037ull;
      for (char c : doc.dump()) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llX", static_cast<unsigned long long>(hash));
      docs.index["paths"][path] = {{"serverRelativeURL", "/openapi/v3/" + path + "?hash=" + hex}};
      docs.by_path.emplace(path, std::move(doc));
    }
    return docs;
  }();
  return kDocs;
}

void PruneUnknown(const std::vector<Field>& fields, json& object, const std::string& prefix,
                  std::vector<std::string>& out) {
  std::vector<std::string> unknown;
  for (auto& [key, value] : object.items()) {
    const Field* field = nullptr;
    for (const Field& f : fields) {
      if (key == f.name) field = &f;
    }
    std::string path = prefix.empty() ? key : prefix + "." + key;
    if (field == nullptr) {
      out.push_back(path);
      unknown.push_back(key);
      continue;
    }
    std::string_view type = field->type;
    bool list = type.starts_with("[]");
    const Definition* d = FindDefinition(list ? type.substr(2) : type);
    if (d == nullptr) continue;
    if (!list && value.is_object()) PruneUnknown(d->fields, value, path, out);
    if (list && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        if (value[i].is_object()) {
          PruneUnknown(d->fields, value[i], path + "[" + std::to_string(i) + "]", out);
        }
      }
    }
  }
  for (const std::string& key : unknown) object.erase(key);
}

}  // namespace

json OpenApiV3Index() { return AllDocuments().index; }

std::optional<json> OpenApiV3Document(std::string_view gv_path) {
  const Documents& docs = AllDocuments();
  auto it = docs.by_path.find(gv_path);
  if (it == docs.by_path.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> PruneUnknownFields(const ResourceInfo& r, json& object) {
  std::vector<std::string> out;
  if (object.is_object()) PruneUnknown(KindFields(r.kind), object, "", out);
  return out;
}

}  // namespace kiln::kubesim
