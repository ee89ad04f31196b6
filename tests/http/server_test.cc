// http::Server with threads of its own (as kiln server runs it): connections answered in
// parallel, Responders used from other threads, and a graceful Stop. Waits are on promises set
// by the handler, never sleeps.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>

#include "http/client.h"
#include "http/server.h"

namespace kiln::http {
namespace {

Endpoint At(const std::string& url) {
  Endpoint e;
  e.url = url;
  e.timeout = std::chrono::seconds(20);
  return e;
}

TEST_CASE("a server with threads answers one connection while another's handler waits", "[http][server]") {
  boost::asio::io_context unused;  // the server runs on its own io_context
  std::promise<void> b_arrived;
  std::shared_future<void> b = b_arrived.get_future().share();
  ServerOptions options;
  options.threads = 2;
  auto server = Server::Start(unused, options, [&](Request r, Responder out) {
    if (r.path == "/a") {
      // Blocks this thread until /b has been handled on another one.
      bool in_time = b.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
      out.Send(Response::Text(200, in_time ? "a after b\n" : "b never came\n"));
    } else {
      b_arrived.set_value();
      out.Send(Response::Text(200, "b\n"));
    }
  });
  REQUIRE(server);
  std::string url = (*server)->url();
  auto a = std::async(std::launch::async, [&] { return Fetch(At(url), "GET", "/a"); });
  auto rb = Fetch(At(url), "GET", "/b");
  REQUIRE(rb);
  CHECK(rb->body == "b\n");
  auto ra = a.get();
  REQUIRE(ra);
  CHECK(ra->body == "a after b\n");
}

TEST_CASE("Stop lets an answer in flight finish, and then refuses connections", "[http][server]") {
  boost::asio::io_context unused;
  std::mutex mu;
  std::optional<Responder> held;
  std::promise<void> arrived;
  ServerOptions options;
  options.threads = 2;
  auto server = Server::Start(unused, options, [&](Request, Responder out) {
    std::lock_guard lock(mu);
    held.emplace(std::move(out));  // answered later, from the test's thread
    arrived.set_value();
  });
  REQUIRE(server);
  std::string url = (*server)->url();
  auto pending = std::async(std::launch::async, [&] { return Fetch(At(url), "GET", "/slow"); });
  REQUIRE(arrived.get_future().wait_for(std::chrono::seconds(20)) == std::future_status::ready);

  (*server)->Stop();
  {
    std::lock_guard lock(mu);
    held->Send(Response::Text(200, "finished after Stop\n"));
  }
  auto r = pending.get();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "finished after Stop\n");
  CHECK(r->GetHeader("Connection") == std::optional<std::string_view>("close"));
  auto refused = Fetch(At(url), "GET", "/again");
  CHECK_FALSE(refused);
  server->reset();  // joins the server's threads
}

}  // namespace
}  // namespace kiln::http
