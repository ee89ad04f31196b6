// kiln get: one workflow, as `argo get` shows it: the header, the node tree, outputs. From the
// store `kiln run` recorded in, or from a kiln server (cli/client.h says when).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/workflow_view.h"

namespace kiln::cli {

namespace {

struct GetFlags {
  std::string workflow;
  std::string data_dir;
  std::string output = "text";  // text, wide, json, yaml
  ClientFlags client;           // and -n
};

// A JSON document stored as text ("" when none); null when empty or unreadable.
nlohmann::json ParseStored(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
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

// -o json and -o yaml print the server's Workflow object as it answered (Argo's format); text
// and wide render it as the embedded mode does.
int GetFromServer(const GetFlags& flags, ClientConfig config) {
  ServerClient client("get", std::move(config));
  auto wf = client.Call("GET", client.WorkflowsPath(flags.workflow));
  if (!wf) return client.exit_code();
  if (flags.output == "json") {
    std::printf("%s\n", wf->dump(2).c_str());
  } else if (flags.output == "yaml") {
    std::fputs(ToYaml(*wf).c_str(), stdout);
  } else {
    WorkflowRecords records = RecordsFromWorkflowJson(*wf);
    std::string logs = "kiln logs " + records.workflow.name;
    if (client.ns() != "default") logs += " -n " + client.ns();
    std::fputs(RenderWorkflowText(records, logs, flags.output == "wide").c_str(), stdout);
  }
  return 0;
}

int RunGet(const GetFlags& flags) {
  auto server = ServerMode("get", flags.client, !flags.data_dir.empty());
  if (!server) return server.error();
  if (*server) return GetFromServer(flags, std::move(**server));

  const std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln get: %s\n", db.error().ToString().c_str());
    return 1;
  }
  store::Store& st = **db;
  auto wf = FindRecordedWorkflow(st, data_dir, flags.workflow, flags.client.namespace_);
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
  } else if (flags.output == "yaml") {
    std::fputs(ToYaml(WorkflowJson(*wf, *nodes, *params, *artifacts, data_dir)).c_str(), stdout);
  } else {
    WorkflowRecords records{*wf, std::move(*nodes), std::move(*params), std::move(*artifacts)};
    std::string logs =
        WorkflowWorkDir(data_dir, wf->uid) + "/steps/*/log (kiln logs " + wf->name + ")";
    std::fputs(RenderWorkflowText(records, logs, flags.output == "wide").c_str(), stdout);
  }
  return 0;
}

}  // namespace

void RegisterGet(CLI::App& app) {
  auto flags = std::make_shared<GetFlags>();
  CLI::App* cmd = app.add_subcommand(
      "get",
      "Show a workflow: its phase, parameters, node tree and outputs; a kiln server's when one is "
      "configured (--server, $KILN_SERVER or ~/.config/kiln/config.yaml), else one `kiln run` "
      "recorded here");
  cmd->add_option("workflow", flags->workflow,
                  "The workflow's name (as `kiln run` or `kiln submit` printed it) or, recorded "
                  "here, its uid")
      ->required();
  cmd->add_option("-n,--namespace", flags->client.namespace_,
                  "The workflow's namespace (recorded here: default any; with a server: default "
                  "\"default\")");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where `kiln run` recorded it (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("-o,--output", flags->output,
                  "Output format: text, wide (with node ids), json or yaml (with a server: the "
                  "Workflow object as the server returns it)")
      ->check(CLI::IsMember({"text", "wide", "json", "yaml"}));
  AddClientFlags(*cmd, flags->client);
  cmd->callback([flags] { SetExitCode(RunGet(*flags)); });
}

}  // namespace kiln::cli
