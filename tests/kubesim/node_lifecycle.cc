#include "tests/kubesim/node_lifecycle.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>

#include "tests/kubesim/scheduler.h"

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;

constexpr const char* kNodeStatusUnknown = "NodeStatusUnknown";
constexpr const char* kStoppedPosting = "Kubelet stopped posting node status.";

// The conditions a running kubelet posts (as cluster.cc registers them).
struct HealthyCondition {
  const char* type;
  const char* status;
  const char* reason;
  const char* message;
};
constexpr HealthyCondition kHealthy[] = {
    {"MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"},
    {"DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
    {"PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
    {"Ready", "True", "KubeletReady", "kubelet is posting ready status"},
};

bool Terminal(const json& pod) {
  std::string phase = Str(pod, {"status", "phase"});
  return phase == "Succeeded" || phase == "Failed";
}

std::vector<json> NoExecuteTaints(const json& node) {
  std::vector<json> out;
  const json* taints = Find(node, {"spec", "taints"});
  if (!taints || !taints->is_array()) return out;
  for (const json& t : *taints) {
    if (t.value("effect", "") == "NoExecute") out.push_back(t);
  }
  return out;
}

bool Unreachable(const json& node) {
  if (!KubeletGone(node)) return false;
  for (const json& t : NoExecuteTaints(node)) {
    if (t.value("key", "") == kUnreachableTaintKey) return true;
  }
  return false;
}

// The taint eviction controller's getMinTolerationTime: how long the pod may stay on a node
// with `taints`. nullopt: forever (every taint tolerated, no tolerationSeconds); zero: evict
// now (a taint not tolerated, or tolerationSeconds <= 0).
std::optional<std::chrono::seconds> TolerationTime(const json& pod,
                                                   const std::vector<json>& taints) {
  const json* tolerations = Find(pod, {"spec", "tolerations"});
  std::optional<std::chrono::seconds> least;
  for (const json& taint : taints) {
    bool tolerated = false;
    if (tolerations && tolerations->is_array()) {
      for (const json& t : *tolerations) {
        if (!Tolerates(t, taint)) continue;
        tolerated = true;
        const json* seconds = Find(t, {"tolerationSeconds"});
        if (!seconds || !seconds->is_number_integer()) continue;
        auto s = std::chrono::seconds(std::max<int64_t>(0, seconds->get<int64_t>()));
        if (!least || s < *least) least = s;
      }
    }
    if (!tolerated) return std::chrono::seconds(0);
  }
  return least;
}

}  // namespace

bool KubeletGone(const json& node) {
  const json* conds = Find(node, {"status", "conditions"});
  if (!conds || !conds->is_array()) return false;
  for (const json& c : *conds) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "Unknown";
  }
  return false;
}

struct NodeLifecycleController::Impl {
  Impl(net::io_context& io_context, Registry& reg, std::function<SysTime()> clock, bool use_timers)
      : io(io_context),
        registry(reg),
        now(std::move(clock)),
        timers(use_timers),
        timer(io_context) {}

  net::io_context& io;
  Registry& registry;
  std::function<SysTime()> now;
  bool timers;
  net::steady_timer timer;
  bool posted = false;
  // When each pod on a NoExecute-tainted node is to be evicted, by pod uid (the taint eviction
  // controller's timed queue: set when first seen, dropped when the taints go).
  std::map<std::string, SysTime> evictions;

  Store& store() { return registry.store(); }

  void Post() {
    if (posted) return;
    posted = true;
    net::post(io, [this] {
      posted = false;
      Sync();
    });
  }

  ApiResult<ObjectPtr> SetNotReady(const std::string& name) {
    ObjectPtr node = store().Get(Nodes(), "", name);
    if (!node) return Fail(NotFound(Nodes(), name));
    if (Unreachable(*node)) return node;
    std::string t = Rfc3339(now());
    auto updated = registry.Mutate(Nodes(), "", name, [&](json& n) {
      json& conds = n["status"]["conditions"];
      if (!conds.is_array()) conds = json::array();
      for (json& c : conds) {
        if (c.value("status", "") != "Unknown") c["lastTransitionTime"] = t;
        c["status"] = "Unknown";
        c["reason"] = kNodeStatusUnknown;
        c["message"] = kStoppedPosting;
      }
      json& taints = n["spec"]["taints"];
      if (!taints.is_array()) taints = json::array();
      auto has = [&](const char* effect) {
        for (const json& taint : taints) {
          if (taint.value("key", "") == kUnreachableTaintKey &&
              taint.value("effect", "") == effect) {
            return true;
          }
        }
        return false;
      };
      // As the real controller writes them: only the NoExecute taint carries timeAdded.
      if (!has("NoSchedule"))
        taints.push_back({{"key", kUnreachableTaintKey}, {"effect", "NoSchedule"}});
      if (!has("NoExecute")) {
        taints.push_back(
            {{"key", kUnreachableTaintKey}, {"effect", "NoExecute"}, {"timeAdded", t}});
      }
    });
    if (!updated) return Fail(updated.error());
    registry.RecordEvent(**updated, "Normal", "NodeNotReady",
                         "Node " + name + " status is now: NodeNotReady", "node-controller");
    MarkPodsNotReady(name, t);
    Post();
    return *updated;
  }

  // nodeutil.MarkPodsNotReady: the pods' Ready condition becomes False, with an event each.
  void MarkPodsNotReady(const std::string& node, const std::string& t) {
    for (const ObjectPtr& pod : store().List(Pods(), "")) {
      if (Str(*pod, {"spec", "nodeName"}) != node || Terminal(*pod)) continue;
      std::string ns = Str(*pod, {"metadata", "namespace"});
      std::string name = Str(*pod, {"metadata", "name"});
      auto updated = registry.Mutate(Pods(), ns, name, [&](json& p) {
        json* conds = p["status"].contains("conditions") ? &p["status"]["conditions"] : nullptr;
        if (!conds || !conds->is_array()) return;
        for (json& c : *conds) {
          if (c.value("type", "") != "Ready" || c.value("status", "") == "False") continue;
          c["status"] = "False";
          c["lastTransitionTime"] = t;
        }
      });
      if (updated)
        registry.RecordEvent(**updated, "Warning", "NodeNotReady", "Node is not ready",
                             "node-controller");
    }
  }

  ApiResult<ObjectPtr> SetReady(const std::string& name) {
    ObjectPtr node = store().Get(Nodes(), "", name);
    if (!node) return Fail(NotFound(Nodes(), name));
    std::string t = Rfc3339(now());
    bool was_gone = KubeletGone(*node);
    auto updated = registry.Mutate(Nodes(), "", name, [&](json& n) {
      json& conds = n["status"]["conditions"];
      if (!conds.is_array()) conds = json::array();
      for (json& c : conds) {
        for (const HealthyCondition& h : kHealthy) {
          if (c.value("type", "") != h.type) continue;
          if (c.value("status", "") != h.status) c["lastTransitionTime"] = t;
          c["status"] = h.status;
          c["reason"] = h.reason;
          c["message"] = h.message;
          c["lastHeartbeatTime"] = t;
        }
      }
      json& taints = n["spec"]["taints"];
      if (!taints.is_array()) return;
      json kept = json::array();
      for (const json& taint : taints) {
        if (taint.value("key", "") != kUnreachableTaintKey) kept.push_back(taint);
      }
      if (kept.empty())
        n["spec"].erase("taints");
      else
        taints = kept;
    });
    if (!updated) return Fail(updated.error());
    if (was_gone) {
      registry.RecordEvent(**updated, "Normal", "NodeReady",
                           "Node " + name + " status is now: NodeReady", "kubelet", name);
    }
    Post();
    return *updated;
  }

  void Sync() {
    SysTime t = now();
    std::map<std::string, ObjectPtr> nodes;
    bool tainted = false;
    for (const ObjectPtr& n : store().List(Nodes(), "")) {
      nodes[Str(*n, {"metadata", "name"})] = n;
      tainted |= !NoExecuteTaints(*n).empty();
    }
    // Unreachable nodes always carry a NoExecute taint: without one there is nothing to do.
    if (!tainted) {
      evictions.clear();
      return;
    }
    std::map<std::string, SysTime> still_due;
    std::optional<SysTime> next;
    auto wake_at = [&](SysTime due) {
      if (!next || due < *next) next = due;
    };
    for (const ObjectPtr& pod : store().List(Pods(), "")) {
      const json& p = *pod;
      auto node = nodes.find(Str(p, {"spec", "nodeName"}));
      if (node == nodes.end() || Terminal(p)) continue;
      std::string ns = Str(p, {"metadata", "namespace"});
      std::string name = Str(p, {"metadata", "name"});
      if (const json* deleting = Find(p, {"metadata", "deletionTimestamp"})) {
        // PodGC: the kubelet that would finish this deletion is gone.
        if (!Unreachable(*node->second)) continue;
        auto at = ParseRfc3339(deleting->is_string() ? deleting->get<std::string>() : "");
        if (at && *at > t) {
          wake_at(*at);
          continue;
        }
        ForceDelete(ns, name);
        continue;
      }
      std::vector<json> taints = NoExecuteTaints(*node->second);
      if (taints.empty()) continue;
      std::optional<std::chrono::seconds> stay = TolerationTime(p, taints);
      if (!stay) continue;
      std::string uid = Str(p, {"metadata", "uid"});
      SysTime due = t + *stay;
      if (auto it = evictions.find(uid); it != evictions.end()) due = std::min(due, it->second);
      if (due > t) {
        still_due[uid] = due;
        wake_at(due);
        continue;
      }
      Evict(p);
    }
    evictions = std::move(still_due);
    if (timers && next) {
      timer.expires_after(
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(*next - t) +
          std::chrono::milliseconds(1));
      timer.async_wait([this](boost::system::error_code ec) {
        if (!ec) Post();
      });
    }
  }

  // The taint eviction controller's addConditionAndDeletePod.
  void Evict(const json& pod) {
    std::string ns = Str(pod, {"metadata", "namespace"});
    std::string name = Str(pod, {"metadata", "name"});
    std::string t = Rfc3339(now());
    auto updated = registry.Mutate(Pods(), ns, name, [&](json& p) {
      json& conds = p["status"]["conditions"];
      if (!conds.is_array()) conds = json::array();
      json cond = {{"type", "DisruptionTarget"},
                   {"status", "True"},
                   {"lastProbeTime", nullptr},
                   {"lastTransitionTime", t},
                   {"reason", "DeletionByTaintManager"},
                   {"message", "Taint manager: deleting due to NoExecute taint"}};
      for (json& c : conds) {
        if (c.value("type", "") == "DisruptionTarget") {
          c = cond;
          return;
        }
      }
      conds.push_back(cond);
    });
    if (!updated) return;
    registry.RecordEvent(**updated, "Normal", "TaintManagerEviction",
                         "Marking for deletion Pod " + ns + "/" + name,
                         "taint-eviction-controller");
    (void)registry.Delete(Pods(), ns, name, DeleteOptions{});
  }

  // PodGC's markFailedAndDeletePodWithCondition as for a terminating pod on an out-of-service
  // node: phase Failed (no condition of its own; the taint manager's DisruptionTarget stays),
  // then a delete with grace period 0.
  void ForceDelete(const std::string& ns, const std::string& name) {
    (void)registry.Mutate(Pods(), ns, name, [](json& p) { p["status"]["phase"] = "Failed"; });
    DeleteOptions force;
    force.grace_period_seconds = 0;
    (void)registry.Delete(Pods(), ns, name, force);
  }
};

NodeLifecycleController::NodeLifecycleController(net::io_context& io, Registry& registry,
                                                 std::function<SysTime()> now, bool timers)
    : impl_(std::make_unique<Impl>(io, registry, std::move(now), timers)) {}

NodeLifecycleController::~NodeLifecycleController() = default;

void NodeLifecycleController::Start() {
  impl_->store().Subscribe([impl = impl_.get()](const StoreEvent& e) {
    if (e.resource == &Nodes() || e.resource == &Pods()) impl->Post();
  });
}

ApiResult<ObjectPtr> NodeLifecycleController::SetNotReady(const std::string& node) {
  return impl_->SetNotReady(node);
}

ApiResult<ObjectPtr> NodeLifecycleController::SetReady(const std::string& node) {
  return impl_->SetReady(node);
}

void NodeLifecycleController::Wake() { impl_->Post(); }

}  // namespace kiln::kubesim
