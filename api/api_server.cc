#include "api/api_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "api/render_cache.h"
#include "api/workflow_json.h"
#include "dag/parse.h"
#include "executor/kubernetes_job.h"
#include "kube/client.h"
#include "dag/validate.h"
#include "base/strings.h"
#include "http/router.h"

namespace kiln::api {

namespace {

using http::Request;
using http::Responder;
using http::Response;
using Json = nlohmann::json;

// A live pod log line longer than this is sent in pieces (bounds the buffer of a followed log).
constexpr size_t kMaxLiveLine = 64 << 10;

// gRPC codes, as Argo Server's errors carry them.
int GrpcCode(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return 3;
    case Code::kNotFound: return 5;
    case Code::kAlreadyExists: return 6;
    case Code::kFailedPrecondition: return 9;
    case Code::kResourceExhausted: return 8;
    case Code::kUnavailable: return 14;
    default: return 13;
  }
}

int HttpStatus(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kFailedPrecondition: return 409;
    case Code::kResourceExhausted: return 413;
    case Code::kUnavailable: return 503;
    default: return 500;
  }
}

Response ErrorJson(int status, int grpc, std::string message, Json details = nullptr) {
  Json body = {{"code", grpc}, {"message", std::move(message)}};
  if (!details.is_null()) body["details"] = std::move(details);
  return Response::Json(status, body.dump() + "\n");
}

Response ErrorOf(const Error& e, Json details = nullptr) {
  return ErrorJson(HttpStatus(e.code()), GrpcCode(e.code()), e.message(), std::move(details));
}

Json ProblemsJson(const std::vector<dag::Diagnostic>& problems) {
  Json out = Json::array();
  for (const dag::Diagnostic& d : problems) {
    out.push_back({{"file", d.file},
                   {"line", d.loc.line},
                   {"column", d.loc.column},
                   {"field", d.path},
                   {"message", d.message},
                   {"severity", d.severity == dag::Severity::kError ? "error" : "warning"}});
  }
  return out;
}

Response Ok(const Json& body) { return Response::Json(200, body.dump() + "\n"); }

Response Ok(RenderCache::Body body) {
  Response r = Response::Json(200, {});
  r.shared_body = std::move(body);
  return r;
}

// "k=v" pairs of Argo's submitOptions.parameters and of label strings "a=b,c=d".
Result<std::map<std::string, std::string>> Pairs(const Json& list, const std::string& field) {
  std::map<std::string, std::string> out;
  auto add = [&](const std::string& p) -> Result<void> {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) return MakeError(Code::kInvalidArgument, field + ": \"" + p + "\" is not name=value");
    out[p.substr(0, eq)] = p.substr(eq + 1);
    return {};
  };
  if (list.is_string()) {
    std::string text = list.get<std::string>();
    for (size_t start = 0; start <= text.size();) {
      size_t comma = text.find(',', start);
      std::string p(Trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (!p.empty()) {
        if (auto ok = add(p); !ok) return std::unexpected(ok.error());
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (list.is_array()) {
    for (const Json& p : list) {
      if (!p.is_string()) return MakeError(Code::kInvalidArgument, field + ": expected strings \"name=value\"");
      if (auto ok = add(p.get<std::string>()); !ok) return std::unexpected(ok.error());
    }
  } else if (!list.is_null()) {
    return MakeError(Code::kInvalidArgument, field + ": expected a list of \"name=value\"");
  }
  return out;
}

std::string RouteOf(const Request& r) {
  // A low-cardinality name for metrics: the path with namespaces and names replaced.
  std::vector<std::string> seg = http::SplitPath(r.path);
  if (seg.size() >= 3 && seg[0] == "api" && seg[1] == "v1") {
    std::string out = "/api/v1/" + seg[2];
    if (seg.size() > 3) out += "/{ns}";
    if (seg.size() > 4) out += seg[4] == "lint" || seg[4] == "submit" ? "/" + seg[4] : "/{name}";
    if (seg.size() > 5) out += "/" + seg[5];
    return out;
  }
  if (r.path == "/healthz" || r.path == "/readyz" || r.path == "/metrics") return r.path;
  return "other";
}

}  // namespace

struct ApiServer::Impl {
  boost::asio::io_context& io;
  Engine& engine;
  store::Store& store;
  Metrics& metrics;
  ApiServerOptions options;
  boost::asio::thread_pool pool;  // renders watch events
  RenderCache cache;
  std::unique_ptr<http::Server> server;
  std::atomic<bool> stopping{false};
  // Open streams (watches, followed logs), ended by Stop.
  std::vector<std::weak_ptr<http::StreamWriter>> streams;

  Counter& requests;
  Histogram& latency;

  Impl(boost::asio::io_context& io, Engine& engine, store::Store& store, Metrics& metrics, ApiServerOptions options)
      : io(io),
        engine(engine),
        store(store),
        metrics(metrics),
        options(std::move(options)),
        pool(2),
        cache(this->options.render_cache_bytes),
        requests(metrics.Counter("kiln_api_requests_total", "API requests answered, by route, method and status",
                                 {"route", "method", "code"})),
        latency(metrics.Histogram("kiln_api_request_duration_seconds", "Time to answer an API request, by route",
                                  {"route"}, {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})) {}

  // Answers a read where it arrived, on an HTTP thread: the store is thread-safe and the
  // rendering is pure.
  static void Read(const Responder& responder, const std::function<Response()>& work) {
    Response r;
    try {
      r = work();
    } catch (const std::exception& e) {
      r = ErrorJson(500, 13, std::string("internal error: ") + e.what());
    }
    responder.Send(std::move(r));
  }

  // A handler that runs `handler` on the io_context thread, where the engine lives: every
  // request that submits, changes or follows a workflow.
  http::Handler OnEngine(http::Handler handler) {
    return [this, handler = std::move(handler)](Request r, Responder out) {
      boost::asio::post(io, [handler, r = std::move(r), out = std::move(out)]() mutable {
        handler(std::move(r), std::move(out));
      });
    };
  }

  // ---- lookups ------------------------------------------------------------------------------

  Result<store::WorkflowRecord> Find(const std::string& ns, const std::string& name) {
    auto w = store.FindWorkflow(ns, name);
    if (!w) return std::unexpected(w.error());
    if (!*w) {
      return MakeError(Code::kNotFound, "workflow \"" + name + "\" not found in namespace \"" + ns + "\"");
    }
    return **w;
  }

  Result<WorkflowRows> Rows(store::WorkflowRecord w) {
    WorkflowRows rows;
    auto nodes = store.ListNodes(w.uid);
    if (!nodes) return std::unexpected(nodes.error());
    auto params = store.ListParameters(w.uid);
    if (!params) return std::unexpected(params.error());
    auto artifacts = store.ListArtifacts(w.uid);
    if (!artifacts) return std::unexpected(artifacts.error());
    rows.workflow = std::move(w);
    rows.nodes = std::move(*nodes);
    rows.parameters = std::move(*params);
    rows.artifacts = std::move(*artifacts);
    return rows;
  }

  WorkflowJsonOptions JsonOptions(bool with_nodes) const {
    WorkflowJsonOptions o;
    o.with_nodes = with_nodes;
    o.with_spec = with_nodes;
    o.kubernetes = engine.options().executor == "kubernetes";
    return o;
  }

  Result<Json> WorkflowJsonOf(const std::string& ns, const std::string& name) {
    auto w = Find(ns, name);
    if (!w) return std::unexpected(w.error());
    auto rows = Rows(std::move(*w));
    if (!rows) return std::unexpected(rows.error());
    return WorkflowObject(*rows, JsonOptions(true));
  }

  // The answer cached under `key` while the store has not changed since it was rendered, or a
  // fresh one from `render` (cached when it is a 200). The change count is read before
  // `render` reads the rows, so a change committed meanwhile only makes the next reader render
  // again. When the count cannot be read, nothing is cached.
  Response Cached(const std::string& key, const std::function<Result<Json>()>& render) {
    auto changes = store.ChangeCount();
    if (changes) {
      if (RenderCache::Body body = cache.Get(key, *changes)) return Ok(std::move(body));
    }
    auto j = render();
    if (!j) return ErrorOf(j.error());
    auto body = std::make_shared<const std::string>(j->dump() + "\n");
    if (changes) cache.Put(key, *changes, body);
    return Ok(std::move(body));
  }

  // ---- submissions ----------------------------------------------------------------------------

  // The manifest of a create/lint body: {"workflow": {...}} as JSON, or the manifest itself as
  // YAML (Content-Type application/yaml) or JSON.
  Result<ManifestText> BodyManifest(const Request& r, const char* key) {
    std::string type(r.GetHeader("Content-Type").value_or("application/json"));
    if (r.body.empty()) return MakeError(Code::kInvalidArgument, "the request has no body; send {\"" + std::string(key) + "\": {...}} or a YAML manifest");
    if (type.find("yaml") != std::string::npos) return ManifestText{"request body", r.body};
    Json body = Json::parse(r.body, nullptr, false);
    if (body.is_discarded()) {
      // Say where: parse again with exceptions for the byte offset.
      std::string where;
      try {
        Json again = Json::parse(r.body);
        (void)again;
      } catch (const Json::parse_error& e) {
        where = e.what();
      }
      return MakeError(Code::kInvalidArgument, "the request body is not valid JSON (" + where +
                                                   "); send application/json, or set Content-Type: application/yaml");
    }
    if (!body.is_object()) return MakeError(Code::kInvalidArgument, "the request body must be a JSON object");
    if (auto m = body.find(key); m != body.end()) {
      if (!m->is_object()) return MakeError(Code::kInvalidArgument, std::string(key) + ": expected an object");
      return ManifestText{"request body", m->dump(2)};
    }
    if (body.contains("apiVersion") || body.contains("kind")) return ManifestText{"request body", body.dump(2)};
    return MakeError(Code::kInvalidArgument, std::string("the request body has no \"") + key + "\" field");
  }

  void Submit(const Request& r, const Responder& out, bool dry_run) {
    const std::string ns = r.params.at("ns");
    auto manifest = BodyManifest(r, "workflow");
    if (!manifest) return out.Send(ErrorOf(manifest.error()));
    SubmitRequest request;
    request.namespace_ = ns;
    request.workflow = std::move(*manifest);
    request.dry_run = dry_run;
    Json body = Json::parse(r.body, nullptr, false);
    if (body.is_object() && body.value("serverDryRun", false)) request.dry_run = true;
    auto templates = Templates(ns);
    if (!templates) return out.Send(ErrorOf(templates.error()));
    request.templates = std::move(*templates);
    Answer(out, Accept(std::move(request)));
  }

  // Validates and records a submission here, on an HTTP thread, and starts it on the engine's.
  std::expected<store::WorkflowRecord, SubmitError> Accept(SubmitRequest request) {
    const bool dry_run = request.dry_run;
    auto accepted = engine.Accept(std::move(request));
    if (accepted && !dry_run) boost::asio::post(io, [this, uid = accepted->uid] { engine.Start(uid); });
    return accepted;
  }

  void Answer(const Responder& out, const std::expected<store::WorkflowRecord, SubmitError>& submitted) {
    if (!submitted) {
      const SubmitError& e = submitted.error();
      return out.Send(ErrorOf(e.error, e.problems.empty() ? Json(nullptr) : ProblemsJson(e.problems)));
    }
    WorkflowRows rows;
    rows.workflow = *submitted;
    out.Send(Ok(WorkflowObject(rows, JsonOptions(true))));
  }

  // The WorkflowTemplates a submission in `ns` may reference: this namespace's and the cluster's.
  Result<std::vector<ManifestText>> Templates(const std::string& ns) {
    std::vector<ManifestText> out;
    for (const auto& [kind, scope] : {std::pair<std::string, std::string>{"WorkflowTemplate", ns},
                                      std::pair<std::string, std::string>{"ClusterWorkflowTemplate", ""}}) {
      auto list = store.ListTemplates(kind, scope);
      if (!list) return std::unexpected(list.error());
      for (const store::TemplateRecord& t : *list) {
        out.push_back({(scope.empty() ? "clusterworkflowtemplate " : "workflowtemplate " + ns + "/") + t.name, t.spec});
      }
    }
    return out;
  }

  void SubmitFrom(const Request& r, const Responder& out) {
    const std::string ns = r.params.at("ns");
    Json body = Json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return out.Send(ErrorJson(400, 3, "the request body must be a JSON object {\"resourceKind\", \"resourceName\", \"submitOptions\"}"));
    }
    std::string kind = body.value("resourceKind", "WorkflowTemplate");
    std::string name = body.value("resourceName", "");
    if (kind != "WorkflowTemplate" && kind != "ClusterWorkflowTemplate" && kind != "CronWorkflow") {
      return out.Send(ErrorJson(400, 3, "resourceKind: \"" + kind + "\" is not one of WorkflowTemplate, ClusterWorkflowTemplate"));
    }
    if (name.empty()) return out.Send(ErrorJson(400, 3, "resourceName: the template to submit is missing"));
    auto t = store.GetTemplate(kind, kind == "ClusterWorkflowTemplate" ? "" : ns, name);
    if (!t) return out.Send(ErrorOf(t.error()));
    if (!*t) return out.Send(ErrorJson(404, 5, kind + " \"" + name + "\" not found in namespace \"" + ns + "\""));
    Json options = body.value("submitOptions", Json::object());
    auto params = Pairs(options.value("parameters", Json()), "submitOptions.parameters");
    if (!params) return out.Send(ErrorOf(params.error()));
    auto labels = Pairs(options.value("labels", Json()), "submitOptions.labels");
    if (!labels) return out.Send(ErrorOf(labels.error()));
    // As Argo does: a Workflow that references the template, named after it.
    Json wf = {{"apiVersion", "argoproj.io/v1alpha1"},
               {"kind", "Workflow"},
               {"metadata", {{"generateName", options.value("generateName", name + "-")}}},
               {"spec", {{"workflowTemplateRef", {{"name", name}}}}}};
    if (kind == "ClusterWorkflowTemplate") wf["spec"]["workflowTemplateRef"]["clusterScope"] = true;
    if (options.contains("name")) wf["metadata"] = {{"name", options.value("name", "")}};
    SubmitRequest request;
    request.namespace_ = ns;
    request.workflow = {"submitted from " + kind + " " + name, wf.dump(2)};
    request.parameters = std::move(*params);
    request.labels = std::move(*labels);
    request.labels["workflows.argoproj.io/workflow-template"] = name;
    request.entrypoint = options.value("entryPoint", "");
    request.dry_run = options.value("serverDryRun", false) || options.value("dryRun", false);
    auto templates = Templates(ns);
    if (!templates) return out.Send(ErrorOf(templates.error()));
    request.templates = std::move(*templates);
    Answer(out, Accept(std::move(request)));
  }

  // ---- actions ----------------------------------------------------------------------------------

  void Action(const Request& r, const Responder& out) {
    const std::string ns = r.params.at("ns"), name = r.params.at("name"), action = r.params.at("action");
    auto w = Find(ns, name);
    if (!w) return out.Send(ErrorOf(w.error()));
    Json body = Json::parse(r.body.empty() ? "{}" : r.body, nullptr, false);
    if (body.is_discarded()) return out.Send(ErrorJson(400, 3, "the request body is not valid JSON"));
    auto not_running = [&](const Error& e) {
      return ErrorJson(409, 9, "cannot " + action + " workflow \"" + name + "\": " + e.message() +
                                   " (phase " + w->phase + ")");
    };
    Result<void> done;
    if (action == "stop") {
      done = engine.Stop(w->uid, body.is_object() ? body.value("message", "") : "");
    } else if (action == "terminate") {
      done = engine.Terminate(w->uid);
    } else if (action == "resume") {
      auto n = engine.ResumeSuspended(w->uid);
      if (!n) done = std::unexpected(n.error());
    } else if (action == "suspend") {
      done = engine.Suspend(w->uid);
    } else if (action == "resubmit") {
      return Answer(out, engine.Resubmit(w->uid));
    } else if (action == "retry") {
      // Argo's WorkflowRetryRequest: {"restartSuccessful", "nodeFieldSelector", "parameters"}.
      scheduler::RetryRequested retry;
      if (!body.is_object()) return out.Send(ErrorJson(400, 3, "the request body must be a JSON object"));
      if (auto f = body.find("restartSuccessful"); f != body.end() && !f->is_null()) {
        if (!f->is_boolean()) return out.Send(ErrorJson(400, 3, "restartSuccessful: expected true or false"));
        retry.restart_successful = f->get<bool>();
      }
      if (auto f = body.find("nodeFieldSelector"); f != body.end() && !f->is_null()) {
        if (!f->is_string()) return out.Send(ErrorJson(400, 3, "nodeFieldSelector: expected a string"));
        retry.node_field_selector = f->get<std::string>();
      }
      auto params = Pairs(body.value("parameters", Json()), "parameters");
      if (!params) return out.Send(ErrorOf(params.error()));
      retry.parameters = std::move(*params);
      done = engine.Retry(w->uid, std::move(retry));
    } else {
      return out.Send(ErrorJson(404, 5, "no action \"" + action + "\"; one of stop, terminate, suspend, resume, retry, resubmit"));
    }
    if (!done) return out.Send(done.error().code() == Code::kFailedPrecondition ? not_running(done.error()) : ErrorOf(done.error()));
    // Suspend, resume and retry are recorded before the engine returns: answer with the row now.
    if (auto fresh = store.GetWorkflow(w->uid); fresh && *fresh) w = std::move(**fresh);
    auto rows = Rows(*w);
    if (!rows) return out.Send(ErrorOf(rows.error()));
    out.Send(Ok(WorkflowObject(*rows, JsonOptions(true))));
  }

  void Delete(const Request& r, const Responder& out) {
    auto w = Find(r.params.at("ns"), r.params.at("name"));
    if (!w) return out.Send(ErrorOf(w.error()));
    if (auto ok = engine.Delete(w->uid); !ok) return out.Send(ErrorOf(ok.error()));
    out.Send(Ok(Json::object()));
  }

  // ---- reads ------------------------------------------------------------------------------------

  Response List(const Request& r) {
    store::WorkflowFilter filter;
    filter.namespace_ = r.params.at("ns");
    auto q = [&](std::string_view a, std::string_view b) {
      auto v = r.GetQuery(a);
      if (!v) v = r.GetQuery(b);
      return std::string(v.value_or(""));
    };
    filter.phase = q("phase", "listOptions.phase");
    filter.label_selector = q("listOptions.labelSelector", "labelSelector");
    filter.continue_token = q("listOptions.continue", "continue");
    std::string limit = q("listOptions.limit", "limit");
    if (!limit.empty()) {
      try {
        filter.limit = std::stoi(limit);
      } catch (const std::exception&) {
        return ErrorJson(400, 3, "limit: \"" + limit + "\" is not a number");
      }
      if (filter.limit < 0) return ErrorJson(400, 3, "limit: must not be negative");
    }
    std::string key = "list\n" + filter.namespace_ + "\n" + filter.phase + "\n" + filter.label_selector + "\n" +
                      filter.continue_token + "\n" + std::to_string(filter.limit);
    return Cached(key, [&]() -> Result<Json> {
      auto page = store.ListWorkflows(filter);
      if (!page) return std::unexpected(page.error());
      Json items = Json::array();
      for (store::WorkflowRecord& w : page->workflows) {
        WorkflowRows rows;
        rows.workflow = std::move(w);
        items.push_back(WorkflowObject(rows, JsonOptions(false)));
      }
      Json meta = Json::object();
      if (!page->continue_token.empty()) meta["continue"] = page->continue_token;
      return Json{{"metadata", meta}, {"items", std::move(items)}};
    });
  }

  Response Artifact(const Request& r) {
    auto w = Find(r.params.at("ns"), r.params.at("name"));
    if (!w) return ErrorOf(w.error());
    auto artifacts = store.ListArtifacts(w->uid);
    if (!artifacts) return ErrorOf(artifacts.error());
    const std::string& node = r.params.at("node");
    const std::string& name = r.params.at("artifact");
    for (const store::ArtifactRecord& a : *artifacts) {
      if (a.node_id != node || a.name != name || a.direction != "output") continue;
      if (!a.uri.starts_with("file://")) {
        return ErrorJson(404, 5, "artifact \"" + name + "\" of node \"" + node + "\" is at " + a.uri +
                                     ", which this server cannot read");
      }
      std::ifstream in(a.uri.substr(7), std::ios::binary);
      if (!in) return ErrorJson(404, 5, "artifact \"" + name + "\" of node \"" + node + "\" is recorded but its file is gone");
      std::stringstream buf;
      buf << in.rdbuf();
      Response resp;
      resp.status = 200;
      resp.body = buf.str();
      resp.SetHeader("Content-Type", "application/octet-stream");
      resp.SetHeader("Content-Disposition", "attachment; filename=\"" + name + "\"");
      if (!a.sha256.empty()) resp.SetHeader("X-Kiln-Sha256", a.sha256);
      return resp;
    }
    return ErrorJson(404, 5, "node \"" + node + "\" of workflow \"" + w->name + "\" has no output artifact \"" + name + "\"");
  }

  // ---- streams ------------------------------------------------------------------------------

  void Track(const std::shared_ptr<http::StreamWriter>& s) {
    std::erase_if(streams, [](const auto& w) { return w.expired(); });
    streams.push_back(s);
  }

  // GET .../log: the node's log lines (every Pod node's when no nodeId is given), as Argo's
  // newline-delimited {"result": {"content", "podName"}}; with follow, new lines as they come
  // until the nodes have finished (local executor: until the workflow has).
  //
  // Where the lines come from: the log file at Engine::LogPath. The local executor writes it as
  // the step runs. The Kubernetes executor writes it (kiln's copy of the pod's log) when the step
  // ends, so while a step runs on Kubernetes and has no copy yet its lines come from the live pod
  // (Engine::ReadPodLog; with follow, streamed as the pod writes them). When the pod's stream
  // ends (the container ended, the pod went away, the connection broke), the rest comes from
  // the copy once the step has finished: the copy's first N pod lines, N being the lines already
  // sent from the pod, are skipped, so no line is sent twice.
  void Log(const Request& r, const Responder& out) {
    auto w = Find(r.params.at("ns"), r.params.at("name"));
    if (!w) return out.Send(ErrorOf(w.error()));
    std::string node(r.GetQuery("nodeId").value_or(r.GetQuery("podName").value_or("")));
    bool follow = r.GetQuery("follow").value_or(r.GetQuery("logOptions.follow").value_or("false")) == "true";
    std::optional<std::regex> grep;
    if (auto g = r.GetQuery("grep"); g && !g->empty()) {
      try {
        grep.emplace(std::string(*g));
      } catch (const std::regex_error& e) {
        return out.Send(ErrorJson(400, 3, "grep: \"" + std::string(*g) + "\" is not a regular expression: " + e.what()));
      }
    }
    auto nodes = store.ListNodes(w->uid);
    if (!nodes) return out.Send(ErrorOf(nodes.error()));
    const bool kubernetes = engine.options().executor == "kubernetes";
    struct Source {
      std::string node;
      std::string pod_name;       // podName of its lines: the node id, or on Kubernetes its Job's name
      std::streamoff offset = 0;  // bytes of the log file read
      size_t skip = 0;            // pod lines of kiln's copy already sent from the live pod
      // Kubernetes, while the step runs without a copy: the read of the live pod's log.
      std::shared_ptr<kube::StreamCancel> live;
      bool live_open = false;
      bool live_done = false;  // the pod's log ended: the rest comes from the copy
      size_t live_lines = 0;
      std::string partial;  // a live line without its newline yet
      std::chrono::steady_clock::time_point retry_at{};  // no pod yet: when to look again
    };
    struct Tail {
      std::string uid;
      std::vector<Source> sources;
      std::optional<std::regex> grep;
      bool follow = false;
      bool kubernetes = false;
      std::unique_ptr<boost::asio::steady_timer> timer;
    };
    auto tail = std::make_shared<Tail>();
    for (const store::NodeRecord& n : *nodes) {
      if (n.type != "Pod" || !(node.empty() || n.id == node || n.display_name == node)) continue;
      Source src;
      src.node = n.id;
      src.pod_name = kubernetes ? executor::JobName(w->uid, n.id, n.attempt) : n.id;
      tail->sources.push_back(std::move(src));
    }
    if (!node.empty() && tail->sources.empty()) {
      return out.Send(ErrorJson(404, 5, "workflow \"" + w->name + "\" has no step \"" + node + "\""));
    }
    auto stream = out.Stream(200, {{"Content-Type", "application/json"}});
    Track(stream);
    tail->uid = w->uid;
    tail->grep = std::move(grep);
    tail->follow = follow;
    tail->kubernetes = kubernetes;
    tail->timer = std::make_unique<boost::asio::steady_timer>(io);
    // One line of output for `text`, or "" when grep drops it.
    auto line_of = [tail](const Source& src, std::string_view text) -> std::string {
      if (tail->grep && !std::regex_search(text.begin(), text.end(), *tail->grep)) return "";
      return Json{{"result", {{"content", text}, {"podName", src.pod_name}}}}.dump() + "\n";
    };
    auto pump = std::make_shared<std::function<void()>>();
    // Starts reading source `i`'s live pod; lines go straight to the stream.
    auto start_live = [this, tail, stream, pump, line_of](size_t i) {
      Source& src = tail->sources[i];
      src.live_open = true;
      auto on_data = [tail, stream, line_of, i](std::string_view data) {
        if (stream->closed()) return false;
        Source& s = tail->sources[i];
        s.partial.append(data);
        std::string chunk;
        size_t start = 0;
        for (size_t nl; (nl = s.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
          ++s.live_lines;
          chunk += line_of(s, std::string_view(s.partial).substr(start, nl - start));
        }
        s.partial.erase(0, start);
        if (s.partial.size() > kMaxLiveLine) {  // bounded: an endless line is sent in pieces
          ++s.live_lines;
          chunk += line_of(s, s.partial);
          s.partial.clear();
        }
        return chunk.empty() || stream->Write(std::move(chunk));
      };
      auto on_end = [tail, stream, line_of, pump, i](Result<void> ended) {
        Source& s = tail->sources[i];
        s.live_open = false;
        s.live.reset();
        if (!s.partial.empty()) {  // a last line without a newline
          ++s.live_lines;
          if (std::string l = line_of(s, s.partial); !l.empty() && !stream->closed()) stream->Write(std::move(l));
          s.partial.clear();
        }
        if (ended || s.live_lines > 0 || !tail->follow) {
          s.live_done = true;
          s.skip = s.live_lines;
        } else {
          // No pod yet, or its container has not started: look again in a while.
          s.retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
        if (*pump) boost::asio::post(tail->timer->get_executor(), [pump] {
          if (*pump) (*pump)();
        });
      };
      src.live = engine.ReadPodLog(tail->uid, src.node, tail->follow, std::move(on_data), std::move(on_end));
      if (!src.live) {  // not running here any more: the copy is all there is
        src.live_open = false;
        src.live_done = true;
      }
    };
    *pump = [this, tail, stream, pump, line_of, start_live] {
      if (stream->closed()) return;
      bool more = false;  // whether lines may still come
      for (size_t i = 0; i < tail->sources.size(); ++i) {
        Source& src = tail->sources[i];
        const std::string path = engine.LogPath(tail->uid, src.node);
        if (tail->kubernetes) {
          const bool done = engine.StepDone(tail->uid, src.node);
          if (src.live_open) {
            more = true;
            continue;
          }
          std::error_code ec;
          if (!std::filesystem::exists(path, ec)) {
            if (!done && !src.live_done && std::chrono::steady_clock::now() >= src.retry_at) {
              start_live(i);
              if (src.live_open) more = true;
              continue;
            }
            // Running with its pod read, or waiting to look for a pod again: the rest comes
            // from the copy once the step ends.
            if (!done && tail->follow) more = true;
            continue;
          }
        }
        std::ifstream in(path, std::ios::binary);
        if (!in) continue;
        in.seekg(src.offset);
        std::string line, chunk;
        while (std::getline(in, line)) {
          if (in.eof()) break;  // a partial last line: read it once complete
          src.offset += static_cast<std::streamoff>(line.size()) + 1;
          // "<time> <stream> <text>": the text.
          std::string_view text = line;
          std::string_view from;
          size_t sp1 = text.find(' ');
          size_t sp2 = sp1 == std::string_view::npos ? sp1 : text.find(' ', sp1 + 1);
          if (sp2 != std::string_view::npos) {
            from = text.substr(sp1 + 1, sp2 - sp1 - 1);
            text = text.substr(sp2 + 1);
          }
          if (from != "kiln" && src.skip > 0) {  // sent from the live pod already
            --src.skip;
            continue;
          }
          chunk += line_of(src, text);
        }
        if (!chunk.empty() && !stream->Write(std::move(chunk))) return;
        if (tail->kubernetes ? !engine.StepDone(tail->uid, src.node) : engine.IsRunning(tail->uid)) {
          more = true;
        }
      }
      bool live_open = false;
      for (const Source& src : tail->sources) live_open = live_open || src.live_open;
      if (live_open) return;  // the read's end pumps again
      if (!tail->follow || !more) {
        stream->Finish();
        return;
      }
      tail->timer->expires_after(std::chrono::milliseconds(250));
      tail->timer->async_wait([pump](const boost::system::error_code& ec) {
        if (!ec && *pump) (*pump)();
      });
    };
    stream->OnClose([tail, pump] {  // on the connection's strand: the timer and streams are the io thread's
      boost::asio::post(tail->timer->get_executor(), [tail, pump] {
        tail->timer->cancel();
        for (Source& src : tail->sources) {
          if (src.live) src.live->Cancel();
        }
        *pump = nullptr;
      });
    });
    (*pump)();
  }

  // GET /api/v1/workflow-events/{ns}: {"result": {"type", "object"}} per change, or SSE.
  void Watch(const Request& r, const Responder& out) {
    const std::string ns = r.params.at("ns");
    std::string name;
    std::string selector(r.GetQuery("listOptions.fieldSelector").value_or(r.GetQuery("fieldSelector").value_or("")));
    if (!selector.empty()) {
      if (!selector.starts_with("metadata.name=")) {
        return out.Send(ErrorJson(400, 3, "fieldSelector: only metadata.name=NAME is supported"));
      }
      name = selector.substr(14);
    }
    bool sse = r.GetHeader("Accept").value_or("").find("text/event-stream") != std::string_view::npos;
    auto stream = out.Stream(200, {{"Content-Type", sse ? "text/event-stream" : "application/json"}});
    Track(stream);
    // Changes are coalesced per workflow and rendered on the pool, off the engine's thread.
    struct Watcher {
      std::mutex mu;
      std::map<std::string, ChangeType> dirty;  // uid -> last change
      std::map<std::string, store::WorkflowRecord> deleted;
      bool scheduled = false;
    };
    auto watcher = std::make_shared<Watcher>();
    auto emit = [sse](const char* type, const Json& object) {
      std::string line = Json{{"result", {{"type", type}, {"object", object}}}}.dump();
      return sse ? "data: " + line + "\n\n" : line + "\n";
    };
    auto flush = [this, watcher, stream, emit] {
      std::map<std::string, ChangeType> dirty;
      std::map<std::string, store::WorkflowRecord> deleted;
      {
        std::lock_guard lock(watcher->mu);
        dirty.swap(watcher->dirty);
        deleted.swap(watcher->deleted);
        watcher->scheduled = false;
      }
      std::string out;
      for (const auto& [uid, type] : dirty) {
        if (type == ChangeType::kDeleted) {
          WorkflowRows rows;
          rows.workflow = deleted[uid];
          out += emit("DELETED", WorkflowObject(rows, JsonOptions(false)));
          continue;
        }
        auto w = store.GetWorkflow(uid);
        if (!w || !*w) continue;
        auto rows = Rows(std::move(**w));
        if (!rows) continue;
        out += emit(type == ChangeType::kAdded ? "ADDED" : "MODIFIED", WorkflowObject(*rows, JsonOptions(true)));
      }
      if (out.empty()) return;
      stream->Write(std::move(out));
    };
    int id = engine.Subscribe([this, ns, name, watcher, flush](const store::WorkflowRecord& w, ChangeType type) {
      if ((!ns.empty() && w.namespace_ != ns) || (!name.empty() && w.name != name)) return;
      bool schedule = false;
      {
        std::lock_guard lock(watcher->mu);
        auto it = watcher->dirty.find(w.uid);
        if (it == watcher->dirty.end() || type == ChangeType::kDeleted) watcher->dirty[w.uid] = type;
        if (type == ChangeType::kDeleted) watcher->deleted[w.uid] = w;
        if (!watcher->scheduled) schedule = watcher->scheduled = true;
      }
      if (schedule) boost::asio::post(pool, flush);
    });
    stream->OnClose([this, id] { boost::asio::post(io, [this, id] { engine.Unsubscribe(id); }); });
    // The current state first, as a Kubernetes watch without a resourceVersion does.
    boost::asio::post(pool, [this, ns, name, watcher, flush] {
      std::vector<std::string> uids;
      if (!name.empty()) {
        if (auto w = store.FindWorkflow(ns, name); w && *w) uids.push_back((*w)->uid);
      } else {
        store::WorkflowFilter f;
        f.namespace_ = ns;
        f.limit = 1000;
        if (auto page = store.ListWorkflows(f)) {
          for (const auto& w : page->workflows) uids.push_back(w.uid);
        }
      }
      {
        std::lock_guard lock(watcher->mu);
        for (const std::string& uid : uids) watcher->dirty.emplace(uid, ChangeType::kAdded);
        watcher->scheduled = true;
      }
      flush();
    });
  }

  // ---- auth and dispatch --------------------------------------------------------------------

  // The role a request needs: reads need read, changes write, cluster-wide templates admin.
  static Role Needed(const Request& r) {
    if (r.method == "GET" || r.method == "HEAD") return Role::kRead;
    if (r.path.starts_with("/api/v1/cluster-workflow-templates")) return Role::kAdmin;
    return Role::kWrite;
  }

  void Handle(Request r, Responder responder, const http::Handler& routes) {
    const auto start = std::chrono::steady_clock::now();
    const std::string route = RouteOf(r), method = r.method;
    // Wrap the responder to count the answer.
    struct Counting : Responder::Impl {
      std::shared_ptr<Responder> inner;
      ApiServer::Impl* self;
      std::string route, method;
      std::chrono::steady_clock::time_point start;
      void Count(int status) {
        self->requests.Add({route, method, std::to_string(status)});
        self->latency.Observe({route}, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      void Send(Response response) override {
        Count(response.status);
        inner->Send(std::move(response));
      }
      std::shared_ptr<http::StreamWriter> Stream(int status, std::vector<http::Header> headers) override {
        Count(status);
        return inner->Stream(status, std::move(headers));
      }
      void Abort() override { inner->Abort(); }
    };
    auto counting = std::make_shared<Counting>();
    counting->inner = std::make_shared<Responder>(std::move(responder));
    counting->self = this;
    counting->route = route;
    counting->method = method;
    counting->start = start;
    Responder out(counting);
    if (stopping) return out.Send(ErrorJson(503, 14, "the server is shutting down"));
    const bool open = r.path == "/healthz" || r.path == "/readyz" || r.path == "/metrics";
    if (options.auth && !open) {
      auto header = r.GetHeader("Authorization");
      const Principal* who = header ? options.auth->Authenticate(*header) : nullptr;
      if (who == nullptr) {
        Response resp = ErrorJson(401, 16, header ? "the bearer token is not valid; check --token or KILN_TOKEN"
                                                  : "this server needs a bearer token: Authorization: Bearer <token>");
        resp.SetHeader("WWW-Authenticate", "Bearer realm=\"kiln\"");
        return out.Send(std::move(resp));
      }
      std::vector<std::string> seg = http::SplitPath(r.path);
      std::string ns = seg.size() > 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] != "openapi.json" &&
                               seg[2] != "cluster-workflow-templates"
                           ? seg[3]
                           : "*";
      Role needed = Needed(r);
      if (ns == "*" ? who->role < needed : !who->Allows(ns, needed)) {
        return out.Send(ErrorJson(403, 7, who->subject + " may not " + std::string(needed == Role::kRead ? "read" : "change") +
                                              (ns == "*" ? std::string(" this") : " namespace \"" + ns + "\"") +
                                              " (role " + std::string(RoleName(who->role)) + ")"));
      }
    }
    routes(std::move(r), out);
  }

  // /metrics, on the engine's thread.
  void RenderMetrics(const Responder& out) {
    metrics.Gauge("kiln_workflows_running", "Workflows being driven by this server").Set({}, static_cast<double>(engine.running()));
    Response r;
    r.body = metrics.Render();
    r.SetHeader("Content-Type", std::string(kMetricsContentType));
    out.Send(std::move(r));
  }

  http::Handler Routes() {
    http::Router router;
    router.Add("GET", "/healthz", [](Request, Responder out) { out.Send(Response::Text(200, "ok\n")); });
    router.Add("GET", "/readyz", [this](Request, Responder out) {
      Read(out, [this] {
        auto probe = store.GetWorkflow("readyz-probe");
        return probe ? Response::Text(200, "ok\n")
                     : Response::Text(503, "store unavailable: " + probe.error().message() + "\n");
      });
    });
    router.Add("GET", "/metrics", [this](Request r, Responder out) {
      // Every workflow in the store by phase (all processes' and servers'), counted here, on
      // the HTTP thread; then what only the engine knows, on its thread.
      Gauge& by_phase = metrics.Gauge("kiln_workflows", "Workflows in the store, by phase", {"phase"});
      if (auto counts = store.CountWorkflowsByPhase()) {
        for (const char* phase : {"Pending", "Running", "Succeeded", "Failed", "Error"}) by_phase.Set({phase}, 0);
        for (const auto& [phase, n] : *counts) by_phase.Set({phase}, static_cast<double>(n));
      }
      OnEngine([this](Request, Responder out) { RenderMetrics(out); })(std::move(r), std::move(out));
    });
    router.Add("GET", "/api/v1/openapi.json", [](Request, Responder out) { out.Send(Response::Json(200, OpenApiDocument())); });
    // Submissions are validated and recorded on the HTTP thread (Engine::Accept), then started
    // on the engine's.
    router.Add("POST", "/api/v1/workflows/{ns}/lint", [this](Request r, Responder out) { Submit(r, out, true); });
    router.Add("POST", "/api/v1/workflows/{ns}/submit", [this](Request r, Responder out) { SubmitFrom(r, out); });
    router.Add("POST", "/api/v1/workflows/{ns}", [this](Request r, Responder out) { Submit(r, out, false); });
    router.Add("GET", "/api/v1/workflows/{ns}", [this](Request r, Responder out) {
      Read(out, [this, r = std::move(r)] { return List(r); });
    });
    router.Add("GET", "/api/v1/workflows/{ns}/{name}", [this](Request r, Responder out) {
      Read(out, [this, r = std::move(r)] {
        const std::string &ns = r.params.at("ns"), &name = r.params.at("name");
        return Cached("get\n" + ns + "\n" + name, [&] { return WorkflowJsonOf(ns, name); });
      });
    });
    router.Add("DELETE", "/api/v1/workflows/{ns}/{name}", OnEngine([this](Request r, Responder out) { Delete(r, out); }));
    router.Add("PUT", "/api/v1/workflows/{ns}/{name}/{action}", OnEngine([this](Request r, Responder out) { Action(r, out); }));
    router.Add("GET", "/api/v1/workflows/{ns}/{name}/log", OnEngine([this](Request r, Responder out) { Log(r, out); }));
    router.Add("GET", "/api/v1/workflows/{ns}/{name}/artifacts/{node}/{artifact}", [this](Request r, Responder out) {
      Read(out, [this, r = std::move(r)] { return Artifact(r); });
    });
    // Argo Server's artifact path.
    router.Add("GET", "/artifacts/{ns}/{name}/{node}/{artifact}", [this](Request r, Responder out) {
      Read(out, [this, r = std::move(r)] { return Artifact(r); });
    });
    router.Add("GET", "/api/v1/workflow-events/{ns}", OnEngine([this](Request r, Responder out) { Watch(r, out); }));
    AddTemplateRoutes(router, "workflow-templates", "WorkflowTemplate");
    AddTemplateRoutes(router, "cluster-workflow-templates", "ClusterWorkflowTemplate");
    return router.Build([](Request r, Responder out) {
      out.Send(ErrorJson(404, 5, "no such API path: " + r.method + " " + r.path + " (see /api/v1/openapi.json)"));
    });
  }

  // ---- templates ----------------------------------------------------------------------------

  Json TemplateJson(const store::TemplateRecord& t) {
    Json j = Json::object();
    if (auto parsed = dag::YamlToJson(t.name, t.spec); parsed && parsed->is_object()) j = std::move(*parsed);
    j["apiVersion"] = "argoproj.io/v1alpha1";
    j["kind"] = t.kind;
    j["metadata"]["name"] = t.name;
    if (!t.namespace_.empty()) j["metadata"]["namespace"] = t.namespace_;
    j["metadata"]["uid"] = t.uid;
    j["metadata"]["creationTimestamp"] = Rfc3339(t.created_at);
    return j;
  }

  // Validates a template body and stores it. `name` is the URL's on update, "" on create.
  void PutTemplate(const Request& r, const Responder& out, const std::string& kind, const std::string& ns,
                   const std::string& name) {
    auto text = BodyManifest(r, "template");
    if (!text) return out.Send(ErrorOf(text.error()));
    dag::Diagnostics diags;
    std::vector<dag::Manifest> parsed = dag::ParseManifests(text->name, text->text, dag::ParseOptions{}, diags);
    const dag::Manifest* t = nullptr;
    for (const dag::Manifest& m : parsed) {
      if (dag::KindName(m.kind) == kind) t = &m;
    }
    dag::TemplateLibrary library;
    for (const dag::Manifest& m : parsed) library.Add(m);
    if (t) dag::Validate(*t, library, diags);
    std::vector<dag::Diagnostic> problems;
    for (const dag::Diagnostic& d : diags.items()) {
      if (d.severity == dag::Severity::kError) problems.push_back(d);
    }
    if (!problems.empty()) {
      return out.Send(ErrorJson(400, 3, std::to_string(problems.size()) + " error(s) in the " + kind + "; nothing was saved",
                                ProblemsJson(problems)));
    }
    if (!t) return out.Send(ErrorJson(400, 3, "the request body holds no " + kind));
    if (t->metadata.name.empty()) return out.Send(ErrorJson(400, 3, "metadata.name: a " + kind + " needs a name"));
    if (!name.empty() && t->metadata.name != name) {
      return out.Send(ErrorJson(400, 3, "metadata.name: \"" + t->metadata.name + "\" differs from the URL's \"" + name + "\""));
    }
    auto existing = store.GetTemplate(kind, ns, t->metadata.name);
    if (!existing) return out.Send(ErrorOf(existing.error()));
    if (name.empty() && *existing) {
      return out.Send(ErrorJson(409, 6, kind + " \"" + t->metadata.name + "\" already exists; PUT it to update it"));
    }
    if (!name.empty() && !*existing) {
      return out.Send(ErrorJson(404, 5, kind + " \"" + name + "\" not found; POST it to create it"));
    }
    store::TemplateRecord record;
    record.kind = kind;
    record.namespace_ = ns;
    record.name = t->metadata.name;
    record.spec = text->text;
    record.labels = t->metadata.labels;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    record.uid = *existing ? (*existing)->uid : std::to_string(now) + "-" + record.name;
    record.created_at = *existing ? (*existing)->created_at : now;
    record.updated_at = now;
    if (auto ok = store.PutTemplate(record); !ok) return out.Send(ErrorOf(ok.error()));
    out.Send(Ok(TemplateJson(record)));
  }

  void AddTemplateRoutes(http::Router& router, const std::string& path, const std::string& kind) {
    const bool cluster = kind == "ClusterWorkflowTemplate";
    const std::string base = "/api/v1/" + path + (cluster ? "" : "/{ns}");
    auto ns_of = [cluster](const Request& r) { return cluster ? std::string() : r.params.at("ns"); };
    router.Add("POST", base, [this, kind, ns_of](Request r, Responder out) { PutTemplate(r, out, kind, ns_of(r), ""); });
    router.Add("GET", base, [this, kind, ns_of](Request r, Responder out) {
      Read(out, [this, kind, ns = ns_of(r)] {
        auto list = store.ListTemplates(kind, ns);
        if (!list) return ErrorOf(list.error());
        Json items = Json::array();
        for (const store::TemplateRecord& t : *list) items.push_back(TemplateJson(t));
        return Ok({{"metadata", Json::object()}, {"items", std::move(items)}});
      });
    });
    router.Add("GET", base + "/{name}", [this, kind, ns_of](Request r, Responder out) {
      Read(out, [this, kind, ns = ns_of(r), name = r.params.at("name")] {
        auto t = store.GetTemplate(kind, ns, name);
        if (!t) return ErrorOf(t.error());
        if (!*t) return ErrorJson(404, 5, kind + " \"" + name + "\" not found");
        return Ok(TemplateJson(**t));
      });
    });
    router.Add("PUT", base + "/{name}", [this, kind, ns_of](Request r, Responder out) {
      PutTemplate(r, out, kind, ns_of(r), r.params.at("name"));
    });
    router.Add("DELETE", base + "/{name}", [this, kind, ns_of](Request r, Responder out) {
      if (auto ok = store.DeleteTemplate(kind, ns_of(r), r.params.at("name")); !ok) return out.Send(ErrorOf(ok.error()));
      out.Send(Ok(Json::object()));
    });
  }
};

Result<std::unique_ptr<ApiServer>> ApiServer::Start(boost::asio::io_context& io, Engine& engine, store::Store& store,
                                                    Metrics& metrics, ApiServerOptions options) {
  auto impl = std::make_unique<Impl>(io, engine, store, metrics, std::move(options));
  Impl* self = impl.get();
  http::Handler routes = self->Routes();
  http::ServerOptions http_options = self->options.http;
  http_options.bearer_token.clear();  // authentication is ours (per token roles and namespaces)
  http_options.threads = std::max<size_t>(1, self->options.read_threads);
  http_options.unauthorized = [](const Request&) { return ErrorJson(401, 16, "unauthorized"); };
  auto server = http::Server::Start(io, http_options, [self, routes](Request r, Responder out) {
    self->Handle(std::move(r), std::move(out), routes);
  });
  if (!server) return std::unexpected(server.error());
  impl->server = std::move(*server);
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() {
  Stop();
  impl_->server.reset();  // waits for the HTTP threads, which use the rest of Impl
  impl_->pool.join();
}

uint16_t ApiServer::port() const { return impl_->server->port(); }

std::string ApiServer::url() const { return impl_->server->url(); }

void ApiServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  for (auto& s : impl_->streams) {
    if (auto stream = s.lock()) stream->Finish();
  }
  impl_->server->Stop();
}

}  // namespace kiln::api
