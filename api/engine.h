// The engine of `kiln server`: many workflows driven at once in one process, on one
// io_context. Each workflow has its own scheduler::Driver (so its transitions are serialized
// and recorded before their actions run, exactly as `kiln run` records them: api/recording.h),
// its own step runner (host processes, or Jobs through the one shared Kubernetes client), and
// is resumed from the store when the server starts again.
//
// Thread-safety: an Engine and everything it returns belong to the io_context's thread; call
// it there only (the API server posts to it).
#ifndef KILN_API_ENGINE_H_
#define KILN_API_ENGINE_H_

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/metrics.h"
#include "base/error.h"
#include "dag/diagnostic.h"
#include "scheduler/state.h"
#include "store/store.h"

namespace kiln::kube {
class StreamCancel;
}  // namespace kiln::kube

namespace kiln::api {

struct EngineOptions {
  std::string data_dir;        // step directories, logs, artifacts (cli/data_dir.h layout)
  std::string executor = "local";  // local | kubernetes
  bool sandbox = true;             // local: run steps in bubblewrap when it works
  std::string kubeconfig;          // kubernetes: where the Jobs go ("" = in-cluster)
  std::string kube_context;
  std::string kube_namespace;      // "" = each workflow's own namespace
  std::string accelerators;        // kubernetes: accelerator profiles file ("" = built-in only)
  std::string agent_image;         // kubernetes: the kiln exec agent (executor::JobContext)
  std::string agent_path;
  std::string artifact_pvc;        // kubernetes: the artifact volume, seen here at data_dir/artifacts
  // kubernetes: each Job's ttlSecondsAfterFinished (none: finished Jobs stay).
  std::optional<int64_t> ttl_seconds_after_finished;
  // Where the engine counts what it does (steps by phase, step durations, scheduling latency,
  // steps waiting to start, workflows by phase); none when null. Must outlive the engine.
  Metrics* metrics = nullptr;
  // Draws the 5-character suffix of a generateName (tests make it collide); null: random, from
  // [a-z0-9].
  std::function<std::string()> name_suffix;
};

// A manifest text with the name its diagnostics use ("request body", "template ml/train").
struct ManifestText {
  std::string name;
  std::string text;
};

struct SubmitRequest {
  std::string namespace_;  // the workflow's namespace (the URL's); overrides metadata.namespace
  ManifestText workflow;   // a Workflow (or a CronWorkflow, whose workflowSpec runs once)
  std::map<std::string, std::string> parameters;  // override spec.arguments.parameters
  std::string entrypoint;                          // "" = spec.entrypoint
  std::string name;  // "" = the manifest's metadata.name, else generateName and a random suffix
  std::map<std::string, std::string> labels;      // added to metadata.labels
  std::vector<ManifestText> templates;  // WorkflowTemplates for templateRef / workflowTemplateRef
  bool dry_run = false;                 // validate only: nothing recorded, nothing run
};

// Why a submission was refused: the error, and every problem found in the manifest.
struct SubmitError {
  Error error;
  std::vector<dag::Diagnostic> problems;
};

enum class ChangeType { kAdded, kModified, kDeleted };

// Called on the io_context thread after a workflow's change was recorded.
using ChangeListener = std::function<void(const store::WorkflowRecord& workflow, ChangeType type)>;

class Engine {
 public:
  // Errors: a kubeconfig that cannot be used (executor kubernetes); a data directory that cannot
  // be written.
  static Result<std::unique_ptr<Engine>> Create(boost::asio::io_context& io, store::Store& store,
                                                EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates, records and starts a workflow. Returns its row as recorded (phase Pending).
  // Errors: kInvalidArgument with the problems; kAlreadyExists for a name in use in the
  // namespace; the store's errors.
  std::expected<store::WorkflowRecord, SubmitError> Submit(SubmitRequest request);

  // Submit in two halves, so that validating and recording (the costly part) runs on the
  // caller's thread and only starting runs on the engine's:
  // Accept validates and records the workflow (or, with dry_run, only validates). Thread-safe:
  // it reads only the options and the store. Errors as Submit's.
  std::expected<store::WorkflowRecord, SubmitError> Accept(SubmitRequest request);
  // Starts the workflow `uid` that Accept recorded, on the io_context thread. After Shutdown it
  // starts nothing: the workflow stays Pending in the store and the next server start runs it.
  void Start(const std::string& uid);

  // Continues every workflow the store has as Pending or Running (left by a server that
  // stopped or crashed): steps that succeeded are not run again. Returns how many.
  Result<size_t> ResumeUnfinished();

  // Argo's stop: running steps are stopped and the exit handler runs. kNotFound when the
  // workflow is not running here; kFailedPrecondition when it has finished.
  Result<void> Stop(const std::string& uid, std::string message);
  // Argo's terminate: everything stops, no exit handler.
  Result<void> Terminate(const std::string& uid);
  // Argo's resume: the workflow's suspension (Suspend) ends, and suspend nodes that wait for
  // one (no duration, or not yet elapsed) succeed. Returns how many nodes were resumed;
  // kFailedPrecondition when the workflow is not suspended and no node waits.
  Result<size_t> ResumeSuspended(const std::string& uid);
  // Argo's suspend: no new step starts until ResumeSuspended; running steps go on. Suspending
  // a suspended workflow is fine. kFailedPrecondition when the workflow is not running here.
  Result<void> Suspend(const std::string& uid);
  // Argo's retry, in place (see scheduler::RetryRequested): the finished run is rebuilt from the
  // store (its recorded events replayed) and driven again. kFailedPrecondition unless the
  // workflow is Failed or Error; kInvalidArgument for a bad node selector or a parameter the
  // workflow does not declare; kNotFound; the store's errors.
  Result<void> Retry(const std::string& uid, scheduler::RetryRequested retry);
  // A new workflow from the manifest, parameters and templates `uid` was submitted with.
  std::expected<store::WorkflowRecord, SubmitError> Resubmit(const std::string& uid);
  // Removes the workflow and everything recorded about it; a running one is terminated first
  // and removed when its steps have stopped.
  Result<void> Delete(const std::string& uid);

  bool IsRunning(const std::string& uid) const;
  size_t running() const;
  // The log file of `node` of workflow `uid` (cli/data_dir.h): written by the local executor as
  // the step runs, and by the Kubernetes executor (kiln's copy of the pod's log) when it ends.
  std::string LogPath(const std::string& uid, const std::string& node) const;
  // Whether `node` of `uid` has finished; true as well when the workflow is not running here.
  bool StepDone(const std::string& uid, const std::string& node) const;
  // Kubernetes executor: reads the live log of `node`'s pod while workflow `uid` runs here
  // (executor::KubernetesStepRunner::ReadLog says how `on_data` and `on_end` are called). Null,
  // and neither callback called, when the workflow is not running here or not on Kubernetes.
  std::shared_ptr<kube::StreamCancel> ReadPodLog(const std::string& uid, const std::string& node, bool follow,
                                                 std::function<bool(std::string_view)> on_data,
                                                 std::function<void(Result<void>)> on_end);
  const EngineOptions& options() const { return options_; }

  int Subscribe(ChangeListener listener);
  void Unsubscribe(int id);

  // Stops driving (graceful shutdown): every transition so far is recorded; the workflows stay
  // Running in the store and the next start resumes them. Local step processes are killed
  // (they would be orphans); Kubernetes Jobs keep running and are found again on resume.
  void Shutdown();

 private:
  struct Run;
  Engine(boost::asio::io_context& io, store::Store& store, EngineOptions options);
  // Builds the run's state from `manifests` (the workflow first), records nothing.
  std::expected<std::unique_ptr<Run>, SubmitError> Prepare(const SubmitRequest& request,
                                                          const std::string& uid);
  Result<void> Drive(std::unique_ptr<Run> run, bool resume);
  // The run of recorded workflow `w`, rebuilt from its manifest and its recorded events.
  Result<std::unique_ptr<Run>> Rebuild(const store::WorkflowRecord& w);
  void Changed(const store::WorkflowRecord& w, ChangeType type);
  // Counts a recorded transition into options_.metrics.
  void Count(const scheduler::WorkflowState& before, const scheduler::Transition& t);
  void Finished(const std::string& uid);

  boost::asio::io_context& io_;
  store::Store& store_;
  EngineOptions options_;
  struct Shared;
  std::unique_ptr<Shared> shared_;  // artifact repository, GPUs, Kubernetes client
  std::map<std::string, std::unique_ptr<Run>> runs_;
  std::map<std::string, bool> delete_when_done_;
  std::map<int, ChangeListener> listeners_;
  // Steps decided (LaunchStep) and not yet started: "uid\nnode" -> when decided.
  std::map<std::string, scheduler::Time> waiting_;
  int next_listener_ = 1;
  std::atomic<bool> shut_down_ = false;
  // Recorded by Accept, waiting for Start, by uid.
  std::mutex accepted_mu_;
  std::map<std::string, std::unique_ptr<Run>> accepted_;
};

}  // namespace kiln::api

#endif  // KILN_API_ENGINE_H_
