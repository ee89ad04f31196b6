// kube/kubeconfig.h: the in-cluster configuration, where kiln looks for a kubeconfig, and a
// kubeconfig's tokenFile.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <optional>

#include "kube/kubeconfig.h"
#include "tests/kubesim/test_util.h"

namespace kiln::kube {

using kubesim::testing::TempDir;
using kubesim::testing::WriteFile;

namespace {

// Sets (or, with nullopt, unsets) environment variables for one test and restores them after.
class EnvGuard {
 public:
  void Set(const std::string& name, std::optional<std::string> value) {
    if (!saved_.contains(name)) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// A service-account folder as the kubelet mounts it.
void WriteServiceAccount(const TempDir& dir, const std::string& token, const std::string& ns) {
  WriteFile(dir / "ca.crt", "-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n");
  WriteFile(dir / "token", token);
  if (!ns.empty()) WriteFile(dir / "namespace", ns);
}

}  // namespace

TEST_CASE("in-cluster config comes from the service environment and the service-account folder", "[kube]") {
  TempDir sa;
  WriteServiceAccount(sa, "sa-token\n", "team-a");
  EnvGuard env;
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  auto c = LoadInClusterConfig(sa.path());
  REQUIRE(c.has_value());
  CHECK(c->server == "https://10.96.0.1:443");
  CHECK(c->host == "10.96.0.1");
  CHECK(c->port == "443");
  CHECK(c->tls);
  CHECK(c->ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
  CHECK(c->token == "sa-token");
  CHECK(c->token_file == sa / "token");
  CHECK(c->namespace_ == "team-a");
  CHECK_FALSE(c->insecure_skip_tls_verify);
}

TEST_CASE("in-cluster config brackets an IPv6 service host", "[kube]") {
  TempDir sa;
  WriteServiceAccount(sa, "t", "");
  EnvGuard env;
  env.Set("KUBERNETES_SERVICE_HOST", "fd00:10:96::1");
  env.Set("KUBERNETES_SERVICE_PORT", "6443");
  auto c = LoadInClusterConfig(sa.path());
  REQUIRE(c.has_value());
  CHECK(c->server == "https://[fd00:10:96::1]:6443");
  CHECK(c->host == "fd00:10:96::1");
  CHECK(c->port == "6443");
  CHECK(c->namespace_ == "default");  // no namespace file
}

TEST_CASE("in-cluster config names what is missing", "[kube]") {
  TempDir sa;
  EnvGuard env;
  env.Set("KUBERNETES_SERVICE_HOST", std::nullopt);
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  auto unset = LoadInClusterConfig(sa.path());
  REQUIRE_FALSE(unset.has_value());
  CHECK(unset.error().ToString() ==
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not both set; kiln is not "
        "running in a pod");
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  auto no_ca = LoadInClusterConfig(sa.path());
  REQUIRE_FALSE(no_ca.has_value());
  CHECK(no_ca.error().ToString() == "in-cluster config: cannot read " + (sa / "ca.crt") +
                                        ": No such file or directory (is the service account token mounted? "
                                        "automountServiceAccountToken must not be false)");
  WriteFile(sa / "ca.crt", "pem");
  auto no_token = LoadInClusterConfig(sa.path());
  REQUIRE_FALSE(no_token.has_value());
  CHECK(no_token.error().code() == Code::kNotFound);
  CHECK(no_token.error().ToString() == "in-cluster config: cannot read " + (sa / "token") + ": No such file or directory");
  WriteFile(sa / "token", "");
  auto empty = LoadInClusterConfig(sa.path());
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().ToString() == "in-cluster config: token file " + (sa / "token") + " is empty");
}

TEST_CASE("KILN_SERVICEACCOUNT_DIR moves the service-account folder", "[kube]") {
  EnvGuard env;
  env.Set("KILN_SERVICEACCOUNT_DIR", std::nullopt);
  CHECK(ServiceAccountDir() == "/var/run/secrets/kubernetes.io/serviceaccount");
  env.Set("KILN_SERVICEACCOUNT_DIR", "/elsewhere");
  CHECK(ServiceAccountDir() == "/elsewhere");
}

TEST_CASE("the kubeconfig is --kubeconfig, else $KUBECONFIG, else ~/.kube/config if it exists, else in-cluster",
          "[kube]") {
  TempDir home;
  EnvGuard env;
  env.Set("HOME", home.path());
  env.Set("KUBECONFIG", "/from/env");
  CHECK(KubeconfigPath("/explicit") == "/explicit");
  CHECK(KubeconfigPath("") == "/from/env");
  env.Set("KUBECONFIG", "");  // set but empty counts as unset, as in client-go
  CHECK(KubeconfigPath("") == "");  // ~/.kube/config does not exist
  std::filesystem::create_directories(home / ".kube");
  WriteFile(home / ".kube/config", "apiVersion: v1\n");
  CHECK(KubeconfigPath("") == home / ".kube/config");
}

TEST_CASE("with no kubeconfig kiln uses the pod's service account, or says where it looked", "[kube]") {
  TempDir home;
  TempDir sa;
  WriteServiceAccount(sa, "sa-token", "team-a");
  EnvGuard env;
  env.Set("HOME", home.path());
  env.Set("KUBECONFIG", std::nullopt);
  env.Set("KILN_SERVICEACCOUNT_DIR", sa.path());
  env.Set("KUBERNETES_SERVICE_HOST", std::nullopt);
  env.Set("KUBERNETES_SERVICE_PORT", std::nullopt);
  auto none = LoadClusterConfig(KubeconfigPath(""));
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error().code() == Code::kFailedPrecondition);
  CHECK(none.error().ToString() == "no Kubernetes cluster configured: no --kubeconfig, $KUBECONFIG is unset, " +
                                       (home / ".kube/config") +
                                       " does not exist, and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are "
                                       "unset (not in a pod); pass --kubeconfig FILE");
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  auto in_cluster = LoadClusterConfig(KubeconfigPath(""));
  REQUIRE(in_cluster.has_value());
  CHECK(in_cluster->token == "sa-token");
  CHECK(in_cluster->namespace_ == "team-a");
  auto with_context = LoadClusterConfig(KubeconfigPath(""), "prod");
  REQUIRE_FALSE(with_context.has_value());
  CHECK(with_context.error().ToString() == "--context \"prod\" needs a kubeconfig, and there is none: no "
                                           "--kubeconfig, $KUBECONFIG is unset and " +
                                               (home / ".kube/config") + " does not exist");
  // A kubeconfig, when there is one, wins over the service account.
  WriteFile(home / "config", R"(apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://example.test:6443"}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns-x}}]
current-context: x
users: [{name: u, user: {token: kc-token}}]
)");
  env.Set("KUBECONFIG", home / "config");
  auto kubeconfig = LoadClusterConfig(KubeconfigPath(""));
  REQUIRE(kubeconfig.has_value());
  CHECK(kubeconfig->token == "kc-token");
  CHECK(kubeconfig->namespace_ == "ns-x");
}

TEST_CASE("a kubeconfig's tokenFile is kept as the file the client reads again", "[kube]") {
  TempDir dir;
  WriteFile(dir / "token", "file-token\n");
  WriteFile(dir / "config", R"(apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://example.test:6443"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
users: [{name: u, user: {tokenFile: token}}]
)");
  auto c = LoadKubeconfig(dir / "config");
  REQUIRE(c.has_value());
  CHECK(c->token == "file-token");
  CHECK(c->token_file == dir / "token");
  std::filesystem::remove(dir / "token");
  auto missing = LoadKubeconfig(dir / "config");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().ToString() == "kubeconfig " + (dir / "config") + ": user \"u\": tokenFile: cannot read " +
                                          (dir / "token") + ": No such file or directory");
}

}  // namespace kiln::kube
