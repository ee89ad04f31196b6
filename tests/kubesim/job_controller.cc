#include "tests/kubesim/job_controller.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <set>

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;

constexpr const char* kTrackingFinalizer = "batch.kubernetes.io/job-tracking";
constexpr const char* kIndexKey = "batch.kubernetes.io/job-completion-index";

// The completion index of an Indexed Job's pod (from its annotation), or -1.
int64_t IndexOf(const json& pod) {
  std::string text = Str(pod, {"metadata", "annotations", kIndexKey});
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9) {
    return -1;
  }
  return std::stoll(text);
}

// "1,3-5,7" (status.completedIndexes) to the set of indexes below `limit`, and back.
std::set<int64_t> ParseIndexes(const std::string& text, int64_t limit) {
  std::set<int64_t> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() : comma + 1;
    size_t dash = part.find('-');
    try {
      int64_t first = std::stoll(part.substr(0, dash));
      int64_t last = dash == std::string::npos ? first : std::stoll(part.substr(dash + 1));
      for (int64_t i = first; i <= last && i < limit; ++i) out.insert(i);
    } catch (const std::exception&) {
    }
  }
  return out;
}

std::string FormatIndexes(const std::set<int64_t>& indexes) {
  std::string out;
  for (auto it = indexes.begin(); it != indexes.end();) {
    int64_t first = *it;
    int64_t last = first;
    for (++it; it != indexes.end() && *it == last + 1; ++it) last = *it;
    if (!out.empty()) out += ",";
    out += std::to_string(first);
    if (last > first) out += "-" + std::to_string(last);
  }
  return out;
}

bool HasFinalizer(const json& obj, const char* finalizer) {
  const json* f = Find(obj, {"metadata", "finalizers"});
  return f && f->is_array() && std::find(f->begin(), f->end(), finalizer) != f->end();
}

const json* ConditionOf(const json& obj, const char* type) {
  const json* conds = Find(obj, {"status", "conditions"});
  if (!conds || !conds->is_array()) return nullptr;
  for (const json& c : *conds) {
    if (c.value("type", "") == type && c.value("status", "") == "True") return &c;
  }
  return nullptr;
}

// The uid of the Job controlling `pod`, or "".
std::pair<std::string, std::string> ControllerOf(const json& pod) {
  const json* refs = Find(pod, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return {};
  for (const json& ref : *refs) {
    if (ref.value("controller", false) && ref.value("kind", "") == "Job" &&
        ref.value("apiVersion", "") == "batch/v1") {
      return {ref.value("name", ""), ref.value("uid", "")};
    }
  }
  return {};
}

std::string Phase(const json& pod) { return Str(pod, {"status", "phase"}); }
bool Terminal(const json& pod) { return Phase(pod) == "Succeeded" || Phase(pod) == "Failed"; }

struct PolicyMatch {
  std::string action;  // FailJob, Ignore, Count, FailIndex; "" when no rule matched
  std::string message;
};

PolicyMatch MatchPodFailurePolicy(const json& job, const json& pod) {
  const json* rules = Find(job, {"spec", "podFailurePolicy", "rules"});
  if (!rules || !rules->is_array()) return {};
  std::string ns = Str(pod, {"metadata", "namespace"});
  std::string name = Str(pod, {"metadata", "name"});
  for (size_t i = 0; i < rules->size(); ++i) {
    const json& rule = (*rules)[i];
    std::string action = rule.value("action", "");
    if (const json* on = Find(rule, {"onExitCodes"})) {
      std::string only = on->value("containerName", "");
      bool in = on->value("operator", "In") == "In";
      const json* values = Find(*on, {"values"});
      const json* statuses = Find(pod, {"status", "containerStatuses"});
      if (!statuses || !statuses->is_array() || !values || !values->is_array()) continue;
      for (const json& cs : *statuses) {
        const json* term = Find(cs, {"state", "terminated"});
        if (!term) continue;
        int64_t code = Int(*term, {"exitCode"}, 0);
        if (code == 0) continue;
        if (!only.empty() && cs.value("name", "") != only) continue;
        bool listed = std::find(values->begin(), values->end(), code) != values->end();
        if (listed == in) {
          return {action, "Container " + cs.value("name", "") + " for pod " + ns + "/" + name +
                              " failed with exit code " + std::to_string(code) +
                              " matching " + action + " rule at index " + std::to_string(i)};
        }
      }
    } else if (const json* patterns = Find(rule, {"onPodConditions"}); patterns && patterns->is_array()) {
      const json* conds = Find(pod, {"status", "conditions"});
      if (!conds || !conds->is_array()) continue;
      for (const json& p : *patterns) {
        for (const json& c : *conds) {
          if (c.value("type", "") == p.value("type", "") &&
              c.value("status", "") == p.value("status", "True")) {
            return {action, "Pod " + ns + "/" + name + " has condition " + p.value("type", "") +
                                " matching " + action + " rule at index " + std::to_string(i)};
          }
        }
      }
    }
  }
  return {};
}

json NewCondition(const std::string& type, const std::string& reason, const std::string& message,
                  const std::string& now) {
  return {{"type", type},         {"status", "True"},        {"lastProbeTime", now},
          {"lastTransitionTime", now}, {"reason", reason}, {"message", message}};
}

}  // namespace

struct JobController::Impl {
  Impl(net::io_context& io_context, Registry& reg) : io(io_context), registry(reg) {}

  net::io_context& io;
  Registry& registry;
  std::set<std::string> queue;
  std::set<std::string> orphan_pods;
  bool scheduled = false;
  std::map<std::string, std::unique_ptr<net::steady_timer>> timers;  // by job uid
  // The names of the pods each Job (by uid) controls, so a sync reads its own pods only.
  std::map<std::string, std::set<std::string>, std::less<>> pods_by_owner;

  Store& store() { return registry.store(); }

  void Post() {
    if (scheduled) return;
    scheduled = true;
    net::post(io, [this] { Drain(); });
  }

  void Drain() {
    scheduled = false;
    auto jobs = std::move(queue);
    queue.clear();
    auto orphans = std::move(orphan_pods);
    orphan_pods.clear();
    for (const std::string& key : jobs) {
      size_t slash = key.find('/');
      Sync(key.substr(0, slash), key.substr(slash + 1));
    }
    for (const std::string& key : orphans) {
      size_t slash = key.find('/');
      RemoveFinalizer(key.substr(0, slash), key.substr(slash + 1));
    }
  }

  void RemoveFinalizer(const std::string& ns, const std::string& name) {
    (void)registry.Mutate(Pods(), ns, name, [](json& p) {
      json& f = p["metadata"]["finalizers"];
      if (!f.is_array()) return;
      f.erase(std::remove(f.begin(), f.end(), kTrackingFinalizer), f.end());
      if (f.empty()) p["metadata"].erase("finalizers");
    });
  }

  void OnPod(const StoreEvent& e) {
    const json& pod = *e.object;
    auto [job, uid] = ControllerOf(pod);
    if (e.old) {
      if (std::string old_uid = ControllerOf(*e.old).second; !old_uid.empty() && old_uid != uid) {
        Unindex(old_uid, Str(pod, {"metadata", "name"}));
      }
    }
    if (!uid.empty()) {
      if (e.type == EventType::kDeleted) Unindex(uid, Str(pod, {"metadata", "name"}));
      else pods_by_owner[uid].insert(Str(pod, {"metadata", "name"}));
    }
    std::string ns = Str(pod, {"metadata", "namespace"});
    ObjectPtr owner = job.empty() ? nullptr : store().Get(Jobs(), ns, job);
    if (owner && Str(*owner, {"metadata", "uid"}) == uid) {
      queue.insert(Store::Key(ns, job));
    } else if (HasFinalizer(pod, kTrackingFinalizer) && e.type != EventType::kDeleted) {
      // A pod whose Job is gone (orphaned): the controller releases it.
      orphan_pods.insert(Store::Key(ns, Str(pod, {"metadata", "name"})));
    }
    Post();
  }

  void Unindex(const std::string& uid, const std::string& name) {
    auto it = pods_by_owner.find(uid);
    if (it == pods_by_owner.end()) return;
    it->second.erase(name);
    if (it->second.empty()) pods_by_owner.erase(it);
  }

  void ResyncAt(const json& job, SysTime when) {
    std::string uid = Str(job, {"metadata", "uid"});
    auto timer = std::make_unique<net::steady_timer>(io);
    timer->expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(
        when - std::chrono::system_clock::now()));
    timer->async_wait([this, key = Store::Key(Str(job, {"metadata", "namespace"}),
                                              Str(job, {"metadata", "name"}))](boost::system::error_code ec) {
      if (ec) return;
      queue.insert(key);
      Post();
    });
    timers[uid] = std::move(timer);
  }

  // `index` >= 0 for an Indexed Job: the pod then carries its completion index as annotation,
  // label and JOB_COMPLETION_INDEX, and is named and hostnamed after it.
  void CreatePod(const json& job, int64_t index = -1) {
    const json& tmpl = job["spec"]["template"];
    std::string name = Str(job, {"metadata", "name"});
    json pod = {{"metadata", tmpl.value("metadata", json::object())}, {"spec", tmpl["spec"]}};
    json& meta = pod["metadata"];
    meta.erase("name");
    meta["generateName"] = name + "-";
    if (index >= 0) {
      std::string idx = std::to_string(index);
      meta["generateName"] = name + "-" + idx + "-";
      if (!meta["annotations"].is_object()) meta["annotations"] = json::object();
      meta["annotations"][kIndexKey] = idx;
      if (!meta["labels"].is_object()) meta["labels"] = json::object();
      meta["labels"][kIndexKey] = idx;
      json& spec = pod["spec"];
      if (Str(spec, {"hostname"}).empty()) spec["hostname"] = name + "-" + idx;
      json env_var = {{"name", "JOB_COMPLETION_INDEX"},
                      {"valueFrom",
                       {{"fieldRef",
                         {{"apiVersion", "v1"},
                          {"fieldPath", std::string("metadata.annotations['") + kIndexKey + "']"}}}}}};
      for (const char* list : {"initContainers", "containers"}) {
        if (!spec.contains(list) || !spec[list].is_array()) continue;
        for (json& c : spec[list]) {
          if (!c["env"].is_array()) c["env"] = json::array();
          bool has = std::any_of(c["env"].begin(), c["env"].end(), [](const json& e) {
            return e.value("name", "") == "JOB_COMPLETION_INDEX";
          });
          if (!has) c["env"].push_back(env_var);
        }
      }
    }
    meta["ownerReferences"] = {{{"apiVersion", "batch/v1"},
                                {"kind", "Job"},
                                {"name", name},
                                {"uid", Str(job, {"metadata", "uid"})},
                                {"controller", true},
                                {"blockOwnerDeletion", true}}};
    meta["finalizers"] = {kTrackingFinalizer};
    auto created = registry.Create(Pods(), Str(job, {"metadata", "namespace"}), std::move(pod));
    if (created) {
      registry.RecordEvent(job, "Normal", "SuccessfulCreate",
                           "Created pod: " + Str(**created, {"metadata", "name"}), "job-controller");
    } else {
      registry.RecordEvent(job, "Warning", "FailedCreate",
                           "Error creating: " + created.error().message, "job-controller");
    }
  }

  void Sync(const std::string& ns, const std::string& name) {
    ObjectPtr current = store().Get(Jobs(), ns, name);
    if (!current) return;
    const json& job = *current;
    std::string managed_by = Str(job, {"spec", "managedBy"}, "kubernetes.io/job-controller");
    if (managed_by != "kubernetes.io/job-controller") return;
    std::string uid = Str(job, {"metadata", "uid"});
    auto now_time = std::chrono::system_clock::now();
    std::string now = Rfc3339(now_time);

    std::vector<ObjectPtr> pods;
    if (auto owned = pods_by_owner.find(uid); owned != pods_by_owner.end()) {
      for (const std::string& pod_name : owned->second) {
        ObjectPtr pod = store().Get(Pods(), ns, pod_name);
        if (pod && ControllerOf(*pod).second == uid) pods.push_back(pod);
      }
    }
    bool finished = ConditionOf(job, "Complete") || ConditionOf(job, "Failed");
    if (finished) {
      for (const ObjectPtr& pod : pods) {
        if (HasFinalizer(*pod, kTrackingFinalizer) && Terminal(*pod)) {
          RemoveFinalizer(ns, Str(*pod, {"metadata", "name"}));
        }
      }
      ScheduleTtl(job);
      return;
    }

    json status = job.value("status", json::object());
    const json& job_spec = job["spec"];
    bool indexed = Str(job_spec, {"completionMode"}) == "Indexed";
    int64_t completions_wanted = Int(job_spec, {"completions"}, 0);
    std::set<int64_t> completed_indexes;
    std::set<int64_t> active_indexes;
    if (indexed) completed_indexes = ParseIndexes(Str(status, {"completedIndexes"}), completions_wanted);
    int64_t succeeded = Int(status, {"succeeded"}, 0);
    int64_t failed = Int(status, {"failed"}, 0);
    std::optional<PolicyMatch> fail_job;
    std::vector<std::string> release;
    int64_t active = 0;
    int64_t terminating = 0;
    int64_t ready = 0;
    std::vector<ObjectPtr> active_pods;
    for (const ObjectPtr& pod : pods) {
      const json& p = *pod;
      bool deleting = Find(p, {"metadata", "deletionTimestamp"}) != nullptr;
      if (Terminal(p)) {
        if (!HasFinalizer(p, kTrackingFinalizer)) continue;  // already counted
        release.push_back(Str(p, {"metadata", "name"}));
        if (Phase(p) == "Succeeded") {
          int64_t index = IndexOf(p);
          if (!indexed) ++succeeded;
          else if (index >= 0 && index < completions_wanted) completed_indexes.insert(index);
          continue;
        }
        PolicyMatch match = MatchPodFailurePolicy(job, p);
        if (match.action == "Ignore") continue;
        if (match.action == "FailJob" && !fail_job) fail_job = match;
        ++failed;
        continue;
      }
      if (deleting) {
        ++terminating;
        continue;
      }
      ++active;
      active_pods.push_back(pod);
      if (indexed) active_indexes.insert(IndexOf(p));
      if (const json* conds = Find(p, {"status", "conditions"}); conds && conds->is_array()) {
        for (const json& c : *conds) {
          if (c.value("type", "") == "Ready" && c.value("status", "") == "True") ++ready;
        }
      }
    }
    for (const std::string& pod : release) RemoveFinalizer(ns, pod);
    // An Indexed Job counts succeeded indexes, not pods.
    if (indexed) succeeded = static_cast<int64_t>(completed_indexes.size());

    const json& spec = job["spec"];
    bool suspended = spec.value("suspend", false);
    if (!status.contains("startTime") && !suspended) status["startTime"] = now;
    json& conditions = status["conditions"];
    if (!conditions.is_array()) conditions = json::array();
    const json* failure_target = nullptr;
    const json* success = nullptr;
    for (const json& c : conditions) {
      if (c.value("status", "") != "True") continue;
      if (c.value("type", "") == "FailureTarget") failure_target = &c;
      if (c.value("type", "") == "SuccessCriteriaMet") success = &c;
    }
    std::optional<json> interim;
    if (!failure_target && !success) {
      int64_t backoff_limit = Int(spec, {"backoffLimit"}, 6);
      const json* completions = Find(spec, {"completions"});
      int64_t deadline = Int(spec, {"activeDeadlineSeconds"}, -1);
      auto started = ParseRfc3339(Str(status, {"startTime"}));
      if (fail_job) {
        interim = NewCondition("FailureTarget", "PodFailurePolicy", fail_job->message, now);
      } else if (failed > backoff_limit) {
        interim = NewCondition("FailureTarget", "BackoffLimitExceeded",
                               "Job has reached the specified backoff limit", now);
      } else if (deadline >= 0 && started && now_time >= *started + std::chrono::seconds(deadline)) {
        interim = NewCondition("FailureTarget", "DeadlineExceeded",
                               "Job was active longer than specified deadline", now);
      } else if ((completions && completions->is_number_integer() &&
                  succeeded >= completions->get<int64_t>()) ||
                 ((!completions || completions->is_null()) && succeeded > 0 && active == 0)) {
        interim = NewCondition("SuccessCriteriaMet", "CompletionsReached",
                               "Reached expected number of succeeded pods", now);
      } else if (deadline >= 0 && started && !timers.count(uid)) {
        ResyncAt(job, *started + std::chrono::seconds(deadline));
      }
      if (interim) {
        conditions.push_back(*interim);
        failure_target = interim->value("type", "") == "FailureTarget" ? &conditions.back() : nullptr;
        success = failure_target ? nullptr : &conditions.back();
      }
    }
    std::optional<json> final_condition;
    if (failure_target || success) {
      const json& target = failure_target ? *failure_target : *success;
      for (const ObjectPtr& pod : active_pods) {
        DeleteOptions opts;
        opts.propagation = "Background";
        if (registry.Delete(Pods(), ns, Str(*pod, {"metadata", "name"}), opts)) ++terminating;
      }
      active = 0;
      ready = 0;
      if (terminating == 0) {
        final_condition = NewCondition(failure_target ? "Failed" : "Complete",
                                       target.value("reason", ""), target.value("message", ""), now);
        conditions.push_back(*final_condition);
        if (success) status["completionTime"] = now;
      }
    } else if (!suspended && !Find(job, {"metadata", "deletionTimestamp"})) {
      int64_t parallelism = Int(spec, {"parallelism"}, 1);
      int64_t want = parallelism;
      const json* completions = Find(spec, {"completions"});
      if (completions && completions->is_number_integer()) {
        want = std::min(parallelism, completions->get<int64_t>() - succeeded);
      }
      int64_t pending = active;
      if (Str(spec, {"podReplacementPolicy"}) == "Failed") pending += terminating;
      if (indexed) {
        // The lowest indexes that neither succeeded nor have a pod, up to parallelism.
        for (int64_t i = 0; i < completions_wanted && pending < want; ++i) {
          if (completed_indexes.contains(i) || active_indexes.contains(i)) continue;
          CreatePod(job, i);
          ++pending;
          ++active;
        }
      } else {
        for (int64_t i = pending; i < want; ++i) CreatePod(job);
        if (want > pending) active += want - pending;
      }
    }
    auto set_count = [&](const char* key, int64_t v) {
      if (v > 0) status[key] = v;
      else status.erase(key);
    };
    set_count("active", active);
    set_count("succeeded", succeeded);
    set_count("failed", failed);
    status["ready"] = ready;
    status["terminating"] = terminating;
    status["uncountedTerminatedPods"] = json::object();
    if (indexed && !completed_indexes.empty()) status["completedIndexes"] = FormatIndexes(completed_indexes);
    else status.erase("completedIndexes");
    if (conditions.empty()) status.erase("conditions");
    (void)registry.Mutate(Jobs(), ns, name, [&](json& j) { j["status"] = status; });
    if (final_condition) {
      timers.erase(uid);
      if (success) {
        registry.RecordEvent(job, "Normal", "Completed", "Job completed", "job-controller");
      } else {
        registry.RecordEvent(job, "Warning", final_condition->value("reason", ""),
                             final_condition->value("message", ""), "job-controller");
      }
      if (ObjectPtr updated = store().Get(Jobs(), ns, name)) ScheduleTtl(*updated);
    }
  }

  void ScheduleTtl(const json& job) {
    int64_t ttl = Int(job, {"spec", "ttlSecondsAfterFinished"}, -1);
    std::string uid = Str(job, {"metadata", "uid"});
    if (ttl < 0 || timers.count(uid)) return;
    const json* done = ConditionOf(job, "Complete");
    if (!done) done = ConditionOf(job, "Failed");
    auto at = done ? ParseRfc3339(done->value("lastTransitionTime", "")) : std::nullopt;
    if (!at) return;
    auto timer = std::make_unique<net::steady_timer>(io);
    timer->expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(
        *at + std::chrono::seconds(ttl) - std::chrono::system_clock::now()));
    timer->async_wait([this, uid, ns = Str(job, {"metadata", "namespace"}),
                       name = Str(job, {"metadata", "name"})](boost::system::error_code ec) {
      if (ec) return;
      ObjectPtr j = store().Get(Jobs(), ns, name);
      if (!j || Str(*j, {"metadata", "uid"}) != uid) return;
      DeleteOptions opts;
      opts.propagation = "Background";
      opts.precondition_uid = uid;
      (void)registry.Delete(Jobs(), ns, name, opts);
    });
    timers[uid] = std::move(timer);
  }
};

JobController::JobController(net::io_context& io, Registry& registry)
    : impl_(std::make_unique<Impl>(io, registry)) {}

JobController::~JobController() = default;

void JobController::Start() {
  impl_->store().Subscribe([impl = impl_.get()](const StoreEvent& e) {
    if (e.resource == &Pods()) return impl->OnPod(e);
    if (e.resource != &Jobs()) return;
    const json& job = *e.object;
    if (e.type == EventType::kDeleted) {
      impl->timers.erase(Str(job, {"metadata", "uid"}));
      return;
    }
    impl->queue.insert(Store::Key(Str(job, {"metadata", "namespace"}), Str(job, {"metadata", "name"})));
    impl->Post();
  });
}

}  // namespace kiln::kubesim
