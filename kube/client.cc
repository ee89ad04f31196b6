#include "kube/client.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace kiln::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using nlohmann::json;

struct Client::Conn {
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::unique_ptr<beast::tcp_stream> plain;
  beast::flat_buffer buffer;
  bool keep_alive = true;

  beast::tcp_stream& Lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void Close() {
    beast::error_code ec;
    Lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    Lowest().close();
  }
};

namespace {

constexpr size_t kMaxBody = 64 << 20;       // a list of many Jobs stays well below
constexpr size_t kMaxWatchLine = 16 << 20;  // one watch event
constexpr size_t kMaxErrorBody = 64 << 10;  // a streamed GET's non-200 answer
constexpr int kWatchTimeoutSeconds = 300;

std::chrono::milliseconds Backoff(const ClientOptions& o, int attempt) {
  auto d = o.backoff_initial * (1LL << std::min(attempt, 16));
  return std::min<std::chrono::milliseconds>(d, o.backoff_max);
}

awaitable<void> Sleep(asio::io_context& io, std::chrono::milliseconds d) {
  asio::steady_timer t(io, d);
  beast::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

bool IsJsonText(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && (s[i] == '{' || s[i] == '[');
}

template <class Stream, class Request>
awaitable<beast::error_code> WriteRequest(Stream& s, Request& req) {
  beast::error_code ec;
  co_await http::async_write(s, req, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

}  // namespace

std::string UrlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Error ApiError(const std::string& method, const std::string& path, const ApiResponse& r) {
  std::string msg;
  if (r.body.is_object() && r.body.contains("message") && r.body["message"].is_string()) {
    msg = r.body["message"].get<std::string>();
  } else {
    msg = r.text.substr(0, 200);
  }
  Code code = Code::kInternal;
  switch (r.status) {
    case 404: code = Code::kNotFound; break;
    case 409: code = Code::kAlreadyExists; break;
    case 400:
    case 422: code = Code::kInvalidArgument; break;
    case 401:
    case 403: code = Code::kFailedPrecondition; break;
    default:
      if (r.status == 429 || r.status >= 500) code = Code::kUnavailable;
  }
  return Error(code, method + " " + path + ": " + std::to_string(r.status) + (msg.empty() ? "" : " " + msg));
}

// ---- Client -------------------------------------------------------------------------------

Client::Client(asio::io_context& io, ClusterConfig config, ClientOptions options)
    : io_(io), config_(std::move(config)), options_(std::move(options)),
      token_(config_.exec ? TokenSource(*config_.exec, ExecInfo(config_))
                          : TokenSource(config_.token, config_.token_file, options_.token_max_age)),
      tokens_(options_.burst), refilled_(std::chrono::steady_clock::now()) {}

Client::~Client() { Shutdown(); }

Result<std::unique_ptr<Client>> Client::Create(asio::io_context& io, ClusterConfig config, ClientOptions options) {
  std::unique_ptr<Client> c(new Client(io, std::move(config), std::move(options)));
  if (c->config_.tls) {
    try {
      c->ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      if (!c->config_.ca_pem.empty()) {
        c->ssl_->add_certificate_authority(asio::buffer(c->config_.ca_pem));
      } else {
        c->ssl_->set_default_verify_paths();
      }
      if (!c->config_.client_cert_pem.empty()) {
        c->ssl_->use_certificate_chain(asio::buffer(c->config_.client_cert_pem));
        c->ssl_->use_private_key(asio::buffer(c->config_.client_key_pem), asio::ssl::context::pem);
      }
      c->ssl_->set_verify_mode(c->config_.insecure_skip_tls_verify ? asio::ssl::verify_none
                                                                  : asio::ssl::verify_peer);
    } catch (const boost::system::system_error& e) {
      return MakeError(Code::kInvalidArgument, std::string("TLS credentials for ") + c->config_.server +
                                                   " are unusable: " + e.what());
    }
  }
  return c;
}

void Client::Shutdown() {
  shut_down_ = true;
  for (auto& c : idle_) c->Close();
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
  for (auto& w : waiters_) w->cancel();
  waiters_.clear();
  for (auto& w : watches_) {
    if (auto s = w.lock()) s->Stop();
  }
  watches_.clear();
  for (auto& s : streams_) {
    if (auto c = s.lock()) c->Cancel();
  }
  streams_.clear();
}

awaitable<void> Client::Throttle() {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - refilled_).count();
  tokens_ = std::min<double>(options_.burst, tokens_ + elapsed * options_.qps);
  refilled_ = now;
  tokens_ -= 1;  // below zero: a reservation, paid for by waiting
  auto until = now;
  if (tokens_ < 0) {
    until += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(-tokens_ / options_.qps));
  }
  until = std::max(until, paused_until_);
  if (until > now) {
    asio::steady_timer t(io_, until);
    beast::error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<Result<std::shared_ptr<Client::Conn>>> Client::Connect() {
  auto conn = std::make_shared<Conn>();
  if (config_.tls) {
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, *ssl_);
  } else {
    conn->plain = std::make_unique<beast::tcp_stream>(io_);
  }
  const std::string where = config_.server;
  asio::ip::tcp::resolver resolver(io_);
  beast::error_code ec;
  auto results = co_await resolver.async_resolve(config_.host, config_.port, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return MakeError(Code::kUnavailable, "cannot resolve " + config_.host + ": " + ec.message(), where);
  conn->Lowest().expires_after(options_.request_timeout);
  co_await conn->Lowest().async_connect(results, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return MakeError(Code::kUnavailable, "cannot connect: " + ec.message(), where);
  if (conn->tls) {
    boost::system::error_code addr_ec;
    asio::ip::make_address(config_.host, addr_ec);
    if (addr_ec) SSL_set_tlsext_host_name(conn->tls->native_handle(), config_.host.c_str());
    if (!config_.insecure_skip_tls_verify) {
      conn->tls->set_verify_callback(asio::ssl::host_name_verification(config_.host));
    }
    co_await conn->tls->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return MakeError(Code::kUnavailable, "TLS handshake failed: " + ec.message(), where);
  }
  co_return conn;
}

awaitable<Result<std::shared_ptr<Client::Conn>>> Client::Acquire() {
  while (true) {
    if (shut_down_) co_return MakeError(Code::kUnavailable, "the Kubernetes client is shut down");
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      co_return c;
    }
    if (open_ < options_.max_connections) {
      ++open_;
      auto c = co_await Connect();
      if (!c) {
        --open_;
        if (!waiters_.empty()) {  // the slot is free again
          waiters_.front()->cancel();
          waiters_.pop_front();
        }
      }
      co_return c;
    }
    auto t = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
    waiters_.push_back(t);
    beast::error_code ec;
    co_await t->async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

void Client::Release(std::shared_ptr<Conn> conn, bool reusable) {
  if (reusable && !shut_down_) {
    idle_.push_back(std::move(conn));
  } else {
    conn->Close();
    --open_;
  }
  if (!waiters_.empty()) {
    waiters_.front()->cancel();
    waiters_.pop_front();
  }
}

std::string Client::Authorization() {
  const std::string& token = token_.Token();
  if (token_.last_error() && !token_error_reported_ && !token.empty()) {
    std::fprintf(stderr, "kiln: Kubernetes API token: %s; still sending the token %s before\n",
                 token_.last_error()->ToString().c_str(), token_.exec() ? "the plugin gave" : "read");
  }
  token_error_reported_ = token_.last_error().has_value();
  return token.empty() ? "" : "Bearer " + token;
}

awaitable<Result<ApiResponse>> Client::Once(Conn& conn, const std::string& method, const std::string& target,
                                            const std::string& body, const std::string& content_type) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, config_.host);
  req.set(http::field::user_agent, options_.user_agent);
  req.set(http::field::accept, "application/json");
  if (std::string auth = Authorization(); !auth.empty()) req.set(http::field::authorization, auth);
  if (!body.empty()) {
    req.set(http::field::content_type, !content_type.empty() ? content_type
                                       : method == "PATCH" ? "application/merge-patch+json"
                                                           : "application/json");
    req.body() = body;
  }
  req.keep_alive(true);
  req.prepare_payload();
  conn.Lowest().expires_after(options_.request_timeout);
  beast::error_code ec;
  if (conn.tls) {
    ec = co_await WriteRequest(*conn.tls, req);
  } else {
    ec = co_await WriteRequest(*conn.plain, req);
  }
  const std::string where = config_.server;
  if (ec) co_return MakeError(Code::kUnavailable, method + " " + target + ": " + ec.message(), where);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  if (conn.tls) {
    co_await http::async_read(*conn.tls, conn.buffer, parser, asio::redirect_error(use_awaitable, ec));
  } else {
    co_await http::async_read(*conn.plain, conn.buffer, parser, asio::redirect_error(use_awaitable, ec));
  }
  if (ec) co_return MakeError(Code::kUnavailable, method + " " + target + ": " + ec.message(), where);
  auto res = parser.release();
  conn.keep_alive = res.keep_alive();
  ApiResponse r;
  r.status = static_cast<int>(res.result_int());
  r.text = std::move(res.body());
  if (IsJsonText(r.text)) {
    r.body = json::parse(r.text, nullptr, false);
    if (r.body.is_discarded()) r.body = nullptr;
  }
  if (auto it = res.find(http::field::retry_after); it != res.end()) {
    try {
      r.retry_after_seconds = std::stoi(std::string(it->value()));
    } catch (...) {
      r.retry_after_seconds = 1;
    }
  }
  co_return r;
}

awaitable<Result<ApiResponse>> Client::Call(std::string method, std::string target, std::optional<json> body,
                                            std::string content_type) {
  const std::string text = body ? body->dump() : "";
  std::optional<Error> last_error;
  std::optional<ApiResponse> last;
  bool reauthenticated = false;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (shut_down_) break;
    co_await Throttle();
    auto conn = co_await Acquire();
    if (!conn) {
      last_error = conn.error();
      co_await Sleep(io_, Backoff(options_, attempt));
      continue;
    }
    std::string sent;  // an exec plugin's token, as sent
    if (token_.exec()) {
      sent = token_.Token();
      if (sent.empty() && token_.last_error()) {
        // No token, because the credential plugin failed: that is the error to show.
        Release(*conn, true);
        co_return std::unexpected(*token_.last_error());
      }
    }
    ++requests_sent_;
    std::shared_ptr<Conn> c = *conn;
    auto r = co_await Once(*c, method, target, text, content_type);
    Release(c, r.has_value() && c->keep_alive);
    if (options_.observe) options_.observe(method, r ? r->status : 0);
    if (!r) {
      last_error = r.error();
      co_await Sleep(io_, Backoff(options_, attempt));
      continue;
    }
    if (r->status == 401 && !reauthenticated && token_.Invalidate(sent)) {
      // An exec plugin's token the server no longer takes: run the plugin again, once.
      reauthenticated = true;
      last = std::move(*r);
      --attempt;  // not a failure of the server's
      continue;
    }
    if (r->status == 429) {
      ++throttled_;
      int secs = std::clamp(r->retry_after_seconds.value_or(1), 0, 60);
      paused_until_ = std::max(paused_until_, std::chrono::steady_clock::now() + std::chrono::seconds(secs));
      last = std::move(*r);
      continue;
    }
    if (r->status >= 500 && attempt + 1 < options_.max_attempts) {
      last = std::move(*r);
      co_await Sleep(io_, Backoff(options_, attempt));
      continue;
    }
    co_return std::move(*r);
  }
  if (last) co_return std::move(*last);
  if (last_error) co_return std::unexpected(*last_error);
  co_return MakeError(Code::kUnavailable, method + " " + target + ": the Kubernetes client is shut down");
}

awaitable<Result<json>> Client::Create(std::string collection, json object) {
  auto r = co_await Call("POST", collection, std::move(object));
  if (!r) co_return std::unexpected(r.error());
  if (r->status / 100 != 2) co_return std::unexpected(ApiError("POST", collection, *r));
  co_return std::move(r->body);
}

awaitable<Result<json>> Client::Get(std::string path) {
  auto r = co_await Call("GET", path);
  if (!r) co_return std::unexpected(r.error());
  if (r->status / 100 != 2) co_return std::unexpected(ApiError("GET", path, *r));
  co_return std::move(r->body);
}

awaitable<Result<json>> Client::List(std::string collection, std::string label_selector) {
  std::string target = collection;
  if (!label_selector.empty()) target += "?labelSelector=" + UrlEncode(label_selector);
  co_return co_await Get(std::move(target));
}

awaitable<Result<void>> Client::Delete(std::string path, std::string propagation) {
  json options = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", propagation}};
  auto r = co_await Call("DELETE", path, std::move(options));
  if (!r) co_return std::unexpected(r.error());
  if (r->status / 100 != 2 && r->status != 404) co_return std::unexpected(ApiError("DELETE", path, *r));
  co_return Result<void>{};
}

void StreamCancel::Cancel() {
  cancelled_ = true;
  if (close_) close_();
}

awaitable<Client::StreamEnd> Client::StreamGet(const std::string& target, std::chrono::seconds idle_timeout,
                                               const std::function<void(std::function<void()>)>& set_cancel,
                                               const std::function<bool(std::string_view)>& on_data) {
  StreamEnd end;
  const std::string where = config_.server;
  std::string sent;  // an exec plugin's token, as sent
  if (token_.exec()) {
    sent = token_.Token();
    if (sent.empty() && token_.last_error()) {  // the credential plugin failed: that is the error
      end.error = *token_.last_error();
      co_return end;
    }
  }
  co_await Throttle();
  auto connected = co_await Connect();
  if (!connected) {
    end.error = connected.error();
    co_return end;
  }
  std::shared_ptr<Conn> conn = *connected;
  set_cancel([conn] { conn->Close(); });
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, config_.host);
  req.set(http::field::user_agent, options_.user_agent);
  req.set(http::field::accept, "application/json, */*");
  if (std::string auth = Authorization(); !auth.empty()) req.set(http::field::authorization, auth);
  conn->Lowest().expires_after(options_.request_timeout);
  ++requests_sent_;
  beast::error_code ec;
  if (conn->tls) {
    ec = co_await WriteRequest(*conn->tls, req);
  } else {
    ec = co_await WriteRequest(*conn->plain, req);
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  if (!ec) {
    if (conn->tls) {
      co_await http::async_read_header(*conn->tls, conn->buffer, parser, asio::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_read_header(*conn->plain, conn->buffer, parser, asio::redirect_error(use_awaitable, ec));
    }
  }
  if (ec) {
    set_cancel({});
    conn->Close();
    end.error = Error(Code::kUnavailable, "GET " + target + ": " + ec.message(), where);
    co_return end;
  }
  end.status = static_cast<int>(parser.get().result_int());
  if (end.status == 401) token_.Invalidate(sent);  // an exec plugin's token: its next request runs the plugin
  // A non-200 answer's body (a Status) is kept, bounded, for its message.
  auto keep_error = [&end](std::string_view data) {
    end.answer.text.append(data.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, end.answer.text.size())));
    return end.answer.text.size() < kMaxErrorBody;
  };
  const bool ok = end.status == 200;
  while (true) {
    char chunk[16384];
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    conn->Lowest().expires_after(ok ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(idle_timeout)
                                    : options_.request_timeout);
    // read_some: returns with what has arrived (a line must not wait for a full buffer).
    if (conn->tls) {
      co_await http::async_read_some(*conn->tls, conn->buffer, parser, asio::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_read_some(*conn->plain, conn->buffer, parser, asio::redirect_error(use_awaitable, ec));
    }
    if (ec == http::error::need_buffer) ec = {};
    std::string_view data(chunk, sizeof chunk - parser.get().body().size);
    if (!data.empty() && !(ok ? on_data(data) : keep_error(data))) break;
    if (ec) {
      end.error = Error(Code::kUnavailable, "GET " + target + ": " + ec.message(), where);
      break;
    }
    if (parser.is_done()) break;
  }
  set_cancel({});
  conn->Close();
  if (!ok) {
    end.answer.status = end.status;
    if (IsJsonText(end.answer.text)) {
      end.answer.body = json::parse(end.answer.text, nullptr, false);
      if (end.answer.body.is_discarded()) end.answer.body = nullptr;
    }
  }
  co_return end;
}

awaitable<Result<void>> Client::Stream(std::string target, std::function<bool(std::string_view)> on_data,
                                       std::chrono::seconds idle_timeout, std::shared_ptr<StreamCancel> cancel) {
  if (!cancel) cancel = std::make_shared<StreamCancel>();
  if (shut_down_) co_return MakeError(Code::kUnavailable, "GET " + target + ": the Kubernetes client is shut down");
  if (cancel->cancelled()) co_return Result<void>{};
  std::erase_if(streams_, [](const auto& w) { return w.expired(); });
  streams_.push_back(cancel);
  // Named std::functions, not lambdas converted in the call: GCC 12 destroys such temporaries
  // of a co_await expression twice.
  std::function<void(std::function<void()>)> set_cancel = [cancel](std::function<void()> close) {
    cancel->close_ = std::move(close);
    if (cancel->cancelled_ && cancel->close_) cancel->close_();
  };
  std::function<bool(std::string_view)> stop_when_cancelled = [&cancel, &on_data](std::string_view data) {
    return !cancel->cancelled() && on_data(data);
  };
  StreamEnd end = co_await StreamGet(target, idle_timeout, set_cancel, stop_when_cancelled);
  if (cancel->cancelled()) co_return Result<void>{};
  if (end.status == 0) co_return std::unexpected(*end.error);
  if (end.status != 200) co_return std::unexpected(ApiError("GET", target, end.answer));
  if (end.error) co_return std::unexpected(*end.error);
  co_return Result<void>{};
}

std::shared_ptr<Watch> Client::StartWatch(std::string collection, std::string label_selector, Watch::Handler handler,
                                          Watch::SyncHandler synced) {
  std::shared_ptr<Watch> w(new Watch(*this, std::move(collection), std::move(label_selector), std::move(handler),
                                     std::move(synced)));
  watches_.push_back(w);
  asio::co_spawn(io_, [w]() -> awaitable<void> { co_await w->Run(); }, asio::detached);
  return w;
}

// ---- Watch --------------------------------------------------------------------------------

Watch::Watch(Client& client, std::string path, std::string label_selector, Handler handler, SyncHandler synced)
    : client_(client), path_(std::move(path)), label_selector_(std::move(label_selector)),
      handler_(std::move(handler)), synced_(std::move(synced)) {}

void Watch::Stop() {
  stopped_ = true;
  if (resync_timer_) resync_timer_->cancel();
  if (cancel_) cancel_();
}

void Watch::ArmResync() {
  const auto period = client_.options_.resync_period;
  if (period.count() <= 0 || stopped_) return;
  resync_due_ = false;
  if (!resync_timer_) resync_timer_ = std::make_shared<asio::steady_timer>(client_.io_);
  resync_timer_->expires_after(period);
  std::weak_ptr<Watch> weak = weak_from_this();
  resync_timer_->async_wait([weak](const beast::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    self->resync_due_ = true;
    if (self->cancel_) self->cancel_();  // ends the open stream or the backoff wait
  });
}

awaitable<void> Watch::Run() {
  auto self = shared_from_this();
  const ClientOptions& opts = client_.options_;
  int failures = 0;
  std::string selector = label_selector_.empty() ? "" : "labelSelector=" + UrlEncode(label_selector_);
  while (!stopped_ && !client_.shut_down_) {
    if (failures > 0) {
      auto t = std::make_shared<asio::steady_timer>(client_.io_, Backoff(opts, failures - 1));
      cancel_ = [t] { t->cancel(); };
      beast::error_code ec;
      co_await t->async_wait(asio::redirect_error(use_awaitable, ec));
      cancel_ = nullptr;
      if (stopped_) break;
    }
    if (resync_due_) {  // the periodic relist (ArmResync)
      resync_due_ = false;
      resource_version_.clear();
      ++resyncs_;
    }
    if (resource_version_.empty()) {
      std::string target = path_ + (selector.empty() ? "" : "?" + selector);
      auto list = co_await client_.Call("GET", target);
      if (stopped_) break;
      if (!list || list->status != 200 || !list->body.is_object()) {
        ++failures;
        continue;
      }
      ++relists_;
      ArmResync();
      resource_version_ = list->body["metadata"].value("resourceVersion", "");
      std::vector<std::string> names;
      for (const json& item : list->body.value("items", json::array())) {
        names.push_back(item["metadata"].value("name", ""));
        handler_(WatchEvent{"ADDED", item});
        if (stopped_) co_return;
      }
      if (synced_) synced_(names);
      if (stopped_) break;
    }

    // The watch stream on a connection of its own (not pooled: it stays open).
    std::string target = path_ + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                         std::to_string(kWatchTimeoutSeconds) + "&resourceVersion=" + UrlEncode(resource_version_) +
                         (selector.empty() ? "" : "&" + selector);
    std::string pending;
    bool relist = false;
    bool overflow = false;
    auto on_data = [&](std::string_view data) {
      if (stopped_) return false;
      pending.append(data);
      size_t start = 0;
      for (size_t nl; !relist && !stopped_ && (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
        json ev = json::parse(line, nullptr, false);
        if (ev.is_discarded() || !ev.is_object()) continue;
        std::string type = ev.value("type", "");
        const json& obj = ev["object"];
        if (type == "ERROR") {
          if (obj.is_object() && obj.value("code", 0) == 410) resource_version_.clear();
          relist = true;  // reconnect (relisting when the version expired)
          break;
        }
        if (obj.is_object() && obj.contains("metadata")) {
          std::string rv = obj["metadata"].value("resourceVersion", "");
          if (!rv.empty()) resource_version_ = rv;
        }
        if (type == "BOOKMARK") continue;
        handler_(WatchEvent{type, obj});
      }
      pending.erase(0, start);
      if (relist || stopped_) return false;
      if (pending.size() > kMaxWatchLine) {
        overflow = true;
        return false;
      }
      return true;
    };
    // Named std::functions (see Client::Stream: GCC 12 and temporaries of co_await).
    std::function<void(std::function<void()>)> set_cancel = [this](std::function<void()> close) {
      cancel_ = std::move(close);
      if (stopped_ && cancel_) cancel_();  // stopped while connecting
    };
    std::function<bool(std::string_view)> deliver = on_data;
    const std::chrono::seconds idle(kWatchTimeoutSeconds + 30);
    Client::StreamEnd end = co_await client_.StreamGet(target, idle, set_cancel, deliver);
    if (stopped_) break;
    if (end.status == 0) {  // no connection or no answer
      ++failures;
      ++reconnects_;
      continue;
    }
    if (end.status != 200) {
      if (end.status == 410) {
        resource_version_.clear();
      } else {
        if (end.status == 429) ++client_.throttled_;
        ++failures;
      }
      continue;
    }
    failures = 0;
    // Otherwise the server ended the watch (timeoutSeconds): reconnect.
    if (!relist && (overflow || end.error)) ++reconnects_;
  }
  co_return;
}

}  // namespace kiln::kube
