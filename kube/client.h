// An asynchronous Kubernetes API client on Boost.Asio/Beast: HTTPS (CA, client certificate or
// bearer token from a ClusterConfig), HTTP/1.1 keep-alive over a small connection pool, a
// client-side rate limit (token bucket, QPS/burst) that also honours 429 Retry-After, retries
// with backoff for 5xx and broken connections, and list+watch with resourceVersion, bookmarks,
// relist on 410 Expired and reconnect with backoff, and streamed GETs (pods/log?follow=true)
// whose body is delivered as it arrives.
//
// Calls are C++20 coroutines (boost::asio::awaitable). Threading: a Client and its Watches
// belong to the one thread that runs their io_context; not thread-safe otherwise. Every read and
// write has a deadline (ClientOptions::request_timeout; watches: their timeoutSeconds + 30 s).
#ifndef KILN_KUBE_CLIENT_H_
#define KILN_KUBE_CLIENT_H_

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "kube/kubeconfig.h"
#include "kube/token_source.h"

namespace kiln::kube {

struct ClientOptions {
  double qps = 50;           // sustained requests per second
  int burst = 100;           // requests allowed at once above the sustained rate
  int max_connections = 4;   // pooled keep-alive connections for ordinary requests
  std::chrono::milliseconds request_timeout{30'000};
  int max_attempts = 6;      // per request, for 429, 5xx and connection failures
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10'000};
  std::string user_agent = "kiln";
  // Every watch lists its collection again this often (0: never), whatever its stream does, so
  // a change a watch missed (a proxy that lost an event, a long outage) is seen within a period.
  std::chrono::milliseconds resync_period{5 * 60 * 1000};
  // How old the copy of ClusterConfig::token_file may get before the next request reads the
  // file again (client-go: one minute). Tests shorten it.
  std::chrono::milliseconds token_max_age{60'000};
  // Called (on the io_context's thread) after every request sent, with its method and the HTTP
  // status, 0 when no answer came (connection or timeout): kiln server's metrics.
  std::function<void(std::string_view method, int status)> observe;
};

// An API answer: the status and the body (JSON when the server sent JSON; null otherwise).
struct ApiResponse {
  int status = 0;
  nlohmann::json body;
  std::string text;  // the body as received
  std::optional<int> retry_after_seconds;  // the Retry-After header, when sent
};

// The error for a non-2xx response: the server's Status message, prefixed with the method and
// path; the code from the HTTP status (404 kNotFound, 409 kAlreadyExists, 400/422
// kInvalidArgument, 401/403 kFailedPrecondition, 429/5xx kUnavailable).
Error ApiError(const std::string& method, const std::string& path, const ApiResponse& r);

// One event of a watch: type ADDED, MODIFIED or DELETED (BOOKMARK and ERROR are handled by the
// Watch). After a (re)list, every listed object is delivered as ADDED and then `synced` is true
// on the Watch's OnSynced callback.
struct WatchEvent {
  std::string type;
  nlohmann::json object;
};

class Client;

// Ends a Client::Stream from outside (e.g. when the reader of a followed log went away). Create
// it with std::make_shared; io_context thread only.
class StreamCancel {
 public:
  // Closes the stream's connection; the Stream returns soon after. Idempotent.
  void Cancel();
  bool cancelled() const { return cancelled_; }

 private:
  friend class Client;
  bool cancelled_ = false;
  std::function<void()> close_;
};

// A list+watch of one collection (e.g. /apis/batch/v1/namespaces/ns/jobs) with a label
// selector. Owned by the caller; Stop() (or destruction) ends it.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  using Handler = std::function<void(const WatchEvent&)>;
  // Called after each complete (re)list, with the listed objects' names.
  using SyncHandler = std::function<void(const std::vector<std::string>& names)>;

  void Stop();
  // Counters for tests and logs.
  int relists() const { return relists_; }
  int resyncs() const { return resyncs_; }
  int reconnects() const { return reconnects_; }
  const std::string& resource_version() const { return resource_version_; }

 private:
  friend class Client;
  Watch(Client& client, std::string path, std::string label_selector, Handler handler, SyncHandler synced);
  boost::asio::awaitable<void> Run();

  Client& client_;
  std::string path_;
  std::string label_selector_;
  Handler handler_;
  SyncHandler synced_;
  std::string resource_version_;
  bool stopped_ = false;
  int relists_ = 0;
  int reconnects_ = 0;
  std::function<void()> cancel_;  // closes the open watch connection
  // The periodic relist (ClientOptions::resync_period): armed after each list.
  void ArmResync();
  std::shared_ptr<boost::asio::steady_timer> resync_timer_;
  bool resync_due_ = false;
  int resyncs_ = 0;
};

class Client {
 public:
  // Builds the TLS context from `config` (CA, client certificate). Errors: kInvalidArgument for
  // unusable PEM data.
  static Result<std::unique_ptr<Client>> Create(boost::asio::io_context& io, ClusterConfig config,
                                                ClientOptions options = {});
  ~Client();

  // One request with retries (429 after Retry-After, 5xx and transport errors after backoff, up
  // to max_attempts). Returns the last response for any HTTP status; an error only when no
  // response came (kUnavailable, naming the server and the cause). The body goes as
  // `content_type`; "" is application/json, or application/merge-patch+json for PATCH.
  boost::asio::awaitable<Result<ApiResponse>> Call(std::string method, std::string target,
                                                   std::optional<nlohmann::json> body = std::nullopt,
                                                   std::string content_type = "");

  // Conveniences: the object on 2xx, ApiError otherwise.
  boost::asio::awaitable<Result<nlohmann::json>> Create(std::string collection, nlohmann::json object);
  boost::asio::awaitable<Result<nlohmann::json>> Get(std::string path);
  boost::asio::awaitable<Result<nlohmann::json>> List(std::string collection, std::string label_selector);
  // DELETE with propagationPolicy (Background, Foreground, Orphan). A 404 is success.
  boost::asio::awaitable<Result<void>> Delete(std::string path, std::string propagation = "Background");

  // A GET whose body is delivered as it arrives, on a connection of its own (not pooled), e.g.
  // GET .../pods/NAME/log?follow=true. `on_data` gets each piece on the io_context thread and
  // returns false to stop reading. Each read waits at most `idle_timeout` for data. Not retried
  // (a retry would deliver the start again). Returns when the server ended the body, on_data
  // stopped or `cancel` was cancelled. Errors: ApiError for a non-2xx answer; kUnavailable when
  // no answer came, the connection broke or a read timed out (data delivered so far stays
  // delivered).
  boost::asio::awaitable<Result<void>> Stream(std::string target, std::function<bool(std::string_view)> on_data,
                                              std::chrono::seconds idle_timeout,
                                              std::shared_ptr<StreamCancel> cancel = nullptr);

  // Starts a list+watch; events are delivered on the io_context thread.
  std::shared_ptr<Watch> StartWatch(std::string collection, std::string label_selector,
                                    Watch::Handler handler, Watch::SyncHandler synced = {});

  const ClusterConfig& config() const { return config_; }
  const ClientOptions& options() const { return options_; }
  boost::asio::io_context& io() { return io_; }
  // Requests sent (every attempt), and 429s seen: for tests and benchmarks.
  int64_t requests_sent() const { return requests_sent_; }
  int64_t throttled() const { return throttled_; }
  // The bearer token source (ClusterConfig::token and token_file): for tests and diagnostics.
  const TokenSource& token_source() const { return token_; }

  // Closes pooled connections and stops watches; pending calls end with errors.
  void Shutdown();

 private:
  friend class Watch;
  struct Conn;
  Client(boost::asio::io_context& io, ClusterConfig config, ClientOptions options);

  // Waits for a rate-limit token.
  boost::asio::awaitable<void> Throttle();
  // A pooled connection (idle, or new while under max_connections, else waits for one).
  boost::asio::awaitable<Result<std::shared_ptr<Conn>>> Acquire();
  void Release(std::shared_ptr<Conn> conn, bool reusable);
  boost::asio::awaitable<Result<std::shared_ptr<Conn>>> Connect();
  // The Authorization header's value for the next request ("" for none): the token, read
  // again from token_file when due; a failed re-read is reported on stderr once per failure.
  std::string Authorization();
  boost::asio::awaitable<Result<ApiResponse>> Once(Conn& conn, const std::string& method,
                                                   const std::string& target, const std::string& body,
                                                   const std::string& content_type);

  // How a streamed GET ended (shared by Watch::Run and Stream).
  struct StreamEnd {
    int status = 0;              // the HTTP status; 0 when no answer came
    ApiResponse answer;          // a non-200 answer (its body, bounded)
    std::optional<Error> error;  // why no answer came or the body broke off
  };
  // Connects (after the rate limit), sends GET `target` and, on 200, hands the body to
  // `on_data` as it arrives until the server ends it or on_data returns false. `set_cancel` is
  // given the function that closes the connection while it is open, and an empty one after.
  boost::asio::awaitable<StreamEnd> StreamGet(const std::string& target, std::chrono::seconds idle_timeout,
                                              const std::function<void(std::function<void()>)>& set_cancel,
                                              const std::function<bool(std::string_view)>& on_data);

  boost::asio::io_context& io_;
  ClusterConfig config_;
  ClientOptions options_;
  TokenSource token_;
  bool token_error_reported_ = false;
  std::unique_ptr<boost::asio::ssl::context> ssl_;
  // Token bucket.
  double tokens_;
  std::chrono::steady_clock::time_point refilled_;
  // Not before this time (a 429's Retry-After applies to every request).
  std::chrono::steady_clock::time_point paused_until_{};
  std::vector<std::shared_ptr<Conn>> idle_;
  int open_ = 0;
  std::deque<std::shared_ptr<boost::asio::steady_timer>> waiters_;
  std::vector<std::weak_ptr<Watch>> watches_;
  std::vector<std::weak_ptr<StreamCancel>> streams_;  // open Streams, cancelled by Shutdown
  bool shut_down_ = false;
  int64_t requests_sent_ = 0;
  int64_t throttled_ = 0;
};

// "a=b,c=d" percent-encoded for a query string.
std::string UrlEncode(std::string_view s);

}  // namespace kiln::kube

#endif  // KILN_KUBE_CLIENT_H_
