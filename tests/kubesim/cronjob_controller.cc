#include "tests/kubesim/cronjob_controller.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "dag/cron.h"

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;

constexpr const char* kScheduledAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp";

const ResourceInfo& CronJobs() { return *FindResource("batch", "v1", "cronjobs"); }

// The Complete or Failed condition type of a finished Job, or "".
std::string Finished(const json& job) {
  const json* conds = Find(job, {"status", "conditions"});
  if (!conds || !conds->is_array()) return "";
  for (const json& c : *conds) {
    std::string type = c.value("type", "");
    if ((type == "Complete" || type == "Failed") && c.value("status", "") == "True") return type;
  }
  return "";
}

std::string ControllerUid(const json& obj) {
  const json* refs = Find(obj, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return "";
  for (const json& ref : *refs) {
    if (ref.value("controller", false) && ref.value("kind", "") == "CronJob")
      return ref.value("uid", "");
  }
  return "";
}

json JobReference(const json& job) {
  return {{"kind", "Job"},
          {"namespace", Str(job, {"metadata", "namespace"})},
          {"name", Str(job, {"metadata", "name"})},
          {"uid", Str(job, {"metadata", "uid"})},
          {"apiVersion", "batch/v1"},
          {"resourceVersion", Str(job, {"metadata", "resourceVersion"})}};
}

// "2026-04-26T18:35:00+02:00": RFC3339 in the CronJob's zone, as Go's time.RFC3339 formats it.
std::string ZonedRfc3339(SysTime t, const date::time_zone* zone) {
  if (zone == nullptr) return Rfc3339(t);
  auto info = zone->get_info(std::chrono::time_point_cast<std::chrono::seconds>(t));
  if (info.offset.count() == 0) return Rfc3339(t);
  std::string local = Rfc3339(t + info.offset);
  local.pop_back();  // the 'Z'
  int64_t minutes = std::abs(info.offset.count()) / 60;
  char offset[8];
  std::snprintf(offset, sizeof offset, "%c%02d:%02d", info.offset.count() < 0 ? '-' : '+',
                static_cast<int>(minutes / 60), static_cast<int>(minutes % 60));
  return local + offset;
}

}  // namespace

struct CronJobController::Impl {
  Impl(net::io_context& io_context, Registry& reg, std::function<SysTime()> clock, bool use_timers)
      : io(io_context), registry(reg), now(std::move(clock)), timers_on(use_timers) {}

  net::io_context& io;
  Registry& registry;
  std::function<SysTime()> now;
  bool timers_on;
  std::set<std::string> queue;
  bool scheduled = false;
  std::map<std::string, std::unique_ptr<net::steady_timer>> timers;  // by CronJob uid

  Store& store() { return registry.store(); }

  void Enqueue(const std::string& ns, const std::string& name) {
    queue.insert(Store::Key(ns, name));
    if (scheduled) return;
    scheduled = true;
    net::post(io, [this] {
      scheduled = false;
      auto keys = std::move(queue);
      queue.clear();
      for (const std::string& key : keys) {
        size_t slash = key.find('/');
        Sync(key.substr(0, slash), key.substr(slash + 1));
      }
    });
  }

  void WakeAt(const json& cj, SysTime when) {
    if (!timers_on) return;
    auto timer = std::make_unique<net::steady_timer>(io);
    timer->expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(when - now()));
    timer->async_wait([this, ns = Str(cj, {"metadata", "namespace"}),
                       name = Str(cj, {"metadata", "name"})](boost::system::error_code ec) {
      if (!ec) Enqueue(ns, name);
    });
    timers[Str(cj, {"metadata", "uid"})] = std::move(timer);
  }

  void DeleteJob(const json& cj, const json& job) {
    DeleteOptions opts;
    opts.propagation = "Background";
    if (registry.Delete(Jobs(), Str(job, {"metadata", "namespace"}), Str(job, {"metadata", "name"}),
                        opts)) {
      registry.RecordEvent(cj, "Normal", "SuccessfulDelete",
                           "Deleted job " + Str(job, {"metadata", "name"}), "cronjob-controller");
    }
  }

  void Sync(const std::string& ns, const std::string& name) {
    ObjectPtr current = store().Get(CronJobs(), ns, name);
    if (!current || Find(*current, {"metadata", "deletionTimestamp"})) return;
    const json& cj = *current;
    const json& spec = cj["spec"];
    std::string uid = Str(cj, {"metadata", "uid"});
    SysTime t_now = now();
    json status = cj.value("status", json::object());

    // Children: the active ones, and the finished ones the status still listed.
    std::vector<ObjectPtr> active;
    std::vector<ObjectPtr> succeeded;
    std::vector<ObjectPtr> failed;
    std::set<std::string> listed;
    if (const json* a = Find(status, {"active"}); a && a->is_array()) {
      for (const json& ref : *a) listed.insert(ref.value("uid", ""));
    }
    for (const ObjectPtr& job : store().List(Jobs(), ns)) {
      if (ControllerUid(*job) != uid) continue;
      std::string done = Finished(*job);
      if (done.empty()) {
        active.push_back(job);
        continue;
      }
      (done == "Complete" ? succeeded : failed).push_back(job);
      if (listed.contains(Str(*job, {"metadata", "uid"}))) {
        registry.RecordEvent(
            cj, "Normal", "SawCompletedJob",
            "Saw completed job: " + Str(*job, {"metadata", "name"}) + ", condition: " + done,
            "cronjob-controller");
        std::string completed = Str(*job, {"status", "completionTime"});
        if (done == "Complete" && !completed.empty() &&
            completed > Str(status, {"lastSuccessfulTime"})) {
          status["lastSuccessfulTime"] = completed;
        }
      }
    }

    // History limits: the oldest finished Jobs beyond them go.
    auto by_start = [](const ObjectPtr& a, const ObjectPtr& b) {
      auto key = [](const json& j) {
        return std::pair(Str(j, {"metadata", "creationTimestamp"}), Str(j, {"metadata", "name"}));
      };
      return key(*a) < key(*b);
    };
    for (auto [jobs, limit] : {std::pair{&succeeded, Int(spec, {"successfulJobsHistoryLimit"}, 3)},
                               std::pair{&failed, Int(spec, {"failedJobsHistoryLimit"}, 1)}}) {
      std::sort(jobs->begin(), jobs->end(), by_start);
      for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(limit, 0)) < jobs->size(); ++i) {
        DeleteJob(cj, *(*jobs)[i]);
      }
    }

    std::string schedule_text = Str(spec, {"schedule"});
    const date::time_zone* zone = nullptr;
    std::string problem;
    if (std::string tz = Str(spec, {"timeZone"}); !tz.empty()) {
      auto found = dag::LookupTimeZone(tz);
      if (found)
        zone = *found;
      else
        problem = found.error();
    }
    auto schedule = dag::ParseCronSchedule(schedule_text);
    if (!schedule) problem = schedule.error();
    if (!problem.empty()) {
      registry.RecordEvent(cj, "Warning", "UnparseableSchedule",
                           "unparseable schedule: \"" + schedule_text + "\" : " + problem,
                           "cronjob-controller");
      return WriteStatus(ns, name, cj, status, active);
    }

    // The most recent schedule time not yet run, within startingDeadlineSeconds.
    SysTime earliest =
        ParseRfc3339(Str(status, {"lastScheduleTime"}))
            .value_or(ParseRfc3339(Str(cj, {"metadata", "creationTimestamp"})).value_or(t_now));
    int64_t deadline = Int(spec, {"startingDeadlineSeconds"}, -1);
    if (deadline >= 0) earliest = std::max(earliest, t_now - std::chrono::seconds(deadline));
    std::optional<SysTime> due;
    int missed = 0;
    for (SysTime t = dag::NextAfter(*schedule, earliest, zone); t <= t_now && missed < 100000;
         t = dag::NextAfter(*schedule, t, zone), ++missed) {
      due = t;
    }
    if (due && !spec.value("suspend", false)) {
      std::string policy = Str(spec, {"concurrencyPolicy"}, "Allow");
      if (policy == "Forbid" && !active.empty()) {
        registry.RecordEvent(cj, "Normal", "JobAlreadyActive",
                             "Not starting job because prior execution is running and concurrency "
                             "policy is Forbid",
                             "cronjob-controller");
      } else {
        if (policy == "Replace") {
          for (const ObjectPtr& job : active) DeleteJob(cj, *job);
          active.clear();
        }
        if (ObjectPtr job = CreateJob(cj, *due, zone)) active.push_back(job);
        status["lastScheduleTime"] = Rfc3339(*due);
      }
    }
    WriteStatus(ns, name, cj, status, active);
    if (!spec.value("suspend", false)) WakeAt(cj, dag::NextAfter(*schedule, t_now, zone));
  }

  ObjectPtr CreateJob(const json& cj, SysTime scheduled, const date::time_zone* zone) {
    const json tmpl =
        Find(cj, {"spec", "jobTemplate"}) ? cj["spec"]["jobTemplate"] : json::object();
    int64_t minutes =
        std::chrono::duration_cast<std::chrono::minutes>(scheduled.time_since_epoch()).count();
    std::string name = Str(cj, {"metadata", "name"}) + "-" + std::to_string(minutes);
    std::string ns = Str(cj, {"metadata", "namespace"});
    json meta = {{"name", name}};
    json labels = Find(tmpl, {"metadata", "labels"}) ? tmpl["metadata"]["labels"] : json::object();
    json annotations =
        Find(tmpl, {"metadata", "annotations"}) ? tmpl["metadata"]["annotations"] : json::object();
    annotations[kScheduledAnnotation] = ZonedRfc3339(scheduled, zone);
    if (!labels.empty()) meta["labels"] = labels;
    meta["annotations"] = annotations;
    meta["ownerReferences"] = {{{"apiVersion", "batch/v1"},
                                {"kind", "CronJob"},
                                {"name", Str(cj, {"metadata", "name"})},
                                {"uid", Str(cj, {"metadata", "uid"})},
                                {"controller", true},
                                {"blockOwnerDeletion", true}}};
    json job = {{"apiVersion", "batch/v1"},
                {"kind", "Job"},
                {"metadata", meta},
                {"spec", tmpl.value("spec", json::object())}};
    auto created = registry.Create(Jobs(), ns, std::move(job));
    if (!created) {
      if (created.error().reason == "AlreadyExists") return store().Get(Jobs(), ns, name);
      registry.RecordEvent(cj, "Warning", "FailedCreate",
                           "Error creating job: " + created.error().message, "cronjob-controller");
      return nullptr;
    }
    registry.RecordEvent(cj, "Normal", "SuccessfulCreate", "Created job " + name,
                         "cronjob-controller");
    return *created;
  }

  void WriteStatus(const std::string& ns, const std::string& name, const json& cj, json status,
                   const std::vector<ObjectPtr>& active) {
    json refs = json::array();
    for (const ObjectPtr& job : active) refs.push_back(JobReference(*job));
    // The reference's resourceVersion would change on every Job update; compare without it.
    auto strip = [](json list) {
      for (json& r : list) r.erase("resourceVersion");
      return list;
    };
    json old_active =
        cj.contains("status") ? cj["status"].value("active", json::array()) : json::array();
    if (refs.empty())
      status.erase("active");
    else if (strip(refs) != strip(old_active))
      status["active"] = refs;
    if (status == cj.value("status", json::object())) return;
    (void)registry.Mutate(CronJobs(), ns, name, [&](json& o) { o["status"] = status; });
  }
};

CronJobController::CronJobController(net::io_context& io, Registry& registry,
                                     std::function<SysTime()> now, bool timers)
    : impl_(std::make_unique<Impl>(io, registry, std::move(now), timers)) {}

CronJobController::~CronJobController() = default;

void CronJobController::Start() {
  impl_->store().Subscribe([impl = impl_.get()](const StoreEvent& e) {
    const json& obj = *e.object;
    if (e.resource == &CronJobs()) {
      if (e.type == EventType::kDeleted) {
        impl->timers.erase(Str(obj, {"metadata", "uid"}));
        return;
      }
      impl->Enqueue(Str(obj, {"metadata", "namespace"}), Str(obj, {"metadata", "name"}));
      return;
    }
    if (e.resource != &Jobs()) return;
    // A child Job changed: its CronJob recounts (active list, history).
    const json* refs = Find(obj, {"metadata", "ownerReferences"});
    if (!refs || !refs->is_array()) return;
    for (const json& ref : *refs) {
      if (ref.value("controller", false) && ref.value("kind", "") == "CronJob") {
        impl->Enqueue(Str(obj, {"metadata", "namespace"}), ref.value("name", ""));
      }
    }
  });
}

void CronJobController::Wake() {
  for (const ObjectPtr& cj : impl_->store().List(CronJobs(), "")) {
    impl_->Enqueue(Str(*cj, {"metadata", "namespace"}), Str(*cj, {"metadata", "name"}));
  }
}

}  // namespace kiln::kubesim
