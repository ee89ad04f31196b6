// The driver when its recorder fails: kUnavailable (the database restarting) holds the event and
// records it again after a backoff, with the events that arrived meanwhile queued behind it;
// any other error stops the workflow. Steps are played by a scripted runner on a real
// io_context; the clock is a fake that moves a minute per reading, so that timers are due at
// once and the recorded times of two runs can be compared.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dag/parse.h"
#include "dag/validate.h"
#include "scheduler/controller.h"
#include "scheduler/driver.h"
#include "scheduler/step_runner.h"

namespace kiln::scheduler {
namespace {

using V = std::vector<std::string>;

// Two steps in parallel between two others, one of them failing its first attempt and retried
// after a backoff (a timer): every kind of event a run gets.
const char* kWorkflow = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
    - - {name: b, template: echo}
      - {name: c, template: flaky}
    - - {name: d, template: echo}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
  - name: flaky
    retryStrategy: {limit: 2, backoff: {duration: 10s}}
    container: {image: busybox, command: [train]}
)";

// Reports each launched step as started and then finished, through the driver's queue: exit
// code 1 for the first attempt of a "flaky" template, 0 otherwise.
class ScriptedRunner : public StepRunner {
 public:
  void Launch(const LaunchStep& step, std::function<void(Event)> report) override {
    launched.push_back(step.node);
    report(StepStarted{step.node});
    StepFinished finished;
    finished.node = step.node;
    finished.exit_code =
        step.tmpl != nullptr && step.tmpl->name == "flaky" && step.attempt == 0 ? 1 : 0;
    report(std::move(finished));
  }
  void Kill(const std::string&) override {}

  V launched;
};

// One run of kWorkflow under a driver whose recorder fails as `fail` says for each call
// (numbered from 1): nullopt records it.
class Harness {
 public:
  using Failure = std::function<std::optional<Error>(int call)>;

  explicit Harness(Failure fail = {}, RecordRetry retry = Fast()) : fail_(std::move(fail)) {
    dag::Diagnostics diags;
    manifests_ = dag::ParseManifests("wf.yaml", kWorkflow, dag::ParseOptions{}, diags);
    REQUIRE_FALSE(diags.has_errors());
    for (const dag::Manifest& m : manifests_) library_.Add(m);
    auto state = NewWorkflow(manifests_.back(), library_, "uid-1", {});
    REQUIRE(state.has_value());
    state_ = std::move(*state);
    auto recorder = [this](const WorkflowState&, const Event& event,
                           const Transition& t) -> Result<void> {
      ++calls;
      if (fail_) {
        if (std::optional<Error> e = fail_(calls)) return std::unexpected(*e);
      }
      recorded.push_back(
          EventToJson(event).dump() + " @" +
          std::to_string(
              std::chrono::duration_cast<std::chrono::minutes>(t.now.time_since_epoch()).count()));
      return {};
    };
    auto clock = [this] { return now_ += std::chrono::minutes(1); };
    driver = std::make_unique<Driver>(io, state_, library_, runner, recorder, Observer{}, clock,
                                      std::move(retry));
  }

  // Waits of a millisecond: the tests do not wait for the backoff of production.
  static RecordRetry Fast() {
    RecordRetry r;
    r.initial_backoff = std::chrono::milliseconds(1);
    r.max_backoff = std::chrono::milliseconds(4);
    return r;
  }

  // Starts the workflow and runs the io_context until nothing is left to do (bounded: a hang
  // fails the test rather than the run).
  void Run() {
    driver->Start();
    io.run_for(std::chrono::seconds(30));
    REQUIRE(io.stopped());
  }

  const WorkflowState& state() const { return state_; }

  // What a replay must reproduce: every node's phase and the workflow's.
  std::string Shape() const {
    std::string out = std::string(PhaseName(state_.phase)) + "\n";
    for (const auto& [id, n] : state_.nodes)
      out += id + ": " + std::string(PhaseName(n.phase)) + "\n";
    return out;
  }

  boost::asio::io_context io;
  ScriptedRunner runner;
  std::unique_ptr<Driver> driver;
  V recorded;  // each recorded event, as JSON, with the minute it was decided at
  int calls = 0;

 private:
  Failure fail_;
  std::vector<dag::Manifest> manifests_;
  dag::TemplateLibrary library_;
  WorkflowState state_;
  Time now_ = Time{} + std::chrono::hours(24 * 365 * 56);
};

Error Unavailable() {
  return Error(Code::kUnavailable, "cannot record: lost the connection to PostgreSQL server",
               "postgresql://db");
}

}  // namespace

TEST_CASE(
    "driver: a transition that cannot be recorded yet is retried, and nothing is lost or repeated",
    "[scheduler][driver]") {
  Harness plain;
  plain.Run();
  REQUIRE(plain.state().phase == Phase::kSucceeded);
  REQUIRE(plain.driver->done());
  REQUIRE_FALSE(plain.driver->error());
  CHECK(plain.driver->record_retries() == 0);
  // Start, a, b and c in parallel (c fails, waits for its backoff, runs again), then d.
  CHECK(plain.runner.launched == V{"wf[0].a", "wf[1].b", "wf[1].c(0)", "wf[1].c(1)", "wf[2].d"});

  SECTION("the first transition fails a few times") {
    Harness h([](int call) -> std::optional<Error> {
      if (call <= 3) return Unavailable();
      return std::nullopt;
    });
    h.Run();
    CHECK(h.driver->record_retries() == 3);
    CHECK(h.recorded == plain.recorded);
    CHECK(h.runner.launched == plain.runner.launched);
    CHECK(h.Shape() == plain.Shape());
  }
  SECTION("every transition fails twice before it is recorded") {
    // Calls 1 and 2 fail, 3 records; 4 and 5 fail, 6 records; ...
    Harness h([](int call) -> std::optional<Error> {
      if (call % 3 != 0) return Unavailable();
      return std::nullopt;
    });
    h.Run();
    CHECK(h.driver->record_retries() == 2 * plain.recorded.size());
    CHECK(h.recorded == plain.recorded);
    CHECK(h.runner.launched == plain.runner.launched);
    CHECK(h.Shape() == plain.Shape());
    CHECK_FALSE(h.driver->recording_blocked());
    CHECK(h.driver->pending_events() == 0);
  }
  SECTION(
      "while one step's report waits, the other steps' reports and the retry timer queue behind "
      "it") {
    // Recording fails for a stretch in the middle (calls 4 to 9): the parallel steps b and c
    // report meanwhile, and c's retry is armed and fires only after the stretch.
    std::vector<size_t> waiting;
    Harness* self = nullptr;
    RecordRetry retry = Harness::Fast();
    retry.on_retry = [&](const Error& e, int attempt, std::chrono::milliseconds next) {
      CHECK(e.code() == Code::kUnavailable);
      CHECK(attempt >= 1);
      CHECK(next <= std::chrono::milliseconds(4));
      CHECK(self->driver->recording_blocked());
      waiting.push_back(self->driver->pending_events());
    };
    Harness h(
        [](int call) -> std::optional<Error> {
          if (call >= 4 && call <= 9) return Unavailable();
          return std::nullopt;
        },
        retry);
    self = &h;
    h.Run();
    CHECK(h.driver->record_retries() == 6);
    REQUIRE(waiting.size() == 6);
    // Events piled up behind the one that waited.
    CHECK(waiting.back() > 1);
    CHECK(h.recorded == plain.recorded);
    CHECK(h.runner.launched == plain.runner.launched);
    CHECK(h.Shape() == plain.Shape());
    CHECK(h.state().phase == Phase::kSucceeded);
  }
}

TEST_CASE(
    "driver: the wait between attempts doubles up to the maximum and restarts after a success",
    "[scheduler][driver]") {
  std::vector<std::pair<int, long>> waits;  // attempt, wait in ms
  RecordRetry retry;
  retry.initial_backoff = std::chrono::milliseconds(1);
  retry.max_backoff = std::chrono::milliseconds(4);
  retry.on_retry = [&](const Error&, int attempt, std::chrono::milliseconds next) {
    waits.push_back({attempt, static_cast<long>(next.count())});
  };
  Harness h(
      [](int call) -> std::optional<Error> {
        if (call <= 5 || call == 7) return Unavailable();
        return std::nullopt;
      },
      retry);
  h.Run();
  CHECK(h.state().phase == Phase::kSucceeded);
  CHECK(waits == std::vector<std::pair<int, long>>{{1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 4}, {1, 1}});
}

TEST_CASE("driver: another recording error stops the workflow with error()",
          "[scheduler][driver]") {
  Harness h([](int call) -> std::optional<Error> {
    if (call == 3) return Error(Code::kInternal, "cannot record: disk I/O error", "kiln.db");
    return std::nullopt;
  });
  h.Run();
  REQUIRE(h.driver->done());
  REQUIRE(h.driver->error());
  CHECK(h.driver->error()->code() == Code::kInternal);
  CHECK(h.driver->error()->message() == "cannot record: disk I/O error");
  CHECK(h.driver->record_retries() == 0);
  CHECK_FALSE(h.driver->recording_blocked());
  // Start and a's start were recorded; a's end was not, so nothing after it ran.
  CHECK(h.recorded.size() == 2);
  CHECK(h.calls == 3);
  CHECK(h.runner.launched == V{"wf[0].a"});
  CHECK(h.state().phase == Phase::kRunning);
}

TEST_CASE("driver: another recording error while events wait stops the workflow with error()",
          "[scheduler][driver]") {
  // a's start cannot be recorded yet (calls 2 and 3) and a's end queues behind it; a's start is
  // recorded (call 4), then the store fails for good on a's end (call 5), while it drains.
  Harness h([](int call) -> std::optional<Error> {
    if (call == 2 || call == 3) return Unavailable();
    if (call == 5) return Error(Code::kInternal, "cannot record: disk I/O error", "kiln.db");
    return std::nullopt;
  });
  h.Run();
  REQUIRE(h.driver->done());
  REQUIRE(h.driver->error());
  CHECK(h.driver->error()->code() == Code::kInternal);
  CHECK(h.driver->record_retries() == 2);
  CHECK_FALSE(h.driver->recording_blocked());
  CHECK(h.driver->pending_events() == 0);
  CHECK(h.calls == 5);
  CHECK(h.recorded.size() == 2);
  CHECK(h.runner.launched == V{"wf[0].a"});
}

TEST_CASE("driver: with max_attempts, recording that stays unavailable stops the workflow",
          "[scheduler][driver]") {
  RecordRetry retry = Harness::Fast();
  retry.max_attempts = 3;
  Harness h(
      [](int call) -> std::optional<Error> {
        if (call >= 2) return Unavailable();
        return std::nullopt;
      },
      retry);
  h.Run();
  REQUIRE(h.driver->done());
  REQUIRE(h.driver->error());
  CHECK(h.driver->error()->code() == Code::kUnavailable);
  CHECK(h.driver->error()->message() ==
        "cannot record: lost the connection to PostgreSQL server (gave up after 3 attempts)");
  CHECK(h.driver->error()->where() == "postgresql://db");
  CHECK(h.calls == 4);
  CHECK(h.recorded.size() == 1);
  CHECK_FALSE(h.driver->recording_blocked());
}

TEST_CASE("driver: a driver destroyed while it waits to record does nothing more",
          "[scheduler][driver]") {
  RecordRetry retry;  // the production backoff: the retry is still pending when the driver goes
  Harness h(
      [](int call) -> std::optional<Error> {
        if (call >= 2) return Unavailable();
        return std::nullopt;
      },
      retry);
  h.driver->Start();
  while (!h.driver->recording_blocked()) REQUIRE(h.io.run_one_for(std::chrono::seconds(10)) == 1);
  int calls = h.calls;
  h.driver.reset();
  // The retry timer's handler (cancelled) and the runner's queued reports find the driver gone.
  h.io.run_for(std::chrono::seconds(10));
  CHECK(h.io.stopped());
  CHECK(h.calls == calls);
}

}  // namespace kiln::scheduler
