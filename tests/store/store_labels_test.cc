// Workflow labels and label selectors, part of the behaviour every Store implementation must
// have (store_test.cc holds the rest), run against each backend. The selectors' parsing is
// tested in label_selector_test.cc; here, what the stores select with them, page by page.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "store/label_selector.h"
#include "tests/store/backends.h"

namespace kiln::store::testing {
namespace {

using Labels = std::map<std::string, std::string>;

Batch WithLabels(WorkflowRecord w, Labels labels) {
  w.labels = std::move(labels);
  Batch b;
  b.workflow_upsert = std::move(w);
  return b;
}

// Every page of `filter`, checked to be at most filter.limit long and, after the first, never
// empty; the uids in the order they came.
std::vector<std::string> AllPages(Store& store, WorkflowFilter filter) {
  std::vector<std::string> uids;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = store.ListWorkflows(filter);
    if (!page) FAIL(page.error().ToString());
    if (filter.limit > 0) CHECK(page->workflows.size() <= static_cast<size_t>(filter.limit));
    if (pages > 0) CHECK(!page->workflows.empty());
    for (const WorkflowRecord& w : page->workflows) uids.push_back(w.uid);
    if (page->continue_token.empty()) return uids;
    filter.continue_token = page->continue_token;
  }
  FAIL("more than 100 pages");
  return uids;
}

WorkflowFilter Selecting(const std::string& selector, int limit = 0, const std::string& phase = "",
                         const std::string& namespace_ = "") {
  WorkflowFilter f = Filter(namespace_, phase, limit);
  f.label_selector = selector;
  return f;
}

STORE_TEST("store keeps a workflow's labels and replaces them with each upsert") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  Labels labels = {{"app", "web"},
                   {"workflows.argoproj.io/phase", "Running"},
                   {"empty", ""},
                   {"ünïcödé", "ワークフロー \"quoted\" \\ and\ttabbed\nmulti-line"}};
  Batch first = WithLabels(Workflow("uid-1", "labelled"), labels);
  REQUIRE(store->Apply(first));
  RequireHolds(*store, first, 1);  // GetWorkflow compares the labels too

  auto found = store->FindWorkflow("default", "labelled");
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->labels == labels);
  auto listed = store->ListWorkflows(Filter("", "", 0));
  REQUIRE(listed);
  REQUIRE(listed->workflows.size() == 1);
  CHECK(listed->workflows[0] == *first.workflow_upsert);

  SECTION("an upsert replaces the whole set") {
    Batch update = WithLabels(*first.workflow_upsert, {{"app", "db"}, {"new", "1"}});
    update.workflow_upsert->phase = "Succeeded";
    REQUIRE(store->Apply(update));
    CHECK(store->GetWorkflow("uid-1").value()->labels == Labels{{"app", "db"}, {"new", "1"}});

    REQUIRE(store->Apply(WithLabels(*update.workflow_upsert, {})));
    CHECK(store->GetWorkflow("uid-1").value()->labels.empty());
    CHECK(backend->RawInt("SELECT COUNT(*) FROM workflow_labels") == 0);
  }

  SECTION("a batch without the workflow leaves its labels alone") {
    Batch nodes;
    nodes.node_upserts = {Node("uid-1", "uid-1.a", 0)};
    REQUIRE(store->Apply(nodes));
    CHECK(store->GetWorkflow("uid-1").value()->labels == labels);
  }

  SECTION("a failed batch keeps the labels it would have replaced") {
    Batch failing = WithLabels(*first.workflow_upsert, {{"app", "gone"}});
    failing.events = {Event("ghost", "", "Running")};
    REQUIRE_FALSE(store->Apply(failing));
    CHECK(store->GetWorkflow("uid-1").value()->labels == labels);
  }

  SECTION("labels go with their workflow") {
    REQUIRE(store->DeleteWorkflow("uid-1"));
    CHECK(backend->RawInt("SELECT COUNT(*) FROM workflow_labels") == 0);
    Batch again = WithLabels(Workflow("uid-2", "labelled"), {{"app", "other"}});
    REQUIRE(store->Apply(again));
    CHECK(store->GetWorkflow("uid-2").value()->labels == Labels{{"app", "other"}});
  }

  SECTION("labels survive reopening") {
    store.reset();
    auto reopened = OpenOrFail(*backend);
    CHECK(reopened->GetWorkflow("uid-1").value()->labels == labels);
  }
}

STORE_TEST("store refuses labels it could not give back, before writing anything") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  auto refused = [&](Labels labels) {
    Batch b = WithLabels(Workflow("uid-1", "bad"), std::move(labels));
    auto applied = store->Apply(b);
    REQUIRE_FALSE(applied);
    CHECK(applied.error().code() == Code::kInvalidArgument);
    CHECK(store->GetWorkflow("uid-1").value() == std::nullopt);
    return applied.error().message();
  };
  CHECK(refused({{"", "x"}}) == "cannot record workflow \"uid-1\": a label key is empty");
  CHECK(refused({{"a", std::string("x\0y", 3)}}) ==
        "cannot record workflow \"uid-1\": the value of label \"a\" holds a NUL byte");
  CHECK(refused({{"a", "\xff"}}) ==
        "cannot record workflow \"uid-1\": the value of label \"a\" is not UTF-8");
  CHECK(refused({{"a\xc0\xaf", "x"}}) ==  // an overlong '/'
        "cannot record workflow \"uid-1\": the key of label \"a\xc0\xaf\" is not UTF-8");
  CHECK(refused({{"a", "\xed\xa0\x80"}}) ==  // a surrogate
        "cannot record workflow \"uid-1\": the value of label \"a\" is not UTF-8");
}

// Six workflows, newest first f, e, d, c, b, a; each selector's result is checked against what
// is written here and against MatchesLabels, the same selector evaluated in memory.
STORE_TEST("store selects workflows with each label selector operator") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  std::map<std::string, Labels> labels = {
      {"a", {{"app", "web"}, {"tier", "frontend"}}},
      {"b", {{"app", "web"}, {"tier", "backend"}, {"env", "prod"}}},
      {"c", {{"app", "db"}, {"env", "prod"}}},
      {"d", {{"env", "dev"}}},
      {"e", {}},
      {"f", {{"app", ""}, {"kiln.dev/team", "x"}}},
  };
  int64_t created_at = 100;
  for (const auto& [uid, l] : labels) {
    REQUIRE(store->Apply(WithLabels(Workflow(uid, "wf-" + uid, "default", created_at++), l)));
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"", {"f", "e", "d", "c", "b", "a"}},
      {"app=web", {"b", "a"}},
      {"app==web", {"b", "a"}},
      {"app!=web", {"f", "e", "d", "c"}},
      {"app", {"f", "c", "b", "a"}},
      {"!app", {"e", "d"}},
      {"env in (prod,dev)", {"d", "c", "b"}},
      {"env notin (prod)", {"f", "e", "d", "a"}},
      {"app=", {"f"}},
      {"app in (web, db),env=prod", {"c", "b"}},
      {"app,!env", {"f", "a"}},
      {"tier notin (frontend,backend),app", {"f", "c"}},
      {"kiln.dev/team=x", {"f"}},
      {"  app = web  ,  tier  =  backend ", {"b"}},
      {"app=nope", {}},
      {"app=web,app=db", {}},
  };
  for (const auto& [selector, want] : cases) {
    INFO("selector: " << selector);
    auto page = store->ListWorkflows(Selecting(selector));
    if (!page) FAIL(page.error().ToString());
    std::vector<std::string> uids;
    for (const WorkflowRecord& w : page->workflows) {
      uids.push_back(w.uid);
      CHECK(w.labels == labels[w.uid]);
    }
    CHECK(uids == want);
    std::vector<std::string> in_memory;
    for (auto it = labels.rbegin(); it != labels.rend(); ++it) {
      if (MatchesLabels(ParseLabelSelector(selector).value(), it->second)) {
        in_memory.push_back(it->first);
      }
    }
    CHECK(uids == in_memory);
  }
}

STORE_TEST("store pages through a label selector with phase and namespace filters") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend, Speed::kFast);
  // 40 workflows, three to a created_at (the uid breaks ties), in two namespaces and two
  // phases, with labels that overlap in every way the selectors below ask about.
  std::vector<WorkflowRecord> all;
  for (int i = 0; i < 40; ++i) {
    std::string uid = (i < 10 ? "w0" : "w") + std::to_string(i);
    WorkflowRecord w = Workflow(uid, "wf-" + uid, i % 2 == 0 ? "default" : "ml", 1000 + i / 3,
                                i % 3 == 0 ? "Succeeded" : "Running");
    w.labels["team"] = i % 4 == 0 ? "a" : "b";
    w.labels["shard"] = std::to_string(i % 3);
    if (i % 5 == 0) w.labels["gpu"] = "true";
    all.push_back(w);
    REQUIRE(store->Apply(WithLabels(w, w.labels)));
  }
  std::sort(all.begin(), all.end(), [](const WorkflowRecord& x, const WorkflowRecord& y) {
    return std::tie(y.created_at, y.uid) < std::tie(x.created_at, x.uid);  // newest first
  });

  for (std::string selector : {"team=a", "gpu", "!gpu,shard in (0,2)", "team!=a,shard notin (1)",
                               "gpu=true,team=b", "team in (a,b)"}) {
    for (std::string phase : {"", "Running"}) {
      for (std::string namespace_ : {"", "ml"}) {
        std::vector<std::string> want;
        auto requirements = ParseLabelSelector(selector).value();
        for (const WorkflowRecord& w : all) {
          if ((phase.empty() || w.phase == phase) &&
              (namespace_.empty() || w.namespace_ == namespace_) &&
              MatchesLabels(requirements, w.labels)) {
            want.push_back(w.uid);
          }
        }
        for (int limit : {0, 1, 2, 3, 7}) {
          INFO("selector " << selector << ", phase " << phase << ", namespace " << namespace_
                           << ", limit " << limit);
          CHECK(AllPages(*store, Selecting(selector, limit, phase, namespace_)) == want);
        }
      }
    }
  }

  // A matching workflow created after the first page was read does not shift the next ones.
  auto first = store->ListWorkflows(Selecting("team=a", 2));
  REQUIRE(first);
  REQUIRE(first->workflows.size() == 2);
  WorkflowRecord late = Workflow("z-late", "wf-late", "default", 5000);
  REQUIRE(store->Apply(WithLabels(late, {{"team", "a"}})));
  WorkflowFilter next = Selecting("team=a", 2);
  next.continue_token = first->continue_token;
  auto second = store->ListWorkflows(next);
  REQUIRE(second);
  std::vector<std::string> team_a;
  for (const WorkflowRecord& w : all) {
    if (w.labels.at("team") == "a") team_a.push_back(w.uid);
  }
  REQUIRE(second->workflows.size() == 2);
  CHECK(second->workflows[0].uid == team_a[2]);
  CHECK(second->workflows[1].uid == team_a[3]);
}

STORE_TEST("store refuses a label selector that does not parse") {
  auto backend = TestType::Make();
  if (!backend) return;
  auto store = OpenOrFail(*backend);
  REQUIRE(store->Apply(WithLabels(Workflow("uid-1", "wf"), {{"app", "web"}})));
  for (std::string selector : {"a b", "a in (x", "a in ()", "a>1", "!", "a=b,", "=a", "a=b=c"}) {
    INFO(selector);
    auto page = store->ListWorkflows(Selecting(selector, 10));
    REQUIRE_FALSE(page);
    CHECK(page.error().code() == Code::kInvalidArgument);
    CHECK(page.error().message().starts_with("label selector \"" + selector + "\": requirement"));
  }
  CHECK(store->ListWorkflows(Selecting("app=web,a b")).error().message() ==
        "label selector \"app=web,a b\": requirement \"a b\": unexpected \"b\" after key \"a\"; "
        "expected =, ==, !=, in or notin");
  // Text no label can hold is refused alike by both stores (PostgreSQL would refuse it, SQLite
  // would match nothing).
  for (std::string selector : {std::string("app=a\0b", 7), std::string("app=\xc3")}) {
    auto page = store->ListWorkflows(Selecting(selector));
    REQUIRE_FALSE(page);
    CHECK(page.error().code() == Code::kInvalidArgument);
    CHECK(page.error().message() ==
          "label selector \"" + selector + "\" is not UTF-8 text, or holds a NUL byte");
  }
  // The store is usable afterwards.
  CHECK(AllPages(*store, Selecting("app=web")) == std::vector<std::string>{"uid-1"});
}

}  // namespace
}  // namespace kiln::store::testing
