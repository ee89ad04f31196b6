#include "api/engine.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "api/recording.h"
#include "api/run_lock.h"
#include "cli/data_dir.h"
#include "dag/parse.h"
#include "dag/validate.h"
#include "executor/gpu.h"
#include "executor/kubernetes_step_runner.h"
#include "executor/local_artifact_repository.h"
#include "executor/local_step_runner.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "scheduler/driver.h"
#include "scheduler/node_selector.h"

namespace kiln::api {

namespace fs = std::filesystem;

namespace {

// Runs `cleanup` (a request to the cluster after the fact) on `io`, detached; a failure is
// reported on stderr after `failure`, not retried.
void SpawnCleanup(boost::asio::io_context& io, boost::asio::awaitable<Result<void>> cleanup, std::string failure) {
  boost::asio::co_spawn(io, std::move(cleanup), [failure = std::move(failure)](std::exception_ptr, Result<void> done) {
    if (!done) std::fprintf(stderr, "kiln server: %s: %s\n", failure.c_str(), done.error().ToString().c_str());
  });
}

std::string RandomId(size_t n, const char* alphabet) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  size_t len = std::char_traits<char>::length(alphabet);
  for (size_t i = 0; i < n; ++i) out += alphabet[rng() % len];
  return out;
}

std::string NewUid() {
  const char* hex = "0123456789abcdef";
  return RandomId(8, hex) + "-" + RandomId(4, hex) + "-" + RandomId(4, hex) + "-" + RandomId(4, hex) + "-" +
         RandomId(12, hex);
}

SubmitError Refused(Code code, std::string message, std::vector<dag::Diagnostic> problems = {}) {
  return SubmitError{Error(code, std::move(message)), std::move(problems)};
}

}  // namespace

// What every workflow shares: the artifact repository, the GPUs of this machine, the one
// Kubernetes client.
struct Engine::Shared {
  std::unique_ptr<executor::LocalArtifactRepository> artifacts;
  std::vector<int> gpus;
  std::unique_ptr<kube::Client> kube;
  std::string kube_namespace;  // the context's default namespace
  executor::AcceleratorProfiles accelerators;
};

// One workflow being driven. Members are declared in destruction-safe order: the driver goes
// first, then the runners, then the state and the manifests the state points into.
struct Engine::Run {
  std::vector<std::unique_ptr<dag::Manifest>> manifests;  // owned: library and state point here
  std::unique_ptr<dag::Manifest> workflow;
  dag::TemplateLibrary library;
  std::optional<scheduler::WorkflowState> state;
  RunIdentity identity;
  nlohmann::json run_event;  // how it was started (the "Run" event), for resume and resubmit
  bool generated_name = false;  // metadata.name was drawn from generateName by Prepare
  RunLock lock;
  std::unique_ptr<executor::LocalStepRunner> local;
  std::unique_ptr<executor::KubernetesStepRunner> kube;
  std::unique_ptr<scheduler::Driver> driver;
};

Engine::Engine(boost::asio::io_context& io, store::Store& store, EngineOptions options)
    : io_(io), store_(store), options_(std::move(options)), shared_(std::make_unique<Shared>()) {}

Engine::~Engine() { Shutdown(); }

Result<std::unique_ptr<Engine>> Engine::Create(boost::asio::io_context& io, store::Store& store,
                                               EngineOptions options) {
  std::error_code ec;
  fs::create_directories(options.data_dir + "/artifacts", ec);
  if (ec) {
    return MakeError(Code::kFailedPrecondition, "cannot use data directory " + options.data_dir + ": " +
                                                    ec.message() + "; pass a writable --data-dir");
  }
  std::unique_ptr<Engine> engine(new Engine(io, store, options));
  Shared& shared = *engine->shared_;
  shared.artifacts = std::make_unique<executor::LocalArtifactRepository>(options.data_dir + "/artifacts");
  if (options.executor == "kubernetes") {
    auto config = kube::LoadClusterConfig(options.kubeconfig, options.kube_context);
    if (!config) return std::unexpected(config.error());
    shared.kube_namespace = options.kube_namespace.empty() ? config->namespace_ : options.kube_namespace;
    if (!options.accelerators.empty()) {
      auto profiles = executor::AcceleratorProfiles::Load(options.accelerators);
      if (!profiles) return std::unexpected(profiles.error());
      shared.accelerators = std::move(*profiles);
    }
    kube::ClientOptions ko;
    if (Metrics* m = options.metrics) {
      Counter& requests = m->Counter("kiln_kube_requests_total",
                                     "Kubernetes API requests, by method and HTTP status (0: no answer)", {"method", "code"});
      ko.observe = [&requests](std::string_view method, int status) { requests.Add({method, std::to_string(status)}); };
    }
    auto client = kube::Client::Create(io, *config, ko);
    if (!client) return std::unexpected(client.error());
    shared.kube = std::move(*client);
  } else if (options.executor == "local") {
    if (auto gpus = executor::DetectGpus(); gpus) {
      for (const executor::GpuInfo& g : *gpus) shared.gpus.push_back(g.index);
    }
  } else {
    return MakeError(Code::kInvalidArgument, "executor \"" + options.executor + "\" is not one of local, kubernetes");
  }
  return engine;
}

std::expected<std::unique_ptr<Engine::Run>, SubmitError> Engine::Prepare(const SubmitRequest& request,
                                                                       const std::string& uid) {
  auto run = std::make_unique<Run>();
  dag::Diagnostics diags;
  dag::ParseOptions parse;
  // The templates first, so that the workflow's own file may add to them.
  for (const ManifestText& t : request.templates) {
    for (dag::Manifest& m : dag::ParseManifests(t.name, t.text, parse, diags)) {
      run->manifests.push_back(std::make_unique<dag::Manifest>(std::move(m)));
    }
  }
  const size_t first_own = run->manifests.size();
  for (dag::Manifest& m : dag::ParseManifests(request.workflow.name, request.workflow.text, parse, diags)) {
    run->manifests.push_back(std::make_unique<dag::Manifest>(std::move(m)));
  }
  for (const auto& m : run->manifests) run->library.Add(*m);
  const dag::Manifest* wf = nullptr;
  for (size_t i = first_own; i < run->manifests.size(); ++i) {
    const dag::Manifest& m = *run->manifests[i];
    if (m.kind == dag::ManifestKind::kWorkflow || m.kind == dag::ManifestKind::kCronWorkflow) {
      if (wf == nullptr) wf = &m;
    }
    dag::Validate(m, run->library, diags);
  }
  diags.Sort();
  std::vector<dag::Diagnostic> problems;
  for (const dag::Diagnostic& d : diags.items()) {
    if (d.severity != dag::Severity::kError) continue;
    if (d.file != request.workflow.name) continue;  // a broken template only matters if used
    // Parameters without a value are for the submission to supply; NewWorkflow names any that
    // is still missing.
    if ((d.path.starts_with("spec.arguments.parameters[") ||
         d.path.starts_with("spec.workflowSpec.arguments.parameters[")) &&
        d.message.find("needs a value (or valueFrom)") != std::string::npos) {
      continue;
    }
    problems.push_back(d);
  }
  if (!problems.empty()) {
    return std::unexpected(Refused(Code::kInvalidArgument,
                                   std::to_string(problems.size()) + " error(s) in " + request.workflow.name +
                                       "; nothing was submitted",
                                   std::move(problems)));
  }
  if (wf == nullptr) {
    return std::unexpected(Refused(Code::kInvalidArgument, request.workflow.name +
                                                               " holds no Workflow (kind: Workflow or CronWorkflow)"));
  }
  run->workflow = std::make_unique<dag::Manifest>(*wf);
  dag::Manifest& manifest = *run->workflow;
  manifest.metadata.namespace_ = request.namespace_;
  for (const auto& [k, v] : request.labels) manifest.metadata.labels[k] = v;
  if (manifest.metadata.name.empty() && manifest.metadata.generate_name.empty()) {
    return std::unexpected(Refused(Code::kInvalidArgument,
                                   request.workflow.name + ": metadata: needs a name or a generateName"));
  }
  if (!request.name.empty()) {
    manifest.metadata.name = request.name;
  } else if (manifest.metadata.name.empty()) {
    manifest.metadata.name = manifest.metadata.generate_name +
                             (options_.name_suffix ? options_.name_suffix()
                                                   : RandomId(5, "abcdefghijklmnopqrstuvwxyz0123456789"));
    run->generated_name = true;
  }
  auto state = scheduler::NewWorkflow(manifest, run->library, uid, request.parameters, request.entrypoint);
  if (!state) return std::unexpected(Refused(state.error().code(), state.error().message()));
  run->state = std::move(*state);
  run->identity.spec = request.workflow.text;
  run->identity.labels = manifest.metadata.labels;
  nlohmann::json templates = nlohmann::json::array();
  for (const ManifestText& t : request.templates) templates.push_back({{"path", t.name}, {"text", t.text}});
  run->run_event = {{"source", "api"},
                    {"file", ""},
                    {"templates", ""},
                    {"template_files", templates},
                    {"entrypoint", request.entrypoint},
                    {"sandbox", options_.sandbox},
                    {"executor", options_.executor},
                    {"kubeconfig", options_.kubeconfig},
                    {"context", options_.kube_context},
                    {"namespace", options_.kube_namespace},
                    {"ttl_seconds_after_finished", options_.ttl_seconds_after_finished
                                                       ? nlohmann::json(*options_.ttl_seconds_after_finished)
                                                       : nlohmann::json(nullptr)},
                    {"overrides", request.parameters},
                    {"labels", request.labels}};
  return run;
}

std::expected<store::WorkflowRecord, SubmitError> Engine::Submit(SubmitRequest request) {
  const bool dry_run = request.dry_run;
  auto accepted = Accept(std::move(request));
  if (accepted && !dry_run) Start(accepted->uid);
  return accepted;
}

std::expected<store::WorkflowRecord, SubmitError> Engine::Accept(SubmitRequest request) {
  if (shut_down_) return std::unexpected(Refused(Code::kUnavailable, "the server is shutting down; submit again later"));
  const std::string uid = NewUid();
  // A generateName's random suffix may meet a name already taken (with 36^5 suffixes, about one
  // submission in a hundred among a thousand of one prefix). As Kubernetes' apiserver does since
  // 1.32 (RetryGenerateName), another suffix is drawn, up to 8 tries in all; a name the user gave
  // is refused at once.
  constexpr int kGenerateNameTries = 8;
  std::unique_ptr<Run> run;
  store::WorkflowRecord record;
  for (int attempt = 1;; ++attempt) {
    auto prepared = Prepare(request, uid);
    if (!prepared) return std::unexpected(std::move(prepared.error()));
    run = std::move(*prepared);
    const bool generated = run->generated_name;
    run->identity.created = Ms(std::chrono::system_clock::now());
    record = WorkflowRecordOf(*run->state, run->identity);
    if (request.dry_run) return record;
    auto taken = [&]() -> std::expected<store::WorkflowRecord, SubmitError> {
      return std::unexpected(Refused(Code::kAlreadyExists,
                                     "workflow \"" + record.name + "\" already exists in namespace \"" +
                                         record.namespace_ + "\"; use generateName or another name"));
    };
    auto existing = store_.FindWorkflow(record.namespace_, record.name);
    if (!existing) return std::unexpected(Refused(existing.error().code(), existing.error().message()));
    if (*existing) {
      if (generated && attempt < kGenerateNameTries) continue;
      return taken();
    }
    store::Batch first;
    first.workflow_upsert = record;
    store::EventRecord started = EventRow(uid, run->identity.created, "Run");
    started.data_json = run->run_event.dump();
    first.events.push_back(std::move(started));
    auto ok = store_.Apply(first);
    if (ok) break;
    // Two submissions of one name at once: the store's unique key refuses the second.
    if (ok.error().code() == Code::kAlreadyExists) {
      if (generated && attempt < kGenerateNameTries) continue;
      return taken();
    }
    return std::unexpected(Refused(ok.error().code(), "cannot record the workflow: " + ok.error().message()));
  }
  std::lock_guard lock(accepted_mu_);
  accepted_[uid] = std::move(run);
  return record;
}

void Engine::Start(const std::string& uid) {
  std::unique_ptr<Run> run;
  {
    std::lock_guard lock(accepted_mu_);
    auto it = accepted_.find(uid);
    if (it == accepted_.end()) return;
    if (shut_down_) return;  // left Pending in the store; the next start resumes it
    run = std::move(it->second);
    accepted_.erase(it);
  }
  store::WorkflowRecord record = WorkflowRecordOf(*run->state, run->identity);
  Changed(record, ChangeType::kAdded);
  if (auto ok = Drive(std::move(run), /*resume=*/false); !ok) {
    std::fprintf(stderr, "kiln server: workflow %s: %s\n", record.name.c_str(), ok.error().ToString().c_str());
  }
}

Result<void> Engine::Drive(std::unique_ptr<Run> run, bool resume) {
  const std::string uid = run->state->uid;
  const std::string work_dir = cli::WorkflowWorkDir(options_.data_dir, uid);
  if (auto locked = run->lock.Acquire(work_dir); !locked) return locked;
  scheduler::StepRunner* runner = nullptr;
  if (shared_->kube) {
    executor::KubernetesOptions ko;
    ko.job.namespace_ = options_.kube_namespace.empty() && !run->state->namespace_.empty() ? run->state->namespace_
                                                                                         : shared_->kube_namespace;
    ko.job.workflow = run->state->name;
    ko.job.ttl_seconds_after_finished = options_.ttl_seconds_after_finished;
    ko.job.workflow_uid = uid;
    ko.job.confine_resources = true;
    ko.job.accelerators = &shared_->accelerators;
    ko.job.agent_image = options_.agent_image;
    ko.job.agent_path = options_.agent_path;
    ko.job.artifact_pvc = options_.artifact_pvc;
    ko.artifact_root = options_.data_dir + "/artifacts";  // the same volume, as this process sees it
    ko.job.spec = &run->workflow->spec;
    ko.log_path = [data_dir = options_.data_dir, uid](const std::string& node) {
      return cli::StepLogPath(data_dir, uid, node);
    };
    run->kube = std::make_unique<executor::KubernetesStepRunner>(*shared_->kube, std::move(ko));
    runner = run->kube.get();
  } else {
    executor::LocalOptions lo;
    lo.work_dir = work_dir;
    lo.volume_dir = options_.data_dir + "/volumes";
    lo.sandbox = options_.sandbox;
    lo.gpus = shared_->gpus;
    run->local = std::make_unique<executor::LocalStepRunner>(io_, lo, *shared_->artifacts);
    runner = run->local.get();
  }
  Run& r = *run;
  auto recorder = [this, &r](const scheduler::WorkflowState& before, const scheduler::Event& event,
                             const scheduler::Transition& t) -> Result<void> {
    Result<void> recorded = store_.Apply(TransitionBatch(before, event, t, r.identity));
    if (recorded) Count(before, t);
    return recorded;
  };
  auto observer = [this, &r, uid](const scheduler::WorkflowState& after, const scheduler::Transition&) {
    Changed(WorkflowRecordOf(after, r.identity), ChangeType::kModified);
    if (scheduler::IsDone(after.phase)) {
      // Not here: the driver is still on the stack.
      boost::asio::post(io_, [this, uid] { Finished(uid); });
    }
  };
  scheduler::RecordRetry retry;
  retry.on_retry = [this, name = run->state->name](const Error& error, int attempt, std::chrono::milliseconds next) {
    if (options_.metrics) {
      options_.metrics->Counter("kiln_record_retries_total", "Transitions recorded again after the store was unavailable")
          .Add({});
    }
    if (attempt == 1 || attempt % 10 == 0) {
      std::fprintf(stderr, "kiln server: workflow %s: cannot record a transition (attempt %d: %s); retrying in %lld ms\n",
                   name.c_str(), attempt, error.message().c_str(), static_cast<long long>(next.count()));
    }
  };
  run->driver = std::make_unique<scheduler::Driver>(io_, *run->state, run->library, *runner, recorder, observer,
                                                    scheduler::Clock{}, std::move(retry));
  scheduler::Driver& driver = *run->driver;
  runs_[uid] = std::move(run);
  if (resume) driver.Resume();
  driver.Start();
  return {};
}

void Engine::Finished(const std::string& uid) {
  auto it = runs_.find(uid);
  if (it == runs_.end() || !it->second->driver->done()) return;
  if (it->second->driver->error()) {
    std::fprintf(stderr, "kiln server: workflow %s stopped: cannot record a transition: %s\n",
                 it->second->state->name.c_str(), it->second->driver->error()->ToString().c_str());
  }
  Run& run = *it->second;
  if (run.kube && shared_->kube && run.state->manifest) {
    const dag::WorkflowSpec& spec = run.state->manifest->spec;
    if (spec.volume_claim_templates.is_array() && !spec.volume_claim_templates.empty() &&
        scheduler::IsDone(run.state->phase) &&
        executor::CollectClaims(spec, run.state->phase == scheduler::Phase::kSucceeded)) {
      // spec.volumeClaimGC: the workflow's claims go (Argo's default: when it Succeeded).
      SpawnCleanup(io_, executor::DeleteWorkflowClaims(*shared_->kube, run.kube->job_context().namespace_, uid),
                   "workflow " + run.state->name + " ended, but its claims in namespace " +
                       run.kube->job_context().namespace_ + " were not deleted");
    }
  }
  runs_.erase(it);
  std::erase_if(waiting_, [&](const auto& e) { return e.first.starts_with(uid + "\n"); });
  if (delete_when_done_.erase(uid) > 0) {
    if (auto ok = Delete(uid); !ok) {
      std::fprintf(stderr, "kiln server: cannot delete workflow %s: %s\n", uid.c_str(), ok.error().ToString().c_str());
    }
  }
}

void Engine::Count(const scheduler::WorkflowState& before, const scheduler::Transition& t) {
  if (options_.metrics == nullptr) return;
  Metrics& m = *options_.metrics;
  static const std::vector<double> kSeconds = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
  const std::string& uid = before.uid;
  for (const scheduler::Action& a : t.actions) {
    if (const auto* l = std::get_if<scheduler::LaunchStep>(&a)) waiting_[uid + "\n" + l->node] = t.now;
  }
  for (const scheduler::NodeState& n : t.nodes) {
    if (n.type != scheduler::NodeType::kPod) continue;
    auto it = before.nodes.find(n.id);
    const bool was_started = it != before.nodes.end() && it->second.started != scheduler::Time{};
    const bool was_done = it != before.nodes.end() && scheduler::IsDone(it->second.phase);
    auto w = waiting_.find(uid + "\n" + n.id);
    if (w != waiting_.end() && (n.started != scheduler::Time{} || scheduler::IsDone(n.phase))) {
      if (!was_started && n.started != scheduler::Time{}) {
        m.Histogram("kiln_step_scheduling_latency_seconds",
                    "From the controller deciding to launch a step to the step running", {}, kSeconds)
            .Observe({}, std::chrono::duration<double>(n.started - w->second).count());
      }
      waiting_.erase(w);
    }
    if (scheduler::IsDone(n.phase) && !was_done) {
      const std::string phase(scheduler::PhaseName(n.phase));
      m.Counter("kiln_steps_total", "Steps (pods) finished, by phase", {"phase"}).Add({phase});
      if (n.started != scheduler::Time{} && n.finished >= n.started) {
        m.Histogram("kiln_step_duration_seconds", "How long steps ran, by phase", {"phase"}, kSeconds)
            .Observe({phase}, std::chrono::duration<double>(n.finished - n.started).count());
      }
    }
  }
  if (t.workflow_phase && *t.workflow_phase != before.phase && scheduler::IsDone(*t.workflow_phase)) {
    m.Counter("kiln_workflows_finished_total", "Workflows finished since the server started, by phase", {"phase"})
        .Add({scheduler::PhaseName(*t.workflow_phase)});
  }
  m.Gauge("kiln_steps_waiting", "Steps decided but not yet running (waiting for resources or a node)")
      .Set({}, static_cast<double>(waiting_.size()));
}

void Engine::Changed(const store::WorkflowRecord& w, ChangeType type) {
  // A listener may unsubscribe (a closed watch) while we call them: iterate over a copy.
  auto listeners = listeners_;
  for (auto& [id, listener] : listeners) listener(w, type);
}

Result<size_t> Engine::ResumeUnfinished() {
  size_t resumed = 0;
  for (const char* phase : {"Running", "Pending"}) {
    store::WorkflowFilter filter;
    filter.phase = phase;
    filter.limit = 500;
    std::vector<store::WorkflowRecord> todo;
    for (;;) {
      auto page = store_.ListWorkflows(filter);
      if (!page) return std::unexpected(page.error());
      for (store::WorkflowRecord& w : page->workflows) todo.push_back(std::move(w));
      if (page->continue_token.empty()) break;
      filter.continue_token = page->continue_token;
    }
    for (const store::WorkflowRecord& w : todo) {
      if (runs_.count(w.uid)) continue;
      auto rebuilt = Rebuild(w);
      if (!rebuilt) {
        const Code code = rebuilt.error().code();
        if (code == Code::kUnavailable || code == Code::kInternal) return std::unexpected(rebuilt.error());  // the store's
        std::fprintf(stderr, "kiln server: workflow %s/%s cannot be resumed: %s\n", w.namespace_.c_str(),
                     w.name.c_str(), rebuilt.error().message().c_str());
        continue;
      }
      std::unique_ptr<Run> run = std::move(*rebuilt);
      if (scheduler::IsDone(run->state->phase)) continue;
      if (auto ok = Drive(std::move(run), /*resume=*/true); !ok) {
        std::fprintf(stderr, "kiln server: workflow %s/%s not resumed: %s\n", w.namespace_.c_str(), w.name.c_str(),
                     ok.error().message().c_str());
        continue;
      }
      ++resumed;
    }
  }
  return resumed;
}

Result<std::unique_ptr<Engine::Run>> Engine::Rebuild(const store::WorkflowRecord& w) {
  auto events = store_.ListEvents(w.uid, 0, 0);
  if (!events) return std::unexpected(events.error());
  std::optional<nlohmann::json> run_event;
  std::vector<scheduler::RecordedEvent> inputs;
  for (const store::EventRecord& e : *events) {
    if (e.kind == "Run") {
      run_event = nlohmann::json::parse(e.data_json, nullptr, false);
    } else if (e.kind == "Input") {
      auto event = scheduler::EventFromJson(nlohmann::json::parse(e.data_json, nullptr, false));
      if (!event) return MakeError(Code::kFailedPrecondition, "its event log cannot be read back");
      inputs.push_back({std::move(*event), scheduler::Time(std::chrono::milliseconds(e.at))});
    }
  }
  if (!run_event || !run_event->is_object()) return MakeError(Code::kFailedPrecondition, "its event log cannot be read back");
  SubmitRequest request;
  request.namespace_ = w.namespace_;
  request.workflow = {w.name, w.spec};
  request.entrypoint = run_event->value("entrypoint", "");
  // The parameters the run started with: a retry may have changed the recorded ones since, and
  // the replay brings them forward again.
  if (auto o = run_event->find("overrides"); o != run_event->end() && o->is_object()) {
    for (auto it = o->begin(); it != o->end(); ++it) {
      if (it.value().is_string()) request.parameters[it.key()] = it.value().get<std::string>();
    }
  } else if (!w.parameters_json.empty()) {
    auto j = nlohmann::json::parse(w.parameters_json, nullptr, false);
    if (j.is_object()) request.parameters = j.get<std::map<std::string, std::string>>();
  }
  if (auto files = run_event->find("template_files"); files != run_event->end() && files->is_array()) {
    for (const auto& f : *files) request.templates.push_back({f.value("path", "template"), f.value("text", "")});
  }
  request.name = w.name;  // the recorded name, not a fresh one from generateName
  auto prepared = Prepare(request, w.uid);
  if (!prepared) return std::unexpected(prepared.error().error);
  std::unique_ptr<Run> run = std::move(*prepared);
  run->identity.created = w.created_at;
  run->run_event = *run_event;
  scheduler::Replay(*run->state, run->library, inputs);
  return run;
}

Result<void> Engine::Stop(const std::string& uid, std::string message) {
  auto it = runs_.find(uid);
  if (it == runs_.end()) return MakeError(Code::kFailedPrecondition, "the workflow is not running");
  scheduler::CancelRequested stop;
  stop.message = message.empty() ? "Stopped by user" : std::move(message);
  stop.run_exit_handler = true;
  it->second->driver->Post(std::move(stop));
  return {};
}

Result<void> Engine::Terminate(const std::string& uid) {
  auto it = runs_.find(uid);
  if (it == runs_.end()) return MakeError(Code::kFailedPrecondition, "the workflow is not running");
  scheduler::CancelRequested stop;
  stop.message = "Terminated by user";
  it->second->driver->Post(std::move(stop));
  return {};
}

Result<size_t> Engine::ResumeSuspended(const std::string& uid) {
  auto it = runs_.find(uid);
  if (it == runs_.end() || it->second->driver->done()) return MakeError(Code::kFailedPrecondition, "the workflow is not running");
  const scheduler::WorkflowState& state = *it->second->state;
  size_t n = 0;
  for (const auto& [id, node] : state.nodes) {
    if (node.type == scheduler::NodeType::kSuspend && node.phase == scheduler::Phase::kRunning) ++n;
  }
  if (n == 0 && !state.suspended) {
    return MakeError(Code::kFailedPrecondition, "the workflow is not suspended and no node of it waits for a resume");
  }
  it->second->driver->DeliverNow(scheduler::ResumeRequested{});
  return n;
}

Result<void> Engine::Suspend(const std::string& uid) {
  auto it = runs_.find(uid);
  if (it == runs_.end() || it->second->driver->done()) {
    return MakeError(Code::kFailedPrecondition, "the workflow is not running; only a running workflow can be suspended");
  }
  it->second->driver->DeliverNow(scheduler::SuspendRequested{});
  return {};
}

Result<void> Engine::Retry(const std::string& uid, scheduler::RetryRequested retry) {
  if (shut_down_) return MakeError(Code::kUnavailable, "the server is shutting down; retry again later");
  if (auto selector = scheduler::ParseNodeSelector(retry.node_field_selector); !selector) {
    return std::unexpected(selector.error());
  }
  if (auto it = runs_.find(uid); it != runs_.end()) {
    if (!it->second->driver->done()) return MakeError(Code::kFailedPrecondition, "workflow must be Failed/Error to retry");
    // Finished, and its Finished() not run yet: rebuilt from the store like any finished one.
    runs_.erase(it);
    std::erase_if(waiting_, [&](const auto& e) { return e.first.starts_with(uid + "\n"); });
  }
  auto w = store_.GetWorkflow(uid);
  if (!w) return std::unexpected(w.error());
  if (!*w) return MakeError(Code::kNotFound, "workflow not found");
  if ((*w)->phase != "Failed" && (*w)->phase != "Error") {
    return MakeError(Code::kFailedPrecondition, "workflow must be Failed/Error to retry");
  }
  auto rebuilt = Rebuild(**w);
  if (!rebuilt) {
    return MakeError(rebuilt.error().code(), "the workflow cannot be rebuilt from its records: " + rebuilt.error().message());
  }
  std::unique_ptr<Run> run = std::move(*rebuilt);
  if (!scheduler::IsDone(run->state->phase) || (run->state->phase != scheduler::Phase::kFailed &&
                                                run->state->phase != scheduler::Phase::kError)) {
    return MakeError(Code::kFailedPrecondition, "workflow must be Failed/Error to retry (its recorded events end " +
                                                    std::string(scheduler::PhaseName(run->state->phase)) + ")");
  }
  for (const auto& [k, v] : retry.parameters) {
    if (!run->state->parameters.count(k)) {
      return MakeError(Code::kInvalidArgument, "parameters: the workflow declares no parameter \"" + k + "\"");
    }
  }
  if (auto ok = Drive(std::move(run), /*resume=*/false); !ok) return ok;
  runs_.at(uid)->driver->DeliverNow(std::move(retry));
  return {};
}

std::expected<store::WorkflowRecord, SubmitError> Engine::Resubmit(const std::string& uid) {
  auto w = store_.GetWorkflow(uid);
  if (!w) return std::unexpected(Refused(w.error().code(), w.error().message()));
  if (!*w) return std::unexpected(Refused(Code::kNotFound, "workflow not found"));
  auto events = store_.ListEvents(uid, 0, 1);
  if (!events) return std::unexpected(Refused(events.error().code(), events.error().message()));
  nlohmann::json run_event;
  if (!events->empty() && events->front().kind == "Run") {
    run_event = nlohmann::json::parse(events->front().data_json, nullptr, false);
  }
  if (!run_event.is_object()) run_event = nlohmann::json::object();
  SubmitRequest request;
  request.namespace_ = (*w)->namespace_;
  request.workflow = {(*w)->name, (*w)->spec};
  request.entrypoint = run_event.value("entrypoint", "");
  if (auto o = run_event.find("overrides"); o != run_event.end() && o->is_object()) {
    request.parameters = o->get<std::map<std::string, std::string>>();
  }
  if (auto files = run_event.find("template_files"); files != run_event.end() && files->is_array()) {
    for (const auto& f : *files) request.templates.push_back({f.value("path", "template"), f.value("text", "")});
  }
  if (auto l = run_event.find("labels"); l != run_event.end() && l->is_object()) {
    request.labels = l->get<std::map<std::string, std::string>>();
  }
  // As Argo does: a new name (the original's with a new suffix), and a label naming the original.
  request.name = (*w)->name + "-" + RandomId(5, "abcdefghijklmnopqrstuvwxyz0123456789");
  request.labels["workflows.argoproj.io/resubmitted-from-workflow"] = (*w)->name;
  return Submit(std::move(request));
}

Result<void> Engine::Delete(const std::string& uid) {
  if (IsRunning(uid)) {
    delete_when_done_[uid] = true;
    return Terminate(uid);
  }
  auto w = store_.GetWorkflow(uid);
  if (!w) return std::unexpected(w.error());
  if (!*w) return MakeError(Code::kNotFound, "workflow not found");
  if (auto ok = store_.DeleteWorkflow(uid); !ok) return ok;
  if (shared_->kube) {
    // Its Jobs go with it (Background: their pods too); the record is gone already, so a
    // failure is reported, not retried.
    std::string ns = options_.kube_namespace.empty() && !(*w)->namespace_.empty() ? (*w)->namespace_
                                                                                : shared_->kube_namespace;
    SpawnCleanup(io_, executor::DeleteWorkflowJobs(*shared_->kube, ns, uid),
                 "workflow " + (*w)->name + " deleted, but not its Jobs in namespace " + ns);
  }
  std::error_code ec;
  fs::remove_all(cli::WorkflowWorkDir(options_.data_dir, uid), ec);
  Changed(**w, ChangeType::kDeleted);
  return {};
}

bool Engine::IsRunning(const std::string& uid) const { return runs_.count(uid) > 0; }

size_t Engine::running() const { return runs_.size(); }

std::string Engine::LogPath(const std::string& uid, const std::string& node) const {
  return cli::StepLogPath(options_.data_dir, uid, node);
}

bool Engine::StepDone(const std::string& uid, const std::string& node) const {
  auto it = runs_.find(uid);
  if (it == runs_.end() || !it->second->state) return true;
  auto n = it->second->state->nodes.find(node);
  return n != it->second->state->nodes.end() && scheduler::IsDone(n->second.phase);
}

std::shared_ptr<kube::StreamCancel> Engine::ReadPodLog(const std::string& uid, const std::string& node, bool follow,
                                                       std::function<bool(std::string_view)> on_data,
                                                       std::function<void(Result<void>)> on_end) {
  auto it = runs_.find(uid);
  if (it == runs_.end() || !it->second->kube) return nullptr;
  return it->second->kube->ReadLog(node, follow, std::move(on_data), std::move(on_end));
}

int Engine::Subscribe(ChangeListener listener) {
  int id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void Engine::Unsubscribe(int id) { listeners_.erase(id); }

void Engine::Shutdown() {
  shut_down_ = true;
  runs_.clear();
  if (shared_ && shared_->kube) shared_->kube->Shutdown();
}

}  // namespace kiln::api
