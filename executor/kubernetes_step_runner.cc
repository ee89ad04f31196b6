#include "executor/kubernetes_step_runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "dag/duration.h"
#include "executor/internal/step_log.h"
#include "executor/local_artifact_repository.h"

namespace kiln::executor {

namespace asio = boost::asio;
using asio::awaitable;
using nlohmann::json;

namespace {

// The condition of `type` with status True, or null.
const json* TrueCondition(const json& obj, std::string_view type) {
  if (!obj.contains("status") || !obj["status"].is_object()) return nullptr;
  const json& st = obj["status"];
  if (!st.contains("conditions") || !st["conditions"].is_array()) return nullptr;
  for (const json& c : st["conditions"]) {
    if (c.is_object() && c.value("type", "") == type && c.value("status", "") == "True") return &c;
  }
  return nullptr;
}

// The main container's status in `pod`, or null.
const json* MainStatus(const json& pod) {
  if (!pod.contains("status") || !pod["status"].contains("containerStatuses")) return nullptr;
  const json& list = pod["status"]["containerStatuses"];
  if (!list.is_array()) return nullptr;
  for (const json& c : list) {
    if (c.is_object() && c.value("name", "") == "main") return &c;
  }
  return list.empty() ? nullptr : &list[0];
}

// The pod of a PodList whose log a reader wants: the one whose main container runs, else the
// newest (creationTimestamp, then name). Null when there is none.
const json* PodToRead(const json& pods) {
  if (!pods.contains("items") || !pods["items"].is_array()) return nullptr;
  const json* newest = nullptr;
  auto key = [](const json& p) {
    return p["metadata"].value("creationTimestamp", "") + " " + p["metadata"].value("name", "");
  };
  for (const json& pod : pods["items"]) {
    if (!pod.is_object() || !pod.contains("metadata")) continue;
    const json* cs = MainStatus(pod);
    if (cs && cs->contains("state") && (*cs)["state"].contains("running")) return &pod;
    if (!newest || key(pod) > key(*newest)) newest = &pod;
  }
  return newest;
}

// Writes `text` to `path` so that it is complete or absent after a crash: a temporary file,
// fsync, rename, fsync of the directory.
Result<void> WriteDurably(const std::string& path, std::string_view text) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string tmp = path + ".tmp";
  auto failed = [&](const char* what) {
    return Error(Code::kUnavailable, std::string("cannot ") + what + " " + tmp + ": " + std::strerror(errno));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(failed("create"));
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error e = failed("write");
      ::close(fd);
      ::unlink(tmp.c_str());
      return std::unexpected(e);
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    Error e = failed("fsync");
    ::close(fd);
    ::unlink(tmp.c_str());
    return std::unexpected(e);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = failed("rename");
    ::unlink(tmp.c_str());
    return std::unexpected(e);
  }
  if (int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return {};
}

// A pod log read with timestamps=true ("<RFC3339Nano> <text>" lines) in the local executor's
// format ("<time> stdout <text>"; the API does not separate stdout from stderr).
void AppendPodLines(std::string_view body, const std::string& now, std::string& out) {
  while (!body.empty()) {
    size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    std::string_view stamp = now;
    size_t sp = line.find(' ');
    std::string_view first = line.substr(0, sp);
    if (sp != std::string_view::npos && first.size() >= 20 && first[4] == '-' && first.back() == 'Z') {
      stamp = first;
      line.remove_prefix(sp + 1);
    }
    out.append(stamp).append(" stdout ").append(line).append("\n");
  }
}

scheduler::StepFinished Ended(const std::string& node, bool error = false, std::string message = "") {
  scheduler::StepFinished f;
  f.node = node;
  f.error = error;
  f.message = std::move(message);
  return f;
}

// The termination message the agent stored in the artifact repository at `root` (see
// cli/exec.cc), its digest checked.
Result<std::string> ReadStoredOutputs(const std::string& root, scheduler::ArtifactRef ref) {
  if (root.empty()) {
    return MakeError(Code::kFailedPrecondition,
                     "the step's outputs were too large for its termination message and are in the artifact "
                     "repository (sha256 " + ref.sha256 + "), which this kiln does not see: run it with --artifact-pvc");
  }
  LocalArtifactRepository repo(root);
  ref.location = root + "/" + ref.sha256;
  std::error_code ec;
  const std::string temp = (std::filesystem::temp_directory_path(ec) / ("kiln-outputs-" + ref.sha256)).string();
  if (auto got = repo.Get(ref, temp); !got) {
    return MakeError(got.error().code(), "cannot read the step's outputs from the artifact repository: " +
                                             got.error().message());
  }
  std::ifstream in(temp, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(temp, ec);
  return text.str();
}

}  // namespace

awaitable<Result<void>> DeleteWorkflowJobs(kube::Client& client, std::string ns, std::string workflow_uid) {
  std::string target = "/apis/batch/v1/namespaces/" + ns + "/jobs?labelSelector=" +
                       kube::UrlEncode(std::string(kLabelWorkflowUid) + "=" + LabelValue(workflow_uid)) +
                       "&propagationPolicy=Background";
  auto r = co_await client.Call("DELETE", target);
  if (!r) co_return std::unexpected(r.error());
  if (r->status / 100 != 2) co_return std::unexpected(kube::ApiError("DELETE", target, *r));
  co_return co_await DeleteWorkflowClaims(client, std::move(ns), std::move(workflow_uid));
}

awaitable<Result<void>> DeleteWorkflowClaims(kube::Client& client, std::string ns, std::string workflow_uid) {
  std::string target = "/api/v1/namespaces/" + ns + "/persistentvolumeclaims?labelSelector=" +
                       kube::UrlEncode(std::string(kLabelWorkflowUid) + "=" + LabelValue(workflow_uid));
  auto r = co_await client.Call("DELETE", target);
  if (!r) co_return std::unexpected(r.error());
  if (r->status / 100 != 2) co_return std::unexpected(kube::ApiError("DELETE", target, *r));
  co_return Result<void>{};
}

awaitable<Result<void>> KubernetesStepRunner::EnsureClaims(const json& job) {
  const json* volumes = nullptr;
  if (auto* spec = job.contains("spec") ? &job["spec"] : nullptr; spec && spec->contains("template")) {
    const json& pod = (*spec)["template"];
    if (pod.contains("spec") && pod["spec"].contains("volumes")) volumes = &pod["spec"]["volumes"];
  }
  if (!volumes || !volumes->is_array() || (claims_.empty() && claims_error_.empty())) co_return Result<void>{};
  std::vector<std::string> wanted;
  for (const json& v : *volumes) {
    if (!v.contains("persistentVolumeClaim")) continue;
    std::string claim = v["persistentVolumeClaim"].value("claimName", "");
    if (!claims_error_.empty() && claim.starts_with(options_.job.workflow + "-")) {
      co_return MakeError(Code::kInvalidArgument, claims_error_);
    }
    if (claims_.count(claim) && !claims_made_.count(claim)) wanted.push_back(claim);
  }
  std::shared_ptr<bool> alive = alive_;
  const std::string path = "/api/v1/namespaces/" + options_.job.namespace_ + "/persistentvolumeclaims";
  for (const std::string& claim : wanted) {
    json body = claims_.at(claim);
    auto r = co_await client_.Call("POST", path, std::move(body));
    if (!*alive) co_return MakeError(Code::kUnavailable, "the runner is gone");
    if (!r) co_return MakeError(r.error().code(), "cannot create PersistentVolumeClaim " + claim + ": " + r.error().message());
    if (r->status / 100 != 2 && r->status != 409) {
      co_return MakeError(Code::kFailedPrecondition, "cannot create PersistentVolumeClaim " + claim + " (spec.volumeClaimTemplates): " +
                                                         kube::ApiError("POST", path, *r).message());
    }
    if (r->status == 409) {
      // Ours only when this run made it (a restarted kiln); a claim of an earlier run of the
      // same name, or one being deleted, would hand this run stale data and never be collected.
      auto existing = co_await client_.Get(path + "/" + claim);
      if (!*alive) co_return MakeError(Code::kUnavailable, "the runner is gone");
      if (!existing) {
        co_return MakeError(existing.error().code(), "PersistentVolumeClaim " + claim + " exists, and cannot be read: " +
                                                         existing.error().message());
      }
      const json meta = existing->is_object() ? existing->value("metadata", json::object()) : json::object();
      const json labels = meta.is_object() ? meta.value("labels", json::object()) : json::object();
      std::string owner = labels.is_object() ? labels.value(std::string(kLabelWorkflowUid), "") : "";
      const bool deleting = meta.is_object() && meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
      if (owner != LabelValue(options_.job.workflow_uid) || deleting) {
        std::string whose = owner.empty() ? "not made by kiln for this workflow" : "left by an earlier run (kiln.dev/workflow-uid=" + owner + ")";
        if (deleting) whose = "still being deleted";
        co_return MakeError(Code::kAlreadyExists,
                            "PersistentVolumeClaim " + claim + " (spec.volumeClaimTemplates) already exists, " + whose +
                                "; delete it (kubectl -n " + options_.job.namespace_ + " delete pvc " + claim +
                                ") or give the workflow another name");
      }
    }
    claims_made_.insert(claim);
  }
  co_return Result<void>{};
}

KubernetesStepRunner::KubernetesStepRunner(kube::Client& client, KubernetesOptions options)
    : client_(client), options_(std::move(options)) {
  if (auto claims = WorkflowClaims(options_.job); claims) {
    for (json& c : *claims) {
      std::string name = c["metadata"]["name"].get<std::string>();
      claims_[name] = std::move(c);
    }
  } else {
    claims_error_ = claims.error().ToString();
  }
}

KubernetesStepRunner::~KubernetesStepRunner() {
  *alive_ = false;
  if (watch_) watch_->Stop();
  if (pod_watch_) pod_watch_->Stop();
  for (auto& [node, cancel] : resource_steps_) cancel->Cancel();
}

std::string KubernetesStepRunner::JobsPath() const {
  return "/apis/batch/v1/namespaces/" + options_.job.namespace_ + "/jobs";
}

std::string KubernetesStepRunner::PodsPath() const {
  return "/api/v1/namespaces/" + options_.job.namespace_ + "/pods";
}

std::string KubernetesStepRunner::JobOf(const std::string& node) const {
  auto it = steps_.find(node);
  return it == steps_.end() ? "" : it->second.job;
}

void KubernetesStepRunner::EnsureWatch() {
  if (watch_) return;
  std::string selector = std::string(kLabelWorkflow) + "=" + LabelValue(options_.job.workflow);
  std::weak_ptr<bool> alive = alive_;
  kube::Watch::Handler on_job = [this, alive](const kube::WatchEvent& e) {
    if (alive.lock() && *alive.lock()) OnJob(e.type, e.object);
  };
  kube::Watch::SyncHandler on_list = [this, alive](const std::vector<std::string>& names) {
    if (alive.lock() && *alive.lock()) OnJobsListed(names);
  };
  watch_ = client_.StartWatch(JobsPath(), selector, std::move(on_job), std::move(on_list));
  pod_watch_ = client_.StartWatch(PodsPath(), selector, [this, alive](const kube::WatchEvent& e) {
    if (alive.lock() && *alive.lock() && e.type != "DELETED") OnPod(e.object);
  });
}

void KubernetesStepRunner::LaunchResource(const scheduler::LaunchStep& step,
                                          std::function<void(scheduler::Event)> report) {
  auto cancel = std::make_shared<ResourceCancel>(client_.io());
  resource_steps_[step.node] = cancel;
  // Everything the coroutine needs is captured: it may start after the runner is gone.
  auto run = [this, alive = alive_, client = &client_, job = options_.job, poll = options_.resource_poll, step, cancel,
              discovery = discovery_, report = std::move(report)]() -> awaitable<void> {
    if (!*alive) co_return;
    report(scheduler::StepStarted{step.node});
    scheduler::StepFinished f = co_await RunResourceStep(*client, job, step, cancel, poll, discovery);
    if (!*alive) co_return;
    if (auto it = resource_steps_.find(step.node); it != resource_steps_.end() && it->second == cancel) {
      resource_steps_.erase(it);
    }
    report(std::move(f));
  };
  asio::co_spawn(client_.io(), std::move(run), asio::detached);
}

void KubernetesStepRunner::Launch(const scheduler::LaunchStep& step, std::function<void(scheduler::Event)> report) {
  if (step.resource) {
    LaunchResource(step, std::move(report));
    return;
  }
  const AcceleratorProfiles& profiles = options_.job.accelerators ? *options_.job.accelerators : BuiltinAccelerators();
  auto placement = PlacementOf(PodAnnotations(step, options_.job), profiles);
  auto job = placement ? BuildJob(step, options_.job) : Result<json>(std::unexpected(placement.error()));
  if (!job) {
    scheduler::StepFinished f;
    f.node = step.node;
    f.error = true;
    f.message = job.error().message();
    report(std::move(f));
    return;
  }
  Step s;
  s.node = step.node;
  s.job = (*job)["metadata"]["name"].get<std::string>();
  s.report = std::move(report);
  s.launch = step;
  s.placement = std::move(*placement);
  job_to_node_[s.job] = s.node;
  bool fallbacks = s.placement.accelerators.size() > 1;
  steps_[step.node] = std::move(s);
  EnsureWatch();
  if (fallbacks) {
    asio::co_spawn(client_.io(), CreateAfterFallbacks(step.node, std::move(*job)), asio::detached);
  } else {
    asio::co_spawn(client_.io(), Create(step.node, std::move(*job)), asio::detached);
  }
}

awaitable<void> KubernetesStepRunner::CreateAfterFallbacks(std::string node, json first) {
  std::shared_ptr<bool> alive = alive_;
  const std::string first_name = first["metadata"]["name"].get<std::string>();
  const json& labels = first["spec"]["template"]["metadata"]["labels"];
  std::string selector;
  for (std::string_view key : {kLabelWorkflow, kLabelNode, kLabelAttempt}) {
    selector += (selector.empty() ? "" : ",") + std::string(key) + "=" + labels.value(std::string(key), "");
  }
  auto jobs = co_await client_.List(JobsPath(), selector);
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != first_name || it->second.finished) co_return;
  Step& s = it->second;
  if (!jobs) {
    // Creating blindly could start a second Job for an attempt whose fallback Job runs.
    Finish(s, Ended(node, true, "cannot look for the Jobs of this attempt (" + selector + "): " + jobs.error().ToString()));
    co_return;
  }
  // The attempt's Job of the furthest fallback that exists and is not being deleted.
  int found = 0;
  if (jobs && jobs->contains("items")) {
    for (const json& j : (*jobs)["items"]) {
      if (j["metadata"].contains("deletionTimestamp")) continue;
      std::string name = j["metadata"].value("name", "");
      for (int k = 1; k < static_cast<int>(s.placement.accelerators.size()); ++k) {
        if (name == JobName(options_.job.workflow_uid, node, s.launch.attempt, k)) found = std::max(found, k);
      }
    }
  }
  if (found == 0) {
    co_await Create(node, std::move(first));
    co_return;
  }
  auto job = BuildJob(s.launch, options_.job, found);
  if (!job) {
    Finish(s, Ended(node, true, job.error().message()));
    co_return;
  }
  s.fallback = found;
  s.job = (*job)["metadata"]["name"].get<std::string>();
  job_to_node_[s.job] = node;
  co_await Create(node, std::move(*job));  // 409: adopted
}

awaitable<void> KubernetesStepRunner::Create(std::string node, json job) {
  std::shared_ptr<bool> alive = alive_;
  std::string name = job["metadata"]["name"].get<std::string>();
  Result<void> claims = co_await EnsureClaims(job);
  if (!*alive) co_return;
  if (!claims) {
    auto it = steps_.find(node);
    if (it == steps_.end() || it->second.job != name || it->second.finished) co_return;
    // Killed meanwhile (the claim's failure may be that): the step ends as killed, not in Error.
    scheduler::StepFinished f = Ended(node, !it->second.kill_requested,
                                      it->second.kill_requested ? "killed" : claims.error().message());
    if (it->second.kill_requested) f.exit_code = 137;
    Finish(it->second, std::move(f));
    co_return;
  }
  if (auto it = steps_.find(node); it != steps_.end() && it->second.job == name && !it->second.finished &&
                                   it->second.kill_requested) {
    // Killed while its claims were made: no Job is created, and one a restarted kiln's earlier
    // run made under this name is deleted.
    auto deleted = co_await client_.Delete(JobsPath() + "/" + name, "Background");
    if (!*alive) co_return;
    auto again = steps_.find(node);
    if (again == steps_.end() || again->second.job != name || again->second.finished) co_return;
    scheduler::StepFinished f = deleted ? Ended(node, false, "killed")
                                        : Ended(node, true, "cannot delete Job " + name + ": " + deleted.error().ToString());
    if (deleted) f.exit_code = 137;
    Finish(again->second, std::move(f));
    co_return;
  }
  auto r = co_await client_.Call("POST", JobsPath(), std::move(job));
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != name || it->second.finished) co_return;
  Step& s = it->second;
  if (!r) {
    Finish(s, Ended(node, true, "cannot create Job " + name + ": " + r.error().ToString()));
    co_return;
  }
  if (r->status / 100 != 2 && r->status != 409) {  // 409 AlreadyExists: adopt the Job
    Finish(s, Ended(node, true, "cannot create Job " + name + ": " + kube::ApiError("POST", JobsPath(), *r).message()));
    co_return;
  }
  s.created = true;
  if (s.kill_requested) {
    co_await DeleteJob(node);
    co_return;
  }
  if (r->status == 409) {
    auto existing = co_await client_.Get(JobsPath() + "/" + name);
    if (!*alive) co_return;
    if (existing) OnJob("ADDED", *existing);
  } else {
    OnJob("ADDED", r->body);
  }
}

void KubernetesStepRunner::OnJob(const std::string& type, const json& job) {
  if (!job.is_object() || !job.contains("metadata")) return;
  std::string name = job["metadata"].value("name", "");
  auto jt = job_to_node_.find(name);
  if (jt == job_to_node_.end()) return;
  auto it = steps_.find(jt->second);
  if (it == steps_.end() || it->second.job != name) return;
  Step& s = it->second;
  if (s.finished || s.finishing) return;
  if (type == "DELETED") {
    scheduler::StepFinished f = Ended(s.node);
    if (s.kill_requested) {
      f.exit_code = 137;
      f.message = "killed";
    } else {
      f.error = true;
      f.message = "Job " + name + " was deleted";
    }
    s.finishing = true;
    asio::co_spawn(client_.io(), FinishDeleted(s.node, std::move(f)), asio::detached);
    return;
  }
  const json* complete = TrueCondition(job, "Complete");
  const json* failed = complete ? nullptr : TrueCondition(job, "Failed");
  if (complete || failed) {
    s.finishing = true;
    const json& c = complete ? *complete : *failed;
    asio::co_spawn(client_.io(), FinishFromPod(s.node, complete != nullptr, c.value("reason", ""), c.value("message", "")),
                   asio::detached);
    return;
  }
  const json& st = job.contains("status") ? job["status"] : json::object();
  if (!s.started && st.is_object() && st.value("ready", 0) > 0) {
    s.started = true;
    if (!s.waiting.empty()) {  // placed, though the pod watch has not said so yet
      s.waiting.clear();
      s.report(scheduler::StepWaiting{s.node, ""});
    }
    s.report(scheduler::StepStarted{s.node});
  }
}

void KubernetesStepRunner::OnJobsListed(const std::vector<std::string>& names) {
  std::set<std::string_view> listed(names.begin(), names.end());
  for (auto& [node, s] : steps_) {
    if (!s.created || s.finished || s.finishing || listed.count(s.job)) continue;
    // Not listed: deleted while no watch was open (or created after the list was read). A GET
    // tells which.
    asio::co_spawn(client_.io(), ConfirmVanished(node, s.job), asio::detached);
  }
}

awaitable<void> KubernetesStepRunner::ConfirmVanished(std::string node, std::string job) {
  std::shared_ptr<bool> alive = alive_;
  auto r = co_await client_.Get(JobsPath() + "/" + job);
  if (!*alive) co_return;
  if (r || r.error().code() != Code::kNotFound) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished || it->second.finishing) co_return;
  it->second.finishing = true;
  scheduler::StepFinished f = Ended(node, true, "Job " + job + " vanished: it was deleted while kiln was not watching");
  if (it->second.kill_requested) {  // deleted by kiln: the DELETED event was missed, or not needed
    f.error = false;
    f.exit_code = 137;
    f.message = "killed";
  }
  co_await FinishDeleted(node, std::move(f));
}

void KubernetesStepRunner::OnPod(const json& pod) {
  if (!pod.is_object() || !pod.contains("metadata")) return;
  const json& labels = pod["metadata"].value("labels", json::object());
  std::string job = labels.value("batch.kubernetes.io/job-name", labels.value("job-name", ""));
  auto jt = job_to_node_.find(job);
  if (jt == job_to_node_.end()) return;
  auto it = steps_.find(jt->second);
  if (it == steps_.end() || it->second.job != job) return;
  Step& s = it->second;
  if (s.finished) return;
  if (const json* cs = MainStatus(pod); cs && cs->contains("state") && (*cs)["state"].contains("terminated")) {
    // Kept for FinishFromPod (saves a list per step): the latest pod whose main container ended.
    auto& kept = ended_pods_[job];
    auto finished_at = [](const json& p) -> std::string {
      const json* c = MainStatus(p);
      return c ? (*c)["state"]["terminated"].value("finishedAt", "") : "";
    };
    if (kept.is_null() || finished_at(pod) >= finished_at(kept)) kept = pod;
    if (s.pod_wait) s.pod_wait->cancel();  // FinishFromPod waits for this pod
  }
  if (s.finishing) return;
  // PodScheduled: False with reason Unschedulable while no node fits; True once bound.
  std::string waiting;
  bool placed = false;
  if (pod.contains("status") && pod["status"].contains("conditions") && pod["status"]["conditions"].is_array()) {
    for (const json& c : pod["status"]["conditions"]) {
      if (!c.is_object() || c.value("type", "") != "PodScheduled") continue;
      placed = c.value("status", "") == "True";
      if (c.value("status", "") == "False" && c.value("reason", "") == "Unschedulable") {
        waiting = c.value("message", "Unschedulable");
      }
    }
  }
  if (placed || !waiting.empty()) {
    if (waiting != s.waiting) {
      s.waiting = waiting;
      s.report(scheduler::StepWaiting{s.node, waiting});
    }
    if (placed) s.pending_timer.reset();
  }
  if (!waiting.empty() && s.placement.pending_timeout && !s.pending_timer) {
    s.pending_timer = std::make_unique<asio::steady_timer>(client_.io());
    s.pending_timer->expires_after(*s.placement.pending_timeout);
    std::weak_ptr<bool> alive = alive_;
    s.pending_timer->async_wait([this, alive, node = s.node, job](boost::system::error_code ec) {
      if (ec || !alive.lock() || !*alive.lock()) return;
      OnPendingTimeout(node, job);
    });
  }
}

void KubernetesStepRunner::OnPendingTimeout(const std::string& node, const std::string& job) {
  auto it = steps_.find(node);
  if (it == steps_.end()) return;
  Step& s = it->second;
  if (s.job != job || s.finished || s.finishing || s.waiting.empty() || s.kill_requested) return;
  s.pending_timer.reset();
  const auto& list = s.placement.accelerators;
  std::string timeout = dag::FormatDuration(*s.placement.pending_timeout);
  std::string on = list.empty() ? "" : " on accelerator " + list[static_cast<size_t>(s.fallback)];
  if (static_cast<size_t>(s.fallback) + 1 < list.size()) {
    // The next accelerator: a new Job for the same attempt; the old one goes.
    auto next = BuildJob(s.launch, options_.job, s.fallback + 1);
    if (next) {
      std::string message = "no node" + on + " within " + timeout + " (" + s.waiting + "); trying accelerator " +
                            list[static_cast<size_t>(s.fallback) + 1];
      ++s.fallback;
      s.job = (*next)["metadata"]["name"].get<std::string>();
      s.created = false;
      s.started = false;
      s.waiting.clear();
      job_to_node_[s.job] = node;
      s.report(scheduler::StepWaiting{node, message});
      asio::co_spawn(client_.io(), DeleteStaleJob(job), asio::detached);
      asio::co_spawn(client_.io(), Create(node, std::move(*next)), asio::detached);
      return;
    }
  }
  s.finishing = true;
  std::string message = "no node" + on + " within " + timeout + ": " + s.waiting;
  if (list.size() > 1) message += " (tried accelerators " + [&] {
    std::string tried;
    for (const std::string& a : list) tried += (tried.empty() ? "" : ", ") + a;
    return tried;
  }() + ")";
  asio::co_spawn(client_.io(), FailUnplaced(node, std::move(message)), asio::detached);
}

awaitable<void> KubernetesStepRunner::DeleteStaleJob(std::string job) {
  std::shared_ptr<bool> alive = alive_;
  auto r = co_await client_.Delete(JobsPath() + "/" + job, "Background");
  if (!*alive) co_return;
  if (!r) std::fprintf(stderr, "kiln: cannot delete Job %s: %s\n", job.c_str(), r.error().ToString().c_str());
}

awaitable<void> KubernetesStepRunner::FailUnplaced(std::string node, std::string message) {
  std::shared_ptr<bool> alive = alive_;
  std::string job = JobOf(node);
  co_await DeleteStaleJob(job);
  if (!*alive) co_return;
  std::string no_pod = "the pod of Job " + job + " was never placed on a node";
  co_await CopyLog(node, "", std::move(no_pod));
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished) co_return;
  scheduler::StepFinished f = Ended(node, false, std::move(message));
  f.exit_code = 1;
  Finish(it->second, std::move(f));
}

awaitable<void> KubernetesStepRunner::FinishFromPod(std::string node, bool complete, std::string reason,
                                                    std::string message) {
  std::shared_ptr<bool> alive = alive_;
  std::string job = JobOf(node);
  // The pod whose container ended, as the pod watch last saw it; a list when the watch has not
  // shown it yet (the two watches are separate streams).
  Result<json> pods = json::object();
  // Only a pod that agrees with the Job's end: not one that failed before the Job's replacement
  // pod succeeded, nor one lost to a disruption (podFailurePolicy Ignore).
  auto ended_pod = [&]() {
    auto cached = ended_pods_.find(job);
    if (cached == ended_pods_.end()) return cached;
    const json* cs = MainStatus(cached->second);
    int code = cs ? (*cs)["state"]["terminated"].value("exitCode", -1) : -1;
    if (complete != (code == 0) || TrueCondition(cached->second, "DisruptionTarget")) return ended_pods_.end();
    return cached;
  };
  auto cached = ended_pod();
  if (cached == ended_pods_.end() && options_.ended_pod_wait.count() > 0) {
    // The pod's status is written before the Job's, but the two watches are separate streams:
    // its event may come a moment later. Waiting for it (OnPod cancels the timer) is cheaper
    // than a list, which at the client's QPS limit waits for a token too.
    auto it = steps_.find(node);
    if (it != steps_.end() && it->second.job == job && !it->second.finished) {
      auto timer = std::make_shared<asio::steady_timer>(client_.io(), options_.ended_pod_wait);
      it->second.pod_wait = timer;
      boost::system::error_code ec;
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!*alive) co_return;
      if (auto again = steps_.find(node); again != steps_.end() && again->second.pod_wait == timer) {
        again->second.pod_wait.reset();
      }
      cached = ended_pod();
    }
  }
  if (cached != ended_pods_.end()) {
    pods = json{{"items", json::array({cached->second})}};
  } else {
    pods = co_await client_.List(PodsPath(), "job-name=" + job);
    if (!*alive) co_return;
  }
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished) co_return;
  Step& s = it->second;
  // The pod whose main container ended last: with podFailurePolicy Ignore there may be a
  // disrupted one before it.
  const json* terminated = nullptr;
  std::string log_pod;  // whose log kiln keeps: the terminated one, else the newest
  std::string last_finish;
  if (pods && pods->contains("items")) {
    for (const json& pod : (*pods)["items"]) {
      const json* cs = MainStatus(pod);
      if (!cs || !cs->contains("state") || !(*cs)["state"].contains("terminated")) continue;
      const json& term = (*cs)["state"]["terminated"];
      std::string at = term.value("finishedAt", "");
      if (!terminated || at >= last_finish) {
        terminated = &term;
        last_finish = at;
        log_pod = pod["metadata"].value("name", "");
      }
    }
    if (log_pod.empty()) {
      if (const json* p = PodToRead(*pods)) log_pod = (*p)["metadata"].value("name", "");
    }
  }
  scheduler::StepFinished f = Ended(node);
  if (terminated) {
    f.exit_code = terminated->value("exitCode", complete ? 0 : 1);
    std::string term_msg = terminated->value("message", "");
    auto out = ParseTerminationMessage(term_msg);
    if (out && out->stored) {  // too large for the message: the agent stored it as a blob
      const std::string sha256 = out->stored->sha256;
      auto full = ReadStoredOutputs(options_.artifact_root, *out->stored);
      if (full) out = ParseTerminationMessage(*full);
      if (!full || !out || out->stored) {
        out = TerminationOutputs{};
        out->error = full ? "the outputs stored in the artifact repository (sha256 " + sha256 + ") are not an agent's"
                          : full.error().message();
      }
    }
    if (out) {
      f.outputs = std::move(out->parameters);
      f.result = std::move(out->result);
      for (auto& [name, ref] : out->artifacts) {
        if (!ref.sha256.empty() && !options_.artifact_root.empty()) ref.location = options_.artifact_root + "/" + ref.sha256;
        f.artifacts[name] = std::move(ref);
      }
      f.message = std::move(out->note);
      if (!out->error.empty()) {
        f.error = true;
        f.message = std::move(out->error);
      }
    }
    if (complete) f.exit_code = 0;
    if (!complete && f.exit_code == 0) {  // e.g. DeadlineExceeded after the container ended
      f.exit_code = 1;
      f.message = message.empty() ? reason : message;
    }
  } else if (complete) {
    f.exit_code = 0;
  } else {
    // No container ended (deadline while pending or running, a pod that never started): the
    // Job's own reason.
    f.exit_code = reason == "DeadlineExceeded" ? 137 : 1;
    f.message = message.empty() ? reason : reason + ": " + message;
  }
  if (s.kill_requested && !complete) f.message = "killed";
  // The copy exists before the step is recorded as finished.
  // Arguments as named values: GCC 12 mishandles temporaries in co_await expressions.
  std::string no_pod = pods ? "Job " + job + " has no pod (it was deleted, or never started)"
                            : "cannot list the pods of Job " + job + ": " + pods.error().ToString();
  co_await CopyLog(node, log_pod, std::move(no_pod));
  if (!*alive) co_return;
  it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished) co_return;
  Finish(it->second, std::move(f));
}

awaitable<void> KubernetesStepRunner::FinishDeleted(std::string node, scheduler::StepFinished f) {
  std::shared_ptr<bool> alive = alive_;
  std::string job = JobOf(node);
  auto pods = co_await client_.List(PodsPath(), "job-name=" + job);
  if (!*alive) co_return;
  const json* pod = pods ? PodToRead(*pods) : nullptr;
  std::string pod_name = pod ? (*pod)["metadata"].value("name", "") : "";
  std::string no_pod = "Job " + job + " was deleted with its pods before the log was read";
  co_await CopyLog(node, std::move(pod_name), std::move(no_pod));
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished) co_return;
  Finish(it->second, std::move(f));
}

awaitable<void> KubernetesStepRunner::CopyLog(std::string node, std::string pod, std::string no_pod) {
  if (!options_.log_path) co_return;
  std::shared_ptr<bool> alive = alive_;
  const std::string path = options_.log_path(node);
  const int64_t limit = std::max<int64_t>(1, options_.log_limit_bytes);
  std::string copy;
  auto note = [&copy](const std::string& text) {
    copy += internal::FormatTimestamp(std::chrono::system_clock::now()) + " kiln " + text + "\n";
  };
  if (pod.empty()) {
    note("no log: " + no_pod);
  } else {
    // One byte over the limit tells a log of exactly `limit` bytes from a longer one.
    std::string target = PodsPath() + "/" + pod + "/log?container=main&timestamps=true&limitBytes=" +
                         std::to_string(limit + 1);
    auto r = co_await client_.Call("GET", target);
    if (!*alive) co_return;
    if (!r) {
      note("no log: cannot read the log of pod " + pod + ": " + r.error().ToString());
    } else if (r->status != 200) {
      note("no log: cannot read the log of pod " + pod + ": " + kube::ApiError("GET", target, *r).message());
    } else {
      std::string_view body = r->text;
      bool truncated = body.size() > static_cast<size_t>(limit);
      if (truncated) {
        body = body.substr(0, static_cast<size_t>(limit));
        size_t nl = body.rfind('\n');  // whole lines only
        body = nl == std::string_view::npos ? std::string_view() : body.substr(0, nl + 1);
      }
      AppendPodLines(body, internal::FormatTimestamp(std::chrono::system_clock::now()), copy);
      if (truncated) {
        note("log truncated: pod " + pod + " wrote more than " + std::to_string(limit) +
             " bytes; kiln kept the first " + std::to_string(body.size()));
      }
    }
  }
  if (auto written = WriteDurably(path, copy); !written) {
    std::fprintf(stderr, "kiln: step %s: no copy of its log: %s\n", node.c_str(), written.error().ToString().c_str());
  }
}

std::shared_ptr<kube::StreamCancel> KubernetesStepRunner::ReadLog(const std::string& node, bool follow,
                                                                  std::function<bool(std::string_view)> on_data,
                                                                  std::function<void(Result<void>)> on_end) {
  auto cancel = std::make_shared<kube::StreamCancel>();
  std::string job = JobOf(node);
  if (job.empty()) {
    on_end(MakeError(Code::kNotFound, "step " + node + " has no Job"));
    return cancel;
  }
  // Copies only: the coroutine may outlive the runner (the client does not).
  auto read = [](kube::Client& client, std::string pods_path, std::string job, bool follow,
                 std::chrono::seconds idle, std::function<bool(std::string_view)> on_data,
                 std::function<void(Result<void>)> on_end,
                 std::shared_ptr<kube::StreamCancel> cancel) -> awaitable<void> {
    auto pods = co_await client.List(pods_path, "job-name=" + job);
    if (cancel->cancelled()) {
      on_end({});
      co_return;
    }
    if (!pods) {
      on_end(std::unexpected(pods.error()));
      co_return;
    }
    const json* pod = PodToRead(*pods);
    if (!pod) {
      on_end(MakeError(Code::kNotFound, "Job " + job + " has no pod yet"));
      co_return;
    }
    std::string target = pods_path + "/" + (*pod)["metadata"].value("name", "") + "/log?container=main";
    if (follow) {
      std::string followed = target + "&follow=true";
      Result<void> ended = co_await client.Stream(std::move(followed), std::move(on_data), idle, cancel);
      on_end(std::move(ended));
      co_return;
    }
    auto r = co_await client.Call("GET", target);
    if (!r) {
      on_end(std::unexpected(r.error()));
    } else if (r->status != 200) {
      on_end(std::unexpected(kube::ApiError("GET", target, *r)));
    } else {
      if (!cancel->cancelled() && !r->text.empty()) on_data(r->text);
      on_end({});
    }
  };
  asio::co_spawn(client_.io(),
                 read(client_, PodsPath(), job, follow, options_.log_idle_timeout, std::move(on_data),
                      std::move(on_end), cancel),
                 asio::detached);
  return cancel;
}

void KubernetesStepRunner::Finish(Step& s, scheduler::StepFinished f) {
  s.finished = true;
  ended_pods_.erase(s.job);
  s.pending_timer.reset();
  if (!s.started && !f.error) {
    s.started = true;
    s.report(scheduler::StepStarted{s.node});
  }
  s.report(std::move(f));
}

void KubernetesStepRunner::Kill(const std::string& node) {
  if (auto r = resource_steps_.find(node); r != resource_steps_.end()) {
    r->second->Cancel();
    return;
  }
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.finished || it->second.kill_requested) return;
  it->second.kill_requested = true;
  if (it->second.created) asio::co_spawn(client_.io(), DeleteJob(node), asio::detached);
}

awaitable<void> KubernetesStepRunner::DeleteJob(std::string node) {
  std::shared_ptr<bool> alive = alive_;
  std::string job = JobOf(node);
  auto r = co_await client_.Delete(JobsPath() + "/" + job, "Background");
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.finished) co_return;
  if (!r) {
    Finish(it->second, Ended(node, true, "cannot delete Job " + job + ": " + r.error().ToString()));
    co_return;
  }
  // The watch's DELETED event (or the Job's Failed condition) finishes the step; a Job already
  // gone (a 404, or its event lost) is found by a GET now.
  co_await ConfirmVanished(node, job);
}

}  // namespace kiln::executor
