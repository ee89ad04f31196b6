// The emulated controllers in process, on one io_context run to idle: Job conditions, counts
// and pod metadata compared field by field with the reference (shared/reference/kubernetes-api.md).
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <set>

#include "tests/kubesim/cluster.h"
#include "tests/kubesim/cronjob_controller.h"
#include "tests/kubesim/in_process.h"
#include "tests/kubesim/job_controller.h"
#include "tests/kubesim/kubelet.h"
#include "tests/kubesim/scheduler.h"

namespace kiln::kubesim {
namespace {

using Cluster = testing::InProcessCluster;

json JobWith(const std::string& name, json annotations, json extra_spec = json::object()) {
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"template",
                 {{"metadata", {{"annotations", annotations}}},
                  {"spec", {{"restartPolicy", "Never"},
                            {"containers", {{{"name", "main"}, {"image", "busybox"}}}}}}}}}}};
  job["spec"].update(extra_spec);
  return job;
}

TEST_CASE("a succeeded Job gets SuccessCriteriaMet then Complete with the real texts", "[kubesim]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(Jobs(), "default", JobWith("ok", json::object())));
  c.Settle();
  ObjectPtr job = c.store.Get(Jobs(), "default", "ok");
  REQUIRE(job);
  const json& status = (*job)["status"];
  INFO(status.dump(1));
  REQUIRE(status["conditions"].size() == 2);
  const json& met = status["conditions"][0];
  const json& complete = status["conditions"][1];
  CHECK(met["type"] == "SuccessCriteriaMet");
  CHECK(complete["type"] == "Complete");
  for (const json* cond : {&met, &complete}) {
    CHECK((*cond)["status"] == "True");
    CHECK((*cond)["reason"] == "CompletionsReached");
    CHECK((*cond)["message"] == "Reached expected number of succeeded pods");
  }
  CHECK(status["completionTime"] == complete["lastTransitionTime"]);
  CHECK(status["succeeded"] == 1);
  CHECK(status["ready"] == 0);
  CHECK(status["terminating"] == 0);
  CHECK(status["uncountedTerminatedPods"] == json::object());
  CHECK_FALSE(status.contains("active"));
  CHECK_FALSE(status.contains("failed"));

  auto pods = c.store.List(Pods(), "default");
  REQUIRE(pods.size() == 1);
  const json& pod = *pods[0];
  std::string uid = (*job)["metadata"]["uid"];
  CHECK(pod["metadata"]["ownerReferences"] ==
        json::parse(R"([{"apiVersion":"batch/v1","kind":"Job","name":"ok","uid":")" + uid +
                    R"(","controller":true,"blockOwnerDeletion":true}])"));
  CHECK(pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid);
  CHECK(pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "ok");
  CHECK(pod["metadata"]["labels"]["controller-uid"] == uid);
  CHECK(pod["metadata"]["labels"]["job-name"] == "ok");
  CHECK_FALSE(pod["metadata"].contains("finalizers"));  // released once counted
  CHECK(std::string(pod["metadata"]["generateName"]) == "ok-");
  CHECK(pod["status"]["phase"] == "Succeeded");
  const json& term = pod["status"]["containerStatuses"][0]["state"]["terminated"];
  CHECK(term["exitCode"] == 0);
  CHECK(term["reason"] == "Completed");
  CHECK((*job)["spec"]["selector"] ==
        json({{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}}));
}

TEST_CASE("a Job past its backoffLimit gets FailureTarget then Failed", "[kubesim]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(Jobs(), "default",
                            JobWith("bad", {{"kubesim.kiln.dev/exit-code", "3"},
                                            {"kubesim.kiln.dev/termination-message", "boom"}},
                                    {{"backoffLimit", 1}})));
  c.Settle();
  ObjectPtr job = c.store.Get(Jobs(), "default", "bad");
  const json& status = (*job)["status"];
  INFO(status.dump(1));
  REQUIRE(status["conditions"].size() == 2);
  CHECK(status["conditions"][0]["type"] == "FailureTarget");
  CHECK(status["conditions"][1]["type"] == "Failed");
  for (const json& cond : status["conditions"]) {
    CHECK(cond["reason"] == "BackoffLimitExceeded");
    CHECK(cond["message"] == "Job has reached the specified backoff limit");
  }
  CHECK(status["failed"] == 2);
  CHECK_FALSE(status.contains("completionTime"));
  auto pods = c.store.List(Pods(), "default");
  REQUIRE(pods.size() == 2);
  const json& term = (*pods[0])["status"]["containerStatuses"][0]["state"]["terminated"];
  CHECK(term["exitCode"] == 3);
  CHECK(term["reason"] == "Error");
  CHECK(term["message"] == "boom");
}

TEST_CASE("a podFailurePolicy FailJob rule names the container, pod, code and rule", "[kubesim]") {
  Cluster c("cpu-only.yaml");
  json policy = {{"rules", {{{"action", "FailJob"},
                             {"onExitCodes", {{"operator", "In"}, {"values", {42}}}}}}}};
  REQUIRE(c.registry.Create(Jobs(), "default",
                            JobWith("pfp", {{"kubesim.kiln.dev/exit-code", "42"}},
                                    {{"podFailurePolicy", policy}})));
  c.Settle();
  ObjectPtr job = c.store.Get(Jobs(), "default", "pfp");
  const json& conds = (*job)["status"]["conditions"];
  REQUIRE(conds.size() == 2);
  std::string pod = (*c.store.List(Pods(), "default")[0])["metadata"]["name"];
  CHECK(conds[1]["type"] == "Failed");
  CHECK(conds[1]["reason"] == "PodFailurePolicy");
  CHECK(conds[1]["message"] == "Container main for pod default/" + pod +
                                   " failed with exit code 42 matching FailJob rule at index 0");
  CHECK((*job)["status"]["failed"] == 1);
}

TEST_CASE("a Job with activeDeadlineSeconds 0 fails with DeadlineExceeded", "[kubesim]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(Jobs(), "default",
                            JobWith("late", {{"kubesim.kiln.dev/duration", "1h"}},
                                    {{"activeDeadlineSeconds", 0}})));
  c.Settle();
  const json& conds = (*c.store.Get(Jobs(), "default", "late"))["status"]["conditions"];
  REQUIRE(conds.size() == 2);
  CHECK(conds[0]["type"] == "FailureTarget");
  CHECK(conds[1]["type"] == "Failed");
  CHECK(conds[1]["reason"] == "DeadlineExceeded");
  CHECK(conds[1]["message"] == "Job was active longer than specified deadline");
}

TEST_CASE("an Indexed Job gives each pod its completion index and reports completedIndexes",
          "[kubesim]") {
  Cluster c("cpu-only.yaml");
  REQUIRE(c.registry.Create(Jobs(), "default",
                            JobWith("idx", json::object(),
                                    {{"completionMode", "Indexed"}, {"completions", 3}, {"parallelism", 2}})));
  c.Settle();
  ObjectPtr job = c.store.Get(Jobs(), "default", "idx");
  REQUIRE(job);
  const json& status = (*job)["status"];
  INFO(status.dump(1));
  CHECK(status["completedIndexes"] == "0-2");
  CHECK(status["succeeded"] == 3);
  REQUIRE(status["conditions"].size() == 2);
  CHECK(status["conditions"][1]["type"] == "Complete");

  auto pods = c.store.List(Pods(), "default");
  REQUIRE(pods.size() == 3);
  std::set<std::string> indexes;
  for (const ObjectPtr& pod : pods) {
    const json& meta = (*pod)["metadata"];
    std::string index = meta["annotations"]["batch.kubernetes.io/job-completion-index"];
    indexes.insert(index);
    CHECK(meta["labels"]["batch.kubernetes.io/job-completion-index"] == index);
    CHECK(meta["name"].get<std::string>().starts_with("idx-" + index + "-"));
    CHECK((*pod)["spec"]["hostname"] == "idx-" + index);
    CHECK((*pod)["spec"]["containers"][0]["env"] == json::parse(R"([{"name":"JOB_COMPLETION_INDEX",
        "valueFrom":{"fieldRef":{"apiVersion":"v1",
        "fieldPath":"metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}])"));
  }
  CHECK(indexes == std::set<std::string>{"0", "1", "2"});

  json bad = JobWith("bad", json::object(), {{"completionMode", "Indexed"}, {"parallelism", 2}});
  auto rejected = c.registry.Create(Jobs(), "default", bad);
  REQUIRE_FALSE(rejected);
  CHECK(rejected.error().message ==
        "Job.batch \"bad\" is invalid: spec.completions: Required value: when completion mode is Indexed");
}

json CronJobWith(const std::string& name, json extra_spec) {
  json job = JobWith("unused", {{"kubesim.kiln.dev/duration", "1h"}});
  json job_template = {{"metadata", {{"labels", {{"team", "ml"}}}}}, {"spec", job["spec"]}};
  json cj = {{"apiVersion", "batch/v1"},
             {"kind", "CronJob"},
             {"metadata", {{"name", name}}},
             {"spec", {{"schedule", "*/5 * * * *"}, {"jobTemplate", job_template}}}};
  cj["spec"].update(extra_spec);
  return cj;
}

// The CronJob controller on a fake clock: no timers, time moved by hand and Wake.
struct CronCluster : Cluster {
  CronCluster() : Cluster("cpu-only.yaml"), cron(io, registry, [this] { return now; }, false) {
    cron.Start();
  }
  void At(const std::string& time) {
    now = *ParseRfc3339(time);
    cron.Wake();
    io.restart();
    // The simulated pods run for an hour: run what is ready now, not to idle.
    io.poll();
    io.poll();
    io.poll();
  }
  std::vector<std::string> JobNames() {
    std::vector<std::string> names;
    for (const ObjectPtr& j : store.List(Jobs(), "default")) names.push_back((*j)["metadata"]["name"]);
    return names;
  }
  SysTime now = *ParseRfc3339("2026-01-01T00:00:00Z");
  CronJobController cron;
};

TEST_CASE("a CronJob creates its Jobs on schedule, owned and annotated like the real ones",
          "[kubesim][cronjob]") {
  CronCluster c;
  const ResourceInfo& cronjobs = *FindResource("batch", "v1", "cronjobs");
  auto created = c.registry.Create(cronjobs, "default", CronJobWith("nightly", json::object()));
  REQUIRE(created);
  // Created at the real time; the fake clock then starts after it.
  c.now = *ParseRfc3339(Str(**created, {"metadata", "creationTimestamp"}));
  auto minute = std::chrono::duration_cast<std::chrono::minutes>(c.now.time_since_epoch()).count();
  int64_t next = (minute / 5 + 1) * 5;  // the first */5 minute after creation
  SysTime first = SysTime(std::chrono::minutes(next));
  c.At(Rfc3339(first - std::chrono::seconds(1)));
  CHECK(c.JobNames().empty());
  c.At(Rfc3339(first));
  REQUIRE(c.JobNames() == std::vector<std::string>{"nightly-" + std::to_string(next)});
  ObjectPtr job = c.store.Get(Jobs(), "default", "nightly-" + std::to_string(next));
  const json& meta = (*job)["metadata"];
  CHECK(meta["labels"]["team"] == "ml");
  CHECK(meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == Rfc3339(first));
  CHECK(meta["ownerReferences"][0]["kind"] == "CronJob");
  CHECK(meta["ownerReferences"][0]["name"] == "nightly");
  CHECK(meta["ownerReferences"][0]["controller"] == true);
  ObjectPtr cj = c.store.Get(cronjobs, "default", "nightly");
  CHECK((*cj)["status"]["lastScheduleTime"] == Rfc3339(first));
  REQUIRE((*cj)["status"]["active"].size() == 1);
  CHECK((*cj)["status"]["active"][0]["name"] == "nightly-" + std::to_string(next));
  CHECK((*cj)["status"]["active"][0]["kind"] == "Job");

  // Allow (the default): the next time runs beside the still active first Job.
  c.At(Rfc3339(first + std::chrono::minutes(5)));
  CHECK(c.JobNames().size() == 2);
}

TEST_CASE("CronJob concurrencyPolicy Forbid skips and Replace replaces a running Job",
          "[kubesim][cronjob]") {
  for (const char* policy : {"Forbid", "Replace"}) {
    CronCluster c;
    const ResourceInfo& cronjobs = *FindResource("batch", "v1", "cronjobs");
    auto created = c.registry.Create(cronjobs, "default",
                                     CronJobWith("cj", {{"concurrencyPolicy", policy}}));
    REQUIRE(created);
    c.now = *ParseRfc3339(Str(**created, {"metadata", "creationTimestamp"}));
    auto minute = std::chrono::duration_cast<std::chrono::minutes>(c.now.time_since_epoch()).count();
    int64_t next = (minute / 5 + 1) * 5;
    SysTime first = SysTime(std::chrono::minutes(next));
    c.At(Rfc3339(first));
    c.At(Rfc3339(first + std::chrono::minutes(5)));
    INFO(policy);
    if (std::string(policy) == "Forbid") {
      CHECK(c.JobNames() == std::vector<std::string>{"cj-" + std::to_string(next)});
    } else {
      CHECK(c.JobNames() == std::vector<std::string>{"cj-" + std::to_string(next + 5)});
    }
  }
}

TEST_CASE("CronJob history limits delete the oldest finished Jobs", "[kubesim][cronjob]") {
  CronCluster c;
  const ResourceInfo& cronjobs = *FindResource("batch", "v1", "cronjobs");
  json spec = CronJobWith("h", {{"successfulJobsHistoryLimit", 2}});
  // Jobs that finish at once.
  spec["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"] = json::object();
  auto created = c.registry.Create(cronjobs, "default", spec);
  REQUIRE(created);
  c.now = *ParseRfc3339(Str(**created, {"metadata", "creationTimestamp"}));
  auto minute = std::chrono::duration_cast<std::chrono::minutes>(c.now.time_since_epoch()).count();
  int64_t next = (minute / 5 + 1) * 5;
  for (int i = 0; i < 4; ++i) {
    c.At(Rfc3339(SysTime(std::chrono::minutes(next + 5 * i))));
    c.Settle();
  }
  c.At(Rfc3339(SysTime(std::chrono::minutes(next + 20))));
  c.Settle();
  // Four finished, the fifth just created and finished too: the newest two are kept.
  CHECK(c.JobNames() == std::vector<std::string>{"h-" + std::to_string(next + 15),
                                                 "h-" + std::to_string(next + 20)});
  ObjectPtr cj = c.store.Get(cronjobs, "default", "h");
  CHECK_FALSE((*cj)["status"].contains("active"));
  CHECK((*cj)["status"].contains("lastSuccessfulTime"));
}

TEST_CASE("the scheduler places GPU pods and explains what does not fit", "[kubesim]") {
  Cluster c("mixed-gpu.yaml");
  json pod = {{"metadata", {{"name", "gpu"}}},
              {"spec", {{"restartPolicy", "Never"},
                        {"containers", {{{"name", "main"}, {"image", "cuda"},
                                         {"resources", {{"limits", {{"nvidia.com/gpu", "2"}}}}}}}}}}};
  REQUIRE(c.registry.Create(Pods(), "default", pod));
  c.Settle();
  ObjectPtr pending = c.store.Get(Pods(), "default", "gpu");
  std::string message =
      "0/5 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, 3 "
      "Insufficient nvidia.com/gpu. preemption: 0/5 nodes are available: 2 Preemption is not "
      "helpful for scheduling, 3 No preemption victims found for incoming pod.";
  CHECK((*pending)["status"]["phase"] == "Pending");
  const json& cond = (*pending)["status"]["conditions"][0];
  CHECK(cond["type"] == "PodScheduled");
  CHECK(cond["status"] == "False");
  CHECK(cond["reason"] == "Unschedulable");
  CHECK(cond["message"] == message);
  bool event = false;
  for (const ObjectPtr& e : c.store.List(Events(), "default")) {
    event |= (*e)["reason"] == "FailedScheduling" && (*e)["message"] == message &&
             (*e)["type"] == "Warning";
  }
  CHECK(event);

  pod["metadata"]["name"] = "gpu-tolerating";
  pod["spec"]["tolerations"] = {{{"key", "nvidia.com/gpu"}, {"operator", "Exists"}, {"effect", "NoSchedule"}}};
  pod["spec"]["nodeSelector"] = {{"nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"}};
  REQUIRE(c.registry.Create(Pods(), "default", pod));
  c.Settle();
  ObjectPtr placed = c.store.Get(Pods(), "default", "gpu-tolerating");
  CHECK(std::string((*placed)["spec"]["nodeName"]).starts_with("a100-"));
  CHECK((*placed)["status"]["phase"] == "Succeeded");
}

}  // namespace
}  // namespace kiln::kubesim
