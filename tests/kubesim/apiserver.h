// The Kubernetes REST surface: discovery, get/list/watch/create/update/patch/delete/
// deletecollection on the resources of resources.h, /status and pods/log, Status errors, and
// Table output for kubectl; in front of it the rate limit and fault rules of faults.h, and the
// admin endpoints /kubesim/faults and /kubesim/nodes/NAME/{notready,ready}. Thread-safety:
// none; everything runs on the io_context thread.
#ifndef KILN_TESTS_KUBESIM_APISERVER_H_
#define KILN_TESTS_KUBESIM_APISERVER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "http/server.h"
#include "tests/kubesim/faults.h"
#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

class AuditLog;
class Kubelet;
class NodeLifecycleController;

struct ApiServerOptions {
  std::string advertise_address;  // "127.0.0.1:PORT" for /api's serverAddressByClientCIDRs
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(10)};
  AuditLog* audit = nullptr;  // not owned; one Event per request when set
  // Not owned; serves POST /kubesim/nodes/NAME/notready and /ready when set.
  NodeLifecycleController* nodes = nullptr;
  // The rate limit's clock (tests: a fake one); the system clock when empty.
  std::function<SysTime()> now;
};

class ApiServer {
 public:
  ApiServer(boost::asio::io_context& io, Registry& registry, const Kubelet& kubelet,
            ApiServerOptions options);
  ~ApiServer();

  // Answers one request (the http::Handler of the server).
  void Handle(http::Request request, http::Responder responder);
  void set_advertise_address(std::string address) { options_.advertise_address = std::move(address); }
  // The fault rules and rate limit requests are checked against (also set by
  // POST /kubesim/faults).
  Faults& faults();

  // The 401 response for a missing or wrong token.
  static http::Response UnauthorizedResponse();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ApiServerOptions options_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_APISERVER_H_
