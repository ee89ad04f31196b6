// kiln server's REST API (docs/api.md): Argo Server-compatible paths and bodies over the
// project's HTTP server (http/server.h), in front of the Engine (api/engine.h) and the store.
//
// Threading: connections are served by `read_threads` HTTP threads (http/server.h, one strand
// per connection). Reads (get, list, artifacts, templates) are answered right there: the store
// is thread-safe, rendering is pure, and rendered answers are kept until the store changes
// (api/render_cache.h). Submissions are validated and recorded there too (Engine::Accept) and
// only started on the engine's thread. Everything else that touches the Engine (stop, delete,
// retry, ..., logs, watches, /metrics) is posted to the one io_context thread the engine runs
// on, so each workflow's transitions stay serialized; a slow read never holds up the engine and
// a busy engine never holds up reads.
#ifndef KILN_API_API_SERVER_H_
#define KILN_API_API_SERVER_H_

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

#include "api/auth.h"
#include "api/engine.h"
#include "api/metrics.h"
#include "base/error.h"
#include "http/server.h"
#include "store/store.h"

namespace kiln::api {

struct ApiServerOptions {
  http::ServerOptions http;  // address, port, TLS, body limit, timeouts
  // When set, every request outside /healthz, /readyz and /metrics needs a bearer token of it.
  const TokenAuthenticator* auth = nullptr;
  size_t read_threads = 4;  // HTTP threads: connections and reads
  // Bytes of rendered answers (workflows, list pages) kept until the store changes
  // (api/render_cache.h); 0 renders every answer afresh.
  size_t render_cache_bytes = size_t{64} << 20;
};

class ApiServer {
 public:
  // REQUIRES: `engine`, `store` and `metrics` outlive the server; `engine` runs on `io`.
  static Result<std::unique_ptr<ApiServer>> Start(boost::asio::io_context& io, Engine& engine, store::Store& store,
                                                  Metrics& metrics, ApiServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  uint16_t port() const;
  std::string url() const;
  // Stops accepting, ends watch and log streams, closes idle connections; requests being
  // answered finish (graceful shutdown). Call on the io_context thread. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The OpenAPI 3 document served at /api/v1/openapi.json (api/openapi.cc).
const std::string& OpenApiDocument();

}  // namespace kiln::api

#endif  // KILN_API_API_SERVER_H_
