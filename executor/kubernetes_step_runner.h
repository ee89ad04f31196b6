// KubernetesStepRunner: the scheduler's StepRunner on a Kubernetes cluster. Each attempt of a
// leaf step is one batch/v1 Job (kubernetes_job.h builds it); one list+watch of the workflow's
// Jobs (label kiln.dev/workflow) reports StepStarted when a Job's pod is ready and StepFinished
// when the Job is Complete or Failed, with the exit code and the termination message's outputs
// read from its pod. A create answered 409 AlreadyExists adopts the existing Job (a restarted
// kiln finds its Jobs by their deterministic names). Kill deletes the Job (propagationPolicy
// Background). API failures are retried by the client; when they persist the step ends in Error
// with the API's message.
//
// Logs: before a step is reported finished, the main container's log is read from its pod
// (GET .../log, at most KubernetesOptions::log_limit_bytes) and written durably to
// KubernetesOptions::log_path(node), in the local executor's format ("<time> stdout <text>"),
// so the log outlives the pod (Argo #3953). A log that cannot be read (the pod is gone, an API
// error) does not fail the step: the copy holds a "<time> kiln no log: <why>" line instead.
// ReadLog reads a running step's log from its pod (for kiln server's log endpoint).
//
// Placement: a second list+watch, of the workflow's pods, sees a pod the scheduler cannot place
// (PodScheduled False, reason Unschedulable): its message ("0/5 nodes are available: ...") is
// reported as the step's (StepWaiting) until the pod is placed. With kiln.dev/pending-timeout,
// a pod unschedulable that long has its Job deleted and the attempt goes on with a new Job on
// the next accelerator of kiln.dev/accelerator; with none left the step fails with the
// scheduler's message.
// Thread-safety: use it only on its io_context's thread (the driver's).
#ifndef KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_
#define KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "executor/kubernetes_job.h"
#include "executor/kubernetes_resource.h"
#include "kube/client.h"
#include "scheduler/step_runner.h"

namespace kiln::executor {

struct KubernetesOptions {
  JobContext job;  // namespace, workflow name and uid, workflow defaults, TTL
  // Where kiln's own copy of a finished step's log goes, by node id (kiln uses the local
  // executor's layout, cli/data_dir.h StepLogPath); no copy when empty. Called on the driver's
  // thread.
  std::function<std::string(const std::string& node)> log_path;
  // Where this process sees the artifact volume (JobContext::artifact_pvc) mounted: the
  // location of the output artifacts the agent reports is <artifact_root>/<sha256>.
  std::string artifact_root;
  // The most bytes of a pod's log that are copied (limitBytes); a copy cut there ends with a
  // kiln line saying so.
  int64_t log_limit_bytes = 16 << 20;
  // How long ReadLog with follow waits for the next bytes of a silent pod before it ends with
  // kUnavailable.
  std::chrono::seconds log_idle_timeout{600};
  // How often a resource template's object is read again while neither its successCondition
  // nor its failureCondition holds.
  std::chrono::milliseconds resource_poll{1000};
  // How long a finished Job's step waits for the pod watch to show its ended pod before it
  // lists the Job's pods instead (0: lists at once).
  std::chrono::milliseconds ended_pod_wait{50};
};

// Deletes every Job of run `workflow_uid` in `ns`, whatever state it is in: one
// deletecollection by the kiln.dev/workflow-uid label with propagationPolicy Background (their
// pods go too), and then its volumeClaimTemplates' claims (DeleteWorkflowClaims). For a
// deleted workflow.
boost::asio::awaitable<Result<void>> DeleteWorkflowJobs(kube::Client& client, std::string ns,
                                                       std::string workflow_uid);
// Deletes the PersistentVolumeClaims kiln made for run `workflow_uid`'s volumeClaimTemplates
// (deletecollection by the kiln.dev/workflow-uid label). For a workflow that ended
// (CollectClaims) or was deleted.
boost::asio::awaitable<Result<void>> DeleteWorkflowClaims(kube::Client& client, std::string ns,
                                                         std::string workflow_uid);

class KubernetesStepRunner : public scheduler::StepRunner {
 public:
  // REQUIRES: `client` outlives the runner; its io_context is the driver's.
  KubernetesStepRunner(kube::Client& client, KubernetesOptions options);
  ~KubernetesStepRunner() override;

  void Launch(const scheduler::LaunchStep& step, std::function<void(scheduler::Event)> report) override;
  void Kill(const std::string& node) override;
  // Jobs run on without kiln; Launch of an attempt whose Job exists adopts it (409).
  bool StepsOutliveRunner() const override { return true; }

  const JobContext& job_context() const { return options_.job; }

  // The Job name of a launched node ("" when unknown): for tests and logs.
  std::string JobOf(const std::string& node) const;

  // Reads the main container's log of the pod of launched `node` (the pod whose container runs,
  // else the newest): what it has written so far, or with `follow` as it writes until the
  // container ends. `on_data` gets the bytes as they arrive and returns false to stop; `on_end`
  // is called once, after the last on_data: success when the log ended (or was cancelled);
  // kNotFound when the node has no Job here or the Job no pod yet; the API's error otherwise
  // (e.g. 400 for a container still waiting to start). Both run on the io_context thread, also
  // after the runner is gone. Returns the handle that cancels the read.
  std::shared_ptr<kube::StreamCancel> ReadLog(const std::string& node, bool follow,
                                              std::function<bool(std::string_view)> on_data,
                                              std::function<void(Result<void>)> on_end);

 private:
  struct Step {
    std::string node;
    std::string job;
    scheduler::LaunchStep launch;  // to build the Job of a fallback accelerator
    Placement placement;
    int fallback = 0;              // index into placement.accelerators
    std::string waiting;           // the scheduler's message while the pod cannot be placed
    std::unique_ptr<boost::asio::steady_timer> pending_timer;
    // FinishFromPod waiting for the pod watch to show the ended pod (OnPod cancels it).
    std::shared_ptr<boost::asio::steady_timer> pod_wait;
    std::function<void(scheduler::Event)> report;
    bool created = false;
    bool started = false;
    bool finishing = false;  // reading the pod of a finished Job
    bool finished = false;
    bool kill_requested = false;
  };

  void EnsureWatch();
  // A resource template: RunResourceStep acts on the API; no Job.
  void LaunchResource(const scheduler::LaunchStep& step, std::function<void(scheduler::Event)> report);
  void OnJob(const std::string& type, const nlohmann::json& job);
  void OnPod(const nlohmann::json& pod);
  // After each (re)list of the Jobs (on 410 and every resync period): a created step whose Job
  // is no longer there ends in Error, as when the watch reports its deletion.
  void OnJobsListed(const std::vector<std::string>& names);
  boost::asio::awaitable<void> ConfirmVanished(std::string node, std::string job);
  void OnPendingTimeout(const std::string& node, const std::string& job);
  // Deletes Job `job` (Background), whatever step it was.
  boost::asio::awaitable<void> DeleteStaleJob(std::string job);
  // The step gives up waiting for a node: its Job is deleted and it fails with `message`.
  boost::asio::awaitable<void> FailUnplaced(std::string node, std::string message);
  boost::asio::awaitable<void> Create(std::string node, nlohmann::json job);
  // Creates the workflow claims (volumeClaimTemplates) that `job`'s pod mounts and that this
  // runner has not made yet; one that exists (409, a restarted kiln) is taken as made.
  boost::asio::awaitable<Result<void>> EnsureClaims(const nlohmann::json& job);
  // A step with fallback accelerators: adopts the Job of the furthest fallback of its attempt
  // when one exists (a restarted kiln), else creates `first`.
  boost::asio::awaitable<void> CreateAfterFallbacks(std::string node, nlohmann::json first);
  boost::asio::awaitable<void> DeleteJob(std::string node);
  boost::asio::awaitable<void> FinishFromPod(std::string node, bool complete, std::string condition_reason,
                                             std::string condition_message);
  // A Job deleted before it finished (killed, or deleted by someone else): its log, then `f`.
  boost::asio::awaitable<void> FinishDeleted(std::string node, scheduler::StepFinished f);
  // Writes kiln's copy of `pod`'s main container log for `node` ("" pod: a copy saying
  // `no_pod`). Never fails: problems become a line of the copy, or a line on stderr when the
  // copy cannot be written.
  boost::asio::awaitable<void> CopyLog(std::string node, std::string pod, std::string no_pod);
  void Finish(Step& s, scheduler::StepFinished f);
  std::string JobsPath() const;
  std::string PodsPath() const;

  kube::Client& client_;
  KubernetesOptions options_;
  std::shared_ptr<kube::Watch> watch_;
  std::shared_ptr<kube::Watch> pod_watch_;
  std::map<std::string, nlohmann::json> claims_;  // the workflow's claims to make, by name
  std::set<std::string> claims_made_;
  std::string claims_error_;  // why the claims cannot be made (WorkflowClaims' error)
  std::map<std::string, Step> steps_;              // by node id
  std::map<std::string, std::string> job_to_node_;
  std::map<std::string, std::shared_ptr<ResourceCancel>> resource_steps_;  // running, by node id
  std::shared_ptr<ResourceDiscovery> discovery_ = std::make_shared<ResourceDiscovery>();
  // By Job name: the pod of a running step whose main container has ended, from the pod watch.
  std::map<std::string, nlohmann::json> ended_pods_;
  // Guards coroutines that outlive the runner: they check it before touching `this`.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_KUBERNETES_STEP_RUNNER_H_
