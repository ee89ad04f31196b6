// kiln logs: the output of a workflow's steps, as `argo logs` prints it.
// Recorded here by `kiln run`: the store records the steps; their output is in the log files the
// local executor wrote under the data directory (<data>/workflows/<uid>/steps/<hex>/log, one
// "<time> <stream> <text>" line each).
// From a kiln server (cli/client.h says when): GET .../log, newline-delimited
// {"result": {"content": ..., "podName": <node id>}}, followed with -f.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "base/strings.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/data_dir.h"

namespace kiln::cli {

namespace {

struct LogsFlags {
  std::string workflow;
  std::string step;
  std::string data_dir;
  bool timestamps = false;
  bool paths = false;
  bool follow = false;
  ClientFlags client;  // and -n
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

// The nodes `step` names: the node with that id, else those with that display name. When none,
// prints what the steps are and returns an empty list.
std::vector<const store::NodeRecord*> ChooseStep(const std::vector<store::NodeRecord>& nodes,
                                                 const std::string& workflow,
                                                 const std::string& step) {
  std::vector<const store::NodeRecord*> chosen;
  for (const store::NodeRecord& n : nodes) {
    if (n.id == step) chosen = {&n};
  }
  if (chosen.empty()) {
    for (const store::NodeRecord& n : nodes) {
      if (n.display_name == step) chosen.push_back(&n);
    }
  }
  if (chosen.empty()) {
    std::vector<std::string> names;
    for (const store::NodeRecord& n : nodes) {
      if (n.type == "Pod") names.push_back(n.display_name);
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::vector<std::string_view> views(names.begin(), names.end());
    std::string list;
    for (const std::string& s : names) list += (list.empty() ? "" : ", ") + s;
    std::fprintf(stderr, "kiln logs: workflow %s has no step %s%s; its steps are: %s\n",
                 workflow.c_str(), Quote(step).c_str(), DidYouMean(step, views).c_str(),
                 list.empty() ? "(none)" : list.c_str());
  }
  return chosen;
}

// The steps' output from the server, one request for the whole workflow or for one node.
int LogsFromServer(const LogsFlags& flags, ClientConfig config) {
  if (flags.paths) {
    std::fprintf(stderr,
                 "kiln logs: --path shows the log files `kiln run` wrote on this machine; a "
                 "server's logs are read through it (leave out --path, or pass --data-dir)\n");
    return kExitUsage;
  }
  ServerClient client("logs", std::move(config));
  auto wf = client.Call("GET", client.WorkflowsPath(flags.workflow));
  if (!wf) return client.exit_code();
  WorkflowRecords records = RecordsFromWorkflowJson(*wf);
  const std::vector<store::NodeRecord>& nodes = records.nodes;

  std::vector<const store::NodeRecord*> pods;
  std::string node_id;
  if (flags.step.empty()) {
    for (const store::NodeRecord& n : nodes) {
      if (n.type == "Pod") pods.push_back(&n);
    }
  } else {
    std::vector<const store::NodeRecord*> chosen =
        ChooseStep(nodes, records.workflow.name, flags.step);
    if (chosen.empty()) return kExitFailure;
    if (chosen.size() > 1) {
      std::string ids;
      for (const store::NodeRecord* n : chosen) ids += (ids.empty() ? "" : ", ") + n->id;
      std::fprintf(
          stderr, "kiln logs: workflow %s has %zu steps named %s; pass one of their ids: %s\n",
          records.workflow.name.c_str(), chosen.size(), Quote(flags.step).c_str(), ids.c_str());
      return kExitFailure;
    }
    node_id = chosen.front()->id;
    pods = PodsBelow(nodes, chosen);
  }
  // Lines are prefixed as in the embedded mode: with the step's name when several steps print,
  // with its id when names repeat.
  std::map<std::string, const store::NodeRecord*> by_id;
  std::map<std::string, int> name_count;
  for (const store::NodeRecord& n : nodes) by_id[n.id] = &n;
  for (const store::NodeRecord* n : pods) ++name_count[n->display_name];
  auto label = [&](const std::string& pod) {
    auto it = by_id.find(pod);
    if (it == by_id.end()) return pod;
    const store::NodeRecord* n = it->second;
    return n->display_name.empty() || name_count[n->display_name] > 1 ? n->id : n->display_name;
  };
  const bool prefix = pods.size() > 1;

  std::string query;
  auto add = [&query](const std::string& key, const std::string& value) {
    query += (query.empty() ? "?" : "&") + key + "=" + http::UrlEncode(value);
  };
  if (!node_id.empty()) add("nodeId", node_id);
  if (flags.follow) add("follow", "true");
  if (flags.timestamps) add("logOptions.timestamps", "true");
  auto end = client.Stream(
      client.WorkflowsPath(flags.workflow) + "/log" + query, [&](const nlohmann::json& result) {
        std::string line;
        if (prefix && result.contains("podName") && result["podName"].is_string()) {
          line = label(result["podName"].get<std::string>()) + ": ";
        }
        if (result.contains("content") && result["content"].is_string()) {
          line += result["content"].get<std::string>();
        }
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
        return true;
      });
  return end == ServerClient::StreamEnd::kFailed ? client.exit_code() : 0;
}

int RunLogs(const LogsFlags& flags) {
  auto server = ServerMode("logs", flags.client, !flags.data_dir.empty());
  if (!server) return server.error();
  if (*server) return LogsFromServer(flags, std::move(**server));
  if (flags.follow) {
    std::fprintf(stderr,
                 "kiln logs: -f follows a workflow that a kiln server runs; `kiln run` prints "
                 "what its steps write as they run\n");
    return kExitUsage;
  }
  const std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln logs: %s\n", db.error().ToString().c_str());
    return 1;
  }
  auto wf = FindRecordedWorkflow(**db, data_dir, flags.workflow, flags.client.namespace_);
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
    std::vector<const store::NodeRecord*> chosen = ChooseStep(*nodes, wf->name, flags.step);
    if (chosen.empty()) return 1;
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
  CLI::App* cmd = app.add_subcommand(
      "logs",
      "Print the output of a workflow's steps (every step, prefixed with its name, or one STEP): "
      "from a kiln server when one is configured (--server, $KILN_SERVER or "
      "~/.config/kiln/config.yaml), else from the log files `kiln run` wrote under "
      "<data-dir>/workflows/<uid>/steps/");
  cmd->add_option("workflow", flags->workflow,
                  "The workflow's name (as `kiln run` or `kiln submit` printed it) or, recorded "
                  "here, its uid")
      ->required();
  cmd->add_option("step", flags->step, "A step's name (as `kiln get` shows it) or node id");
  cmd->add_option("-n,--namespace", flags->client.namespace_,
                  "The workflow's namespace (recorded here: default any; with a server: default "
                  "\"default\")");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where `kiln run` recorded it (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_flag("--timestamps", flags->timestamps,
                "Start each line with the time it was written (UTC)");
  cmd->add_flag("--path", flags->paths,
                "Print where each step's log file is instead of its contents");
  cmd->add_flag("-f,--follow", flags->follow,
                "With a server: keep printing as the steps write, until the workflow ends");
  AddClientFlags(*cmd, flags->client);
  cmd->callback([flags] { SetExitCode(RunLogs(*flags)); });
}

}  // namespace kiln::cli
