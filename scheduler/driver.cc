#include "scheduler/driver.h"

#include <algorithm>
#include <boost/asio/post.hpp>

namespace kiln::scheduler {

Driver::Driver(boost::asio::io_context& io, WorkflowState& state,
               const dag::TemplateLibrary& library, StepRunner& runner, Recorder recorder,
               Observer observer, Clock clock, RecordRetry retry)
    : io_(io),
      state_(state),
      library_(library),
      runner_(runner),
      recorder_(std::move(recorder)),
      observer_(std::move(observer)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })),
      retry_(std::move(retry)),
      retry_timer_(io),
      backoff_(retry_.initial_backoff) {
  done_ = IsDone(state_.phase);
}

void Driver::Post(Event event) {
  boost::asio::post(io_,
                    [this, alive = std::weak_ptr<int>(alive_), event = std::move(event)]() mutable {
                      if (alive.lock()) Deliver(std::move(event));
                    });
}

void Driver::Start() { Post(StartWorkflow{}); }

void Driver::DeliverNow(Event event) { Deliver(std::move(event)); }

void Driver::Resume() { Post(scheduler::Resume{runner_.StepsOutliveRunner()}); }

void Driver::Deliver(Event event) {
  if (done_) {
    // A finished workflow runs again when it is retried (the controller says whether it may).
    if (!std::holds_alternative<RetryRequested>(event) || error_ || !IsDone(state_.phase)) return;
    done_ = false;
  }
  Time at = clock_();
  if (!pending_.empty()) {
    // Behind the event that waits to be recorded: handled after it, in arrival order.
    pending_.push_back({std::move(event), at});
    return;
  }
  if (Handle(event, at) == Outcome::kUnavailable) {
    pending_.push_back({std::move(event), at});
    RetryLater();
  }
}

void Driver::Drain() {
  while (!pending_.empty() && !done_) {
    // A copy: a recording error that stops the workflow empties pending_ inside Handle.
    const Arrived front = pending_.front();
    Outcome outcome = Handle(front.event, front.at);
    if (done_) break;
    if (outcome == Outcome::kUnavailable) {
      RetryLater();
      return;
    }
    pending_.pop_front();
    attempts_ = 0;
    backoff_ = retry_.initial_backoff;
  }
  if (done_) pending_.clear();
}

void Driver::RetryLater() {
  if (done_) return;
  if (retry_.max_attempts > 0 && attempts_ >= retry_.max_attempts) {
    const Error& last = *last_record_error_;
    Stop(Error(last.code(),
               last.message() + " (gave up after " + std::to_string(attempts_) + " attempts)",
               last.where()));
    return;
  }
  std::chrono::milliseconds wait = backoff_;
  backoff_ = std::min(backoff_ * 2, retry_.max_backoff);
  if (retry_.on_retry) retry_.on_retry(*last_record_error_, attempts_, wait);
  retry_timer_.expires_after(wait);
  retry_timer_.async_wait(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
        if (!ec && alive.lock()) Drain();
      });
}

void Driver::Stop(Error error) {
  // Without a record, performing the actions could repeat or lose work after a crash.
  error_ = std::move(error);
  done_ = true;
  pending_.clear();
  retry_timer_.cancel();
  for (auto& [id, timer] : timers_) timer->cancel();
}

Driver::Outcome Driver::Handle(const Event& event, Time at) {
  if (done_) return Outcome::kHandled;
  Transition t = Decide(state_, library_, event, at);
  if (t.nodes.empty() && !t.workflow_phase && t.actions.empty() && !t.root && !t.cancel_requested &&
      !t.exit_handler_cancelled && t.timers_fired.empty() && !t.suspended && !t.retried) {
    if (IsDone(state_.phase)) done_ = true;  // a retry that was refused
    return Outcome::kHandled;
  }
  if (recorder_) {
    Result<void> recorded = recorder_(state_, event, t);
    if (!recorded) {
      if (recorded.error().code() == Code::kUnavailable) {
        // Nothing was recorded and nothing applied: the same event is decided and recorded
        // again later, from the same state and at the same time.
        ++attempts_;
        ++record_retries_;
        last_record_error_ = recorded.error();
        return Outcome::kUnavailable;
      }
      Stop(recorded.error());
      return Outcome::kHandled;
    }
  }
  Apply(state_, t);
  if (observer_) observer_(state_, t);
  for (const Action& action : t.actions) {
    if (const auto* launch = std::get_if<LaunchStep>(&action)) {
      // The runner may report after the driver is gone (kiln server drops a finished one).
      runner_.Launch(*launch, [this, alive = std::weak_ptr<int>(alive_)](Event e) {
        if (alive.lock()) Post(std::move(e));
      });
    } else if (const auto* kill = std::get_if<KillStep>(&action)) {
      runner_.Kill(kill->node);
    } else if (const auto* timer = std::get_if<StartTimer>(&action)) {
      auto& slot = timers_[timer->timer];
      slot = std::make_unique<boost::asio::steady_timer>(io_);
      auto delay = timer->at - clock_();
      slot->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          delay.count() > 0 ? delay : decltype(delay)::zero()));
      std::string name = timer->timer;
      slot->async_wait(
          [this, name, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
            if (!ec && alive.lock()) Deliver(TimerFired{name});
          });
    }
  }
  if (IsDone(state_.phase)) {
    done_ = true;
    for (auto& [id, timer] : timers_) timer->cancel();
  }
  return Outcome::kHandled;
}

}  // namespace kiln::scheduler
