// KubernetesStepRunner: the scheduler's StepRunner on a Kubernetes cluster. Each attempt of a
// leaf step is one batch/v1 Job (kubernetes_job.h builds it); one list+watch of the workflow's
// Jobs (label kiln.dev/workflow) reports StepStarted when a Job's pod is ready and StepFinished
// when the Job is Complete or Failed, with the exit code and the termination message's outputs
// read from its pod. A create answered 409 AlreadyExists adopts the existing Job (a restarted
// kiln finds its Jobs by their deterministic names). Kill deletes the Job (propagationPolicy
// Background). API failures are retried by the client; when they persist the step ends in Error
// with the API's message.
// Thread-safety: use it only on its io_context's thread (the driver's).
#ifndef KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_
#define KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>

#include "executor/kubernetes_job.h"
#include "kube/client.h"
#include "scheduler/step_runner.h"

namespace kiln::executor {

struct KubernetesOptions {
  JobContext job;  // namespace, workflow name and uid, workflow defaults, TTL
};

class KubernetesStepRunner : public scheduler::StepRunner {
 public:
  // REQUIRES: `client` outlives the runner; its io_context is the driver's.
  KubernetesStepRunner(kube::Client& client, KubernetesOptions options);
  ~KubernetesStepRunner() override;

  void Launch(const scheduler::LaunchStep& step, std::function<void(scheduler::Event)> report) override;
  void Kill(const std::string& node) override;

  // The Job name of a launched node ("" when unknown): for tests and logs.
  std::string JobOf(const std::string& node) const;

 private:
  struct Step {
    std::string node;
    std::string job;
    std::function<void(scheduler::Event)> report;
    bool created = false;
    bool started = false;
    bool finishing = false;  // reading the pod of a finished Job
    bool finished = false;
    bool kill_requested = false;
  };

  void EnsureWatch();
  void OnJob(const std::string& type, const nlohmann::json& job);
  boost::asio::awaitable<void> Create(std::string node, nlohmann::json job);
  boost::asio::awaitable<void> DeleteJob(std::string node);
  boost::asio::awaitable<void> FinishFromPod(std::string node, bool complete, std::string condition_reason,
                                             std::string condition_message);
  void Finish(Step& s, scheduler::StepFinished f);
  std::string JobsPath() const;

  kube::Client& client_;
  KubernetesOptions options_;
  std::shared_ptr<kube::Watch> watch_;
  std::map<std::string, Step> steps_;              // by node id
  std::map<std::string, std::string> job_to_node_;
  // Guards coroutines that outlive the runner: they check it before touching `this`.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_
