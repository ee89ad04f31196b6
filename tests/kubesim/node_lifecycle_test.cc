// A node going NotReady, in process on a fake clock: the node lifecycle controller's taints,
// the taint eviction controller's DisruptionTarget after tolerationSeconds, the PodGC's Failed
// phase, and what the Job controller makes of it with and without a podFailurePolicy Ignore
// rule (shared/reference/kubernetes-api.md).
#include "tests/kubesim/node_lifecycle.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "tests/kubesim/cluster.h"
#include "tests/kubesim/job_controller.h"
#include "tests/kubesim/kubelet.h"
#include "tests/kubesim/scheduler.h"

namespace kiln::kubesim {
namespace {

struct Cluster {
  Cluster()
      : store(1000),
        registry(store),
        kubelet(io, registry),
        scheduler(io, registry),
        jobs(io, registry),
        nodes(
            io, registry, [this] { return now; }, false) {
    registry.Bootstrap();
    auto loaded =
        LoadCluster(std::string(KILN_SOURCE_DIR) + "/tests/kubesim/clusters/cpu-only.yaml");
    REQUIRE(loaded);
    for (json& n : *loaded) REQUIRE(registry.Create(Nodes(), "", std::move(n)));
    kubelet.Start();
    scheduler.Start();
    jobs.Start();
    nodes.Start();
    // Every Failed pod as it was when it turned Failed (the Job controller then removes its
    // finalizer and it is gone).
    store.Subscribe([this](const StoreEvent& e) {
      if (e.resource != &Pods() || Str(*e.object, {"status", "phase"}) != "Failed") return;
      if (e.old && Str(*e.old, {"status", "phase"}) == "Failed") return;
      failed_pods.push_back(*e.object);
    });
    // Every version of every pod, to see the states it went through.
    store.Subscribe([this](const StoreEvent& e) {
      if (e.resource == &Pods()) history.push_back(*e.object);
    });
  }
  // Runs what is ready now (the pods run for an hour: never to idle).
  void Settle() {
    io.restart();
    while (io.poll() > 0) {
    }
  }
  // Moves the fake clock and lets the controllers act on it.
  void Advance(std::chrono::seconds by) {
    now += by;
    nodes.Wake();
    Settle();
  }
  std::vector<ObjectPtr> JobPods() { return store.List(Pods(), "default"); }
  json Job(const std::string& name) {
    ObjectPtr j = store.Get(Jobs(), "default", name);
    REQUIRE(j);
    return *j;
  }
  void FinishPod(const std::string& name) {
    REQUIRE(registry.Mutate(Pods(), "default", name, [](json& p) {
      p["metadata"]["annotations"][kExitNowAnnotation] = "true";
    }));
    Settle();
  }

  boost::asio::io_context io;
  Store store;
  Registry registry;
  Kubelet kubelet;
  Scheduler scheduler;
  JobController jobs;
  SysTime now = std::chrono::system_clock::now();
  NodeLifecycleController nodes;
  std::vector<json> failed_pods;
  std::vector<json> history;
};

json LongJob(const std::string& name, bool ignore_disruptions) {
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"template",
                 {{"metadata", {{"annotations", {{kDurationAnnotation, "1h"}}}}},
                  {"spec",
                   {{"restartPolicy", "Never"},
                    {"containers", {{{"name", "main"}, {"image", "busybox"}}}}}}}}}}};
  if (ignore_disruptions) {
    job["spec"]["podFailurePolicy"] = json::parse(
        R"({"rules":[{"action":"Ignore","onPodConditions":[{"type":"DisruptionTarget"}]}]})");
  }
  return job;
}

const json* Condition(const json& obj, const std::string& type) {
  const json* conds = Find(obj, {"status", "conditions"});
  if (!conds || !conds->is_array()) return nullptr;
  for (const json& c : *conds) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

// Starts `job`, checks its one pod runs, and takes that pod's node away. Returns the pod.
json RunThenLoseNode(Cluster& c, const json& job) {
  REQUIRE(c.registry.Create(Jobs(), "default", job));
  c.Settle();
  auto pods = c.JobPods();
  REQUIRE(pods.size() == 1);
  json pod = *pods[0];
  REQUIRE(Str(pod, {"status", "phase"}) == "Running");
  std::string node = Str(pod, {"spec", "nodeName"});
  REQUIRE(c.nodes.SetNotReady(node));
  c.Settle();
  return pod;
}

TEST_CASE("a NotReady node taints itself and its pods are evicted after tolerationSeconds",
          "[kubesim][faults]") {
  Cluster c;
  json pod = RunThenLoseNode(c, LongJob("train", true));
  std::string name = Str(pod, {"metadata", "name"});
  std::string node = Str(pod, {"spec", "nodeName"});

  ObjectPtr n = c.store.Get(Nodes(), "", node);
  REQUIRE(n);
  const json* ready = Condition(*n, "Ready");
  REQUIRE(ready);
  CHECK((*ready)["status"] == "Unknown");
  CHECK((*ready)["reason"] == "NodeStatusUnknown");
  CHECK((*ready)["message"] == "Kubelet stopped posting node status.");
  const json& taints = (*n)["spec"]["taints"];
  REQUIRE(taints.size() == 2);
  CHECK(taints[0] == json{{"key", "node.kubernetes.io/unreachable"}, {"effect", "NoSchedule"}});
  CHECK(taints[1]["key"] == "node.kubernetes.io/unreachable");
  CHECK(taints[1]["effect"] == "NoExecute");
  CHECK(taints[1]["timeAdded"] == Rfc3339(c.now));

  // The pod is marked not ready and, with the default 300 s toleration, stays for now.
  ObjectPtr p = c.store.Get(Pods(), "default", name);
  REQUIRE(p);
  REQUIRE(Condition(*p, "Ready"));
  CHECK((*Condition(*p, "Ready"))["status"] == "False");
  CHECK(Str(*p, {"status", "phase"}) == "Running");
  CHECK_FALSE(Condition(*p, "DisruptionTarget"));
  c.Advance(std::chrono::seconds(299));
  p = c.store.Get(Pods(), "default", name);
  REQUIRE(p);
  CHECK_FALSE(Condition(*p, "DisruptionTarget"));
  CHECK_FALSE(Find(*p, {"metadata", "deletionTimestamp"}));
  CHECK(c.failed_pods.empty());

  c.Advance(std::chrono::seconds(1));
  REQUIRE(c.failed_pods.size() == 1);
  const json& failed = c.failed_pods[0];
  CHECK(Str(failed, {"metadata", "name"}) == name);
  const json* disruption = Condition(failed, "DisruptionTarget");
  REQUIRE(disruption);
  CHECK((*disruption)["status"] == "True");
  CHECK((*disruption)["reason"] == "DeletionByTaintManager");
  CHECK((*disruption)["message"] == "Taint manager: deleting due to NoExecute taint");
  // The kubelet is gone: nobody wrote the containers' end, only the PodGC's Failed phase.
  const json* statuses = Find(failed, {"status", "containerStatuses"});
  REQUIRE(statuses);
  CHECK(statuses->at(0)["state"].contains("running"));
  // Before the PodGC, the pod sat terminating with the condition.
  bool terminating = false;
  for (const json& version : c.history) {
    if (Str(version, {"metadata", "name"}) != name) continue;
    terminating |= Find(version, {"metadata", "deletionTimestamp"}) &&
                   Condition(version, "DisruptionTarget") &&
                   Str(version, {"status", "phase"}) == "Running";
  }
  CHECK(terminating);

  // The Ignore rule: a replacement on the other node, and no failure counted.
  auto pods = c.JobPods();
  REQUIRE(pods.size() == 1);
  json replacement = *pods[0];
  CHECK(Str(replacement, {"metadata", "name"}) != name);
  CHECK(Str(replacement, {"spec", "nodeName"}) != node);
  CHECK(Str(replacement, {"status", "phase"}) == "Running");
  json job = c.Job("train");
  CHECK_FALSE(job["status"].contains("failed"));
  CHECK(job["status"]["active"] == 1);

  c.FinishPod(Str(replacement, {"metadata", "name"}));
  job = c.Job("train");
  INFO(job["status"].dump(1));
  CHECK(Condition(job, "Complete"));
  CHECK(job["status"]["succeeded"] == 1);
  CHECK_FALSE(job["status"].contains("failed"));
}

TEST_CASE("without a podFailurePolicy, a pod lost with its node counts as a failure",
          "[kubesim][faults]") {
  Cluster c;
  json pod = RunThenLoseNode(c, LongJob("train", false));
  std::string node = Str(pod, {"spec", "nodeName"});
  c.Advance(std::chrono::seconds(300));
  REQUIRE(c.failed_pods.size() == 1);
  const json* disruption = Condition(c.failed_pods[0], "DisruptionTarget");
  REQUIRE(disruption);
  CHECK((*disruption)["reason"] == "DeletionByTaintManager");
  json job = c.Job("train");
  CHECK(job["status"]["failed"] == 1);
  auto pods = c.JobPods();
  REQUIRE(pods.size() == 1);
  CHECK(Str(*pods[0], {"spec", "nodeName"}) != node);
  c.FinishPod(Str(*pods[0], {"metadata", "name"}));
  job = c.Job("train");
  CHECK(Condition(job, "Complete"));
  CHECK(job["status"]["failed"] == 1);
}

TEST_CASE("a pod tolerating unreachable with no tolerationSeconds stays, one with 0 goes at once",
          "[kubesim][faults]") {
  Cluster c;
  json forever = LongJob("forever", false);
  forever["spec"]["template"]["spec"]["tolerations"] = json::parse(
      R"([{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute"},
          {"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoSchedule"}])");
  REQUIRE(c.registry.Create(Jobs(), "default", forever));
  c.Settle();
  auto pods = c.JobPods();
  REQUIRE(pods.size() == 1);
  std::string node = Str(*pods[0], {"spec", "nodeName"});
  // A second Job whose pod goes at once, kept to the same node.
  json now = LongJob("now", false);
  now["spec"]["template"]["spec"]["nodeSelector"] = {{"kubernetes.io/hostname", node}};
  now["spec"]["template"]["spec"]["tolerations"] = json::parse(
      R"([{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":0}])");
  REQUIRE(c.registry.Create(Jobs(), "default", now));
  c.Settle();
  REQUIRE(c.JobPods().size() == 2);
  REQUIRE(c.nodes.SetNotReady(node));
  c.Settle();
  // Evicted at once, then stuck terminating until its grace period (30 s) has passed. (Its
  // replacement, created as soon as it was terminating, waits unscheduled.)
  for (const ObjectPtr& p : c.JobPods()) {
    if (Str(*p, {"spec", "nodeName"}).empty()) continue;
    bool evicted = Condition(*p, "DisruptionTarget") && Find(*p, {"metadata", "deletionTimestamp"});
    CHECK(evicted == (Str(*p, {"metadata", "labels", "job-name"}) == "now"));
  }
  CHECK(c.failed_pods.empty());
  c.Advance(std::chrono::seconds(31));
  REQUIRE(c.failed_pods.size() == 1);
  CHECK(Str(c.failed_pods[0], {"metadata", "labels", "job-name"}) == "now");
  c.Advance(std::chrono::hours(24));
  CHECK(c.failed_pods.size() == 1);
  // The replacement of "now" cannot be placed: its only node has the NoSchedule taint.
  bool pending = false;
  for (const ObjectPtr& p : c.JobPods()) {
    if (Str(*p, {"metadata", "labels", "job-name"}) != "now") continue;
    pending = Str(*p, {"status", "phase"}) == "Pending" && Str(*p, {"spec", "nodeName"}).empty();
  }
  CHECK(pending);

  // The node comes back: taints gone, the pending pod is placed there.
  REQUIRE(c.nodes.SetReady(node));
  c.Settle();
  ObjectPtr n = c.store.Get(Nodes(), "", node);
  CHECK_FALSE((*n)["spec"].contains("taints"));
  REQUIRE(Condition(*n, "Ready"));
  CHECK((*Condition(*n, "Ready"))["status"] == "True");
  for (const ObjectPtr& p : c.JobPods()) {
    if (Str(*p, {"metadata", "labels", "job-name"}) != "now") continue;
    CHECK(Str(*p, {"spec", "nodeName"}) == node);
    CHECK(Str(*p, {"status", "phase"}) == "Running");
  }
}

}  // namespace
}  // namespace kiln::kubesim
