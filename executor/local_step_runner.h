// LocalStepRunner: the scheduler's StepRunner on one machine. Each leaf step runs as a host
// process (in bubblewrap when it works here) with a private /tmp; its outputs are read from the
// files it wrote; CPU, memory and GPU requests are admitted against the machine's capacity.
// The container `image` is recorded, never pulled: the command runs on the host.
// Thread-safety: like ProcessRunner, use it only on its io_context's thread.
#ifndef KILN_EXECUTOR_LOCAL_STEP_RUNNER_H_
#define KILN_EXECUTOR_LOCAL_STEP_RUNNER_H_

#include <boost/asio/io_context.hpp>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "executor/artifact_repository.h"
#include "executor/process.h"
#include "executor/resources.h"
#include "scheduler/step_runner.h"

namespace kiln::executor {

struct LocalOptions {
  std::string work_dir;      // per-step directories (logs, private /tmp, scripts) go below
  // Where persistentVolumeClaim volumes live: <volume_dir>/<claimName>, kept across workflows.
  // Empty: <work_dir>/claims. emptyDir volumes and volumeClaimTemplates live per workflow, in
  // <work_dir>/volumes/<name>.
  std::string volume_dir;
  Capacity capacity;         // zero fields: detected
  std::vector<int> gpus;     // GPU indexes steps may use
  bool sandbox = true;       // use bubblewrap when it works
  std::chrono::milliseconds kill_grace{10'000};
};

class LocalStepRunner : public scheduler::StepRunner {
 public:
  // Input artifacts are placed from `artifacts`, output artifacts stored there (and under their
  // key for key-only ones); it must outlive the runner.
  LocalStepRunner(boost::asio::io_context& io, LocalOptions options, ArtifactRepository& artifacts);

  void Launch(const scheduler::LaunchStep& step,
              std::function<void(scheduler::Event)> report) override;
  void Kill(const std::string& node) override;

  // The one warning to print when steps run without a sandbox; empty when sandboxed.
  const std::string& sandbox_warning() const { return sandbox_warning_; }
  // Where a step's log file is (work_dir/<step dir>/log).
  std::string LogPath(const std::string& node) const;

 private:
  struct Pending {
    scheduler::LaunchStep step;
    ResourceRequest request;
    std::function<void(scheduler::Event)> report;
  };
  struct Running {
    ProcessId pid = 0;
    Grant grant;
  };

  void Run(Pending p, Grant grant);
  void Finish(const std::string& node, const scheduler::LaunchStep& step, const std::string& dir,
              const ProcessResult& result, const std::function<void(scheduler::Event)>& report);
  void Admit();
  std::string StepDir(const std::string& node) const;
  // The container's volumeMounts as binds (host directory -> mountPath); needs the sandbox.
  // Errors name the mount and why.
  Result<std::vector<Bind>> ResolveMounts(const scheduler::LaunchStep& step) const;
  // Adds ResolveMounts' binds to `sandbox`, creating the host directories.
  Result<void> MountVolumes(const scheduler::LaunchStep& step, std::optional<Sandbox>* sandbox);
  // Where output `path` of `step` is on the host: in its volume when a volumeMount holds it.
  std::string OutputHostPath(const scheduler::LaunchStep& step, const std::string& dir,
                             const std::string& path) const;
  // Where `path` (inside the step) lives on the host for the step in `dir`.
  std::string HostPath(const std::string& dir, const std::string& path) const;
  Result<void> PlaceInputs(const scheduler::LaunchStep& step, const std::string& dir,
                           std::optional<Sandbox>* sandbox);
  // Stores output artifact `a` from `host_path`: content-addressed, and under its key when
  // step.output_artifact_keys has one. Errors name the artifact (and the key).
  Result<scheduler::ArtifactRef> StoreOutput(const scheduler::LaunchStep& step, const dag::Artifact& a,
                                             const std::string& host_path);

  boost::asio::io_context& io_;
  LocalOptions options_;
  ArtifactRepository& artifacts_;
  ProcessRunner runner_;
  ResourcePool pool_;
  bool sandboxed_ = false;
  std::string sandbox_warning_;
  std::deque<Pending> waiting_;
  std::map<std::string, Running> running_;
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_LOCAL_STEP_RUNNER_H_
