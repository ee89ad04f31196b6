// Resource templates' pure parts (executor/kubernetes_resource.h): conditions as Argo parses
// them, kubectl's JSONPath, kubectl-style flags, and discovery lookups.
#include <catch2/catch.hpp>

#include "executor/kubernetes_resource.h"

namespace kiln::executor {

using nlohmann::json;

namespace {

bool Holds(std::string_view condition, const json& object) {
  auto reqs = ParseResourceCondition(condition);
  REQUIRE(reqs.has_value());
  return MatchesResourceCondition(*reqs, object);
}

std::string ConditionError(std::string_view condition) {
  auto reqs = ParseResourceCondition(condition);
  REQUIRE_FALSE(reqs.has_value());
  return reqs.error().message();
}

}  // namespace

TEST_CASE("resource conditions: label-selector requirements over paths into the object", "[kubernetes][resource]") {
  json job = json::parse(R"({"metadata": {"name": "j", "labels": {"app.kubernetes.io/name": "x"}},
                             "status": {"succeeded": 10, "phase": "Running", "active": 0,
                                        "conditions": [{"type": "Complete", "status": "True"}],
                                        "replicaStatuses": {"Worker": {"succeeded": 2}}}})");
  CHECK(Holds("status.succeeded > 9", job));
  CHECK_FALSE(Holds("status.succeeded > 10", job));
  CHECK(Holds("status.succeeded < 11", job));
  CHECK_FALSE(Holds("status.failed > 0", job));  // absent: > does not hold
  CHECK(Holds("status.phase == Running", job));
  CHECK(Holds("status.phase = Running", job));
  CHECK(Holds("status.phase != Failed", job));
  CHECK(Holds("status.failed != 1", job));  // absent: != holds, as for labels
  CHECK(Holds("status.phase in (Pending, Running)", job));
  CHECK_FALSE(Holds("status.phase in (Failed, Error)", job));
  CHECK(Holds("status.phase notin (Failed,Error)", job));
  CHECK(Holds("status.replicaStatuses.Worker.succeeded = 2", job));
  CHECK(Holds("status.conditions.0.type == Complete", job));
  CHECK(Holds("metadata.labels.app\\.kubernetes\\.io/name == x", job));
  CHECK(Holds("status.active", job));  // exists, even when 0
  CHECK(Holds("!status.failed", job));
  CHECK_FALSE(Holds("!status.active", job));
  CHECK(Holds("status.succeeded > 9, status.phase == Running", job));  // all must hold
  CHECK_FALSE(Holds("status.succeeded > 9, status.phase == Done", job));
  CHECK(Holds("", job));  // no requirements

  CHECK(ConditionError("status.succeeded > many").find("needs an integer, not \"many\"") != std::string::npos);
  CHECK(ConditionError("status.phase ~ x").find("unknown operator") != std::string::npos);
  CHECK(ConditionError("status.phase ==").find("a value is missing") != std::string::npos);
  CHECK(ConditionError("a == b,,c").find("an empty requirement") != std::string::npos);
  CHECK(ConditionError("status.phase in Failed").find("a list in parentheses") != std::string::npos);
  CHECK(ConditionError("!").find("'!' needs a path") != std::string::npos);
  CHECK(ConditionError("x > 1, y >").find("condition \"x > 1, y >\"") == 0);
}

TEST_CASE("resource outputs: kubectl's JSONPath", "[kubernetes][resource]") {
  json pod = json::parse(R"({"metadata": {"name": "p", "uid": "u-1", "annotations": {"a.b/c": "v"}},
                             "spec": {"containers": [{"name": "main", "image": "busybox"},
                                                     {"name": "side", "image": "envoy"}]},
                             "status": {"conditions": [{"type": "Ready", "status": "True"},
                                                       {"type": "Scheduled", "status": "False"}],
                                        "restarts": 3}})");
  auto eval = [&](std::string_view t) {
    auto r = EvaluateJsonPath(t, pod);
    REQUIRE(r.has_value());
    return *r;
  };
  CHECK(eval("{.metadata.name}") == "p");
  CHECK(eval("{$.metadata.uid}") == "u-1");
  CHECK(eval("name={.metadata.name} uid={.metadata.uid}") == "name=p uid=u-1");
  CHECK(eval("{.metadata.annotations['a.b/c']}") == "v");
  CHECK(eval("{.metadata.annotations.a\\.b/c}") == "v");
  CHECK(eval("{.spec.containers[1].image}") == "envoy");
  CHECK(eval("{.spec.containers[-1].name}") == "side");
  CHECK(eval("{.spec.containers[*].name}") == "main side");
  CHECK(eval("{..image}") == "busybox envoy");
  CHECK(eval("{.status.conditions[?(@.type==\"Ready\")].status}") == "True");
  CHECK(eval("{.status.conditions[?(@.status != 'True')].type}") == "Scheduled");
  CHECK(eval("{.status.restarts}") == "3");
  CHECK(eval("{.spec.containers[0]}") == R"({"image":"busybox","name":"main"})");
  CHECK(eval("{.metadata.missing}").empty());  // as kubectl get -o jsonpath: nothing
  CHECK(eval("{.metadata.name.deeper}").empty());  // under a string
  CHECK(eval("{.spec.containers[7].name}").empty());
  CHECK(eval("{.metadata.name}{\"\\n\"}{.metadata.uid}{'-'}") == "p\nu-1-");
  CHECK(eval("plain") == "plain");

  CHECK_FALSE(EvaluateJsonPath("{.metadata.name", pod).has_value());
  CHECK_FALSE(EvaluateJsonPath("{.spec.containers[x]}", pod).has_value());
  auto range = EvaluateJsonPath("{range .items[*]}{.name}{end}", pod);
  REQUIRE_FALSE(range.has_value());
  CHECK(range.error().message().find("{range} is not supported") != std::string::npos);
}

TEST_CASE("resource flags: TYPE NAME, selectors and the flags kiln does not support", "[kubernetes][resource]") {
  auto f = ParseResourceFlags({"configmap", "--selector", "cleanup=true"});
  REQUIRE(f.has_value());
  CHECK(f->type == "configmap");
  CHECK(f->name.empty());
  CHECK(f->selector == "cleanup=true");
  f = ParseResourceFlags({"pod/my-pod", "-n", "ml", "--ignore-not-found", "--validate=false"});
  REQUIRE(f.has_value());
  CHECK(f->type == "pod");
  CHECK(f->name == "my-pod");
  CHECK(f->namespace_ == "ml");
  CHECK(f->ignore_not_found);
  f = ParseResourceFlags({"workflow", "wf-1", "-l=a=b"});
  REQUIRE(f.has_value());
  CHECK(f->name == "wf-1");
  CHECK(f->selector == "a=b");

  auto bad = ParseResourceFlags({"--dry-run=client"});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("unsupported flag \"--dry-run=client\"") != std::string::npos);
  CHECK(bad.error().message().find("kiln calls the API itself") != std::string::npos);
  CHECK_FALSE(ParseResourceFlags({"--selector"}).has_value());
  CHECK_FALSE(ParseResourceFlags({"a", "b", "c"}).has_value());
}

TEST_CASE("resource types are found in discovery by kind, name, singular or short name", "[kubernetes][resource]") {
  json core = json::parse(R"({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
      {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "shortNames": ["po"]},
      {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod"},
      {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap", "shortNames": ["cm"]},
      {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node", "shortNames": ["no"]}]})");
  auto pod = FindApiResource(core, "Pod", "");
  REQUIRE(pod);
  CHECK(pod->name == "pods");
  CHECK(pod->Collection("ml") == "/api/v1/namespaces/ml/pods");
  for (std::string_view type : {"cm", "configmap", "configmaps", "ConfigMap"}) {
    auto cm = FindApiResource(core, "", type);
    REQUIRE(cm);
    CHECK(cm->kind == "ConfigMap");
  }
  auto node = FindApiResource(core, "Node", "");
  REQUIRE(node);
  CHECK(node->Collection("ml") == "/api/v1/nodes");
  CHECK_FALSE(FindApiResource(core, "Job", ""));
  json batch = {{"groupVersion", "batch/v1"},
                {"resources", json::array({{{"name", "jobs"}, {"singularName", "job"}, {"namespaced", true}, {"kind", "Job"}}})}};
  auto job = FindApiResource(batch, "Job", "");
  REQUIRE(job);
  CHECK(job->Collection("ml") == "/apis/batch/v1/namespaces/ml/jobs");
}

}  // namespace kiln::executor
