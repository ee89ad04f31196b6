// kiln server's REST API (docs/api.md): Argo Server-compatible paths and bodies over the
// project's HTTP server (http/server.h), in front of the Engine (api/engine.h) and the store.
//
// Threading: connections, the engine and every write (submit, stop, delete, ...) run on the one
// io_context thread, so each workflow's transitions stay serialized. Reads (get, list, logs,
// artifacts, watch rendering) go to a pool of `read_threads` threads that query the store (which
// is thread-safe) and render JSON, then hand the answer back to the io_context thread: a slow
// store read or a large workflow never holds up the event loop.
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
  size_t read_threads = 4;
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
  // Stops accepting, ends watch and log streams, lets reads in the pool finish. Idempotent.
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
