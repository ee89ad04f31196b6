// A small synchronous HTTP/1.1 client on Boost.Beast, plain or TLS (OpenSSL), for the kiln CLI
// and for tests: one request per connection (no pool, "Connection: close"), bearer-token
// authentication, and a streaming variant for watches and followed logs that hands each line to
// the caller as it arrives. Beast stays inside client.cc.
//
// TLS: the server's certificate is verified against the system's CAs, or only against the PEM
// CAs in Endpoint::ca_file; its name must match the URL's host (DNS name or IP address
// subjectAltName); SNI is sent for DNS names. insecure_skip_verify turns verification off.
//
// The token is only ever written into the Authorization header: no message, error or log of this
// client contains it.
//
// Thread-safety: the functions are thread-safe; each call uses its own io_context and socket and
// blocks the calling thread until it returns.
#ifndef KILN_HTTP_CLIENT_H_
#define KILN_HTTP_CLIENT_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/server.h"

namespace kiln::http {

// Where requests go and how.
struct Endpoint {
  // "http://host:port" or "https://host:port"; the port defaults to 80 or 443; an IPv6 host is
  // written in brackets ("http://[::1]:2746"). A path after the authority ("https://h/kiln") is
  // put in front of every request target.
  std::string url;
  std::string token;    // sent as "Authorization: Bearer <token>" when not empty
  std::string ca_file;  // PEM CAs to trust instead of the system's; "" for the system's
  bool insecure_skip_verify = false;
  // The deadline of each step of a request: resolving and connecting, the TLS handshake, writing
  // the request, and reading the whole response (FetchStream: its status line and headers; the
  // body of a stream has no deadline, as a watch or a followed log may be silent for hours, but
  // TCP keepalive is on so that a peer that vanished is noticed).
  std::chrono::seconds timeout{30};
};

struct ClientResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;

  // The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> GetHeader(std::string_view name) const;
};

// Sends one request and reads the whole response (at most 64 MiB of body). `target` is the path
// and query ("/api/v1/workflows/ml?limit=5"), already percent-encoded. `headers` are added to
// the request and replace the defaults of the same name (Host, User-Agent: kiln, and
// Content-Type: application/json when `body` is not empty).
// Returns the response whatever its status. Errors:
//   kInvalidArgument: a malformed URL or method, a CA file that cannot be read or used;
//   kUnavailable: "cannot connect to URL: reason" (resolving, refused, unreachable, timed out),
//     "TLS handshake with URL failed: reason" (certificate verification says why),
//     "URL: ..." for a connection that fails or times out during the exchange;
//   kResourceExhausted: a response body over the limit.
Result<ClientResponse> Fetch(const Endpoint& endpoint, std::string_view method,
                             std::string_view target, std::string body = "",
                             std::vector<Header> headers = {});

// Sends one request with no body and reads the response as a stream of lines: `on_line` is
// called with each line of the body (without its "\n" or "\r\n"; a last line without a newline
// is passed too) as soon as the line has arrived, chunked or not. When `on_line` returns false
// the connection is closed and FetchStream returns at once. Lines longer than 16 MiB are an
// error (kResourceExhausted).
// A status outside 2xx does not call `on_line`: its body (at most 1 MiB, read within the
// endpoint's timeout) goes to `*error_body` when that is not null.
// Returns the response's status. Errors: as Fetch's, and kUnavailable "URL: the connection
// closed in the middle of the response: reason" when the stream breaks before its end.
Result<int> FetchStream(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const std::function<bool(std::string_view line)>& on_line,
                        std::vector<Header> headers = {}, std::string* error_body = nullptr);

// Percent-encodes `text` for a path segment or a query value: everything but the unreserved
// characters A-Z a-z 0-9 - . _ ~ becomes %XX.
std::string UrlEncode(std::string_view text);

}  // namespace kiln::http

#endif  // KILN_HTTP_CLIENT_H_
