#include "dag/graph.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <utility>

#include "base/check.h"
#include "dag/expr/depends.h"

namespace kiln::dag {

static_assert(sizeof(Node) <= 40, "Node should stay compact: the graph holds 100k of them");

std::string_view NodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kLeaf: return "Leaf";
    case NodeKind::kDag: return "DAG";
    case NodeKind::kSteps: return "Steps";
    case NodeKind::kGroupBarrier: return "GroupBarrier";
    case NodeKind::kBoundary: return "Boundary";
    case NodeKind::kFanOut: return "FanOut";
    case NodeKind::kDeferred: return "Deferred";
  }
  return "Unknown";
}

namespace {

// The spec that template names resolve in, and the manifest holding it (for error locations).
struct Scope {
  const WorkflowSpec* spec = nullptr;
  const Manifest* manifest = nullptr;
};

// The nodes a task or step became: where its predecessors attach and what its successors wait on.
struct Extent {
  uint32_t entry = kNoNode;
  uint32_t exit = kNoNode;
};

struct Edge {
  uint32_t from;
  uint32_t to;
};

std::string Where(const Scope& scope, Location loc) {
  std::string out = scope.manifest != nullptr ? scope.manifest->file : std::string();
  if (loc.line > 0) {
    out += ':' + std::to_string(loc.line) + ':' + std::to_string(loc.column);
  }
  return out;
}

std::string Quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

bool IsComposite(const Template& t) {
  return t.type == TemplateType::kDag || t.type == TemplateType::kSteps;
}

// A non-negative integer literal, or nullopt (templated or malformed values).
std::optional<int64_t> ParseInt(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// withSequence's item count when its fields are literals: count, or |end - start| + 1.
uint32_t SequenceCount(const Sequence& seq) {
  if (seq.count) {
    std::optional<int64_t> n = ParseInt(*seq.count);
    if (!n || *n < 0 || *n >= kUnknownCount) return kUnknownCount;
    return static_cast<uint32_t>(*n);
  }
  if (seq.end) {
    std::optional<int64_t> start = seq.start ? ParseInt(*seq.start) : std::optional<int64_t>(0);
    std::optional<int64_t> end = ParseInt(*seq.end);
    if (!start || !end) return kUnknownCount;
    int64_t n = std::llabs(*end - *start) + 1;
    return n >= kUnknownCount ? kUnknownCount : static_cast<uint32_t>(n);
  }
  return kUnknownCount;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The names of a depends that is a plain conjunction "a && b && c" (the common case), without
// building an expression; false for anything else, which then goes to ParseDepends. Accepts
// exactly the texts ParseDepends parses to bare names joined by &&, with the same refs.
bool SplitConjunction(std::string_view text, std::vector<std::string_view>* names) {
  names->clear();
  size_t i = 0;
  while (true) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && IsNameChar(text[i])) ++i;
    if (i == start) return false;
    names->push_back(text.substr(start, i - start));
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i == text.size()) return true;
    if (text.compare(i, 2, "&&") != 0) return false;
    i += 2;
  }
}

// Finds one dependency cycle among the tasks Kahn's algorithm could not order (`stuck`), as
// "a -> b -> a" where "a -> b" means a depends on b, starting at the first-declared task on it.
// Every stuck task has a stuck dependency, so walking dependencies must come back on itself.
std::string DescribeCycle(const DagSpec& dag, const std::vector<uint32_t>& dep_offsets,
                          const std::vector<uint32_t>& deps, const std::vector<uint8_t>& stuck) {
  uint32_t start = 0;
  while (!stuck[start]) ++start;
  std::vector<uint32_t> position(stuck.size(), kNoNode);
  std::vector<uint32_t> path;
  uint32_t t = start;
  while (position[t] == kNoNode) {
    position[t] = static_cast<uint32_t>(path.size());
    path.push_back(t);
    uint32_t next = kNoNode;
    for (uint32_t k = dep_offsets[t]; k < dep_offsets[t + 1]; ++k) {
      if (stuck[deps[k]]) {
        next = deps[k];
        break;
      }
    }
    KILN_CHECK(next != kNoNode);
    t = next;
  }
  std::vector<uint32_t> cycle(path.begin() + position[t], path.end());
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  std::string out;
  for (uint32_t c : cycle) {
    out += dag.tasks[c].name;
    out += " -> ";
  }
  out += dag.tasks[cycle.front()].name;
  return out;
}

// Task name -> index within one DAG template: open addressing over a flat array, since a
// node-based map costs one allocation and a cache miss per task at 100k tasks. Each slot keeps
// the name's hash beside the index, so a probe rarely touches the (large) Invocation.
class TaskIndex {
 public:
  explicit TaskIndex(const std::vector<Invocation>& tasks) : tasks_(tasks) {
    size_t capacity = 16;
    while (capacity < tasks.size() * 2) capacity *= 2;
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
  }

  // Returns false when a task of that name is already present.
  bool Insert(uint32_t i) {
    const uint64_t h = Hash(tasks_[i].name);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      if (slots_[s] == 0) {
        slots_[s] = (h << 32) | (i + 1);
        return true;
      }
      if ((slots_[s] >> 32) == (h & 0xffffffffu) &&
          tasks_[(slots_[s] & 0xffffffffu) - 1].name == tasks_[i].name) {
        return false;
      }
    }
  }

  // Returns the task's index, or kNoNode.
  uint32_t Find(std::string_view name) const {
    const uint64_t h = Hash(name);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      if (slots_[s] == 0) return kNoNode;
      const uint32_t i = static_cast<uint32_t>(slots_[s] & 0xffffffffu) - 1;
      if ((slots_[s] >> 32) == (h & 0xffffffffu) && tasks_[i].name == name) return i;
    }
  }

 private:
  // FNV-1a, 32 bits: task names are short.
  static uint64_t Hash(std::string_view s) {
    uint32_t h = 2166136261u;
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
  }

  const std::vector<Invocation>& tasks_;
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

}  // namespace

class GraphBuilder {
 public:
  GraphBuilder(const Manifest& m, const TemplateLibrary& lib, const ExpandOptions& opts)
      : manifest_(m), lib_(lib), opts_(opts) {}

  Result<Graph> Build();

 private:
  Result<uint32_t> AddNode(NodeKind kind, const Template* tmpl, const Invocation* inv,
                           uint32_t parent, std::string_view a, std::string_view b = {},
                           std::string_view c = {});
  // `caller` names the node making the call, for errors.
  Result<const Template*> Resolve(const Invocation& inv, const Scope& scope, Scope* callee_scope,
                                  const std::function<std::string()>& caller);
  Result<Extent> ExpandInvocation(const Invocation& inv, const Scope& scope, uint32_t parent,
                                  std::string_view a, std::string_view b, std::string_view c);
  Result<Extent> ExpandCall(const Template& t, const Invocation* inv, const Scope& scope,
                            uint32_t parent, std::string_view a, std::string_view b,
                            std::string_view c);
  // Expand the children of call node `call` and append the nodes the boundary waits on to
  // `leaves`.
  Result<void> ExpandDag(const Template& t, const Scope& scope, uint32_t call,
                         std::vector<uint32_t>* leaves);
  Result<void> ExpandSteps(const Template& t, const Scope& scope, uint32_t call,
                           std::vector<uint32_t>* leaves);
  std::string NameOf(uint32_t i) const {
    return graph_.names_.substr(graph_.nodes_[i].name_offset, graph_.nodes_[i].name_size);
  }
  Result<void> ResolveExitHandler(const Scope& scope);
  void Finish();

  const Manifest& manifest_;
  const TemplateLibrary& lib_;
  const ExpandOptions& opts_;
  Graph graph_;
  std::vector<Edge> edges_;
  std::vector<const Template*> stack_;  // composite templates being expanded, for recursion
};

Result<uint32_t> GraphBuilder::AddNode(NodeKind kind, const Template* tmpl, const Invocation* inv,
                                       uint32_t parent, std::string_view a, std::string_view b,
                                       std::string_view c) {
  if (graph_.nodes_.size() >= opts_.max_nodes) {
    return MakeError(Code::kResourceExhausted,
                     "workflow expands to more than " + std::to_string(opts_.max_nodes) +
                         " nodes (max_nodes)");
  }
  Node n;
  n.kind = kind;
  n.tmpl = tmpl;
  n.invocation = inv;
  n.parent = parent;
  n.name_offset = static_cast<uint32_t>(graph_.names_.size());
  graph_.names_.append(a).append(b).append(c);
  n.name_size = static_cast<uint32_t>(a.size() + b.size() + c.size());
  graph_.nodes_.push_back(n);
  return static_cast<uint32_t>(graph_.nodes_.size() - 1);
}

Result<const Template*> GraphBuilder::Resolve(const Invocation& inv, const Scope& scope,
                                              Scope* callee_scope,
                                              const std::function<std::string()>& caller) {
  *callee_scope = scope;
  if (inv.inline_template) return inv.inline_template.get();
  if (inv.template_ref) {
    const TemplateRef& ref = *inv.template_ref;
    std::string_view kind = ref.cluster_scope ? "ClusterWorkflowTemplate" : "WorkflowTemplate";
    const Manifest* wt = lib_.Find(ref.name, ref.cluster_scope);
    if (wt == nullptr) {
      return MakeError(Code::kNotFound,
                       "templateRef " + Quote(ref.name + "/" + ref.template_name) + " of " +
                           caller() + ": no " + std::string(kind) + " " +
                           Quote(ref.name),
                       Where(scope, ref.loc));
    }
    const Template* t = FindTemplate(wt->spec, ref.template_name);
    if (t == nullptr) {
      return MakeError(Code::kNotFound,
                       "templateRef " + Quote(ref.name + "/" + ref.template_name) + " of " +
                           caller() + ": " + std::string(kind) + " " +
                           Quote(ref.name) + " has no template " + Quote(ref.template_name),
                       Where(scope, ref.loc));
    }
    *callee_scope = Scope{&wt->spec, wt};
    return t;
  }
  const Template* t = FindTemplate(*scope.spec, inv.template_name);
  if (t == nullptr) {
    return MakeError(Code::kNotFound,
                     "template " + Quote(inv.template_name) + " of " + caller() +
                         " not found",
                     Where(scope, inv.template_loc.line > 0 ? inv.template_loc : inv.loc));
  }
  return t;
}

Result<Extent> GraphBuilder::ExpandInvocation(const Invocation& inv, const Scope& scope,
                                              uint32_t parent, std::string_view a,
                                              std::string_view b, std::string_view c) {
  Scope callee_scope;
  auto caller = [&] { return std::string(a).append(b).append(c); };
  Result<const Template*> t = Resolve(inv, scope, &callee_scope, caller);
  if (!t) return std::unexpected(std::move(t.error()));
  const Template& callee = **t;

  FanOutKind fan_out = FanOutKind::kNone;
  uint32_t count = kUnknownCount;
  if (!inv.with_items.is_null()) {
    fan_out = FanOutKind::kItems;
    if (inv.with_items.is_array()) count = static_cast<uint32_t>(inv.with_items.size());
  } else if (!inv.with_param.empty()) {
    fan_out = FanOutKind::kParam;
  } else if (inv.with_sequence) {
    fan_out = FanOutKind::kSequence;
    count = SequenceCount(*inv.with_sequence);
  }
  if (fan_out != FanOutKind::kNone) {
    Result<uint32_t> n = AddNode(NodeKind::kFanOut, &callee, &inv, parent, a, b, c);
    if (!n) return std::unexpected(std::move(n.error()));
    graph_.nodes_[*n].fan_out = fan_out;
    graph_.nodes_[*n].fan_out_count = count;
    return Extent{*n, *n};
  }
  if (!IsComposite(callee)) {
    Result<uint32_t> n = AddNode(NodeKind::kLeaf, &callee, &inv, parent, a, b, c);
    if (!n) return std::unexpected(std::move(n.error()));
    return Extent{*n, *n};
  }
  if (std::find(stack_.begin(), stack_.end(), &callee) != stack_.end()) {
    Result<uint32_t> n = AddNode(NodeKind::kDeferred, &callee, &inv, parent, a, b, c);
    if (!n) return std::unexpected(std::move(n.error()));
    return Extent{*n, *n};
  }
  return ExpandCall(callee, &inv, callee_scope, parent, a, b, c);
}

Result<Extent> GraphBuilder::ExpandCall(const Template& t, const Invocation* inv,
                                        const Scope& scope, uint32_t parent, std::string_view a,
                                        std::string_view b, std::string_view c) {
  if (stack_.size() >= opts_.max_depth) {
    return MakeError(Code::kResourceExhausted, "templates nest deeper than " +
                                                   std::to_string(opts_.max_depth) +
                                                   " levels (max_depth)");
  }
  NodeKind kind = t.type == TemplateType::kDag ? NodeKind::kDag : NodeKind::kSteps;
  Result<uint32_t> call = AddNode(kind, &t, inv, parent, a, b, c);
  if (!call) return std::unexpected(std::move(call.error()));
  stack_.push_back(&t);
  std::vector<uint32_t> leaves;
  Result<void> r = kind == NodeKind::kDag ? ExpandDag(t, scope, *call, &leaves)
                                          : ExpandSteps(t, scope, *call, &leaves);
  stack_.pop_back();
  if (!r) return std::unexpected(std::move(r.error()));
  std::string name = NameOf(*call);
  Result<uint32_t> boundary = AddNode(NodeKind::kBoundary, &t, inv, parent, name, "/end");
  if (!boundary) return std::unexpected(std::move(boundary.error()));
  graph_.nodes_[*call].partner = *boundary;
  graph_.nodes_[*boundary].partner = *call;
  if (leaves.empty()) {
    edges_.push_back({*call, *boundary});
  } else {
    for (uint32_t leaf : leaves) edges_.push_back({leaf, *boundary});
  }
  return Extent{*call, *boundary};
}

Result<void> GraphBuilder::ExpandDag(const Template& t, const Scope& scope, uint32_t call,
                                     std::vector<uint32_t>* leaves) {
  const std::vector<Invocation>& tasks = t.dag.tasks;
  const uint32_t n = static_cast<uint32_t>(tasks.size());
  auto error = [&](const Invocation& task, Location loc, std::string message) {
    return MakeError(Code::kInvalidArgument, "template " + Quote(t.name) + ": " + message,
                     Where(scope, loc.line > 0 ? loc : task.loc));
  };

  TaskIndex index(tasks);
  for (uint32_t i = 0; i < n; ++i) {
    if (!index.Insert(i)) {
      return error(tasks[i], tasks[i].name_loc, "duplicate task name " + Quote(tasks[i].name));
    }
  }

  // Task-level dependencies in CSR form, duplicates dropped ("A.Succeeded || A.Failed").
  std::vector<uint32_t> dep_offsets(n + 1, 0);
  std::vector<uint32_t> deps;
  deps.reserve(n * 2);
  std::vector<uint32_t> seen(n, kNoNode);
  auto add_dep = [&](uint32_t task, std::string_view name, const Invocation& inv,
                     Location loc) -> Result<void> {
    const uint32_t d = index.Find(name);
    if (d == kNoNode) {
      return error(inv, loc, "task " + Quote(inv.name) + " depends on unknown task " + Quote(name));
    }
    if (seen[d] != task) {
      seen[d] = task;
      deps.push_back(d);
    }
    return {};
  };
  std::vector<std::string_view> names;
  for (uint32_t i = 0; i < n; ++i) {
    const Invocation& task = tasks[i];
    if ((task.has_depends || !task.depends.empty()) && SplitConjunction(task.depends, &names)) {
      for (std::string_view name : names) {
        Result<void> r = add_dep(i, name, task, task.depends_loc);
        if (!r) return r;
      }
    } else if (task.has_depends || !task.depends.empty()) {
      std::expected<expr::DependsExpr, expr::SyntaxError> parsed = expr::ParseDepends(task.depends);
      if (!parsed) {
        return error(task, task.depends_loc,
                     "task " + Quote(task.name) + ": cannot parse depends " +
                         Quote(task.depends) + ": " + parsed.error().message);
      }
      for (const expr::DependsRef& ref : parsed->refs()) {
        Result<void> r = add_dep(i, ref.task, task, task.depends_loc);
        if (!r) return r;
      }
    } else {
      for (const std::string& d : task.dependencies) {
        Result<void> r = add_dep(i, d, task, task.dependencies_loc);
        if (!r) return r;
      }
    }
    dep_offsets[i + 1] = static_cast<uint32_t>(deps.size());
  }

  // Refuse cycles before building anything on them (Kahn over the tasks).
  std::vector<uint32_t> dependents(n, 0);
  for (uint32_t d : deps) ++dependents[d];
  {
    std::vector<uint32_t> in(n);
    std::vector<uint32_t> dependent_offsets(n + 1, 0);
    for (uint32_t i = 0; i < n; ++i) {
      in[i] = dep_offsets[i + 1] - dep_offsets[i];
      dependent_offsets[i + 1] = dependent_offsets[i] + dependents[i];
    }
    std::vector<uint32_t> dependent(deps.size());
    std::vector<uint32_t> fill(dependent_offsets.begin(), dependent_offsets.end() - 1);
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t k = dep_offsets[i]; k < dep_offsets[i + 1]; ++k) dependent[fill[deps[k]]++] = i;
    }
    std::vector<uint32_t> queue;
    queue.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      if (in[i] == 0) queue.push_back(i);
    }
    for (size_t head = 0; head < queue.size(); ++head) {
      uint32_t i = queue[head];
      for (uint32_t k = dependent_offsets[i]; k < dependent_offsets[i + 1]; ++k) {
        if (--in[dependent[k]] == 0) queue.push_back(dependent[k]);
      }
    }
    if (queue.size() != n) {
      std::vector<uint8_t> stuck(n, 0);
      for (uint32_t i = 0; i < n; ++i) stuck[i] = in[i] > 0;
      uint32_t first = 0;
      while (!stuck[first]) ++first;
      return error(tasks[first], t.dag.loc,
                   "dependency cycle " + DescribeCycle(t.dag, dep_offsets, deps, stuck));
    }
  }

  std::string prefix = NameOf(call);
  std::vector<Extent> extents(n);
  for (uint32_t i = 0; i < n; ++i) {
    Result<Extent> e = ExpandInvocation(tasks[i], scope, call, prefix, ".", tasks[i].name);
    if (!e) return std::unexpected(std::move(e.error()));
    extents[i] = *e;
  }
  edges_.reserve(edges_.size() + deps.size() + n);
  for (uint32_t i = 0; i < n; ++i) {
    if (dep_offsets[i] == dep_offsets[i + 1]) {
      edges_.push_back({call, extents[i].entry});
    } else {
      for (uint32_t k = dep_offsets[i]; k < dep_offsets[i + 1]; ++k) {
        edges_.push_back({extents[deps[k]].exit, extents[i].entry});
      }
    }
    if (dependents[i] == 0) leaves->push_back(extents[i].exit);
  }
  return {};
}

Result<void> GraphBuilder::ExpandSteps(const Template& t, const Scope& scope, uint32_t call,
                                       std::vector<uint32_t>* leaves) {
  std::string prefix = NameOf(call);
  std::vector<uint32_t> frontier{call};
  std::vector<uint32_t> next;
  bool first_group = true;
  for (size_t g = 0; g < t.steps.size(); ++g) {
    const std::vector<Invocation>& group = t.steps[g];
    if (group.empty()) continue;
    std::string label = "[" + std::to_string(g) + "]";
    if (!first_group) {
      Result<uint32_t> barrier =
          AddNode(NodeKind::kGroupBarrier, &t, nullptr, call, prefix, label);
      if (!barrier) return std::unexpected(std::move(barrier.error()));
      for (uint32_t f : frontier) edges_.push_back({f, *barrier});
      frontier.assign(1, *barrier);
    }
    first_group = false;
    label += '.';
    next.clear();
    for (const Invocation& step : group) {
      Result<Extent> e = ExpandInvocation(step, scope, call, prefix, label, step.name);
      if (!e) return std::unexpected(std::move(e.error()));
      for (uint32_t f : frontier) edges_.push_back({f, e->entry});
      next.push_back(e->exit);
    }
    frontier.swap(next);
  }
  if (!first_group) leaves->insert(leaves->end(), frontier.begin(), frontier.end());
  return {};
}

// spec.onExit names a template of the spec the entrypoint lives in (a Workflow's own templates
// when it has them); spec.hooks.exit may also use a templateRef.
Result<void> GraphBuilder::ResolveExitHandler(const Scope& scope) {
  const Scope own{&manifest_.spec, &manifest_};
  const Scope* where = !manifest_.spec.on_exit.empty() ? &own : &scope;
  const std::string& on_exit = where->spec->on_exit;
  if (!on_exit.empty()) {
    const Template* t = FindTemplate(*scope.spec, on_exit);
    if (t == nullptr) t = FindTemplate(manifest_.spec, on_exit);
    if (t == nullptr) {
      return MakeError(Code::kNotFound, "exit handler template " + Quote(on_exit) + " not found",
                       Where(*where, where->spec->on_exit_loc));
    }
    graph_.exit_handler_ = on_exit;
    graph_.exit_template_ = t;
    return {};
  }
  for (const Scope* s : {&own, &scope}) {
    auto it = s->spec->hooks.find("exit");
    if (it == s->spec->hooks.end()) continue;
    Invocation inv;
    inv.name = "exit";
    inv.template_name = it->second.template_name;
    inv.template_ref = it->second.template_ref;
    inv.template_loc = it->second.loc;
    Scope callee;
    Result<const Template*> t = Resolve(inv, *s, &callee, [] { return std::string("the exit hook"); });
    if (!t) return std::unexpected(std::move(t.error()));
    graph_.exit_handler_ = inv.template_ref ? inv.template_ref->template_name : inv.template_name;
    graph_.exit_template_ = *t;
    return {};
  }
  return {};
}

Result<Graph> GraphBuilder::Build() {
  Scope scope{&manifest_.spec, &manifest_};
  std::string entrypoint = !opts_.entrypoint.empty() ? opts_.entrypoint : manifest_.spec.entrypoint;
  if (manifest_.spec.workflow_template_ref) {
    const WorkflowTemplateRef& ref = *manifest_.spec.workflow_template_ref;
    const Manifest* wt = lib_.Find(ref.name, ref.cluster_scope);
    if (wt == nullptr) {
      return MakeError(Code::kNotFound,
                       "workflowTemplateRef: no " +
                           std::string(ref.cluster_scope ? "ClusterWorkflowTemplate "
                                                         : "WorkflowTemplate ") +
                           Quote(ref.name),
                       Where(scope, ref.loc));
    }
    scope = Scope{&wt->spec, wt};
    if (entrypoint.empty()) entrypoint = wt->spec.entrypoint;
  }
  if (entrypoint.empty()) {
    return MakeError(Code::kInvalidArgument, "no entrypoint: the spec names none",
                     Where(scope, manifest_.spec.loc));
  }
  const Template* entry = FindTemplate(*scope.spec, entrypoint);
  if (entry == nullptr) {
    return MakeError(Code::kNotFound, "entrypoint template " + Quote(entrypoint) + " not found",
                     Where(scope, manifest_.spec.entrypoint_loc));
  }
  Result<void> exit = ResolveExitHandler(scope);
  if (!exit) return std::unexpected(std::move(exit.error()));

  std::string root_name = opts_.workflow_name;
  if (root_name.empty()) root_name = manifest_.metadata.name;
  if (root_name.empty()) root_name = manifest_.metadata.generate_name;
  if (root_name.empty()) root_name = "workflow";

  if (IsComposite(*entry)) {
    Result<Extent> e = ExpandCall(*entry, nullptr, scope, kNoNode, root_name, {}, {});
    if (!e) return std::unexpected(std::move(e.error()));
  } else {
    Result<uint32_t> n = AddNode(NodeKind::kLeaf, entry, nullptr, kNoNode, root_name);
    if (!n) return std::unexpected(std::move(n.error()));
  }
  Finish();
  return std::move(graph_);
}

// Builds both CSR adjacencies from the edge list with a counting sort, keeping edge order.
void GraphBuilder::Finish() {
  const size_t n = graph_.nodes_.size();
  auto build = [&](bool forward, std::vector<uint32_t>* offsets, std::vector<uint32_t>* flat) {
    offsets->assign(n + 1, 0);
    for (const Edge& e : edges_) ++(*offsets)[(forward ? e.from : e.to) + 1];
    for (size_t i = 0; i < n; ++i) (*offsets)[i + 1] += (*offsets)[i];
    flat->resize(edges_.size());
    std::vector<uint32_t> fill(offsets->begin(), offsets->end() - 1);
    for (const Edge& e : edges_) {
      uint32_t key = forward ? e.from : e.to;
      (*flat)[fill[key]++] = forward ? e.to : e.from;
    }
  };
  build(true, &graph_.succ_offsets_, &graph_.succ_);
  build(false, &graph_.pred_offsets_, &graph_.pred_);
  edges_.clear();
  edges_.shrink_to_fit();
  graph_.nodes_.shrink_to_fit();
  graph_.names_.shrink_to_fit();
}

Result<Graph> ExpandWorkflow(const Manifest& m, const TemplateLibrary& lib,
                             const ExpandOptions& opts) {
  GraphBuilder builder(m, lib, opts);
  return builder.Build();
}

std::vector<uint32_t> Graph::TopologicalOrder() const {
  const uint32_t n = static_cast<uint32_t>(nodes_.size());
  std::vector<uint32_t> in(n);
  std::vector<uint32_t> order;
  order.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    in[i] = pred_offsets_[i + 1] - pred_offsets_[i];
    if (in[i] == 0) order.push_back(i);
  }
  for (size_t head = 0; head < order.size(); ++head) {
    for (uint32_t s : Successors(order[head])) {
      if (--in[s] == 0) order.push_back(s);
    }
  }
  KILN_CHECK(order.size() == n);  // acyclic by construction
  return order;
}

std::vector<uint32_t> Graph::Roots() const {
  std::vector<uint32_t> roots;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (pred_offsets_[i] == pred_offsets_[i + 1]) roots.push_back(i);
  }
  return roots;
}

std::optional<uint32_t> Graph::Find(std::string_view name) const {
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (this->name(i) == name) return i;
  }
  return std::nullopt;
}

size_t Graph::MemoryBytes() const {
  return nodes_.capacity() * sizeof(Node) + names_.capacity() +
         (succ_offsets_.capacity() + succ_.capacity() + pred_offsets_.capacity() +
          pred_.capacity()) *
             sizeof(uint32_t);
}

ReadyTracker::ReadyTracker(const Graph& graph) : graph_(&graph), pending_(graph.size()) {
  for (uint32_t i = 0; i < graph.size(); ++i) {
    pending_[i] = static_cast<uint32_t>(graph.Predecessors(i).size());
  }
}

std::vector<uint32_t> ReadyTracker::Initial() const { return graph_->Roots(); }

void ReadyTracker::Complete(uint32_t node, std::vector<uint32_t>* newly_ready) {
  KILN_CHECK(node < pending_.size());
  KILN_CHECK(pending_[node] == 0);  // ready, and not completed twice
  pending_[node] = kCompleted;
  ++completed_;
  for (uint32_t s : graph_->Successors(node)) {
    KILN_CHECK(pending_[s] != kCompleted && pending_[s] > 0);
    if (--pending_[s] == 0) newly_ready->push_back(s);
  }
}

}  // namespace kiln::dag
