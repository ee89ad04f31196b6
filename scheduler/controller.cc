#include "scheduler/controller.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <type_traits>
#include <unordered_set>

#include "base/check.h"
#include "base/strings.h"
#include "dag/duration.h"
#include "dag/expr/depends.h"
#include "dag/expr/expr_lang.h"
#include "dag/expr/govaluate.h"
#include "dag/expr/template_string.h"
#include "scheduler/node_selector.h"

namespace kiln::scheduler {

std::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPending: return "Pending";
    case Phase::kRunning: return "Running";
    case Phase::kSucceeded: return "Succeeded";
    case Phase::kFailed: return "Failed";
    case Phase::kError: return "Error";
    case Phase::kSkipped: return "Skipped";
    case Phase::kOmitted: return "Omitted";
  }
  return "?";
}

bool IsDone(Phase phase) { return phase != Phase::kPending && phase != Phase::kRunning; }

std::string_view NodeTypeName(NodeType type) {
  switch (type) {
    case NodeType::kPod: return "Pod";
    case NodeType::kSteps: return "Steps";
    case NodeType::kStepGroup: return "StepGroup";
    case NodeType::kDag: return "DAG";
    case NodeType::kTaskGroup: return "TaskGroup";
    case NodeType::kRetry: return "Retry";
    case NodeType::kSuspend: return "Suspend";
    case NodeType::kSkipped: return "Skipped";
  }
  return "?";
}

nlohmann::json ArtifactRef::ToJson() const {
  nlohmann::json j = {{"kiln_artifact", sha256}, {"location", location}, {"size", size}, {"archived", archived}};
  if (raw_given) j["raw"] = raw;
  if (!key.empty()) j["key"] = key;
  return j;
}

std::optional<ArtifactRef> ArtifactRef::FromJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("kiln_artifact")) return std::nullopt;
  ArtifactRef r;
  r.sha256 = j.value("kiln_artifact", "");
  r.location = j.value("location", "");
  r.size = j.value("size", int64_t{0});
  r.archived = j.value("archived", false);
  if (j.contains("raw")) {
    r.raw = j.value("raw", "");
    r.raw_given = true;
  }
  r.key = j.value("key", "");
  return r;
}

nlohmann::json EventToJson(const Event& event) {
  nlohmann::json j;
  std::visit(
      [&j](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, StartWorkflow>) {
          j["type"] = "StartWorkflow";
        } else if constexpr (std::is_same_v<T, StepStarted>) {
          j = {{"type", "StepStarted"}, {"node", e.node}};
        } else if constexpr (std::is_same_v<T, StepWaiting>) {
          j = {{"type", "StepWaiting"}, {"node", e.node}, {"message", e.message}};
        } else if constexpr (std::is_same_v<T, StepFinished>) {
          j = {{"type", "StepFinished"}, {"node", e.node}, {"exitCode", e.exit_code}, {"error", e.error},
               {"message", e.message}, {"outputs", e.outputs}};
          if (e.result) j["result"] = *e.result;
          nlohmann::json artifacts = nlohmann::json::object();
          for (const auto& [k, a] : e.artifacts) artifacts[k] = a.ToJson();
          j["artifacts"] = std::move(artifacts);
        } else if constexpr (std::is_same_v<T, TimerFired>) {
          j = {{"type", "TimerFired"}, {"timer", e.timer}};
        } else if constexpr (std::is_same_v<T, CancelRequested>) {
          j = {{"type", "CancelRequested"}, {"message", e.message}};
          if (e.run_exit_handler) j["runExitHandler"] = true;
        } else if constexpr (std::is_same_v<T, SuspendRequested>) {
          j["type"] = "SuspendRequested";
        } else if constexpr (std::is_same_v<T, ResumeRequested>) {
          j["type"] = "ResumeRequested";
        } else if constexpr (std::is_same_v<T, RetryRequested>) {
          j = {{"type", "RetryRequested"},
               {"restartSuccessful", e.restart_successful},
               {"nodeFieldSelector", e.node_field_selector},
               {"parameters", e.parameters}};
        } else {
          static_assert(std::is_same_v<T, Resume>);
          j["type"] = "Resume";
          if (e.adopt_running) j["adoptRunning"] = true;
        }
      },
      event);
  return j;
}

std::optional<Event> EventFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return std::nullopt;
  try {
    const std::string type = j["type"];
    if (type == "StartWorkflow") return StartWorkflow{};
    if (type == "StepStarted") return StepStarted{j.at("node")};
    if (type == "StepWaiting") return StepWaiting{j.at("node"), j.at("message")};
    if (type == "TimerFired") return TimerFired{j.at("timer")};
    if (type == "CancelRequested") return CancelRequested{j.at("message"), j.value("runExitHandler", false)};
    if (type == "Resume") return Resume{j.value("adoptRunning", false)};
    if (type == "SuspendRequested") return SuspendRequested{};
    if (type == "ResumeRequested") return ResumeRequested{};
    if (type == "RetryRequested") {
      RetryRequested e;
      e.restart_successful = j.value("restartSuccessful", false);
      e.node_field_selector = j.value("nodeFieldSelector", "");
      if (j.contains("parameters")) e.parameters = j["parameters"].get<std::map<std::string, std::string>>();
      return e;
    }
    if (type == "StepFinished") {
      StepFinished e;
      e.node = j.at("node");
      e.exit_code = j.at("exitCode");
      e.error = j.at("error");
      e.message = j.at("message");
      e.outputs = j.at("outputs").get<std::map<std::string, std::string>>();
      if (j.contains("result")) e.result = j["result"].get<std::string>();
      for (auto it = j.at("artifacts").begin(); it != j.at("artifacts").end(); ++it) {
        auto ref = ArtifactRef::FromJson(it.value().dump());
        if (!ref) return std::nullopt;
        e.artifacts[it.key()] = *ref;
      }
      return e;
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return std::nullopt;
}

// What AdvanceDag needs of a dag template, derived once: tasks by name, the tasks that wait for
// nothing, who waits for each task, and each task's parsed `depends`.
struct DagIndex {
  std::unordered_map<std::string, size_t> by_name;
  std::vector<size_t> roots;
  std::vector<std::vector<size_t>> dependents;
  std::vector<std::optional<expr::DependsExpr>> depends;
  std::vector<bool> depends_invalid;

  explicit DagIndex(const dag::Template& t) {
    const auto& tasks = t.dag.tasks;
    dependents.resize(tasks.size());
    depends.resize(tasks.size());
    depends_invalid.resize(tasks.size(), false);
    for (size_t i = 0; i < tasks.size(); ++i) by_name.emplace(tasks[i].name, i);
    for (size_t i = 0; i < tasks.size(); ++i) {
      std::vector<std::string> waits_for;
      if (tasks[i].has_depends) {
        auto parsed = expr::ParseDepends(tasks[i].depends);
        if (parsed) {
          for (const expr::DependsRef& r : parsed->refs()) waits_for.push_back(r.task);
          depends[i] = std::move(*parsed);
        } else {
          depends_invalid[i] = true;
        }
      } else {
        waits_for = tasks[i].dependencies;
      }
      std::sort(waits_for.begin(), waits_for.end());
      waits_for.erase(std::unique(waits_for.begin(), waits_for.end()), waits_for.end());
      bool any = false;
      for (const std::string& name : waits_for) {
        auto it = by_name.find(name);
        if (it == by_name.end()) continue;  // a validation error; the task never becomes ready
        dependents[it->second].push_back(i);
        any = true;
      }
      if (!any && waits_for.empty()) roots.push_back(i);
    }
  }
};

// Indexes are built on first use and kept for the life of the state (the manifest outlives it).
struct TemplateIndexCache {
  std::mutex mu;
  std::unordered_map<const dag::Template*, std::unique_ptr<DagIndex>> dags;
  std::optional<bool> has_hooks;

  // Whether any template reachable from the workflow has step/task hooks, or the workflow has
  // hooks other than `exit` (when none does, no event pays for looking).
  bool HasHooks(const dag::Manifest& m) {
    std::lock_guard lock(mu);
    if (!has_hooks) {
      bool any = false;
      for (const auto& [name, hook] : m.spec.hooks) any = any || name != "exit";
      // Templates from elsewhere (templateRef, workflowTemplateRef, inline) are not scanned: with
      // any of them, assume hooks.
      auto consider = [&](const dag::Invocation& inv) {
        any = any || !inv.on_exit.empty() || !inv.hooks.empty() || inv.template_ref || inv.inline_template;
      };
      for (const dag::Template& t : m.spec.templates) {
        for (const auto& group : t.steps) {
          for (const dag::Invocation& inv : group) consider(inv);
        }
        for (const dag::Invocation& inv : t.dag.tasks) consider(inv);
      }
      has_hooks = any || m.spec.workflow_template_ref.has_value();
    }
    return *has_hooks;
  }

  const DagIndex& For(const dag::Template& t) {
    std::lock_guard lock(mu);
    auto& slot = dags[&t];
    if (!slot) slot = std::make_unique<DagIndex>(t);
    return *slot;
  }
};

const std::vector<std::string>& WorkflowState::ChildrenOf(const std::string& id) const {
  static const std::vector<std::string> kNone;
  auto it = children.find(id);
  return it == children.end() ? kNone : it->second;
}

namespace {

// Template variables. A dag's variables resolve its tasks' ones (`tasks.NAME.*`) on demand, so
// invoking a task costs time in proportion to the siblings it names, not to the dag's size.
struct Vars : std::map<std::string, std::string> {
  // Adds the variables of the sibling called `name` (if any) to `into`.
  std::function<void(const std::string& name, std::map<std::string, std::string>& into)> add_sibling;
  // Adds every sibling's variables to `into` (an expression names `tasks` as a whole).
  std::function<void(std::map<std::string, std::string>& into)> add_all_siblings;
  std::string lazy_prefix;  // "tasks."
};

// The sibling names an expression refers to as `tasks.NAME` or `tasks['NAME']`; nullopt when
// it uses `tasks` in another way (then every sibling is needed).
std::optional<std::vector<std::string>> NamedSiblings(std::string_view text, std::string_view word) {
  std::vector<std::string> names;
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  for (size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    if (at > 0 && name_char(text[at - 1])) continue;  // "subtasks"
    size_t i = at + word.size();
    if (i < text.size() && text[i] == '.') {
      size_t b = ++i;
      while (i < text.size() && name_char(text[i])) ++i;
      if (i == b) return std::nullopt;
      names.emplace_back(text.substr(b, i - b));
    } else if (i + 1 < text.size() && text[i] == '[' && (text[i + 1] == '\'' || text[i + 1] == '"')) {
      char quote = text[i + 1];
      size_t b = i + 2;
      size_t e = text.find(quote, b);
      if (e == std::string_view::npos) return std::nullopt;
      names.emplace_back(text.substr(b, e - b));
    } else if (i < text.size() && name_char(text[i])) {
      continue;  // "tasksX": another word
    } else {
      return std::nullopt;
    }
  }
  return names;
}

bool IsFailure(Phase p) { return p == Phase::kFailed || p == Phase::kError; }

// Substitutes {{...}} tags from `vars`; {{=expr}} is evaluated with expr-lang over the same
// variables. Unresolved simple tags stay as written (Argo's behaviour).
Result<std::string> Render(std::string_view text, const Vars& vars) {
  if (text.find("{{") == std::string_view::npos) return std::string(text);
  std::optional<Error> failure;
  std::optional<nlohmann::json> env;
  std::map<std::string, std::string> extra;  // siblings' variables, resolved on demand
  std::unordered_set<std::string> loaded;
  auto out = expr::Substitute(text, [&](const expr::TemplateTag& tag) -> std::optional<std::string> {
    if (!tag.is_expression) {
      auto it = vars.find(tag.body);
      if (it != vars.end()) return it->second;
      if (!vars.add_sibling || !std::string_view(tag.body).starts_with(vars.lazy_prefix)) return std::nullopt;
      size_t b = vars.lazy_prefix.size();
      std::string name = tag.body.substr(b, tag.body.find('.', b) - b);
      if (loaded.insert(name).second) vars.add_sibling(name, extra);
      auto jt = extra.find(tag.body);
      if (jt == extra.end()) return std::nullopt;
      return jt->second;
    }
    auto program = expr::ParseExpr(tag.body);
    if (!program) {
      failure = Error(Code::kInvalidArgument, "invalid expression " + Quote(tag.body) + ": " + program.error().message);
      return std::nullopt;
    }
    if (!env) {
      if (!vars.add_sibling) {
        env = expr::BuildEnv(vars);
      } else {
        // Every sibling the text names (in any tag), or all of them.
        std::map<std::string, std::string> all = vars;
        std::string word = vars.lazy_prefix.substr(0, vars.lazy_prefix.size() - 1);
        if (auto names = NamedSiblings(text, word)) {
          for (const std::string& name : *names) {
            if (loaded.insert(name).second) vars.add_sibling(name, extra);
          }
        } else {
          vars.add_all_siblings(extra);
        }
        for (const auto& [k, v] : extra) all.emplace(k, v);
        env = expr::BuildEnv(all);
      }
    }
    auto value = expr::Evaluate(*program, *env);
    if (!value) {
      failure = Error(Code::kInvalidArgument, "cannot evaluate " + Quote(tag.body) + ": " + value.error());
      return std::nullopt;
    }
    return expr::RenderValue(*value);
  });
  if (!out) return MakeError(Code::kInvalidArgument, "invalid template " + Quote(text) + ": " + out.error().message);
  if (failure) return std::unexpected(*failure);
  return *out;
}

// An integer field that may be templated ("3", "{{inputs.parameters.n}}"): rendered, then read
// whole (surrounding spaces allowed); nullopt when it does not render to an integer.
std::optional<int64_t> RenderInt(const std::string& text, const Vars& vars) {
  auto r = Render(text, vars);
  if (!r) return std::nullopt;
  std::string_view v = *r;
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  return n;
}

// Renders every string inside a JSON value.
Result<dag::Json> RenderJson(const dag::Json& j, const Vars& vars) {
  if (j.is_string()) {
    auto s = Render(j.get_ref<const std::string&>(), vars);
    if (!s) return std::unexpected(s.error());
    return dag::Json(*s);
  }
  if (j.is_array() || j.is_object()) {
    dag::Json out = j;
    for (auto it = out.begin(); it != out.end(); ++it) {
      auto v = RenderJson(it.value(), vars);
      if (!v) return v;
      it.value() = std::move(*v);
    }
    return out;
  }
  return j;
}

// A node's children as a transition sees them: the state's, then those created in it.
class ChildView {
 public:
  ChildView(const std::vector<std::string>& before, const std::vector<std::string>* added)
      : before_(before), added_(added) {}
  size_t size() const { return before_.size() + (added_ ? added_->size() : 0); }
  bool empty() const { return size() == 0; }
  const std::string& operator[](size_t i) const { return i < before_.size() ? before_[i] : (*added_)[i - before_.size()]; }
  const std::string& back() const { return (*this)[size() - 1]; }

  class Iterator {
   public:
    Iterator(const ChildView* v, size_t i) : v_(v), i_(i) {}
    const std::string& operator*() const { return (*v_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }

   private:
    const ChildView* v_;
    size_t i_;
  };
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, size()); }

 private:
  const std::vector<std::string>& before_;
  const std::vector<std::string>* added_;
};

class Decider {
 public:
  Decider(const WorkflowState& base, const dag::TemplateLibrary& library, Time now)
      : base_(base), library_(library), now_(now) {
    t_.now = now;
    if (base.index) {
      index_ = base.index.get();
    } else {
      own_index_ = std::make_unique<TemplateIndexCache>();
      index_ = own_index_.get();
    }
  }

  Transition Run(const Event& event) {
    std::visit([this](const auto& e) { On(e); }, event);
    return Finish();
  }

  // The second half of a retry (see DecideRetry): the state has its failed nodes removed and
  // their ancestors (`reset`) Running again; runs them again, deepest first.
  Transition Restart(std::vector<std::string> reset) {
    t_.workflow_phase = Phase::kRunning;
    globals_.reset();
    if (Root().empty() || Get(Root()) == nullptr) {
      StartRoot();
      return Finish();
    }
    ArmWorkflowDeadline();
    auto depth = [this](const std::string& id) {
      int d = 0;
      for (const NodeState* n = Get(id); n && !n->parent.empty(); n = Get(n->parent)) ++d;
      return d;
    };
    std::stable_sort(reset.begin(), reset.end(),
                     [&](const std::string& a, const std::string& b) { return depth(a) > depth(b); });
    for (const std::string& id : reset) RestartNode(id);
    if (const NodeState* root = Get(Root()); root && IsDone(root->phase)) RootDone();
    return Finish();
  }

  // Which nodes a retry removes and which it runs again (see RetryRequested in state.h).
  void PlanRetry(const RetryRequested& e, const NodeSelector& selector, std::set<std::string>* removed,
                 std::set<std::string>* reset) const {
    auto has_succeeded_ancestor = [&](const NodeState& n) {
      for (const NodeState* p = Get(n.parent); p; p = p->parent.empty() ? nullptr : Get(p->parent)) {
        if (p->phase == Phase::kSucceeded) return true;
      }
      return false;
    };
    auto in_exit_handler = [&](const NodeState& n) {
      if (base_.exit_root.empty()) return false;
      for (const NodeState* p = &n; p; p = p->parent.empty() ? nullptr : Get(p->parent)) {
        if (p->id == base_.exit_root) return true;
      }
      return false;
    };
    std::vector<std::string> todo;
    for (const auto& [id, n] : base_.nodes) {
      // A hook runs again when its node does (downstream, below), not on its own.
      bool leaf = !n.hook && (n.type == NodeType::kPod || n.type == NodeType::kSuspend || n.type == NodeType::kSkipped);
      bool unfinished = IsFailure(n.phase) || n.phase == Phase::kOmitted || !IsDone(n.phase);
      if (in_exit_handler(n) || (leaf && unfinished && !has_succeeded_ancestor(n)) ||
          (e.restart_successful && n.phase == Phase::kSucceeded && Matches(selector, n))) {
        todo.push_back(id);
      }
    }
    // Closure: a removed node's descendants and hooks go too; what depends on a node that runs
    // again (later step groups, dag dependents) runs again after it.
    auto remove = [&](const std::string& id) {
      if (removed->insert(id).second) todo.push_back(id);
    };
    auto downstream = [&](const NodeState& n) {
      const NodeState* p = n.parent.empty() ? nullptr : Get(n.parent);
      if (p == nullptr) return;
      for (const std::string& sib : Children(p->id)) {
        const NodeState& c = *Get(sib);
        if (c.hook && c.id.starts_with(n.id + ".")) remove(c.id);
      }
      if (p->type == NodeType::kStepGroup) {
        const NodeState* steps = Get(p->parent);
        if (steps == nullptr) return;
        for (const std::string& g : Children(steps->id)) {
          if (Get(g)->group > p->group) remove(g);
        }
      } else if (p->type == NodeType::kDag && p->tmpl && !n.hook) {
        const DagIndex& index = index_->For(*p->tmpl);
        auto task = index.by_name.find(n.name);
        if (task == index.by_name.end()) return;
        for (size_t dep : index.dependents[task->second]) {
          std::string cid = p->id + "." + p->tmpl->dag.tasks[dep].name;
          if (Get(cid) != nullptr) remove(cid);
        }
      }
    };
    std::vector<std::string> seeds = std::move(todo);
    todo.clear();
    for (const std::string& id : seeds) remove(id);
    while (!todo.empty()) {
      while (!todo.empty()) {
        std::string id = std::move(todo.back());
        todo.pop_back();
        for (const std::string& c : Children(id)) remove(c);
        downstream(*Get(id));
      }
      // Ancestors of removed nodes run again; what depends on them does too.
      for (const std::string& id : *removed) {
        for (const NodeState* p = Get(Get(id)->parent); p; p = p->parent.empty() ? nullptr : Get(p->parent)) {
          if (removed->count(p->id) || !reset->insert(p->id).second) continue;
          downstream(*p);
        }
      }
    }
    for (const std::string& id : *removed) reset->erase(id);
  }

 private:
  Transition Finish() {
    if (!Deferred().empty()) AdmitDeferred();
    if (index_->HasHooks(*base_.manifest)) EvaluateHooks();
    for (auto& [id, node] : overlay_) t_.nodes.push_back(std::move(node));
    std::sort(t_.nodes.begin(), t_.nodes.end(), [](const NodeState& a, const NodeState& b) { return a.id < b.id; });
    return std::move(t_);
  }

 private:
  // ---- state access: reads see this transition's changes; writes copy a node into it ----
  const NodeState* Get(const std::string& id) const {
    auto it = overlay_.find(id);
    if (it != overlay_.end()) return &it->second;
    auto jt = base_.nodes.find(id);
    return jt == base_.nodes.end() ? nullptr : &jt->second;
  }
  NodeState& Mut(const std::string& id) {
    auto it = overlay_.find(id);
    if (it != overlay_.end()) return it->second;
    auto jt = base_.nodes.find(id);
    KILN_CHECK(jt != base_.nodes.end());
    return overlay_.emplace(id, jt->second).first->second;
  }
  NodeState& Create(NodeState node) {
    std::string id = node.id;
    // A deferred node exists already: it is being started, not created.
    const NodeState* existing = Get(id);
    if (existing == nullptr) {
      t_.created.push_back(id);
      if (!node.parent.empty()) added_[node.parent].push_back(id);
    } else {
      // Replacing a node (a deferred one starting): its old phase no longer counts.
      Count(existing->parent, existing->phase, -1);
    }
    Count(node.parent, node.phase, +1);
    return overlay_.insert_or_assign(id, std::move(node)).first->second;
  }
  ChildView Children(const std::string& id) const {
    auto it = added_.find(id);
    return ChildView(base_.ChildrenOf(id), it == added_.end() ? nullptr : &it->second);
  }
  // How many of the node's children are done and failed, this transition included.
  ChildTally Tally(const std::string& id) const {
    ChildTally t;
    if (auto it = base_.tallies.find(id); it != base_.tallies.end()) t = it->second;
    if (auto it = delta_.find(id); it != delta_.end()) {
      t.done += it->second.done;
      t.failed += it->second.failed;
    }
    return t;
  }
  // Adds (sign +1) or removes (-1) a child in `phase` to its parent's tally.
  void Count(const std::string& parent, Phase phase, int sign) {
    if (parent.empty() || !IsDone(phase)) return;
    ChildTally& d = delta_[parent];
    d.done += sign;
    if (IsFailure(phase)) d.failed += sign;
  }
  const std::vector<std::string>& Deferred() const { return t_.deferred ? *t_.deferred : base_.deferred; }
  std::vector<std::string>& MutDeferred() {
    if (!t_.deferred) t_.deferred = base_.deferred;
    return *t_.deferred;
  }
  Phase WorkflowPhase() const { return t_.workflow_phase.value_or(base_.phase); }
  // Whether the main graph is being cancelled. The exit handler, once started, is not: only a
  // cancel that arrives while it runs stops it.
  bool Cancelled() const {
    if (!ExitRoot().empty()) return base_.exit_handler_cancelled || t_.exit_handler_cancelled;
    return base_.cancel_requested || t_.cancel_requested;
  }
  bool CancelRunsExitHandler() const { return base_.cancel_runs_exit_handler || t_.cancel_runs_exit_handler; }
  const std::string& Root() const { return t_.root ? *t_.root : base_.root; }
  const std::string& ExitRoot() const { return t_.exit_root ? *t_.exit_root : base_.exit_root; }

  // Moves a node to a phase, stamping times; the one place node phases change.
  void SetPhase(NodeState& n, Phase phase, std::string message = {}) {
    if (n.phase == phase && message.empty()) return;
    Count(n.parent, n.phase, -1);
    Count(n.parent, phase, +1);
    if (IsDone(phase) && !IsDone(n.phase) && !n.parent.empty()) {
      newly_done_[n.parent].push_back(n.id);
      if (!n.hook && index_->HasHooks(*base_.manifest)) exit_hooks_due_.push_back(n.id);
    }
    if (phase == Phase::kRunning && n.started == Time{}) n.started = now_;
    if (IsDone(phase)) {
      if (n.started == Time{}) n.started = now_;
      n.finished = now_;
    }
    n.phase = phase;
    if (!message.empty()) n.message = std::move(message);
  }

  // ---- variables ---------------------------------------------------------------------------
  // The workflow's variables; kept for the transition until something they show changes.
  const Vars& GlobalVars() const {
    if (!globals_ || MainPhase()) globals_ = ComputeGlobalVars();  // failures change as nodes do
    return *globals_;
  }
  Vars ComputeGlobalVars() const {
    Vars v;
    v["workflow.name"] = base_.name;
    v["workflow.namespace"] = base_.namespace_;
    v["workflow.uid"] = base_.uid;
    nlohmann::json all = nlohmann::json::array();
    for (const auto& [k, val] : base_.parameters) {
      v["workflow.parameters." + k] = val;
      all.push_back({{"name", k}, {"value", val}});
    }
    v["workflow.parameters.json"] = all.dump();
    for (const auto& [k, val] : base_.global_parameters) v["workflow.outputs.parameters." + k] = val;
    for (const auto& [k, val] : t_.global_parameters) v["workflow.outputs.parameters." + k] = val;
    for (const auto& [k, a] : base_.global_artifacts) v["workflow.outputs.artifacts." + k] = a.ToJson().dump();
    for (const auto& [k, a] : t_.global_artifacts) v["workflow.outputs.artifacts." + k] = a.ToJson().dump();
    std::optional<Phase> main = MainPhase();
    v["workflow.status"] = std::string(PhaseName(main ? *main : WorkflowPhase()));
    if (main) v["workflow.failures"] = Failures();
    return v;
  }

  // Variables inside a template's own body (its container, script, outputs).
  Vars BodyVars(const NodeState& n) const {
    Vars v = GlobalVars();
    for (const auto& [k, val] : n.inputs) v["inputs.parameters." + k] = val;
    for (const InputArtifact& a : n.input_artifacts) {
      v["inputs.artifacts." + a.name] = a.ref.ToJson().dump();
      v["inputs.artifacts." + a.name + ".path"] = a.path;
    }
    v["pod.name"] = n.id;
    v["node.name"] = n.id;
    v["retries"] = std::to_string(n.attempt);
    return v;
  }

  // The variables of one finished (or running) child `c` as its siblings see them.
  void AddChildVars(std::map<std::string, std::string>& v, const NodeState& c, const char* prefix) const {
    std::string base = prefix + c.name + ".";
    v[base + "status"] = std::string(PhaseName(c.phase));
    if (c.exit_code) {
      v[base + "exitCode"] = std::to_string(*c.exit_code);
      v[base + "outputs.exitCode"] = std::to_string(*c.exit_code);
    }
    v[base + "id"] = c.id;
    if (c.result) v[base + "outputs.result"] = *c.result;
    for (const auto& [k, val] : c.outputs) v[base + "outputs.parameters." + k] = val;
    for (const auto& [k, a] : c.output_artifacts) v[base + "outputs.artifacts." + k] = a.ToJson().dump();
    if (c.type == NodeType::kTaskGroup) {
      // Fan-out: outputs.parameters is a JSON list of each child's output object.
      nlohmann::json params = nlohmann::json::array();
      for (const std::string& gc : Children(c.id)) {
        const NodeState& child = *Get(gc);
        nlohmann::json o = nlohmann::json::object();
        for (const auto& [k, val] : child.outputs) o[k] = val;
        params.push_back(o);
      }
      v[base + "outputs.parameters"] = params.dump();
      // Argo aggregates each output parameter, and the results, into JSON lists.
      std::map<std::string, nlohmann::json> by_name;
      nlohmann::json results = nlohmann::json::array();
      bool any_result = false;
      for (const std::string& gc : Children(c.id)) {
        const NodeState& child = *Get(gc);
        for (const auto& [k, val] : child.outputs) {
          auto [it, inserted] = by_name.try_emplace(k, nlohmann::json::array());
          it->second.push_back(val);
        }
        if (child.result) {
          auto parsed = nlohmann::json::parse(*child.result, nullptr, false);
          results.push_back(parsed.is_discarded() ? nlohmann::json(*child.result) : parsed);
          any_result = true;
        }
      }
      for (const auto& [k, list] : by_name) v[base + "outputs.parameters." + k] = list.dump();
      if (any_result) v[base + "outputs.result"] = results.dump();
    }
  }

  // Variables where a dag/steps node invokes its children: its inputs plus its children's
  // (`steps.NAME.*` or `tasks.NAME.*`). A dag's are resolved on demand (see Vars).
  Vars InvocationVars(const NodeState& owner) const {
    Vars v = BodyVars(owner);
    if (owner.type == NodeType::kDag) {
      std::string owner_id = owner.id;
      v.lazy_prefix = "tasks.";
      v.add_sibling = [this, owner_id](const std::string& name, std::map<std::string, std::string>& into) {
        const NodeState* c = Get(owner_id + "." + name);
        if (c && c->parent == owner_id) AddChildVars(into, *c, "tasks.");
      };
      v.add_all_siblings = [this, owner_id](std::map<std::string, std::string>& into) {
        for (const std::string& cid : Children(owner_id)) AddChildVars(into, *Get(cid), "tasks.");
      };
      return v;
    }
    std::function<void(const NodeState&)> add = [&](const NodeState& c) {
      if (c.type == NodeType::kStepGroup) {
        for (const std::string& gc : Children(c.id)) add(*Get(gc));
        return;
      }
      AddChildVars(v, c, "steps.");
    };
    for (const std::string& cid : Children(owner.id)) add(*Get(cid));
    return v;
  }

  // ---- templates ---------------------------------------------------------------------------
  // Resolves the template an invocation calls, and the spec it belongs to.
  const dag::Template* Resolve(const dag::Invocation& inv, const dag::WorkflowSpec* caller_scope,
                               const dag::WorkflowSpec** scope, std::string* error) const {
    *scope = caller_scope;
    if (inv.inline_template) return inv.inline_template.get();
    if (inv.template_ref) {
      const dag::Manifest* m = library_.Find(inv.template_ref->name, inv.template_ref->cluster_scope);
      const dag::Template* t = m ? dag::FindTemplate(m->spec, inv.template_ref->template_name) : nullptr;
      if (!t) *error = "templateRef " + inv.template_ref->name + "/" + inv.template_ref->template_name + " not found";
      else *scope = &m->spec;
      return t;
    }
    if (caller_scope) {
      if (const dag::Template* t = dag::FindTemplate(*caller_scope, inv.template_name)) return t;
    }
    const dag::Template* t = FindTemplate(inv.template_name);
    if (!t) *error = "template " + Quote(inv.template_name) + " not found";
    *scope = nullptr;
    return t;
  }
  const dag::Template* FindTemplate(std::string_view name) const {
    const dag::Manifest& m = *base_.manifest;
    if (const dag::Template* t = dag::FindTemplate(m.spec, name)) return t;
    if (m.spec.workflow_template_ref) {
      if (const dag::Manifest* ref = library_.Find(m.spec.workflow_template_ref->name,
                                                   m.spec.workflow_template_ref->cluster_scope)) {
        return dag::FindTemplate(ref->spec, name);
      }
    }
    return nullptr;
  }

  // Resolves the callee's input parameters from the invocation's arguments (rendered in the
  // caller's variables) and the template's defaults.
  Result<Vars> ResolveInputs(const dag::Template& t, const dag::Arguments& args, const Vars& caller) {
    Vars inputs;
    for (const dag::Parameter& p : t.inputs.parameters) {
      std::optional<std::string> value;
      for (const dag::Parameter& a : args.parameters) {
        if (a.name == p.name && a.value) value = *a.value;
      }
      if (!value && p.value) value = *p.value;
      if (!value && p.default_value) value = *p.default_value;
      if (!value) {
        return MakeError(Code::kInvalidArgument, "input parameter " + Quote(p.name) + " of template " +
                                                     Quote(t.name) + " was not supplied");
      }
      auto rendered = Render(*value, caller);
      if (!rendered) return std::unexpected(rendered.error());
      if (!p.enum_values.empty() &&
          std::find(p.enum_values.begin(), p.enum_values.end(), *rendered) == p.enum_values.end()) {
        return MakeError(Code::kInvalidArgument, "input parameter " + Quote(p.name) + " value " + Quote(*rendered) +
                                                     " is not one of its enum values");
      }
      inputs[p.name] = *rendered;
    }
    return inputs;
  }

  // The key of a key-only artifact: `s3: {key: K}` (likewise gcs and oss, or azure's `blob`)
  // with no bucket, container or endpoint, which Argo resolves in the default artifact
  // repository. For kiln run that is the executor's local repository.
  static std::optional<std::string> KeyOnlyKey(const dag::Artifact& a) {
    const bool azure = a.storage_kind == "azure";
    if (!azure && a.storage_kind != "s3" && a.storage_kind != "gcs" && a.storage_kind != "oss") return std::nullopt;
    const char* field = azure ? "blob" : "key";
    if (!a.storage.is_object() || !a.storage.contains(field) || !a.storage[field].is_string()) return std::nullopt;
    for (const char* location : {"bucket", "container", "endpoint"}) {
      if (a.storage.contains(location)) return std::nullopt;
    }
    return a.storage[field].get<std::string>();
  }

  // A key-only artifact's key with its tags resolved; the executor's repository checks what
  // the key may name. Errors name the artifact and the key.
  static Result<std::string> RenderKey(const std::string& direction, const dag::Artifact& a, const std::string& key,
                                       const Vars& vars) {
    auto rendered = Render(key, vars);
    if (!rendered) {
      return MakeError(Code::kInvalidArgument,
                       direction + " artifact " + Quote(a.name) + ": key " + Quote(key) + ": " + rendered.error().message());
    }
    if (rendered->empty() || rendered->find("{{") != std::string::npos) {
      return MakeError(Code::kInvalidArgument, direction + " artifact " + Quote(a.name) + ": key " + Quote(key) +
                                                   " does not resolve to a key (it gives " + Quote(*rendered) + ")");
    }
    return *rendered;
  }

  // The rendered keys of a step's key-only output artifacts (LaunchStep::output_artifact_keys);
  // an error message when one cannot be rendered.
  static std::optional<std::string> RenderOutputKeys(const dag::Template& t, const Vars& body, LaunchStep* launch) {
    for (const dag::Artifact& a : t.outputs.artifacts) {
      auto key = KeyOnlyKey(a);
      if (!key || a.path.empty()) continue;
      auto rendered = RenderKey("output", a, *key, body);
      if (!rendered) return rendered.error().message();
      launch->output_artifact_keys[a.name] = *rendered;
    }
    return std::nullopt;
  }

  // Input artifacts: from an argument's `from`/`fromExpression` (a finished step's output), raw
  // data, or a key-only artifact's key (fetched by the executor); optional ones may be missing.
  Result<std::vector<InputArtifact>> ResolveInputArtifacts(const dag::Template& t, const dag::Arguments& args,
                                                           const Vars& caller) {
    std::vector<InputArtifact> out;
    for (const dag::Artifact& a : t.inputs.artifacts) {
      const dag::Artifact* given = nullptr;
      for (const dag::Artifact& x : args.artifacts) {
        if (x.name == a.name) given = &x;
      }
      std::optional<ArtifactRef> ref;
      auto from_storage = [&](const dag::Artifact& src) -> Result<std::optional<ArtifactRef>> {
        std::string from = !src.from.empty() ? src.from : (!src.from_expression.empty() ? "{{=" + src.from_expression + "}}" : "");
        if (!from.empty()) {
          auto rendered = Render(from, caller);
          if (!rendered) return std::unexpected(rendered.error());
          auto r = ArtifactRef::FromJson(*rendered);
          if (!r) {
            return MakeError(Code::kInvalidArgument, "input artifact " + Quote(a.name) + ": " + Quote(from) +
                                                         " does not name an artifact that was produced");
          }
          return r;
        }
        if (src.storage_kind == "raw" && src.storage.contains("data")) {
          ArtifactRef r;
          auto data = Render(src.storage["data"].is_string() ? src.storage["data"].get<std::string>() : src.storage["data"].dump(), caller);
          if (!data) return std::unexpected(data.error());
          r.raw = *data;
          r.raw_given = true;
          return std::optional<ArtifactRef>(r);
        }
        if (auto key = KeyOnlyKey(src)) {
          // A key on the template's own input may use its input parameters, as in Argo.
          Vars vars = caller;
          if (&src == &a && key->find("inputs.parameters") != std::string::npos) {
            if (auto inputs = ResolveInputs(t, args, caller)) {
              for (const auto& [k, val] : *inputs) vars["inputs.parameters." + k] = val;
            }
          }
          auto rendered = RenderKey("input", a, *key, vars);
          if (!rendered) return std::unexpected(rendered.error());
          ArtifactRef r;
          r.key = *rendered;
          const dag::Json& archive = src.archive.is_object() ? src.archive : a.archive;
          r.archived = !(archive.is_object() && archive.contains("none"));
          return std::optional<ArtifactRef>(r);
        }
        if (!src.storage_kind.empty()) {
          return MakeError(Code::kFailedPrecondition, "input artifact " + Quote(a.name) + " comes from " + src.storage_kind +
                                                          ", which kiln cannot fetch yet (it reads its own artifact repository only)");
        }
        return std::optional<ArtifactRef>();
      };
      if (given) {
        auto r = from_storage(*given);
        if (!r) return std::unexpected(r.error());
        ref = *r;
      }
      if (!ref) {
        auto r = from_storage(a);
        if (!r) return std::unexpected(r.error());
        ref = *r;
      }
      if (!ref) {
        if (a.optional) continue;
        return MakeError(Code::kInvalidArgument, "input artifact " + Quote(a.name) + " of template " + Quote(t.name) +
                                                     " was not supplied");
      }
      out.push_back(InputArtifact{a.name, a.path, *ref});
    }
    return out;
  }

  // ---- events ------------------------------------------------------------------------------
  void On(const StartWorkflow&) {
    if (!Root().empty()) return;  // already started (a replayed event)
    StartRoot();
  }

  void ArmWorkflowDeadline() {
    const dag::Manifest& m = *base_.manifest;
    if (m.spec.active_deadline_seconds) {
      auto secs = RenderInt(*m.spec.active_deadline_seconds, GlobalVars());
      if (secs && *secs > 0) {
        t_.actions.push_back(StartTimer{"deadline:workflow", now_ + std::chrono::seconds(*secs)});
      }
    }
  }

  void StartRoot() {
    const dag::Manifest& m = *base_.manifest;
    t_.workflow_phase = Phase::kRunning;
    globals_.reset();
    ArmWorkflowDeadline();
    NodeState root;
    root.id = base_.name;
    root.name = base_.name;
    root.template_name = base_.entrypoint;
    t_.root = root.id;
    const dag::Template* t = FindTemplate(root.template_name);
    if (!t) {
      FinishWorkflow(Phase::kError, "entrypoint template " + Quote(root.template_name) + " not found");
      return;
    }
    // The entrypoint's inputs: every workflow parameter (the Workflow's, a referenced
    // WorkflowTemplate's, -p overrides), resolved in NewWorkflow.
    dag::Arguments args = m.spec.arguments;
    args.parameters.clear();
    for (const auto& [k, v] : base_.parameters) {
      dag::Parameter p;
      p.name = k;
      p.value = v;
      args.parameters.push_back(std::move(p));
    }
    Vars globals = GlobalVars();  // a copy: starting nodes may change the workflow's variables
    StartNode(std::move(root), *t, args, globals);
  }

  void On(const StepStarted& e) {
    const NodeState* n = Get(e.node);
    if (!n || n->phase != Phase::kPending) return;
    SetPhase(Mut(e.node), Phase::kRunning);
  }

  void On(const StepWaiting& e) {
    const NodeState* n = Get(e.node);
    if (!n || n->phase != Phase::kPending || n->message == e.message) return;
    Mut(e.node).message = e.message;
  }

  void On(const StepFinished& e) {
    const NodeState* n = Get(e.node);
    if (!n || IsDone(n->phase)) return;  // unknown or already finished (a replayed event)
    NodeState& node = Mut(e.node);
    node.exit_code = e.exit_code;
    node.outputs = e.outputs;
    node.result = e.result;
    node.output_artifacts = e.artifacts;
    bool missing = false;
    if (node.tmpl) {
      for (const dag::Parameter& p : node.tmpl->outputs.parameters) missing = missing || !node.outputs.count(p.name);
    }
    if (missing) {
      // Output parameters the executor did not provide: their valueFrom.default, or expression.
      Vars v = BodyVars(node);
      if (e.result) v["outputs.result"] = *e.result;
      v["outputs.exitCode"] = std::to_string(e.exit_code);
      for (const dag::Parameter& p : node.tmpl->outputs.parameters) {
        if (node.outputs.count(p.name)) continue;
        if (p.value_from && !p.value_from->expression.empty()) {
          auto r = Render("{{=" + p.value_from->expression + "}}", v);
          if (r) node.outputs[p.name] = *r;
        } else if (p.value_from && p.value_from->default_value) {
          node.outputs[p.name] = *p.value_from->default_value;
        } else if (p.value) {
          auto r = Render(*p.value, v);
          if (r) node.outputs[p.name] = *r;
        }
      }
    }
    PublishGlobals(node);
    if (!node.kill_message.empty()) {
      SetPhase(node, Phase::kFailed, node.kill_message);
    } else if (e.error) {
      SetPhase(node, Phase::kError, e.message);
    } else if (e.exit_code == 0) {
      SetPhase(node, Phase::kSucceeded, e.message);
    } else {
      SetPhase(node, Phase::kFailed, e.message.empty() ? "Error (exit code " + std::to_string(e.exit_code) + ")" : e.message);
    }
    Advance(node.parent);
  }

  void On(const TimerFired& e) {
    if (base_.timers.count(e.timer)) t_.timers_fired.push_back(e.timer);
    if (e.timer.starts_with("retry:")) {
      std::string id = e.timer.substr(6);
      const NodeState* n = Get(id);
      if (!n || IsDone(n->phase)) return;
      StartAttempt(id);
    } else if (e.timer == "deadline:workflow") {
      if (IsDone(WorkflowPhase()) || Cancelled()) return;
      CancelRequested stop;
      stop.message = "Step exceeded its deadline";
      stop.run_exit_handler = true;  // as Argo does: the exit handler runs after a deadline
      On(stop);
    } else if (e.timer.starts_with("deadline:")) {
      std::string id = e.timer.substr(9);
      const NodeState* n = Get(id);
      if (!n || IsDone(n->phase)) return;
      Mut(id).kill_message = "Step exceeded its deadline";
      t_.actions.push_back(KillStep{id});
    } else if (e.timer.starts_with("suspend:")) {
      std::string id = e.timer.substr(8);
      const NodeState* n = Get(id);
      if (!n || IsDone(n->phase)) return;
      SetPhase(Mut(id), Phase::kSucceeded);
      Advance(Get(id)->parent);
    }
  }

  void On(const CancelRequested& e) {
    if (IsDone(WorkflowPhase()) || Cancelled()) return;
    if (!ExitRoot().empty()) {
      t_.exit_handler_cancelled = true;  // the handler is stopped too; the workflow keeps its message
    } else {
      t_.cancel_requested = true;
      if (e.run_exit_handler) t_.cancel_runs_exit_handler = true;
      t_.workflow_message = e.message;
    }
    DropDeferred("", Phase::kFailed, e.message);
    bool running = false;
    for (const auto& [id, base_node] : base_.nodes) {
      const NodeState& n = *Get(id);
      if (n.type == NodeType::kPod && !IsDone(n.phase)) {
        Mut(id).kill_message = e.message;
        t_.actions.push_back(KillStep{id});
        running = true;
      }
    }
    if (!running) FinishWorkflow(Phase::kFailed, e.message);
  }

  bool Suspended() const { return t_.suspended.value_or(base_.suspended); }

  void On(const SuspendRequested&) {
    if (IsDone(WorkflowPhase()) || Suspended()) return;
    t_.suspended = true;
  }

  void On(const ResumeRequested&) {
    if (IsDone(WorkflowPhase())) return;
    if (Suspended()) t_.suspended = false;  // what waited starts in Finish (AdmitDeferred)
    std::vector<std::string> waiting;
    for (const auto& [id, n] : base_.nodes) {
      if (n.type == NodeType::kSuspend && n.phase == Phase::kRunning) waiting.push_back(id);
    }
    std::sort(waiting.begin(), waiting.end());
    for (const std::string& id : waiting) {
      const NodeState* n = Get(id);
      if (n == nullptr || IsDone(n->phase)) continue;
      if (base_.timers.count("suspend:" + id)) t_.timers_fired.push_back("suspend:" + id);
      SetPhase(Mut(id), Phase::kSucceeded);
      Advance(Get(id)->parent);
    }
  }

  void On(const RetryRequested&) {}  // decided by DecideRetry

  void On(const Resume& e) {
    if (IsDone(WorkflowPhase()) || Root().empty()) return;
    for (const auto& [name, at] : base_.timers) t_.actions.push_back(StartTimer{name, at});
    std::vector<std::string> steps;
    for (const auto& [id, n] : base_.nodes) {
      if (n.type == NodeType::kPod && !IsDone(n.phase) && !n.deferred) steps.push_back(id);
    }
    std::sort(steps.begin(), steps.end());
    bool killing = false;
    for (const std::string& id : steps) {
      const NodeState& n = *Get(id);
      if (IsDone(n.phase)) continue;  // finished by an earlier step's advance
      if ((n.phase == Phase::kPending || e.adopt_running) && (!Cancelled() || e.adopt_running)) {
        // Decided but never started: launch it again, as if for the first time. Running, with
        // an executor whose steps outlive kiln: launched again with the same attempt, which
        // the executor adopts (the node stays Running). In a cancelled run such a step may still
        // run in the cluster: adopted, then killed; its end finishes the workflow.
        LaunchStep launch;
        if (auto error = MakeLaunch(n, &launch)) {
          NodeState& m = Mut(id);
          SetPhase(m, Phase::kError, *error);
          Advance(m.parent);
        } else {
          t_.actions.push_back(std::move(launch));
          if (Cancelled()) {
            t_.actions.push_back(KillStep{id});
            killing = true;
          }
        }
        continue;
      }
      NodeState& m = Mut(id);
      SetPhase(m, Phase::kError,
               Cancelled() ? "terminated by user" : "step lost: kiln stopped while it ran; its process is gone");
      Advance(m.parent);
    }
    if (Cancelled() && !killing && !IsDone(WorkflowPhase())) RootDone();
  }

  // ---- starting nodes ----------------------------------------------------------------------
  // Starts a node that calls template `t` with `args` rendered in `caller`.
  void StartNode(NodeState node, const dag::Template& t, const dag::Arguments& args, const Vars& caller) {
    node.tmpl = &t;
    node.template_name = t.name;
    auto inputs = ResolveInputs(t, args, caller);
    if (!inputs) {
      node.type = NodeType::kPod;
      std::string parent = node.parent;
      NodeState& n = Create(std::move(node));
      SetPhase(n, Phase::kError, inputs.error().message());
      if (!parent.empty()) Advance(parent);
      else FinishWorkflow(Phase::kError, n.message);
      return;
    }
    node.inputs = std::move(*inputs);
    auto artifacts = ResolveInputArtifacts(t, args, caller);
    if (!artifacts) {
      node.type = NodeType::kPod;
      std::string parent = node.parent;
      NodeState& n = Create(std::move(node));
      SetPhase(n, Phase::kError, artifacts.error().message());
      if (!parent.empty()) Advance(parent);
      else FinishWorkflow(Phase::kError, n.message);
      return;
    }
    node.input_artifacts = std::move(*artifacts);
    Begin(std::move(node));
  }

  // Starts a node whose inputs are resolved, unless a parallelism limit makes it wait.
  void Begin(NodeState node) {
    if (auto waiting = Blocked(node)) {
      node.deferred = true;
      node.type = TypeOf(*node.tmpl, node.parent);
      node.phase = Phase::kPending;
      node.message = *waiting;
      MutDeferred().push_back(node.id);
      Create(std::move(node));
      return;
    }
    node.deferred = false;
    node.message.clear();
    const dag::Template& t = *node.tmpl;
    if (IsRetried(t, node.parent)) {
      node.type = NodeType::kRetry;
      std::string id = node.id;
      SetPhase(Create(std::move(node)), Phase::kRunning);
      StartAttempt(id);
      return;
    }
    Execute(std::move(node));
  }

  // A container or script template with a retryStrategy runs under a Retry node (unless `parent`
  // is that Retry node: the node is then one attempt).
  bool IsRetried(const dag::Template& t, const std::string& parent) const {
    if (!t.retry_strategy) return false;
    if (t.type != dag::TemplateType::kContainer && t.type != dag::TemplateType::kScript) return false;
    const NodeState* p = parent.empty() ? nullptr : Get(parent);
    return !(p && p->type == NodeType::kRetry);
  }

  NodeType TypeOf(const dag::Template& t, const std::string& parent) const {
    if (IsRetried(t, parent)) return NodeType::kRetry;
    switch (t.type) {
      case dag::TemplateType::kSteps: return NodeType::kSteps;
      case dag::TemplateType::kDag: return NodeType::kDag;
      case dag::TemplateType::kSuspend: return NodeType::kSuspend;
      default: return NodeType::kPod;
    }
  }

  // ---- parallelism ---------------------------------------------------------------------------
  static std::optional<int64_t> Limit(const std::optional<std::string>& text, const Vars& vars) {
    if (!text) return std::nullopt;
    auto n = RenderInt(*text, vars);
    return n && *n > 0 ? n : std::nullopt;
  }

  // The steps/dag node whose template's parallelism applies to `node` (its nearest ancestor,
  // through step groups and fan-out groups); null for a retry attempt (its Retry node counted).
  const NodeState* Owner(const NodeState& node) const {
    const NodeState* p = node.parent.empty() ? nullptr : Get(node.parent);
    while (p && (p->type == NodeType::kStepGroup || p->type == NodeType::kTaskGroup)) p = Get(p->parent);
    if (p && p->type == NodeType::kRetry) return nullptr;
    return p;
  }

  // Children of `owner` that count against its parallelism and are active (started, not done).
  int64_t ActiveUnits(const NodeState& owner, const std::string& except) const {
    int64_t n = 0;
    std::function<void(const NodeState&)> count = [&](const NodeState& c) {
      if (c.type == NodeType::kStepGroup || c.type == NodeType::kTaskGroup) {
        if (IsDone(c.phase)) return;
        for (const std::string& gc : Children(c.id)) count(*Get(gc));
        return;
      }
      if (c.id != except && !c.deferred && !IsDone(c.phase)) ++n;
    };
    for (const std::string& cid : Children(owner.id)) count(*Get(cid));
    return n;
  }

  int64_t ActivePods(const std::string& except) const {
    int64_t n = 0;
    auto consider = [&](const NodeState& c) {
      if (c.type == NodeType::kPod && c.id != except && !c.deferred && !IsDone(c.phase)) ++n;
    };
    for (const auto& [id, c] : base_.nodes) {
      if (!overlay_.count(id)) consider(c);
    }
    for (const auto& [id, c] : overlay_) consider(c);
    return n;
  }

  // Why `node` must wait (a parallelism limit is reached), or nullopt when it may start.
  std::optional<std::string> Blocked(const NodeState& node) const {
    // A suspended workflow starts no step; a stop or terminate ends the hold.
    if (Suspended() && !(base_.cancel_requested || t_.cancel_requested) &&
        TypeOf(*node.tmpl, node.parent) == NodeType::kPod) {
      return "waiting: the workflow is suspended";
    }
    if (const NodeState* owner = Owner(node); owner && owner->tmpl && owner->tmpl->parallelism) {
      if (auto limit = Limit(owner->tmpl->parallelism, BodyVars(*owner))) {
        if (ActiveUnits(*owner, node.id) >= *limit) {
          return "waiting: parallelism " + std::to_string(*limit) + " of template " + Quote(owner->template_name) +
                 " reached";
        }
      }
    }
    if (base_.manifest->spec.parallelism && TypeOf(*node.tmpl, node.parent) == NodeType::kPod) {
      if (auto limit = Limit(base_.manifest->spec.parallelism, GlobalVars())) {
        if (ActivePods(node.id) >= *limit) {
          return "waiting: workflow parallelism " + std::to_string(*limit) + " reached";
        }
      }
    }
    return std::nullopt;
  }

  // Starts waiting nodes that may now start, in the order they started waiting.
  void AdmitDeferred() {
    bool progressed = true;
    while (progressed && !Deferred().empty()) {
      progressed = false;
      std::vector<std::string> list = Deferred();
      for (const std::string& id : list) {
        const NodeState* n = Get(id);
        if (n == nullptr || !n->deferred || IsDone(n->phase) || Cancelled()) {
          Forget(id);
          progressed = true;
          continue;
        }
        if (Blocked(*n)) continue;
        Forget(id);
        Begin(*n);
        progressed = true;
        break;  // starting a node can change every other node's admission: look again
      }
    }
  }

  void Forget(const std::string& id) {
    auto& list = MutDeferred();
    list.erase(std::remove(list.begin(), list.end(), id), list.end());
  }

  // Ends every waiting node below `owner` (all of them when `owner` is empty) without running
  // it; returns the groups that held one, which then need advancing.
  std::vector<std::string> DropDeferred(const std::string& owner, Phase phase, const std::string& message) {
    std::vector<std::string> groups;
    std::vector<std::string> list = Deferred();
    for (const std::string& id : list) {
      const NodeState* n = Get(id);
      if (n == nullptr) continue;
      const NodeState* o = Owner(*n);
      if (!owner.empty() && (o == nullptr || o->id != owner)) continue;
      Forget(id);
      NodeState& m = Mut(id);
      m.deferred = false;
      SetPhase(m, phase, message);
      const NodeState* p = Get(m.parent);
      if (p && p->type == NodeType::kTaskGroup) groups.push_back(p->id);
    }
    return groups;
  }

  // Runs the template of a freshly made node (inputs resolved).
  void Execute(NodeState node) {
    const dag::Template& t = *node.tmpl;
    std::string id = node.id;
    switch (t.type) {
      case dag::TemplateType::kContainer:
      case dag::TemplateType::kScript:
      case dag::TemplateType::kResource: {
        node.type = NodeType::kPod;
        LaunchStep launch;
        NodeState& n = Create(std::move(node));
        if (auto error = MakeLaunch(n, &launch)) {
          SetPhase(n, Phase::kError, *error);
          Advance(n.parent);
          return;
        }
        t_.actions.push_back(std::move(launch));
        ArmDeadline(id);
        return;
      }
      case dag::TemplateType::kSteps: {
        node.type = NodeType::kSteps;
        SetPhase(Create(std::move(node)), Phase::kRunning);
        StartStepGroup(id, 0);
        return;
      }
      case dag::TemplateType::kDag: {
        node.type = NodeType::kDag;
        SetPhase(Create(std::move(node)), Phase::kRunning);
        Advance(id);
        return;
      }
      case dag::TemplateType::kSuspend: {
        node.type = NodeType::kSuspend;
        NodeState& n = Create(std::move(node));
        SetPhase(n, Phase::kRunning);
        if (t.suspend.duration) {
          auto d = dag::ParseDuration(*t.suspend.duration);
          if (!d) {
            SetPhase(n, Phase::kError, d.error());
            Advance(n.parent);
            return;
          }
          t_.actions.push_back(StartTimer{"suspend:" + id, now_ + std::chrono::duration_cast<Duration>(*d)});
        }
        return;
      }
      default: {
        node.type = NodeType::kPod;
        NodeState& n = Create(std::move(node));
        SetPhase(n, Phase::kError, "template type " + std::string(dag::TemplateTypeName(t.type)) +
                                       " is not supported by this executor");
        Advance(n.parent);
        return;
      }
    }
  }

  // A step's deadline: the template's `timeout` (a duration, counted from when the step is
  // started, as Argo counts it from the node's creation) or `activeDeadlineSeconds`, whichever
  // is sooner. The step is killed when it passes (see On(TimerFired)).
  void ArmDeadline(const std::string& id) {
    const NodeState& n = *Get(id);
    const dag::Template& t = *n.tmpl;
    if (!t.timeout && !t.active_deadline_seconds) return;
    Vars v = BodyVars(n);
    std::optional<Duration> limit;
    auto consider = [&](const std::string& text, bool seconds) {
      std::optional<Duration> d;
      if (seconds) {
        if (auto n = RenderInt(text, v)) d = std::chrono::seconds(*n);
      } else if (auto r = Render(text, v); !r) {
        return;
      } else if (auto parsed = dag::ParseDuration(*r)) {
        d = std::chrono::duration_cast<Duration>(*parsed);
      }
      if (d && d->count() > 0 && (!limit || *d < *limit)) limit = d;
    };
    if (t.timeout) consider(*t.timeout, /*seconds=*/false);
    if (t.active_deadline_seconds) consider(*t.active_deadline_seconds, /*seconds=*/true);
    if (limit) t_.actions.push_back(StartTimer{"deadline:" + id, now_ + *limit});
  }

  // The LaunchStep of a container or script node, its strings rendered; an error message when
  // they cannot be.
  std::optional<std::string> MakeLaunch(const NodeState& node, LaunchStep* launch) const {
    const dag::Template& t = *node.tmpl;
    Vars v = BodyVars(node);
    launch->node = node.id;
    launch->tmpl = &t;
    launch->attempt = node.attempt;
    launch->inputs = node.inputs;
    launch->input_artifacts = node.input_artifacts;
    const dag::Json& c = t.type == dag::TemplateType::kScript ? t.script.container : t.container;
    auto rendered = RenderJson(c, v);
    if (!rendered) return rendered.error().message();
    auto source = Render(t.script.source, v);
    if (!source) return source.error().message();
    launch->container = std::move(*rendered);
    launch->script_source = std::move(*source);
    const dag::WorkflowSpec& spec = base_.manifest->spec;
    for (const std::string* patch : {&spec.pod_spec_patch, &t.pod_spec_patch}) {
      if (patch->empty()) continue;
      auto r = Render(*patch, v);
      if (!r) return "podSpecPatch: " + r.error().message();
      launch->pod_spec_patches.push_back(std::move(*r));
    }
    dag::Json volumes = dag::Json::array();
    for (const dag::Json* list : {&spec.volumes, &t.volumes}) {
      if (!list->is_array()) continue;
      auto r = RenderJson(*list, v);
      if (!r) return r.error().message();
      for (const dag::Json& vol : *r) volumes.push_back(vol);
    }
    if (spec.volume_claim_templates.is_array()) {
      for (const dag::Json& pvc : spec.volume_claim_templates) {
        std::string name = pvc.contains("metadata") ? pvc["metadata"].value("name", "") : "";
        if (name.empty()) continue;
        volumes.push_back({{"name", name},
                           {"persistentVolumeClaim", {{"claimName", name}}},
                           {"kiln.dev/per-workflow", true}});
      }
    }
    launch->volumes = std::move(volumes);
    if (t.type == dag::TemplateType::kResource) {
      if (!t.resource.manifest_from.is_null()) {
        return "resource.manifestFrom is not supported yet: give the manifest inline (resource.manifest)";
      }
      static const std::regex kPodName(R"(\{\{\s*pod\.name\s*\}\})");
      std::vector<const std::string*> texts = {&t.resource.manifest, &t.resource.success_condition,
                                               &t.resource.failure_condition};
      for (const std::string& flag : t.resource.flags) texts.push_back(&flag);
      for (const std::string* text : texts) {
        if (std::regex_search(*text, kPodName)) {
          return "{{pod.name}} in a resource template: kiln acts on the API itself, not from a pod as Argo's kubectl "
                 "does, so there is no pod to name";
        }
      }
      LaunchStep::Resource r;
      for (auto [text, out] : {std::pair{&t.resource.action, &r.action}, {&t.resource.manifest, &r.manifest},
                               {&t.resource.success_condition, &r.success_condition},
                               {&t.resource.failure_condition, &r.failure_condition},
                               {&t.resource.merge_strategy, &r.merge_strategy}}) {
        auto rendered = Render(*text, v);
        if (!rendered) return rendered.error().message();
        *out = std::move(*rendered);
      }
      for (const std::string& flag : t.resource.flags) {
        auto rendered = Render(flag, v);
        if (!rendered) return rendered.error().message();
        r.flags.push_back(std::move(*rendered));
      }
      r.set_owner_reference = t.resource.set_owner_reference;
      for (const dag::Parameter& p : t.outputs.parameters) {
        if (!p.value_from) continue;
        if (!p.value_from->jq_filter.empty()) r.jq_filters.push_back(p.name);
        if (p.value_from->json_path.empty()) continue;
        auto rendered = Render(p.value_from->json_path, v);
        if (!rendered) return "outputs.parameters." + p.name + ".valueFrom.jsonPath: " + rendered.error().message();
        r.json_paths.emplace_back(p.name, std::move(*rendered));
      }
      launch->resource = std::move(r);
    }
    return RenderOutputKeys(t, v, launch);
  }

  void StartAttempt(const std::string& retry_id) {
    const NodeState& r = *Get(retry_id);
    size_t n = Children(retry_id).size();
    NodeState attempt;
    attempt.id = retry_id + "(" + std::to_string(n) + ")";
    attempt.name = r.name + "(" + std::to_string(n) + ")";
    attempt.parent = retry_id;
    attempt.attempt = static_cast<int>(n);
    attempt.inputs = r.inputs;
    attempt.input_artifacts = r.input_artifacts;
    attempt.tmpl = r.tmpl;
    attempt.scope = r.scope;
    attempt.template_name = r.template_name;
    attempt.item = r.item;
    attempt.has_item = r.has_item;
    Begin(std::move(attempt));
  }

  // Creates the node of one task or step (or a Skipped node, or a fan-out group).
  void Invoke(const std::string& owner_id, const dag::Invocation& inv, std::string id, std::string name,
              const Vars& vars) {
    bool has_loop = !inv.with_items.is_null() || !inv.with_param.empty() || inv.with_sequence;
    // With a loop, `when` is evaluated for each item (it may use {{item}}), below.
    if (!has_loop && !WhenAllows(owner_id, inv, id, name, vars)) return;
    InvokeBody(owner_id, inv, std::move(id), std::move(name), vars);
  }

  // Evaluates the invocation's `when`; when it is false (or broken) creates the Skipped (or
  // Error) node and returns false.
  bool WhenAllows(const std::string& owner_id, const dag::Invocation& inv, const std::string& id,
                  const std::string& name, const Vars& vars) {
    if (!inv.when.empty()) {
      auto when = Render(inv.when, vars);
      std::string message;
      bool run = true;
      if (!when) {
        message = when.error().message();
        run = false;
      } else {
        auto ok = expr::EvaluateWhen(*when);
        if (!ok) {
          NodeState n;
          n.id = id;
          n.name = name;
          n.parent = owner_id;
          n.type = NodeType::kSkipped;
          SetPhase(Create(std::move(n)), Phase::kError, ok.error());
          return false;
        }
        run = *ok;
        if (!run) message = "when '" + *when + "' evaluated false";
      }
      if (!run) {
        NodeState n;
        n.id = id;
        n.name = name;
        n.parent = owner_id;
        n.type = NodeType::kSkipped;
        n.template_name = inv.template_name;
        SetPhase(Create(std::move(n)), Phase::kSkipped, message);
        return false;
      }
    }
    return true;
  }

  void InvokeBody(const std::string& owner_id, const dag::Invocation& inv, std::string id, std::string name,
                  const Vars& vars, bool restart_group = false) {
    std::string error;
    const dag::WorkflowSpec* scope = nullptr;
    const NodeState* owner = Get(owner_id);
    while (owner && owner->type == NodeType::kStepGroup) owner = Get(owner->parent);
    const dag::Template* t = Resolve(inv, owner ? owner->scope : nullptr, &scope, &error);
    auto fail = [&](std::string message) {
      NodeState n;
      n.id = id;
      n.name = name;
      n.parent = owner_id;
      SetPhase(Create(std::move(n)), Phase::kError, std::move(message));
    };
    if (!t) return fail(error);
    // Fan-out.
    std::optional<nlohmann::json> items;
    if (!inv.with_items.is_null()) {
      auto rendered = RenderJson(inv.with_items, vars);
      if (!rendered) return fail(rendered.error().message());
      items = *rendered;
    } else if (!inv.with_param.empty()) {
      auto rendered = Render(inv.with_param, vars);
      if (!rendered) return fail(rendered.error().message());
      auto parsed = nlohmann::json::parse(*rendered, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_array()) {
        return fail("withParam value " + Quote(rendered->substr(0, 200)) + " is not a JSON list");
      }
      items = std::move(parsed);
    } else if (inv.with_sequence) {
      auto seq = Sequence(*inv.with_sequence, vars);
      if (!seq) return fail(seq.error().message());
      items = std::move(*seq);
    }
    if (items) {
      if (!restart_group) {
        NodeState group;
        group.id = id;
        group.name = name;
        group.parent = owner_id;
        group.type = NodeType::kTaskGroup;
        group.template_name = t->name;
        group.tmpl = t;
        group.scope = scope;
        SetPhase(Create(std::move(group)), Phase::kRunning);
      }
      size_t i = 0;
      for (const nlohmann::json& item : *items) {
        Vars iv = vars;
        std::string rendered = item.is_string() ? item.get<std::string>() : item.dump();
        iv["item"] = rendered;
        if (item.is_object()) {
          for (auto it = item.begin(); it != item.end(); ++it) {
            iv["item." + it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
          }
        }
        std::string child_id = id + "(" + std::to_string(i) + ":" + rendered + ")";
        std::string child_name = name + "(" + std::to_string(i) + ":" + rendered + ")";
        if (restart_group && Get(child_id) != nullptr) {  // a retry: this item keeps its node
          ++i;
          continue;
        }
        if (!WhenAllows(id, inv, child_id, child_name, iv)) {
          ++i;
          continue;
        }
        NodeState child;
        child.id = child_id;
        child.name = child_name;
        child.parent = id;
        child.scope = scope;
        child.item = rendered;
        child.has_item = true;
        StartNode(std::move(child), *t, inv.arguments, iv);
        ++i;
      }
      Advance(id);
      return;
    }
    NodeState n;
    n.id = std::move(id);
    n.name = std::move(name);
    n.parent = owner_id;
    n.scope = scope;
    StartNode(std::move(n), *t, inv.arguments, vars);
  }

  // ---- retry: a node reset to Running creates its removed children again ----------------------
  void RestartNode(const std::string& id) {
    const NodeState* n = Get(id);
    if (n == nullptr || IsDone(n->phase)) return;  // ended already by a restart below it
    switch (n->type) {
      case NodeType::kRetry:
        if (Children(id).empty()) {
          StartAttempt(id);
        } else {
          Advance(id);
        }
        return;
      case NodeType::kStepGroup: {
        const NodeState* steps = Get(n->parent);
        if (steps == nullptr || !steps->tmpl || n->group < 0 ||
            static_cast<size_t>(n->group) >= steps->tmpl->steps.size()) {
          return;
        }
        Vars vars = InvocationVars(*steps);
        for (const dag::Invocation& step : steps->tmpl->steps[n->group]) {
          std::string cid = id + "." + step.name;
          if (Get(cid) == nullptr) Invoke(id, step, cid, step.name, vars);
        }
        Advance(id);
        return;
      }
      case NodeType::kTaskGroup: {
        const dag::Invocation* inv = InvocationOf(*n);
        const NodeState* owner = OwnerOf(*n);
        if (inv == nullptr || owner == nullptr) return;
        Vars vars = InvocationVars(*owner);
        NodeState group = *n;
        InvokeBody(group.parent, *inv, group.id, group.name, vars, /*restart_group=*/true);
        return;
      }
      case NodeType::kDag:
        retrying_.insert(id);
        Advance(id);
        retrying_.erase(id);
        return;
      case NodeType::kSteps: {
        // Its last group may have been removed (it runs again after the one before it).
        ChildView children = Children(id);
        if (children.empty()) {
          StartStepGroup(id, 0);
        } else {
          Advance(id);
        }
        return;
      }
      default:
        return;
    }
  }

  Result<nlohmann::json> Sequence(const dag::Sequence& s, const Vars& vars) {
    auto num = [&](const std::optional<std::string>& v, int64_t dflt) -> Result<int64_t> {
      if (!v) return dflt;
      auto r = Render(*v, vars);
      if (!r) return std::unexpected(r.error());
      auto n = RenderInt(*r, vars);
      if (!n) return MakeError(Code::kInvalidArgument, "withSequence value " + Quote(*r) + " is not an integer");
      return *n;
    };
    auto start = num(s.start, 0);
    if (!start) return std::unexpected(start.error());
    int64_t end;
    if (s.count) {
      auto count = num(s.count, 0);
      if (!count) return std::unexpected(count.error());
      if (*count == 0) return nlohmann::json::array();
      end = *start + *count - 1;
    } else {
      auto e = num(s.end, 0);
      if (!e) return std::unexpected(e.error());
      end = *e;
    }
    nlohmann::json out = nlohmann::json::array();
    int64_t step = end >= *start ? 1 : -1;
    for (int64_t i = *start;; i += step) {
      if (out.size() >= 100000) return MakeError(Code::kResourceExhausted, "withSequence has more than 100000 items");
      std::string text = std::to_string(i);
      if (!s.format.empty()) {
        char buf[128];
        std::snprintf(buf, sizeof buf, s.format.c_str(), static_cast<long long>(i));  // NOLINT
        text = buf;
      }
      out.push_back(text);
      if (i == end) break;
    }
    return out;
  }

  void StartStepGroup(const std::string& steps_id, size_t g) {
    const NodeState& owner = *Get(steps_id);
    const dag::Template& t = *owner.tmpl;
    NodeState group;
    group.id = steps_id + "[" + std::to_string(g) + "]";
    group.name = "[" + std::to_string(g) + "]";
    group.parent = steps_id;
    group.type = NodeType::kStepGroup;
    group.group = static_cast<int>(g);
    std::string gid = group.id;
    SetPhase(Create(std::move(group)), Phase::kRunning);
    Vars vars = InvocationVars(*Get(steps_id));
    for (const dag::Invocation& step : t.steps[g]) {
      Invoke(gid, step, gid + "." + step.name, step.name, vars);
    }
    Advance(gid);
  }

  // ---- lifecycle hooks ------------------------------------------------------------------------
  // The invocation of a step or task node, when it may carry hooks: not a retry attempt, not a
  // fan-out item (the fan-out group runs them once), not a hook.
  const dag::Invocation* HookedInvocation(const NodeState& n) const {
    if (n.hook || n.parent.empty()) return nullptr;
    const NodeState* p = Get(n.parent);
    if (!p || (p->type != NodeType::kStepGroup && p->type != NodeType::kDag)) return nullptr;
    const dag::Invocation* inv = InvocationOf(n);
    if (!inv || (inv->on_exit.empty() && inv->hooks.empty())) return nullptr;
    return inv;
  }

  // The steps/dag node whose variables a child's hooks see.
  const NodeState* OwnerOf(const NodeState& n) const {
    const NodeState* p = Get(n.parent);
    if (p && p->type == NodeType::kStepGroup) p = Get(p->parent);
    return p;
  }

  // Starts hook `suffix` of node `n` ("onExit", "hooks.<name>") as its sibling, once.
  void StartHook(const NodeState& n, const std::string& suffix, const std::string& template_name,
                 const dag::Boxed<dag::TemplateRef>& ref, const dag::Arguments& args) {
    std::string id = n.id + "." + suffix;
    if (Get(id) != nullptr) return;
    const NodeState* owner = OwnerOf(n);
    if (owner == nullptr) return;
    dag::Invocation inv;
    inv.template_name = template_name;
    if (ref) inv.template_ref = ref;
    const dag::WorkflowSpec* scope = nullptr;
    std::string error;
    const dag::Template* t = Resolve(inv, owner->scope, &scope, &error);
    NodeState h;
    h.id = id;
    h.name = n.name + "." + suffix;
    h.parent = n.parent;
    h.scope = scope;
    h.hook = true;
    if (t == nullptr) {
      SetPhase(Create(std::move(h)), Phase::kError, error);
      return;
    }
    Vars vars = InvocationVars(*owner);
    StartNode(std::move(h), *t, args, vars);
  }

  // A step or task that finished runs its exit hook (`onExit`, or `hooks.exit`) next to it; its
  // step group or dag waits for the hook.
  void StartExitHooks() {
    std::vector<std::string> due = std::move(exit_hooks_due_);
    exit_hooks_due_.clear();
    for (const std::string& id : due) {
      const NodeState* n = Get(id);
      if (n == nullptr) continue;
      const dag::Invocation* inv = HookedInvocation(*n);
      if (inv == nullptr) continue;
      NodeState copy = *n;  // StartHook creates nodes: `n` may move
      if (!inv->on_exit.empty()) {
        StartHook(copy, "onExit", inv->on_exit, dag::Boxed<dag::TemplateRef>(), dag::Arguments());
      }
      for (const dag::LifecycleHook& h : inv->hooks) {
        if (h.name == "exit") StartHook(copy, "onExit", h.template_name, h.template_ref, h.arguments);
      }
    }
  }

  // Hooks with an `expression` (step/task level and workflow level) start the first time their
  // expression is true after a change.
  void EvaluateHooks() {
    if (IsDone(WorkflowPhase()) || Cancelled()) return;
    std::vector<std::string> changed;
    for (const auto& [id, n] : overlay_) {
      if (!n.hook && HookedInvocation(n) != nullptr) changed.push_back(id);
    }
    std::sort(changed.begin(), changed.end());
    for (const std::string& id : changed) {
      NodeState n = *Get(id);
      const dag::Invocation* inv = HookedInvocation(n);
      const NodeState* owner = OwnerOf(n);
      if (inv == nullptr || owner == nullptr) continue;
      for (const dag::LifecycleHook& h : inv->hooks) {
        if (h.name == "exit" || h.expression.empty() || Get(n.id + ".hooks." + h.name)) continue;
        auto ok = Render("{{=" + h.expression + "}}", InvocationVars(*owner));
        if (ok && *ok == "true") StartHook(n, "hooks." + h.name, h.template_name, h.template_ref, h.arguments);
      }
    }
    const dag::WorkflowSpec& spec = base_.manifest->spec;
    for (const auto& [name, hook] : spec.hooks) {
      if (name == "exit" || hook.expression.empty()) continue;
      std::string id = base_.name + ".hooks." + name;
      if (Get(id) != nullptr) continue;
      auto ok = Render("{{=" + hook.expression + "}}", GlobalVars());
      if (!ok || *ok != "true") continue;
      dag::Invocation inv;
      inv.template_name = hook.template_name;
      if (hook.template_ref) inv.template_ref = hook.template_ref;
      const dag::WorkflowSpec* scope = nullptr;
      std::string error;
      const dag::Template* t = Resolve(inv, nullptr, &scope, &error);
      NodeState h;
      h.id = id;
      h.name = "hooks." + name;
      h.scope = scope;
      h.hook = true;
      if (t == nullptr) {
        SetPhase(Create(std::move(h)), Phase::kError, error);
        continue;
      }
      Vars globals = GlobalVars();
      StartNode(std::move(h), *t, hook.arguments, globals);
    }
  }

  // ---- advancing containers when a child changed ---------------------------------------------
  void Advance(const std::string& id) {
    if (!exit_hooks_due_.empty()) StartExitHooks();
    if (id.empty()) {
      RootDone();
      return;
    }
    const NodeState* n = Get(id);
    if (!n || IsDone(n->phase)) return;
    switch (n->type) {
      case NodeType::kRetry: return AdvanceRetry(id);
      case NodeType::kTaskGroup:
      case NodeType::kStepGroup: return AdvanceGroup(id);
      case NodeType::kSteps: return AdvanceSteps(id);
      case NodeType::kDag: return AdvanceDag(id);
      default: return;
    }
  }

  std::optional<Phase> MainPhase() const { return t_.main_phase ? t_.main_phase : base_.main_phase; }

  void RootDone() {
    const NodeState* root = Get(Root());
    if (!root || !IsDone(root->phase)) return;
    for (const auto& [name, hook] : base_.manifest->spec.hooks) {
      const NodeState* h = Get(base_.name + ".hooks." + name);
      if (h && !IsDone(h->phase)) return;  // the workflow ends once its running hooks have
    }
    if (ExitRoot().empty()) {
      Phase final = root->phase == Phase::kSkipped || root->phase == Phase::kOmitted ? Phase::kSucceeded : root->phase;
      std::string message = root->message;
      if (Cancelled()) {
        final = Phase::kFailed;
        message = t_.workflow_message.empty() ? base_.message : t_.workflow_message;
        if (message.empty()) message = "terminated by user";
      }
      const dag::Manifest& m = *base_.manifest;
      // The exit handler: spec.onExit, or spec.hooks.exit (the newer form, with arguments).
      const dag::Template* handler = nullptr;
      dag::Arguments handler_args;
      const dag::WorkflowSpec* handler_scope = nullptr;
      if (!m.spec.on_exit.empty()) {
        handler = FindTemplate(m.spec.on_exit);
      } else if (auto hook = m.spec.hooks.find("exit"); hook != m.spec.hooks.end()) {
        dag::Invocation inv;
        inv.template_name = hook->second.template_name;
        if (hook->second.template_ref) inv.template_ref = hook->second.template_ref;
        std::string error;
        handler = Resolve(inv, nullptr, &handler_scope, &error);
        handler_args = hook->second.arguments;
      }
      if (handler == nullptr || (Cancelled() && !CancelRunsExitHandler())) {
        FinishWorkflow(final, message);
        return;
      }
      // Run the exit handler; {{workflow.status}} and {{workflow.failures}} describe the main graph.
      t_.main_phase = final;
      globals_.reset();
      t_.main_message = message;
      NodeState exit;
      exit.id = base_.name + ".onExit";
      exit.name = "onExit";
      exit.scope = handler_scope;
      t_.exit_root = exit.id;
      Vars globals = GlobalVars();  // a copy: starting nodes may change the workflow's variables
      StartNode(std::move(exit), *handler, handler_args, globals);
      return;
    }
    const NodeState* exit = Get(ExitRoot());
    if (!exit || !IsDone(exit->phase)) return;
    // The workflow ends as its main graph did; a failed handler fails a workflow that succeeded.
    Phase final = *MainPhase();
    std::string message = t_.main_phase ? t_.main_message : base_.main_message;
    if (final == Phase::kSucceeded && IsFailure(exit->phase)) {
      final = Phase::kFailed;
      message = "exit handler failed: " + exit->message;
    }
    FinishWorkflow(final, message);
  }

  std::string Failures() const {
    nlohmann::json list = nlohmann::json::array();
    auto consider = [&](const NodeState& n) {
      if (n.type == NodeType::kPod && IsFailure(n.phase)) {
        list.push_back({{"displayName", n.name}, {"message", n.message}, {"templateName", n.template_name},
                        {"phase", PhaseName(n.phase)}, {"podName", n.id}});
      }
    };
    for (const auto& [id, n] : base_.nodes) if (!overlay_.count(id)) consider(n);
    for (const auto& [id, n] : overlay_) consider(n);
    return list.dump();
  }

  void FinishWorkflow(Phase phase, std::string message) {
    t_.workflow_phase = phase;
    globals_.reset();
    t_.workflow_message = std::move(message);
  }

  void AdvanceRetry(const std::string& id) {
    const NodeState& r = *Get(id);
    ChildView children = Children(id);
    if (children.empty()) return;
    const NodeState& last = *Get(children.back());
    if (!IsDone(last.phase)) return;
    if (last.phase == Phase::kSucceeded || Cancelled() || !ShouldRetry(r, last)) {
      NodeState& m = Mut(id);
      m.outputs = last.outputs;
      m.result = last.result;
      m.output_artifacts = last.output_artifacts;
      m.exit_code = last.exit_code;
      std::string message = last.message;
      if (last.phase != Phase::kSucceeded && !Cancelled() && children.size() > 1) {
        message = "No more retries left: " + message;
      }
      SetPhase(m, last.phase, message);
      Advance(m.parent);
      return;
    }
    // Next attempt, after the backoff if any.
    const dag::RetryStrategy& rs = *r.tmpl->retry_strategy;
    Duration delay{0};
    if (rs.backoff && rs.backoff->duration) {
      auto base = dag::ParseDuration(*rs.backoff->duration);
      if (base) {
        double factor = 1;
        if (rs.backoff->factor) {
          try {
            factor = std::stod(*rs.backoff->factor);
          } catch (...) {
          }
        }
        double ms = std::chrono::duration<double, std::milli>(*base).count();
        for (size_t k = 1; k < children.size(); ++k) ms *= factor;
        const std::optional<std::string>& cap = rs.backoff->max_duration ? rs.backoff->max_duration : rs.backoff->cap;
        if (cap) {
          auto c = dag::ParseDuration(*cap);
          if (c) ms = std::min(ms, std::chrono::duration<double, std::milli>(*c).count());
        }
        delay = Duration(static_cast<int64_t>(ms));
      }
    }
    if (delay.count() > 0) {
      t_.actions.push_back(StartTimer{"retry:" + id, now_ + delay});
    } else {
      StartAttempt(id);
    }
  }

  bool ShouldRetry(const NodeState& r, const NodeState& last) {
    const dag::RetryStrategy& rs = *r.tmpl->retry_strategy;
    int64_t limit = -1;  // no limit given: retry forever, as Argo does
    if (rs.limit) {
      limit = RenderInt(*rs.limit, BodyVars(r)).value_or(0);
    }
    int64_t retries_done = static_cast<int64_t>(Children(r.id).size()) - 1;
    if (limit >= 0 && retries_done >= limit) return false;
    switch (rs.retry_policy) {
      case dag::RetryPolicy::kAlways: break;
      case dag::RetryPolicy::kOnError:
        if (last.phase != Phase::kError) return false;
        break;
      case dag::RetryPolicy::kOnTransientError:
        if (last.phase != Phase::kError) return false;
        break;
      case dag::RetryPolicy::kUnset:
      case dag::RetryPolicy::kOnFailure:
        if (last.phase != Phase::kFailed) return false;
        break;
    }
    if (!rs.expression.empty()) {
      Vars v = BodyVars(r);
      v["lastRetry.exitCode"] = last.exit_code ? std::to_string(*last.exit_code) : "-1";
      v["lastRetry.status"] = std::string(PhaseName(last.phase));
      v["lastRetry.message"] = last.message;
      v["lastRetry.duration"] = std::to_string(
          std::chrono::duration_cast<std::chrono::seconds>(last.finished - last.started).count());
      auto ok = Render("{{=" + rs.expression + "}}", v);
      if (!ok || *ok != "true") return false;
    }
    return true;
  }

  // A StepGroup or TaskGroup: done when every child is; failed when any failed (unless the
  // child's invocation says continueOn).
  void AdvanceGroup(const std::string& id) {
    ChildView children = Children(id);
    ChildTally tally = Tally(id);
    if (tally.done < static_cast<int64_t>(children.size())) return;
    bool failed = false;
    std::string message;
    if (tally.failed > 0) {
      for (const std::string& cid : children) {
        const NodeState& c = *Get(cid);
        if (IsFailure(c.phase) && !c.hook && !ContinuesOn(c)) {
          failed = true;
          message = "child '" + c.id + "' failed";
          break;
        }
      }
    }
    NodeState& m = Mut(id);
    SetPhase(m, failed ? Phase::kFailed : Phase::kSucceeded, message);
    Advance(m.parent);
  }

  const dag::Invocation* InvocationOf(const NodeState& n) const {
    // The invocation that created n: found through its owner's template.
    const NodeState* owner = Get(n.parent);
    if (!owner) return nullptr;
    const NodeState* caller = owner;
    if (owner->type == NodeType::kTaskGroup || owner->type == NodeType::kRetry) {
      // A fan-out or retry child: the invocation is the group's.
      return InvocationOf(*owner);
    }
    if (owner->type == NodeType::kStepGroup) {
      caller = Get(owner->parent);
      if (!caller || !caller->tmpl) return nullptr;
      for (const dag::Invocation& s : caller->tmpl->steps[owner->group]) {
        if (s.name == n.name) return &s;
      }
      return nullptr;
    }
    if (owner->type == NodeType::kDag && owner->tmpl) {
      const DagIndex& index = index_->For(*owner->tmpl);
      auto it = index.by_name.find(n.name);
      if (it != index.by_name.end()) return &owner->tmpl->dag.tasks[it->second];
    }
    return nullptr;
  }

  bool ContinuesOn(const NodeState& n) const {
    const dag::Invocation* inv = InvocationOf(n);
    if (!inv || !inv->continue_on) return false;
    return (n.phase == Phase::kFailed && inv->continue_on->failed) ||
           (n.phase == Phase::kError && inv->continue_on->error);
  }

  void AdvanceSteps(const std::string& id) {
    const NodeState& s = *Get(id);
    ChildView children = Children(id);
    if (children.empty()) return;
    const NodeState& group = *Get(children.back());
    if (!IsDone(group.phase)) return;
    size_t next = static_cast<size_t>(group.group) + 1;
    if (IsFailure(group.phase) || Cancelled()) {
      NodeState& m = Mut(id);
      SetPhase(m, group.phase == Phase::kError ? Phase::kError : Phase::kFailed, group.message);
      FinishTemplateOutputs(m);
      Advance(m.parent);
      return;
    }
    if (next < s.tmpl->steps.size()) {
      StartStepGroup(id, next);
      return;
    }
    NodeState& m = Mut(id);
    FinishTemplateOutputs(m);
    SetPhase(m, Phase::kSucceeded);
    Advance(m.parent);
  }

  // Starts the dag's tasks that became ready (their dependencies done and satisfied) or omits
  // the unsatisfied ones, looking only at the dependents of children that finished; the dag is
  // done when every task it started is. Re-entrant calls (a task ending at once) return: the
  // outer call sees what they would have.
  void AdvanceDag(const std::string& id) {
    if (!advancing_.insert(id).second) return;
    const dag::Template& t = *Get(id)->tmpl;
    const DagIndex& index = index_->For(t);
    bool fail_fast = t.dag.fail_fast.value_or(true);
    // The tasks to look at: every root when the dag starts, then dependents of finished children.
    std::vector<size_t> candidates;
    if (Children(id).empty()) {
      candidates = index.roots;
    } else if (retrying_.erase(id) > 0) {
      // A retried dag: every task whose node was removed is looked at again.
      for (size_t i = 0; i < t.dag.tasks.size(); ++i) candidates.push_back(i);
    }
    for (;;) {
      if (auto it = newly_done_.find(id); it != newly_done_.end()) {
        std::vector<std::string> done = std::move(it->second);
        newly_done_.erase(it);
        for (const std::string& cid : done) {
          auto task = index.by_name.find(Get(cid)->name);
          if (task == index.by_name.end()) continue;
          const auto& deps = index.dependents[task->second];
          candidates.insert(candidates.end(), deps.begin(), deps.end());
        }
      }
      if (IsDone(Get(id)->phase)) break;
      bool stop = Cancelled() || (fail_fast && AnyFailure(id));
      if (!stop && candidates.empty()) break;
      if (stop) {
        candidates.clear();
        if (!Deferred().empty()) {
          for (const std::string& g : DropDeferred(id, Phase::kOmitted, "omitted: a task failed (failFast)")) {
            Advance(g);
          }
        }
        break;
      }
      std::sort(candidates.begin(), candidates.end());  // in the order tasks are written
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
      std::vector<size_t> batch = std::move(candidates);
      candidates.clear();
      std::optional<Vars> vars;
      for (size_t i : batch) {
        const dag::Invocation& task = t.dag.tasks[i];
        std::string cid = id + "." + task.name;
        if (Get(cid) != nullptr) continue;  // started already
        std::optional<bool> ready = index.depends_invalid[i] ? std::optional<bool>(false) : Satisfied(id, index, i, task);
        if (!ready) continue;
        if (!*ready) {
          NodeState n;
          n.id = cid;
          n.name = task.name;
          n.parent = id;
          n.type = NodeType::kSkipped;
          n.template_name = task.template_name;
          SetPhase(Create(std::move(n)), Phase::kOmitted, "omitted: depends condition not met");
        } else {
          if (!vars) vars = InvocationVars(*Get(id));
          Invoke(id, task, cid, task.name, *vars);
        }
        if (IsDone(Get(id)->phase)) break;
      }
    }
    advancing_.erase(id);
    // Done when every started task is done (nothing more can start then).
    const NodeState& cur = *Get(id);
    if (IsDone(cur.phase)) return;
    ChildView children = Children(id);
    ChildTally tally = Tally(id);
    if (tally.done < static_cast<int64_t>(children.size())) return;
    bool any_failed = false;
    std::string message;
    if (tally.failed > 0) {
      for (const std::string& cid : children) {
        const NodeState& c = *Get(cid);
        if (IsFailure(c.phase) && !c.hook && !ContinuesOn(c)) {
          any_failed = true;
          message = "task '" + c.id + "' failed";
          break;
        }
      }
    }
    NodeState& m = Mut(id);
    FinishTemplateOutputs(m);
    SetPhase(m, any_failed || Cancelled() ? Phase::kFailed : Phase::kSucceeded, message);
    Advance(m.parent);
  }

  // Whether a child of `id` failed (Failed or Error, without continueOn).
  bool AnyFailure(const std::string& id) const {
    if (Tally(id).failed == 0) return false;
    for (const std::string& cid : Children(id)) {
      const NodeState& c = *Get(cid);
      if (IsFailure(c.phase) && !c.hook && !ContinuesOn(c)) return true;
    }
    return false;
  }

  // nullopt: some dependency is not done; true/false: run or omit.
  std::optional<bool> Satisfied(const std::string& dag_id, const DagIndex& index, size_t i,
                                const dag::Invocation& task) const {
    using Outcome = expr::DependsExpr::Outcome;
    auto child = [&](std::string_view name) -> const NodeState* {
      const NodeState* c = Get(dag_id + "." + std::string(name));
      return c && c->parent == dag_id ? c : nullptr;
    };
    auto outcome = [&](std::string_view name) -> std::optional<Outcome> {
      const NodeState* found = child(name);
      if (found == nullptr || !IsDone(found->phase)) return std::nullopt;
      const NodeState& c = *found;
      Outcome o{};
      switch (c.phase) {
        case Phase::kSucceeded: o.phase = Outcome::Phase::kSucceeded; break;
        case Phase::kFailed: o.phase = Outcome::Phase::kFailed; break;
        case Phase::kError: o.phase = Outcome::Phase::kErrored; break;
        case Phase::kSkipped: o.phase = Outcome::Phase::kSkipped; break;
        default: o.phase = Outcome::Phase::kOmitted; break;
      }
      if (c.type == NodeType::kTaskGroup) {
        ChildView kids = Children(c.id);
        bool any = false, all_failed = !kids.empty();
        for (const std::string& gc : kids) {
          const NodeState* g = Get(gc);
          if (g->phase == Phase::kSucceeded) any = true;
          if (!IsFailure(g->phase)) all_failed = false;
        }
        o.any_child_succeeded = any;
        o.all_children_failed = all_failed;
      }
      return o;
    };
    if (task.has_depends) return index.depends[i]->Evaluate(outcome);
    for (const std::string& dep : task.dependencies) {
      auto o = outcome(dep);
      if (!o) return std::nullopt;
      // dependencies: run when each finished Succeeded/Skipped (or failed with continueOn).
      const NodeState& c = *child(dep);
      if (!(c.phase == Phase::kSucceeded || c.phase == Phase::kSkipped || c.phase == Phase::kOmitted ||
            ContinuesOn(c))) {
        return false;
      }
    }
    return true;
  }

  // Outputs with a globalName become workflow outputs.
  void PublishGlobals(const NodeState& n) {
    if (!n.tmpl) return;
    for (const dag::Parameter& p : n.tmpl->outputs.parameters) {
      if (p.global_name.empty()) continue;
      auto it = n.outputs.find(p.name);
      if (it != n.outputs.end()) {
        t_.global_parameters[p.global_name] = it->second;
        globals_.reset();
      }
    }
    for (const dag::Artifact& a : n.tmpl->outputs.artifacts) {
      if (a.global_name.empty()) continue;
      auto it = n.output_artifacts.find(a.name);
      if (it != n.output_artifacts.end()) {
        t_.global_artifacts[a.global_name] = it->second;
        globals_.reset();
      }
    }
  }

  // Outputs of a dag/steps template: valueFrom.parameter / expression over its children.
  void FinishTemplateOutputs(NodeState& m) {
    if (!m.tmpl) return;
    Vars v = InvocationVars(m);
    for (const dag::Parameter& p : m.tmpl->outputs.parameters) {
      std::optional<std::string> value;
      if (p.value_from && !p.value_from->parameter.empty()) {
        auto r = Render(p.value_from->parameter, v);
        if (r && r->find("{{") == std::string::npos) value = *r;
      } else if (p.value_from && !p.value_from->expression.empty()) {
        auto r = Render("{{=" + p.value_from->expression + "}}", v);
        if (r) value = *r;
      } else if (p.value) {
        auto r = Render(*p.value, v);
        if (r) value = *r;
      }
      if (!value && p.value_from && p.value_from->default_value) value = *p.value_from->default_value;
      if (value) m.outputs[p.name] = *value;
    }
    for (const dag::Artifact& a : m.tmpl->outputs.artifacts) {
      std::string from = !a.from.empty() ? a.from : (!a.from_expression.empty() ? "{{=" + a.from_expression + "}}" : "");
      if (from.empty()) continue;
      auto r = Render(from, v);
      if (!r) continue;
      if (auto ref = ArtifactRef::FromJson(*r)) m.output_artifacts[a.name] = *ref;
    }
    PublishGlobals(m);
  }

  const WorkflowState& base_;
  const dag::TemplateLibrary& library_;
  Time now_;
  Transition t_;
  std::unordered_map<std::string, NodeState> overlay_;
  // Children created in this transition, by parent, in creation order.
  std::unordered_map<std::string, std::vector<std::string>> added_;
  // Changes to the state's tallies made in this transition.
  std::unordered_map<std::string, ChildTally> delta_;
  // Children that finished in this transition, by parent, not yet looked at by AdvanceDag.
  std::unordered_map<std::string, std::vector<std::string>> newly_done_;
  std::unordered_set<std::string> advancing_;  // dags AdvanceDag is working on (no re-entry)
  std::unordered_set<std::string> retrying_;   // retried dags: every task is looked at again
  std::vector<std::string> exit_hooks_due_;    // nodes that finished; their exit hooks start next
  mutable std::optional<Vars> globals_;  // GlobalVars(), until reset
  TemplateIndexCache* index_ = nullptr;
  std::unique_ptr<TemplateIndexCache> own_index_;
};

}  // namespace

Result<WorkflowState> NewWorkflow(const dag::Manifest& manifest, const dag::TemplateLibrary& library,
                                  std::string uid, std::map<std::string, std::string> parameters,
                                  std::string entrypoint) {
  WorkflowState s;
  s.uid = std::move(uid);
  s.manifest = &manifest;
  s.index = std::make_shared<TemplateIndexCache>();
  s.namespace_ = manifest.metadata.namespace_.empty() ? "default" : manifest.metadata.namespace_;
  s.name = manifest.metadata.name.empty() ? manifest.metadata.generate_name + s.uid.substr(0, 5)
                                          : manifest.metadata.name;
  std::vector<const dag::Parameter*> declared;
  for (const dag::Parameter& p : manifest.spec.arguments.parameters) declared.push_back(&p);
  if (manifest.spec.workflow_template_ref) {
    if (const dag::Manifest* ref = library.Find(manifest.spec.workflow_template_ref->name,
                                                manifest.spec.workflow_template_ref->cluster_scope)) {
      for (const dag::Parameter& p : ref->spec.arguments.parameters) declared.push_back(&p);
    }
  }
  for (const dag::Parameter* p : declared) {
    if (s.parameters.count(p->name)) continue;
    auto it = parameters.find(p->name);
    if (it != parameters.end()) {
      s.parameters[p->name] = it->second;
    } else if (p->value) {
      s.parameters[p->name] = *p->value;
    } else if (p->default_value) {
      s.parameters[p->name] = *p->default_value;
    } else {
      return MakeError(Code::kInvalidArgument, "workflow parameter " + Quote(p->name) +
                                                   " has no value: pass -p " + p->name + "=...");
    }
  }
  for (const auto& [k, v] : parameters) {
    if (!s.parameters.count(k)) {
      return MakeError(Code::kInvalidArgument, "-p " + k + ": the workflow declares no parameter " + Quote(k));
    }
  }
  s.entrypoint = entrypoint.empty() ? manifest.spec.entrypoint : entrypoint;
  if (s.entrypoint.empty() && manifest.spec.workflow_template_ref) {
    if (const dag::Manifest* ref = library.Find(manifest.spec.workflow_template_ref->name,
                                                manifest.spec.workflow_template_ref->cluster_scope)) {
      s.entrypoint = ref->spec.entrypoint;
    }
  }
  return s;
}

namespace {

// A retry, decided in two steps on a copy of the state (a retry is rare; the copy costs what the
// workflow holds once): the first removes the failed nodes and resets their ancestors, the
// second runs them again from there. The Transition returned is both, applied as one.
Transition DecideRetry(const WorkflowState& state, const dag::TemplateLibrary& library, const RetryRequested& e,
                       Time now) {
  Transition none;
  none.now = now;
  if (!IsFailure(state.phase)) return none;
  auto selector = ParseNodeSelector(e.node_field_selector);
  if (!selector) return none;  // the caller checks it before asking
  std::set<std::string> removed, reset;
  Decider(state, library, now).PlanRetry(e, *selector, &removed, &reset);

  Transition first;
  first.now = now;
  first.retried = true;
  first.workflow_phase = Phase::kRunning;
  first.removed.assign(removed.begin(), removed.end());
  if (!e.parameters.empty()) {
    std::map<std::string, std::string> parameters = state.parameters;
    for (const auto& [k, v] : e.parameters) parameters[k] = v;
    first.parameters = std::move(parameters);
  }
  for (const std::string& id : reset) {
    NodeState n = state.nodes.at(id);
    n.phase = Phase::kRunning;
    n.finished = Time{};
    n.message.clear();
    n.kill_message.clear();
    n.outputs.clear();
    n.result.reset();
    n.exit_code.reset();
    n.output_artifacts.clear();
    if (id == state.root && first.parameters) {
      // The entrypoint's inputs are the workflow's parameters.
      for (auto& [k, v] : n.inputs) {
        if (auto it = first.parameters->find(k); it != first.parameters->end()) v = it->second;
      }
    }
    first.nodes.push_back(std::move(n));
  }
  std::vector<std::string> deferred;
  for (const std::string& id : state.deferred) {
    if (!removed.count(id)) deferred.push_back(id);
  }
  if (deferred != state.deferred) first.deferred = deferred;

  WorkflowState copy = state;
  Apply(copy, first);
  Transition second = Decider(copy, library, now).Restart(std::vector<std::string>(reset.begin(), reset.end()));

  Transition t = std::move(second);
  t.retried = true;
  t.removed = std::move(first.removed);
  t.parameters = std::move(first.parameters);
  if (!t.workflow_phase) t.workflow_phase = Phase::kRunning;
  if (!t.deferred) t.deferred = std::move(first.deferred);
  std::map<std::string, NodeState> nodes;
  for (NodeState& n : first.nodes) nodes.insert_or_assign(n.id, std::move(n));
  for (NodeState& n : t.nodes) nodes.insert_or_assign(n.id, std::move(n));
  t.nodes.clear();
  for (auto& [id, n] : nodes) t.nodes.push_back(std::move(n));
  return t;
}

}  // namespace

Transition Decide(const WorkflowState& state, const dag::TemplateLibrary& library, const Event& event, Time now) {
  if (const auto* retry = std::get_if<RetryRequested>(&event)) return DecideRetry(state, library, *retry, now);
  return Decider(state, library, now).Run(event);
}

void Apply(WorkflowState& state, const Transition& t) {
  auto count = [&](const std::string& parent, Phase phase, int sign) {
    if (parent.empty() || !IsDone(phase)) return;
    ChildTally& tally = state.tallies[parent];
    tally.done += sign;
    if (IsFailure(phase)) tally.failed += sign;
  };
  if (t.retried) {
    for (const std::string& id : t.removed) {
      auto it = state.nodes.find(id);
      if (it == state.nodes.end()) continue;
      const std::string& parent = it->second.parent;
      count(parent, it->second.phase, -1);
      if (auto c = state.children.find(parent); c != state.children.end()) std::erase(c->second, id);
      state.children.erase(id);
      state.tallies.erase(id);
      state.nodes.erase(it);
    }
    state.exit_root.clear();
    state.main_phase.reset();
    state.main_message.clear();
    state.cancel_requested = false;
    state.cancel_runs_exit_handler = false;
    state.exit_handler_cancelled = false;
    state.message.clear();
    state.finished = Time{};
    if (t.parameters) state.parameters = *t.parameters;
  }
  if (t.suspended) state.suspended = *t.suspended;
  for (const NodeState& n : t.nodes) {
    auto [it, inserted] = state.nodes.try_emplace(n.id, n);
    if (!inserted) {
      count(it->second.parent, it->second.phase, -1);
      it->second = n;
    }
    count(n.parent, n.phase, +1);
  }
  for (const std::string& id : t.created) {
    auto it = state.nodes.find(id);
    if (it != state.nodes.end() && !it->second.parent.empty()) state.children[it->second.parent].push_back(id);
  }
  if (t.root) state.root = *t.root;
  if (t.exit_root) state.exit_root = *t.exit_root;
  if (t.main_phase) {
    state.main_phase = t.main_phase;
    state.main_message = t.main_message;
  }
  if (t.cancel_requested) state.cancel_requested = true;
  if (t.cancel_runs_exit_handler) state.cancel_runs_exit_handler = true;
  if (t.exit_handler_cancelled) state.exit_handler_cancelled = true;
  for (const std::string& name : t.timers_fired) state.timers.erase(name);
  for (const auto& [k, v] : t.global_parameters) state.global_parameters[k] = v;
  for (const auto& [k, a] : t.global_artifacts) state.global_artifacts[k] = a;
  if (t.deferred) state.deferred = *t.deferred;
  for (const Action& a : t.actions) {
    if (const auto* timer = std::get_if<StartTimer>(&a)) state.timers[timer->timer] = timer->at;
  }
  if (t.workflow_phase && *t.workflow_phase != state.phase) {
    state.phase = *t.workflow_phase;
    if (state.phase == Phase::kRunning && state.started == Time{}) state.started = t.now;
    if (IsDone(state.phase)) state.finished = t.now;
  }
  if (!t.workflow_message.empty()) state.message = t.workflow_message;
  if (IsDone(state.phase)) state.timers.clear();
}

void Replay(WorkflowState& state, const dag::TemplateLibrary& library, const std::vector<RecordedEvent>& events) {
  for (const RecordedEvent& e : events) Apply(state, Decide(state, library, e.event, e.at));
}

}  // namespace kiln::scheduler
