// The interface through which the scheduler's driver runs leaf steps. executor/ implements it
// (LocalStepRunner: host processes; later the Kubernetes executor: one Job per attempt).
// Thread-safety: called only on the driver's io_context thread; implementations report back on
// that thread too.
#ifndef KILN_SCHEDULER_STEP_RUNNER_H_
#define KILN_SCHEDULER_STEP_RUNNER_H_

#include <functional>
#include <string>

#include "scheduler/state.h"

namespace kiln::scheduler {

class StepRunner {
 public:
  virtual ~StepRunner() = default;

  // Starts `step`. Must report, through `report`, a StepStarted when it runs (optional when it
  // never could) and then exactly one StepFinished: with the exit code and outputs, or with
  // error=true and a message when it could not run ("executable not found: NAME").
  virtual void Launch(const LaunchStep& step, std::function<void(Event)> report) = 0;

  // Stops a running step (SIGTERM, then SIGKILL after a grace period). Its StepFinished still
  // comes. No-op for an unknown or finished step.
  virtual void Kill(const std::string& node) = 0;

  // Whether steps go on running when kiln's process ends (Kubernetes Jobs do, host processes do
  // not). If so, a resumed run launches its running steps again and the runner must adopt
  // them: report on the attempt already under way (or ended) instead of starting a second.
  virtual bool StepsOutliveRunner() const { return false; }
};

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_STEP_RUNNER_H_
