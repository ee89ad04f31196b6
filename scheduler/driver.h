// The driver: performs the controller's actions on a Boost.Asio io_context and feeds their
// results back as events. For each event it computes the Transition (pure), has it recorded
// (durably, by the caller's Recorder), applies it, and only then performs its actions.
// Thread-safety: everything runs on the io_context's thread; Post may be called from any thread.
#ifndef KILN_SCHEDULER_DRIVER_H_
#define KILN_SCHEDULER_DRIVER_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>

#include "base/error.h"
#include "dag/validate.h"
#include "scheduler/controller.h"
#include "scheduler/step_runner.h"

namespace kiln::scheduler {

// Persists a transition, and the event it was decided from (so the run can be replayed), before
// its actions run; an error stops the workflow (nothing runs).
using Recorder = std::function<Result<void>(const WorkflowState& before, const Event& event, const Transition& t)>;
// Sees each transition after it was applied (printing progress).
using Observer = std::function<void(const WorkflowState& after, const Transition& t)>;
// The time now; a fake in tests.
using Clock = std::function<Time()>;

class Driver {
 public:
  // REQUIRES: `state`, `library`, `runner` outlive the driver.
  Driver(boost::asio::io_context& io, WorkflowState& state, const dag::TemplateLibrary& library,
         StepRunner& runner, Recorder recorder, Observer observer = {}, Clock clock = {});

  // Queues an event (from any thread).
  void Post(Event event);

  // Posts StartWorkflow (unless the state already started).
  void Start();
  // Posts Resume: continues a replayed run (see Replay in controller.h).
  void Resume();

  // True once the workflow reached a final phase, or recording failed.
  bool done() const { return done_; }
  // Set when recording a transition failed.
  const std::optional<Error>& error() const { return error_; }

 private:
  void Handle(const Event& event);

  boost::asio::io_context& io_;
  WorkflowState& state_;
  const dag::TemplateLibrary& library_;
  StepRunner& runner_;
  Recorder recorder_;
  Observer observer_;
  Clock clock_;
  std::map<std::string, std::unique_ptr<boost::asio::steady_timer>> timers_;
  bool done_ = false;
  std::optional<Error> error_;
};

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_DRIVER_H_
