// An HTTP/1.1 server on Boost.Asio/Beast, plain or TLS, with bearer-token authentication and
// chunked streaming responses (watch streams, followed logs). Shared by kubesim
// (tests/kubesim/) and kiln's REST server (api/). Beast stays inside server.cc: this header only
// forward-declares the io_context.
//
// Threading: a Server and everything it hands out (Responder, StreamWriter) belong to the one
// thread that runs the io_context. Handlers are called on that thread and must use the Responder
// there. Not thread-safe otherwise.
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
  // `callback` runs once, on the io_context thread, when the stream closes for any reason
  // (immediately if it already has).
  virtual void OnClose(std::function<void()> callback) = 0;
};

// The way a handler answers. Exactly one of Send or Stream must be called, once, possibly later
// (from a timer or another event) but on the io_context thread. Copies share the same request.
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
  // Stops accepting and closes every open connection, streams included.
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
