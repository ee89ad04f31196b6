#include "kube/kubeconfig.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dag/internal/yaml_tree.h"
#include "kube/token_source.h"

namespace kiln::kube {

namespace {

using nlohmann::json;

// A YAML node as JSON (scalars as strings; kubeconfig has no numbers kiln reads). Depth is
// bounded by the tree's own limit.
json ToJson(const dag::yaml::Node& n) {
  switch (n.Type()) {
    case dag::yaml::NodeType::kScalar:
      return std::string(n.Scalar());
    case dag::yaml::NodeType::kSequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(ToJson(e));
      return a;
    }
    case dag::yaml::NodeType::kMap: {
      json o = json::object();
      for (const auto& kv : n) o[std::string(kv.first.Scalar())] = ToJson(kv.second);
      return o;
    }
    default:
      return nullptr;
  }
}

std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> Base64Decode(std::string_view in) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') clean += c;
  }
  if (clean.size() % 4 != 0) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

// The entry named `name` of list `key` ({name, <field>}), or null.
const json* Named(const json& doc, const char* key, const char* field, const std::string& name) {
  auto list = doc.find(key);
  if (list == doc.end() || !list->is_array()) return nullptr;
  for (const json& e : *list) {
    if (e.is_object() && Str(e, "name") == name) {
      auto f = e.find(field);
      return f != e.end() && f->is_object() ? &*f : nullptr;
    }
  }
  return nullptr;
}

}  // namespace

Result<void> ParseServerUrl(const std::string& url, ClusterConfig& config) {
  std::string rest;
  if (url.starts_with("https://")) {
    config.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    config.tls = false;
    rest = url.substr(7);
  } else {
    return MakeError(Code::kInvalidArgument, "server \"" + url + "\" is not an http(s) URL");
  }
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return MakeError(Code::kInvalidArgument, "server \"" + url + "\" has no host");
  if (rest.front() == '[') {  // [v6]:port
    size_t close = rest.find(']');
    if (close == std::string::npos) return MakeError(Code::kInvalidArgument, "server \"" + url + "\" is malformed");
    config.host = rest.substr(1, close - 1);
    config.port = close + 1 < rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2) : "";
  } else {
    size_t colon = rest.rfind(':');
    config.host = rest.substr(0, colon);
    config.port = colon == std::string::npos ? "" : rest.substr(colon + 1);
  }
  if (config.port.empty()) config.port = config.tls ? "443" : "80";
  config.server = url;
  return {};
}

std::string ServiceAccountDir() {
  const char* env = std::getenv("KILN_SERVICEACCOUNT_DIR");
  return env && *env ? env : kServiceAccountDir;
}

bool InCluster() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  return host && *host && port && *port;
}

Result<ClusterConfig> LoadInClusterConfig(const std::string& dir) {
  const std::string where = "in-cluster config";
  if (!InCluster()) {
    return MakeError(Code::kFailedPrecondition,
                     "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not both set; kiln is not running in a pod",
                     where);
  }
  std::string host = std::getenv("KUBERNETES_SERVICE_HOST");
  const std::string port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host.find(':') != std::string::npos && !host.starts_with("[")) host = "[" + host + "]";
  ClusterConfig c;
  if (auto r = ParseServerUrl("https://" + host + ":" + port, c); !r) {
    return MakeError(Code::kInvalidArgument,
                     "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT: " + r.error().message(), where);
  }
  const std::string ca = dir + "/ca.crt";
  auto ca_pem = ReadText(ca);
  if (!ca_pem) {
    return MakeError(Code::kNotFound,
                     "cannot read " + ca + ": " + std::strerror(errno) +
                         " (is the service account token mounted? automountServiceAccountToken must not be false)",
                     where);
  }
  if (ca_pem->empty()) return MakeError(Code::kInvalidArgument, ca + " is empty", where);
  c.ca_pem = std::move(*ca_pem);
  const std::string token_file = dir + "/token";
  auto token = ReadTokenFile(token_file);
  if (!token) return MakeError(token.error().code(), token.error().message(), where);
  c.token = std::move(*token);
  c.token_file = token_file;
  if (auto ns = ReadText(dir + "/namespace")) {
    std::string_view t = *ns;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.remove_suffix(1);
    if (!t.empty()) c.namespace_ = std::string(t);
  }
  return c;
}

std::string KubeconfigPath(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) return env;
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string path = std::string(home) + "/.kube/config";
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) return path;
  }
  return "";
}

Result<ClusterConfig> LoadClusterConfig(const std::string& kubeconfig, const std::string& context) {
  if (!kubeconfig.empty()) return LoadKubeconfig(kubeconfig, context);
  const char* home = std::getenv("HOME");
  const std::string default_path = home && *home ? std::string(home) + "/.kube/config" : "~/.kube/config";
  if (!context.empty()) {
    return MakeError(Code::kFailedPrecondition,
                     "--context \"" + context + "\" needs a kubeconfig, and there is none: no --kubeconfig, $KUBECONFIG is "
                     "unset and " + default_path + " does not exist");
  }
  if (!InCluster()) {
    return MakeError(Code::kFailedPrecondition,
                     "no Kubernetes cluster configured: no --kubeconfig, $KUBECONFIG is unset, " + default_path +
                         " does not exist, and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are unset (not in a "
                         "pod); pass --kubeconfig FILE");
  }
  return LoadInClusterConfig(ServiceAccountDir());
}

Result<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  const std::string where = "kubeconfig " + path;
  auto text = ReadText(path);
  if (!text) return MakeError(Code::kNotFound, "cannot read the file", where);
  json doc;
  if (!text->empty() && text->front() == '{') {
    doc = json::parse(*text, nullptr, false);
    if (doc.is_discarded()) return MakeError(Code::kInvalidArgument, "not valid JSON", where);
  } else {
    dag::Diagnostics diags;
    auto tree = dag::yaml::Tree::Parse(path, *text, dag::yaml::BuildOptions{}, diags);
    if (diags.has_errors()) return MakeError(Code::kInvalidArgument, diags.items().front().ToString());
    if (!tree || tree->documents().empty()) return MakeError(Code::kInvalidArgument, "the file is empty", where);
    doc = ToJson(tree->documents().front());
  }
  if (!doc.is_object()) return MakeError(Code::kInvalidArgument, "not a kubeconfig (no mapping at the top)", where);
  std::string ctx_name = context.empty() ? Str(doc, "current-context") : context;
  if (ctx_name.empty()) return MakeError(Code::kInvalidArgument, "no current-context and no --context given", where);
  const json* ctx = Named(doc, "contexts", "context", ctx_name);
  if (!ctx) return MakeError(Code::kInvalidArgument, "context \"" + ctx_name + "\" not found", where);
  std::string cluster_name = Str(*ctx, "cluster");
  const json* cluster = Named(doc, "clusters", "cluster", cluster_name);
  if (!cluster) {
    return MakeError(Code::kInvalidArgument,
                     "cluster \"" + cluster_name + "\" of context \"" + ctx_name + "\" not found", where);
  }
  ClusterConfig c;
  if (std::string ns = Str(*ctx, "namespace"); !ns.empty()) c.namespace_ = ns;
  std::string server = Str(*cluster, "server");
  if (server.empty()) return MakeError(Code::kInvalidArgument, "cluster \"" + cluster_name + "\" has no server", where);
  if (auto r = ParseServerUrl(server, c); !r) return MakeError(Code::kInvalidArgument, r.error().message(), where);
  c.insecure_skip_tls_verify = Str(*cluster, "insecure-skip-tls-verify") == "true";

  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  auto file_or_data = [&](const json& o, const char* file_key, const char* data_key,
                          std::string* out) -> Result<void> {
    if (std::string data = Str(o, data_key); !data.empty()) {
      auto decoded = Base64Decode(data);
      if (!decoded) return MakeError(Code::kInvalidArgument, std::string(data_key) + " is not valid base64", where);
      *out = std::move(*decoded);
    } else if (std::string file = Str(o, file_key); !file.empty()) {
      std::filesystem::path p = file;
      if (p.is_relative()) p = dir / p;
      auto content = ReadText(p.string());
      if (!content) return MakeError(Code::kNotFound, std::string(file_key) + " " + p.string() + " cannot be read", where);
      *out = std::move(*content);
    }
    return {};
  };
  if (auto r = file_or_data(*cluster, "certificate-authority", "certificate-authority-data", &c.ca_pem); !r) {
    return std::unexpected(r.error());
  }
  std::string user_name = Str(*ctx, "user");
  if (const json* user = Named(doc, "users", "user", user_name)) {
    c.token = Str(*user, "token");
    if (c.token.empty()) {
      if (std::string file = Str(*user, "tokenFile"); !file.empty()) {
        std::filesystem::path p = file;
        if (p.is_relative()) p = dir / p;
        // Read now, so that a missing file stops kiln at the start; the Client reads it again
        // every ClientOptions::token_max_age.
        auto token = ReadTokenFile(p.string());
        if (!token) return MakeError(token.error().code(), "user \"" + user_name + "\": tokenFile: " + token.error().message(), where);
        c.token = std::move(*token);
        c.token_file = p.string();
      }
    }
    if (auto r = file_or_data(*user, "client-certificate", "client-certificate-data", &c.client_cert_pem); !r) {
      return std::unexpected(r.error());
    }
    if (auto r = file_or_data(*user, "client-key", "client-key-data", &c.client_key_pem); !r) {
      return std::unexpected(r.error());
    }
    // As client-go: a token, token file or client certificate in the kubeconfig takes
    // precedence over the exec plugin.
    if (auto exec = user->find("exec");
        exec != user->end() && c.token.empty() && c.token_file.empty() && c.client_cert_pem.empty()) {
      const std::string field = "user \"" + user_name + "\": exec";
      if (!exec->is_object()) return MakeError(Code::kInvalidArgument, field + " is not a mapping", where);
      ExecConfig e;
      e.user = user_name;
      e.api_version = Str(*exec, "apiVersion");
      if (e.api_version != "client.authentication.k8s.io/v1" && e.api_version != "client.authentication.k8s.io/v1beta1") {
        return MakeError(Code::kInvalidArgument,
                         field + ".apiVersion \"" + e.api_version +
                             "\": use client.authentication.k8s.io/v1 (or v1beta1), as the plugin's documentation says",
                         where);
      }
      e.command = Str(*exec, "command");
      if (e.command.empty()) return MakeError(Code::kInvalidArgument, field + ".command is missing", where);
      // client-go: a command with a path separator that is relative is relative to the
      // kubeconfig's folder; a bare name is looked up in $PATH when run.
      if (e.command.find('/') != std::string::npos && std::filesystem::path(e.command).is_relative()) {
        e.command = (dir / e.command).string();
      }
      for (const json& a : exec->value("args", json::array())) {
        if (!a.is_string()) return MakeError(Code::kInvalidArgument, field + ".args must be strings", where);
        e.args.push_back(a.get<std::string>());
      }
      for (const json& v : exec->value("env", json::array())) {
        if (!v.is_object() || !v.contains("name") || !v["name"].is_string()) {
          return MakeError(Code::kInvalidArgument, field + ".env entries need a name and a value", where);
        }
        e.env.emplace_back(v["name"].get<std::string>(), Str(v, "value"));
      }
      e.install_hint = Str(*exec, "installHint");
      if (auto pci = exec->find("provideClusterInfo"); pci != exec->end()) {
        e.provide_cluster_info = *pci == true || *pci == "true";
      }
      if (Str(*exec, "interactiveMode") == "Always") {
        return MakeError(Code::kInvalidArgument,
                         field + ".interactiveMode is Always, but kiln runs the plugin without a terminal: use a "
                                 "plugin mode that needs no prompt (IfAvailable or Never)",
                         where);
      }
      c.exec = std::move(e);
    }
  } else if (!user_name.empty()) {
    return MakeError(Code::kInvalidArgument, "user \"" + user_name + "\" of context \"" + ctx_name + "\" not found", where);
  }
  return c;
}

}  // namespace kiln::kube
