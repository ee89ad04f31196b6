#include "executor/kubernetes_step_runner.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

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

scheduler::StepFinished Ended(const std::string& node, bool error = false, std::string message = "") {
  scheduler::StepFinished f;
  f.node = node;
  f.error = error;
  f.message = std::move(message);
  return f;
}

}  // namespace

KubernetesStepRunner::KubernetesStepRunner(kube::Client& client, KubernetesOptions options)
    : client_(client), options_(std::move(options)) {}

KubernetesStepRunner::~KubernetesStepRunner() {
  *alive_ = false;
  if (watch_) watch_->Stop();
}

std::string KubernetesStepRunner::JobsPath() const {
  return "/apis/batch/v1/namespaces/" + options_.job.namespace_ + "/jobs";
}

std::string KubernetesStepRunner::JobOf(const std::string& node) const {
  auto it = steps_.find(node);
  return it == steps_.end() ? "" : it->second.job;
}

void KubernetesStepRunner::EnsureWatch() {
  if (watch_) return;
  std::string selector = std::string(kLabelWorkflow) + "=" + LabelValue(options_.job.workflow);
  std::weak_ptr<bool> alive = alive_;
  watch_ = client_.StartWatch(JobsPath(), selector, [this, alive](const kube::WatchEvent& e) {
    if (alive.lock() && *alive.lock()) OnJob(e.type, e.object);
  });
}

void KubernetesStepRunner::Launch(const scheduler::LaunchStep& step, std::function<void(scheduler::Event)> report) {
  auto job = BuildJob(step, options_.job);
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
  job_to_node_[s.job] = s.node;
  steps_[step.node] = std::move(s);
  EnsureWatch();
  asio::co_spawn(client_.io(), Create(step.node, std::move(*job)), asio::detached);
}

awaitable<void> KubernetesStepRunner::Create(std::string node, json job) {
  std::shared_ptr<bool> alive = alive_;
  std::string name = job["metadata"]["name"].get<std::string>();
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
    Finish(s, std::move(f));
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
    s.report(scheduler::StepStarted{s.node});
  }
}

awaitable<void> KubernetesStepRunner::FinishFromPod(std::string node, bool complete, std::string reason,
                                                    std::string message) {
  std::shared_ptr<bool> alive = alive_;
  std::string job = JobOf(node);
  auto pods = co_await client_.List("/api/v1/namespaces/" + options_.job.namespace_ + "/pods", "job-name=" + job);
  if (!*alive) co_return;
  auto it = steps_.find(node);
  if (it == steps_.end() || it->second.job != job || it->second.finished) co_return;
  Step& s = it->second;
  // The pod whose main container ended last: with podFailurePolicy Ignore there may be a
  // disrupted one before it.
  const json* terminated = nullptr;
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
      }
    }
  }
  scheduler::StepFinished f = Ended(node);
  if (terminated) {
    f.exit_code = terminated->value("exitCode", complete ? 0 : 1);
    std::string term_msg = terminated->value("message", "");
    if (auto out = ParseTerminationMessage(term_msg)) {
      f.outputs = std::move(out->parameters);
      f.result = std::move(out->result);
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
  Finish(s, std::move(f));
}

void KubernetesStepRunner::Finish(Step& s, scheduler::StepFinished f) {
  s.finished = true;
  if (!s.started && !f.error) {
    s.started = true;
    s.report(scheduler::StepStarted{s.node});
  }
  s.report(std::move(f));
}

void KubernetesStepRunner::Kill(const std::string& node) {
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
  }
  // Otherwise the watch's DELETED event (or the Job's Failed condition) finishes the step.
}

}  // namespace kiln::executor
