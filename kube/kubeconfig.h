// Where a Kubernetes API server is and how to authenticate to it: read from a kubeconfig file,
// or, inside a pod, from the pod's service account ("in-cluster").
// Thread-safety: values, and functions that read files and the environment.
#ifndef KILN_KUBE_KUBECONFIG_H_
#define KILN_KUBE_KUBECONFIG_H_

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace kiln::kube {

// A kubeconfig user's exec credential plugin (client.authentication.k8s.io): a command that
// prints an ExecCredential whose status.token kiln sends, until its expirationTimestamp or a
// 401 (kube/token_source.h runs it).
struct ExecConfig {
  std::string user;         // the kubeconfig user's name, for messages
  std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;      // a path (relative ones resolved against the kubeconfig's folder) or a name in $PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to kiln's environment
  std::string install_hint;
  // provideClusterInfo: KUBERNETES_EXEC_INFO carries spec.cluster (server, CA data).
  bool provide_cluster_info = false;
  // Not from the kubeconfig: how long a run may take before kiln kills the plugin (it runs
  // without a terminal, so one that prompts would wait forever).
  std::chrono::seconds timeout{60};
};

struct ClusterConfig {
  std::string server;      // "https://127.0.0.1:6443" as written
  std::string host;        // parsed from server
  std::string port;        // "443"/"80" when the URL has none
  bool tls = true;         // https
  std::string ca_pem;      // CA to trust; empty: the system's default paths
  bool insecure_skip_tls_verify = false;
  std::string token;       // bearer token ("token"; or the content of token_file as first read)
  // A file holding the token (kubeconfig tokenFile, the in-cluster token): the Client reads it
  // again when its copy is older than ClientOptions::token_max_age (tokens rotate).
  std::string token_file;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_ = "default";  // the context's namespace
  std::optional<ExecConfig> exec;      // the token comes from this plugin (token is empty)
};

// Reads kubeconfig `path` (YAML or JSON) and returns the cluster and user of `context` (the
// current-context when empty). Supports token, tokenFile, exec (a credential plugin),
// client-certificate(-data), client-key(-data), certificate-authority(-data) and
// insecure-skip-tls-verify; relative file
// paths resolve against the kubeconfig's folder. Errors (kInvalidArgument, kNotFound) name the
// file and what is missing or wrong: "kubeconfig /x: context \"prod\" not found".
Result<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

// The service-account folder mounted in every pod that automounts its token.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// The folder LoadInClusterConfig reads: $KILN_SERVICEACCOUNT_DIR when set and not empty (tests,
// or a token projected elsewhere), else kServiceAccountDir.
std::string ServiceAccountDir();

// Whether this process runs in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are
// both set and not empty (the kubelet sets them in every container).
bool InCluster();

// The in-cluster configuration: server https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
// (an IPv6 host in brackets), CA `dir`/ca.crt, token `dir`/token (as token_file: re-read by the
// Client, since bound tokens rotate), namespace from `dir`/namespace ("default" when the file is
// missing, as client-go does). Errors name what is missing: kFailedPrecondition when the two
// variables are unset, kNotFound/kInvalidArgument for a file that cannot be read or is empty:
// "in-cluster config: cannot read /var/run/secrets/kubernetes.io/serviceaccount/token: ...".
Result<ClusterConfig> LoadInClusterConfig(const std::string& dir = ServiceAccountDir());

// The kubeconfig to use, in client-go's order: `explicit_path` (--kubeconfig) when given, else
// $KUBECONFIG when set, else ~/.kube/config when that file exists, else "" (meaning in-cluster
// when InCluster(), otherwise LoadClusterConfig reports that nothing was found). An explicit
// or $KUBECONFIG path is returned even when the file is missing, so that its error names it.
std::string KubeconfigPath(const std::string& explicit_path);

// The cluster to talk to: LoadKubeconfig(kubeconfig, context) when `kubeconfig` is not empty
// (pass KubeconfigPath(flag)); otherwise LoadInClusterConfig() when InCluster(). Errors: those
// of the loader, or kFailedPrecondition listing every place looked at when there is neither,
// or when `context` is given without a kubeconfig (a pod's service account has no contexts).
Result<ClusterConfig> LoadClusterConfig(const std::string& kubeconfig, const std::string& context = "");

// Parses "https://host:port/" into `config` (host, port, tls). kInvalidArgument when malformed.
Result<void> ParseServerUrl(const std::string& url, ClusterConfig& config);

}  // namespace kiln::kube

#endif  // KILN_KUBE_KUBECONFIG_H_
