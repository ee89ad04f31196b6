#include "http/client.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "http/tls.h"
#include "tests/http/server_thread.h"

namespace kiln::http {
namespace {

using kiln::testing::ClosedPort;
using kiln::testing::ServerThread;

// A file under the temporary directory, removed when the test ends.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/kiln-http-client-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

// An endpoint (GCC 12 warns about designated initializers that leave fields out).
Endpoint At(std::string url, std::string token = "", std::string ca_file = "") {
  Endpoint e;
  e.url = std::move(url);
  e.token = std::move(token);
  e.ca_file = std::move(ca_file);
  return e;
}

Endpoint Insecure(std::string url) {
  Endpoint e = At(std::move(url));
  e.insecure_skip_verify = true;
  return e;
}

Endpoint WithTimeout(std::string url, std::chrono::seconds timeout) {
  Endpoint e = At(std::move(url));
  e.timeout = timeout;
  return e;
}

Handler Echo() {
  return [](Request request, Responder responder) {
    std::string auth(request.GetHeader("Authorization").value_or("-"));
    std::string type(request.GetHeader("Content-Type").value_or("-"));
    Response r = Response::Text(200, request.method + " " + request.target + "\nauth " + auth +
                                         "\ntype " + type + "\nbody " + request.body + "\n");
    r.SetHeader("X-Kiln-Test", "yes");
    responder.Send(std::move(r));
  };
}

TEST_CASE("Fetch sends a request and returns the status, headers and body", "[http][client]") {
  ServerThread server(Echo());
  Endpoint endpoint = At(server.url());
  auto r = Fetch(endpoint, "POST", "/api/v1/workflows/ml?x=1", R"({"a":1})");
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body ==
        "POST /api/v1/workflows/ml?x=1\nauth -\ntype application/json\nbody {\"a\":1}\n");
  CHECK(r->GetHeader("x-kiln-test") == std::optional<std::string_view>("yes"));
  CHECK_FALSE(r->GetHeader("X-Absent").has_value());

  SECTION("an error status is a response, not an error") {
    ServerThread missing([](Request, Responder responder) {
      responder.Send(Response::Json(404, R"({"code":5,"message":"workflow \"x\" not found"})"));
    });
    auto nf = Fetch(At(missing.url()), "GET", "/api/v1/workflows/ml/x");
    REQUIRE(nf.has_value());
    CHECK(nf->status == 404);
    CHECK(nf->body == R"({"code":5,"message":"workflow \"x\" not found"})");
  }
  SECTION("caller headers replace the defaults") {
    auto y =
        Fetch(endpoint, "PUT", "/a", "kind: Workflow\n", {{"Content-Type", "application/yaml"}});
    REQUIRE(y.has_value());
    CHECK(y->body == "PUT /a\nauth -\ntype application/yaml\nbody kind: Workflow\n\n");
  }
  SECTION("a URL with a path puts it in front of every target") {
    Endpoint prefixed = At(server.url() + "/kiln/");
    auto p = Fetch(prefixed, "GET", "/healthz");
    REQUIRE(p.has_value());
    CHECK(p->body.starts_with("GET /kiln/healthz\n"));
  }
}

TEST_CASE("Fetch sends the bearer token and the server's 401 comes back", "[http][client]") {
  ServerOptions options;
  options.bearer_token = "s3cret";
  options.unauthorized = [](const Request&) {
    return Response::Json(401, R"({"code":16,"message":"token not valid"})");
  };
  ServerThread server(Echo(), options);

  auto denied = Fetch(At(server.url()), "GET", "/x");
  REQUIRE(denied.has_value());
  CHECK(denied->status == 401);
  CHECK(denied->body == R"({"code":16,"message":"token not valid"})");

  auto wrong = Fetch(At(server.url(), "guess"), "GET", "/x");
  REQUIRE(wrong.has_value());
  CHECK(wrong->status == 401);

  auto ok = Fetch(At(server.url(), "s3cret"), "GET", "/x");
  REQUIRE(ok.has_value());
  CHECK(ok->status == 200);
  CHECK(ok->body.find("auth Bearer s3cret\n") != std::string::npos);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);  // the rejected ones never reached the handler
  CHECK(requests[0].GetHeader("Authorization") == std::optional<std::string_view>("Bearer s3cret"));
}

TEST_CASE("Fetch over TLS verifies the server against the CA file and the host name",
          "[http][client]") {
  auto creds = GenerateTlsCredentials({"127.0.0.1", "localhost"}, "kiln-test");
  REQUIRE(creds.has_value());
  ServerOptions options;
  options.tls = *creds;
  ServerThread server(Echo(), options);
  REQUIRE(server.url().starts_with("https://127.0.0.1:"));
  TempFile ca(creds->ca_pem);
  const std::string port = std::to_string(server.port());

  SECTION("trusted CA, IP address in the certificate") {
    auto r = Fetch(At(server.url(), "t", ca.path), "GET", "/x");
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->body.find("auth Bearer t\n") != std::string::npos);
  }
  SECTION("trusted CA, DNS name in the certificate (sent as SNI)") {
    auto r = Fetch(At("https://localhost:" + port, "", ca.path), "GET", "/x");
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
  }
  SECTION("the system CAs do not know the server's CA") {
    auto r = Fetch(At(server.url()), "GET", "/x");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Code::kUnavailable);
    CHECK(r.error().message() == "TLS handshake with " + server.url() +
                                     " failed: certificate verify failed: unable to get local "
                                     "issuer certificate");
  }
  SECTION("insecure_skip_verify accepts any certificate") {
    auto r = Fetch(Insecure(server.url()), "GET", "/x");
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
  }
  SECTION("a CA file that does not exist") {
    auto r = Fetch(At(server.url(), "", "/nonexistent/ca.pem"), "GET", "/x");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Code::kInvalidArgument);
    CHECK(r.error().message() ==
          "cannot read CA file /nonexistent/ca.pem: No such file or directory");
  }
}

TEST_CASE("Fetch over TLS rejects a certificate for another host", "[http][client]") {
  auto creds = GenerateTlsCredentials({"other.example"}, "kiln-test");
  REQUIRE(creds.has_value());
  ServerOptions options;
  options.tls = *creds;
  ServerThread server(Echo(), options);
  TempFile ca(creds->ca_pem);
  auto r = Fetch(At(server.url(), "", ca.path), "GET", "/x");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message() == "TLS handshake with " + server.url() +
                                   " failed: certificate verify failed: IP address mismatch");
  auto by_name =
      Fetch(At("https://localhost:" + std::to_string(server.port()), "", ca.path), "GET", "/x");
  REQUIRE_FALSE(by_name.has_value());
  CHECK(by_name.error().message().ends_with("certificate verify failed: hostname mismatch"));
}

TEST_CASE("FetchStream delivers each line as it arrives", "[http][client]") {
  // The server sends the second line only after the client has seen the first: a client that
  // waited for the whole response would never see either.
  StreamWriter* writer = nullptr;  // the server's thread only
  ServerThread server([&](Request, Responder responder) {
    auto stream = responder.Stream(200, {{"Content-Type", "application/x-ndjson"}});
    server.Keep(stream);
    writer = stream.get();
    writer->Write("{\"n\":1}\n{\"n\"");
  });
  std::vector<std::string> lines;
  auto status = FetchStream(At(server.url()), "GET", "/watch", [&](std::string_view line) {
    lines.emplace_back(line);
    if (lines.size() == 1) {
      server.Post([&] {
        writer->Write(":2}\r\n");
        writer->Write("{\"n\":3}\n{\"n\":4}");
        writer->Finish();
      });
    }
    return true;
  });
  REQUIRE(status.has_value());
  CHECK(*status == 200);
  CHECK(lines == std::vector<std::string>{R"({"n":1})", R"({"n":2})", R"({"n":3})", R"({"n":4})"});
}

TEST_CASE("FetchStream stops when the callback says so", "[http][client]") {
  // A stream that never ends: only the callback's false ends the call.
  ServerThread server([&](Request, Responder responder) {
    auto stream = responder.Stream(200, {});
    server.Keep(stream);
    stream->Write("a\nb\nc\n");
  });
  std::vector<std::string> lines;
  auto status = FetchStream(At(server.url()), "GET", "/logs", [&](std::string_view line) {
    lines.emplace_back(line);
    return lines.size() < 2;
  });
  REQUIRE(status.has_value());
  CHECK(*status == 200);
  CHECK(lines == std::vector<std::string>{"a", "b"});
}

TEST_CASE("FetchStream hands an error status's body back instead of lines", "[http][client]") {
  ServerThread server([](Request, Responder responder) {
    responder.Send(Response::Json(404, "{\"code\":5,\n\"message\":\"no such workflow\"}"));
  });
  int calls = 0;
  std::string error_body;
  auto status = FetchStream(
      At(server.url()), "GET", "/watch",
      [&](std::string_view) {
        ++calls;
        return true;
      },
      {}, &error_body);
  REQUIRE(status.has_value());
  CHECK(*status == 404);
  CHECK(calls == 0);
  CHECK(error_body == "{\"code\":5,\n\"message\":\"no such workflow\"}");
}

TEST_CASE("Fetch reports a refused connection with the URL", "[http][client]") {
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  auto r = Fetch(At(url), "GET", "/x");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Code::kUnavailable);
  CHECK(r.error().message() == "cannot connect to " + url + ": Connection refused");
  auto s = FetchStream(At(url + "/"), "GET", "/x", [](std::string_view) { return true; });
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message() == "cannot connect to " + url + ": Connection refused");
}

TEST_CASE("Fetch gives up on a server that does not answer in time", "[http][client]") {
  ServerThread server([&](Request, Responder responder) {
    server.Keep(std::make_shared<Responder>(std::move(responder)));  // never answered
  });
  auto r = Fetch(WithTimeout(server.url(), std::chrono::seconds(1)), "GET", "/x");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Code::kUnavailable);
  CHECK(r.error().message() == server.url() + ": reading the response: no answer within 1s");
}

TEST_CASE("Fetch rejects malformed URLs and requests", "[http][client]") {
  auto message = [](const std::string& url, std::string_view target = "/x") {
    auto r = Fetch(At(url), "GET", target);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Code::kInvalidArgument);
    return r.error().message();
  };
  CHECK(message("localhost:2746") ==
        "invalid server URL \"localhost:2746\": expected http://HOST:PORT or https://HOST:PORT");
  CHECK(message("http://:80") == "invalid server URL \"http://:80\": no host");
  CHECK(message("http://h:99999") ==
        "invalid server URL \"http://h:99999\": the port must be a number from 1 to 65535");
  CHECK(message("http://::1:80") ==
        "invalid server URL \"http://::1:80\": write an IPv6 address in brackets, as in "
        "http://[::1]:2746");
  CHECK(message("http://u:p@h:1") ==
        "invalid server URL \"http://u:p@h:1\": user names and passwords in the URL are not "
        "supported (use a token)");
  CHECK(message("http://127.0.0.1:1", "/a b") ==
        "invalid request target \"/a b\": expected a percent-encoded path starting with '/'");
}

TEST_CASE("UrlEncode keeps unreserved characters only", "[http][client]") {
  CHECK(UrlEncode("metadata.name=train-x7~1") == "metadata.name%3Dtrain-x7~1");
  CHECK(UrlEncode("a b/c&d") == "a%20b%2Fc%26d");
}

}  // namespace
}  // namespace kiln::http
