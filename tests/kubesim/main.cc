// kubesim: a Kubernetes API emulator for kiln's tests. See docs/kubesim.md.
//   kubesim --cluster FILE [--listen ADDR:PORT] [--plain] [--kubelet MODE] --write-kubeconfig PATH
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "http/server.h"
#include "tests/kubesim/apiserver.h"
#include "tests/kubesim/audit.h"
#include "tests/kubesim/cluster.h"
#include "tests/kubesim/cronjob_controller.h"
#include "tests/kubesim/job_controller.h"
#include "tests/kubesim/kubelet.h"
#include "tests/kubesim/node_lifecycle.h"
#include "tests/kubesim/rate_limit.h"
#include "tests/kubesim/scheduler.h"

namespace {

using kiln::kubesim::json;

std::string Base64(std::string_view in) {
  std::string out(boost::beast::detail::base64::encoded_size(in.size()), '\0');
  out.resize(boost::beast::detail::base64::encode(out.data(), in.data(), in.size()));
  return out;
}

// Writes the kubeconfig next to `path` and renames it into place, so a reader never sees a
// partial file.
bool WriteKubeconfig(const std::string& path, const std::string& server, const std::string& ca_pem,
                     const std::string& token) {
  std::string text = "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: " +
                     server + "\n";
  if (!ca_pem.empty()) text += "    certificate-authority-data: " + Base64(ca_pem) + "\n";
  text += "contexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n"
          "    namespace: default\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:\n"
          "    token: " + token + "\n";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kubesim: a Kubernetes API emulator (apiserver, Job controller, scheduler, kubelet)"};
  std::string cluster_file;
  std::string listen = "127.0.0.1:0";
  std::string kubeconfig;
  std::string token;
  bool plain = false;
  size_t history = 100000;
  int bookmark_ms = 10000;
  std::string faults_file;
  std::string audit_path;
  std::string kubelet_mode = "auto";
  std::vector<std::string> image_dirs;
  std::string volume_dir;
  std::string rate_limit;
  std::string mutating_rate_limit;
  app.add_option("--cluster", cluster_file, "cluster shape file (YAML or JSON)")->required();
  app.add_option("--listen", listen, "address:port to serve on; port 0 picks a free one")
      ->capture_default_str();
  app.add_option("--write-kubeconfig", kubeconfig, "where to write the kubeconfig once ready")
      ->required();
  app.add_flag("--plain", plain, "serve plain HTTP instead of HTTPS");
  app.add_option("--token", token, "bearer token clients must send (default: random)");
  app.add_option("--watch-history", history, "changes kept for watches from an old resourceVersion")
      ->capture_default_str();
  app.add_option("--bookmark-interval-ms", bookmark_ms, "interval of BOOKMARK events")->capture_default_str();
  app.add_option("--faults", faults_file,
                 "fault rules to start with (JSON, as POST /kubesim/faults takes)");
  app.add_option("--audit-log", audit_path, "append one audit Event (JSON line) per request here");
  app.add_option("--image-dir", image_dirs,
                 "a host directory bound read-only at the same path in every process container "
                 "(repeatable; e.g. where a kiln binary for --agent-path lives under /tmp)");
  app.add_option("--volume-dir", volume_dir,
                 "where process pods' persistentVolumeClaim volumes live: claim C of namespace N is "
                 "DIR/N/C, shared by every pod that mounts it (default: under the kubelet's scratch directory)");
  app.add_option("--kubelet", kubelet_mode,
                 "auto: a pod with a command and no kubesim.kiln.dev/ script annotation runs as "
                 "processes, others are simulated; simulate: all simulated; process: every pod "
                 "with a command runs as processes")
      ->check(CLI::IsMember({"auto", "simulate", "process"}))
      ->capture_default_str();
  app.add_option(
      "--rate-limit", rate_limit,
      "QPS[:BURST]: answer requests past this rate with APF's 429 (see docs/kubesim.md)");
  app.add_option(
      "--mutating-rate-limit", mutating_rate_limit,
      "QPS[:BURST]: a separate limit for create/update/patch/delete (needs --rate-limit)");
  CLI11_PARSE(app, argc, argv);

  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "kubesim: --listen must be ADDRESS:PORT, got \"%s\"\n", listen.c_str());
    return 2;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "kubesim: bad port in --listen \"%s\"\n", listen.c_str());
    return 2;
  }
  auto nodes = kiln::kubesim::LoadCluster(cluster_file);
  if (!nodes) {
    std::fprintf(stderr, "kubesim: %s\n", nodes.error().ToString().c_str());
    return 2;
  }
  if (token.empty()) token = kiln::kubesim::RandomHex(32);
  std::optional<kiln::kubesim::RateLimitSpec> rate_limit_spec;
  if (!rate_limit.empty()) {
    auto all = kiln::kubesim::ParseBucketSpec(rate_limit, "--rate-limit");
    if (!all) {
      std::fprintf(stderr, "kubesim: %s\n", all.error().message.c_str());
      return 2;
    }
    rate_limit_spec = kiln::kubesim::RateLimitSpec{*all, std::nullopt};
  }
  if (!mutating_rate_limit.empty()) {
    auto mutating = kiln::kubesim::ParseBucketSpec(mutating_rate_limit, "--mutating-rate-limit");
    if (!mutating || !rate_limit_spec) {
      std::fprintf(
          stderr, "kubesim: %s\n",
          mutating ? "--mutating-rate-limit needs --rate-limit" : mutating.error().message.c_str());
      return 2;
    }
    rate_limit_spec->mutating = *mutating;
  }

  boost::asio::io_context io;
  kiln::kubesim::Store store(history);
  kiln::kubesim::Registry registry(store);
  registry.Bootstrap();
  for (json& node : *nodes) {
    auto created = registry.Create(kiln::kubesim::Nodes(), "", std::move(node));
    if (!created) {
      std::fprintf(stderr, "kubesim: %s: %s\n", cluster_file.c_str(), created.error().message.c_str());
      return 2;
    }
  }
  kiln::kubesim::KubeletOptions kubelet_options;
  kubelet_options.mode = *kiln::kubesim::ParseKubeletMode(kubelet_mode);
  kubelet_options.image_dirs = image_dirs;
  kubelet_options.volume_dir = volume_dir;
  kiln::kubesim::Kubelet kubelet(io, registry, kubelet_options);
  kiln::kubesim::Scheduler scheduler(io, registry);
  kiln::kubesim::JobController jobs(io, registry);
  kiln::kubesim::CronJobController cronjobs(
      io, registry, [] { return std::chrono::system_clock::now(); }, true);
  kiln::kubesim::NodeLifecycleController node_lifecycle(
      io, registry, [] { return std::chrono::system_clock::now(); }, true);
  kubelet.Start();
  scheduler.Start();
  jobs.Start();
  cronjobs.Start();
  node_lifecycle.Start();
  kiln::kubesim::ApiServerOptions api_options;
  api_options.bookmark_interval = std::chrono::milliseconds(bookmark_ms);
  api_options.nodes = &node_lifecycle;
  std::unique_ptr<kiln::kubesim::AuditLog> audit;
  if (!audit_path.empty()) {
    audit = kiln::kubesim::AuditLog::Open(audit_path);
    if (!audit) {
      std::fprintf(stderr, "kubesim: cannot open the audit log %s\n", audit_path.c_str());
      return 2;
    }
    api_options.audit = audit.get();
  }
  kiln::kubesim::ApiServer api(io, registry, kubelet, api_options);
  if (!faults_file.empty()) {
    std::ifstream in(faults_file);
    json spec = in.is_open() ? json::parse(in, nullptr, false) : json(json::value_t::discarded);
    if (spec.is_discarded()) {
      std::fprintf(stderr, "kubesim: %s: not a JSON file\n", faults_file.c_str());
      return 2;
    }
    auto set = api.faults().Set(spec);
    if (!set) {
      std::fprintf(stderr, "kubesim: %s: %s\n", faults_file.c_str(), set.error().message.c_str());
      return 2;
    }
  }
  // The flags override the file's "rateLimit".
  if (rate_limit_spec) api.faults().SetRateLimit(rate_limit_spec);

  kiln::http::ServerOptions options;
  options.address = host;
  options.port = static_cast<uint16_t>(port);
  options.bearer_token = token;
  options.public_paths = {"/version", "/healthz", "/livez", "/readyz"};
  options.unauthorized = [](const kiln::http::Request&) {
    return kiln::kubesim::ApiServer::UnauthorizedResponse();
  };
  std::string ca_pem;
  if (!plain) {
    std::vector<std::string> hosts = {"127.0.0.1", "localhost", "::1"};
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
    auto creds = kiln::http::GenerateTlsCredentials(hosts, "kubesim");
    if (!creds) {
      std::fprintf(stderr, "kubesim: %s\n", creds.error().ToString().c_str());
      return 1;
    }
    ca_pem = creds->ca_pem;
    options.tls = std::move(*creds);
  }
  auto server = kiln::http::Server::Start(
      io, std::move(options),
      [&api](kiln::http::Request req, kiln::http::Responder res) {
        api.Handle(std::move(req), std::move(res));
      });
  if (!server) {
    std::fprintf(stderr, "kubesim: %s\n", server.error().ToString().c_str());
    return 1;
  }
  std::string url = (*server)->url();
  std::string advertised = url.substr(url.find("://") + 3);
  api.set_advertise_address(advertised);
  if (!WriteKubeconfig(kubeconfig, url, ca_pem, token)) {
    std::fprintf(stderr, "kubesim: cannot write %s\n", kubeconfig.c_str());
    return 1;
  }
  std::fprintf(stderr, "kubesim: serving %s (kubeconfig %s)\n", url.c_str(), kubeconfig.c_str());

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    (*server)->Stop();
    io.stop();
  });
  io.run();
  return 0;
}
