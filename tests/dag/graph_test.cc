#include "dag/graph.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dag/parse.h"
#include "dag/validate.h"

namespace kiln::dag {
namespace {

// Parses `yaml` (one or more documents) and keeps the manifests alive for the graph's pointers.
struct Fixture {
  explicit Fixture(const std::string& yaml) {
    manifests = ParseManifests("wf.yaml", yaml, ParseOptions{}, diags);
    for (const Diagnostic& d : diags.items()) {
      if (d.severity == Severity::kError) FAIL_CHECK(d.ToString());
    }
    for (const Manifest& m : manifests) library.Add(m);
  }
  const Manifest& Workflow() const {
    for (const Manifest& m : manifests) {
      if (m.kind == ManifestKind::kWorkflow) return m;
    }
    FAIL("no Workflow in the YAML");
    return manifests.front();
  }
  Result<Graph> Expand(const ExpandOptions& opts = {}) const {
    return ExpandWorkflow(Workflow(), library, opts);
  }

  Diagnostics diags;
  std::vector<Manifest> manifests;
  TemplateLibrary library;
};

std::vector<std::string> Names(const Graph& g) {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < g.size(); ++i) out.emplace_back(g.name(i));
  return out;
}

std::vector<NodeKind> Kinds(const Graph& g) {
  std::vector<NodeKind> out;
  for (uint32_t i = 0; i < g.size(); ++i) out.push_back(g.node(i).kind);
  return out;
}

std::vector<uint32_t> Vec(std::span<const uint32_t> s) { return {s.begin(), s.end()}; }

const char* kDiamond = R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: dag-diamond
spec:
  entrypoint: diamond
  onExit: cleanup
  templates:
  - name: diamond
    dag:
      tasks:
      - name: A
        template: echo
      - name: B
        depends: "A"
        template: echo
      - name: C
        depends: "A"
        template: echo
      - name: D
        depends: "B && C"
        template: echo
  - name: echo
    container:
      image: busybox
  - name: cleanup
    container:
      image: busybox
)";

using K = NodeKind;

TEST_CASE("graph: diamond DAG has exact order and ready sets", "[dag]") {
  Fixture f(kDiamond);
  REQUIRE_FALSE(f.diags.has_errors());
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"dag-diamond", "dag-diamond.A", "dag-diamond.B",
                                              "dag-diamond.C", "dag-diamond.D",
                                              "dag-diamond/end"});
  CHECK(Kinds(*g) == std::vector<NodeKind>{K::kDag, K::kLeaf, K::kLeaf, K::kLeaf, K::kLeaf,
                                           K::kBoundary});
  CHECK(g->edge_count() == 6);
  CHECK(Vec(g->Successors(1)) == std::vector<uint32_t>{2, 3});
  CHECK(Vec(g->Predecessors(4)) == std::vector<uint32_t>{2, 3});
  CHECK(Vec(g->Predecessors(5)) == std::vector<uint32_t>{4});
  CHECK(g->Roots() == std::vector<uint32_t>{0});
  CHECK(g->TopologicalOrder() == std::vector<uint32_t>{0, 1, 2, 3, 4, 5});

  const Node& root = g->node(0);
  CHECK(root.invocation == nullptr);
  CHECK(root.parent == kNoNode);
  CHECK(root.partner == 5);
  CHECK(g->node(5).partner == 0);
  CHECK(root.tmpl->name == "diamond");
  CHECK(g->node(2).invocation->name == "B");
  CHECK(g->node(2).tmpl->name == "echo");
  CHECK(g->node(2).parent == 0);
  CHECK(g->exit_handler() == "cleanup");
  REQUIRE(g->exit_template() != nullptr);
  CHECK(g->exit_template()->name == "cleanup");

  ReadyTracker ready(*g);
  CHECK(ready.Initial() == std::vector<uint32_t>{0});
  std::vector<uint32_t> out;
  ready.Complete(0, &out);
  CHECK(out == std::vector<uint32_t>{1});
  out.clear();
  ready.Complete(1, &out);
  CHECK(out == std::vector<uint32_t>{2, 3});
  out.clear();
  ready.Complete(3, &out);
  CHECK(out.empty());
  ready.Complete(2, &out);
  CHECK(out == std::vector<uint32_t>{4});
  out.clear();
  ready.Complete(4, &out);
  CHECK(out == std::vector<uint32_t>{5});
  CHECK_FALSE(ready.done());
  out.clear();
  ready.Complete(5, &out);
  CHECK(out.empty());
  CHECK(ready.done());
  CHECK(ready.completed() == 6);
}

TEST_CASE("graph: steps groups run in sequence through barriers", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: steps-
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        template: echo
    - - name: b
        template: echo
      - name: c
        template: echo
    - - name: d
        template: echo
  - name: echo
    container:
      image: busybox
)");
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"steps-", "steps-[0].a", "steps-[1]", "steps-[1].b",
                                              "steps-[1].c", "steps-[2]", "steps-[2].d",
                                              "steps-/end"});
  CHECK(Kinds(*g) == std::vector<NodeKind>{K::kSteps, K::kLeaf, K::kGroupBarrier, K::kLeaf,
                                           K::kLeaf, K::kGroupBarrier, K::kLeaf, K::kBoundary});
  CHECK(g->edge_count() == 8);
  CHECK(Vec(g->Successors(0)) == std::vector<uint32_t>{1});
  CHECK(Vec(g->Successors(1)) == std::vector<uint32_t>{2});
  CHECK(Vec(g->Successors(2)) == std::vector<uint32_t>{3, 4});
  CHECK(Vec(g->Predecessors(5)) == std::vector<uint32_t>{3, 4});
  CHECK(Vec(g->Successors(5)) == std::vector<uint32_t>{6});
  CHECK(Vec(g->Successors(6)) == std::vector<uint32_t>{7});
  CHECK(g->node(2).invocation == nullptr);
  CHECK(g->node(2).parent == 0);
  CHECK(g->TopologicalOrder() == std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(g->exit_handler().empty());
  CHECK(g->exit_template() == nullptr);

  ExpandOptions opts;
  opts.workflow_name = "steps-x7k2p";
  Result<Graph> named = f.Expand(opts);
  REQUIRE(named.has_value());
  CHECK(named->name(3) == "steps-x7k2p[1].b");
}

TEST_CASE("graph: a dag inside steps hangs between call and boundary", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: nested
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: prep
        template: echo
    - - name: inner
        template: pair
  - name: pair
    dag:
      tasks:
      - name: x
        template: echo
      - name: w
        dependencies: [x]
        template: echo
      - name: z
        template: echo
  - name: echo
    container:
      image: busybox
)");
  REQUIRE_FALSE(f.diags.has_errors());
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"nested", "nested[0].prep", "nested[1]",
                                              "nested[1].inner", "nested[1].inner.x",
                                              "nested[1].inner.w", "nested[1].inner.z",
                                              "nested[1].inner/end", "nested/end"});
  CHECK(Kinds(*g) == std::vector<NodeKind>{K::kSteps, K::kLeaf, K::kGroupBarrier, K::kDag,
                                           K::kLeaf, K::kLeaf, K::kLeaf, K::kBoundary,
                                           K::kBoundary});
  CHECK(Vec(g->Predecessors(3)) == std::vector<uint32_t>{2});
  CHECK(Vec(g->Successors(3)) == std::vector<uint32_t>{4, 6});
  CHECK(Vec(g->Predecessors(7)) == std::vector<uint32_t>{5, 6});
  CHECK(Vec(g->Successors(7)) == std::vector<uint32_t>{8});
  CHECK(g->node(3).partner == 7);
  CHECK(g->node(7).partner == 3);
  CHECK(g->node(7).invocation == g->node(3).invocation);
  CHECK(g->node(4).parent == 3);
  CHECK(g->node(7).parent == 0);
  CHECK(g->TopologicalOrder() == std::vector<uint32_t>{0, 1, 2, 3, 4, 6, 5, 7, 8});

  ReadyTracker ready(*g);
  std::vector<uint32_t> out;
  for (uint32_t n : {0u, 1u, 2u}) ready.Complete(n, &out);
  CHECK(out == std::vector<uint32_t>{1, 2, 3});
  out.clear();
  ready.Complete(3, &out);
  CHECK(out == std::vector<uint32_t>{4, 6});
}

TEST_CASE("graph: templateRef resolves through the library, names in its own scope", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: shared
spec:
  templates:
  - name: pipeline
    dag:
      tasks:
      - name: hello
        template: greet
  - name: greet
    container:
      image: busybox
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: ref
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: call
        templateRef:
          name: shared
          template: pipeline
)");
  REQUIRE(f.manifests.size() == 2);
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"ref", "ref.call", "ref.call.hello", "ref.call/end",
                                              "ref/end"});
  CHECK(g->node(1).tmpl == f.library.FindTemplate("shared", "pipeline", false));
  CHECK(g->node(2).tmpl == f.library.FindTemplate("shared", "greet", false));

  TemplateLibrary empty;
  Result<Graph> missing = ExpandWorkflow(f.Workflow(), empty, {});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code() == Code::kNotFound);
  CHECK(missing.error().ToString() ==
        "wf.yaml:29:11: templateRef \"shared/pipeline\" of ref.call: no WorkflowTemplate "
        "\"shared\"");
}

TEST_CASE("graph: workflowTemplateRef starts at the template's entrypoint", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: wt
spec:
  entrypoint: hello
  onExit: bye
  templates:
  - name: hello
    container:
      image: busybox
  - name: bye
    container:
      image: busybox
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: from-wt
spec:
  workflowTemplateRef:
    name: wt
)");
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"from-wt"});
  CHECK(g->node(0).kind == NodeKind::kLeaf);
  CHECK(g->node(0).tmpl->name == "hello");
  CHECK(g->exit_handler() == "bye");
  CHECK(g->TopologicalOrder() == std::vector<uint32_t>{0});
}

TEST_CASE("graph: inline templates expand in place", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: inl
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: leaf
        inline:
          container:
            image: busybox
    - - name: sub
        inline:
          dag:
            tasks:
            - name: t
              template: echo
  - name: echo
    container:
      image: busybox
)");
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"inl", "inl[0].leaf", "inl[1]", "inl[1].sub",
                                              "inl[1].sub.t", "inl[1].sub/end", "inl/end"});
  CHECK(g->node(1).kind == NodeKind::kLeaf);
  CHECK(g->node(1).tmpl == g->node(1).invocation->inline_template.get());
  CHECK(g->node(3).kind == NodeKind::kDag);
  CHECK(g->node(4).tmpl->name == "echo");
}

TEST_CASE("graph: withItems, withSequence and withParam are fan-out placeholders", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: loops
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: items
        template: echo
        withItems: [a, b, c]
      - name: counted
        template: sub
        withSequence:
          count: "5"
      - name: ranged
        template: echo
        withSequence:
          start: "2"
          end: "4"
      - name: templated
        template: echo
        withSequence:
          count: "{{workflow.parameters.n}}"
      - name: param
        depends: items
        template: echo
        withParam: "{{tasks.items.outputs.result}}"
  - name: sub
    dag:
      tasks:
      - name: t
        template: echo
  - name: echo
    container:
      image: busybox
)");
  REQUIRE_FALSE(f.diags.has_errors());
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{"loops", "loops.items", "loops.counted",
                                              "loops.ranged", "loops.templated", "loops.param",
                                              "loops/end"});
  CHECK(Kinds(*g) == std::vector<NodeKind>{K::kDag, K::kFanOut, K::kFanOut, K::kFanOut,
                                           K::kFanOut, K::kFanOut, K::kBoundary});
  CHECK(g->node(1).fan_out == FanOutKind::kItems);
  CHECK(g->node(1).fan_out_count == 3);
  CHECK(g->node(2).fan_out == FanOutKind::kSequence);
  CHECK(g->node(2).fan_out_count == 5);
  CHECK(g->node(2).tmpl->name == "sub");
  CHECK(g->node(3).fan_out_count == 3);
  CHECK(g->node(4).fan_out_count == kUnknownCount);
  CHECK(g->node(5).fan_out == FanOutKind::kParam);
  CHECK(g->node(5).fan_out_count == kUnknownCount);
  CHECK(Vec(g->Predecessors(5)) == std::vector<uint32_t>{1});
  CHECK(Vec(g->Predecessors(6)) == std::vector<uint32_t>{2, 3, 4, 5});
}

TEST_CASE("graph: recursive calls are deferred to run time", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: coinflip
spec:
  entrypoint: coinflip
  templates:
  - name: coinflip
    steps:
    - - name: flip-coin
        template: flip
    - - name: heads
        template: echo
        when: "{{steps.flip-coin.outputs.result}} == heads"
      - name: tails
        template: again
        when: "{{steps.flip-coin.outputs.result}} == tails"
  - name: again
    dag:
      tasks:
      - name: retry
        template: coinflip
  - name: flip
    script:
      image: python
      source: print("heads")
  - name: echo
    container:
      image: busybox
)");
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Names(*g) == std::vector<std::string>{
                         "coinflip", "coinflip[0].flip-coin", "coinflip[1]", "coinflip[1].heads",
                         "coinflip[1].tails", "coinflip[1].tails.retry", "coinflip[1].tails/end",
                         "coinflip/end"});
  CHECK(Kinds(*g) == std::vector<NodeKind>{K::kSteps, K::kLeaf, K::kGroupBarrier, K::kLeaf,
                                           K::kDag, K::kDeferred, K::kBoundary, K::kBoundary});
  CHECK(g->node(5).tmpl->name == "coinflip");
  CHECK(g->node(5).invocation->name == "retry");
  CHECK(g->TopologicalOrder().size() == 8);
}

TEST_CASE("graph: depends expressions give one edge per referenced task", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: logic
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: echo}
      - {name: b, template: echo}
      - {name: c, template: echo}
      - {name: d, template: echo, depends: "c.Failed || (a.Succeeded && !c) || a.Failed"}
      - {name: e, template: echo, depends: " b&&a &&  b "}
  - name: echo
    container:
      image: busybox
)");
  Result<Graph> g = f.Expand();
  REQUIRE(g.has_value());
  CHECK(Vec(g->Predecessors(4)) == std::vector<uint32_t>{3, 1});
  CHECK(Vec(g->Predecessors(5)) == std::vector<uint32_t>{2, 1});
  CHECK(Vec(g->Predecessors(6)) == std::vector<uint32_t>{4, 5});
  CHECK(Vec(g->Successors(0)) == std::vector<uint32_t>{1, 2, 3});
}

TEST_CASE("graph: a dependency cycle is refused with its path", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: cyc
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: start
        template: echo
      - name: a
        depends: "b && start"
        template: echo
      - name: b
        depends: c
        template: echo
      - name: c
        dependencies: [a]
        template: echo
  - name: echo
    container:
      image: busybox
)");
  Result<Graph> g = f.Expand();
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().code() == Code::kInvalidArgument);
  CHECK(g.error().ToString() == "wf.yaml:11:7: template \"main\": dependency cycle a -> b -> c -> a");
}

TEST_CASE("graph: bad references and depends are refused", "[dag]") {
  Fixture f(R"(
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: bad
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        template: nope
  - name: unknown-dep
    dag:
      tasks:
      - name: a
        depends: "zz"
        template: main
  - name: bad-depends
    dag:
      tasks:
      - name: a
        depends: "(x"
        template: main
)");
  Result<Graph> g = f.Expand();
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().code() == Code::kNotFound);
  CHECK(g.error().ToString() == "wf.yaml:13:19: template \"nope\" of bad.a not found");

  ExpandOptions opts;
  opts.entrypoint = "unknown-dep";
  g = f.Expand(opts);
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().ToString() ==
        "wf.yaml:18:18: template \"unknown-dep\": task \"a\" depends on unknown task \"zz\"");

  opts.entrypoint = "bad-depends";
  g = f.Expand(opts);
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().code() == Code::kInvalidArgument);
  CHECK_THAT(g.error().message(),
             Catch::StartsWith("template \"bad-depends\": task \"a\": cannot parse depends \"(x\": "));

  opts.entrypoint = "missing";
  g = f.Expand(opts);
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().message() == "entrypoint template \"missing\" not found");
}

TEST_CASE("graph: max_nodes bounds the expansion", "[dag]") {
  Fixture f(kDiamond);
  ExpandOptions opts;
  opts.max_nodes = 6;
  CHECK(f.Expand(opts).has_value());
  opts.max_nodes = 5;
  Result<Graph> g = f.Expand(opts);
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().code() == Code::kResourceExhausted);
  CHECK(g.error().message() == "workflow expands to more than 5 nodes (max_nodes)");
}

TEST_CASE("graph: a 100k-task layered DAG expands in linear time", "[dag]") {
  constexpr int kWidth = 100;
  constexpr int kLayers = 1000;
  Manifest m;
  m.metadata.name = "big";
  m.spec.entrypoint = "main";
  Template main;
  main.name = "main";
  main.type = TemplateType::kDag;
  Template work;
  work.name = "work";
  work.type = TemplateType::kContainer;
  main.dag.tasks.reserve(kWidth * kLayers);
  for (int layer = 0; layer < kLayers; ++layer) {
    for (int i = 0; i < kWidth; ++i) {
      Invocation task;
      task.name = "t" + std::to_string(layer) + "-" + std::to_string(i);
      task.template_name = "work";
      if (layer > 0) {
        std::string prev = "t" + std::to_string(layer - 1) + "-";
        task.depends = prev + std::to_string(i) + " && " + prev + std::to_string((i + 7) % kWidth);
        task.has_depends = true;
      }
      main.dag.tasks.push_back(std::move(task));
    }
  }
  m.spec.templates.push_back(std::move(main));
  m.spec.templates.push_back(std::move(work));

  Result<Graph> g = ExpandWorkflow(m, TemplateLibrary(), {});
  REQUIRE(g.has_value());
  CHECK(g->size() == 100'002);
  // root -> 100 first-layer tasks, 2 per later task, 100 last-layer tasks -> boundary.
  CHECK(g->edge_count() == 100 + 2 * 99'900 + 100);
  std::vector<uint32_t> order = g->TopologicalOrder();
  REQUIRE(order.size() == 100'002);
  CHECK(order.front() == 0);
  CHECK(order.back() == 100'001);
  CHECK(g->name(100'000) == "big.t999-99");
  CHECK(g->MemoryBytes() < 100 * 100'002);

  ReadyTracker ready(*g);
  std::vector<uint32_t> frontier = ready.Initial();
  std::vector<uint32_t> next;
  size_t rounds = 0;
  while (!frontier.empty()) {
    next.clear();
    for (uint32_t n : frontier) ready.Complete(n, &next);
    frontier.swap(next);
    ++rounds;
  }
  CHECK(ready.done());
  CHECK(rounds == kLayers + 2);
}

}  // namespace
}  // namespace kiln::dag
