// kube/client.h against kubesim: the in-cluster configuration end to end (TLS with the
// service-account CA, the token file's token), and a rotated token file reaching the requests.
// kubesim accepts one bearer token (--token), so a request's token shows as 200 versus 401.
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdlib>

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "tests/kubesim/test_util.h"

namespace kiln::kube {

namespace asio = boost::asio;
using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;
using kubesim::testing::WriteFile;

namespace {

constexpr const char* kToken = "kubesim-accepts-this-token";

// A blocking GET for the test's assertions.
int Status(asio::io_context& io, Client& client, const std::string& target) {
  std::optional<Result<ApiResponse>> out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out = co_await client.Call("GET", target); }, asio::detached);
  io.restart();
  while (!out) io.run_one();
  REQUIRE(out->has_value());
  return (*out)->status;
}

// The environment of a pod whose service account talks to `sim`: the service variables point
// at kubesim, and `sa` holds its CA, `token` and the namespace.
class PodEnvironment {
 public:
  PodEnvironment(const Kubesim& sim, const TempDir& sa, const std::string& token) {
    auto kc = LoadKubeconfig(sim.kubeconfig());
    REQUIRE(kc.has_value());
    REQUIRE_FALSE(kc->ca_pem.empty());
    WriteFile(sa / "ca.crt", kc->ca_pem);
    WriteFile(sa / "token", token + "\n");
    WriteFile(sa / "namespace", "default\n");
    Save("KUBERNETES_SERVICE_HOST", kc->host);
    Save("KUBERNETES_SERVICE_PORT", kc->port);
    Save("KILN_SERVICEACCOUNT_DIR", sa.path());
  }
  ~PodEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  void Save(const std::string& name, const std::string& value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("an in-cluster client verifies the API server with the service-account CA and sends its token",
          "[kube][kubesim]") {
  Kubesim sim("cpu-only.yaml", {"--token", kToken});
  TempDir sa;
  PodEnvironment pod(sim, sa, kToken);
  auto config = LoadClusterConfig("");
  REQUIRE(config.has_value());
  CHECK(config->server.starts_with("https://127.0.0.1:"));
  asio::io_context io;
  auto client = Client::Create(io, *config);
  REQUIRE(client.has_value());
  CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 200);
}

TEST_CASE("a rotated service-account token is sent once the copy is older than token_max_age",
          "[kube][kubesim][token]") {
  Kubesim sim("cpu-only.yaml", {"--token", kToken});
  TempDir sa;
  PodEnvironment pod(sim, sa, "expired-token");
  auto config = LoadClusterConfig("");
  REQUIRE(config.has_value());
  asio::io_context io;

  SECTION("re-read on every request") {
    ClientOptions options;
    options.token_max_age = std::chrono::milliseconds(0);
    auto client = Client::Create(io, *config, options);
    REQUIRE(client.has_value());
    CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 401);
    WriteFile(sa / "token", std::string(kToken) + "\n");  // the kubelet rotates the token
    CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 200);
    CHECK((*client)->token_source().rereads() == 2);
  }
  SECTION("not before the copy is token_max_age old") {
    ClientOptions options;
    options.token_max_age = std::chrono::hours(1);
    auto client = Client::Create(io, *config, options);
    REQUIRE(client.has_value());
    CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 401);
    WriteFile(sa / "token", std::string(kToken) + "\n");
    CHECK(Status(io, **client, "/api/v1/namespaces/default/pods") == 401);
    CHECK((*client)->token_source().rereads() == 0);
  }
}

}  // namespace kiln::kube
