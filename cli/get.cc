// kiln get: one recorded workflow, as `argo get` shows it: the header, the node tree, outputs.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/data_dir.h"

namespace kiln::cli {

namespace {

struct GetFlags {
  std::string workflow;
  std::string namespace_;
  std::string data_dir;
  std::string output = "text";
};

// A JSON document stored as text ("" when none); null when empty or unreadable.
nlohmann::json ParseStored(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

std::string ValueText(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// One row of the tree: a node and the drawing in front of its name.
struct TreeRow {
  const store::NodeRecord* node;
  std::string prefix;
};

// The nodes in tree order (depth first, children by start time then id), each with its
// `argo get`-style prefix. Iterative: the depth comes from the store, so no recursion on it.
// Nodes unreachable from a root (a broken parent chain) come last, unindented.
std::vector<TreeRow> Tree(const std::vector<store::NodeRecord>& nodes) {
  std::map<std::string, const store::NodeRecord*> by_id;
  for (const store::NodeRecord& n : nodes) by_id[n.id] = &n;
  std::map<std::string, std::vector<const store::NodeRecord*>> children;
  std::vector<const store::NodeRecord*> roots;
  for (const store::NodeRecord& n : nodes) {
    if (n.parent_id.empty() || !by_id.count(n.parent_id)) {
      roots.push_back(&n);
    } else {
      children[n.parent_id].push_back(&n);
    }
  }
  auto order = [](const store::NodeRecord* a, const store::NodeRecord* b) {
    // Started nodes in start order, then the ones that never started.
    bool a_started = a->started_at != 0, b_started = b->started_at != 0;
    if (a_started != b_started) return a_started;
    if (a->started_at != b->started_at) return a->started_at < b->started_at;
    return a->id < b->id;
  };
  std::sort(roots.begin(), roots.end(),
            [&](const store::NodeRecord* a, const store::NodeRecord* b) {
              // The workflow's root (no parent) first, then orphans.
              if (a->parent_id.empty() != b->parent_id.empty()) return a->parent_id.empty();
              return order(a, b);
            });
  for (auto& [id, list] : children) std::sort(list.begin(), list.end(), order);

  std::vector<TreeRow> rows;
  std::set<std::string> seen;
  struct Item {
    const store::NodeRecord* node;
    std::string indent;  // drawn for the node's descendants
    std::string branch;  // drawn in front of the node itself
  };
  std::vector<Item> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, "", ""});
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(item.node->id).second) continue;
    rows.push_back({item.node, item.branch});
    auto kids = children.find(item.node->id);
    if (kids == children.end()) continue;
    const auto& list = kids->second;
    for (size_t i = list.size(); i-- > 0;) {
      bool last = i + 1 == list.size();
      stack.push_back(
          {list[i], item.indent + (last ? "   " : "│  "), item.indent + (last ? "└─ " : "├─ ")});
    }
  }
  for (const store::NodeRecord& n : nodes) {
    if (!seen.count(n.id)) rows.push_back({&n, ""});
  }
  return rows;
}

// Display width of UTF-8 text (the tree's box-drawing characters are one column each).
size_t Width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

std::string Pad(const std::string& s, size_t width) {
  size_t w = Width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

nlohmann::json WorkflowJson(const store::WorkflowRecord& w,
                            const std::vector<store::NodeRecord>& nodes,
                            const std::vector<store::ParameterRecord>& params,
                            const std::vector<store::ArtifactRecord>& artifacts,
                            const std::string& data_dir) {
  nlohmann::json out;
  out["uid"] = w.uid;
  out["name"] = w.name;
  out["namespace"] = w.namespace_;
  out["phase"] = w.phase;
  out["message"] = w.message;
  out["createdAt"] = FormatTimeUtc(w.created_at);
  out["startedAt"] = FormatTimeUtc(w.started_at);
  out["finishedAt"] = FormatTimeUtc(w.finished_at);
  if (w.started_at != 0 && w.finished_at != 0) {
    out["durationSeconds"] = static_cast<double>(w.finished_at - w.started_at) / 1000.0;
  }
  nlohmann::json parameters = ParseStored(w.parameters_json);
  out["parameters"] = parameters.is_object() ? parameters : nlohmann::json::object();
  nlohmann::json jn = nlohmann::json::array();
  for (const TreeRow& row : Tree(nodes)) {
    const store::NodeRecord& n = *row.node;
    nlohmann::json j = {{"id", n.id},
                        {"displayName", n.display_name},
                        {"parent", n.parent_id},
                        {"type", n.type},
                        {"templateName", n.template_name},
                        {"phase", n.phase},
                        {"attempt", n.attempt},
                        {"startedAt", FormatTimeUtc(n.started_at)},
                        {"finishedAt", FormatTimeUtc(n.finished_at)},
                        {"message", n.message}};
    if (n.exit_code) j["exitCode"] = *n.exit_code;
    if (nlohmann::json in = ParseStored(n.inputs_json); !in.is_null()) j["inputs"] = in;
    if (nlohmann::json o = ParseStored(n.outputs_json); !o.is_null()) j["outputs"] = o;
    if (n.type == "Pod") j["log"] = StepLogPath(data_dir, w.uid, n.id);
    jn.push_back(std::move(j));
  }
  out["nodes"] = std::move(jn);
  nlohmann::json op = nlohmann::json::array();
  for (const store::ParameterRecord& p : params) {
    if (p.kind != "output") continue;
    op.push_back({{"node", p.node_id}, {"name", p.name}, {"value", p.value}});
  }
  nlohmann::json oa = nlohmann::json::array();
  nlohmann::json ia = nlohmann::json::array();
  for (const store::ArtifactRecord& a : artifacts) {
    nlohmann::json j = {{"node", a.node_id},
                        {"name", a.name},
                        {"sha256", a.sha256},
                        {"size", a.size},
                        {"uri", a.uri}};
    (a.direction == "input" ? ia : oa).push_back(std::move(j));
  }
  out["outputs"] = {{"parameters", std::move(op)}, {"artifacts", std::move(oa)}};
  out["inputArtifacts"] = std::move(ia);
  return out;
}

void PrintText(const store::WorkflowRecord& w, const std::vector<store::NodeRecord>& nodes,
               const std::vector<store::ParameterRecord>& params,
               const std::vector<store::ArtifactRecord>& artifacts, const std::string& data_dir) {
  auto field = [](const char* name, const std::string& value) {
    std::printf("%-12s%s\n", name, value.c_str());
  };
  field("Name:", w.name);
  field("Namespace:", w.namespace_);
  field("Uid:", w.uid);
  field("Phase:", w.phase);
  if (!w.message.empty()) field("Message:", w.message);
  field("Created:", FormatTime(w.created_at));
  field("Started:", FormatTime(w.started_at));
  field("Finished:", FormatTime(w.finished_at));
  field("Duration:", FormatDuration(w.started_at, w.finished_at));
  nlohmann::json parameters = ParseStored(w.parameters_json);
  if (parameters.is_object() && !parameters.empty()) {
    std::printf("Parameters:\n");
    for (auto it = parameters.begin(); it != parameters.end(); ++it) {
      std::printf("  %s: %s\n", it.key().c_str(), ValueText(it.value()).c_str());
    }
  }
  field("Logs:", WorkflowWorkDir(data_dir, w.uid) + "/steps/*/log (kiln logs " + w.name + ")");

  if (!nodes.empty()) {
    std::vector<TreeRow> rows = Tree(nodes);
    std::map<std::string, int> attempts;  // Retry node -> attempts made
    for (const store::NodeRecord& n : nodes) {
      if (!n.parent_id.empty()) ++attempts[n.parent_id];
    }
    size_t step_w = 4, tmpl_w = 8, phase_w = 5;
    for (const TreeRow& r : rows) {
      step_w = std::max(step_w, Width(r.prefix) + Width(r.node->display_name));
      tmpl_w = std::max(tmpl_w, Width(r.node->template_name));
      phase_w = std::max(phase_w, r.node->phase.size());
    }
    std::printf("\n%s  %s  %s  %-8s  %-8s  %s\n", Pad("STEP", step_w).c_str(),
                Pad("TEMPLATE", tmpl_w).c_str(), Pad("PHASE", phase_w).c_str(), "DURATION",
                "ATTEMPTS", "MESSAGE");
    for (const TreeRow& r : rows) {
      const store::NodeRecord& n = *r.node;
      std::string tries = n.type == "Retry" ? std::to_string(attempts[n.id]) : "";
      std::string message = n.message;
      if (n.exit_code && *n.exit_code != 0 && n.type == "Pod" && message.empty()) {
        message = "exit code " + std::to_string(*n.exit_code);
      }
      std::string line = Pad(r.prefix + n.display_name, step_w) + "  " +
                         Pad(n.template_name, tmpl_w) + "  " + Pad(n.phase, phase_w) + "  " +
                         Pad(FormatDuration(n.started_at, n.finished_at), 8) + "  " +
                         Pad(tries, 8) + "  " + message;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::printf("%s\n", line.c_str());
    }
  }

  std::map<std::string, std::string> names;  // node id -> display name
  for (const store::NodeRecord& n : nodes) names[n.id] = n.display_name;
  auto node_name = [&](const std::string& id) {
    if (id.empty()) return std::string("(workflow)");
    auto it = names.find(id);
    return it == names.end() || it->second.empty() ? id : it->second;
  };
  bool any_param =
      std::any_of(params.begin(), params.end(), [](const auto& p) { return p.kind == "output"; });
  bool any_artifact = std::any_of(artifacts.begin(), artifacts.end(),
                                  [](const auto& a) { return a.direction == "output"; });
  if (!any_param && !any_artifact) return;
  std::printf("\nOutputs:\n");
  if (any_param) {
    std::printf("  Parameters:\n");
    for (const store::ParameterRecord& p : params) {
      if (p.kind != "output") continue;
      std::printf("    %s.%s: %s\n", node_name(p.node_id).c_str(), p.name.c_str(), p.value.c_str());
    }
  }
  if (any_artifact) {
    std::printf("  Artifacts:\n");
    for (const store::ArtifactRecord& a : artifacts) {
      if (a.direction != "output") continue;
      std::printf("    %s.%s: sha256:%s  %lld bytes  %s\n", node_name(a.node_id).c_str(),
                  a.name.c_str(), a.sha256.empty() ? "-" : a.sha256.c_str(),
                  static_cast<long long>(a.size), a.uri.c_str());
    }
  }
}

int RunGet(const GetFlags& flags) {
  const std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln get: %s\n", db.error().ToString().c_str());
    return 1;
  }
  store::Store& st = **db;
  auto wf = FindRecordedWorkflow(st, data_dir, flags.workflow, flags.namespace_);
  if (!wf) {
    std::fprintf(stderr, "kiln get: %s\n", wf.error().ToString().c_str());
    return 1;
  }
  auto nodes = st.ListNodes(wf->uid);
  auto params = st.ListParameters(wf->uid);
  auto artifacts = st.ListArtifacts(wf->uid);
  for (const Error* e : {nodes ? nullptr : &nodes.error(), params ? nullptr : &params.error(),
                         artifacts ? nullptr : &artifacts.error()}) {
    if (e == nullptr) continue;
    std::fprintf(stderr, "kiln get: %s\n", e->ToString().c_str());
    return 1;
  }
  if (flags.output == "json") {
    std::printf("%s\n", WorkflowJson(*wf, *nodes, *params, *artifacts, data_dir).dump(2).c_str());
  } else {
    PrintText(*wf, *nodes, *params, *artifacts, data_dir);
  }
  return 0;
}

}  // namespace

void RegisterGet(CLI::App& app) {
  auto flags = std::make_shared<GetFlags>();
  CLI::App* cmd = app.add_subcommand(
      "get", "Show a recorded workflow: its phase, parameters, node tree and outputs");
  cmd->add_option("workflow", flags->workflow,
                  "The workflow's name (as `kiln run` printed it) or uid")
      ->required();
  cmd->add_option("-n,--namespace", flags->namespace_, "The workflow's namespace (default: any)");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where `kiln run` recorded it (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("-o,--output", flags->output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->callback([flags] { SetExitCode(RunGet(*flags)); });
}

}  // namespace kiln::cli
