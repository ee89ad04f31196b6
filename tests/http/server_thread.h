// An http::Server on 127.0.0.1, port 0, run on a thread of its own for tests that talk to it
// from the test's thread (tests/http, and tests/cli through the kiln binary). Every request is
// recorded before the handler sees it.
// Thread-safety: requests() and Post() are safe from any thread; the handler runs on the
// server's thread.
#ifndef KILN_TESTS_HTTP_SERVER_THREAD_H_
#define KILN_TESTS_HTTP_SERVER_THREAD_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/server.h"

namespace kiln::testing {

class ServerThread {
 public:
  explicit ServerThread(http::Handler handler, http::ServerOptions options = {})
      : handler_(std::move(handler)) {
    options.address = "127.0.0.1";
    options.port = 0;
    auto server = http::Server::Start(io_, std::move(options),
                                      [this](http::Request request, http::Responder responder) {
                                        {
                                          std::lock_guard<std::mutex> lock(mu_);
                                          requests_.push_back(request);
                                        }
                                        handler_(std::move(request), std::move(responder));
                                      });
    REQUIRE(server.has_value());
    server_ = std::move(*server);
    url_ = server_->url();
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~ServerThread() {
    boost::asio::post(io_, [this] {
      server_->Stop();
      kept_.clear();
    });
    thread_.join();
    server_.reset();
  }

  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  const std::string& url() const { return url_; }
  uint16_t port() const { return port_; }

  std::vector<http::Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  // Runs `fn` on the server's thread (where Responders and StreamWriters must be used).
  void Post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

  // Keeps `object` (a StreamWriter, a Responder not yet answered) alive until the server stops,
  // and destroys it on the server's thread before the io_context goes. Call on the server's
  // thread.
  void Keep(std::shared_ptr<void> object) { kept_.push_back(std::move(object)); }

 private:
  http::Handler handler_;
  boost::asio::io_context io_;
  std::unique_ptr<http::Server> server_;
  std::string url_;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<http::Request> requests_;
  std::vector<std::shared_ptr<void>> kept_;  // the server's thread only
};

// A port on 127.0.0.1 that nothing listens on (a server was there and stopped).
inline uint16_t ClosedPort() {
  boost::asio::io_context io;
  auto server = http::Server::Start(io, {}, [](http::Request, http::Responder) {});
  REQUIRE(server.has_value());
  uint16_t port = (*server)->port();
  (*server)->Stop();
  return port;
}

}  // namespace kiln::testing

#endif  // KILN_TESTS_HTTP_SERVER_THREAD_H_
