// kiln run: runs a workflow on this machine with the local executor and the embedded store.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "api/recording.h"
#include "api/run_lock.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "cli/kubernetes_flags.h"
#include "cli/data_dir.h"
#include "cli/live_tree.h"
#include "dag/lint.h"
#include "executor/gpu.h"
#include "executor/kubernetes_step_runner.h"
#include "executor/local_artifact_repository.h"
#include "executor/local_step_runner.h"
#include "kube/kubeconfig.h"
#include "scheduler/driver.h"
#include "store/sqlite_store.h"

namespace kiln::cli {

namespace fs = std::filesystem;
using scheduler::NodeState;
using scheduler::Phase;

namespace {

struct RunFlags {
  std::string file;
  std::vector<std::string> params;
  std::string parameter_file;
  std::string entrypoint;
  std::string data_dir;
  std::string templates;
  std::string output = "text";
  bool no_sandbox = false;
  std::string executor = "local";  // local | kubernetes
  std::string kubeconfig;
  std::string kube_context;
  std::string kube_namespace;
  int64_t ttl_seconds_after_finished = -1;  // -1: not set (finished Jobs stay)
  std::string accelerators;  // accelerator profiles file
  std::string agent_image;
  std::string agent_path;
  std::string artifact_pvc;
  bool fresh = false;
  bool no_tree = false;
  std::string durability = "full";
};

// How a run shows its progress: the live tree (on a terminal), one line per transition (off a
// terminal, or --no-tree; tests read these lines), or nothing until the final JSON (-o json).
enum class Progress { kTree, kLines, kJson };

Progress ProgressOf(const std::string& output, bool no_tree) {
  if (output == "json") return Progress::kJson;
  return !no_tree && StdoutIsCapableTerminal() ? Progress::kTree : Progress::kLines;
}

std::string RandomId(size_t n, const char* alphabet) {
  std::random_device rd;
  std::string out;
  size_t len = std::char_traits<char>::length(alphabet);
  for (size_t i = 0; i < n; ++i) out += alphabet[rd() % len];
  return out;
}

std::string Clock(scheduler::Time t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

Result<std::map<std::string, std::string>> ReadParameters(const RunFlags& flags) {
  std::map<std::string, std::string> params;
  if (!flags.parameter_file.empty()) {
    std::ifstream in(flags.parameter_file);
    if (!in) return MakeError(Code::kNotFound, "cannot read parameter file " + flags.parameter_file);
    std::stringstream buf;
    buf << in.rdbuf();
    auto j = nlohmann::json::parse(buf.str(), nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        params[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      }
    } else {
      // YAML's simplest form: "name: value" per line.
      std::string line;
      std::istringstream lines(buf.str());
      int n = 0;
      while (std::getline(lines, line)) {
        ++n;
        std::string_view t = Trim(line);
        if (t.empty() || t[0] == '#') continue;
        size_t colon = t.find(':');
        if (colon == std::string_view::npos) {
          return MakeError(Code::kInvalidArgument, flags.parameter_file + ":" + std::to_string(n) +
                                                       ": expected \"name: value\" (or a JSON object)");
        }
        std::string value(Trim(t.substr(colon + 1)));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
          value = value.substr(1, value.size() - 2);
        }
        params[std::string(Trim(t.substr(0, colon)))] = value;
      }
    }
  }
  for (const std::string& p : flags.params) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return MakeError(Code::kInvalidArgument, "-p " + p + ": expected name=value");
    }
    params[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return params;
}

using api::RunLock;

// What `kiln run` recorded about how it was started, so `kiln resume` can rebuild the run.
struct RunRecord {
  std::string file;       // absolute path of the manifest (its text is in the workflow row)
  std::string templates;  // absolute path given to --templates, or ""
  std::string entrypoint;
  bool sandbox = true;
  // --executor kubernetes: where the Jobs go (kubeconfig path, "" for in-cluster; context;
  // namespace override) and how long finished Jobs stay.
  std::string executor = "local";
  std::string kubeconfig;
  std::string kube_context;
  std::string kube_namespace;
  std::optional<int64_t> ttl_seconds_after_finished;
  std::string accelerators;  // absolute path of the accelerator profiles file, or ""
  std::string agent_image;   // the kiln exec agent (executor/kubernetes_job.h JobContext)
  std::string agent_path;
  std::string artifact_pvc;  // the artifact repository's volume (JobContext::artifact_pvc)
};

// A workflow ready to drive: its manifests (owned here, so the state's pointers stay valid),
// template library and state.
struct Prepared {
  dag::LintResult lint;
  std::unique_ptr<dag::Manifest> manifest;
  dag::TemplateLibrary library;
  std::optional<scheduler::WorkflowState> state;
  api::RunIdentity identity;  // spec text, creation time, labels
  RunRecord run;
};

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// Lints `file` (and `templates`), prints the problems, and finds the Workflow (or CronWorkflow,
// whose workflowSpec runs once) to run. The error says what to fix; problems were printed.
Result<const dag::Manifest*> LoadWorkflow(Prepared& p, const std::string& file, const std::string& templates,
                                          const std::string& display_file, const std::string& command) {
  std::vector<std::string> paths{file};
  if (!templates.empty()) paths.push_back(templates);
  p.lint = dag::Lint(paths, dag::LintOptions{});
  // Errors in the workflow's own file stop the run; those in other --templates files are shown
  // (the templates they concern are then missing, which the run reports if it needs them).
  size_t errors = 0;
  for (const dag::Diagnostic& d : p.lint.diags.items()) {
    if (d.severity != dag::Severity::kError) continue;
    // A workflow parameter without a value is for `kiln run -p` to supply (as `argo submit -p`
    // does); NewWorkflow names any that is still missing.
    if (d.file == file && (d.path.starts_with("spec.arguments.parameters[") ||
                           d.path.starts_with("spec.workflowSpec.arguments.parameters[")) &&
        d.message.find("needs a value (or valueFrom)") != std::string::npos) {
      continue;
    }
    if (d.file == file) ++errors;
    std::fprintf(stderr, "%s%s\n", d.file == file ? "" : "warning: ", d.ToString().c_str());
  }
  if (errors > 0) {
    return MakeError(Code::kInvalidArgument,
                     std::to_string(errors) + " error(s) in " + display_file + "; nothing was " + command);
  }
  const dag::Manifest* wf = nullptr;
  for (const dag::Manifest& m : p.lint.manifests) {
    if (m.file == file && (m.kind == dag::ManifestKind::kWorkflow || m.kind == dag::ManifestKind::kCronWorkflow)) {
      wf = &m;
      break;
    }
  }
  if (wf == nullptr) {
    return MakeError(Code::kInvalidArgument, display_file + " holds no Workflow (kind: Workflow or CronWorkflow) to run");
  }
  for (const dag::Manifest& m : p.lint.manifests) p.library.Add(m);
  return wf;
}

// Runs (or continues) `p.state` to its end, recording every transition. Returns the exit code.
int Drive(Prepared& p, store::Store& st, const std::string& data_dir, Progress progress,
          bool resume) {
  const bool json_out = progress == Progress::kJson;
  scheduler::WorkflowState& state = *p.state;
  const std::string uid = state.uid;
  RunLock lock;
  if (auto locked = lock.Acquire(WorkflowWorkDir(data_dir, uid)); !locked) {
    std::fprintf(stderr, "kiln: %s: %s\n", state.name.c_str(), locked.error().message().c_str());
    return 1;
  }
  if (!json_out) {
    std::printf("%s  workflow %s (uid %s) %s; data in %s\n", Clock(std::chrono::system_clock::now()).c_str(),
                state.name.c_str(), uid.c_str(), resume ? "resumed" : "started", data_dir.c_str());
  }

  boost::asio::io_context io;
  // The Kubernetes executor: one Job per step attempt (executor/kubernetes_step_runner.h).
  std::unique_ptr<kube::Client> kube_client;
  std::unique_ptr<scheduler::StepRunner> kube_runner;
  executor::AcceleratorProfiles accelerators;  // built-in unless --accelerators
  if (p.run.executor == "kubernetes") {
    auto config = kube::LoadClusterConfig(p.run.kubeconfig, p.run.kube_context);
    if (!config) {
      std::fprintf(stderr, "kiln: %s\n", config.error().ToString().c_str());
      return 1;
    }
    if (!p.run.kube_namespace.empty()) config->namespace_ = p.run.kube_namespace;
    if (!p.run.accelerators.empty()) {
      auto profiles = executor::AcceleratorProfiles::Load(p.run.accelerators);
      if (!profiles) {
        std::fprintf(stderr, "kiln: %s\n", profiles.error().ToString().c_str());
        return 1;
      }
      accelerators = std::move(*profiles);
    }
    auto client = kube::Client::Create(io, *config);
    if (!client) {
      std::fprintf(stderr, "kiln: %s\n", client.error().ToString().c_str());
      return 1;
    }
    kube_client = std::move(*client);
    executor::KubernetesOptions ko;
    ko.job.namespace_ = config->namespace_;
    ko.job.ttl_seconds_after_finished = p.run.ttl_seconds_after_finished;
    ko.job.workflow = state.name;
    ko.job.workflow_uid = uid;
    ko.job.accelerators = &accelerators;
    ko.job.agent_image = p.run.agent_image;
    ko.job.agent_path = p.run.agent_path;
    ko.job.artifact_pvc = p.run.artifact_pvc;
    ko.artifact_root = data_dir + "/artifacts";  // the same volume, as this process sees it
    ko.job.spec = state.manifest ? &state.manifest->spec : nullptr;
    // kiln's copy of each step's log, where `kiln logs` reads the local executor's.
    ko.log_path = [data_dir, uid](const std::string& node) { return StepLogPath(data_dir, uid, node); };
    kube_runner = std::make_unique<executor::KubernetesStepRunner>(*kube_client, std::move(ko));
  }
  auto gpus = kube_runner ? Result<std::vector<executor::GpuInfo>>(std::vector<executor::GpuInfo>{})
                          : executor::DetectGpus();
  executor::LocalOptions options;
  options.work_dir = WorkflowWorkDir(data_dir, uid);  // cli/data_dir.h: kiln logs reads there
  options.volume_dir = data_dir + "/volumes";
  std::error_code ec;
  fs::create_directories(data_dir + "/artifacts", ec);
  options.sandbox = p.run.sandbox;
  if (gpus) {
    for (const executor::GpuInfo& g : *gpus) options.gpus.push_back(g.index);
  } else {
    std::fprintf(stderr, "warning: no GPU can be used by steps: %s\n", gpus.error().message().c_str());
  }
  executor::LocalArtifactRepository artifacts(data_dir + "/artifacts");  // cli/data_dir.h
  executor::LocalStepRunner local_runner(io, options, artifacts);
  if (!kube_runner && !local_runner.sandbox_warning().empty()) {
    std::fprintf(stderr, "warning: %s\n", local_runner.sandbox_warning().c_str());
  }
  scheduler::StepRunner& runner = kube_runner ? *kube_runner : static_cast<scheduler::StepRunner&>(local_runner);

  auto recorder = [&](const scheduler::WorkflowState& before, const scheduler::Event& event,
                      const scheduler::Transition& t) -> Result<void> {
    return st.Apply(api::TransitionBatch(before, event, t, p.identity));
  };
  std::map<std::string, std::pair<Phase, std::string>> shown;  // a step's line again when either changes
  std::unique_ptr<LiveTree> live;  // Progress::kTree; made once the driver exists
  auto observer = [&](const scheduler::WorkflowState& after, const scheduler::Transition& t) {
    if (live) {
      live->Changed();
    } else if (!json_out) {
      for (const NodeState& n : t.nodes) {
        if (n.type != scheduler::NodeType::kPod && n.type != scheduler::NodeType::kSkipped &&
            n.type != scheduler::NodeType::kSuspend) {
          continue;
        }
        auto it = shown.find(n.id);
        if (it != shown.end() && it->second.first == n.phase && it->second.second == n.message) continue;
        shown[n.id] = {n.phase, n.message};
        std::printf("%s  %-40s %-9s %s\n", Clock(t.now).c_str(), n.id.c_str(),
                    std::string(scheduler::PhaseName(n.phase)).c_str(), n.message.c_str());
      }
      std::fflush(stdout);
    }
    if (scheduler::IsDone(after.phase)) {
      if (live) live->Finish();
      io.stop();
    }
  };
  scheduler::Driver driver(io, state, p.library, runner, recorder, observer);
  if (progress == Progress::kTree) {
    live = std::make_unique<LiveTree>(io, state, [&driver] { return !driver.done(); });
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int) {
    if (!e) driver.Post(scheduler::CancelRequested{});
  });
  if (resume) driver.Resume();
  driver.Start();
  if (!driver.done()) io.run();
  if (live) live->Finish();  // the final tree stays on screen, above the summary
  const bool has_claims = kube_runner && state.manifest && state.manifest->spec.volume_claim_templates.is_array() &&
                          !state.manifest->spec.volume_claim_templates.empty();
  const std::string claims_ns =
      kube_runner ? static_cast<executor::KubernetesStepRunner&>(*kube_runner).job_context().namespace_ : "";
  if (has_claims && scheduler::IsDone(state.phase) && !executor::CollectClaims(state.manifest->spec, state.phase == Phase::kSucceeded)) {
    std::fprintf(stderr, "kiln: the workflow's volumeClaimTemplates claims are kept (volumeClaimGC); delete them with: "
                         "kubectl -n %s delete pvc -l kiln.dev/workflow-uid=%s\n",
                 claims_ns.c_str(), executor::LabelValue(uid).c_str());
  }
  if (has_claims && driver.done() && scheduler::IsDone(state.phase) &&
      executor::CollectClaims(state.manifest->spec, state.phase == Phase::kSucceeded)) {
    // spec.volumeClaimGC: the workflow's claims go (Argo's default: when it Succeeded).
    io.restart();
    signals.cancel();  // the driver's wait (it ends with operation_aborted)
    signals.async_wait([&](const boost::system::error_code& e, int) {
      if (!e) io.stop();  // Ctrl-C while the claims are deleted: leave them
    });
    std::string ns = claims_ns;
    boost::asio::co_spawn(io, executor::DeleteWorkflowClaims(*kube_client, ns, uid),
                          [&](std::exception_ptr, Result<void> deleted) {
                            if (!deleted) {
                              std::fprintf(stderr, "warning: cannot delete the workflow's volumeClaimTemplates claims: %s\n",
                                           deleted.error().ToString().c_str());
                            }
                            io.stop();
                          });
    io.run();
  }
  if (driver.error()) {
    std::fprintf(stderr, "kiln: stopped: cannot record a transition: %s\n", driver.error()->ToString().c_str());
    return 1;
  }

  // Summary.
  const scheduler::WorkflowState& s = state;
  auto duration = [](const NodeState& n) {
    if (n.started == scheduler::Time{} || n.finished == scheduler::Time{}) return std::string("-");
    double secs = std::chrono::duration<double>(n.finished - n.started).count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", secs);
    return std::string(buf);
  };
  if (json_out) {
    nlohmann::json out;
    out["uid"] = s.uid;
    out["name"] = s.name;
    out["phase"] = scheduler::PhaseName(s.phase);
    out["message"] = s.message;
    nlohmann::json nodes = nlohmann::json::object();
    for (const auto& [id, n] : s.nodes) {
      nodes[id] = {{"phase", scheduler::PhaseName(n.phase)}, {"type", scheduler::NodeTypeName(n.type)},
                   {"message", n.message}, {"outputs", n.outputs}};
      if (n.exit_code) nodes[id]["exitCode"] = *n.exit_code;
    }
    out["nodes"] = nodes;
    if (!s.global_parameters.empty()) out["outputs"]["parameters"] = s.global_parameters;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("\n%-44s %-10s %-8s %s\n", "STEP", "PHASE", "TIME", "MESSAGE");
    std::vector<const NodeState*> leaves;
    for (const auto& [id, n] : s.nodes) {
      if (n.type == scheduler::NodeType::kPod || n.type == scheduler::NodeType::kSkipped) leaves.push_back(&n);
    }
    std::sort(leaves.begin(), leaves.end(), [](const NodeState* a, const NodeState* b) {
      return a->started != b->started ? a->started < b->started : a->id < b->id;
    });
    for (const NodeState* n : leaves) {
      std::printf("%-44s %-10s %-8s %s\n", n->id.c_str(), std::string(scheduler::PhaseName(n->phase)).c_str(),
                  duration(*n).c_str(), n->message.c_str());
    }
    const NodeState* root = s.nodes.count(s.root) ? &s.nodes.at(s.root) : nullptr;
    if ((root && !root->outputs.empty()) || !s.global_parameters.empty()) {
      std::printf("\noutputs:\n");
      if (root) {
        for (const auto& [k, v] : root->outputs) std::printf("  %s: %s\n", k.c_str(), v.c_str());
      }
      for (const auto& [k, v] : s.global_parameters) std::printf("  workflow.outputs.parameters.%s: %s\n", k.c_str(), v.c_str());
    }
    std::printf("\nworkflow %s %s%s%s (%s)\n", s.name.c_str(), std::string(scheduler::PhaseName(s.phase)).c_str(),
                s.message.empty() ? "" : ": ", s.message.c_str(), root ? duration(*root).c_str() : "-");
  }
  return s.phase == Phase::kSucceeded ? 0 : 1;
}

// Opens (creating when needed) the store of a data directory `kiln run` writes to.
Result<std::unique_ptr<store::SqliteStore>> OpenWritableStore(const std::string& data_dir,
                                                               const std::string& durability) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec || ::access(data_dir.c_str(), W_OK) != 0) {
    return MakeError(Code::kFailedPrecondition, "cannot use data directory " + data_dir + ": " +
                                                    (ec ? ec.message() : std::string("not writable")) +
                                                    "; pass a writable --data-dir");
  }
  store::SqliteOptions options;
  options.durability = durability == "process" ? store::Durability::kNormal : store::Durability::kFull;
  return store::SqliteStore::Open(DatabasePath(data_dir), options);
}

// Rebuilds workflow `w` from the store: its manifest text, how it was run, and its recorded
// events replayed through the controller.
Result<void> Rebuild(Prepared& p, store::Store& st, const store::WorkflowRecord& w) {
  auto events = st.ListEvents(w.uid, 0, 0);
  if (!events) return std::unexpected(events.error());
  std::optional<nlohmann::json> run;
  std::vector<scheduler::RecordedEvent> inputs;
  for (const store::EventRecord& e : *events) {
    if (e.kind == "Run") {
      run = nlohmann::json::parse(e.data_json, nullptr, false);
    } else if (e.kind == "Input") {
      auto j = nlohmann::json::parse(e.data_json, nullptr, false);
      auto event = scheduler::EventFromJson(j);
      if (!event) {
        return MakeError(Code::kInternal, "event " + std::to_string(e.seq) + " of workflow " + w.name +
                                              " cannot be read back; the run cannot be resumed");
      }
      inputs.push_back({std::move(*event), scheduler::Time(std::chrono::milliseconds(e.at))});
    }
  }
  if (!run || run->is_discarded()) {
    return MakeError(Code::kFailedPrecondition, "workflow " + w.name + " was not recorded by a `kiln run` that can be resumed");
  }
  p.run.file = run->value("file", "");
  p.run.templates = run->value("templates", "");
  p.run.entrypoint = run->value("entrypoint", "");
  p.run.sandbox = run->value("sandbox", true);
  p.run.executor = run->value("executor", "local");
  p.run.kubeconfig = run->value("kubeconfig", "");
  p.run.kube_context = run->value("context", "");
  p.run.kube_namespace = run->value("namespace", "");
  if (auto ttl = run->find("ttl_seconds_after_finished"); ttl != run->end() && ttl->is_number_integer()) {
    p.run.ttl_seconds_after_finished = ttl->get<int64_t>();
  }
  p.run.accelerators = run->value("accelerators", "");
  p.run.agent_image = run->value("agentImage", "");
  p.run.agent_path = run->value("agentPath", "");
  p.run.artifact_pvc = run->value("artifactPvc", "");
  p.identity.spec = w.spec;
  p.identity.created = w.created_at;
  // The manifest and the --templates files as they were recorded (the files may have changed
  // since, and the run must go on with what it started with).
  const fs::path scratch = fs::temp_directory_path() / ("kiln-resume-" + w.uid);
  std::error_code ec;
  fs::remove_all(scratch, ec);
  fs::create_directories(scratch / "templates", ec);
  if (ec) return MakeError(Code::kUnavailable, "cannot create " + scratch.string() + ": " + ec.message());
  std::string snapshot = (scratch / "workflow.yaml").string();
  {
    std::ofstream out(snapshot, std::ios::trunc);
    out << w.spec;
  }
  std::string templates = p.run.templates;
  if (auto files = run->find("template_files"); files != run->end() && files->is_array()) {
    size_t i = 0;
    for (const auto& f : *files) {
      std::string name = std::to_string(i++) + "-" + fs::path(f.value("path", "t.yaml")).filename().string();
      std::ofstream out(scratch / "templates" / name, std::ios::trunc);
      out << f.value("text", "");
    }
    templates = files->empty() ? "" : (scratch / "templates").string();
  } else if (!templates.empty() && !fs::exists(templates)) {
    // Recorded by an older kiln, which kept only the path.
    std::fprintf(stderr, "warning: --templates %s of the original run no longer exists\n", templates.c_str());
    templates.clear();
  }
  auto wf = LoadWorkflow(p, snapshot, templates, p.run.file.empty() ? w.name : p.run.file, "resumed");
  fs::remove_all(scratch, ec);
  if (!wf) return std::unexpected(wf.error());
  p.manifest = std::make_unique<dag::Manifest>(**wf);
  p.manifest->metadata.name = w.name;
  std::map<std::string, std::string> params;
  if (!w.parameters_json.empty()) {
    auto j = nlohmann::json::parse(w.parameters_json, nullptr, false);
    if (!j.is_discarded() && j.is_object()) params = j.get<std::map<std::string, std::string>>();
  }
  auto state = scheduler::NewWorkflow(*p.manifest, p.library, w.uid, params, p.run.entrypoint);
  if (!state) return std::unexpected(state.error());
  scheduler::Replay(*state, p.library, inputs);
  p.state = std::move(*state);
  return {};
}

int ResumeRecorded(store::Store& st, const std::string& data_dir, const store::WorkflowRecord& w,
                   Progress progress) {
  if (RunLock::Held(WorkflowWorkDir(data_dir, w.uid))) {
    std::fprintf(stderr, "kiln: workflow %s is being run by another kiln process; nothing to resume\n", w.name.c_str());
    return 1;
  }
  Prepared p;
  if (auto ok = Rebuild(p, st, w); !ok) {
    std::fprintf(stderr, "kiln resume: %s\n", ok.error().message().c_str());
    return 1;
  }
  if (scheduler::IsDone(p.state->phase)) {
    std::printf("workflow %s already %s%s%s; nothing to resume\n", w.name.c_str(),
                std::string(scheduler::PhaseName(p.state->phase)).c_str(), p.state->message.empty() ? "" : ": ",
                p.state->message.c_str());
    return p.state->phase == Phase::kSucceeded ? 0 : 1;
  }
  return Drive(p, st, data_dir, progress, /*resume=*/true);
}

int RunWorkflow(const RunFlags& flags) {
  // 1. Lint: a workflow with errors does not start.
  Prepared p;
  auto wf = LoadWorkflow(p, flags.file, flags.templates, flags.file, "run");
  if (!wf) {
    std::fprintf(stderr, "kiln run: %s\n", wf.error().message().c_str());
    return 1;
  }
  auto params = ReadParameters(flags);
  if (!params) {
    std::fprintf(stderr, "kiln run: %s\n", params.error().message().c_str());
    return 1;
  }

  // 2. The data directory and the store.
  std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenWritableStore(data_dir, flags.durability);
  if (!db) {
    std::fprintf(stderr, "kiln run: %s\n", db.error().message().c_str());
    return 1;
  }
  store::Store& st = **db;
  p.identity.spec = ReadText(flags.file);
  p.run.file = Absolute(flags.file);
  p.run.templates = flags.templates.empty() ? "" : Absolute(flags.templates);
  p.run.entrypoint = flags.entrypoint;
  p.run.sandbox = !flags.no_sandbox;
  p.run.executor = flags.executor;
  p.run.kubeconfig = flags.kubeconfig.empty() ? "" : Absolute(flags.kubeconfig);
  p.run.kube_context = flags.kube_context;
  p.run.kube_namespace = flags.kube_namespace;
  if (flags.ttl_seconds_after_finished >= 0) p.run.ttl_seconds_after_finished = flags.ttl_seconds_after_finished;
  p.run.accelerators = flags.accelerators.empty() ? "" : Absolute(flags.accelerators);
  p.run.agent_image = flags.agent_image;
  p.run.agent_path = flags.agent_path;
  p.run.artifact_pvc = flags.artifact_pvc;
  if (!p.run.accelerators.empty()) {  // checked before anything is recorded
    if (auto profiles = executor::AcceleratorProfiles::Load(p.run.accelerators); !profiles) {
      std::fprintf(stderr, "kiln run: %s\n", profiles.error().ToString().c_str());
      return 1;
    }
  }
  // kube/kubeconfig.h KubeconfigPath: --kubeconfig, $KUBECONFIG, ~/.kube/config if it exists,
  // else "" (in-cluster); recorded resolved, so that a resume talks to the same cluster.
  if (p.run.executor == "kubernetes") {  // a bad kubeconfig stops the run before it is recorded
    p.run.kubeconfig = kube::KubeconfigPath(p.run.kubeconfig);
    if (!p.run.kubeconfig.empty()) p.run.kubeconfig = Absolute(p.run.kubeconfig);  // a relative $KUBECONFIG
    if (auto config = kube::LoadClusterConfig(p.run.kubeconfig, p.run.kube_context); !config) {
      std::fprintf(stderr, "kiln run: %s\n", config.error().ToString().c_str());
      return 1;
    }
  }

  // 3. The same run left unfinished (killed): continue it rather than start again.
  if (!flags.fresh) {
    for (const char* phase : {"Running", "Pending"}) {
      store::WorkflowFilter filter;
      filter.phase = phase;
      auto page = st.ListWorkflows(filter);
      if (!page) break;
      for (const store::WorkflowRecord& w : page->workflows) {
        if (w.spec != p.identity.spec || RunLock::Held(WorkflowWorkDir(data_dir, w.uid))) continue;
        auto events = st.ListEvents(w.uid, 0, 1);
        if (!events || events->empty() || events->front().kind != "Run") continue;
        auto run = nlohmann::json::parse(events->front().data_json, nullptr, false);
        if (run.is_discarded() || run.value("file", "") != p.run.file || run.value("entrypoint", "") != flags.entrypoint ||
            run.value("overrides", nlohmann::json::object()) != nlohmann::json(*params)) {
          continue;
        }
        std::fprintf(stderr, "kiln run: resuming workflow %s (uid %s), left unfinished by an earlier run of %s; "
                     "pass --fresh to start a new one\n", w.name.c_str(), w.uid.c_str(), flags.file.c_str());
        return ResumeRecorded(st, data_dir, w, ProgressOf(flags.output, flags.no_tree));
      }
    }
  }

  // 4. The run's state, recorded before anything starts.
  std::string uid = RandomId(8, "0123456789abcdef") + "-" + RandomId(4, "0123456789abcdef") + "-" +
                    RandomId(4, "0123456789abcdef") + "-" + RandomId(4, "0123456789abcdef") + "-" +
                    RandomId(12, "0123456789abcdef");
  p.manifest = std::make_unique<dag::Manifest>(**wf);
  dag::Manifest& manifest = *p.manifest;
  if (manifest.metadata.name.empty()) {
    manifest.metadata.name = manifest.metadata.generate_name + RandomId(5, "abcdefghijklmnopqrstuvwxyz0123456789");
  } else if (manifest.kind == dag::ManifestKind::kCronWorkflow) {
    // As the CronWorkflow controller names its workflows: <name>-<scheduled unix time>.
    manifest.metadata.name += "-" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count());
  }
  auto state = scheduler::NewWorkflow(manifest, p.library, uid, *params, flags.entrypoint);
  if (!state) {
    std::fprintf(stderr, "kiln run: %s\n", state.error().message().c_str());
    return 1;
  }
  p.state = std::move(*state);
  p.identity.created = api::Ms(std::chrono::system_clock::now());
  store::Batch first;
  first.workflow_upsert = api::WorkflowRecordOf(*p.state, p.identity);
  store::EventRecord run = api::EventRow(uid, p.identity.created, "Run");
  // The --templates files' text, so that a resume runs the templates this run started with.
  nlohmann::json template_files = nlohmann::json::array();
  std::set<std::string> seen;
  for (const dag::Manifest& m : p.lint.manifests) {
    if (m.file == flags.file || !seen.insert(m.file).second) continue;
    template_files.push_back({{"path", Absolute(m.file)}, {"text", ReadText(m.file)}});
  }
  run.data_json = nlohmann::json{{"file", p.run.file},
                                 {"templates", p.run.templates},
                                 {"template_files", template_files},
                                 {"entrypoint", p.run.entrypoint},
                                 {"sandbox", p.run.sandbox},
                                 {"executor", p.run.executor},
                                 {"kubeconfig", p.run.kubeconfig},
                                 {"context", p.run.kube_context},
                                 {"namespace", p.run.kube_namespace},
                                 {"ttl_seconds_after_finished", p.run.ttl_seconds_after_finished
                                                                    ? nlohmann::json(*p.run.ttl_seconds_after_finished)
                                                                    : nlohmann::json(nullptr)},
                                 {"accelerators", p.run.accelerators},
                                 {"agentImage", p.run.agent_image},
                                 {"agentPath", p.run.agent_path},
                                 {"artifactPvc", p.run.artifact_pvc},
                                 {"overrides", *params}}
                      .dump();
  first.events.push_back(std::move(run));
  if (auto ok = st.Apply(first); !ok) {
    std::fprintf(stderr, "kiln run: cannot record the workflow: %s\n", ok.error().ToString().c_str());
    return 1;
  }
  return Drive(p, st, data_dir, ProgressOf(flags.output, flags.no_tree), /*resume=*/false);
}

struct ResumeFlags {
  std::string workflow;
  std::string data_dir;
  std::string namespace_;
  std::string output = "text";
  bool no_tree = false;
};

int ResumeWorkflow(const ResumeFlags& flags) {
  std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln resume: %s\n", db.error().message().c_str());
    return 1;
  }
  auto w = FindRecordedWorkflow(**db, data_dir, flags.workflow, flags.namespace_);
  if (!w) {
    std::fprintf(stderr, "kiln resume: %s\n", w.error().message().c_str());
    return 1;
  }
  return ResumeRecorded(**db, data_dir, *w, ProgressOf(flags.output, flags.no_tree));
}

}  // namespace

void RegisterRun(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* cmd = app.add_subcommand("run", "Run a workflow on this machine (local executor, embedded store); "
                                            "exit 0 when it Succeeded, 1 otherwise");
  cmd->add_option("file", flags->file, "The Workflow manifest")->required()->check(CLI::ExistingFile);
  cmd->add_option("-p,--parameter", flags->params, "Workflow parameter name=value (repeatable)");
  cmd->add_option("--parameter-file", flags->parameter_file, "Parameters as a JSON object or 'name: value' lines");
  cmd->add_option("--entrypoint", flags->entrypoint, "Start with this template instead of spec.entrypoint");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where the store, logs and step files live (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("--templates", flags->templates, "A file or directory of WorkflowTemplates for templateRef");
  cmd->add_option("-o,--output", flags->output, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--no-sandbox", flags->no_sandbox, "Run steps as plain processes, without bubblewrap");
  cmd->add_option("--executor", flags->executor, "Where steps run: local (host processes) or kubernetes (one Job per step)")
      ->check(CLI::IsMember({"local", "kubernetes"}));
  cmd->add_option("--context", flags->kube_context, "The kubeconfig context (default its current-context)");
  cmd->add_option("--namespace", flags->kube_namespace, "The namespace for the Jobs (default the context's)");
  AddKubernetesFlags(cmd, {&flags->kubeconfig, &flags->ttl_seconds_after_finished, &flags->accelerators,
                           &flags->agent_image, &flags->agent_path,
                           &flags->artifact_pvc});
  cmd->add_option("--durability", flags->durability,
                  "full: every transition is fsynced before its actions (survives power loss); process: "
                  "survives kill -9 of kiln but not an OS crash, and costs less per step")
      ->check(CLI::IsMember({"full", "process"}));
  cmd->add_flag("--fresh", flags->fresh,
                "Start a new run even when an earlier run of the same file was left unfinished (killed)");
  cmd->add_flag("--no-tree", flags->no_tree,
                "On a terminal, print one line per step transition instead of the live tree of "
                "nodes (off a terminal, lines are always printed)");
  cmd->callback([flags] { SetExitCode(RunWorkflow(*flags)); });
}

void RegisterResume(CLI::App& app) {
  auto flags = std::make_shared<ResumeFlags>();
  CLI::App* cmd = app.add_subcommand("resume", "Continue a workflow whose `kiln run` was killed: steps that "
                                               "succeeded are not run again; steps that were running are retried "
                                               "per their retryStrategy or end in Error");
  cmd->add_option("workflow", flags->workflow, "The workflow's name or uid (see `kiln list`)")->required();
  cmd->add_option("--data-dir", flags->data_dir, "The data directory of the run (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("-n,--namespace", flags->namespace_, "The workflow's namespace, when its name is used in several");
  cmd->add_option("-o,--output", flags->output, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--no-tree", flags->no_tree,
                "On a terminal, print one line per step transition instead of the live tree");
  cmd->callback([flags] { SetExitCode(ResumeWorkflow(*flags)); });
}

}  // namespace kiln::cli
