// Where a Kubernetes API server is and how to authenticate to it: read from a kubeconfig file.
// Thread-safety: pure functions and values.
#ifndef KILN_KUBE_KUBECONFIG_H_
#define KILN_KUBE_KUBECONFIG_H_

#include <string>

#include "base/error.h"

namespace kiln::kube {

struct ClusterConfig {
  std::string server;      // "https://127.0.0.1:6443" as written
  std::string host;        // parsed from server
  std::string port;        // "443"/"80" when the URL has none
  bool tls = true;         // https
  std::string ca_pem;      // CA to trust; empty: the system's default paths
  bool insecure_skip_tls_verify = false;
  std::string token;       // bearer token ("token", or "tokenFile" read once)
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_ = "default";  // the context's namespace
};

// Reads kubeconfig `path` (YAML or JSON) and returns the cluster and user of `context` (the
// current-context when empty). Supports token, tokenFile, client-certificate(-data),
// client-key(-data), certificate-authority(-data) and insecure-skip-tls-verify; relative file
// paths resolve against the kubeconfig's folder. Errors (kInvalidArgument, kNotFound) name the
// file and what is missing or wrong: "kubeconfig /x: context \"prod\" not found".
Result<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

// Parses "https://host:port/" into `config` (host, port, tls). kInvalidArgument when malformed.
Result<void> ParseServerUrl(const std::string& url, ClusterConfig& config);

}  // namespace kiln::kube

#endif  // KILN_KUBE_KUBECONFIG_H_
