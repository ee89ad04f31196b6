#include "tests/kubesim/scheduler.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <map>
#include <set>

#include "dag/quantity.h"
#include "tests/kubesim/selectors.h"

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;

double Quantity(const json& v) {
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  auto q = dag::ParseQuantity(text);
  return q ? q->value : 0;
}

using Resources = std::map<std::string, double>;

Resources PodRequests(const json& pod) {
  Resources sum;
  const json* containers = Find(pod, {"spec", "containers"});
  if (containers && containers->is_array()) {
    for (const json& c : *containers) {
      const json* req = Find(c, {"resources", "requests"});
      if (!req || !req->is_object()) continue;
      for (const auto& [k, v] : req->items()) sum[k] += Quantity(v);
    }
  }
  const json* init = Find(pod, {"spec", "initContainers"});
  if (init && init->is_array()) {
    for (const json& c : *init) {
      const json* req = Find(c, {"resources", "requests"});
      if (!req || !req->is_object()) continue;
      for (const auto& [k, v] : req->items()) sum[k] = std::max(sum[k], Quantity(v));
    }
  }
  return sum;
}

// The first taint with one of `effects` that no toleration of the pod tolerates, or null.
const json* Untolerated(const json& pod, const json& node, std::initializer_list<const char*> effects) {
  const json* taints = Find(node, {"spec", "taints"});
  if (!taints || !taints->is_array()) return nullptr;
  const json* tolerations = Find(pod, {"spec", "tolerations"});
  for (const json& taint : *taints) {
    std::string effect = taint.value("effect", "");
    if (std::find_if(effects.begin(), effects.end(), [&](const char* e) { return effect == e; }) == effects.end()) continue;
    bool ok = false;
    if (tolerations && tolerations->is_array()) {
      for (const json& t : *tolerations) ok |= Tolerates(t, taint);
    }
    if (!ok) return &taint;
  }
  return nullptr;
}

bool MatchExpression(const json& expr, const json& labels) {
  std::string key = expr.value("key", "");
  std::string op = expr.value("operator", "");
  bool present = labels.is_object() && labels.contains(key) && labels[key].is_string();
  std::string value = present ? labels[key].get<std::string>() : "";
  std::vector<std::string> values;
  if (const json* v = Find(expr, {"values"}); v && v->is_array()) {
    for (const json& s : *v) values.push_back(s.is_string() ? s.get<std::string>() : s.dump());
  }
  bool in = present && std::find(values.begin(), values.end(), value) != values.end();
  if (op == "In") return in;
  if (op == "NotIn") return !in;
  if (op == "Exists") return present;
  if (op == "DoesNotExist") return !present;
  if (op == "Gt" || op == "Lt") {
    if (!present || values.size() != 1) return false;
    try {
      long long have = std::stoll(value);
      long long want = std::stoll(values[0]);
      return op == "Gt" ? have > want : have < want;
    } catch (const std::exception&) {
      return false;
    }
  }
  return false;
}

bool MatchTerm(const json& term, const json& labels) {
  const json* exprs = Find(term, {"matchExpressions"});
  bool any = false;
  if (exprs && exprs->is_array()) {
    for (const json& e : *exprs) {
      any = true;
      if (!MatchExpression(e, labels)) return false;
    }
  }
  // matchFields (metadata.name) is not used by kiln; an empty term matches nothing.
  return any;
}

bool MatchesAffinityAndSelector(const json& pod, const json& node) {
  const json* labels = Find(node, {"metadata", "labels"});
  json empty = json::object();
  const json& l = labels ? *labels : empty;
  if (const json* sel = Find(pod, {"spec", "nodeSelector"}); sel && sel->is_object()) {
    for (const auto& [k, v] : sel->items()) {
      if (!l.contains(k) || l[k] != v) return false;
    }
  }
  const json* terms = Find(pod, {"spec", "affinity", "nodeAffinity",
                                 "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"});
  if (terms && terms->is_array()) {
    bool any = false;
    for (const json& t : *terms) any |= MatchTerm(t, l);
    if (!any) return false;
  }
  return true;
}

int64_t PreferredScore(const json& pod, const json& node) {
  const json* prefs = Find(pod, {"spec", "affinity", "nodeAffinity",
                                 "preferredDuringSchedulingIgnoredDuringExecution"});
  if (!prefs || !prefs->is_array()) return 0;
  const json* labels = Find(node, {"metadata", "labels"});
  json empty = json::object();
  int64_t score = 0;
  for (const json& p : *prefs) {
    if (MatchTerm(p.value("preference", json::object()), labels ? *labels : empty)) {
      score += p.value("weight", 0);
    }
  }
  return score;
}

bool Active(const json& pod) {
  std::string phase = Str(pod, {"status", "phase"});
  return phase != "Succeeded" && phase != "Failed";
}

struct NodeFit {
  std::vector<std::string> reasons;
  bool resolvable = true;  // preemption could help (resources), as opposed to taints/affinity
};

}  // namespace

struct Scheduler::Impl {
  Impl(net::io_context& io_context, Registry& reg) : io(io_context), registry(reg) {}

  net::io_context& io;
  Registry& registry;
  std::set<std::string> queue;
  std::set<std::string> unschedulable;
  bool scheduled = false;

  Store& store() { return registry.store(); }

  void Enqueue(const std::string& key) {
    queue.insert(key);
    if (scheduled) return;
    scheduled = true;
    net::post(io, [this] { Drain(); });
  }

  void RetryUnschedulable() {
    for (const std::string& key : unschedulable) Enqueue(key);
  }

  void Drain() {
    scheduled = false;
    auto keys = std::move(queue);
    queue.clear();
    if (keys.empty()) return;
    auto usage = Usage();
    for (const std::string& key : keys) {
      size_t slash = key.find('/');
      Schedule(key.substr(0, slash), key.substr(slash + 1), usage);
    }
  }

  // The bound pods that still hold resources, by "ns/name", kept current from the store's
  // events so that Usage does not walk every pod ever created (finished ones included).
  std::map<std::string, ObjectPtr, std::less<>> bound;

  void Track(const std::string& key, const StoreEvent& e) {
    const json& pod = *e.object;
    if (e.type != EventType::kDeleted && Active(pod) && !Str(pod, {"spec", "nodeName"}).empty()) {
      bound[key] = e.object;
    } else {
      bound.erase(key);
    }
  }

  std::map<std::string, Resources> Usage() const {
    std::map<std::string, Resources> usage;
    for (const auto& [key, pod] : bound) {
      Resources& u = usage[Str(*pod, {"spec", "nodeName"})];
      for (const auto& [k, v] : PodRequests(*pod)) u[k] += v;
      u["pods"] += 1;
    }
    return usage;
  }

  NodeFit Fit(const json& pod, const json& node, const Resources& requests, const Resources& used) const {
    NodeFit fit;
    if (const json* u = Find(node, {"spec", "unschedulable"}); u && u->is_boolean() && u->get<bool>()) {
      bool tolerated = false;
      if (const json* ts = Find(pod, {"spec", "tolerations"}); ts && ts->is_array()) {
        json taint = {{"key", "node.kubernetes.io/unschedulable"}, {"effect", "NoSchedule"}};
        for (const json& t : *ts) tolerated |= Tolerates(t, taint);
      }
      if (!tolerated) {
        fit.reasons.push_back("node(s) were unschedulable");
        fit.resolvable = false;
        return fit;
      }
    }
    if (const json* taint = Untolerated(pod, node, {"NoSchedule", "NoExecute"})) {
      fit.reasons.push_back("node(s) had untolerated taint {" + taint->value("key", "") + ": " +
                            taint->value("value", "") + "}");
      fit.resolvable = false;
      return fit;
    }
    if (!MatchesAffinityAndSelector(pod, node)) {
      fit.reasons.push_back("node(s) didn't match Pod's node affinity/selector");
      fit.resolvable = false;
      return fit;
    }
    const json* alloc = Find(node, {"status", "allocatable"});
    auto allocatable = [&](const std::string& name) {
      return alloc && alloc->contains(name) ? Quantity((*alloc)[name]) : 0.0;
    };
    auto used_of = [&](const std::string& name) {
      auto it = used.find(name);
      return it == used.end() ? 0.0 : it->second;
    };
    if (used_of("pods") + 1 > allocatable("pods") && alloc && alloc->contains("pods")) {
      fit.reasons.push_back("Too many pods");
    }
    for (const auto& [name, amount] : requests) {
      if (amount <= 0) continue;
      if (used_of(name) + amount > allocatable(name) + 1e-9) {
        fit.reasons.push_back("Insufficient " + name);
      }
    }
    return fit;
  }

  // Returns the chosen node, or "" with `message` set to the FitError text.
  std::string Choose(const json& pod, const std::map<std::string, Resources>& usage,
                     std::string& message) const {
    Resources requests = PodRequests(pod);
    std::vector<ObjectPtr> nodes = registry.store().List(Nodes(), "");
    std::map<std::string, int> histogram;
    std::map<std::string, int> preemption;
    std::string best;
    std::tuple<int64_t, int64_t, double> best_score{};
    static const Resources kNone;
    for (const ObjectPtr& node : nodes) {
      std::string name = Str(*node, {"metadata", "name"});
      auto u = usage.find(name);
      NodeFit fit = Fit(pod, *node, requests, u == usage.end() ? kNone : u->second);
      if (!fit.reasons.empty()) {
        for (const std::string& r : fit.reasons) histogram[r]++;
        preemption[fit.resolvable ? "No preemption victims found for incoming pod"
                                  : "Preemption is not helpful for scheduling"]++;
        continue;
      }
      // Score: preferred affinity, then fewer untolerated PreferNoSchedule taints, then the
      // least allocated node; ties go to the first name.
      int64_t affinity = PreferredScore(pod, *node);
      int64_t prefer = Untolerated(pod, *node, {"PreferNoSchedule"}) ? -1 : 0;
      double free = 0;
      const json* alloc = Find(*node, {"status", "allocatable"});
      for (const char* res : {"cpu", "memory"}) {
        double a = alloc && alloc->contains(res) ? Quantity((*alloc)[res]) : 0;
        double used = 0;
        if (u != usage.end() && u->second.count(res)) used = u->second.at(res);
        if (a > 0) free += (a - used) / a;
      }
      std::tuple<int64_t, int64_t, double> score{affinity, prefer, free};
      if (best.empty() || score > best_score) {
        best = name;
        best_score = score;
      }
    }
    if (!best.empty()) return best;
    auto join = [](const std::map<std::string, int>& counts) {
      std::vector<std::string> parts;
      for (const auto& [reason, n] : counts) parts.push_back(std::to_string(n) + " " + reason);
      std::sort(parts.begin(), parts.end());
      std::string out;
      for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
      return out;
    };
    std::string total = std::to_string(nodes.size());
    message = "0/" + total + " nodes are available";
    if (!histogram.empty()) message += ": " + join(histogram);
    message += ".";
    if (!preemption.empty()) {
      message += " preemption: 0/" + total + " nodes are available: " + join(preemption) + ".";
    }
    return "";
  }

  void Schedule(const std::string& ns, const std::string& name,
                std::map<std::string, Resources>& usage) {
    std::string key = Store::Key(ns, name);
    ObjectPtr pod = store().Get(Pods(), ns, name);
    if (!pod || !Str(*pod, {"spec", "nodeName"}).empty() || !Active(*pod) ||
        Find(*pod, {"metadata", "deletionTimestamp"})) {
      unschedulable.erase(key);
      return;
    }
    if (Str(*pod, {"spec", "schedulerName"}, "default-scheduler") != "default-scheduler") return;
    std::string message;
    std::string node = Choose(*pod, usage, message);
    std::string now = Rfc3339(std::chrono::system_clock::now());
    if (node.empty()) {
      unschedulable.insert(key);
      std::string old_message;
      if (const json* conds = Find(*pod, {"status", "conditions"}); conds && conds->is_array()) {
        for (const json& c : *conds) {
          if (c.value("type", "") == "PodScheduled") old_message = c.value("message", "");
        }
      }
      if (old_message == message) return;
      auto updated = registry.Mutate(Pods(), ns, name, [&](json& p) {
        json& conds = p["status"]["conditions"];
        if (!conds.is_array()) conds = json::array();
        json cond = {{"type", "PodScheduled"}, {"status", "False"}, {"lastProbeTime", nullptr},
                     {"lastTransitionTime", now}, {"reason", "Unschedulable"}, {"message", message}};
        bool replaced = false;
        for (json& c : conds) {
          if (c.value("type", "") == "PodScheduled") {
            c = cond;
            replaced = true;
          }
        }
        if (!replaced) conds.push_back(cond);
      });
      if (updated) registry.RecordEvent(**updated, "Warning", "FailedScheduling", message, "default-scheduler");
      return;
    }
    unschedulable.erase(key);
    auto bound = registry.Mutate(Pods(), ns, name, [&](json& p) {
      p["spec"]["nodeName"] = node;
      json& conds = p["status"]["conditions"];
      if (!conds.is_array()) conds = json::array();
      json cond = {{"type", "PodScheduled"}, {"status", "True"}, {"lastProbeTime", nullptr},
                   {"lastTransitionTime", now}};
      bool replaced = false;
      for (json& c : conds) {
        if (c.value("type", "") == "PodScheduled") {
          c = cond;
          replaced = true;
        }
      }
      if (!replaced) conds.push_back(cond);
    });
    if (!bound) return;
    Resources& u = usage[node];
    for (const auto& [k, v] : PodRequests(**bound)) u[k] += v;
    u["pods"] += 1;
    registry.RecordEvent(**bound, "Normal", "Scheduled",
                         "Successfully assigned " + ns + "/" + name + " to " + node, "default-scheduler");
  }
};

Scheduler::Scheduler(net::io_context& io, Registry& registry)
    : impl_(std::make_unique<Impl>(io, registry)) {}

Scheduler::~Scheduler() = default;

void Scheduler::Start() {
  impl_->store().Subscribe([impl = impl_.get()](const StoreEvent& e) {
    if (e.resource == &Nodes()) {
      impl->RetryUnschedulable();
      return;
    }
    if (e.resource != &Pods()) return;
    const json& pod = *e.object;
    std::string key = Store::Key(Str(pod, {"metadata", "namespace"}), Str(pod, {"metadata", "name"}));
    impl->Track(key, e);
    if (e.type == EventType::kDeleted || !Active(pod)) {
      // Resources freed: pods that did not fit may fit now.
      bool was_active = e.old && Active(*e.old) && !Str(*e.old, {"spec", "nodeName"}).empty();
      impl->unschedulable.erase(key);
      if (was_active || e.type == EventType::kDeleted) impl->RetryUnschedulable();
      return;
    }
    if (Str(pod, {"spec", "nodeName"}).empty() && !impl->unschedulable.count(key)) impl->Enqueue(key);
  });
}

std::string Scheduler::Explain(const json& pod) const {
  std::string message;
  impl_->Choose(pod, impl_->Usage(), message);
  return message;
}

bool Tolerates(const json& toleration, const json& taint) {
  std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) return false;
  std::string key = toleration.value("key", "");
  std::string op = toleration.value("operator", "Equal");
  if (key.empty()) return op == "Exists";
  if (key != taint.value("key", "")) return false;
  if (op == "Exists") return true;
  return (op == "Equal" || op.empty()) && toleration.value("value", "") == taint.value("value", "");
}

}  // namespace kiln::kubesim
