// `kiln run --executor kubernetes` as it runs in a pod: no kubeconfig anywhere, the service
// account's CA, token and namespace (KILN_SERVICEACCOUNT_DIR stands in for the mounted folder),
// --ttl-seconds-after-finished on every Job, both kept by `kiln resume`; and every request kiln
// made, from kubesim's audit log, allowed by the Role of deploy/base.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "dag/internal/yaml_tree.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "tests/kubesim/test_util.h"

namespace kiln::executor {

namespace asio = boost::asio;
using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;
using kubesim::testing::WriteFile;
using nlohmann::json;

namespace {

constexpr const char* kToken = "the-service-account-token";

// Sets environment variables for one test (nullopt unsets) and restores them after.
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

// (apiGroup, resource[/subresource], verb) triples a Role's rules grant, read from the YAML.
using Grant = std::tuple<std::string, std::string, std::string>;

std::vector<std::string> Strings(const dag::yaml::Node& list) {
  std::vector<std::string> out;
  for (const auto& e : list) out.emplace_back(e.Scalar());
  return out;
}

std::set<Grant> RoleGrants(const std::string& path) {
  dag::Diagnostics diags;
  auto tree = dag::yaml::Tree::Parse(path, kubesim::testing::ReadFile(path), dag::yaml::BuildOptions{}, diags);
  REQUIRE_FALSE(diags.has_errors());
  REQUIRE(tree);
  std::set<Grant> grants;
  for (const auto& kv : tree->documents().front()) {
    if (kv.first.Scalar() != "rules") continue;
    for (const auto& rule : kv.second) {
      std::map<std::string, std::vector<std::string>> fields;
      for (const auto& f : rule) fields[std::string(f.first.Scalar())] = Strings(f.second);
      for (const std::string& group : fields["apiGroups"]) {
        for (const std::string& resource : fields["resources"]) {
          for (const std::string& verb : fields["verbs"]) grants.emplace(group, resource, verb);
        }
      }
    }
  }
  return grants;
}

// A blocking API call as the test (user agent kiln-test, so the audit log tells it from kiln).
kube::ApiResponse Api(asio::io_context& io, kube::Client& client, const std::string& method, const std::string& target,
                      std::optional<json> body = std::nullopt) {
  std::optional<Result<kube::ApiResponse>> out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out = co_await client.Call(method, target, body); },
                 asio::detached);
  io.restart();
  while (!out) io.run_one();
  REQUIRE(out->has_value());
  return **out;
}

}  // namespace

TEST_CASE("kiln run in a pod uses its service account and TTL, a resume keeps both, within deploy/'s Role",
          "[kubernetes][kubesim][cli][in-cluster]") {
  TempDir dir;
  const std::string audit = dir / "audit.log";
  Kubesim sim("cpu-only.yaml", {"--token", kToken, "--audit-log", audit});
  auto kc = kube::LoadKubeconfig(sim.kubeconfig());
  REQUIRE(kc.has_value());
  asio::io_context io;
  kube::ClientOptions test_options;
  test_options.user_agent = "kiln-test";
  auto client = kube::Client::Create(io, *kc, test_options);
  REQUIRE(client.has_value());

  REQUIRE(Api(io, **client, "POST", "/api/v1/namespaces",
              json{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "team-a"}}}})
              .status == 201);

  // The pod's world: the service account folder and the service variables; no kubeconfig.
  std::filesystem::create_directories(dir / "sa");
  std::filesystem::create_directories(dir / "home");
  WriteFile(dir / "sa/ca.crt", kc->ca_pem);
  WriteFile(dir / "sa/token", std::string(kToken) + "\n");
  WriteFile(dir / "sa/namespace", "team-a");
  EnvGuard env;
  env.Set("HOME", dir / "home");
  env.Set("KUBECONFIG", std::nullopt);
  env.Set("KUBERNETES_SERVICE_HOST", kc->host);
  env.Set("KUBERNETES_SERVICE_PORT", kc->port);
  env.Set("KILN_SERVICEACCOUNT_DIR", dir / "sa");

  WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pod-run}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: quick}
    - - {name: slow, template: slow}
    - - {name: last, template: quick}
  - name: quick
    container: {image: busybox, command: [echo, done]}
  - name: slow
    metadata: {annotations: {kubesim.kiln.dev/duration: 1h}}
    container: {image: busybox, command: [sleep, "3600"]}
)");
  int out = -1;
  pid_t pid = kubesim::testing::Spawn({KILN_BINARY, "run", "--executor", "kubernetes", "--ttl-seconds-after-finished",
                                       "3600", "--data-dir", dir / "data", "--no-tree", dir / "wf.yaml"},
                                      "", &out);
  std::string seen = kubesim::testing::ReadUntil(out, "pod-run[1].slow", std::chrono::seconds(60));
  while (seen.find("Running", seen.find("pod-run[1].slow")) == std::string::npos) {
    seen += kubesim::testing::ReadUntil(out, "\n", std::chrono::seconds(60));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out);
  REQUIRE(WIFSIGNALED(status));
  // The Jobs went to the service account's namespace.
  const std::string pods = "/api/v1/namespaces/team-a/pods";
  kube::ApiResponse running =
      Api(io, **client, "GET", pods + "?fieldSelector=" + kube::UrlEncode("status.phase=Running"));
  REQUIRE(running.status == 200);
  REQUIRE(running.body["items"].size() == 1);
  std::string pod = running.body["items"][0]["metadata"]["name"];
  REQUIRE(Api(io, **client, "PATCH", pods + "/" + pod,
              json{{"metadata", {{"annotations", {{"kubesim.kiln.dev/exit-now", "true"}}}}}})
              .status == 200);

  // The resume finds the cluster the same way (the run recorded "in-cluster") and the TTL.
  auto r = kubesim::testing::Run({KILN_BINARY, "resume", "pod-run", "--data-dir", dir / "data"}, dir.path());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("workflow pod-run Succeeded") != std::string::npos);
  kube::ApiResponse jobs = Api(io, **client, "GET", "/apis/batch/v1/namespaces/team-a/jobs?labelSelector=" +
                                                        kube::UrlEncode("kiln.dev/workflow=pod-run"));
  REQUIRE(jobs.status == 200);
  REQUIRE(jobs.body["items"].size() == 3);  // the last one created by the resume
  for (const json& job : jobs.body["items"]) {
    INFO(job["metadata"]["name"]);
    CHECK(job["spec"].value("ttlSecondsAfterFinished", -1) == 3600);
  }

  // Every request kiln made was one deploy/base/role.yaml allows, and kiln made some.
  const std::set<Grant> grants = RoleGrants(std::string(KILN_SOURCE_DIR) + "/deploy/base/role.yaml");
  REQUIRE(grants.contains({"batch", "jobs", "create"}));
  std::set<Grant> used;
  std::istringstream lines(kubesim::testing::ReadFile(audit));
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line);
    if (e.value("userAgent", "") != "kiln" || !e.contains("objectRef")) continue;
    const json& ref = e["objectRef"];
    std::string resource = ref.value("resource", "");
    if (ref.contains("subresource")) resource += "/" + ref.value("subresource", "");
    used.emplace(ref.value("apiGroup", ""), resource, e.value("verb", ""));
    CHECK(ref.value("namespace", "") == "team-a");
  }
  for (const Grant& g : used) {
    INFO(std::get<0>(g) << " " << std::get<1>(g) << " " << std::get<2>(g));
    CHECK(grants.contains(g));
  }
  for (const char* verb : {"create", "list", "watch"}) CHECK(used.contains({"batch", "jobs", verb}));
  CHECK(used.contains({"", "pods", "watch"}));
  CHECK(used.contains({"", "pods/log", "get"}));
}

}  // namespace kiln::executor
