#include "scheduler/driver.h"

#include <boost/asio/post.hpp>

namespace kiln::scheduler {

Driver::Driver(boost::asio::io_context& io, WorkflowState& state, const dag::TemplateLibrary& library,
               StepRunner& runner, Recorder recorder, Observer observer, Clock clock)
    : io_(io),
      state_(state),
      library_(library),
      runner_(runner),
      recorder_(std::move(recorder)),
      observer_(std::move(observer)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })) {
  done_ = IsDone(state_.phase);
}

void Driver::Post(Event event) {
  boost::asio::post(io_, [this, event = std::move(event)] { Handle(event); });
}

void Driver::Start() { Post(StartWorkflow{}); }

void Driver::Resume() { Post(scheduler::Resume{}); }

void Driver::Handle(const Event& event) {
  if (done_) return;
  Transition t = Decide(state_, library_, event, clock_());
  if (t.nodes.empty() && !t.workflow_phase && t.actions.empty() && !t.root && !t.cancel_requested &&
      !t.exit_handler_cancelled &&
      t.timers_fired.empty()) {
    return;
  }
  if (recorder_) {
    Result<void> recorded = recorder_(state_, event, t);
    if (!recorded) {
      // Without a record, performing the actions could repeat or lose work after a crash.
      error_ = recorded.error();
      done_ = true;
      for (auto& [id, timer] : timers_) timer->cancel();
      return;
    }
  }
  Apply(state_, t);
  if (observer_) observer_(state_, t);
  for (const Action& action : t.actions) {
    if (const auto* launch = std::get_if<LaunchStep>(&action)) {
      runner_.Launch(*launch, [this](Event e) { Post(std::move(e)); });
    } else if (const auto* kill = std::get_if<KillStep>(&action)) {
      runner_.Kill(kill->node);
    } else if (const auto* timer = std::get_if<StartTimer>(&action)) {
      auto& slot = timers_[timer->timer];
      slot = std::make_unique<boost::asio::steady_timer>(io_);
      auto delay = timer->at - clock_();
      slot->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          delay.count() > 0 ? delay : decltype(delay)::zero()));
      std::string name = timer->timer;
      slot->async_wait([this, name](const boost::system::error_code& ec) {
        if (!ec) Handle(TimerFired{name});
      });
    }
  }
  if (IsDone(state_.phase)) {
    done_ = true;
    for (auto& [id, timer] : timers_) timer->cancel();
  }
}

}  // namespace kiln::scheduler
