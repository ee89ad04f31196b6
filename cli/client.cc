#include "cli/client.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>

#include "base/strings.h"
#include "dag/diagnostic.h"
#include "dag/internal/yaml_tree.h"

namespace kiln::cli {

namespace {

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// What the config file says; empty fields when it says nothing (or does not exist).
struct FileConfig {
  std::string server;
  std::string token;
  std::string namespace_;
  std::string ca_file;
  std::optional<bool> insecure_skip_tls_verify;
};

constexpr std::string_view kConfigKeys[] = {"server", "token", "namespace", "ca-file",
                                            "insecure-skip-tls-verify"};

Result<FileConfig> ReadConfigFile(const std::string& path) {
  FileConfig out;
  if (path.empty()) return out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;  // no config file: nothing configured there
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  dag::Diagnostics diags;
  auto tree = dag::yaml::Tree::Parse(path, text, dag::yaml::BuildOptions{}, diags);
  if (diags.has_errors()) {
    for (const dag::Diagnostic& d : diags.items()) {
      if (d.severity == dag::Severity::kError) {
        return MakeError(Code::kInvalidArgument, d.ToString());
      }
    }
  }
  if (tree == nullptr || tree->documents().empty()) return out;
  const dag::yaml::Node& doc = tree->documents().front();
  auto where = [&path](const dag::yaml::Node& n) {
    dag::yaml::Mark m = n.Mark();
    return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  };
  if (doc.IsNull()) return out;  // an empty file
  if (!doc.IsMap()) {
    return MakeError(Code::kInvalidArgument,
                     where(doc) +
                         ": expected a map of server, token, namespace, ca-file and "
                         "insecure-skip-tls-verify");
  }
  std::vector<std::string_view> known(std::begin(kConfigKeys), std::end(kConfigKeys));
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const dag::yaml::Node key = it->first;
    const dag::yaml::Node value = it->second;
    std::string name(key.Scalar());
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return MakeError(Code::kInvalidArgument,
                       where(key) + ": unknown key " + Quote(name) + DidYouMean(name, known) +
                           "; the keys are server, token, namespace, ca-file and "
                           "insecure-skip-tls-verify");
    }
    if (value.IsNull()) continue;
    if (!value.IsScalar()) {
      return MakeError(Code::kInvalidArgument, where(value) + ": " + name + ": expected a string");
    }
    std::string v(value.Scalar());
    if (name == "server") out.server = v;
    if (name == "token") out.token = v;
    if (name == "namespace") out.namespace_ = v;
    if (name == "ca-file") out.ca_file = v;
    if (name == "insecure-skip-tls-verify") {
      if (v == "true") {
        out.insecure_skip_tls_verify = true;
      } else if (v == "false") {
        out.insecure_skip_tls_verify = false;
      } else {
        return MakeError(Code::kInvalidArgument,
                         where(value) + ": " + name + ": expected true or false, not " + Quote(v));
      }
    }
  }
  return out;
}

// The first line of `text`, at most 200 characters.
std::string Excerpt(std::string_view text) {
  text = Trim(text);
  size_t nl = text.find('\n');
  std::string out(Trim(text.substr(0, nl)));
  if (out.size() > 200) out = out.substr(0, 200) + "…";
  return out;
}

std::string JsonString(const nlohmann::json& j, std::string_view key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_null()) return "";
  return it->dump();
}

}  // namespace

void AddClientFlags(CLI::App& cmd, ClientFlags& flags) {
  cmd.add_option("--server", flags.server,
                 "The kiln server's URL, http://HOST:PORT or https://HOST:PORT (default "
                 "$KILN_SERVER, else server: in ~/.config/kiln/config.yaml)");
  cmd.add_option("--token", flags.token,
                 "The bearer token for the server (default $KILN_TOKEN, else token: in the config "
                 "file)");
  cmd.add_option("--ca-file", flags.ca_file,
                 "PEM CA certificates to verify an https server with, instead of the system's");
  cmd.add_flag("--insecure-skip-tls-verify", flags.insecure_skip_tls_verify,
               "Do not verify the https server's certificate (for tests only)");
}

std::string ConfigFilePath() {
  if (const char* xdg = Env("XDG_CONFIG_HOME")) return std::string(xdg) + "/kiln/config.yaml";
  if (const char* home = Env("HOME")) return std::string(home) + "/.config/kiln/config.yaml";
  return "";
}

Result<std::optional<ClientConfig>> ResolveClient(const ClientFlags& flags) {
  auto file = ReadConfigFile(ConfigFilePath());
  if (!file) return std::unexpected(file.error());
  auto first = [](const std::string& flag, const char* env, const std::string& from_file) {
    if (!flag.empty()) return flag;
    if (env != nullptr) {
      if (const char* v = Env(env)) return std::string(v);
    }
    return from_file;
  };
  ClientConfig config;
  config.endpoint.url = first(flags.server, "KILN_SERVER", file->server);
  if (config.endpoint.url.empty()) return std::optional<ClientConfig>();
  config.endpoint.token = first(flags.token, "KILN_TOKEN", file->token);
  config.endpoint.ca_file = first(flags.ca_file, nullptr, file->ca_file);
  config.endpoint.insecure_skip_verify =
      flags.insecure_skip_tls_verify || file->insecure_skip_tls_verify.value_or(false);
  config.namespace_ = first(flags.namespace_, nullptr, file->namespace_);
  if (config.namespace_.empty()) config.namespace_ = "default";
  return std::optional<ClientConfig>(std::move(config));
}

std::expected<std::optional<ClientConfig>, int> ServerMode(std::string_view command,
                                                           const ClientFlags& flags,
                                                           bool data_dir_given) {
  if (data_dir_given) {
    if (!flags.server.empty()) {
      std::fprintf(stderr,
                   "kiln %.*s: --server and --data-dir exclude each other: --data-dir reads "
                   "what `kiln run` recorded on this machine, --server asks a kiln server\n",
                   static_cast<int>(command.size()), command.data());
      return std::unexpected(kExitUsage);
    }
    return std::optional<ClientConfig>();
  }
  auto config = ResolveClient(flags);
  if (!config) {
    std::fprintf(stderr, "kiln %.*s: %s\n", static_cast<int>(command.size()), command.data(),
                 config.error().ToString().c_str());
    return std::unexpected(kExitFailure);
  }
  return std::move(*config);
}

ServerClient::ServerClient(std::string command, ClientConfig config)
    : command_(std::move(command)), config_(std::move(config)) {}

std::string ServerClient::WorkflowsPath(std::string_view name) const {
  std::string path = "/api/v1/workflows/" + http::UrlEncode(config_.namespace_);
  if (!name.empty()) path += "/" + http::UrlEncode(name);
  return path;
}

void ServerClient::Fail(const std::string& message) {
  std::fprintf(stderr, "kiln %s: %s\n", command_.c_str(), message.c_str());
  if (exit_code_ == 0) exit_code_ = kExitFailure;
}

void ServerClient::ReportTransport(const Error& error) {
  const std::string& message = error.message();
  Fail(message);
  if (error.code() == Code::kInvalidArgument) {
    exit_code_ = kExitUsage;  // a bad --server URL or --ca-file
    return;
  }
  if (message.starts_with("cannot connect to ")) {
    std::string config = ConfigFilePath();
    std::fprintf(stderr,
                 "  start a server there with `kiln server`, or fix --server (or $KILN_SERVER%s)\n",
                 config.empty() ? "" : (", or server: in " + config).c_str());
  } else if (message.find("certificate verify failed") != std::string::npos) {
    std::fprintf(stderr,
                 "  pass the CA that signed the server's certificate with --ca-file, or skip the "
                 "check with --insecure-skip-tls-verify\n");
  }
}

void ServerClient::ReportStatus(int status, std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  std::string message = JsonString(j, "message");
  if (message.empty()) {
    std::string excerpt = Excerpt(body);
    message =
        "the server answered " + std::to_string(status) + (excerpt.empty() ? "" : ": " + excerpt);
  }
  Fail(message);
  if (j.is_object() && j.contains("details") && j["details"].is_array()) {
    for (const nlohmann::json& d : j["details"]) {
      if (!d.is_object()) continue;
      std::string file = JsonString(d, "file");
      std::string line = JsonString(d, "line");
      std::string column = JsonString(d, "column");
      std::string field = JsonString(d, "field");
      std::string text = JsonString(d, "message");
      if (file.empty()) file = detail_file_;
      std::string out = file;
      if (!line.empty() && line != "0") {
        out += (out.empty() ? "" : ":") + line;
        if (!column.empty() && column != "0") out += ":" + column;
      }
      if (!out.empty()) out += ": ";
      if (!field.empty()) out += field + ": ";
      std::string severity = JsonString(d, "severity");
      if (severity == "warning" || severity == "note") out += severity + ": ";
      out += text;
      std::fprintf(stderr, "%s\n", out.c_str());
    }
  }
  if (status == 401) {
    std::fprintf(stderr, "  %s\n",
                 config_.endpoint.token.empty()
                     ? "the server needs a token: pass --token or set KILN_TOKEN"
                     : "the server did not accept the token: check --token or KILN_TOKEN");
  } else if (status == 403) {
    std::fprintf(stderr, "  the token may not do this: check --token or KILN_TOKEN\n");
  }
}

std::optional<nlohmann::json> ServerClient::Call(std::string_view method, const std::string& target,
                                                 std::string body,
                                                 std::vector<http::Header> headers) {
  auto r = http::Fetch(config_.endpoint, method, target, std::move(body), std::move(headers));
  if (!r) {
    ReportTransport(r.error());
    return std::nullopt;
  }
  if (r->status / 100 != 2) {
    ReportStatus(r->status, r->body);
    return std::nullopt;
  }
  if (Trim(r->body).empty()) return nlohmann::json(nullptr);
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) {
    Fail(config_.endpoint.url + " answered " + std::string(method) + " " + target +
         " with something that is not JSON: " + Quote(Excerpt(r->body)) +
         "; is --server a kiln server?");
    return std::nullopt;
  }
  return j;
}

ServerClient::StreamEnd ServerClient::Stream(
    const std::string& target, const std::function<bool(const nlohmann::json&)>& on_object) {
  bool failed = false;
  bool stopped = false;
  std::string error_body;
  auto r = http::FetchStream(
      config_.endpoint, "GET", target,
      [&](std::string_view line) {
        if (Trim(line).empty()) return true;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("error")) {
          const nlohmann::json& e = j["error"];
          std::string message = JsonString(e, "message");
          Fail(message.empty() ? e.dump() : message);
          failed = true;
          return false;
        }
        if (!j.is_object() || !j.contains("result")) {
          Fail("the server's stream has a line that is not {\"result\": ...}: " +
               Quote(Excerpt(line)));
          failed = true;
          return false;
        }
        if (!on_object(j["result"])) {
          stopped = true;
          return false;
        }
        return true;
      },
      {{"Accept", "application/json"}}, &error_body);
  if (!r) {
    ReportTransport(r.error());
    return StreamEnd::kFailed;
  }
  if (*r / 100 != 2) {
    ReportStatus(*r, error_body);
    return StreamEnd::kFailed;
  }
  if (failed) return StreamEnd::kFailed;
  return stopped ? StreamEnd::kStopped : StreamEnd::kEnded;
}

int64_t ParseTimeMs(const nlohmann::json& value) {
  if (!value.is_string()) return 0;
  const std::string s = value.get<std::string>();
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  int year, month, day, hour, minute, second;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &year, &month, &day, &hour,
                  &minute, &second, &consumed) != 6 ||
      consumed != 19) {
    return 0;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return 0;
  }
  size_t i = 19;
  int64_t ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 3) ms = ms * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return 0;
    for (int d = digits; d < 3; ++d) ms *= 10;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) return 0;
    offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return 0;
  }
  if (i != s.size()) return 0;
  // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
  int y = year - (month <= 2 ? 1 : 0);
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000 + ms;
}

WorkflowRecords RecordsFromWorkflowJson(const nlohmann::json& wf) {
  WorkflowRecords out;
  const nlohmann::json empty = nlohmann::json::object();
  auto object = [&empty](const nlohmann::json& j, std::string_view key) -> const nlohmann::json& {
    if (!j.is_object()) return empty;
    auto it = j.find(key);
    return it != j.end() && it->is_object() ? *it : empty;
  };
  auto array = [](const nlohmann::json& j, std::string_view key) {
    if (!j.is_object()) return nlohmann::json::array();
    auto it = j.find(key);
    return it != j.end() && it->is_array() ? *it : nlohmann::json::array();
  };
  const nlohmann::json& metadata = object(wf, "metadata");
  const nlohmann::json& spec = object(wf, "spec");
  const nlohmann::json& status = object(wf, "status");

  store::WorkflowRecord& w = out.workflow;
  w.uid = JsonString(metadata, "uid");
  w.name = JsonString(metadata, "name");
  w.namespace_ = JsonString(metadata, "namespace");
  w.kind = wf.is_object() && wf.contains("kind") ? JsonString(wf, "kind") : "Workflow";
  w.phase = JsonString(status, "phase");
  if (w.phase.empty()) w.phase = "Pending";  // not picked up yet
  w.message = JsonString(status, "message");
  const nlohmann::json& labels = object(metadata, "labels");
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    w.labels[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  }
  w.created_at = ParseTimeMs(metadata.value("creationTimestamp", nlohmann::json()));
  w.started_at = ParseTimeMs(status.value("startedAt", nlohmann::json()));
  w.finished_at = ParseTimeMs(status.value("finishedAt", nlohmann::json()));
  nlohmann::json params = nlohmann::json::object();
  for (const nlohmann::json& p : array(object(spec, "arguments"), "parameters")) {
    std::string name = JsonString(p, "name");
    if (name.empty()) continue;
    params[name] = p.contains("value") ? p["value"] : p.value("default", nlohmann::json(""));
  }
  if (!params.empty()) w.parameters_json = params.dump();

  const nlohmann::json& nodes = object(status, "nodes");
  std::map<std::string, std::string> parent_of;  // from the parents' "children"
  for (auto it = nodes.begin(); it != nodes.end(); ++it) {
    std::string id = JsonString(it.value(), "id");
    if (id.empty()) id = it.key();
    for (const nlohmann::json& child : array(it.value(), "children")) {
      if (child.is_string()) parent_of.emplace(child.get<std::string>(), id);
    }
  }
  for (auto it = nodes.begin(); it != nodes.end(); ++it) {
    const nlohmann::json& n = it.value();
    if (!n.is_object()) continue;
    store::NodeRecord r;
    r.workflow_uid = w.uid;
    r.id = JsonString(n, "id");
    if (r.id.empty()) r.id = it.key();
    if (auto p = parent_of.find(r.id); p != parent_of.end()) {
      r.parent_id = p->second;
    } else {
      std::string boundary = JsonString(n, "boundaryID");
      if (boundary != r.id && nodes.contains(boundary)) r.parent_id = boundary;
    }
    r.display_name = JsonString(n, "displayName");
    if (r.display_name.empty()) r.display_name = JsonString(n, "name");
    r.template_name = JsonString(n, "templateName");
    r.type = JsonString(n, "type");
    r.phase = JsonString(n, "phase");
    if (r.phase.empty()) r.phase = "Pending";
    if (n.contains("retryAttempt") && n["retryAttempt"].is_number_integer()) {
      r.attempt = n["retryAttempt"].get<int>();
    }
    r.started_at = ParseTimeMs(n.value("startedAt", nlohmann::json()));
    r.finished_at = ParseTimeMs(n.value("finishedAt", nlohmann::json()));
    r.message = JsonString(n, "message");
    const nlohmann::json& inputs = object(n, "inputs");
    const nlohmann::json& outputs = object(n, "outputs");
    if (!inputs.empty()) r.inputs_json = inputs.dump();
    if (!outputs.empty()) r.outputs_json = outputs.dump();
    std::string exit_code = JsonString(outputs, "exitCode");
    if (!exit_code.empty()) {
      char* end = nullptr;
      long code = std::strtol(exit_code.c_str(), &end, 10);
      if (end != nullptr && *end == '\0') r.exit_code = static_cast<int>(code);
    }
    for (const auto& [io, kind] : {std::pair{&inputs, "input"}, std::pair{&outputs, "output"}}) {
      for (const nlohmann::json& p : array(*io, "parameters")) {
        store::ParameterRecord pr;
        pr.workflow_uid = w.uid;
        pr.node_id = r.id;
        pr.name = JsonString(p, "name");
        pr.value = JsonString(p, "value");
        pr.kind = kind;
        out.parameters.push_back(std::move(pr));
      }
      for (const nlohmann::json& a : array(*io, "artifacts")) {
        store::ArtifactRecord ar;
        ar.workflow_uid = w.uid;
        ar.node_id = r.id;
        ar.name = JsonString(a, "name");
        ar.direction = kind;
        ar.uri = JsonString(a, "uri");
        std::string digest = JsonString(a, "digest");
        ar.sha256 = digest.starts_with("sha256:") ? digest.substr(7) : digest;
        if (a.contains("size") && a["size"].is_number_integer()) {
          ar.size = a["size"].get<int64_t>();
        }
        out.artifacts.push_back(std::move(ar));
      }
    }
    out.nodes.push_back(std::move(r));
  }
  // The store's orders, so that both sources render alike.
  std::sort(out.nodes.begin(), out.nodes.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  std::sort(out.parameters.begin(), out.parameters.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node_id, a.kind, a.name) < std::tie(b.node_id, b.kind, b.name);
  });
  std::sort(out.artifacts.begin(), out.artifacts.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node_id, a.direction, a.name) < std::tie(b.node_id, b.direction, b.name);
  });
  for (const nlohmann::json& p : array(object(status, "outputs"), "parameters")) {
    store::ParameterRecord pr;
    pr.workflow_uid = w.uid;
    pr.name = JsonString(p, "name");
    pr.value = JsonString(p, "value");
    pr.kind = "global";
    out.parameters.push_back(std::move(pr));
  }
  return out;
}

}  // namespace kiln::cli
