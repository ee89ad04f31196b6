#include "tests/kubesim/apiserver.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/detail/base64.hpp>

#include "http/router.h"
#include "tests/kubesim/audit.h"
#include "tests/kubesim/kubelet.h"
#include "tests/kubesim/node_lifecycle.h"
#include "tests/kubesim/openapi.h"
#include "tests/kubesim/patch.h"
#include "tests/kubesim/selectors.h"
#include "tests/kubesim/table.h"

namespace kiln::kubesim {
namespace {

namespace net = boost::asio;
using http::Request;
using http::Responder;
using http::Response;

Response JsonResponse(int status, const json& body) {
  return Response::Json(status, body.dump());
}

Response ErrorResponse(const ApiError& e) {
  Response r = JsonResponse(e.code, e.ToStatus());
  if (e.details.contains("retryAfterSeconds")) {
    r.SetHeader("Retry-After", std::to_string(e.details["retryAfterSeconds"].get<int>()));
  }
  return r;
}

std::optional<bool> ParseBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") return false;
  return std::nullopt;
}

std::string Base64(std::string_view in) {
  std::string out(boost::beast::detail::base64::encoded_size(in.size()), '\0');
  out.resize(boost::beast::detail::base64::encode(out.data(), in.data(), in.size()));
  return out;
}

std::optional<std::string> Unbase64(std::string_view in) {
  std::string out(boost::beast::detail::base64::decoded_size(in.size()), '\0');
  auto [written, read] = boost::beast::detail::base64::decode(out.data(), in.data(), in.size());
  if (read != in.size()) return std::nullopt;
  out.resize(written);
  return out;
}

json ResourceEntry(const ResourceInfo& r) {
  json entry = {{"name", r.name},
                {"singularName", r.singular},
                {"namespaced", r.namespaced},
                {"kind", r.kind},
                {"verbs", {"create", "delete", "deletecollection", "get", "list", "patch", "update",
                           "watch"}}};
  if (!r.short_names.empty()) entry["shortNames"] = r.short_names;
  if (!r.categories.empty()) entry["categories"] = r.categories;
  return entry;
}

json ResourceList(const std::string& group, const std::string& version) {
  json resources = json::array();
  for (const ResourceInfo& r : AllResources()) {
    if (r.group != group || r.version != version) continue;
    resources.push_back(ResourceEntry(r));
    if (r.has_status) {
      resources.push_back({{"name", r.name + "/status"},
                           {"singularName", ""},
                           {"namespaced", r.namespaced},
                           {"kind", r.kind},
                           {"verbs", {"get", "patch", "update"}}});
    }
    if (r.name == "pods") {
      resources.push_back({{"name", "pods/log"},
                           {"singularName", ""},
                           {"namespaced", true},
                           {"kind", "Pod"},
                           {"verbs", {"get"}}});
    }
  }
  json list = {{"kind", "APIResourceList"},
               {"groupVersion", group.empty() ? version : group + "/" + version},
               {"resources", resources}};
  if (!group.empty()) list["apiVersion"] = "v1";
  return list;
}

json GroupEntry(const std::string& group) {
  json gv = {{"groupVersion", group + "/v1"}, {"version", "v1"}};
  return {{"name", group}, {"versions", json::array({gv})}, {"preferredVersion", gv}};
}

std::vector<std::string> Groups() {
  std::vector<std::string> groups;
  for (const ResourceInfo& r : AllResources()) {
    if (!r.group.empty() && std::find(groups.begin(), groups.end(), r.group) == groups.end()) {
      groups.push_back(r.group);
    }
  }
  return groups;
}

bool WantsTable(const Request& req) {
  auto accept = req.GetHeader("Accept");
  return accept && accept->find("as=Table") != std::string_view::npos;
}

// A parsed resource path.
struct Target {
  const ResourceInfo* resource = nullptr;
  std::string ns;
  std::string name;
  std::string sub;
};

struct ListQuery {
  LabelSelector labels;
  std::optional<FieldSelector> fields;
  bool Matches(const json& obj) const {
    const json* l = Find(obj, {"metadata", "labels"});
    return labels.Matches(l ? *l : json()) && (!fields || fields->Matches(obj));
  }
};

// The apiserver's RequestInfoFactory: the verb and the object a request names.
RequestInfo ResolveRequestInfo(const Request& req) {
  RequestInfo info;
  std::string method = req.method;
  for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  info.verb = method;
  std::vector<std::string> parts = http::SplitPath(req.path);
  if (parts.empty() || (parts[0] != "api" && parts[0] != "apis")) return info;
  size_t at = 0;
  if (parts[0] == "api" && parts.size() >= 2) {
    info.api_version = parts[1];
    at = 2;
  } else if (parts[0] == "apis" && parts.size() >= 3) {
    info.api_group = parts[1];
    info.api_version = parts[2];
    at = 3;
  }
  if (at == 0 || parts.size() <= at) return info;
  parts.erase(parts.begin(), parts.begin() + static_cast<long>(at));
  if (parts[0] == "namespaces" && parts.size() >= 2) {
    info.ns = parts[1];
    if (parts.size() >= 3) parts.erase(parts.begin(), parts.begin() + 2);
  }
  info.is_resource = true;
  info.resource = parts[0];
  if (parts.size() >= 2) info.name = parts[1];
  if (parts.size() >= 3) info.subresource = parts[2];
  bool collection = info.name.empty();
  if (method == "get") {
    auto watch = req.GetQuery("watch");
    info.verb = !collection ? "get" : (watch && ParseBool(*watch).value_or(false)) ? "watch" : "list";
  } else if (method == "post") {
    info.verb = "create";
  } else if (method == "put") {
    info.verb = "update";
  } else if (method == "delete") {
    info.verb = collection ? "deletecollection" : "delete";
  }
  return info;
}

// Records each request's answer in the audit log, then passes it on.
class AuditingResponder : public http::Responder::Impl {
 public:
  AuditingResponder(Responder inner, AuditLog& log, Request request, RequestInfo info)
      : inner_(std::move(inner)), log_(log), request_(std::move(request)), info_(std::move(info)),
        received_(std::chrono::system_clock::now()), start_(std::chrono::steady_clock::now()) {}
  void Send(Response response) override {
    Record("ResponseComplete", response.status);
    inner_.Send(std::move(response));
  }
  std::shared_ptr<http::StreamWriter> Stream(int status, std::vector<http::Header> headers) override {
    Record("ResponseStarted", status);
    return inner_.Stream(status, std::move(headers));
  }
  void Abort() override {
    Record("ResponseComplete", 0);
    inner_.Abort();
  }

 private:
  void Record(const std::string& stage, int code) {
    log_.Record(request_, info_, received_, std::chrono::steady_clock::now() - start_, stage, code);
  }
  Responder inner_;
  AuditLog& log_;
  Request request_;
  RequestInfo info_;
  SysTime received_;
  std::chrono::steady_clock::time_point start_;
};

// Holds a response for a fault rule's latency, on an Asio timer. A streamed response (watch,
// followed log) starts at once.
class DelayingResponder : public http::Responder::Impl,
                          public std::enable_shared_from_this<DelayingResponder> {
 public:
  DelayingResponder(net::io_context& io, Responder inner, std::chrono::milliseconds latency)
      : inner_(std::move(inner)), timer_(io), latency_(latency) {}
  void Send(Response response) override {
    Later([response = std::move(response)](const Responder& inner) mutable {
      inner.Send(std::move(response));
    });
  }
  std::shared_ptr<http::StreamWriter> Stream(int status,
                                             std::vector<http::Header> headers) override {
    return inner_.Stream(status, std::move(headers));
  }
  void Abort() override {
    Later([](const Responder& inner) { inner.Abort(); });
  }

 private:
  template <typename F>
  void Later(F answer) {
    timer_.expires_after(latency_);
    timer_.async_wait([self = shared_from_this(), answer = std::move(answer)](
                          boost::system::error_code) mutable { answer(self->inner_); });
  }
  Responder inner_;
  net::steady_timer timer_;
  std::chrono::milliseconds latency_;
};

// API priority and fairness's rejection: text/plain, Retry-After, before any decoding.
Response ThrottledResponse(int retry_after_seconds) {
  Response out = Response::Text(429, "Too many requests, please try again later.\n");
  out.SetHeader("Retry-After", std::to_string(retry_after_seconds));
  return out;
}

// Requests the rate limit does not count: health checks (APF's exempt "probes" flow schema),
// long-running ones (watches and followed logs, which the max-inflight filter exempts), and
// kubesim's own admin endpoints.
bool RateLimitExempt(const Request& req, const RequestInfo& info) {
  const std::string& path = req.path;
  for (std::string_view probe : {"/healthz", "/livez", "/readyz"}) {
    if (path == probe || path.starts_with(std::string(probe) + "/")) return true;
  }
  if (path.starts_with("/kubesim/")) return true;
  if (info.verb == "watch") return true;
  if (info.subresource == "log") {
    auto follow = req.GetQuery("follow");
    if (follow && ParseBool(*follow).value_or(false)) return true;
  }
  return false;
}

bool Mutating(const RequestInfo& info) {
  for (std::string_view verb :
       {"create", "update", "patch", "delete", "deletecollection", "post", "put"}) {
    if (info.verb == verb) return true;
  }
  return false;
}

// The strict decoding error of the apiserver's create and update handlers.
ApiError StrictDecodingError(const ResourceInfo& r, const std::vector<std::string>& unknown) {
  std::string message = r.kind + " in version \"" + r.version + "\" cannot be handled as a " + r.kind +
                        ": strict decoding error: ";
  for (size_t i = 0; i < unknown.size(); ++i) {
    message += (i ? ", " : "") + std::string("unknown field \"") + unknown[i] + "\"";
  }
  return BadRequest(message);
}

}  // namespace

struct ApiServer::Impl {
  Impl(net::io_context& io_context, Registry& reg, const Kubelet& k, ApiServerOptions& opts)
      : io(io_context), registry(reg), kubelet(k), options(opts) {}

  net::io_context& io;
  Registry& registry;
  const Kubelet& kubelet;
  ApiServerOptions& options;
  Faults faults;
  // The endWatch/expireWatch rule of the request being dispatched (Watch runs synchronously
  // inside Handle).
  std::optional<FaultRule> watch_fault;

  Store& store() { return registry.store(); }

  void Handle(Request req, Responder res);
  void Dispatch(Request& req, Responder& res);
  void HandleFaults(Request& req, Responder& res);
  void HandleNode(Request& req, Responder& res);
  void HandleResource(Request& req, Responder& res, const Target& t);
  ApiResult<ListQuery> ParseListQuery(const Request& req, const ResourceInfo& r);
  void List(Request& req, Responder& res, const Target& t);
  void Watch(Request& req, Responder& res, const Target& t);
  void Logs(Request& req, Responder& res, const Target& t);
  void DeleteCollection(Request& req, Responder& res, const Target& t);
  ApiResult<DeleteOptions> ParseDeleteOptions(const Request& req);
};

ApiServer::ApiServer(net::io_context& io, Registry& registry, const Kubelet& kubelet,
                     ApiServerOptions options)
    : options_(std::move(options)) {
  impl_ = std::make_unique<Impl>(io, registry, kubelet, options_);
}

ApiServer::~ApiServer() = default;

void ApiServer::Handle(Request request, Responder responder) {
  impl_->Handle(std::move(request), std::move(responder));
}

Response ApiServer::UnauthorizedResponse() { return ErrorResponse(Unauthorized()); }

Faults& ApiServer::faults() { return impl_->faults; }

void ApiServer::Impl::Handle(Request req, Responder res) {
  RequestInfo info = ResolveRequestInfo(req);
  if (options.audit != nullptr) {
    if (info.verb == "create" && info.name.empty()) {
      // The audit Event names the object being created, from the request body.
      json body = json::parse(req.body, nullptr, false);
      if (body.is_object()) info.name = Str(body, {"metadata", "name"});
    }
    Request slim;
    slim.target = req.target;
    slim.remote = req.remote;
    if (auto agent = req.GetHeader("User-Agent")) slim.headers.push_back({"User-Agent", std::string(*agent)});
    res = Responder(std::make_shared<AuditingResponder>(std::move(res), *options.audit,
                                                        std::move(slim), info));
  }
  if (req.path == "/kubesim/faults") return HandleFaults(req, res);
  if (req.path.starts_with("/kubesim/nodes/")) return HandleNode(req, res);
  // The rate limit comes first, as the APF filter runs before the request reaches a handler.
  if (!RateLimitExempt(req, info) &&
      !faults.Admit(Mutating(info),
                    options.now ? options.now() : std::chrono::system_clock::now())) {
    return res.Send(ThrottledResponse(1));
  }
  watch_fault.reset();
  if (info.is_resource) {
    if (std::optional<FaultRule> rule = faults.Match(info)) {
      if (rule->latency.count() > 0) {
        res = Responder(std::make_shared<DelayingResponder>(io, std::move(res), rule->latency));
      }
      switch (rule->action) {
        case FaultAction::kDrop:
          return res.Abort();
        case FaultAction::kThrottle:
          return res.Send(ThrottledResponse(rule->retry_after_seconds));
        case FaultAction::kEndWatch:
        case FaultAction::kExpireWatch:
          watch_fault = std::move(rule);
          break;
        case FaultAction::kDelay:
          break;
        default:
          return res.Send(ErrorResponse(FaultError(*rule)));
      }
    }
  }
  Dispatch(req, res);
}

void ApiServer::Impl::HandleFaults(Request& req, Responder& res) {
  if (req.method == "GET") return res.Send(JsonResponse(200, faults.ToJson()));
  if (req.method == "DELETE") {
    faults.Clear();
    return res.Send(JsonResponse(200, faults.ToJson()));
  }
  if (req.method != "POST" && req.method != "PUT") return res.Send(ErrorResponse(MethodNotAllowed()));
  json spec = json::parse(req.body, nullptr, false);
  if (spec.is_discarded()) return res.Send(ErrorResponse(BadRequest("faults: the body is not JSON")));
  auto set = faults.Set(spec);
  if (!set) return res.Send(ErrorResponse(set.error()));
  res.Send(JsonResponse(200, faults.ToJson()));
}

void ApiServer::Impl::HandleNode(Request& req, Responder& res) {
  // /kubesim/nodes/NAME/notready | ready
  std::vector<std::string> segs = http::SplitPath(req.path);
  if (segs.size() != 4 || (segs[3] != "notready" && segs[3] != "ready")) {
    return res.Send(ErrorResponse(ResourceNotFoundPath()));
  }
  if (req.method != "POST") return res.Send(ErrorResponse(MethodNotAllowed()));
  if (options.nodes == nullptr) {
    return res.Send(
        ErrorResponse(ServiceUnavailable("the node lifecycle controller is not running")));
  }
  auto node = segs[3] == "notready" ? options.nodes->SetNotReady(segs[2])
                                    : options.nodes->SetReady(segs[2]);
  if (!node) return res.Send(ErrorResponse(node.error()));
  res.Send(JsonResponse(200, **node));
}

void ApiServer::Impl::Dispatch(Request& req, Responder& res) {
  const std::string& path = req.path;
  std::vector<std::string> segs = http::SplitPath(path);
  if (path == "/version" || path == "/version/") {
    return res.Send(JsonResponse(200, {{"major", "1"},
                                       {"minor", "32"},
                                       {"emulationMajor", "1"},
                                       {"emulationMinor", "32"},
                                       {"gitVersion", "v1.32.0-kubesim"},
                                       {"gitCommit", "0000000000000000000000000000000000000000"},
                                       {"gitTreeState", "clean"},
                                       {"buildDate", "2026-01-01T00:00:00Z"},
                                       {"goVersion", "go1.23.4"},
                                       {"compiler", "gc"},
                                       {"platform", "linux/amd64"}}));
  }
  if (path == "/healthz" || path == "/livez" || path == "/readyz") {
    return res.Send(Response::Text(200, "ok"));
  }
  if (req.method == "GET" && (path == "/openapi/v3" || path == "/openapi/v3/")) {
    return res.Send(JsonResponse(200, OpenApiV3Index()));
  }
  if (req.method == "GET" && path.starts_with("/openapi/v3/")) {
    if (auto doc = OpenApiV3Document(std::string_view(path).substr(12))) {
      return res.Send(JsonResponse(200, *doc));
    }
  }
  if (segs.empty() || (segs[0] != "api" && segs[0] != "apis")) {
    return res.Send(Response::Text(404, "404 page not found\n"));
  }
  if (req.method == "GET" && segs.size() == 1 && segs[0] == "api") {
    return res.Send(JsonResponse(
        200, {{"kind", "APIVersions"},
              {"versions", {"v1"}},
              {"serverAddressByClientCIDRs",
               {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", options.advertise_address}}}}}));
  }
  if (req.method == "GET" && segs.size() == 1 && segs[0] == "apis") {
    json groups = json::array();
    for (const std::string& g : Groups()) groups.push_back(GroupEntry(g));
    return res.Send(JsonResponse(200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}}));
  }
  std::string group;
  std::string version;
  size_t rest_at;
  if (segs[0] == "api") {
    version = segs.size() > 1 ? segs[1] : "";
    rest_at = 2;
  } else {
    group = segs.size() > 1 ? segs[1] : "";
    version = segs.size() > 2 ? segs[2] : "";
    rest_at = 3;
    auto groups = Groups();
    if (std::find(groups.begin(), groups.end(), group) == groups.end()) {
      return res.Send(Response::Text(404, "404 page not found\n"));
    }
    if (segs.size() == 2 && req.method == "GET") {
      json g = GroupEntry(group);
      g["kind"] = "APIGroup";
      g["apiVersion"] = "v1";
      return res.Send(JsonResponse(200, g));
    }
  }
  if (version != "v1") return res.Send(Response::Text(404, "404 page not found\n"));
  std::vector<std::string> rest(segs.begin() + static_cast<long>(std::min(rest_at, segs.size())), segs.end());
  if (rest.empty()) {
    if (req.method != "GET") return res.Send(ErrorResponse(MethodNotAllowed()));
    return res.Send(JsonResponse(200, ResourceList(group, version)));
  }
  Target t;
  if (rest[0] == "namespaces" && rest.size() >= 3 && FindResource(group, version, rest[2]) &&
      FindResource(group, version, rest[2])->namespaced) {
    t.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  t.resource = FindResource(group, version, rest[0]);
  if (t.resource == nullptr || rest.size() > 3) return res.Send(ErrorResponse(ResourceNotFoundPath()));
  if (rest.size() >= 2) t.name = rest[1];
  if (rest.size() == 3) t.sub = rest[2];
  if (!t.resource->namespaced && !t.ns.empty()) return res.Send(ErrorResponse(ResourceNotFoundPath()));
  if (t.resource->namespaced && t.ns.empty() && !t.name.empty()) {
    return res.Send(ErrorResponse(ResourceNotFoundPath()));
  }
  if (!t.sub.empty() && !(t.sub == "status" && t.resource->has_status) &&
      !(t.sub == "log" && t.resource->name == "pods")) {
    return res.Send(ErrorResponse(ResourceNotFoundPath()));
  }
  HandleResource(req, res, t);
}

ApiResult<ListQuery> ApiServer::Impl::ParseListQuery(const Request& req, const ResourceInfo& r) {
  ListQuery q;
  if (auto l = req.GetQuery("labelSelector")) {
    auto parsed = LabelSelector::Parse(*l);
    if (!parsed) return Fail(parsed.error());
    q.labels = std::move(*parsed);
  }
  if (auto f = req.GetQuery("fieldSelector")) {
    auto parsed = FieldSelector::Parse(*f, r);
    if (!parsed) return Fail(parsed.error());
    q.fields = std::move(*parsed);
  }
  return q;
}

ApiResult<DeleteOptions> ApiServer::Impl::ParseDeleteOptions(const Request& req) {
  DeleteOptions o;
  if (!req.body.empty()) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Fail(BadRequest("the body of the request was not valid DeleteOptions"));
    }
    if (body.contains("propagationPolicy") && body["propagationPolicy"].is_string()) {
      o.propagation = body["propagationPolicy"].get<std::string>();
    }
    if (body.contains("orphanDependents") && body["orphanDependents"].is_boolean()) {
      o.propagation = body["orphanDependents"].get<bool>() ? "Orphan" : "Background";
    }
    if (body.contains("gracePeriodSeconds") && body["gracePeriodSeconds"].is_number_integer()) {
      o.grace_period_seconds = body["gracePeriodSeconds"].get<int64_t>();
    }
    if (const json* p = Find(body, {"preconditions"}); p && p->is_object()) {
      if (p->contains("uid") && (*p)["uid"].is_string()) o.precondition_uid = (*p)["uid"].get<std::string>();
      if (p->contains("resourceVersion") && (*p)["resourceVersion"].is_string()) {
        o.precondition_rv = (*p)["resourceVersion"].get<std::string>();
      }
    }
  }
  if (auto p = req.GetQuery("propagationPolicy")) o.propagation = std::string(*p);
  if (auto g = req.GetQuery("gracePeriodSeconds")) {
    try {
      o.grace_period_seconds = std::stoll(std::string(*g));
    } catch (const std::exception&) {
      return Fail(BadRequest("invalid gracePeriodSeconds: \"" + std::string(*g) + "\""));
    }
  }
  return o;
}

void ApiServer::Impl::HandleResource(Request& req, Responder& res, const Target& t) {
  const ResourceInfo& r = *t.resource;
  const std::string& m = req.method;
  std::vector<std::string> warnings;
  auto send_object = [&](int code, const ObjectPtr& obj) {
    if (WantsTable(req) && code == 200 && req.method == "GET") {
      return res.Send(JsonResponse(200, ToTable(r, {obj}, Str(*obj, {"metadata", "resourceVersion"}))));
    }
    Response out = JsonResponse(code, *obj);
    for (const std::string& w : warnings) out.headers.push_back({"Warning", w});
    res.Send(std::move(out));
  };
  // fieldValidation: the apiserver drops fields its schema does not know; Strict rejects the
  // object instead, Warn (the default) says so in Warning headers, Ignore says nothing.
  auto validate_fields = [&](json& body) -> ApiResult<bool> {
    std::vector<std::string> unknown = PruneUnknownFields(r, body);
    if (unknown.empty()) return true;
    std::string_view mode = req.GetQuery("fieldValidation").value_or("Warn");
    if (mode == "Strict") return Fail(StrictDecodingError(r, unknown));
    if (mode != "Ignore") {
      for (const std::string& f : unknown) warnings.push_back("299 - \"unknown field \\\"" + f + "\\\"\"");
    }
    return true;
  };
  auto parse_body = [&]() -> ApiResult<json> {
    // Only JSON bodies are understood. Protobuf (what typed client-go clients such as
    // `kubectl create job` send) gets the apiserver's 415 for an unknown format.
    std::string_view type = req.GetHeader("Content-Type").value_or("application/json");
    if (type.find("json") == std::string_view::npos) {
      return Fail(ApiError{415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json",
                           {}});
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      return Fail(BadRequest("the object provided is unrecognized (must be of type " + r.kind +
                             "): couldn't get version/kind; json parse error"));
    }
    return body;
  };

  if (t.name.empty()) {
    if (m == "GET") {
      auto watch = req.GetQuery("watch");
      if (watch && ParseBool(*watch).value_or(false)) return Watch(req, res, t);
      return List(req, res, t);
    }
    if (m == "POST") {
      if (r.namespaced && t.ns.empty()) return res.Send(ErrorResponse(MethodNotAllowed()));
      auto body = parse_body();
      if (!body) return res.Send(ErrorResponse(body.error()));
      if (auto ok = validate_fields(*body); !ok) return res.Send(ErrorResponse(ok.error()));
      auto created = registry.Create(r, t.ns, std::move(*body));
      if (!created) return res.Send(ErrorResponse(created.error()));
      return send_object(201, *created);
    }
    if (m == "DELETE") return DeleteCollection(req, res, t);
    return res.Send(ErrorResponse(MethodNotAllowed()));
  }

  if (t.sub == "log") {
    if (m != "GET") return res.Send(ErrorResponse(MethodNotAllowed()));
    return Logs(req, res, t);
  }
  bool status = t.sub == "status";
  if (m == "GET") {
    ObjectPtr obj = store().Get(r, t.ns, t.name);
    if (!obj) return res.Send(ErrorResponse(NotFound(r, t.name)));
    return send_object(200, obj);
  }
  if (m == "PUT") {
    auto body = parse_body();
    if (!body) return res.Send(ErrorResponse(body.error()));
    if (auto ok = validate_fields(*body); !ok) return res.Send(ErrorResponse(ok.error()));
    auto updated = registry.Update(r, t.ns, t.name, std::move(*body), status);
    if (!updated) return res.Send(ErrorResponse(updated.error()));
    return send_object(200, *updated);
  }
  if (m == "PATCH") {
    ObjectPtr current = store().Get(r, t.ns, t.name);
    if (!current) return res.Send(ErrorResponse(NotFound(r, t.name)));
    std::string content_type(req.GetHeader("Content-Type").value_or(""));
    auto patched = ApplyPatch(*current, content_type, req.body);
    if (!patched) return res.Send(ErrorResponse(patched.error()));
    std::string rv = Str(*patched, {"metadata", "resourceVersion"});
    if (!rv.empty() && rv != Str(*current, {"metadata", "resourceVersion"})) {
      return res.Send(ErrorResponse(StaleConflict(r, t.name)));
    }
    (*patched)["metadata"]["resourceVersion"] = Str(*current, {"metadata", "resourceVersion"});
    auto updated = registry.Update(r, t.ns, t.name, std::move(*patched), status);
    if (!updated) return res.Send(ErrorResponse(updated.error()));
    return send_object(200, *updated);
  }
  if (m == "DELETE" && !status) {
    auto options = ParseDeleteOptions(req);
    if (!options) return res.Send(ErrorResponse(options.error()));
    auto deleted = registry.Delete(r, t.ns, t.name, *options);
    if (!deleted) return res.Send(ErrorResponse(deleted.error()));
    bool return_object = r.name == "pods" || r.name == "namespaces";
    Response out;
    if (deleted->removed && !return_object) {
      json details = {{"name", t.name}, {"kind", r.name}, {"uid", Str(*deleted->object, {"metadata", "uid"})}};
      if (!r.group.empty()) details["group"] = r.group;
      out = JsonResponse(200, {{"kind", "Status"},
                               {"apiVersion", "v1"},
                               {"metadata", json::object()},
                               {"status", "Success"},
                               {"details", details}});
    } else {
      out = JsonResponse(200, *deleted->object);
    }
    for (const std::string& w : deleted->warnings) out.headers.push_back({"Warning", w});
    return res.Send(std::move(out));
  }
  res.Send(ErrorResponse(MethodNotAllowed()));
}

void ApiServer::Impl::List(Request& req, Responder& res, const Target& t) {
  const ResourceInfo& r = *t.resource;
  auto query = ParseListQuery(req, r);
  if (!query) return res.Send(ErrorResponse(query.error()));
  int64_t limit = 0;
  if (auto l = req.GetQuery("limit")) {
    try {
      limit = std::stoll(std::string(*l));
    } catch (const std::exception&) {
      return res.Send(ErrorResponse(BadRequest("invalid limit: \"" + std::string(*l) + "\"")));
    }
  }
  std::string after;
  uint64_t list_rv = store().rv();
  if (auto c = req.GetQuery("continue"); c && !c->empty()) {
    auto decoded = Unbase64(*c);
    json token = decoded ? json::parse(*decoded, nullptr, false) : json();
    if (!token.is_object() || !token.contains("start") || !token["start"].is_string() ||
        !token.contains("rv") || !token["rv"].is_number_unsigned()) {
      return res.Send(ErrorResponse(BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")));
    }
    after = token["start"].get<std::string>();
    list_rv = token["rv"].get<uint64_t>();
  }
  std::vector<ObjectPtr> all = store().List(r, t.ns, after);
  std::vector<ObjectPtr> items;
  std::string next;
  int64_t remaining = 0;
  for (const ObjectPtr& obj : all) {
    if (!query->Matches(*obj)) continue;
    if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) {
      ++remaining;
      continue;
    }
    items.push_back(obj);
  }
  json meta = {{"resourceVersion", std::to_string(list_rv)}};
  if (remaining > 0 && !items.empty()) {
    const json& last = (*items.back())["metadata"];
    std::string key = Store::Key(r.namespaced ? last.value("namespace", "") : "", last.value("name", ""));
    json token = {{"v", "meta.k8s.io/v1"}, {"rv", list_rv}, {"start", key}};
    meta["continue"] = Base64(token.dump());
    meta["remainingItemCount"] = remaining;
  }
  if (WantsTable(req)) {
    json table = ToTable(r, items, std::to_string(list_rv));
    table["metadata"] = meta;
    return res.Send(JsonResponse(200, table));
  }
  json list = {{"kind", r.kind + "List"}, {"apiVersion", r.ApiVersion()}, {"metadata", meta},
               {"items", json::array()}};
  for (const ObjectPtr& obj : items) list["items"].push_back(*obj);
  res.Send(JsonResponse(200, list));
}

namespace {

// One open watch: filters store events into the stream until the client goes, the timeout
// passes or the server stops.
class WatchStream : public std::enable_shared_from_this<WatchStream> {
 public:
  WatchStream(net::io_context& io, Store& store, const ResourceInfo& r, std::string ns,
              ListQuery query, bool table, std::shared_ptr<http::StreamWriter> writer)
      : store_(store), resource_(r), ns_(std::move(ns)), query_(std::move(query)), table_(table),
        writer_(std::move(writer)), timeout_(io), bookmark_(io) {}

  // `timeout_ms`: the stream ends cleanly after that many milliseconds (timeoutSeconds, or an
  // endWatch rule's afterSeconds); never when negative. (A plain number: GCC 12 at -O2 reports a
  // false maybe-uninitialized for an optional duration here.) `end_after`: it ends cleanly
  // after that many events (an endWatch rule).
  void Start(const std::vector<std::pair<EventType, ObjectPtr>>& initial, int64_t timeout_ms,
             std::optional<std::chrono::milliseconds> bookmarks, std::optional<int64_t> end_after) {
    end_after_ = end_after;
    if (end_after_ && *end_after_ <= 0) return writer_->Finish();
    for (const auto& [type, obj] : initial) {
      Send(type, *obj);
      if (stopped_) return;
    }
    auto weak = weak_from_this();
    listener_ = store_.Subscribe([weak](const StoreEvent& e) {
      if (auto self = weak.lock()) self->OnEvent(e);
    });
    writer_->OnClose([weak] {
      if (auto self = weak.lock()) self->Stop();
    });
    if (timeout_ms >= 0) {
      timeout_.expires_after(std::chrono::milliseconds(timeout_ms));
      timeout_.async_wait([weak](boost::system::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->writer_->Finish();
      });
    }
    if (bookmarks) {
      bookmark_interval_ = *bookmarks;
      ScheduleBookmark();
    }
    // The stream keeps itself alive through its writer's close callback.
    self_ = shared_from_this();
  }

 private:
  void ScheduleBookmark() {
    bookmark_.expires_after(bookmark_interval_);
    bookmark_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self || self->stopped_) return;
      json obj = {{"kind", self->resource_.kind},
                  {"apiVersion", self->resource_.ApiVersion()},
                  {"metadata", {{"resourceVersion", std::to_string(self->store_.rv())}}}};
      self->Write("BOOKMARK", obj);
      self->ScheduleBookmark();
    });
  }

  void OnEvent(const StoreEvent& e) {
    if (e.resource != &resource_ || stopped_) return;
    const json& obj = *e.object;
    if (resource_.namespaced && !ns_.empty() && Str(obj, {"metadata", "namespace"}) != ns_) return;
    bool now = query_.Matches(obj);
    bool before = e.old && query_.Matches(*e.old);
    switch (e.type) {
      case EventType::kAdded:
        if (now) Send(EventType::kAdded, obj);
        break;
      case EventType::kModified:
        if (now && before) Send(EventType::kModified, obj);
        else if (now) Send(EventType::kAdded, obj);
        else if (before) Send(EventType::kDeleted, obj);
        break;
      case EventType::kDeleted:
        if (before || now) Send(EventType::kDeleted, obj);
        break;
    }
  }

  void Send(EventType type, const json& obj) {
    if (stopped_) return;
    if (table_) {
      Write(EventTypeName(type), ToTable(resource_, {std::make_shared<const json>(obj)},
                                         Str(obj, {"metadata", "resourceVersion"})));
    } else {
      Write(EventTypeName(type), obj);
    }
    if (end_after_ && ++sent_ >= *end_after_) {
      writer_->Finish();
      Stop();
    }
  }

  void Write(std::string_view type, const json& obj) {
    std::string line = "{\"type\":\"" + std::string(type) + "\",\"object\":" + obj.dump() + "}\n";
    if (!writer_->Write(std::move(line))) Stop();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    store_.Unsubscribe(listener_);
    timeout_.cancel();
    bookmark_.cancel();
    auto keep = std::move(self_);  // released when this returns
  }

  Store& store_;
  const ResourceInfo& resource_;
  std::string ns_;
  ListQuery query_;
  bool table_;
  std::shared_ptr<http::StreamWriter> writer_;
  net::steady_timer timeout_;
  net::steady_timer bookmark_;
  std::chrono::milliseconds bookmark_interval_{0};
  uint64_t listener_ = 0;
  bool stopped_ = false;
  std::optional<int64_t> end_after_;
  int64_t sent_ = 0;
  std::shared_ptr<WatchStream> self_;
};

}  // namespace

void ApiServer::Impl::Watch(Request& req, Responder& res, const Target& t) {
  const ResourceInfo& r = *t.resource;
  auto query = ParseListQuery(req, r);
  if (!query) return res.Send(ErrorResponse(query.error()));
  std::optional<std::chrono::seconds> timeout;
  if (auto s = req.GetQuery("timeoutSeconds")) {
    try {
      timeout = std::chrono::seconds(std::stoll(std::string(*s)));
    } catch (const std::exception&) {
      return res.Send(ErrorResponse(BadRequest("invalid timeoutSeconds: \"" + std::string(*s) + "\"")));
    }
  }
  std::optional<std::chrono::milliseconds> bookmarks;
  if (auto b = req.GetQuery("allowWatchBookmarks"); b && ParseBool(*b).value_or(false)) {
    bookmarks = options.bookmark_interval;
  }
  std::string rv_text(req.GetQuery("resourceVersion").value_or(""));
  std::vector<std::pair<EventType, ObjectPtr>> initial;
  std::optional<ApiError> error;
  if (rv_text.empty() || rv_text == "0") {
    for (const ObjectPtr& obj : store().List(r, t.ns)) {
      if (query->Matches(*obj)) initial.emplace_back(EventType::kAdded, obj);
    }
  } else {
    uint64_t rv = 0;
    try {
      size_t used = 0;
      rv = std::stoull(rv_text, &used);
      if (used != rv_text.size()) throw std::invalid_argument(rv_text);
    } catch (const std::exception&) {
      return res.Send(ErrorResponse(BadRequest("resourceVersion: Invalid value: \"" + rv_text +
                                               "\": strconv.ParseUint: parsing \"" + rv_text +
                                               "\": invalid syntax")));
    }
    std::vector<const StoreEvent*> events;
    uint64_t oldest = 0;
    if (!store().EventsSince(rv, events, oldest)) {
      error = Expired("too old resource version: " + std::to_string(rv) + " (" +
                      std::to_string(oldest) + ")");
    } else {
      for (const StoreEvent* e : events) {
        if (e->resource != &r) continue;
        const json& obj = *e->object;
        if (r.namespaced && !t.ns.empty() && Str(obj, {"metadata", "namespace"}) != t.ns) continue;
        bool now = query->Matches(obj);
        bool before = e->old && query->Matches(*e->old);
        EventType type = e->type;
        if (type == EventType::kModified && !before) type = EventType::kAdded;
        if (type == EventType::kModified && !now) type = EventType::kDeleted;
        if (now || before) initial.emplace_back(type, e->object);
      }
    }
  }
  std::optional<int64_t> end_after;
  if (watch_fault && watch_fault->action == FaultAction::kExpireWatch) {
    // As after an etcd compaction: the requested revision is gone.
    error = Expired("too old resource version: " + (rv_text.empty() ? "0" : rv_text) + " (" +
                    std::to_string(store().rv()) + ")");
  }
  int64_t end_in_ms = timeout ? static_cast<int64_t>(timeout->count()) * 1000 : -1;  // -1: no end
  if (watch_fault && watch_fault->action == FaultAction::kEndWatch) {
    // Neither afterEvents nor afterSeconds: the stream ends at once.
    end_after = watch_fault->after_events;
    if (!end_after && !watch_fault->after_time) end_after = 0;
    if (watch_fault->after_time) {
      const int64_t after_ms = static_cast<int64_t>(watch_fault->after_time->count());
      if (end_in_ms < 0 || after_ms < end_in_ms) end_in_ms = after_ms;
    }
  }
  auto writer = res.Stream(200, {{"Content-Type", "application/json"},
                                 {"Cache-Control", "no-cache, private"}});
  if (!writer) return;
  if (error) {
    writer->Write("{\"type\":\"ERROR\",\"object\":" + error->ToStatus().dump() + "}\n");
    writer->Finish();
    return;
  }
  auto stream = std::make_shared<WatchStream>(io, store(), r, t.ns, std::move(*query),
                                              WantsTable(req), writer);
  stream->Start(initial, end_in_ms, bookmarks, end_after);
}

void ApiServer::Impl::DeleteCollection(Request& req, Responder& res, const Target& t) {
  const ResourceInfo& r = *t.resource;
  auto query = ParseListQuery(req, r);
  if (!query) return res.Send(ErrorResponse(query.error()));
  auto options = ParseDeleteOptions(req);
  if (!options) return res.Send(ErrorResponse(options.error()));
  json list = {{"kind", r.kind + "List"}, {"apiVersion", r.ApiVersion()}, {"metadata", json::object()},
               {"items", json::array()}};
  std::vector<std::string> warnings;
  for (const ObjectPtr& obj : store().List(r, t.ns)) {
    if (!query->Matches(*obj)) continue;
    auto deleted = registry.Delete(r, Str(*obj, {"metadata", "namespace"}), Str(*obj, {"metadata", "name"}), *options);
    if (deleted) {
      list["items"].push_back(*deleted->object);
      for (auto& w : deleted->warnings) {
        if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
      }
    }
  }
  list["metadata"]["resourceVersion"] = std::to_string(store().rv());
  Response out = JsonResponse(200, list);
  for (const std::string& w : warnings) out.headers.push_back({"Warning", w});
  res.Send(std::move(out));
}

namespace {

// Writes the log lines after the filters of pods/log.
std::string FormatLog(const ContainerLog& log, bool timestamps, std::optional<int64_t> tail,
                      std::optional<int64_t> limit_bytes, std::optional<SysTime> since) {
  size_t start = 0;
  if (tail && *tail >= 0 && static_cast<size_t>(*tail) < log.lines.size()) {
    start = log.lines.size() - static_cast<size_t>(*tail);
  }
  std::string out;
  for (size_t i = start; i < log.lines.size(); ++i) {
    if (since && log.lines[i].first < *since) continue;
    if (timestamps) out += Rfc3339Nano(log.lines[i].first) + " ";
    out += log.lines[i].second + "\n";
  }
  if (limit_bytes && *limit_bytes >= 0 && out.size() > static_cast<size_t>(*limit_bytes)) {
    out.resize(static_cast<size_t>(*limit_bytes));
  }
  return out;
}

}  // namespace

void ApiServer::Impl::Logs(Request& req, Responder& res, const Target& t) {
  ObjectPtr pod = store().Get(Pods(), t.ns, t.name);
  if (!pod) return res.Send(ErrorResponse(NotFound(Pods(), t.name)));
  std::string container(req.GetQuery("container").value_or(""));
  const json* containers = Find(*pod, {"spec", "containers"});
  std::vector<std::string> names;
  if (containers && containers->is_array()) {
    for (const json& c : *containers) names.push_back(c.value("name", ""));
  }
  if (container.empty()) {
    if (names.size() != 1) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
      return res.Send(ErrorResponse(BadRequest("a container name must be specified for pod " +
                                               t.name + ", choose one of: [" + list + "]")));
    }
    container = names[0];
  } else if (std::find(names.begin(), names.end(), container) == names.end()) {
    return res.Send(ErrorResponse(BadRequest("container " + container + " is not valid for pod " + t.name)));
  }
  if (auto p = req.GetQuery("previous"); p && ParseBool(*p).value_or(false)) {
    return res.Send(ErrorResponse(BadRequest("previous terminated container \"" + container +
                                             "\" in pod \"" + t.name + "\" not found")));
  }
  const ContainerLog* log = kubelet.Log(Str(*pod, {"metadata", "uid"}), container);
  if (log == nullptr) {
    return res.Send(ErrorResponse(BadRequest("container \"" + container + "\" in pod \"" + t.name +
                                             "\" is waiting to start: ContainerCreating")));
  }
  auto number = [&](const char* key) -> std::optional<int64_t> {
    auto v = req.GetQuery(key);
    if (!v) return std::nullopt;
    try {
      return std::stoll(std::string(*v));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  bool timestamps = ParseBool(req.GetQuery("timestamps").value_or("false")).value_or(false);
  std::optional<SysTime> since;
  if (auto s = number("sinceSeconds")) since = std::chrono::system_clock::now() - std::chrono::seconds(*s);
  if (auto s = req.GetQuery("sinceTime")) since = ParseRfc3339(*s);
  std::string text = FormatLog(*log, timestamps, number("tailLines"), number("limitBytes"), since);
  bool follow = ParseBool(req.GetQuery("follow").value_or("false")).value_or(false);
  auto running = [container](const json& p) {
    const json* statuses = Find(p, {"status", "containerStatuses"});
    if (!statuses || !statuses->is_array()) return false;
    for (const json& s : *statuses) {
      if (s.value("name", "") == container) return Find(s, {"state", "running"}) != nullptr;
    }
    return false;
  };
  if (!follow || !running(*pod)) {
    return res.Send(Response::Text(200, std::move(text)));
  }
  // Follow: the lines written so far, then each line as the container writes it, until it stops
  // running (or the pod goes away). limitBytes bounds the whole stream, as in the kubelet.
  auto writer = res.Stream(200, {{"Content-Type", "text/plain"}});
  if (!writer) return;
  std::optional<int64_t> limit = number("limitBytes");
  auto budget = std::make_shared<std::optional<int64_t>>();
  if (limit && *limit >= 0) *budget = *limit - static_cast<int64_t>(text.size());
  writer->Write(std::move(text));
  if (*budget && **budget <= 0) return writer->Finish();
  std::string uid = Str(*pod, {"metadata", "uid"});
  auto sent = std::make_shared<size_t>(log->lines.size());
  const Kubelet* k = &kubelet;
  // Writes the lines added since; false once limitBytes is used up.
  auto flush = [k, uid, container, writer, sent, budget, timestamps] {
    const ContainerLog* l = k->Log(uid, container);
    if (l == nullptr) return true;
    std::string more;
    for (; *sent < l->lines.size(); ++*sent) {
      if (timestamps) more += Rfc3339Nano(l->lines[*sent].first) + " ";
      more += l->lines[*sent].second + "\n";
    }
    if (*budget) {
      if (static_cast<int64_t>(more.size()) > **budget) more.resize(static_cast<size_t>(**budget));
      **budget -= static_cast<int64_t>(more.size());
    }
    if (!more.empty()) writer->Write(std::move(more));
    return !*budget || **budget > 0;
  };
  auto store_id = std::make_shared<uint64_t>(0);
  auto log_id = std::make_shared<int>(0);
  Store& s = store();
  auto stop = [&s, k, store_id, log_id, writer] {
    writer->Finish();
    s.Unsubscribe(*store_id);
    k->RemoveLogListener(*log_id);
  };
  *log_id = kubelet.AddLogListener([uid, flush, stop](const std::string& pod_uid) {
    if (pod_uid == uid && !flush()) stop();
  });
  *store_id = s.Subscribe([uid, running, flush, stop](const StoreEvent& e) {
    if (e.resource != &Pods() || Str(*e.object, {"metadata", "uid"}) != uid) return;
    if (e.type == EventType::kDeleted || !running(*e.object)) {
      flush();
      stop();
    }
  });
  writer->OnClose([&s, k, store_id, log_id] {
    s.Unsubscribe(*store_id);
    k->RemoveLogListener(*log_id);
  });
}

}  // namespace kiln::kubesim
