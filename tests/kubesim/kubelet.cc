#include "tests/kubesim/kubelet.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <set>

#include "dag/duration.h"
#include "tests/kubesim/node_lifecycle.h"

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;

SysTime Now() { return std::chrono::system_clock::now(); }

std::string Annotation(const json& pod, const char* key) {
  const json* a = Find(pod, {"metadata", "annotations"});
  if (!a || !a->is_object()) return "";
  auto it = a->find(key);
  return it != a->end() && it->is_string() ? it->get<std::string>() : "";
}

json Condition(const char* type, bool status, const std::string& now, const char* reason = nullptr) {
  json c = {{"type", type}, {"status", status ? "True" : "False"}, {"lastProbeTime", nullptr},
            {"lastTransitionTime", now}};
  if (reason) c["reason"] = reason;
  return c;
}

bool Terminal(const json& pod) {
  std::string phase = Str(pod, {"status", "phase"});
  return phase == "Succeeded" || phase == "Failed";
}

}  // namespace

struct Kubelet::Impl {
  Impl(net::io_context& io_context, Registry& reg) : io(io_context), registry(reg) {}

  net::io_context& io;
  Registry& registry;
  std::set<std::string> queue;  // "ns/name"
  bool scheduled = false;
  std::map<std::string, std::unique_ptr<net::steady_timer>> timers;  // by pod uid
  std::map<std::string, std::map<std::string, ContainerLog>> logs;   // by pod uid, container
  std::map<std::string, std::string> started_at;                     // by pod uid
  // Lines a container has yet to write, and the timer of the next: by pod uid.
  struct PendingLog {
    std::vector<std::string> lines;  // written to every container of the pod
    size_t next = 0;
    std::chrono::nanoseconds step{0};
    std::unique_ptr<net::steady_timer> timer;
  };
  std::map<std::string, PendingLog> pending_logs;
  std::map<int, LogListener> log_listeners;
  int next_listener = 1;
  uint32_t next_ip = 0;

  Store& store() { return registry.store(); }

  void Enqueue(const json& pod) {
    queue.insert(Store::Key(Str(pod, {"metadata", "namespace"}), Str(pod, {"metadata", "name"})));
    if (scheduled) return;
    scheduled = true;
    net::post(io, [this] { Drain(); });
  }

  void Drain() {
    scheduled = false;
    auto keys = std::move(queue);
    queue.clear();
    for (const std::string& key : keys) {
      size_t slash = key.find('/');
      Sync(key.substr(0, slash), key.substr(slash + 1));
    }
  }

  void Forget(const std::string& uid) {
    timers.erase(uid);
    pending_logs.erase(uid);
    logs.erase(uid);
    started_at.erase(uid);
  }

  void Sync(const std::string& ns, const std::string& name) {
    ObjectPtr pod = store().Get(Pods(), ns, name);
    if (!pod) return;
    const json& p = *pod;
    std::string uid = Str(p, {"metadata", "uid"});
    std::string node = Str(p, {"spec", "nodeName"});
    if (node.empty()) return;
    if (ObjectPtr n = store().Get(Nodes(), "", node); n && KubeletGone(*n)) {
      // This node's kubelet is gone (node_lifecycle.h): its containers stop and it writes
      // nothing more; the control plane finishes the pod.
      timers.erase(uid);
      pending_logs.erase(uid);
      return;
    }
    if (Find(p, {"metadata", "deletionTimestamp"})) {
      if (Int(p, {"metadata", "deletionGracePeriodSeconds"}, 0) == 0) return;
      if (!Terminal(p)) Kill(p);
      timers.erase(uid);
      DeleteOptions now;
      now.grace_period_seconds = 0;
      (void)registry.Delete(Pods(), ns, name, now);
      return;
    }
    if (Str(p, {"status", "phase"}) == "Pending" && !timers.count(uid)) {
      StartContainers(p);
    } else if (Annotation(p, kExitNowAnnotation) == "true" && timers.count(uid) &&
               Str(p, {"status", "phase"}) == "Running") {
      timers.erase(uid);
      Exit(ns, name, uid);
    }
  }

  // Appends the pod's next `count` pending lines (all when npos) to each container's log.
  void WriteLines(const std::string& uid, size_t count) {
    auto it = pending_logs.find(uid);
    if (it == pending_logs.end()) return;
    PendingLog& p = it->second;
    size_t end = count == std::string::npos ? p.lines.size() : std::min(p.lines.size(), p.next + count);
    if (end <= p.next) return;
    SysTime t = Now();
    for (auto& [container, log] : logs[uid]) {
      for (size_t i = p.next; i < end; ++i) log.lines.emplace_back(t, p.lines[i]);
    }
    p.next = end;
    if (p.next >= p.lines.size()) pending_logs.erase(it);
    auto listeners = log_listeners;  // a listener may remove itself
    for (auto& [id, listener] : listeners) listener(uid);
  }

  // The next pending line of the pod after its interval.
  void ScheduleLine(const std::string& uid) {
    auto it = pending_logs.find(uid);
    if (it == pending_logs.end()) return;
    it->second.timer = std::make_unique<net::steady_timer>(io);
    it->second.timer->expires_after(it->second.step);
    it->second.timer->async_wait([this, uid](boost::system::error_code ec) {
      if (ec) return;
      WriteLines(uid, 1);
      ScheduleLine(uid);
    });
  }

  std::string PodIp() {
    ++next_ip;
    return "10.244." + std::to_string((next_ip / 250) % 250) + "." + std::to_string(next_ip % 250 + 2);
  }

  void StartContainers(const json& pod) {
    std::string uid = Str(pod, {"metadata", "uid"});
    std::string ns = Str(pod, {"metadata", "namespace"});
    std::string name = Str(pod, {"metadata", "name"});
    std::string now = Rfc3339(Now());
    started_at[uid] = now;
    std::string text = Annotation(pod, kLogsAnnotation);
    auto& pod_logs = logs[uid];
    const json& containers = pod["spec"]["containers"];
    for (const json& c : containers) pod_logs[c.value("name", "")].lines.clear();
    // The lines, spread over the duration: line i at i * duration / n.
    PendingLog pending;
    for (size_t start = 0; start < text.size();) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      pending.lines.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    std::chrono::nanoseconds duration = DurationOf(pod);
    if (!pending.lines.empty()) {
      pending.step = duration / static_cast<int64_t>(pending.lines.size());
      pending_logs[uid] = std::move(pending);
      WriteLines(uid, duration.count() > 0 ? 1 : std::string::npos);
      ScheduleLine(uid);
    }
    std::string ip = PodIp();
    (void)registry.Mutate(Pods(), ns, name, [&](json& p) {
      json& status = p["status"];
      status["phase"] = "Running";
      status["hostIP"] = "192.168.0.1";
      status["hostIPs"] = {{{"ip", "192.168.0.1"}}};
      status["podIP"] = ip;
      status["podIPs"] = {{{"ip", ip}}};
      status["startTime"] = now;
      status["conditions"] = {Condition("PodReadyToStartContainers", true, now),
                              Condition("Initialized", true, now), Condition("Ready", true, now),
                              Condition("ContainersReady", true, now),
                              Condition("PodScheduled", true, now)};
      json statuses = json::array();
      for (const json& c : p["spec"]["containers"]) {
        statuses.push_back(RunningStatus(c, now, 0));
      }
      status["containerStatuses"] = statuses;
    });
    for (const json& c : containers) {
      registry.RecordEvent(pod, "Normal", "Pulled",
                           "Container image \"" + c.value("image", "") + "\" already present on machine",
                           "kubelet", Str(pod, {"spec", "nodeName"}));
      registry.RecordEvent(pod, "Normal", "Created", "Created container: " + c.value("name", ""),
                           "kubelet", Str(pod, {"spec", "nodeName"}));
      registry.RecordEvent(pod, "Normal", "Started", "Started container " + c.value("name", ""),
                           "kubelet", Str(pod, {"spec", "nodeName"}));
    }
    ScheduleExit(pod);
  }

  static json RunningStatus(const json& c, const std::string& now, int64_t restarts) {
    std::string image = c.value("image", "");
    return {{"name", c.value("name", "")},
            {"state", {{"running", {{"startedAt", now}}}}},
            {"lastState", json::object()},
            {"ready", true},
            {"restartCount", restarts},
            {"image", image},
            {"imageID", "docker.io/library/" + image + "@sha256:" + std::string(64, '0')},
            {"containerID", "containerd://" + RandomHex(64)},
            {"started", true}};
  }

  static std::chrono::nanoseconds DurationOf(const json& pod) {
    std::chrono::nanoseconds duration{0};
    if (std::string d = Annotation(pod, kDurationAnnotation); !d.empty()) {
      if (auto parsed = dag::ParseGoDuration(d)) duration = *parsed;
    }
    return duration;
  }

  void ScheduleExit(const json& pod) {
    std::string uid = Str(pod, {"metadata", "uid"});
    std::chrono::nanoseconds duration = DurationOf(pod);
    auto timer = std::make_unique<net::steady_timer>(io);
    timer->expires_after(duration);
    timer->async_wait([this, uid, ns = Str(pod, {"metadata", "namespace"}),
                       name = Str(pod, {"metadata", "name"})](boost::system::error_code ec) {
      if (ec) return;
      Exit(ns, name, uid);
    });
    timers[uid] = std::move(timer);
  }

  // The containers' processes end with the scripted exit code.
  void Exit(const std::string& ns, const std::string& name, const std::string& uid) {
    ObjectPtr pod = store().Get(Pods(), ns, name);
    if (!pod || Str(*pod, {"metadata", "uid"}) != uid || Terminal(*pod)) return;
    WriteLines(uid, std::string::npos);  // a container's whole log is written before it exits
    int exit_code = 0;
    if (std::string e = Annotation(*pod, kExitCodeAnnotation); !e.empty()) {
      try {
        exit_code = std::stoi(e);
      } catch (const std::exception&) {
        exit_code = 1;
      }
    }
    std::string policy = Str(*pod, {"spec", "restartPolicy"}, "Always");
    bool restart = policy == "Always" || (policy == "OnFailure" && exit_code != 0);
    std::string message = Annotation(*pod, kMessageAnnotation);
    std::string now = Rfc3339(Now());
    std::string started = started_at[uid];
    (void)registry.Mutate(Pods(), ns, name, [&](json& p) {
      json& status = p["status"];
      for (json& cs : status["containerStatuses"]) {
        std::string msg = message;
        if (msg.empty() && exit_code != 0) msg = FallbackMessage(p, uid, cs.value("name", ""));
        json terminated = {{"exitCode", exit_code},
                           {"reason", exit_code == 0 ? "Completed" : "Error"},
                           {"startedAt", started},
                           {"finishedAt", now},
                           {"containerID", cs.value("containerID", "")}};
        if (!msg.empty()) terminated["message"] = msg;
        if (restart) {
          json fresh = RunningStatus(json{{"name", cs["name"]}, {"image", cs["image"]}}, now,
                                     cs.value("restartCount", 0) + 1);
          fresh["lastState"] = {{"terminated", terminated}};
          cs = fresh;
        } else {
          cs["state"] = {{"terminated", terminated}};
          cs["ready"] = false;
          cs["started"] = false;
        }
      }
      if (restart) return;
      bool ok = exit_code == 0;
      status["phase"] = ok ? "Succeeded" : "Failed";
      const char* reason = ok ? "PodCompleted" : "PodFailed";
      status["conditions"] = {Condition("PodReadyToStartContainers", false, now),
                              Condition("Initialized", true, started, "PodCompleted"),
                              Condition("Ready", false, now, reason),
                              Condition("ContainersReady", false, now, reason),
                              Condition("PodScheduled", true, started)};
    });
    timers.erase(uid);
    if (restart) {
      started_at[uid] = now;
      if (ObjectPtr again = store().Get(Pods(), ns, name)) ScheduleExit(*again);
    }
  }

  // terminationMessagePolicy FallbackToLogsOnError: the last 80 lines / 2048 bytes of the log.
  std::string FallbackMessage(const json& pod, const std::string& uid, const std::string& container) {
    const json* cs = Find(pod, {"spec", "containers"});
    bool fallback = false;
    if (cs && cs->is_array()) {
      for (const json& c : *cs) {
        if (c.value("name", "") == container) {
          fallback = c.value("terminationMessagePolicy", "") == "FallbackToLogsOnError";
        }
      }
    }
    if (!fallback) return "";
    auto it = logs.find(uid);
    if (it == logs.end() || !it->second.count(container)) return "";
    const auto& lines = it->second[container].lines;
    std::string out;
    size_t start = lines.size() > 80 ? lines.size() - 80 : 0;
    for (size_t i = start; i < lines.size(); ++i) out += lines[i].second + "\n";
    if (out.size() > 2048) out = out.substr(out.size() - 2048);
    return out;
  }

  // Graceful deletion of a running pod: the containers are killed (SIGKILL after the grace
  // period is what a simulated process "gets"), and the pod ends Failed.
  void Kill(const json& pod) {
    std::string now = Rfc3339(Now());
    std::string uid = Str(pod, {"metadata", "uid"});
    pending_logs.erase(uid);  // a killed process writes no more
    std::string started = started_at.count(uid) ? started_at[uid] : now;
    (void)registry.Mutate(Pods(), Str(pod, {"metadata", "namespace"}), Str(pod, {"metadata", "name"}),
                          [&](json& p) {
                            json& status = p["status"];
                            if (status.contains("containerStatuses")) {
                              for (json& cs : status["containerStatuses"]) {
                                if (!Find(cs, {"state", "running"})) continue;
                                cs["state"] = {{"terminated",
                                                {{"exitCode", 137},
                                                 {"reason", "Error"},
                                                 {"startedAt", started},
                                                 {"finishedAt", now},
                                                 {"containerID", cs.value("containerID", "")}}}};
                                cs["ready"] = false;
                                cs["started"] = false;
                              }
                            }
                            status["phase"] = "Failed";
                            status["conditions"] = {
                                Condition("PodReadyToStartContainers", false, now),
                                Condition("Initialized", true, started),
                                Condition("Ready", false, now, "PodFailed"),
                                Condition("ContainersReady", false, now, "PodFailed"),
                                Condition("PodScheduled", true, started)};
                          });
  }
};

Kubelet::Kubelet(net::io_context& io, Registry& registry)
    : impl_(std::make_unique<Impl>(io, registry)) {}

Kubelet::~Kubelet() = default;

void Kubelet::Start() {
  impl_->store().Subscribe([impl = impl_.get()](const StoreEvent& e) {
    if (e.resource != &Pods()) return;
    if (e.type == EventType::kDeleted) {
      impl->Forget(Str(*e.object, {"metadata", "uid"}));
      return;
    }
    if (!Str(*e.object, {"spec", "nodeName"}).empty()) impl->Enqueue(*e.object);
  });
}

int Kubelet::AddLogListener(LogListener listener) const {
  int id = impl_->next_listener++;
  impl_->log_listeners[id] = std::move(listener);
  return id;
}

void Kubelet::RemoveLogListener(int id) const { impl_->log_listeners.erase(id); }

const ContainerLog* Kubelet::Log(const std::string& pod_uid, const std::string& container) const {
  auto it = impl_->logs.find(pod_uid);
  if (it == impl_->logs.end()) return nullptr;
  auto c = it->second.find(container);
  return c == it->second.end() ? nullptr : &c->second;
}

}  // namespace kiln::kubesim
