#include "tests/kubesim/table.h"

#include "tests/kubesim/util.h"

namespace kiln::kubesim {
namespace {

json Column(const char* name, const char* type, const char* format, const char* description,
            int priority = 0) {
  return {{"name", name}, {"type", type}, {"format", format}, {"description", description},
          {"priority", priority}};
}

std::string Age(const json& obj) {
  auto created = ParseRfc3339(Str(obj, {"metadata", "creationTimestamp"}));
  if (!created) return "<unknown>";
  return HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now() - *created));
}

bool HasCondition(const json& obj, const char* type) {
  const json* conds = Find(obj, {"status", "conditions"});
  if (!conds || !conds->is_array()) return false;
  for (const json& c : *conds) {
    if (c.value("type", "") == type && c.value("status", "") == "True") return true;
  }
  return false;
}

json PodCells(const json& pod) {
  std::string reason = Str(pod, {"status", "phase"});
  if (!Str(pod, {"status", "reason"}).empty()) reason = Str(pod, {"status", "reason"});
  int total = 0;
  int ready = 0;
  int64_t restarts = 0;
  if (const json* cs = Find(pod, {"spec", "containers"}); cs && cs->is_array()) {
    total = static_cast<int>(cs->size());
  }
  if (const json* statuses = Find(pod, {"status", "containerStatuses"}); statuses && statuses->is_array()) {
    bool has_running = false;
    for (auto it = statuses->rbegin(); it != statuses->rend(); ++it) {
      const json& s = *it;
      restarts += s.value("restartCount", 0);
      if (const json* w = Find(s, {"state", "waiting"}); w && !Str(*w, {"reason"}).empty()) {
        reason = Str(*w, {"reason"});
      } else if (const json* t = Find(s, {"state", "terminated"})) {
        if (!Str(*t, {"reason"}).empty()) {
          reason = Str(*t, {"reason"});
        } else if (Int(*t, {"signal"}, 0) != 0) {
          reason = "Signal:" + std::to_string(Int(*t, {"signal"}, 0));
        } else {
          reason = "ExitCode:" + std::to_string(Int(*t, {"exitCode"}, 0));
        }
      } else if (Find(s, {"state", "running"}) && s.value("ready", false)) {
        has_running = true;
        ++ready;
      }
    }
    if (reason == "Completed" && has_running) reason = "Running";
  }
  if (Find(pod, {"metadata", "deletionTimestamp"})) reason = "Terminating";
  std::string node = Str(pod, {"spec", "nodeName"}, "<none>");
  std::string ip = Str(pod, {"status", "podIP"}, "<none>");
  return {Str(pod, {"metadata", "name"}), std::to_string(ready) + "/" + std::to_string(total),
          reason, restarts, Age(pod), ip, node, "<none>", "<none>"};
}

json JobCells(const json& job) {
  std::string status = "Running";
  if (HasCondition(job, "Complete")) status = "Complete";
  else if (HasCondition(job, "Failed")) status = "Failed";
  else if (Find(job, {"metadata", "deletionTimestamp"})) status = "Terminating";
  else if (HasCondition(job, "Suspended")) status = "Suspended";
  else if (HasCondition(job, "FailureTarget")) status = "FailureTarget";
  else if (HasCondition(job, "SuccessCriteriaMet")) status = "SuccessCriteriaMet";
  int64_t succeeded = Int(job, {"status", "succeeded"}, 0);
  std::string completions;
  const json* c = Find(job, {"spec", "completions"});
  if (c && c->is_number_integer()) {
    completions = std::to_string(succeeded) + "/" + std::to_string(c->get<int64_t>());
  } else {
    int64_t parallelism = Int(job, {"spec", "parallelism"}, 1);
    completions = parallelism > 1 ? std::to_string(succeeded) + "/1 of " + std::to_string(parallelism)
                                  : std::to_string(succeeded) + "/1";
  }
  std::string duration;
  if (auto start = ParseRfc3339(Str(job, {"status", "startTime"}))) {
    auto end = ParseRfc3339(Str(job, {"status", "completionTime"}))
                   .value_or(std::chrono::system_clock::now());
    duration = HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(end - *start));
  }
  std::string containers;
  std::string images;
  if (const json* cs = Find(job, {"spec", "template", "spec", "containers"}); cs && cs->is_array()) {
    for (const json& ct : *cs) {
      containers += (containers.empty() ? "" : ",") + ct.value("name", "");
      images += (images.empty() ? "" : ",") + ct.value("image", "");
    }
  }
  std::string selector;
  if (const json* ml = Find(job, {"spec", "selector", "matchLabels"}); ml && ml->is_object()) {
    for (const auto& [k, v] : ml->items()) {
      selector += (selector.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : "");
    }
  }
  return {Str(job, {"metadata", "name"}), status, completions, duration, Age(job), containers,
          images, selector};
}

json NodeCells(const json& node) {
  std::string status = HasCondition(node, "Ready") ? "Ready" : "NotReady";
  if (const json* u = Find(node, {"spec", "unschedulable"}); u && u->is_boolean() && u->get<bool>()) {
    status += ",SchedulingDisabled";
  }
  std::string roles;
  if (const json* labels = Find(node, {"metadata", "labels"}); labels && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (k.starts_with("node-role.kubernetes.io/")) {
        roles += (roles.empty() ? "" : ",") + k.substr(24);
      }
    }
  }
  if (roles.empty()) roles = "<none>";
  return {Str(node, {"metadata", "name"}), status, roles, Age(node),
          Str(node, {"status", "nodeInfo", "kubeletVersion"})};
}

}  // namespace

std::string HumanDuration(std::chrono::seconds d) {
  long long seconds = d.count();
  auto f = [](long long a, const char* ua, long long b = 0, const char* ub = "") {
    std::string s = std::to_string(a) + ua;
    if (b != 0) s += std::to_string(b) + ub;
    return s;
  };
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return f(seconds, "s");
  long long minutes = seconds / 60;
  if (minutes < 10) return f(minutes, "m", seconds % 60, "s");
  if (minutes < 180) return f(minutes, "m");
  long long hours = seconds / 3600;
  if (hours < 8) return f(hours, "h", minutes % 60, "m");
  if (hours < 48) return f(hours, "h");
  if (hours < 24 * 8) return f(hours / 24, "d", hours % 24, "h");
  if (hours < 24 * 365 * 2) return f(hours / 24, "d");
  if (hours < 24 * 365 * 8) return f(hours / 24 / 365, "y", (hours / 24) % 365, "d");
  return f(hours / 24 / 365, "y");
}

json ToTable(const ResourceInfo& r, const std::vector<ObjectPtr>& objects,
             const std::string& resource_version) {
  json columns;
  const char* name_desc =
      "Name must be unique within a namespace. Is required when creating resources, although some "
      "resources may allow a client to request the generation of an appropriate name "
      "automatically. Name is primarily intended for creation idempotence and configuration "
      "definition. Cannot be updated. More info: "
      "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
  const char* age_desc =
      "CreationTimestamp is a timestamp representing the server time when this object was created.";
  if (r.name == "pods") {
    columns = {Column("Name", "string", "name", name_desc),
               Column("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic."),
               Column("Status", "string", "", "The aggregate status of the containers in this pod."),
               Column("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
               Column("Age", "string", "", age_desc),
               Column("IP", "string", "", "IP address allocated to the pod.", 1),
               Column("Node", "string", "", "Name of the node this pod is running on.", 1),
               Column("Nominated Node", "string", "", "Name of the node this pod is nominated to run on.", 1),
               Column("Readiness Gates", "string", "", "Readiness gates of this pod.", 1)};
  } else if (r.name == "jobs") {
    columns = {Column("Name", "string", "name", name_desc),
               Column("Status", "string", "", "Status of the job."),
               Column("Completions", "string", "", "The desired number of successfully finished pods the job should be run with."),
               Column("Duration", "string", "", "Time required to complete the job."),
               Column("Age", "string", "", age_desc),
               Column("Containers", "string", "", "Names of each container in the template.", 1),
               Column("Images", "string", "", "Images referenced by each container in the template.", 1),
               Column("Selector", "string", "", "A label query over pods that should match the pod count.", 1)};
  } else if (r.name == "nodes") {
    columns = {Column("Name", "string", "name", name_desc),
               Column("Status", "string", "", "The status of the node"),
               Column("Roles", "string", "", "The roles of the node"),
               Column("Age", "string", "", age_desc),
               Column("Version", "string", "", "Kubelet Version reported by the node.")};
  } else if (r.name == "namespaces") {
    columns = {Column("Name", "string", "name", name_desc),
               Column("Status", "string", "", "The status of the namespace"),
               Column("Age", "string", "", age_desc)};
  } else {
    columns = {Column("Name", "string", "name", name_desc), Column("Age", "string", "", age_desc)};
  }
  json rows = json::array();
  for (const ObjectPtr& obj : objects) {
    json cells;
    if (r.name == "pods") cells = PodCells(*obj);
    else if (r.name == "jobs") cells = JobCells(*obj);
    else if (r.name == "nodes") cells = NodeCells(*obj);
    else if (r.name == "namespaces") cells = {Str(*obj, {"metadata", "name"}), Str(*obj, {"status", "phase"}), Age(*obj)};
    else cells = {Str(*obj, {"metadata", "name"}), Age(*obj)};
    json meta = (*obj)["metadata"];
    meta.erase("managedFields");
    rows.push_back({{"cells", cells},
                    {"object", {{"kind", "PartialObjectMetadata"},
                                {"apiVersion", "meta.k8s.io/v1"},
                                {"metadata", meta}}}});
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", {{"resourceVersion", resource_version}}},
          {"columnDefinitions", columns},
          {"rows", rows}};
}

}  // namespace kiln::kubesim
