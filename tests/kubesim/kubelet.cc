#include "tests/kubesim/kubelet.h"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <expected>
#include <filesystem>
#include <fstream>
#include <set>

#include "dag/duration.h"
#include "executor/process.h"
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

json TerminatedState(int exit_code, const std::string& reason, const std::string& message,
                     const std::string& started, const std::string& finished,
                     const std::string& container_id) {
  json t = {{"exitCode", exit_code},   {"reason", reason},        {"startedAt", started},
            {"finishedAt", finished}, {"containerID", container_id}};
  if (!message.empty()) t["message"] = message;
  return t;
}

// Phase and conditions once every container has terminated for good: Succeeded when all exited 0.
void EndPod(json& status, const std::string& now, const std::string& started) {
  bool ok = true;
  for (const json& cs : status["containerStatuses"]) {
    ok = ok && Int(cs, {"state", "terminated", "exitCode"}, 1) == 0;
  }
  status["phase"] = ok ? "Succeeded" : "Failed";
  const char* reason = ok ? "PodCompleted" : "PodFailed";
  status["conditions"] = {Condition("PodReadyToStartContainers", false, now),
                          Condition("Initialized", true, started, "PodCompleted"),
                          Condition("Ready", false, now, reason),
                          Condition("ContainersReady", false, now, reason),
                          Condition("PodScheduled", true, started)};
}

bool AllTerminated(const json& status) {
  const json* statuses = Find(status, {"containerStatuses"});
  if (!statuses || !statuses->is_array()) return false;
  for (const json& cs : *statuses) {
    if (!Find(cs, {"state", "terminated"})) return false;
  }
  return true;
}

bool HasCommand(const json& c) {
  for (const char* key : {"command", "args"}) {
    if (c.contains(key) && c[key].is_array() && !c[key].empty()) return true;
  }
  return false;
}

// Kubernetes' $(VAR) references: replaced when VAR is defined, kept as written otherwise;
// $$ is a literal $.
std::string Expand(const std::string& text, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 >= text.size()) {
      out += text[i];
    } else if (text[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (size_t close = text.find(')', i + 2); text[i + 1] == '(' && close != std::string::npos) {
      auto it = env.find(text.substr(i + 2, close - i - 2));
      out += it != env.end() ? it->second : text.substr(i, close - i + 1);
      i = close;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string Base64Decode(const std::string& in) {
  std::string out(boost::beast::detail::base64::decoded_size(in.size()), '\0');
  out.resize(boost::beast::detail::base64::decode(out.data(), in.data(), in.size()).first);
  return out;
}

// The value of `key` in a ConfigMap's data, or a Secret's data (base64) or stringData.
std::optional<std::string> DataValue(const json& obj, const std::string& key, bool secret) {
  const json* data = Find(obj, {"data"});
  if (data && data->is_object() && data->contains(key) && (*data)[key].is_string()) {
    std::string v = (*data)[key].get<std::string>();
    return secret ? Base64Decode(v) : v;
  }
  data = Find(obj, {"stringData"});
  if (secret && data && data->is_object() && data->contains(key) && (*data)[key].is_string()) {
    return (*data)[key].get<std::string>();
  }
  return std::nullopt;
}

// The keys DataValue can read.
std::vector<std::string> DataKeys(const json& obj, bool secret) {
  std::vector<std::string> keys;
  for (const char* field : {"data", "stringData"}) {
    const json* data = Find(obj, {field});
    if (!data || !data->is_object() || (!secret && std::string_view(field) == "stringData")) continue;
    for (const auto& [key, v] : data->items()) keys.push_back(key);
  }
  return keys;
}

// The value at a fieldRef's fieldPath (metadata.labels['app'] included), or nullopt for a path
// kubesim does not know.
std::optional<std::string> FieldValue(const json& pod, const std::string& path, const std::string& pod_ip) {
  if (path == "metadata.name") return Str(pod, {"metadata", "name"});
  if (path == "metadata.namespace") return Str(pod, {"metadata", "namespace"});
  if (path == "metadata.uid") return Str(pod, {"metadata", "uid"});
  if (path == "spec.nodeName") return Str(pod, {"spec", "nodeName"});
  if (path == "spec.serviceAccountName") return Str(pod, {"spec", "serviceAccountName"}, "default");
  if (path == "status.podIP") return pod_ip;
  if (path == "status.hostIP") return std::string("192.168.0.1");
  for (const char* map : {"labels", "annotations"}) {
    std::string prefix = std::string("metadata.") + map + "['";
    if (path.starts_with(prefix) && path.ends_with("']")) {
      return Str(pod, {"metadata", map, path.substr(prefix.size(), path.size() - prefix.size() - 2)});
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<KubeletMode> ParseKubeletMode(std::string_view text) {
  if (text == "auto") return KubeletMode::kAuto;
  if (text == "simulate") return KubeletMode::kSimulate;
  if (text == "process") return KubeletMode::kProcess;
  return std::nullopt;
}

struct Kubelet::Impl {
  Impl(net::io_context& io_context, Registry& reg, KubeletOptions opts)
      : io(io_context), registry(reg), options(opts), runner(std::in_place, io_context) {}
  ~Impl() {
    runner.reset();  // the processes die before their files go
    std::error_code ec;
    if (!scratch.empty()) std::filesystem::remove_all(scratch, ec);
  }

  net::io_context& io;
  Registry& registry;
  KubeletOptions options;
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

  // A container run as a process.
  struct Process {
    json spec;                       // the container
    executor::ProcessId id = 0;
    bool running = false;
    std::string started_at;
    std::string message_file;        // bound at terminationMessagePath
    std::string partial[2];          // stdout, stderr: the unfinished last line
    executor::Sandbox sandbox;
    std::map<std::string, std::string> env;
  };
  // The processes of a pod: by pod uid.
  struct PodProcesses {
    std::string ns;
    std::string name;
    std::string dir;  // scratch: emptyDir volumes, each container's /tmp and message file
    std::map<std::string, Process> containers;
    bool stopping = false;  // deleted or told to exit now: no restarts
    bool gone = false;      // the node's kubelet is gone: its processes were killed, unreported
  };
  std::map<std::string, PodProcesses> processes;
  std::string scratch;  // made on the first process pod; removed with the kubelet
  std::optional<executor::ProcessRunner> runner;

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
    auto it = processes.find(uid);
    if (it == processes.end()) return;
    for (auto& [name, c] : it->second.containers) {
      if (c.running) runner->Terminate(c.id, std::chrono::milliseconds(0));
    }
    std::error_code ec;
    std::filesystem::remove_all(it->second.dir, ec);
    processes.erase(it);
  }

  bool RunsProcesses(const json& pod) const {
    if (options.mode == KubeletMode::kSimulate) return false;
    bool command = false;
    if (const json* cs = Find(pod, {"spec", "containers"}); cs && cs->is_array()) {
      for (const json& c : *cs) command = command || HasCommand(c);
    }
    if (!command || options.mode == KubeletMode::kProcess) return command;
    for (const char* key : {kDurationAnnotation, kExitCodeAnnotation, kLogsAnnotation, kMessageAnnotation}) {
      if (const json* a = Find(pod, {"metadata", "annotations"}); a && a->is_object() && a->contains(key)) {
        return false;
      }
    }
    return true;
  }

  void Sync(const std::string& ns, const std::string& name) {
    ObjectPtr pod = store().Get(Pods(), ns, name);
    if (!pod) return;
    const json& p = *pod;
    std::string uid = Str(p, {"metadata", "uid"});
    std::string node = Str(p, {"spec", "nodeName"});
    if (node.empty()) return;
    auto procs = processes.find(uid);
    if (ObjectPtr n = store().Get(Nodes(), "", node); n && KubeletGone(*n)) {
      // This node's kubelet is gone (node_lifecycle.h): its containers stop and it writes
      // nothing more; the control plane finishes the pod.
      timers.erase(uid);
      pending_logs.erase(uid);
      if (procs != processes.end() && !procs->second.gone) {
        procs->second.gone = true;
        procs->second.stopping = true;
        for (auto& [name, c] : procs->second.containers) {
          if (c.running) runner->Terminate(c.id, std::chrono::milliseconds(0));
        }
      }
      return;
    }
    if (Find(p, {"metadata", "deletionTimestamp"})) {
      int64_t grace = Int(p, {"metadata", "deletionGracePeriodSeconds"}, 0);
      if (grace == 0) return;
      if (procs != processes.end() && !Terminal(p) && AnyRunning(procs->second)) {
        // The pod is removed once its processes are gone and their ends are written.
        return StopProcesses(uid, std::chrono::seconds(grace));
      }
      if (!Terminal(p)) Kill(p);
      timers.erase(uid);
      DeleteOptions now;
      now.grace_period_seconds = 0;
      (void)registry.Delete(Pods(), ns, name, now);
      return;
    }
    if (Str(p, {"status", "phase"}) == "Pending" && !timers.count(uid) && procs == processes.end()) {
      StartContainers(p);
    } else if (Annotation(p, kExitNowAnnotation) == "true" && Str(p, {"status", "phase"}) == "Running") {
      if (procs != processes.end()) {
        StopProcesses(uid, std::chrono::seconds(Int(p, {"spec", "terminationGracePeriodSeconds"}, 30)));
      } else if (timers.count(uid)) {
        timers.erase(uid);
        Exit(ns, name, uid);
      }
    }
  }

  void NotifyLog(const std::string& uid) {
    auto listeners = log_listeners;  // a listener may remove itself
    for (auto& [id, listener] : listeners) listener(uid);
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
    NotifyLog(uid);
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
    std::string ip = PodIp();
    bool real = RunsProcesses(pod);
    // A process pod whose environment cannot be built starts no container.
    std::map<std::string, std::map<std::string, std::string>> envs;
    std::map<std::string, std::string> config_errors;
    if (real) {
      for (const json& c : pod["spec"]["containers"]) {
        auto env = ContainerEnv(pod, c, ip);
        if (env) {
          envs[c.value("name", "")] = std::move(*env);
        } else {
          config_errors[c.value("name", "")] = env.error();
        }
      }
      if (!config_errors.empty()) return FailConfig(pod, config_errors);
    }
    started_at[uid] = now;
    auto& pod_logs = logs[uid];
    const json& containers = pod["spec"]["containers"];
    for (const json& c : containers) pod_logs[c.value("name", "")].lines.clear();
    if (!real) StartLog(pod);
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
    if (real) {
      StartProcesses(pod, envs);
    } else {
      ScheduleExit(pod);
    }
  }

  // The simulated log: the annotation's lines, spread over the duration (line i at
  // i * duration / n).
  void StartLog(const json& pod) {
    std::string uid = Str(pod, {"metadata", "uid"});
    std::string text = Annotation(pod, kLogsAnnotation);
    PendingLog pending;
    for (size_t start = 0; start < text.size();) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      pending.lines.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    if (pending.lines.empty()) return;
    std::chrono::nanoseconds duration = DurationOf(pod);
    pending.step = duration / static_cast<int64_t>(pending.lines.size());
    pending_logs[uid] = std::move(pending);
    WriteLines(uid, duration.count() > 0 ? 1 : std::string::npos);
    ScheduleLine(uid);
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

  // Writes the end of container `cs` (a containerStatuses entry): terminated, or restarted in
  // place with the end as lastState. Returns whether it restarted.
  static bool EndContainer(json& cs, json terminated, bool restart, const std::string& now) {
    if (restart) {
      json fresh = RunningStatus(json{{"name", cs["name"]}, {"image", cs["image"]}}, now,
                                 cs.value("restartCount", 0) + 1);
      fresh["lastState"] = {{"terminated", std::move(terminated)}};
      cs = std::move(fresh);
      return true;
    }
    cs["state"] = {{"terminated", std::move(terminated)}};
    cs["ready"] = false;
    cs["started"] = false;
    return false;
  }

  static bool Restarts(const json& pod, int exit_code) {
    std::string policy = Str(pod, {"spec", "restartPolicy"}, "Always");
    return policy == "Always" || (policy == "OnFailure" && exit_code != 0);
  }

  // The containers' simulated processes end with the scripted exit code.
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
    bool restart = Restarts(*pod, exit_code);
    std::string message = Annotation(*pod, kMessageAnnotation);
    std::string now = Rfc3339(Now());
    std::string started = started_at[uid];
    (void)registry.Mutate(Pods(), ns, name, [&](json& p) {
      json& status = p["status"];
      for (json& cs : status["containerStatuses"]) {
        std::string msg = message;
        if (msg.empty() && exit_code != 0) msg = FallbackMessage(p, uid, cs.value("name", ""));
        EndContainer(cs,
                     TerminatedState(exit_code, exit_code == 0 ? "Completed" : "Error", msg, started, now,
                                     cs.value("containerID", "")),
                     restart, now);
      }
      if (!restart) EndPod(status, now, started);
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

  // Graceful deletion of a running simulated pod: the containers are killed (SIGKILL after the
  // grace period is what a simulated process "gets"), and the pod ends Failed.
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
                                EndContainer(cs,
                                             TerminatedState(137, "Error", "", started, now,
                                                             cs.value("containerID", "")),
                                             false, now);
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

  // --- Containers run as processes ---

  // The container's environment as Kubernetes builds it (envFrom, then env, with $(VAR)
  // references to earlier variables), or the CreateContainerConfigError message.
  std::expected<std::map<std::string, std::string>, std::string> ContainerEnv(const json& pod, const json& c,
                                                                              const std::string& ip) {
    std::string ns = Str(pod, {"metadata", "namespace"});
    // The host is the image, so the image's PATH is kubesim's own (as the local executor's).
    const char* host_path = std::getenv("PATH");
    std::map<std::string, std::string> env = {
        {"PATH", host_path && *host_path ? host_path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        {"HOSTNAME", Str(pod, {"metadata", "name"})},
        {"HOME", "/root"}};
    auto source = [&](const json& ref, bool secret) -> std::expected<ObjectPtr, std::string> {
      std::string name = ref.value("name", "");
      ObjectPtr obj = store().Get(*FindResource("", "v1", secret ? "secrets" : "configmaps"), ns, name);
      if (!obj && !ref.value("optional", false)) {
        return std::unexpected(std::string(secret ? "secret" : "configmap") + " \"" + name + "\" not found");
      }
      return obj;
    };
    if (const json* from = Find(c, {"envFrom"}); from && from->is_array()) {
      for (const json& f : *from) {
        bool secret = f.contains("secretRef");
        const json& ref = secret ? f["secretRef"] : f.value("configMapRef", json::object());
        auto obj = source(ref, secret);
        if (!obj) return std::unexpected(obj.error());
        if (!*obj) continue;
        std::string prefix = f.value("prefix", "");
        for (const std::string& key : DataKeys(**obj, secret)) {
          if (auto value = DataValue(**obj, key, secret)) env[prefix + key] = *value;
        }
      }
    }
    if (const json* vars = Find(c, {"env"}); vars && vars->is_array()) {
      for (const json& e : *vars) {
        std::string name = e.value("name", "");
        if (e.contains("value") && e["value"].is_string()) {
          env[name] = Expand(e["value"].get<std::string>(), env);
          continue;
        }
        const json* from = Find(e, {"valueFrom"});
        if (!from) {
          env[name] = "";
          continue;
        }
        if (const json* field = Find(*from, {"fieldRef"})) {
          if (auto v = FieldValue(pod, field->value("fieldPath", ""), ip)) env[name] = *v;
          continue;
        }
        bool secret = from->contains("secretKeyRef");
        const json* ref = Find(*from, {secret ? "secretKeyRef" : "configMapKeyRef"});
        if (!ref) continue;
        auto obj = source(*ref, secret);
        if (!obj) return std::unexpected(obj.error());
        if (!*obj) continue;
        std::string key = ref->value("key", "");
        if (auto v = DataValue(**obj, key, secret)) {
          env[name] = *v;
        } else if (!ref->value("optional", false)) {
          return std::unexpected("couldn't find key " + key + " in " + (secret ? "Secret " : "ConfigMap ") + ns +
                                 "/" + ref->value("name", ""));
        }
      }
    }
    return env;
  }

  // A container whose environment cannot be built waits (the pod stays Pending), as with
  // Kubernetes' CreateContainerConfigError; kubesim does not retry it.
  void FailConfig(const json& pod, const std::map<std::string, std::string>& errors) {
    std::string uid = Str(pod, {"metadata", "uid"});
    processes[uid];  // marks the pod as handled: Sync starts it no more
    std::string now = Rfc3339(Now());
    (void)registry.Mutate(Pods(), Str(pod, {"metadata", "namespace"}), Str(pod, {"metadata", "name"}),
                          [&](json& p) {
                            json& status = p["status"];
                            status["startTime"] = now;
                            json statuses = json::array();
                            for (const json& c : p["spec"]["containers"]) {
                              std::string name = c.value("name", "");
                              json waiting = {{"reason", "ContainerCreating"}};
                              if (auto it = errors.find(name); it != errors.end()) {
                                waiting = {{"reason", "CreateContainerConfigError"}, {"message", it->second}};
                              }
                              statuses.push_back({{"name", name},
                                                  {"state", {{"waiting", waiting}}},
                                                  {"lastState", json::object()},
                                                  {"ready", false},
                                                  {"restartCount", 0},
                                                  {"image", c.value("image", "")},
                                                  {"imageID", ""},
                                                  {"started", false}});
                            }
                            status["containerStatuses"] = statuses;
                          });
    for (const auto& [name, error] : errors) {
      registry.RecordEvent(pod, "Warning", "Failed", "Error: " + error, "kubelet", Str(pod, {"spec", "nodeName"}));
    }
  }

  void StartProcesses(const json& pod, std::map<std::string, std::map<std::string, std::string>>& envs) {
    std::string uid = Str(pod, {"metadata", "uid"});
    PodProcesses& run = processes[uid];
    run.ns = Str(pod, {"metadata", "namespace"});
    run.name = Str(pod, {"metadata", "name"});
    std::error_code ec;
    if (scratch.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path(ec) / "kubesim-kubelet-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) != nullptr) scratch = tmpl;
    }
    run.dir = scratch + "/" + uid;
    std::map<std::string, std::string> volumes;  // name -> host path: emptyDir, hostPath, PVCs
    std::set<std::string> read_only_volumes;
    if (const json* vs = Find(pod, {"spec", "volumes"}); vs && vs->is_array()) {
      for (const json& v : *vs) {
        std::string name = v.value("name", "");
        if (v.contains("emptyDir")) {
          volumes[name] = run.dir + "/volumes/" + name;
          std::filesystem::create_directories(volumes[name], ec);
        } else if (std::string host = Str(v, {"hostPath", "path"}); !host.empty()) {
          volumes[name] = host;
        } else if (std::string claim = Str(v, {"persistentVolumeClaim", "claimName"}); !claim.empty()) {
          std::string root = options.volume_dir.empty() ? scratch + "/persistent-volumes" : options.volume_dir;
          volumes[name] = root + "/" + run.ns + "/" + claim;
          std::filesystem::create_directories(volumes[name], ec);
          if (const json* ro = Find(v, {"persistentVolumeClaim", "readOnly"}); ro && ro->is_boolean() && ro->get<bool>()) {
            read_only_volumes.insert(name);
          }
        }
      }
    }
    std::string now = Rfc3339(Now());
    for (const json& c : pod["spec"]["containers"]) {
      std::string name = c.value("name", "");
      Process& proc = run.containers[name];
      proc.spec = c;
      executor::Sandbox sandbox;
      sandbox.tmp_dir_on_host = run.dir + "/" + name + "/tmp";
      // A container's root file system is writable (its own layer): /result.txt, /mnt/out.
      sandbox.root_dir_on_host = run.dir + "/" + name + "/root";
      proc.message_file = run.dir + "/" + name + "/termination-log";
      std::filesystem::create_directories(run.dir + "/" + name, ec);
      for (const std::string& dir : options.image_dirs) sandbox.binds.push_back({dir, dir, true});
      sandbox.binds.push_back({proc.message_file, c.value("terminationMessagePath", "/dev/termination-log")});
      if (const json* mounts = Find(c, {"volumeMounts"}); mounts && mounts->is_array()) {
        for (const json& m : *mounts) {
          auto v = volumes.find(m.value("name", ""));
          if (v != volumes.end()) {
            sandbox.binds.push_back({v->second, m.value("mountPath", ""),
                                     m.value("readOnly", false) || read_only_volumes.count(v->first) > 0});
          }
        }
      }
      proc.sandbox = std::move(sandbox);
      proc.env = std::move(envs[name]);
      StartProcess(uid, name, now);
    }
  }

  // Starts (or restarts) one container's process; its log and message file start empty.
  void StartProcess(const std::string& uid, const std::string& name, const std::string& now) {
    Process& proc = processes[uid].containers[name];
    const json& c = proc.spec;
    std::ofstream(proc.message_file, std::ios::trunc).flush();
    logs[uid][name].lines.clear();
    // A restarted container is a new container: its writable layer starts fresh.
    if (!proc.sandbox.root_dir_on_host.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(proc.sandbox.root_dir_on_host, ec);
    }
    executor::ProcessSpec spec;
    for (const char* key : {"command", "args"}) {
      if (!c.contains(key) || !c[key].is_array()) continue;
      for (const json& a : c[key]) spec.argv.push_back(Expand(a.is_string() ? a.get<std::string>() : a.dump(), proc.env));
    }
    spec.env = proc.env;
    // The image's WORKDIR, which kubesim's "image" (the host) does not have: "/", Docker's default.
    spec.working_dir = c.value("workingDir", "/");
    spec.result_cap_bytes = 0;
    spec.sandbox = proc.sandbox;
    spec.on_output = [this, uid, name](bool is_stdout, std::string_view data) {
      OnOutput(uid, name, is_stdout ? 0 : 1, data);
    };
    proc.running = true;
    proc.started_at = now;
    proc.id = runner->Start(std::move(spec), [this, uid, name](executor::ProcessResult r) {
      OnProcessExit(uid, name, std::move(r));
    });
  }

  Process* FindProcess(const std::string& uid, const std::string& name) {
    auto it = processes.find(uid);
    if (it == processes.end()) return nullptr;
    auto c = it->second.containers.find(name);
    return c == it->second.containers.end() ? nullptr : &c->second;
  }

  // Output becomes log lines as each line ends; a line longer than 16 KiB is split, as the
  // container runtime does.
  void OnOutput(const std::string& uid, const std::string& name, int stream, std::string_view data) {
    Process* proc = FindProcess(uid, name);
    if (!proc) return;
    constexpr size_t kMaxLine = 16 << 10;
    std::string& partial = proc->partial[stream];
    partial.append(data);
    auto& lines = logs[uid][name].lines;
    SysTime t = Now();
    size_t start = 0;
    bool added = false;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos || partial.size() - start >= kMaxLine;) {
      size_t end = nl == std::string::npos ? start + kMaxLine : std::min(nl, start + kMaxLine);
      lines.emplace_back(t, partial.substr(start, end - start));
      start = end == nl ? end + 1 : end;
      added = true;
    }
    partial.erase(0, start);
    if (added) NotifyLog(uid);
  }

  static std::string ReadMessage(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    // The kubelet keeps the last 4096 bytes of the file.
    const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : 0;
    in.seekg(size > 4096 ? size - 4096 : 0);
    std::string text(4096, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    return text;
  }

  void OnProcessExit(const std::string& uid, const std::string& name, executor::ProcessResult result) {
    Process* proc = FindProcess(uid, name);
    if (!proc) return;
    proc->running = false;
    auto& lines = logs[uid][name].lines;
    for (std::string& partial : proc->partial) {
      if (!partial.empty()) lines.emplace_back(Now(), std::move(partial));
      partial.clear();
    }
    NotifyLog(uid);
    PodProcesses& run = processes[uid];
    if (run.gone) return;
    ObjectPtr pod = store().Get(Pods(), run.ns, run.name);
    if (!pod || Str(*pod, {"metadata", "uid"}) != uid) return;
    // A command that never ran: containerd's StartError, exit code 128.
    int exit_code = result.start_error ? 128 : result.exit_code;
    std::string reason = result.start_error ? "StartError" : exit_code == 0 ? "Completed" : "Error";
    std::string message = result.start_error ? *result.start_error : ReadMessage(proc->message_file);
    if (message.empty() && exit_code != 0) message = FallbackMessage(*pod, uid, name);
    bool restart = !run.stopping && Restarts(*pod, exit_code);
    std::string now = Rfc3339(Now());
    std::string pod_started = started_at[uid];
    std::string started = proc->started_at;
    (void)registry.Mutate(Pods(), run.ns, run.name, [&](json& p) {
      json& status = p["status"];
      for (json& cs : status["containerStatuses"]) {
        if (cs.value("name", "") != name) continue;
        EndContainer(cs, TerminatedState(exit_code, reason, message, started, now, cs.value("containerID", "")),
                     restart, now);
      }
      if (AllTerminated(status)) EndPod(status, now, pod_started);
    });
    if (restart) StartProcess(uid, name, now);
  }

  static bool AnyRunning(const PodProcesses& run) {
    for (const auto& [name, c] : run.containers) {
      if (c.running) return true;
    }
    return false;
  }

  // SIGTERM to every process of the pod, SIGKILL after the grace period (capped).
  void StopProcesses(const std::string& uid, std::chrono::seconds grace) {
    PodProcesses& run = processes[uid];
    if (run.stopping) return;
    run.stopping = true;
    auto wait = std::min<std::chrono::milliseconds>(grace, options.max_grace);
    for (auto& [name, c] : run.containers) {
      if (c.running) runner->Terminate(c.id, wait);
    }
  }
};

Kubelet::Kubelet(net::io_context& io, Registry& registry, KubeletOptions options)
    : impl_(std::make_unique<Impl>(io, registry, options)) {}

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
