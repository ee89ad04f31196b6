// kiln submit: sends a Workflow manifest to a kiln server (POST /api/v1/workflows/{ns}) and
// prints the created workflow's name; --watch then follows it as `kiln watch` does.
//
// A manifest submitted as it is goes as YAML (Content-Type: application/yaml), so that the
// server's validation errors point at its lines. With -p, --entrypoint or -l, the manifest is
// converted to JSON, changed, and sent the Argo way: {"workflow": {...}}.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "dag/diagnostic.h"
#include "dag/internal/yaml_reader.h"
#include "dag/internal/yaml_tree.h"

namespace kiln::cli {

namespace {

struct SubmitFlags {
  std::string file;
  std::vector<std::string> parameters;  // NAME=VALUE
  std::string entrypoint;
  std::vector<std::string> labels;  // KEY=VALUE, each possibly a comma-separated list
  bool watch = false;
  std::string output = "name";
  ClientFlags client;
};

// Splits "NAME=VALUE"; nullopt when there is no '=' or no name.
std::optional<std::pair<std::string, std::string>> SplitAssignment(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  return std::pair{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

// Sets spec.arguments.parameters[name].value (appending the parameter when the manifest does not
// declare it), spec.entrypoint and metadata.labels. Returns an error message, or "".
std::string ApplyOverrides(nlohmann::json& wf,
                           const std::vector<std::pair<std::string, std::string>>& parameters,
                           const std::string& entrypoint,
                           const std::vector<std::pair<std::string, std::string>>& labels) {
  auto child = [](nlohmann::json& parent, const char* key) -> nlohmann::json* {
    if (!parent.contains(key) || parent[key].is_null()) parent[key] = nlohmann::json::object();
    return parent[key].is_object() ? &parent[key] : nullptr;
  };
  if (!parameters.empty() || !entrypoint.empty()) {
    nlohmann::json* spec = child(wf, "spec");
    if (spec == nullptr) return "spec is not a map";
    if (!entrypoint.empty()) (*spec)["entrypoint"] = entrypoint;
    if (!parameters.empty()) {
      nlohmann::json* arguments = child(*spec, "arguments");
      if (arguments == nullptr) return "spec.arguments is not a map";
      nlohmann::json& list = (*arguments)["parameters"];
      if (list.is_null()) list = nlohmann::json::array();
      if (!list.is_array()) return "spec.arguments.parameters is not a list";
      for (const auto& [name, value] : parameters) {
        bool found = false;
        for (nlohmann::json& p : list) {
          if (p.is_object() && p.contains("name") && p["name"] == name) {
            p["value"] = value;
            found = true;
          }
        }
        if (!found) list.push_back({{"name", name}, {"value", value}});
      }
    }
  }
  if (!labels.empty()) {
    nlohmann::json* metadata = child(wf, "metadata");
    if (metadata == nullptr) return "metadata is not a map";
    nlohmann::json* map = child(*metadata, "labels");
    if (map == nullptr) return "metadata.labels is not a map";
    for (const auto& [key, value] : labels) (*map)[key] = value;
  }
  return "";
}

// metadata.<key> when it is a string, else "".
std::string MetadataString(const nlohmann::json& wf, const char* key) {
  if (!wf.is_object()) return "";
  auto metadata = wf.find("metadata");
  if (metadata == wf.end() || !metadata->is_object()) return "";
  auto value = metadata->find(key);
  return value != metadata->end() && value->is_string() ? value->get<std::string>() : "";
}

Result<std::string> ReadManifest(const std::string& file) {
  if (file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, "cannot read " + file);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int RunSubmit(const SubmitFlags& flags) {
  std::vector<std::pair<std::string, std::string>> parameters;
  for (const std::string& p : flags.parameters) {
    auto kv = SplitAssignment(p);
    if (!kv) {
      std::fprintf(stderr, "kiln submit: -p %s: expected NAME=VALUE\n", Quote(p).c_str());
      return kExitUsage;
    }
    parameters.push_back(std::move(*kv));
  }
  std::vector<std::pair<std::string, std::string>> labels;
  for (const std::string& list : flags.labels) {
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = std::min(list.find(',', start), list.size());
      std::string_view item = Trim(std::string_view(list).substr(start, comma - start));
      start = comma + 1;
      if (item.empty()) continue;
      auto kv = SplitAssignment(item);
      if (!kv) {
        std::fprintf(stderr, "kiln submit: -l %s: expected KEY=VALUE\n", Quote(item).c_str());
        return kExitUsage;
      }
      labels.push_back(std::move(*kv));
    }
  }

  auto config = ResolveClient(flags.client);
  if (!config) {
    std::fprintf(stderr, "kiln submit: %s\n", config.error().ToString().c_str());
    return kExitFailure;
  }
  if (!*config) {
    std::string path = ConfigFilePath();
    std::fprintf(stderr,
                 "kiln submit: no kiln server to submit to: pass --server URL, set KILN_SERVER%s\n"
                 "  to run the workflow on this machine without a server: kiln run %s\n",
                 path.empty() ? "" : (", or put server: in " + path).c_str(), flags.file.c_str());
    return kExitUsage;
  }

  auto text = ReadManifest(flags.file);
  if (!text) {
    std::fprintf(stderr, "kiln submit: %s\n", text.error().ToString().c_str());
    return kExitUsage;
  }
  const std::string file_name = flags.file == "-" ? "<stdin>" : flags.file;
  dag::Diagnostics diags;
  auto tree = dag::yaml::Tree::Parse(file_name, *text, dag::yaml::BuildOptions{}, diags);
  if (diags.has_errors()) {
    for (const dag::Diagnostic& d : diags.items()) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return kExitFailure;
  }
  std::vector<dag::yaml::Node> documents;
  if (tree != nullptr) {
    for (const dag::yaml::Node& doc : tree->documents()) {
      if (!doc.IsNull()) documents.push_back(doc);
    }
  }
  if (documents.empty()) {
    std::fprintf(stderr, "kiln submit: %s has no workflow in it\n", file_name.c_str());
    return kExitFailure;
  }
  if (flags.watch && documents.size() > 1) {
    std::fprintf(stderr,
                 "kiln submit: --watch follows one workflow and %s has %zu; submit them without "
                 "--watch and `kiln watch` each\n",
                 file_name.c_str(), documents.size());
    return kExitUsage;
  }
  const bool as_yaml =
      documents.size() == 1 && parameters.empty() && flags.entrypoint.empty() && labels.empty();

  int exit_code = 0;
  for (const dag::yaml::Node& doc : documents) {
    if (!doc.IsMap()) {
      dag::yaml::Mark m = doc.Mark();
      std::fprintf(stderr, "%s:%d:%d: expected a Workflow (a map), found %s\n", file_name.c_str(),
                   m.line + 1, m.column + 1, std::string(dag::internal::DescribeNode(doc)).c_str());
      return kExitFailure;
    }
    nlohmann::json wf = dag::internal::ToJson(doc);
    // The namespace: -n, else the manifest's, else the config file's or "default".
    ClientConfig doc_config = **config;
    if (std::string ns = MetadataString(wf, "namespace");
        flags.client.namespace_.empty() && !ns.empty()) {
      doc_config.namespace_ = ns;
    }
    ServerClient client("submit", std::move(doc_config));
    client.set_detail_file(file_name);
    std::optional<nlohmann::json> created;
    if (as_yaml) {
      created = client.Call("POST", client.WorkflowsPath(), *text,
                            {{"Content-Type", "application/yaml"}});
    } else {
      std::string bad = ApplyOverrides(wf, parameters, flags.entrypoint, labels);
      if (!bad.empty()) {
        dag::yaml::Mark m = doc.Mark();
        std::fprintf(stderr, "%s:%d:%d: cannot apply -p, --entrypoint or -l: %s\n",
                     file_name.c_str(), m.line + 1, m.column + 1, bad.c_str());
        return kExitFailure;
      }
      nlohmann::json body = {{"workflow", std::move(wf)}};
      created = client.Call("POST", client.WorkflowsPath(), body.dump());
    }
    if (!created) {
      exit_code = client.exit_code();
      continue;
    }
    const std::string name = MetadataString(*created, "name");
    if (flags.output == "json") {
      std::printf("%s\n", created->dump(2).c_str());
    } else {
      std::printf("%s\n", name.c_str());
    }
    std::fflush(stdout);
    if (flags.watch) {
      if (name.empty()) {
        client.Fail("the server's answer has no metadata.name; nothing to watch");
        return client.exit_code();
      }
      return WatchWorkflow(client, name);
    }
  }
  return exit_code;
}

}  // namespace

void RegisterSubmit(CLI::App& app) {
  auto flags = std::make_shared<SubmitFlags>();
  CLI::App* cmd = app.add_subcommand(
      "submit",
      "Submit a Workflow manifest to a kiln server and print its name (`kiln run` runs one on "
      "this machine without a server)");
  cmd->add_option("file", flags->file, "The Workflow manifest (- for stdin)")->required();
  cmd->add_option("-p,--parameter", flags->parameters,
                  "Set workflow parameter NAME=VALUE (repeatable)");
  cmd->add_option("--entrypoint", flags->entrypoint,
                  "Start with this template instead of spec.entrypoint");
  cmd->add_option("-l,--label", flags->labels,
                  "Add label KEY=VALUE to the workflow (repeatable, or comma-separated)");
  cmd->add_flag("--watch", flags->watch,
                "Then follow the workflow until it ends, as `kiln watch` does; exits 0 only "
                "when it succeeded");
  cmd->add_option("-o,--output", flags->output,
                  "What to print: name (the created workflow's name) or json (the workflow)")
      ->check(CLI::IsMember({"name", "json"}));
  cmd->add_option("-n,--namespace", flags->client.namespace_,
                  "The namespace (default: the manifest's, else namespace: in the config file, "
                  "else \"default\")");
  AddClientFlags(*cmd, flags->client);
  cmd->callback([flags] { SetExitCode(RunSubmit(*flags)); });
}

}  // namespace kiln::cli
