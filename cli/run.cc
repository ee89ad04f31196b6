// kiln run: runs a workflow on this machine with the local executor and the embedded store.
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "base/strings.h"
#include "cli/commands.h"
#include "dag/lint.h"
#include "executor/gpu.h"
#include "executor/local_step_runner.h"
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
};

std::string DefaultDataDir() {
  if (const char* d = std::getenv("KILN_DATA_DIR"); d && *d) return d;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/kiln";
  return ".kiln";
}

std::string RandomId(size_t n, const char* alphabet) {
  std::random_device rd;
  std::string out;
  size_t len = std::char_traits<char>::length(alphabet);
  for (size_t i = 0; i < n; ++i) out += alphabet[rd() % len];
  return out;
}

int64_t Ms(scheduler::Time t) {
  if (t == scheduler::Time{}) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string Clock(scheduler::Time t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string Json(const std::map<std::string, std::string>& m) {
  if (m.empty()) return "";
  return nlohmann::json(m).dump();
}

store::NodeRecord ToRecord(const std::string& uid, const NodeState& n) {
  store::NodeRecord r;
  r.workflow_uid = uid;
  r.id = n.id;
  r.parent_id = n.parent;
  r.display_name = n.name;
  r.template_name = n.template_name;
  r.type = std::string(scheduler::NodeTypeName(n.type));
  r.phase = std::string(scheduler::PhaseName(n.phase));
  r.attempt = n.attempt;
  r.started_at = Ms(n.started);
  r.finished_at = Ms(n.finished);
  r.exit_code = n.exit_code;
  r.message = n.message;
  r.inputs_json = Json(n.inputs);
  nlohmann::json out = nlohmann::json::object();
  if (!n.outputs.empty()) out["parameters"] = n.outputs;
  if (n.result) out["result"] = *n.result;
  if (n.exit_code) out["exitCode"] = *n.exit_code;
  r.outputs_json = out.empty() ? "" : out.dump();
  return r;
}

store::WorkflowRecord WorkflowRecordOf(const scheduler::WorkflowState& s, const std::string& spec, int64_t created) {
  store::WorkflowRecord w;
  w.uid = s.uid;
  w.name = s.name;
  w.namespace_ = s.namespace_;
  w.spec = spec;
  w.parameters_json = Json(s.parameters);
  w.phase = std::string(scheduler::PhaseName(s.phase));
  w.message = s.message;
  w.created_at = created;
  w.started_at = Ms(s.started);
  w.finished_at = Ms(s.finished);
  return w;
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

int RunWorkflow(const RunFlags& flags) {
  // 1. Lint: a workflow with errors does not start.
  std::vector<std::string> paths{flags.file};
  if (!flags.templates.empty()) paths.push_back(flags.templates);
  dag::LintResult lint = dag::Lint(paths, dag::LintOptions{});
  // Errors in the workflow's own file stop the run; those in other --templates files are shown
  // (the templates they concern are then missing, which the run reports if it needs them).
  size_t errors = 0;
  for (const dag::Diagnostic& d : lint.diags.items()) {
    if (d.severity != dag::Severity::kError) continue;
    if (d.file == flags.file) ++errors;
    std::fprintf(stderr, "%s%s\n", d.file == flags.file ? "" : "warning: ", d.ToString().c_str());
  }
  if (errors > 0) {
    std::fprintf(stderr, "kiln run: %zu error(s) in %s; nothing was run\n", errors, flags.file.c_str());
    return 1;
  }
  const dag::Manifest* wf = nullptr;
  for (const dag::Manifest& m : lint.manifests) {
    if (m.file == flags.file && m.kind == dag::ManifestKind::kWorkflow) {
      wf = &m;
      break;
    }
  }
  if (wf == nullptr) {
    std::fprintf(stderr, "kiln run: %s holds no Workflow (kind: Workflow) to run\n", flags.file.c_str());
    return 1;
  }
  dag::TemplateLibrary library;
  for (const dag::Manifest& m : lint.manifests) library.Add(m);

  auto params = ReadParameters(flags);
  if (!params) {
    std::fprintf(stderr, "kiln run: %s\n", params.error().message().c_str());
    return 1;
  }

  // 2. The data directory and the store.
  std::string data_dir = flags.data_dir.empty() ? DefaultDataDir() : flags.data_dir;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec || ::access(data_dir.c_str(), W_OK) != 0) {
    std::fprintf(stderr, "kiln run: cannot use data directory %s: %s; pass a writable --data-dir\n",
                 data_dir.c_str(), ec ? ec.message().c_str() : "not writable");
    return 1;
  }
  auto db = store::SqliteStore::Open(data_dir + "/kiln.db");
  if (!db) {
    std::fprintf(stderr, "kiln run: %s\n", db.error().ToString().c_str());
    return 1;
  }
  store::Store& st = **db;

  // 3. The run's state, recorded before anything starts.
  std::string uid = RandomId(8, "0123456789abcdef") + "-" + RandomId(4, "0123456789abcdef") + "-" +
                    RandomId(4, "0123456789abcdef") + "-" + RandomId(4, "0123456789abcdef") + "-" +
                    RandomId(12, "0123456789abcdef");
  dag::Manifest manifest = *wf;
  if (manifest.metadata.name.empty()) {
    manifest.metadata.name = manifest.metadata.generate_name + RandomId(5, "abcdefghijklmnopqrstuvwxyz0123456789");
  }
  auto state = scheduler::NewWorkflow(manifest, library, uid, *params, flags.entrypoint);
  if (!state) {
    std::fprintf(stderr, "kiln run: %s\n", state.error().message().c_str());
    return 1;
  }
  std::string spec_text;
  {
    std::ifstream in(flags.file);
    std::stringstream buf;
    buf << in.rdbuf();
    spec_text = buf.str();
  }
  int64_t created = Ms(std::chrono::system_clock::now());
  store::Batch first;
  first.workflow_upsert = WorkflowRecordOf(*state, spec_text, created);
  if (auto ok = st.Apply(first); !ok) {
    std::fprintf(stderr, "kiln run: cannot record the workflow: %s\n", ok.error().ToString().c_str());
    return 1;
  }
  const bool json_out = flags.output == "json";
  if (!json_out) std::printf("%s  workflow %s (uid %s) started; data in %s\n", Clock(std::chrono::system_clock::now()).c_str(), state->name.c_str(), uid.c_str(), data_dir.c_str());

  // 4. Run it.
  boost::asio::io_context io;
  auto gpus = executor::DetectGpus();
  executor::LocalOptions options;
  options.work_dir = data_dir + "/workflows/" + uid;
  options.artifact_dir = data_dir + "/artifacts";
  fs::create_directories(options.artifact_dir, ec);
  options.sandbox = !flags.no_sandbox;
  if (gpus) {
    for (const executor::GpuInfo& g : *gpus) options.gpus.push_back(g.index);
  }
  executor::LocalStepRunner runner(io, options);
  if (!runner.sandbox_warning().empty()) std::fprintf(stderr, "warning: %s\n", runner.sandbox_warning().c_str());

  auto recorder = [&](const scheduler::WorkflowState& before, const scheduler::Transition& t) -> Result<void> {
    store::Batch b;
    for (const NodeState& n : t.nodes) {
      b.node_upserts.push_back(ToRecord(uid, n));
      auto it = before.nodes.find(n.id);
      Phase from = it == before.nodes.end() ? Phase::kPending : it->second.phase;
      if (it == before.nodes.end() || from != n.phase) {
        store::EventRecord e;
        e.workflow_uid = uid;
        e.node_id = n.id;
        e.at = Ms(t.now);
        e.kind = "NodePhase";
        e.from_phase = it == before.nodes.end() ? "" : std::string(scheduler::PhaseName(from));
        e.to_phase = std::string(scheduler::PhaseName(n.phase));
        e.message = n.message;
        b.events.push_back(std::move(e));
      }
      for (const auto& [k, v] : n.outputs) b.parameter_upserts.push_back({uid, n.id, k, v, "output"});
      bool newly_done = scheduler::IsDone(n.phase) && (it == before.nodes.end() || !scheduler::IsDone(from));
      if (newly_done && n.type == scheduler::NodeType::kPod) {
        for (const auto& [k, a] : n.output_artifacts) {
          b.artifact_inserts.push_back({uid, n.id, k, "output", "file://" + a.location, a.sha256, a.size});
        }
        for (const scheduler::InputArtifact& a : n.input_artifacts) {
          if (a.ref.raw_given) continue;
          b.artifact_inserts.push_back({uid, n.id, a.name, "input", "file://" + a.ref.location, a.ref.sha256, a.ref.size});
        }
      }
    }
    for (const scheduler::Action& a : t.actions) {
      store::EventRecord e;
      e.workflow_uid = uid;
      e.at = Ms(t.now);
      if (const auto* l = std::get_if<scheduler::LaunchStep>(&a)) {
        e.kind = "Launch";
        e.node_id = l->node;
        e.data_json = l->container.dump();
      } else if (const auto* k = std::get_if<scheduler::KillStep>(&a)) {
        e.kind = "Kill";
        e.node_id = k->node;
      } else if (const auto* tm = std::get_if<scheduler::StartTimer>(&a)) {
        e.kind = "Timer";
        e.message = tm->timer;
      }
      b.events.push_back(std::move(e));
    }
    if (t.workflow_phase && *t.workflow_phase != before.phase) {
      scheduler::WorkflowState after = before;  // the workflow's own fields only
      after.nodes.clear();
      scheduler::Transition own;
      own.workflow_phase = t.workflow_phase;
      own.workflow_message = t.workflow_message;
      own.now = t.now;
      scheduler::Apply(after, own);
      b.workflow_upsert = WorkflowRecordOf(after, spec_text, created);
      store::EventRecord e;
      e.workflow_uid = uid;
      e.at = Ms(t.now);
      e.kind = "WorkflowPhase";
      e.from_phase = std::string(scheduler::PhaseName(before.phase));
      e.to_phase = std::string(scheduler::PhaseName(*t.workflow_phase));
      e.message = t.workflow_message;
      b.events.push_back(std::move(e));
    }
    return st.Apply(b);
  };
  std::map<std::string, Phase> shown;
  auto observer = [&](const scheduler::WorkflowState& after, const scheduler::Transition& t) {
    if (!json_out) {
      for (const NodeState& n : t.nodes) {
        if (n.type != scheduler::NodeType::kPod && n.type != scheduler::NodeType::kSkipped &&
            n.type != scheduler::NodeType::kSuspend) {
          continue;
        }
        auto it = shown.find(n.id);
        if (it != shown.end() && it->second == n.phase) continue;
        shown[n.id] = n.phase;
        std::printf("%s  %-40s %-9s %s\n", Clock(t.now).c_str(), n.id.c_str(),
                    std::string(scheduler::PhaseName(n.phase)).c_str(), n.message.c_str());
      }
      std::fflush(stdout);
    }
    if (scheduler::IsDone(after.phase)) io.stop();
  };
  scheduler::Driver driver(io, *state, library, runner, recorder, observer);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int) {
    if (!e) driver.Post(scheduler::CancelRequested{});
  });
  driver.Start();
  io.run();
  if (driver.error()) {
    std::fprintf(stderr, "kiln run: stopped: cannot record a transition: %s\n", driver.error()->ToString().c_str());
    return 1;
  }

  // 5. Summary.
  const scheduler::WorkflowState& s = *state;
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
    if (root && !root->outputs.empty()) {
      std::printf("\noutputs:\n");
      for (const auto& [k, v] : root->outputs) std::printf("  %s: %s\n", k.c_str(), v.c_str());
    }
    std::printf("\nworkflow %s %s%s%s (%s)\n", s.name.c_str(), std::string(scheduler::PhaseName(s.phase)).c_str(),
                s.message.empty() ? "" : ": ", s.message.c_str(), root ? duration(*root).c_str() : "-");
  }
  return s.phase == Phase::kSucceeded ? 0 : 1;
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
  cmd->callback([flags] { SetExitCode(RunWorkflow(*flags)); });
}

}  // namespace kiln::cli
