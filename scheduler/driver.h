// The driver: performs the controller's actions on a Boost.Asio io_context and feeds their
// results back as events. For each event it computes the Transition (pure), has it recorded
// (durably, by the caller's Recorder), applies it, and only then performs its actions.
//
// When recording fails with kUnavailable (the database is restarting, the connection was lost)
// nothing of the transition was applied: the driver keeps its state, holds the event and records
// it again after a backoff (RecordRetry), for as long as it takes; events that arrive meanwhile
// (step reports, timers, requests) wait behind it, in order, each with the time it arrived, and
// are handled after it once recording works again. Any other error stops the workflow.
//
// Thread-safety: everything runs on the io_context's thread; Post may be called from any thread.
#ifndef KILN_SCHEDULER_DRIVER_H_
#define KILN_SCHEDULER_DRIVER_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "dag/validate.h"
#include "scheduler/controller.h"
#include "scheduler/step_runner.h"

namespace kiln::scheduler {

// Persists a transition, and the event it was decided from (so the run can be replayed), before
// its actions run. An error must mean that nothing of it was recorded: kUnavailable is retried
// (see RecordRetry); any other code stops the workflow (nothing runs).
using Recorder = std::function<Result<void>(const WorkflowState& before, const Event& event,
                                            const Transition& t)>;
// Sees each transition after it was applied (printing progress).
using Observer = std::function<void(const WorkflowState& after, const Transition& t)>;
// The time now; a fake in tests.
using Clock = std::function<Time()>;

// How the driver waits for the store while recording fails with kUnavailable.
struct RecordRetry {
  std::chrono::milliseconds initial_backoff{100};  // the first wait; doubled after each failure
  std::chrono::milliseconds max_backoff{5000};
  // Failed attempts at one event after which the workflow stops with error(); 0: no limit.
  int max_attempts = 0;
  // Called on the io_context's thread after each failed attempt (1, 2, ...) with the error and
  // the wait before the next one: for logs and metrics.
  std::function<void(const Error& error, int attempt, std::chrono::milliseconds next)> on_retry;
};

class Driver {
 public:
  // REQUIRES: `state`, `library`, `runner` outlive the driver.
  Driver(boost::asio::io_context& io, WorkflowState& state, const dag::TemplateLibrary& library,
         StepRunner& runner, Recorder recorder, Observer observer = {}, Clock clock = {},
         RecordRetry retry = {});

  // Queues an event (from any thread).
  void Post(Event event);

  // Handles `event` at once (or queues it behind events waiting to be recorded), so that the
  // caller sees its transition applied when this returns. A RetryRequested is handled by a
  // driver whose workflow has finished (done() becomes false again when the retry is accepted).
  // REQUIRES: called on the io_context's thread, not from inside the driver's own callbacks.
  void DeliverNow(Event event);

  // Posts StartWorkflow (unless the state already started).
  void Start();
  // Posts Resume: continues a replayed run (see Replay in controller.h).
  void Resume();

  // True once the workflow reached a final phase, or recording failed for good.
  bool done() const { return done_; }
  // Set when recording a transition failed for good (a code other than kUnavailable, or
  // RecordRetry::max_attempts reached).
  const std::optional<Error>& error() const { return error_; }

  // True while an event waits to be recorded again (the store is unavailable).
  bool recording_blocked() const { return !pending_.empty(); }
  // Events waiting: the one being retried and those behind it.
  size_t pending_events() const { return pending_.size(); }
  // Failed attempts to record, over the driver's life.
  uint64_t record_retries() const { return record_retries_; }
  // The error of the last failed attempt to record (kept after recording works again).
  const std::optional<Error>& last_record_error() const { return last_record_error_; }

 private:
  // An event and the time it arrived at, which it is decided with however long it waits.
  struct Arrived {
    Event event;
    Time at;
  };
  enum class Outcome { kHandled, kUnavailable };

  // Handles `event` now, or queues it behind an event that waits to be recorded.
  void Deliver(Event event);
  // Decides, records, applies and performs `event`. kUnavailable: recording failed with
  // kUnavailable and nothing changed; the caller holds the event.
  Outcome Handle(const Event& event, Time at);
  // Handles the pending events in order, until one cannot be recorded yet.
  void Drain();
  // Schedules Drain after the current backoff, or stops the workflow when out of attempts.
  void RetryLater();
  // Stops the workflow: recording failed for good.
  void Stop(Error error);

  boost::asio::io_context& io_;
  // Handlers queued on io_ (posted events, timers) hold a weak reference: those that run after
  // the driver was destroyed do nothing (kiln server drops a driver once its workflow is done).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  WorkflowState& state_;
  const dag::TemplateLibrary& library_;
  StepRunner& runner_;
  Recorder recorder_;
  Observer observer_;
  Clock clock_;
  RecordRetry retry_;
  std::map<std::string, std::unique_ptr<boost::asio::steady_timer>> timers_;
  // While not empty, the front event could not be recorded and is retried on retry_timer_;
  // nothing else is handled until it is. Bounded in practice: nothing is launched meanwhile,
  // so it holds at most the reports of the steps already running, the timers already armed and
  // the requests made during the outage.
  std::deque<Arrived> pending_;
  boost::asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_;  // the wait before the next attempt
  int attempts_ = 0;                   // failed attempts at the front event
  uint64_t record_retries_ = 0;
  std::optional<Error> last_record_error_;
  bool done_ = false;
  std::optional<Error> error_;
};

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_DRIVER_H_
