// kubesim's pieces one by one: selectors, patches, Status bodies, watch history.
#include <catch2/catch.hpp>

#include "kube/strategic_merge.h"
#include "tests/kubesim/api_error.h"
#include "tests/kubesim/patch.h"
#include "tests/kubesim/resources.h"
#include "tests/kubesim/selectors.h"
#include "tests/kubesim/store.h"

namespace kiln::kubesim {
namespace {

bool Selects(const std::string& selector, const json& labels) {
  auto s = LabelSelector::Parse(selector);
  REQUIRE(s);
  return s->Matches(labels);
}

TEST_CASE("label selectors support the whole string syntax", "[kubesim]") {
  json labels = {{"app", "web"}, {"tier", "front"}, {"gpu", "4"}};
  CHECK(Selects("app=web", labels));
  CHECK(Selects("app==web,tier=front", labels));
  CHECK_FALSE(Selects("app!=web", labels));
  CHECK(Selects("missing!=x", labels));
  CHECK(Selects("tier in (front, back)", labels));
  CHECK_FALSE(Selects("tier notin (front)", labels));
  CHECK(Selects("app", labels));
  CHECK(Selects("!missing", labels));
  CHECK_FALSE(Selects("!app", labels));
  CHECK(Selects("gpu>2", labels));
  CHECK(Selects("", labels));
  auto bad = LabelSelector::Parse("app in web");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == 400);
}

TEST_CASE("field selectors accept the documented labels only", "[kubesim]") {
  auto s = FieldSelector::Parse("status.phase!=Running,spec.nodeName=n1", Pods());
  REQUIRE(s);
  CHECK(s->Matches({{"status", {{"phase", "Pending"}}}, {"spec", {{"nodeName", "n1"}}}}));
  CHECK_FALSE(s->Matches({{"status", {{"phase", "Running"}}}, {"spec", {{"nodeName", "n1"}}}}));
  auto bad = FieldSelector::Parse("spec.bogus=1", Pods());
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "field label not supported: spec.bogus");
}

TEST_CASE("strategic merge patches merge containers by name and finalizers as a set", "[kubesim]") {
  json original = {{"metadata", {{"finalizers", {"a"}}, {"labels", {{"x", "1"}, {"y", "2"}}}}},
                   {"spec", {{"containers", {{{"name", "main"}, {"image", "old"}},
                                             {{"name", "side"}, {"image", "s"}}}}}}};
  json patch = {{"metadata", {{"finalizers", {"b"}}, {"labels", {{"y", nullptr}}}}},
                {"spec", {{"containers", {{{"name", "main"}, {"image", "new"}},
                                          {{"name", "side"}, {"$patch", "delete"}}}}}}};
  json out = kube::StrategicMerge(original, patch);
  CHECK(out["metadata"]["finalizers"] == json({"a", "b"}));
  CHECK(out["metadata"]["labels"] == json({{"x", "1"}}));
  CHECK(out["spec"]["containers"] == json::parse(R"([{"name":"main","image":"new"}])"));

  auto merged = ApplyPatch(original, "application/merge-patch+json", R"({"metadata":{"labels":null}})");
  REQUIRE(merged);
  CHECK_FALSE((*merged)["metadata"].contains("labels"));
  auto jp = ApplyPatch(original, "application/json-patch+json",
                       R"([{"op":"replace","path":"/spec/containers/0/image","value":"v2"}])");
  REQUIRE(jp);
  CHECK((*jp)["spec"]["containers"][0]["image"] == "v2");
  auto apply = ApplyPatch(original, "application/apply-patch+yaml", "{}");
  REQUIRE_FALSE(apply);
  CHECK(apply.error().code == 415);
}

TEST_CASE("Status errors carry the apiserver's reasons, codes and texts", "[kubesim]") {
  json not_found = json::parse(
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"jobs.batch \"x\" not found","reason":"NotFound","details":{"name":"x","group":"batch","kind":"jobs"},"code":404})");
  CHECK(NotFound(Jobs(), "x").ToStatus() == not_found);
  CHECK(AlreadyExists(Pods(), "p").ToStatus()["message"] == "pods \"p\" already exists");
  CHECK(StaleConflict(Jobs(), "x").message ==
        "Operation cannot be fulfilled on jobs.batch \"x\": the object has been modified; please "
        "apply your changes to the latest version and try again");
  json expired = json::parse(
      R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 100 (27500)","reason":"Expired","details":{},"code":410})j");
  CHECK(Expired("too old resource version: 100 (27500)").ToStatus() == expired);
}

TEST_CASE("the store's history answers watches until it is trimmed", "[kubesim]") {
  Store store(3);
  for (int i = 0; i < 5; ++i) {
    store.Put(Pods(), {{"metadata", {{"name", "p" + std::to_string(i)}, {"namespace", "default"}}}});
  }
  std::vector<const StoreEvent*> events;
  uint64_t oldest = 0;
  CHECK(store.EventsSince(store.rv() - 2, events, oldest));
  CHECK(events.size() == 2);
  events.clear();
  CHECK_FALSE(store.EventsSince(1, events, oldest));
  CHECK(oldest == store.rv() - 3);
}

}  // namespace
}  // namespace kiln::kubesim
