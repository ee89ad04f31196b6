// kiln watch: follows one of a kiln server's workflows until it ends. The workflow comes from
// GET /api/v1/workflows/{ns}/{name}, its changes from the workflow-events stream
// (newline-delimited {"result": {"type": ..., "object": {Workflow}}}). On a terminal the
// workflow's `kiln get` view is redrawn in place; elsewhere (a pipe, a log file) a line is
// printed per node phase change, and the view once at the end.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/live_tree.h"
#include "cli/tree_view.h"
#include "cli/workflow_view.h"

namespace kiln::cli {

namespace {

// A server that ends the stream before the workflow ends (a restart, a watch timeout) is
// watched again; this many times in a row without a single event in between is enough.
constexpr int kMaxEmptyStreams = 5;

bool IsFinal(const std::string& phase) {
  return phase == "Succeeded" || phase == "Failed" || phase == "Error";
}

std::string Clock() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

// What has been shown so far, so that only changes are printed.
class Watcher {
 public:
  explicit Watcher(std::string logs_line)
      : logs_line_(std::move(logs_line)), terminal_(StdoutIsCapableTerminal()) {}

  // Shows `wf`; returns whether its phase is final.
  bool Show(const nlohmann::json& wf) {
    records_ = RecordsFromWorkflowJson(wf);
    if (terminal_) {
      std::string text = RenderWorkflowText(records_, logs_line_, false);
      if (text != drawn_) {
        std::string out = EraseLines(drawn_lines_) + text;
        std::fwrite(out.data(), 1, out.size(), stdout);
        drawn_ = std::move(text);
        drawn_lines_ = 0;
        for (char c : drawn_) drawn_lines_ += c == '\n';
      }
    } else {
      PrintChanges();
    }
    std::fflush(stdout);
    return IsFinal(records_.workflow.phase);
  }

  // The view that stays: on a terminal it is already drawn; elsewhere it follows the lines.
  void Finish() {
    if (terminal_) return;
    std::string text = "\n" + RenderWorkflowText(records_, logs_line_, false);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }

  const store::WorkflowRecord& workflow() const { return records_.workflow; }

 private:
  // One line per leaf node (a step, a skipped or suspended node) whose phase changed, in tree
  // order, and one when the workflow's phase changed.
  void PrintChanges() {
    std::map<std::string, int> name_count;
    for (const store::NodeRecord& n : records_.nodes) ++name_count[n.display_name];
    for (const TreeRow& row : Tree(records_.nodes)) {
      const store::NodeRecord& n = *row.node;
      if (n.type != "Pod" && n.type != "Skipped" && n.type != "Suspend") continue;
      std::string& shown = node_phases_[n.id];
      if (shown == n.phase) continue;
      shown = n.phase;
      const std::string& label =
          n.display_name.empty() || name_count[n.display_name] > 1 ? n.id : n.display_name;
      Line(label, n.phase, n.message);
    }
    const store::WorkflowRecord& w = records_.workflow;
    if (w.phase != workflow_phase_) {
      workflow_phase_ = w.phase;
      Line("workflow " + w.name, w.phase, IsFinal(w.phase) ? w.message : "");
    }
  }

  static void Line(const std::string& what, const std::string& phase, const std::string& message) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s  %-40s %-9s ", Clock().c_str(), what.c_str(), phase.c_str());
    std::string line = buf + message;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }

  std::string logs_line_;
  bool terminal_;
  WorkflowRecords records_;
  std::string drawn_;
  size_t drawn_lines_ = 0;
  std::map<std::string, std::string> node_phases_;
  std::string workflow_phase_;
};

struct WatchFlags {
  std::string workflow;
  ClientFlags client;
};

int RunWatch(const WatchFlags& flags) {
  auto config = ResolveClient(flags.client);
  if (!config) {
    std::fprintf(stderr, "kiln watch: %s\n", config.error().ToString().c_str());
    return kExitFailure;
  }
  if (!*config) {
    std::fprintf(stderr,
                 "kiln watch: no kiln server to watch: pass --server URL or set KILN_SERVER "
                 "(`kiln run` shows its workflow as it runs; `kiln get` what it recorded)\n");
    return kExitUsage;
  }
  ServerClient client("watch", std::move(**config));
  return WatchWorkflow(client, flags.workflow);
}

}  // namespace

int WatchWorkflow(ServerClient& client, const std::string& name) {
  std::string logs = "kiln logs " + name;
  if (client.ns() != "default") logs += " -n " + client.ns();
  Watcher watcher(logs);
  auto initial = client.Call("GET", client.WorkflowsPath(name));
  if (!initial) return client.exit_code();
  bool done = watcher.Show(*initial);
  const std::string events =
      "/api/v1/workflow-events/" + http::UrlEncode(client.ns()) +
      "?listOptions.fieldSelector=" + http::UrlEncode("metadata.name=" + name);
  int empty_streams = 0;
  while (!done) {
    bool deleted = false;
    bool any = false;
    auto end = client.Stream(events, [&](const nlohmann::json& result) {
      any = true;
      if (!result.is_object()) return true;
      const nlohmann::json* object = result.contains("object") ? &result["object"] : nullptr;
      if (result.value("type", "") == "DELETED") {
        deleted = true;
        return false;
      }
      if (object == nullptr || !object->is_object()) return true;
      // The field selector is the server's to apply; a server that ignores it sends others too.
      if (object->contains("metadata") && (*object)["metadata"].is_object() &&
          (*object)["metadata"].value("name", "") != name) {
        return true;
      }
      done = watcher.Show(*object);
      return !done;
    });
    if (end == ServerClient::StreamEnd::kFailed) return client.exit_code();
    if (deleted) {
      client.Fail("workflow " + name + " was deleted while it was watched");
      return client.exit_code();
    }
    if (done) break;
    empty_streams = any ? 0 : empty_streams + 1;
    if (empty_streams >= kMaxEmptyStreams) {
      client.Fail("the server ended the watch of workflow " + name + " " +
                  std::to_string(kMaxEmptyStreams) +
                  " times in a row without an event; "
                  "`kiln get " +
                  name + "` shows where it is");
      return client.exit_code();
    }
    if (!any) std::this_thread::sleep_for(std::chrono::seconds(1));
    // Catch up on what changed while no stream was open.
    auto again = client.Call("GET", client.WorkflowsPath(name));
    if (!again) return client.exit_code();
    done = watcher.Show(*again);
  }
  watcher.Finish();
  const store::WorkflowRecord& w = watcher.workflow();
  if (w.phase == "Succeeded") return 0;
  client.Fail("workflow " + w.name + " " + w.phase + (w.message.empty() ? "" : ": " + w.message));
  return kExitFailure;
}

void RegisterWatch(CLI::App& app) {
  auto flags = std::make_shared<WatchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "watch",
      "Follow a kiln server's workflow until it ends, showing its node tree as `kiln get` does; "
      "exits 0 only when it succeeded");
  cmd->add_option("workflow", flags->workflow, "The workflow's name")->required();
  cmd->add_option("-n,--namespace", flags->client.namespace_,
                  "The workflow's namespace (default: namespace: in the config file, else "
                  "\"default\")");
  AddClientFlags(*cmd, flags->client);
  cmd->callback([flags] { SetExitCode(RunWatch(*flags)); });
}

}  // namespace kiln::cli
