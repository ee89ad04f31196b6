// Exec credential plugins (kube/token_source.h, kube/kubeconfig.h): the kubeconfig's exec
// section, the ExecCredential a plugin prints, when the plugin runs again, and a client whose
// token comes from a real plugin script, against kubesim.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/token_source.h"
#include "tests/kubesim/test_util.h"

namespace kiln::kube {

namespace asio = boost::asio;
using kubesim::testing::Kubesim;
using kubesim::testing::ReadFile;
using kubesim::testing::TempDir;
using kubesim::testing::WriteFile;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kV1 = "client.authentication.k8s.io/v1";

std::string Credential(const std::string& token, const std::string& expires = "") {
  json status = {{"token", token}};
  if (!expires.empty()) status["expirationTimestamp"] = expires;
  return json{{"apiVersion", kV1}, {"kind", "ExecCredential"}, {"status", status}}.dump();
}

ExecConfig Plugin() {
  ExecConfig c;
  c.user = "eks";
  c.api_version = kV1;
  c.command = "get-token";
  return c;
}

// A kubeconfig for `sim`'s server and CA whose user runs `command` (with `args`).
std::string ExecKubeconfig(const Kubesim& sim, const TempDir& dir, const std::string& command,
                           const std::string& extra = "") {
  auto base = LoadKubeconfig(sim.kubeconfig());
  REQUIRE(base.has_value());
  WriteFile(dir / "ca.crt", base->ca_pem);
  std::string path = dir / "kubeconfig";
  WriteFile(path, "apiVersion: v1\nkind: Config\ncurrent-context: sim\n"
                  "clusters: [{name: sim, cluster: {server: \"" + base->server + "\", certificate-authority: ca.crt}}]\n"
                  "contexts: [{name: sim, context: {cluster: sim, user: plugin}}]\n"
                  "users:\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                  "      command: " + command + "\n      interactiveMode: Never\n" + extra);
  return path;
}

int Status(asio::io_context& io, Client& client, const std::string& target, std::string* error = nullptr) {
  std::optional<Result<ApiResponse>> out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out = co_await client.Call("GET", target); }, asio::detached);
  io.restart();
  while (!out) io.run_one();
  if (!out->has_value()) {
    if (error) *error = out->error().message();
    return 0;
  }
  return (*out)->status;
}

}  // namespace

TEST_CASE("a kubeconfig user's exec section is read, its command resolved as client-go does", "[kube][exec]") {
  TempDir dir;
  WriteFile(dir / "config", R"(apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: Zm9v}}]
contexts: [{name: c, context: {cluster: k, user: u}}, {name: path, context: {cluster: k, user: p}},
           {name: bad, context: {cluster: k, user: b}}, {name: tty, context: {cluster: k, user: t}},
           {name: token, context: {cluster: k, user: both}}]
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: ./bin/get-token
      args: [--cluster, prod]
      env: [{name: AWS_PROFILE, value: ml}]
      installHint: install get-token from example.com
      provideClusterInfo: true
- name: p
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: gke-gcloud-auth-plugin, interactiveMode: IfAvailable}
- name: b
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}
- name: t
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: x, interactiveMode: Always}
- name: both
  user:
    token: fixed
    exec: {apiVersion: client.authentication.k8s.io/v1, command: x}
)");
  auto c = LoadKubeconfig(dir / "config");
  REQUIRE(c.has_value());
  REQUIRE(c->exec.has_value());
  CHECK(c->exec->user == "u");
  CHECK(c->exec->api_version == "client.authentication.k8s.io/v1beta1");
  CHECK(c->exec->command == (dir / "./bin/get-token"));
  CHECK(c->exec->args == std::vector<std::string>{"--cluster", "prod"});
  CHECK(c->exec->env == std::vector<std::pair<std::string, std::string>>{{"AWS_PROFILE", "ml"}});
  CHECK(c->exec->install_hint == "install get-token from example.com");
  CHECK(c->token.empty());
  json info = json::parse(ExecInfo(*c));
  CHECK(info["kind"] == "ExecCredential");
  CHECK(info["apiVersion"] == "client.authentication.k8s.io/v1beta1");
  CHECK(info["spec"]["interactive"] == false);
  CHECK(info["spec"]["cluster"]["server"] == "https://10.0.0.1:6443");
  CHECK(info["spec"]["cluster"]["certificate-authority-data"] == "Zm9v");

  auto p = LoadKubeconfig(dir / "config", "path");
  REQUIRE(p.has_value());
  CHECK(p->exec->command == "gke-gcloud-auth-plugin");  // a bare name is looked up in $PATH
  CHECK_FALSE(json::parse(ExecInfo(*p))["spec"].contains("cluster"));

  auto b = LoadKubeconfig(dir / "config", "bad");
  REQUIRE_FALSE(b.has_value());
  CHECK(b.error().message().find("exec.apiVersion \"client.authentication.k8s.io/v1alpha1\": use "
                                 "client.authentication.k8s.io/v1") != std::string::npos);
  auto both = LoadKubeconfig(dir / "config", "token");  // a token wins over the plugin, as in client-go
  REQUIRE(both.has_value());
  CHECK(both->token == "fixed");
  CHECK_FALSE(both->exec.has_value());
  auto t = LoadKubeconfig(dir / "config", "tty");
  REQUIRE_FALSE(t.has_value());
  CHECK(t.error().message().find("interactiveMode is Always, but kiln runs the plugin without a terminal") !=
        std::string::npos);
}

TEST_CASE("an ExecCredential gives the token and its expiry; anything else is an error naming the plugin",
          "[kube][exec]") {
  auto c = ParseExecCredential(Plugin(), Credential("t-1", "2026-11-24T10:00:00Z"));
  REQUIRE(c.has_value());
  CHECK(c->token == "t-1");
  REQUIRE(c->expires);
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(c->expires->time_since_epoch()).count() == 1795514400);
  auto offset = ParseExecCredential(Plugin(), Credential("t", "2026-11-24T11:00:00+01:00"));
  REQUIRE(offset.has_value());
  CHECK(*offset->expires == *c->expires);
  CHECK_FALSE(ParseExecCredential(Plugin(), Credential("t"))->expires);

  auto error = [](const std::string& text) {
    auto r = ParseExecCredential(Plugin(), text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().starts_with("exec plugin \"get-token\" (user \"eks\"): "));
    return r.error().message();
  };
  CHECK(error("Unable to locate credentials").find("not an ExecCredential in JSON") != std::string::npos);
  CHECK(error(R"({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": {"token": "t"}})")
            .find("answered apiVersion \"client.authentication.k8s.io/v1beta1\" to a request for "
                  "client.authentication.k8s.io/v1") != std::string::npos);
  CHECK(error(R"({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"clientCertificateData": "x", "clientKeyData": "y"}})")
            .find("kiln takes only tokens") != std::string::npos);
  CHECK(error(R"({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {}})")
            .find("no status.token") != std::string::npos);
  CHECK(error(Credential("t", "tomorrow")).find("\"tomorrow\" is not an RFC 3339 time") != std::string::npos);
  CHECK(error(R"({"apiVersion": 1, "kind": ["ExecCredential"]})").find("it printed kind \"\"") != std::string::npos);
}

TEST_CASE("a plugin that hangs is killed at its timeout; one that is not executable is named", "[kube][exec]") {
  TempDir dir;
  WriteFile(dir / "hang.sh", "#!/bin/sh\nexec sleep 30\n");
  ::chmod((dir / "hang.sh").c_str(), 0755);
  ExecConfig c = Plugin();
  c.command = dir / "hang.sh";
  c.timeout = std::chrono::seconds(1);
  auto hung = RunExecPlugin(c, "{}");
  REQUIRE_FALSE(hung.has_value());
  CHECK(hung.error().message().find("did not finish in 1 s (does it wait for input?") != std::string::npos);

  WriteFile(dir / "plain.sh", "#!/bin/sh\necho {}\n");
  c.command = dir / "plain.sh";
  auto plain = RunExecPlugin(c, "{}");
  REQUIRE_FALSE(plain.has_value());
  CHECK(plain.error().message().find("plain.sh is not executable") != std::string::npos);

  c.command = "sh";
  c.args = {"-c", "printf '%s' \"$KUBERNETES_EXEC_INFO $PROFILE\""};
  c.env = {{"PROFILE", "ml"}};
  auto echoed = RunExecPlugin(c, "{\"kind\":\"ExecCredential\"}");
  REQUIRE(echoed.has_value());
  CHECK(*echoed == "{\"kind\":\"ExecCredential\"} ml");
  c.env = {{"A=B", "x"}};
  CHECK_FALSE(RunExecPlugin(c, "{}").has_value());
}

TEST_CASE("the plugin runs for the first token, at its expiry and after a 401, not before", "[kube][exec]") {
  std::chrono::system_clock::time_point now = std::chrono::sys_days(std::chrono::year{2026} / 11 / 24);
  int runs = 0;
  std::vector<std::string> infos;
  std::string next_expiry = "2026-11-24T00:15:00Z";
  bool fail = false;
  TokenSource source(
      Plugin(), "{\"kind\":\"ExecCredential\"}",
      [&](const ExecConfig&, const std::string& info) -> Result<std::string> {
        infos.push_back(info);
        if (fail) return MakeError(Code::kUnavailable, "exec plugin \"get-token\" (user \"eks\") exited with status 1");
        return Credential("token-" + std::to_string(++runs), next_expiry);
      },
      [&] { return now; });
  CHECK(source.exec());
  CHECK(source.Token() == "token-1");
  CHECK(infos == std::vector<std::string>{"{\"kind\":\"ExecCredential\"}"});
  now += 14min;
  CHECK(source.Token() == "token-1");  // not expired: no run
  CHECK(source.exec_runs() == 1);
  now += 1min;
  next_expiry = "2026-11-24T00:30:00Z";
  CHECK(source.Token() == "token-2");  // expired
  CHECK(source.Invalidate("token-1"));  // a 401 for a token already replaced: no run
  CHECK(source.Token() == "token-2");
  CHECK(source.Invalidate("token-2"));
  CHECK(source.Token() == "token-3");  // a 401
  CHECK(source.exec_runs() == 3);

  // A failing plugin: a token still valid is kept; an expired or refused one is dropped, so the
  // request fails with the plugin's error.
  fail = true;
  CHECK(source.Token() == "token-3");
  CHECK(source.Invalidate("token-3"));
  CHECK(source.Token().empty());
  REQUIRE(source.last_error());
  CHECK(source.last_error()->message().find("exited with status 1") != std::string::npos);
  fail = false;
  CHECK(source.Token() == "token-4");
  CHECK_FALSE(source.last_error());

  TokenSource fixed("t", "", 1min);
  CHECK_FALSE(fixed.Invalidate("t"));
}

TEST_CASE("a client takes its token from a real exec plugin, runs it again after a 401, and names a missing one",
          "[kube][exec][kubesim]") {
  const std::string token = "exec-plugin-token";
  Kubesim sim("cpu-only.yaml", {"--token", token});
  TempDir dir;
  // The plugin: counts its runs, checks KUBERNETES_EXEC_INFO and its env, and prints a wrong
  // token on its first run (as an expired cached credential would be), the right one after.
  WriteFile(dir / "plugin.sh", "#!/bin/sh\n"
                               "n=$(cat \"$COUNT\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$COUNT\"\n"
                               "echo \"$KUBERNETES_EXEC_INFO\" > \"$COUNT.info\"\n"
                               "if [ $n -eq 1 ]; then t=stale; else t=" + token + "; fi\n"
                               "echo '{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", "
                               "\"status\": {\"token\": \"'$t'\"}}'\n");
  ::chmod((dir / "plugin.sh").c_str(), 0755);
  std::string kubeconfig =
      ExecKubeconfig(sim, dir, "./plugin.sh",
                     "      env: [{name: COUNT, value: \"" + (dir / "count") + "\"}]\n      provideClusterInfo: true\n");
  auto config = LoadKubeconfig(kubeconfig);
  REQUIRE(config.has_value());
  asio::io_context io;
  auto client = Client::Create(io, *config);
  REQUIRE(client.has_value());
  // The first token is refused (401): the plugin runs again, and the request goes through.
  CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 200);
  CHECK(Status(io, **client, "/api/v1/namespaces/default/configmaps") == 200);
  CHECK(ReadFile(dir / "count") == "2\n");
  CHECK((*client)->token_source().exec_runs() == 2);
  json info = json::parse(ReadFile(dir / "count.info"));
  CHECK(info["spec"]["interactive"] == false);
  CHECK(info["spec"]["cluster"]["server"] == config->server);

  // A plugin that is not there: the request fails naming it and its install hint.
  std::string missing = ExecKubeconfig(sim, dir, "kiln-no-such-plugin",
                                       "      installHint: \"Install it with: apt-get install kiln-no-such-plugin\"\n");
  auto missing_config = LoadKubeconfig(missing);
  REQUIRE(missing_config.has_value());
  auto missing_client = Client::Create(io, *missing_config);
  REQUIRE(missing_client.has_value());
  std::string error;
  CHECK(Status(io, **missing_client, "/api/v1/namespaces/default/pods", &error) == 0);
  CHECK(error.find("exec plugin \"kiln-no-such-plugin\" (user \"plugin\"): the command is not found in $PATH") !=
        std::string::npos);
  CHECK(error.find("Install it with: apt-get install kiln-no-such-plugin") != std::string::npos);
}

}  // namespace kiln::kube
