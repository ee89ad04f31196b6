#include "http/client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <utility>

#include "base/strings.h"

namespace kiln::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

constexpr size_t kMaxBody = 64 << 20;
constexpr size_t kMaxErrorBody = 1 << 20;
constexpr size_t kMaxLine = 16 << 20;

// Header names and URL schemes compare without case (Beast's ASCII comparison).
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()), beast::string_view(b.data(), b.size()));
}

// Characters that would let a value break out of its place in the request.
bool HasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

struct Url {
  bool tls = false;
  std::string host;         // without brackets
  std::string port;         // digits
  std::string host_header;  // as the URL writes it, with the port when one is given
  std::string prefix;       // a path in front of every target, without a trailing '/'
};

Result<Url> ParseUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return MakeError(Code::kInvalidArgument, "invalid server URL " + Quote(url) + ": " + why);
  };
  Url out;
  std::string_view rest;
  auto scheme = [&](std::string_view s) {
    return url.size() >= s.size() && EqualsIgnoreCase(url.substr(0, s.size()), s);
  };
  if (scheme("http://")) {
    rest = url.substr(7);
  } else if (scheme("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return bad("expected http://HOST:PORT or https://HOST:PORT");
  }
  if (HasControl(rest) || rest.find(' ') != std::string_view::npos) {
    return bad("it contains spaces or control characters");
  }
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return bad("a query or fragment has no place in a server URL");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.prefix = std::string(path);
  if (authority.find('@') != std::string_view::npos) {
    return bad("user names and passwords in the URL are not supported (use a token)");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ']'");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected ':' and a port after ']'");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.find(':') != std::string_view::npos) {
        return bad("write an IPv6 address in brackets, as in http://[::1]:2746");
      }
    }
  }
  if (out.host.empty()) return bad("no host");
  if (port.empty() && authority.ends_with(':')) return bad("no port after ':'");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    out.port = std::string(port);
  } else {
    out.port = out.tls ? "443" : "80";
  }
  out.host_header = std::string(authority);
  return out;
}

// The endpoint's URL as messages name it.
std::string Display(const Endpoint& endpoint) {
  std::string_view u = endpoint.url;
  while (!u.empty() && u.back() == '/') u.remove_suffix(1);
  return std::string(u);
}

std::string Seconds(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

// One connection, driven synchronously: each step starts one asynchronous operation (so that
// Beast's tcp_stream deadlines apply) and runs the private io_context until it completes.
class Connection {
 public:
  Connection(const Endpoint& endpoint, Url url)
      : endpoint_(endpoint), url_(std::move(url)), name_(Display(endpoint)) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { Close(); }

  const std::string& name() const { return name_; }
  const Url& url() const { return url_; }

  // Resolves, connects and (for https) shakes hands.
  Result<void> Open() {
    if (url_.tls) {
      ssl_.emplace(net::ssl::context::tls_client);
      ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                        net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                        net::ssl::context::no_tlsv1_1);
      beast::error_code ec;
      if (!endpoint_.ca_file.empty()) {
        std::ifstream probe(endpoint_.ca_file);
        if (!probe) {
          return MakeError(Code::kInvalidArgument, "cannot read CA file " + endpoint_.ca_file +
                                                       ": " + std::strerror(errno));
        }
        ssl_->load_verify_file(endpoint_.ca_file, ec);
        if (ec) {
          return MakeError(Code::kInvalidArgument,
                           "cannot use CA file " + endpoint_.ca_file +
                               " (expected PEM certificates): " + ec.message());
        }
      } else {
        ssl_->set_default_verify_paths(ec);
        // Without system CAs every verification fails and says so; nothing to report here.
      }
      ssl_->set_verify_mode(endpoint_.insecure_skip_verify ? net::ssl::verify_none
                                                           : net::ssl::verify_peer);
      tls_.emplace(io_, *ssl_);
    } else {
      plain_.emplace(io_);
    }

    const std::string cannot = "cannot connect to " + name_ + ": ";
    tcp::resolver resolver(io_);
    net::steady_timer timer(io_, endpoint_.timeout);
    tcp::resolver::results_type results;
    beast::error_code resolve_ec;
    bool timed_out = false;
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code ec, tcp::resolver::results_type r) {
                             resolve_ec = ec;
                             results = std::move(r);
                             timer.cancel();
                           });
    timer.async_wait([&](beast::error_code ec) {
      if (ec) return;
      timed_out = true;
      resolver.cancel();
    });
    RunIo();
    if (timed_out) {
      return MakeError(Code::kUnavailable, cannot + "resolving " + url_.host + " timed out after " +
                                               Seconds(endpoint_.timeout));
    }
    if (resolve_ec) {
      return MakeError(Code::kUnavailable, cannot + "cannot resolve host " + Quote(url_.host) +
                                               ": " + resolve_ec.message());
    }

    Tcp().expires_after(endpoint_.timeout);
    beast::error_code ec = Run([&](auto handler) {
      Tcp().async_connect(
          results, [handler](beast::error_code e, const tcp::endpoint&) mutable { handler(e); });
    });
    if (ec == beast::error::timeout) {
      return MakeError(Code::kUnavailable,
                       cannot + "timed out after " + Seconds(endpoint_.timeout));
    }
    if (ec) return MakeError(Code::kUnavailable, cannot + ec.message());
    SetKeepAlive();

    if (tls_) {
      SSL* ssl = tls_->native_handle();
      beast::error_code addr_ec;
      net::ip::make_address(url_.host, addr_ec);
      const bool is_ip = !addr_ec;
      // SNI carries DNS names only (RFC 6066).
      if (!is_ip) SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      if (!endpoint_.insecure_skip_verify) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str())
                       : SSL_set1_host(ssl, url_.host.c_str());
        if (ok != 1) {
          return MakeError(Code::kInvalidArgument, "invalid server URL " + Quote(endpoint_.url) +
                                                       ": bad host name for TLS");
        }
      }
      Tcp().expires_after(endpoint_.timeout);
      ec =
          Run([&](auto handler) { tls_->async_handshake(net::ssl::stream_base::client, handler); });
      if (ec) {
        std::string why = ec == beast::error::timeout
                              ? "timed out after " + Seconds(endpoint_.timeout)
                              : ec.message();
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        }
        return MakeError(Code::kUnavailable, "TLS handshake with " + name_ + " failed: " + why);
      }
    }
    return {};
  }

  Result<void> Write(bhttp::request<bhttp::string_body>& request) {
    Tcp().expires_after(endpoint_.timeout);
    beast::error_code ec = With([&](auto& stream) {
      return Run([&](auto handler) {
        bhttp::async_write(stream, request,
                           [handler](beast::error_code e, size_t) mutable { handler(e); });
      });
    });
    if (ec) return Failure("sending the request", ec);
    return {};
  }

  // Reads the whole response under the endpoint's deadline.
  Result<ClientResponse> ReadAll(bool head) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxBody);
    parser.skip(head);  // the answer to HEAD has a Content-Length but no body
    Tcp().expires_after(endpoint_.timeout);
    beast::error_code ec = With([&](auto& stream) {
      return Run([&](auto handler) {
        bhttp::async_read(stream, buffer_, parser,
                          [handler](beast::error_code e, size_t) mutable { handler(e); });
      });
    });
    if (ec == bhttp::error::body_limit) {
      return MakeError(Code::kResourceExhausted, name_ + ": the response is larger than " +
                                                     std::to_string(kMaxBody >> 20) + " MiB");
    }
    if (ec) return Failure("reading the response", ec);
    auto& res = parser.get();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      out.headers.push_back({std::string(field.name_string()), std::string(field.value())});
    }
    out.body = std::move(res.body());
    return out;
  }

  // Reads the status line and headers (under the deadline), then the body as lines.
  Result<int> ReadLines(const std::function<bool(std::string_view)>& on_line,
                        std::string* error_body) {
    bhttp::response_parser<bhttp::buffer_body> parser;
    // Not boost::none: Boost 1.74 compares a Content-Length against the disengaged optional as
    // if it were a limit of zero.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    Tcp().expires_after(endpoint_.timeout);
    beast::error_code ec = With([&](auto& stream) {
      return Run([&](auto handler) {
        bhttp::async_read_header(stream, buffer_, parser,
                                 [handler](beast::error_code e, size_t) mutable { handler(e); });
      });
    });
    if (ec) return Failure("reading the response", ec);
    const int status = static_cast<int>(parser.get().result_int());
    const bool ok = status / 100 == 2;
    if (ok) Tcp().expires_never();  // see Endpoint::timeout

    std::string pending;  // bytes after the last complete line
    size_t scanned = 0;   // of `pending`, already searched for '\n'
    std::string error_text;
    char buf[16 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      ec = With([&](auto& stream) {
        return Run([&](auto handler) {
          bhttp::async_read_some(stream, buffer_, parser,
                                 [handler](beast::error_code e, size_t) mutable { handler(e); });
        });
      });
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        if (!ok) break;  // keep what arrived of the error body
        return Failure("the connection closed in the middle of the response", ec);
      }
      const size_t n = sizeof buf - parser.get().body().size;
      if (!ok) {
        error_text.append(buf, std::min(n, kMaxErrorBody - error_text.size()));
        if (error_text.size() >= kMaxErrorBody) break;
        continue;
      }
      pending.append(buf, n);
      size_t start = 0;
      while (true) {
        size_t nl = pending.find('\n', std::max(start, scanned));
        if (nl == std::string::npos) break;
        std::string_view line(pending.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!on_line(line)) return status;  // the destructor closes the connection
        start = nl + 1;
      }
      pending.erase(0, start);
      scanned = pending.size();
      if (pending.size() > kMaxLine) {
        return MakeError(Code::kResourceExhausted, name_ +
                                                       ": a line of the response is longer than " +
                                                       std::to_string(kMaxLine >> 20) + " MiB");
      }
    }
    if (!ok) {
      if (error_body != nullptr) *error_body = std::move(error_text);
      return status;
    }
    if (!pending.empty()) {
      std::string_view line = pending;
      if (line.back() == '\r') line.remove_suffix(1);
      on_line(line);
    }
    return status;
  }

 private:
  beast::tcp_stream& Tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  template <class F>
  beast::error_code With(F&& f) {
    if (tls_) return f(*tls_);
    return f(*plain_);
  }

  // Starts one operation through `start(handler)` and runs the io_context until it completes.
  template <class Start>
  beast::error_code Run(Start&& start) {
    beast::error_code result;
    start([&result](beast::error_code ec) { result = ec; });
    RunIo();
    return result;
  }

  void RunIo() {
    io_.restart();
    io_.run();
  }

  // TCP keepalive with short probes (Linux waits two hours by default), so that a stream whose
  // peer vanished without closing fails within about a minute and a half.
  void SetKeepAlive() {
    beast::error_code ignored;
    tcp::socket& socket = Tcp().socket();
    socket.set_option(net::socket_base::keep_alive(true), ignored);
    socket.set_option(tcp::no_delay(true), ignored);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
    int idle = 60, interval = 10, count = 3;
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
#endif
  }

  std::unexpected<Error> Failure(const std::string& what, beast::error_code ec) const {
    if (ec == beast::error::timeout) {
      return MakeError(Code::kUnavailable,
                       name_ + ": " + what + ": no answer within " + Seconds(endpoint_.timeout));
    }
    return MakeError(Code::kUnavailable, name_ + ": " + what + ": " + ec.message());
  }

  void Close() {
    if (!plain_ && !tls_) return;
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().socket().close(ignored);
  }

  const Endpoint& endpoint_;
  Url url_;
  std::string name_;
  // Declared first so that it is destroyed last: the streams below use its services.
  net::io_context io_;
  std::optional<net::ssl::context> ssl_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
};

Result<bhttp::request<bhttp::string_body>> BuildRequest(const Endpoint& endpoint, const Url& url,
                                                        std::string_view method,
                                                        std::string_view target, std::string body,
                                                        const std::vector<Header>& headers) {
  if (method.empty() || method.find_first_of(" \t\r\n") != std::string_view::npos ||
      HasControl(method)) {
    return MakeError(Code::kInvalidArgument, "invalid HTTP method " + Quote(method));
  }
  if (target.empty() || target.front() != '/' || HasControl(target) ||
      target.find(' ') != std::string_view::npos) {
    return MakeError(Code::kInvalidArgument,
                     "invalid request target " + Quote(target) +
                         ": expected a percent-encoded path starting with '/'");
  }
  for (const Header& h : headers) {
    if (h.name.empty() || HasControl(h.name) || h.name.find_first_of(" :") != std::string::npos ||
        HasControl(h.value)) {
      return MakeError(Code::kInvalidArgument, "invalid request header " + Quote(h.name));
    }
  }
  if (HasControl(endpoint.token)) {
    return MakeError(Code::kInvalidArgument, "the token contains control characters");
  }
  bhttp::request<bhttp::string_body> req;
  req.version(11);
  const beast::string_view method_view(method.data(), method.size());
  bhttp::verb verb = bhttp::string_to_verb(method_view);
  if (verb == bhttp::verb::unknown) {
    req.method_string(method_view);
  } else {
    req.method(verb);
  }
  req.target(url.prefix + std::string(target));
  req.set(bhttp::field::host, url.host_header);
  req.set(bhttp::field::user_agent, "kiln");
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  if (!endpoint.token.empty()) req.set(bhttp::field::authorization, "Bearer " + endpoint.token);
  for (const Header& h : headers) req.set(h.name, h.value);
  req.body() = std::move(body);
  req.keep_alive(false);
  req.prepare_payload();
  return req;
}

}  // namespace

std::optional<std::string_view> ClientResponse::GetHeader(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

Result<ClientResponse> Fetch(const Endpoint& endpoint, std::string_view method,
                             std::string_view target, std::string body,
                             std::vector<Header> headers) {
  auto url = ParseUrl(endpoint.url);
  if (!url) return std::unexpected(url.error());
  auto req = BuildRequest(endpoint, *url, method, target, std::move(body), headers);
  if (!req) return std::unexpected(req.error());
  Connection conn(endpoint, std::move(*url));
  if (auto ok = conn.Open(); !ok) return std::unexpected(ok.error());
  if (auto ok = conn.Write(*req); !ok) return std::unexpected(ok.error());
  return conn.ReadAll(req->method() == bhttp::verb::head);
}

Result<int> FetchStream(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const std::function<bool(std::string_view line)>& on_line,
                        std::vector<Header> headers, std::string* error_body) {
  auto url = ParseUrl(endpoint.url);
  if (!url) return std::unexpected(url.error());
  auto req = BuildRequest(endpoint, *url, method, target, "", headers);
  if (!req) return std::unexpected(req.error());
  Connection conn(endpoint, std::move(*url));
  if (auto ok = conn.Open(); !ok) return std::unexpected(ok.error());
  if (auto ok = conn.Write(*req); !ok) return std::unexpected(ok.error());
  return conn.ReadLines(on_line, error_body);
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace kiln::http
