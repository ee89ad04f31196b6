// kiln logs: the output of a recorded workflow's steps, as `argo logs` prints it. The store
// records the steps; their output is in the log files the local executor wrote under the data
// directory (<data>/workflows/<uid>/steps/<hex>/log, one "<time> <stream> <text>" line each).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/data_dir.h"

namespace kiln::cli {

namespace {

struct LogsFlags {
  std::string workflow;
  std::string step;
  std::string namespace_;
  std::string data_dir;
  bool timestamps = false;
  bool paths = false;
};

// The Pod nodes at or below the nodes in `from` (a Retry or DAG node stands for its steps).
std::vector<const store::NodeRecord*> PodsBelow(const std::vector<store::NodeRecord>& nodes,
                                                const std::vector<const store::NodeRecord*>& from) {
  std::multimap<std::string, const store::NodeRecord*> children;
  for (const store::NodeRecord& n : nodes) {
    if (!n.parent_id.empty()) children.emplace(n.parent_id, &n);
  }
  std::vector<const store::NodeRecord*> out;
  std::vector<const store::NodeRecord*> stack(from.begin(), from.end());
  std::map<std::string, bool> seen;
  while (!stack.empty()) {  // iterative: the depth comes from the store
    const store::NodeRecord* n = stack.back();
    stack.pop_back();
    if (seen[n->id]) continue;
    seen[n->id] = true;
    if (n->type == "Pod") out.push_back(n);
    auto [b, e] = children.equal_range(n->id);
    for (auto it = b; it != e; ++it) stack.push_back(it->second);
  }
  return out;
}

// Prints the log at `path`, each line as "<prefix>[<time> ]<text>". False when it cannot be read.
bool PrintLog(const std::string& path, const std::string& prefix, bool timestamps) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    // "2026-11-23T21:05:03.123Z stdout text": keep the text, and the time when asked.
    std::string_view rest = line;
    std::string_view stamp;
    size_t sp1 = rest.find(' ');
    if (sp1 != std::string_view::npos) {
      size_t sp2 = rest.find(' ', sp1 + 1);
      std::string_view stream = rest.substr(
          sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
      if (stream == "stdout" || stream == "stderr" || stream == "kiln") {
        stamp = rest.substr(0, sp1);
        rest = sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1);
      }
    }
    std::string out = prefix;
    if (timestamps && !stamp.empty()) out.append(stamp).append(" ");
    out.append(rest);
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return true;
}

int RunLogs(const LogsFlags& flags) {
  const std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln logs: %s\n", db.error().ToString().c_str());
    return 1;
  }
  auto wf = FindRecordedWorkflow(**db, data_dir, flags.workflow, flags.namespace_);
  if (!wf) {
    std::fprintf(stderr, "kiln logs: %s\n", wf.error().ToString().c_str());
    return 1;
  }
  auto nodes = (*db)->ListNodes(wf->uid);
  if (!nodes) {
    std::fprintf(stderr, "kiln logs: %s\n", nodes.error().ToString().c_str());
    return 1;
  }
  std::vector<const store::NodeRecord*> all_pods;
  for (const store::NodeRecord& n : *nodes) {
    if (n.type == "Pod") all_pods.push_back(&n);
  }

  std::vector<const store::NodeRecord*> pods = all_pods;
  if (!flags.step.empty()) {
    std::vector<const store::NodeRecord*> chosen;
    for (const store::NodeRecord& n : *nodes) {
      if (n.id == flags.step) chosen = {&n};
    }
    if (chosen.empty()) {
      for (const store::NodeRecord& n : *nodes) {
        if (n.display_name == flags.step) chosen.push_back(&n);
      }
    }
    if (chosen.empty()) {
      std::vector<std::string> names;
      for (const store::NodeRecord* n : all_pods) names.push_back(n->display_name);
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
      std::vector<std::string_view> views(names.begin(), names.end());
      std::string list;
      for (const std::string& s : names) list += (list.empty() ? "" : ", ") + s;
      std::fprintf(stderr, "kiln logs: workflow %s has no step %s%s; its steps are: %s\n",
                   wf->name.c_str(), Quote(flags.step).c_str(),
                   DidYouMean(flags.step, views).c_str(), list.empty() ? "(none)" : list.c_str());
      return 1;
    }
    pods = PodsBelow(*nodes, chosen);
  }
  std::sort(pods.begin(), pods.end(), [](const store::NodeRecord* a, const store::NodeRecord* b) {
    bool a_started = a->started_at != 0, b_started = b->started_at != 0;
    if (a_started != b_started) return a_started;
    if (a->started_at != b->started_at) return a->started_at < b->started_at;
    return a->id < b->id;
  });
  // Lines are prefixed with the step's name when several steps print; with its id when names
  // repeat (the same task in two branches).
  std::map<std::string, int> name_count;
  for (const store::NodeRecord* n : pods) ++name_count[n->display_name];
  auto label = [&](const store::NodeRecord* n) {
    return n->display_name.empty() || name_count[n->display_name] > 1 ? n->id : n->display_name;
  };

  size_t printed = 0;
  for (const store::NodeRecord* n : pods) {
    const std::string path = StepLogPath(data_dir, wf->uid, n->id);
    if (flags.paths) {
      std::printf("%s: %s\n", label(n).c_str(), path.c_str());
      continue;
    }
    std::string prefix = pods.size() > 1 ? label(n) + ": " : "";
    if (PrintLog(path, prefix, flags.timestamps)) {
      ++printed;
      continue;
    }
    std::string why = n->started_at == 0   ? "the step has not started"
                      : n->message.empty() ? "no log was written"
                                           : "the step never ran: " + n->message;
    if (n->phase == "Skipped" || n->phase == "Omitted") why = "the step was " + n->phase;
    std::fprintf(stderr, "kiln logs: step %s has no log (%s; %s does not exist)\n",
                 label(n).c_str(), why.c_str(), path.c_str());
  }
  std::fflush(stdout);
  if (!flags.paths && !flags.step.empty() && printed == 0) return 1;
  return 0;
}

}  // namespace

void RegisterLogs(CLI::App& app) {
  auto flags = std::make_shared<LogsFlags>();
  CLI::App* cmd = app.add_subcommand("logs",
                                     "Print the output of a recorded workflow's steps (every step, "
                                     "prefixed with its name, or one STEP), read "
                                     "from the log files under <data-dir>/workflows/<uid>/steps/");
  cmd->add_option("workflow", flags->workflow,
                  "The workflow's name (as `kiln run` printed it) or uid")
      ->required();
  cmd->add_option("step", flags->step, "A step's name (as `kiln get` shows it) or node id");
  cmd->add_option("-n,--namespace", flags->namespace_, "The workflow's namespace (default: any)");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where `kiln run` recorded it (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_flag("--timestamps", flags->timestamps,
                "Start each line with the time it was written (UTC)");
  cmd->add_flag("--path", flags->paths,
                "Print where each step's log file is instead of its contents");
  cmd->callback([flags] { SetExitCode(RunLogs(*flags)); });
}

}  // namespace kiln::cli
