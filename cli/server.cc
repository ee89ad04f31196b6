// kiln server: the long-running controller with the REST API (api/api_server.h, docs/api.md).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/api_server.h"
#include "api/auth.h"
#include "api/engine.h"
#include "api/metrics.h"
#include "api/run_lock.h"
#include "cli/commands.h"
#include "cli/kubernetes_flags.h"
#include "cli/data_dir.h"
#include "kube/kubeconfig.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace kiln::cli {

namespace {

struct ServerFlags {
  std::string listen = "127.0.0.1:2746";  // Argo Server's port
  std::string data_dir;
  std::string store;  // sqlite:PATH | postgresql://...
  std::string executor = "local";
  bool no_sandbox = false;
  std::string kubeconfig;
  std::string kube_context;
  std::string kube_namespace;
  int64_t ttl_seconds_after_finished = -1;  // -1: not set (finished Jobs stay)
  std::string accelerators;
  std::string agent_image;
  std::string agent_path;
  std::string artifact_pvc;
  std::string tls_cert;
  std::string tls_key;
  std::string auth_tokens;
  size_t read_threads = 4;
  size_t render_cache_mb = 64;
  size_t body_limit_mb = 8;
};

Result<std::string> ReadAll(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, std::string("cannot read ") + what + " " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

Result<std::unique_ptr<store::Store>> OpenStore(const ServerFlags& flags, const std::string& data_dir) {
  std::string url = flags.store.empty() ? "sqlite:" + DatabasePath(data_dir) : flags.store;
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    auto pg = store::PostgresStore::Open(url);
    if (!pg) return std::unexpected(pg.error());
    return std::unique_ptr<store::Store>(std::move(*pg));
  }
  if (url.starts_with("sqlite:")) {
    std::error_code ec;
    std::filesystem::create_directories(data_dir, ec);
    auto db = store::SqliteStore::Open(url.substr(7), store::SqliteOptions{});
    if (!db) return std::unexpected(db.error());
    return std::unique_ptr<store::Store>(std::move(*db));
  }
  return MakeError(Code::kInvalidArgument, "--store \"" + url + "\": expected sqlite:PATH or postgresql://USER@HOST/DB");
}

int RunServer(const ServerFlags& flags) {
  const std::string data_dir = ResolveDataDir(flags.data_dir);
  // --listen ADDR:PORT
  size_t colon = flags.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "kiln server: --listen \"%s\": expected ADDRESS:PORT, e.g. 127.0.0.1:2746\n", flags.listen.c_str());
    return 2;
  }
  api::ApiServerOptions options;
  options.http.address = flags.listen.substr(0, colon);
  if (options.http.address.size() > 2 && options.http.address.front() == '[') {
    options.http.address = options.http.address.substr(1, options.http.address.size() - 2);
  }
  try {
    int port = std::stoi(flags.listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    options.http.port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    std::fprintf(stderr, "kiln server: --listen \"%s\": the port must be a number from 0 to 65535\n", flags.listen.c_str());
    return 2;
  }
  options.http.body_limit = flags.body_limit_mb << 20;
  options.http.read_timeout = std::chrono::seconds(30);
  options.http.write_timeout = std::chrono::seconds(60);
  options.read_threads = flags.read_threads;
  options.render_cache_bytes = flags.render_cache_mb << 20;

  std::optional<api::TokenAuthenticator> auth;
  if (!flags.auth_tokens.empty()) {
    auto loaded = api::TokenAuthenticator::LoadFile(flags.auth_tokens);
    if (!loaded) {
      std::fprintf(stderr, "kiln server: %s\n", loaded.error().message().c_str());
      return 1;
    }
    auth = std::move(*loaded);
    options.auth = &*auth;
  } else {
    const std::string& a = options.http.address;
    bool loopback = a == "127.0.0.1" || a == "::1" || a == "localhost" || a.starts_with("127.");
    if (!loopback) {
      std::fprintf(stderr, "kiln server: without --auth-tokens the server listens on loopback only; "
                           "pass --auth-tokens FILE to listen on %s\n", a.c_str());
      return 2;
    }
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    std::fprintf(stderr, "kiln server: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (!flags.tls_cert.empty()) {
    auto cert = ReadAll(flags.tls_cert, "--tls-cert");
    auto key = ReadAll(flags.tls_key, "--tls-key");
    if (!cert || !key) {
      std::fprintf(stderr, "kiln server: %s\n", (!cert ? cert.error() : key.error()).message().c_str());
      return 1;
    }
    options.http.tls = http::TlsCredentials{"", *cert, *key};
  }

  auto st = OpenStore(flags, data_dir);
  if (!st) {
    std::fprintf(stderr, "kiln server: cannot open the store: %s\n", st.error().message().c_str());
    return 1;
  }
  // One server per data directory: two would drive the same workflows twice.
  api::RunLock server_lock;
  if (auto locked = server_lock.Acquire(data_dir + "/server"); !locked) {
    std::fprintf(stderr, "kiln server: data directory %s is in use by another kiln server (%s)\n", data_dir.c_str(),
                 locked.error().message().c_str());
    return 1;
  }

  boost::asio::io_context io;
  api::EngineOptions eo;
  eo.data_dir = data_dir;
  eo.executor = flags.executor;
  eo.sandbox = !flags.no_sandbox;
  eo.kubeconfig = flags.kubeconfig;
  eo.kube_context = flags.kube_context;
  eo.kube_namespace = flags.kube_namespace;
  eo.accelerators = flags.accelerators;
  eo.agent_image = flags.agent_image;
  eo.agent_path = flags.agent_path;
  eo.artifact_pvc = flags.artifact_pvc;
  if (flags.ttl_seconds_after_finished >= 0) eo.ttl_seconds_after_finished = flags.ttl_seconds_after_finished;
  // --kubeconfig, $KUBECONFIG, ~/.kube/config if it exists, else "" (in-cluster): kube/kubeconfig.h.
  if (eo.executor == "kubernetes") eo.kubeconfig = kube::KubeconfigPath(eo.kubeconfig);
  api::Metrics metrics;
  eo.metrics = &metrics;
  auto engine = api::Engine::Create(io, **st, eo);
  if (!engine) {
    std::fprintf(stderr, "kiln server: %s\n", engine.error().ToString().c_str());
    return 1;
  }
  auto server = api::ApiServer::Start(io, **engine, **st, metrics, options);
  if (!server) {
    std::fprintf(stderr, "kiln server: cannot listen on %s: %s\n", flags.listen.c_str(), server.error().message().c_str());
    return 1;
  }
  auto resumed = (*engine)->ResumeUnfinished();
  if (!resumed) {
    std::fprintf(stderr, "kiln server: cannot resume unfinished workflows: %s\n", resumed.error().message().c_str());
  }
  std::printf("kiln server listening on %s (store %s, executor %s, data %s)%s\n", (*server)->url().c_str(),
              flags.store.empty() ? ("sqlite:" + DatabasePath(data_dir)).c_str()
                                  : store::PostgresStore::RedactUrl(flags.store).c_str(),
              flags.executor.c_str(), data_dir.c_str(),
              auth ? "" : "; no --auth-tokens: loopback only, no authentication");
  if (resumed && *resumed > 0) std::printf("resumed %zu unfinished workflow(s)\n", *resumed);
  std::fflush(stdout);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    std::printf("kiln server: %s: shutting down; running workflows are resumed by the next start\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
    std::fflush(stdout);
    (*server)->Stop();
    (*engine)->Shutdown();
    io.stop();
  });
  io.run();
  server->reset();
  return 0;
}

}  // namespace

void RegisterServer(CLI::App& app) {
  auto flags = std::make_shared<ServerFlags>();
  CLI::App* cmd = app.add_subcommand("server", "Run the kiln server: the REST API (Argo Server compatible) and the "
                                               "controller of every submitted workflow");
  cmd->add_option("--listen", flags->listen, "ADDRESS:PORT to listen on (port 0 picks a free one)")
      ->capture_default_str();
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where step files, logs and artifacts live (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("--store", flags->store,
                  "sqlite:PATH (default sqlite:<data-dir>/kiln.db) or postgresql://USER:PASSWORD@HOST:PORT/DB");
  cmd->add_option("--executor", flags->executor, "Where steps run: local (host processes) or kubernetes (one Job per step)")
      ->check(CLI::IsMember({"local", "kubernetes"}));
  cmd->add_flag("--no-sandbox", flags->no_sandbox, "Local executor: run steps as plain processes, without bubblewrap");
  cmd->add_option("--context", flags->kube_context, "The kubeconfig context");
  cmd->add_option("--namespace", flags->kube_namespace, "Put every Job in this namespace (default the workflow's)");
  AddKubernetesFlags(cmd, {&flags->kubeconfig, &flags->ttl_seconds_after_finished, &flags->accelerators,
                           &flags->agent_image, &flags->agent_path,
                           &flags->artifact_pvc});
  cmd->add_option("--tls-cert", flags->tls_cert, "Serve HTTPS with this certificate (PEM; with --tls-key)");
  cmd->add_option("--tls-key", flags->tls_key, "The certificate's private key (PEM)");
  cmd->add_option("--auth-tokens", flags->auth_tokens,
                  "YAML list of {token, subject, namespaces, role: read|write|admin}; without it the server "
                  "listens on loopback only");
  cmd->add_option("--read-threads", flags->read_threads, "HTTP threads: connections and reads (get, list, artifacts)")->capture_default_str();
  cmd->add_option("--render-cache-mb", flags->render_cache_mb,
                  "Rendered answers (workflows, lists) kept until the store changes, MiB (0: none)")
      ->capture_default_str();
  cmd->add_option("--body-limit-mb", flags->body_limit_mb, "Largest request body, MiB (larger: 413)")->capture_default_str();
  cmd->callback([flags] { SetExitCode(RunServer(*flags)); });
}

}  // namespace kiln::cli
