// An HTTP/1.1 server on Boost.Asio/Beast, plain or TLS, with bearer-token authentication and
// chunked streaming responses (watch streams, followed logs). Shared by kubesim
// (tests/kubesim/) and kiln's REST server (api/). Beast stays inside server.cc: this header only
// forward-declares the io_context.
//
// Threading: with ServerOptions::threads 0 (kubesim), the server runs on the caller's
// io_context, whose one thread calls the handler. With threads N > 0 (kiln server), it runs on
// an io_context of its own with N threads; each connection has a strand, so one connection's
// requests are handled one at a time while others are handled in parallel, and the handler must
// be thread-safe. Either way, a Responder and a StreamWriter may be used from any thread (their
// work is dispatched to the connection's strand), and Start/Stop/the destructor are called from
// one thread (the io_context's, with threads 0).
#ifndef KILN_HTTP_SERVER_H_
#define KILN_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "http/tls.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::http {

struct Header {
  std::string name;
  std::string value;
};

// One parsed request. `path` is percent-decoded and has no query; `query` holds the decoded
// key/value pairs in order.
struct Request {
  std::string method;
  std::string target;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<Header> headers;
  std::string body;
  std::string remote;                         // peer "address:port"
  std::map<std::string, std::string> params;  // filled by Router from "{name}" segments

  // The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> GetHeader(std::string_view name) const;
  // The first value of query parameter `name`, or nullopt.
  std::optional<std::string_view> GetQuery(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<Header> headers;
  std::string body;
  // When set, sent instead of `body` and without copying it: a body kept for many responses
  // (api/render_cache.h). Held until the response is written.
  std::shared_ptr<const std::string> shared_body;

  // A response with Content-Type text/plain; charset=utf-8 or application/json.
  static Response Text(int status, std::string body);
  static Response Json(int status, std::string body);
  // Replaces header `name` (case-insensitive) or adds it.
  void SetHeader(std::string_view name, std::string value);
};

// A chunked response in progress. Each Write is sent as one chunk, in order.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Queues `data` as one chunk. Returns false once the stream is closed: the client went away,
  // the queue passed its bound (a client that does not read), or Finish was called.
  virtual bool Write(std::string data) = 0;
  // Sends the last chunk once the queue has drained and then closes the connection. Idempotent.
  virtual void Finish() = 0;
  virtual bool closed() const = 0;
  // `callback` runs once, on the connection's strand (a server thread), when the stream closes
  // for any reason (at once if it already has).
  virtual void OnClose(std::function<void()> callback) = 0;
};

// The way a handler answers. Exactly one of Send or Stream must be called, once, possibly later
// and from any thread. Copies share the same request.
class Responder {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void Send(Response response) = 0;
    virtual std::shared_ptr<StreamWriter> Stream(int status, std::vector<Header> headers) = 0;
    // Closes the connection without an answer. Implementations that cannot answer 503.
    virtual void Abort() { Send(Response::Text(503, "connection dropped\n")); }
  };
  explicit Responder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  void Send(Response response) const { impl_->Send(std::move(response)); }
  // Starts a chunked response (Transfer-Encoding: chunked, connection closed at its end).
  std::shared_ptr<StreamWriter> Stream(int status, std::vector<Header> headers) const {
    return impl_->Stream(status, std::move(headers));
  }
  // Instead of Send or Stream: closes the connection without answering, as a dropped connection
  // does (kubesim's fault injection). The client sees EOF before any response byte.
  void Abort() const { impl_->Abort(); }

 private:
  std::shared_ptr<Impl> impl_;
};

using Handler = std::function<void(Request request, Responder responder)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port; Server::port() says which
  // Serve HTTPS with these credentials; plain HTTP when absent.
  std::optional<TlsCredentials> tls;
  // When non-empty, every request outside `public_paths` needs "Authorization: Bearer <token>"
  // (the scheme matched case-insensitively); others get `unauthorized(request)`.
  std::string bearer_token;
  std::vector<std::string> public_paths;
  std::function<Response(const Request&)> unauthorized;
  size_t body_limit = 8 << 20;
  std::chrono::seconds read_timeout{60};   // per request, and for idle keep-alive connections
  std::chrono::seconds write_timeout{60};  // per response (not for streams, which are bounded by
                                           // stream_buffer_limit instead)
  size_t stream_buffer_limit = 32 << 20;   // bytes queued on one stream before it is closed
  // Threads of the server's own io_context; 0 runs on the io_context given to Start.
  size_t threads = 0;
};

class Server {
 public:
  // Binds, listens and starts accepting on `io`. Returns the server, or kUnavailable when the
  // address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(boost::asio::io_context& io, ServerOptions options,
                                               Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  // "https://127.0.0.1:PORT" or "http://...".
  std::string url() const;
  // Stops accepting; idle connections and streams (other than those finishing) close now, and a
  // connection whose request is being answered closes once the answer is written (graceful
  // shutdown: requests in flight finish). The destructor also waits for the server's threads.
  void Stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-decodes `text` ('+' stays '+', as Go's PathUnescape and url.ParseQuery of k8s clients
// expect for paths; in queries '+' becomes ' ').
std::string PercentDecode(std::string_view text, bool plus_as_space);

}  // namespace kiln::http

#endif  // KILN_HTTP_SERVER_H_
