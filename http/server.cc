#include "http/server.h"

#include <openssl/crypto.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/ssl.hpp>
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <type_traits>

namespace kiln::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

// Header names and URL schemes compare without case (Beast's ASCII comparison).
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()), beast::string_view(b.data(), b.size()));
}

// What every session of one server shares; outlives the Server while sessions drain.
struct Shared {
  ServerOptions options;
  Handler handler;
  // The server's own io_context when options.threads > 0: held by every session, so that a
  // Responder used after the Server is gone still finds its executor (its handler never runs).
  std::shared_ptr<net::io_context> own_io;
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection now. Any thread.
  virtual void Close() = 0;
  // Ends the connection once the request being answered, if any, has its answer: idle
  // connections close now, answered ones instead of reading the next request. Any thread.
  virtual void Drain() = 0;
};

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(Stream stream, std::shared_ptr<const Shared> shared, std::string remote)
      : stream_(std::move(stream)), shared_(std::move(shared)), remote_(std::move(remote)) {}

  // Starts reading (after the TLS handshake), on the session's executor. Any thread.
  void Run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->Start(); });
  }

  void Start() {
    if constexpr (kTls) {
      Tcp().expires_after(shared_->options.read_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->CloseNow();
                                self->DoRead();
                              });
    } else {
      DoRead();
    }
  }

  void Close() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->CloseNow(); });
  }

  void Drain() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->draining_ = true;
      // A stream that is finishing writes its last chunk first; other streams end now.
      if (!self->in_flight_ && !self->finishing_) self->CloseNow();
    });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    Tcp().close();
    auto callbacks = std::move(on_close_);
    on_close_.clear();
    for (auto& callback : callbacks) callback();
  }

  // Called by the Responder, from any thread: the answer is written on the session's executor.
  void Send(Response response) {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this(), response = std::move(response)]() mutable {
      self->SendNow(std::move(response));
    });
  }

  void SendNow(Response response) {
    in_flight_ = false;
    if (closed_) return;
    if (draining_) keep_alive_ = false;  // "Connection: close": the server is stopping
    const auto status = static_cast<bhttp::status>(response.status);
    if (response.shared_body) {
      auto res = std::make_shared<bhttp::response<bhttp::span_body<const char>>>(status, version_);
      std::shared_ptr<const std::string> body = std::move(response.shared_body);
      res->body() = bhttp::span_body<const char>::value_type(body->data(), body->size());
      Write(std::move(res), response.headers, std::move(body));
    } else {
      auto res = std::make_shared<bhttp::response<bhttp::string_body>>(status, version_);
      res->body() = std::move(response.body);
      Write(std::move(res), response.headers, nullptr);
    }
  }

  void StartStream(int status, std::vector<Header> headers) {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this(), status, headers = std::move(headers)]() mutable {
      self->StartStreamNow(status, std::move(headers));
    });
  }

  void StartStreamNow(int status, std::vector<Header> headers) {
    in_flight_ = false;
    if (closed_) return;
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(
        static_cast<bhttp::status>(status), version_);
    for (const Header& h : headers) res->insert(h.name, h.value);
    res->chunked(true);
    res->keep_alive(false);
    auto sr = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*res);
    Tcp().expires_never();
    writing_ = true;
    bhttp::async_write_header(
        stream_, *sr, [self = this->shared_from_this(), res, sr](beast::error_code ec, size_t) {
          self->writing_ = false;
          if (ec) return self->CloseNow();
          self->Flush();
        });
    WatchForDisconnect();
  }

  // From any thread: false once the stream is closed (or over its bound, which closes it).
  bool StreamWrite(std::string data) {
    if (closed_ || finish_requested_) return false;
    if (data.empty()) return true;  // an empty chunk would end the response
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this(), data = std::move(data)]() mutable {
      self->StreamWriteNow(std::move(data));
    });
    return true;
  }

  void StreamWriteNow(std::string data) {
    if (closed_ || finishing_) return;
    queued_bytes_ += data.size();
    queue_.push_back(std::move(data));
    if (queued_bytes_ > shared_->options.stream_buffer_limit) {
      CloseNow();
      return;
    }
    Flush();
  }

  void StreamFinish() {
    finish_requested_ = true;
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->closed_ || self->finishing_) return;
      self->finishing_ = true;
      self->Flush();
    });
  }

  bool closed() const { return closed_; }

  // `callback` runs on the session's executor when the connection closes (now if it has).
  void OnClose(std::function<void()> callback) {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this(), callback = std::move(callback)]() mutable {
      if (self->closed_) return callback();
      self->on_close_.push_back(std::move(callback));
    });
  }

 private:
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // Writes `res`; `keep` holds the bytes a span body points to until the write ends.
  template <class Body>
  void Write(std::shared_ptr<bhttp::response<Body>> res, const std::vector<Header>& headers,
             std::shared_ptr<const std::string> keep) {
    for (const Header& h : headers) res->insert(h.name, h.value);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    Tcp().expires_after(shared_->options.write_timeout);
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res, keep = std::move(keep)](beast::error_code ec, size_t) {
                         if (ec || !self->keep_alive_ || self->draining_) return self->Shutdown();
                         self->DoRead();
                       });
  }

  void DoRead() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(shared_->options.body_limit);
    parser_->header_limit(64 * 1024);
    Tcp().expires_after(shared_->options.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->OnRead(ec);
                      });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
      keep_alive_ = false;
      return SendNow(Response::Text(413, "request entity too large\n"));
    }
    if (ec) return CloseNow();
    bhttp::request<bhttp::string_body> req = parser_->release();
    parser_.reset();
    keep_alive_ = req.keep_alive();
    version_ = req.version();

    Request request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    std::string_view target = request.target;
    size_t q = target.find('?');
    request.path = PercentDecode(target.substr(0, q), false);
    if (q != std::string_view::npos) {
      std::string_view rest = target.substr(q + 1);
      while (!rest.empty()) {
        size_t amp = rest.find('&');
        std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (part.empty()) continue;
        size_t eq = part.find('=');
        std::string key = PercentDecode(part.substr(0, eq), true);
        std::string value =
            eq == std::string_view::npos ? std::string() : PercentDecode(part.substr(eq + 1), true);
        request.query.emplace_back(std::move(key), std::move(value));
      }
    }
    for (const auto& field : req) {
      request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
    }
    request.body = std::move(req.body());
    request.remote = remote_;

    if (!Authorized(request)) {
      Response response = shared_->options.unauthorized
                              ? shared_->options.unauthorized(request)
                              : Response::Text(401, "Unauthorized\n");
      return SendNow(std::move(response));
    }
    in_flight_ = true;
    shared_->handler(std::move(request), Responder(MakeResponder()));
  }

  bool Authorized(const Request& request) const {
    const std::string& token = shared_->options.bearer_token;
    if (token.empty()) return true;
    for (const std::string& p : shared_->options.public_paths) {
      if (p == request.path) return true;
    }
    std::optional<std::string_view> header = request.GetHeader("Authorization");
    if (!header) return false;
    std::string_view value = *header;
    size_t space = value.find(' ');
    if (space == std::string_view::npos || !EqualsIgnoreCase(value.substr(0, space), "bearer")) {
      return false;
    }
    std::string_view given = value.substr(space + 1);
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
    return given.size() == token.size() &&
           CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
  }

  std::shared_ptr<Responder::Impl> MakeResponder();

  // A streaming response never reads another request, so a read that completes means the client
  // went away (or broke the protocol by pipelining during a stream).
  void WatchForDisconnect() {
    stream_.async_read_some(
        disconnect_buffer_.prepare(512),
        [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) return self->CloseNow();
          self->disconnect_buffer_.consume(n);
          self->WatchForDisconnect();
        });
  }

  void Flush() {
    if (writing_ || closed_) return;
    if (!queue_.empty()) {
      writing_ = true;
      net::async_write(stream_, bhttp::make_chunk(net::buffer(queue_.front())),
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         self->writing_ = false;
                         if (ec) return self->CloseNow();
                         self->queued_bytes_ -= self->queue_.front().size();
                         self->queue_.pop_front();
                         self->Flush();
                       });
    } else if (finishing_) {
      writing_ = true;
      Tcp().expires_after(shared_->options.write_timeout);
      net::async_write(stream_, bhttp::make_chunk_last(),
                       [self = this->shared_from_this()](beast::error_code, size_t) {
                         self->writing_ = false;
                         self->Shutdown();
                       });
    }
  }

  void Shutdown() {
    if (closed_) return;
    if constexpr (kTls) {
      Tcp().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->CloseNow(); });
    } else {
      CloseNow();
    }
  }

  Stream stream_;
  std::shared_ptr<const Shared> shared_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::atomic<bool> closed_ = false;  // read from any thread; written on the executor
  bool in_flight_ = false;            // a request was handed to the handler and not answered
  bool draining_ = false;             // Drain: no further request on this connection
  // Streaming state.
  bool writing_ = false;
  bool finishing_ = false;
  std::atomic<bool> finish_requested_ = false;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  beast::flat_buffer disconnect_buffer_;
  std::vector<std::function<void()>> on_close_;
};

template <class Stream>
class StreamHandle : public StreamWriter {
 public:
  explicit StreamHandle(std::shared_ptr<Session<Stream>> session) : session_(std::move(session)) {}
  bool Write(std::string data) override { return session_->StreamWrite(std::move(data)); }
  void Finish() override { session_->StreamFinish(); }
  bool closed() const override { return session_->closed(); }
  void OnClose(std::function<void()> callback) override {
    session_->OnClose(std::move(callback));
  }

 private:
  std::shared_ptr<Session<Stream>> session_;
};

template <class S>
class ResponderImpl : public Responder::Impl {
 public:
  explicit ResponderImpl(std::shared_ptr<Session<S>> session) : session_(std::move(session)) {}
  void Send(Response response) override {
    if (!session_) return;
    auto session = std::move(session_);
    session->Send(std::move(response));
  }
  std::shared_ptr<StreamWriter> Stream(int status, std::vector<Header> headers) override {
    auto session = std::move(session_);
    if (!session) return nullptr;
    session->StartStream(status, std::move(headers));
    return std::make_shared<StreamHandle<S>>(std::move(session));
  }
  void Abort() override {
    if (!session_) return;
    auto session = std::move(session_);
    session->Close();
  }

 private:
  std::shared_ptr<Session<S>> session_;
};

template <class Stream>
std::shared_ptr<Responder::Impl> Session<Stream>::MakeResponder() {
  return std::make_shared<ResponderImpl<Stream>>(this->shared_from_this());
}

using PlainSession = Session<beast::tcp_stream>;
using TlsSession = Session<beast::ssl_stream<beast::tcp_stream>>;

}  // namespace

struct Server::Impl {
  Impl(net::io_context& io_context, std::shared_ptr<Shared> shared_state)
      : io(shared_state->own_io ? *shared_state->own_io : io_context),
        shared(std::move(shared_state)),
        acceptor(net::make_strand(io)) {}

  void Accept() {
    // Each connection gets a strand of its own: with several threads, its handlers still run
    // one at a time.
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      std::lock_guard lock(mu);
      if (stopped) return;
      if (!ec) {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto endpoint = socket.remote_endpoint(ignored);
        std::string remote = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
        std::shared_ptr<SessionBase> session;
        if (ssl) {
          auto s = std::make_shared<TlsSession>(
              beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *ssl),
              shared, std::move(remote));
          s->Run();
          session = s;
        } else {
          auto s = std::make_shared<PlainSession>(beast::tcp_stream(std::move(socket)), shared,
                                                  std::move(remote));
          s->Run();
          session = s;
        }
        if (sessions.size() > 64) {
          std::erase_if(sessions, [](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
        }
        sessions.push_back(session);
      }
      Accept();
    });
  }

  net::io_context& io;  // where sessions run: the caller's, or shared->own_io
  std::shared_ptr<Shared> shared;
  tcp::acceptor acceptor;
  std::optional<net::ssl::context> ssl;
  std::mutex mu;  // guards sessions and stopped
  std::vector<std::weak_ptr<SessionBase>> sessions;
  bool stopped = false;
  uint16_t port = 0;
  // With options.threads > 0: the threads running shared->own_io.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  Stop();
  if (impl_->work) {
    impl_->work.reset();
    for (std::thread& t : impl_->threads) t.join();
  }
}

Result<std::unique_ptr<Server>> Server::Start(net::io_context& io, ServerOptions options,
                                              Handler handler) {
  auto shared = std::make_shared<Shared>();
  shared->options = std::move(options);
  shared->handler = std::move(handler);
  if (shared->options.threads > 0) {
    shared->own_io = std::make_shared<net::io_context>(static_cast<int>(shared->options.threads));
  }
  auto impl = std::make_unique<Impl>(io, shared);
  const ServerOptions& opts = shared->options;

  if (opts.tls) {
    impl->ssl.emplace(net::ssl::context::tls_server);
    impl->ssl->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                           net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                           net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    impl->ssl->use_certificate_chain(net::buffer(opts.tls->cert_pem), ec);
    if (!ec) impl->ssl->use_private_key(net::buffer(opts.tls->key_pem), net::ssl::context::pem, ec);
    if (ec) return MakeError(Code::kInternal, "TLS credentials rejected: " + ec.message());
    // Go's TLS client negotiates h2 only if offered via ALPN; offering nothing keeps HTTP/1.1.
  }

  beast::error_code ec;
  auto address = net::ip::make_address(opts.address, ec);
  if (ec) return MakeError(Code::kInvalidArgument, "invalid listen address \"" + opts.address + "\"");
  tcp::endpoint endpoint(address, opts.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return MakeError(Code::kUnavailable, "cannot listen on " + opts.address + ":" +
                                             std::to_string(opts.port) + ": " + ec.message());
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  if (impl->shared->own_io) {
    impl->work.emplace(impl->shared->own_io->get_executor());
    for (size_t i = 0; i < impl->shared->options.threads; ++i) {
      impl->threads.emplace_back([io = impl->shared->own_io] { io->run(); });
    }
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }

std::string Server::url() const {
  const std::string& address = impl_->shared->options.address;
  std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  return std::string(impl_->ssl ? "https://" : "http://") + host + ":" + std::to_string(port());
}

void Server::Stop() {
  std::vector<std::weak_ptr<SessionBase>> sessions;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    sessions.swap(impl_->sessions);
  }
  auto close = [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  };
  // The acceptor belongs to its strand when threads run it; otherwise to the caller's thread.
  if (impl_->work) {
    net::post(impl_->acceptor.get_executor(), close);
  } else {
    close();
  }
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->Drain();
  }
}

std::optional<std::string_view> Request::GetHeader(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::GetQuery(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

Response Response::Text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
  r.body = std::move(body);
  return r;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = std::move(body);
  return r;
}

void Response::SetHeader(std::string_view name, std::string value) {
  for (Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) {
      h.value = std::move(value);
      return;
    }
  }
  headers.push_back({std::string(name), std::move(value)});
}

std::string PercentDecode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace kiln::http
