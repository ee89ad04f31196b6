#include "executor/kubernetes_resource.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/strings.h"
#include "dag/expr/jsonpath.h"
#include "dag/parse.h"

namespace kiln::executor {

namespace {

using nlohmann::json;
using boost::asio::awaitable;

// kubectl prints a string as it is and anything else as JSON.
std::string Text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// ---- JSONPath ------------------------------------------------------------------------------

// kubectl's JSONPath expression `expr` (the inside of one {...}) as a path for
// expr::JsonPath: "$" in front, and each field name written ['name'], so that kubectl's escaped
// dots (a\.b) and names with '/' or '-' (labels, annotations) work.
std::string ToExprPath(std::string_view expr) {
  std::string out = "$";
  size_t i = expr.starts_with("$") ? 1 : 0;
  auto quote = [](const std::string& name) {
    std::string q = "['";
    for (char c : name) q += c == '\'' ? std::string("\\'") : std::string(1, c);
    return q + "']";
  };
  while (i < expr.size()) {
    char c = expr[i];
    if (c == '[') {  // copied as written, up to its matching ']' outside quotes
      size_t j = i + 1;
      char in = 0;
      int depth = 1;
      for (; j < expr.size() && depth > 0; ++j) {
        if (in) {
          if (expr[j] == in) in = 0;
        } else if (expr[j] == '\'' || expr[j] == '"') {
          in = expr[j];
        } else if (expr[j] == '[') {
          ++depth;
        } else if (expr[j] == ']') {
          --depth;
        }
      }
      out += expr.substr(i, j - i);
      i = j;
    } else if (c == '.') {
      bool recursive = i + 1 < expr.size() && expr[i + 1] == '.';
      i += recursive ? 2 : 1;
      std::string name;
      while (i < expr.size() && expr[i] != '.' && expr[i] != '[') {
        if (expr[i] == '\\' && i + 1 < expr.size()) ++i;
        name += expr[i++];
      }
      if (name == "*") {
        out += recursive ? "..*" : ".*";
      } else if (!name.empty()) {
        out += (recursive ? ".." : "") + quote(name);
      } else if (recursive) {
        out += "..";
      }
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

// Whether kubectl would print each match of `expr` (several, joined by spaces) rather than one
// value: a wildcard, recursive descent, a filter, a slice or a union.
bool SelectsMany(std::string_view expr) {
  char in = 0;
  bool bracket = false;
  for (size_t i = 0; i < expr.size(); ++i) {
    char c = expr[i];
    if (in) {
      if (c == in) in = 0;
      continue;
    }
    if (c == '\'' || c == '"') in = c;
    if (c == '[') bracket = true;
    if (c == ']') bracket = false;
    if (c == '*' || c == '?' || (bracket && (c == ':' || c == ',')) || (c == '.' && i + 1 < expr.size() && expr[i + 1] == '.')) {
      return true;
    }
  }
  return false;
}

// ---- the API calls -------------------------------------------------------------------------

std::string GroupVersionPath(const std::string& group_version) {
  return group_version.find('/') == std::string::npos ? "/api/" + group_version : "/apis/" + group_version;
}

// The resource of the manifest's apiVersion and kind, or of a kubectl TYPE from the flags
// ("cm", "jobs.batch", "workflow"): looked up in the server's discovery documents.
awaitable<Result<ApiResource>> Discover(kube::Client& client, const std::string& api_version,
                                        const std::string& kind, const std::string& type) {
  if (type.empty()) {
    if (api_version.empty() || kind.empty()) {
      co_return MakeError(Code::kInvalidArgument, "resource.manifest needs apiVersion and kind");
    }
    auto list = co_await client.Get(GroupVersionPath(api_version));
    if (!list) {
      if (list.error().code() == Code::kNotFound) {
        co_return MakeError(Code::kNotFound, "the server does not serve apiVersion " + api_version +
                                                 " (resource.manifest's apiVersion; is its CustomResourceDefinition installed?)");
      }
      co_return std::unexpected(list.error());
    }
    if (auto r = FindApiResource(*list, kind, "")) co_return *r;
    co_return MakeError(Code::kNotFound, "the server has no kind " + kind + " in " + api_version +
                                             " (resource.manifest's kind; is its CustomResourceDefinition installed?)");
  }
  // TYPE or TYPE.GROUP: the core group first, then each group's preferred version.
  std::string base = type, group;
  if (size_t dot = type.find('.'); dot != std::string::npos) {
    base = type.substr(0, dot);
    group = type.substr(dot + 1);
  }
  std::vector<std::string> versions;
  if (group.empty()) versions.push_back("v1");
  auto groups = co_await client.Get("/apis");
  if (!groups) co_return std::unexpected(groups.error());
  for (const json& g : groups->value("groups", json::array())) {
    std::string name = g.value("name", "");
    if (!group.empty() && name != group) continue;
    json preferred = g.value("preferredVersion", json::object());
    if (preferred.contains("groupVersion")) versions.push_back(preferred["groupVersion"].get<std::string>());
  }
  for (const std::string& gv : versions) {
    auto list = co_await client.Get(GroupVersionPath(gv));
    if (!list) continue;  // an aggregated API that is down hides only its own types
    if (auto r = FindApiResource(*list, "", base)) co_return *r;
  }
  co_return MakeError(Code::kNotFound, "the server has no resource type \"" + type + "\" (resource.flags)");
}

std::string Query(std::string_view path, std::string_view key, std::string_view value) {
  return std::string(path) + (path.find('?') == std::string_view::npos ? "?" : "&") + std::string(key) + "=" +
         kube::UrlEncode(value);
}

}  // namespace

Result<std::string> EvaluateJsonPath(std::string_view templ, const json& object) {
  std::string out;
  size_t i = 0;
  while (i < templ.size()) {
    if (templ[i] != '{') {
      out += templ[i++];
      continue;
    }
    size_t close = i + 1;
    char quote = 0;
    for (; close < templ.size(); ++close) {
      char c = templ[close];
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '}') {
        break;
      }
    }
    if (close >= templ.size()) {
      return MakeError(Code::kInvalidArgument, "JSONPath \"" + std::string(templ) + "\": unclosed '{'");
    }
    std::string_view expr = Trim(templ.substr(i + 1, close - i - 1));
    if (expr.starts_with("range") || expr == "end") {
      return MakeError(Code::kInvalidArgument, "JSONPath \"" + std::string(templ) +
                                                   "\": {range} is not supported; use [*] (e.g. {.items[*].metadata.name})");
    }
    i = close + 1;
    if (expr.empty() || expr == "." || expr == "$") {
      out += Text(object);
      continue;
    }
    if (expr.size() >= 2 && (expr.front() == '"' || expr.front() == '\'') && expr.back() == expr.front()) {
      // A literal, as kubectl prints {"\n"} or {"-"}.
      for (size_t k = 1; k + 1 < expr.size(); ++k) {
        char c = expr[k];
        if (c == '\\' && k + 2 < expr.size()) {
          char e = expr[++k];
          out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          out += c;
        }
      }
      continue;
    }
    auto value = expr::JsonPath(object, ToExprPath(expr));
    if (!value) {
      // As kubectl get -o jsonpath (allowMissingKeys): a field that is not there, or under a
      // value that has no fields, prints nothing. expr::JsonPath explains a path that matched
      // nothing with one of these; anything else is the template's syntax.
      const std::string& why = value.error();
      if (why.starts_with("key ") || why.starts_with("cannot get key") || why.starts_with("cannot index") ||
          why.starts_with("index ") || why == "no match") {
        continue;
      }
      return MakeError(Code::kInvalidArgument, "JSONPath \"" + std::string(templ) + "\": " + why);
    }
    if (SelectsMany(expr) && value->is_array()) {
      for (size_t k = 0; k < value->size(); ++k) {
        if (k) out += ' ';
        out += Text((*value)[k]);
      }
    } else {
      out += Text(*value);
    }
  }
  return out;
}

std::string ApiResource::Collection(const std::string& ns) const {
  std::string path = GroupVersionPath(group_version);
  if (namespaced) path += "/namespaces/" + ns;
  return path + "/" + name;
}

std::optional<ApiResource> FindApiResource(const json& list, std::string_view kind, std::string_view type) {
  if (!list.is_object() || !list.contains("resources") || !list["resources"].is_array()) return std::nullopt;
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  std::string want = lower(std::string(type));
  for (const json& r : list["resources"]) {
    std::string name = r.value("name", "");
    if (name.empty() || name.find('/') != std::string::npos) continue;
    std::string k = r.value("kind", "");
    bool match = false;
    if (!kind.empty()) {
      match = k == kind;
    } else {
      match = name == want || lower(r.value("singularName", "")) == want || lower(k) == want;
      for (const json& s : r.value("shortNames", json::array())) match = match || (s.is_string() && s == want);
    }
    if (match) {
      return ApiResource{list.value("groupVersion", ""), name, k, r.value("namespaced", true)};
    }
  }
  return std::nullopt;
}

namespace {

// The annotation kubectl apply keeps the applied manifest in.
constexpr const char* kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";

// kubectl apply's patch: `desired`, plus null for each key of `last` (the manifest applied
// before) that `desired` no longer has, in mappings at any depth, so removed fields go.
json ApplyPatchOf(const json& last, const json& desired) {
  json patch = desired;
  if (!last.is_object() || !desired.is_object()) return patch;
  for (const auto& [k, v] : last.items()) {
    auto it = desired.find(k);
    if (it == desired.end()) {
      patch[k] = nullptr;
    } else if (v.is_object() && it->is_object()) {
      patch[k] = ApplyPatchOf(v, *it);
    }
  }
  return patch;
}

struct ResourceRun {
  kube::Client& client;
  const JobContext& ctx;
  const scheduler::LaunchStep& step;
  const scheduler::LaunchStep::Resource& r;
  ResourceCancel& cancel;
  std::chrono::milliseconds poll;
  ResourceDiscovery& discovery;
  scheduler::StepFinished f;

  scheduler::StepFinished Error(std::string message) {
    f.error = true;
    f.exit_code = -1;
    f.message = std::move(message);
    return f;
  }
  scheduler::StepFinished Failed(std::string message, int exit_code = 1) {
    f.exit_code = exit_code;
    f.message = std::move(message);
    return f;
  }
  scheduler::StepFinished Killed() { return Failed("killed", 137); }
  scheduler::StepFinished Refused(const std::string& method, const std::string& path, const kube::ApiResponse& a) {
    return Error(kube::ApiError(method, path, a).message());
  }

  // Waits `poll` (or until Kill); false when killed.
  awaitable<bool> Wait() {
    if (cancel.cancelled) co_return false;
    cancel.timer.expires_after(poll);
    boost::system::error_code ec;
    co_await cancel.timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    co_return !cancel.cancelled;
  }

  awaitable<scheduler::StepFinished> Run() {
    f.node = step.node;
    if (r.set_owner_reference) {
      co_return Error(
          "resource.setOwnerReference makes the object owned by the Workflow object Argo keeps in the cluster; "
          "kiln keeps none, so nothing could own it: remove setOwnerReference and delete the object in a later "
          "step or an onExit handler (action: delete)");
    }
    if (!r.jq_filters.empty()) {
      co_return Error("outputs.parameters." + r.jq_filters.front() +
                      ".valueFrom.jqFilter is not supported by kiln (no jq): use valueFrom.jsonPath");
    }
    auto flags = ParseResourceFlags(r.flags);
    if (!flags) co_return Error(flags.error().message());
    auto success = ParseResourceCondition(r.success_condition);
    if (!success) co_return Error("resource.successCondition: " + success.error().message());
    auto failure = ParseResourceCondition(r.failure_condition);
    if (!failure) co_return Error("resource.failureCondition: " + failure.error().message());
    const std::string& action = r.action;
    static const std::vector<std::string_view> kActions = {"get", "create", "apply", "delete", "replace", "patch"};
    if (std::find(kActions.begin(), kActions.end(), action) == kActions.end()) {
      co_return Error("resource.action \"" + action + "\": use get, create, apply, delete, replace or patch");
    }
    const std::string strategy = r.merge_strategy.empty() ? "strategic" : r.merge_strategy;
    if (action == "patch" && strategy != "strategic" && strategy != "merge" && strategy != "json") {
      co_return Error("resource.mergeStrategy \"" + strategy + "\": use strategic (the default), merge or json");
    }
    const bool json_patch = action == "patch" && strategy == "json";

    // The manifest: an object, or a json patch's list of operations.
    json manifest;
    if (!Trim(r.manifest).empty()) {
      auto m = dag::YamlToJson("resource.manifest", r.manifest);
      if (!m) co_return Error(m.error().message());
      manifest = std::move(*m);
      if (json_patch ? !manifest.is_array() : !manifest.is_object()) {
        co_return Error(json_patch ? "resource.manifest of a json patch must be a list of operations (RFC 6902)"
                                   : "resource.manifest must be one Kubernetes object (apiVersion, kind, metadata)");
      }
    } else if (action != "get" && action != "delete") {
      co_return Error("resource: " + action + " needs resource.manifest (the object" +
                      std::string(action == "patch" ? ", or the patch," : "") + " to send)");
    }
    std::string api_version, kind, name, ns;
    if (manifest.is_object()) {
      for (const char* key : {"apiVersion", "kind"}) {
        if (manifest.contains(key) && !manifest[key].is_string()) {
          co_return Error(std::string("resource.manifest: ") + key + " must be a string");
        }
      }
      api_version = manifest.value("apiVersion", "");
      kind = manifest.value("kind", "");
      if (!manifest.contains("metadata")) manifest["metadata"] = json::object();
      const json& meta = manifest["metadata"];
      if (!meta.is_object()) co_return Error("resource.manifest: metadata must be a mapping (name, namespace, labels, ...)");
      for (const char* key : {"name", "namespace", "generateName"}) {
        if (meta.contains(key) && !meta[key].is_string()) {
          co_return Error(std::string("resource.manifest: metadata.") + key + " must be a string");
        }
      }
      name = meta.value("name", "");
      ns = meta.value("namespace", "");
    }
    if (!flags->name.empty()) name = flags->name;
    if (!flags->namespace_.empty()) ns = flags->namespace_;
    if (ns.empty()) ns = ctx.namespace_;
    if (flags->type.empty() && (json_patch || manifest.is_null())) {
      co_return Error("resource: name the object to " + action + " with resource.flags: [TYPE, NAME] (e.g. [configmap, " +
                      "my-config])" + (json_patch ? ", since a json patch's manifest is only the operations" : ""));
    }
    if (ctx.confine_resources && ns != ctx.namespace_) {
      co_return Error("resource: namespace \"" + ns + "\" is not the workflow's (\"" + ctx.namespace_ +
                      "\"); kiln server acts with its own credentials, so a resource template may act only in its "
                      "workflow's namespace");
    }
    if (cancel.cancelled) co_return Killed();
    const std::string key = flags->type.empty() ? api_version + "|" + kind : "type|" + flags->type;
    Result<ApiResource> resource = MakeError(Code::kNotFound, "");
    if (auto known = discovery.found.find(key); known != discovery.found.end()) {
      resource = known->second;
    } else {
      resource = co_await Discover(client, api_version, kind, flags->type);
      if (!resource) co_return Error(resource.error().message());
      discovery.found[key] = *resource;
    }
    if (cancel.cancelled) co_return Killed();
    if (ctx.confine_resources && action != "get" && action != "create" &&
        ((resource->name == "jobs" && resource->group_version.starts_with("batch/")) || resource->name == "pods" ||
         resource->name == "persistentvolumeclaims")) {
      co_return Error("resource: kiln server runs every workflow's Jobs, pods and claims in this namespace with its "
                      "own credentials, so a resource template may get or create " + resource->name + " but not " +
                      action + " them");
    }
    if (ctx.confine_resources && !resource->namespaced) {
      co_return Error("resource: " + resource->name + " are not namespaced; kiln server acts with its own credentials, "
                      "so a resource template may act only on objects in its workflow's namespace");
    }
    if (manifest.is_object() && resource->namespaced) manifest["metadata"]["namespace"] = ns;
    const std::string collection = resource->Collection(ns);
    const std::string what = resource->name + "/";
    auto path_of = [&](const std::string& n) { return collection + "/" + n; };
    if (name.empty() && action != "create" && !(action == "delete" && !flags->selector.empty())) {
      co_return Error("resource: " + action + " needs the object's name (metadata.name in resource.manifest, or NAME "
                      "in resource.flags)" + std::string(action == "delete" ? ", or --selector in resource.flags" : ""));
    }

    json object;  // the object after the action: what the conditions and outputs read
    if (action == "create") {
      auto created = co_await Create(manifest, collection, path_of, name);
      if (!created) co_return Error(created.error().message());
      object = std::move(*created);
      name = object["metadata"].value("name", name);
      f.message = what + name + " created";
    } else if (action == "apply") {
      auto applied = co_await Apply(manifest, collection, path_of(name));
      if (!applied) co_return Error(applied.error().message());
      object = std::move(*applied);
      f.message = what + name + " applied";
    } else if (action == "get") {
      auto answer = co_await client.Call("GET", path_of(name));
      if (!answer) co_return Error(answer.error().message());
      if (answer->status == 404 && flags->ignore_not_found) {
        f.message = what + name + " not found (--ignore-not-found)";
        co_return f;
      }
      if (answer->status / 100 != 2) co_return Refused("GET", path_of(name), *answer);
      object = std::move(answer->body);
    } else if (action == "replace") {
      auto answer = co_await client.Call("PUT", path_of(name), manifest);
      if (!answer) co_return Error(answer.error().message());
      if (answer->status / 100 != 2) co_return Refused("PUT", path_of(name), *answer);
      object = std::move(answer->body);
      f.message = what + name + " replaced";
    } else if (action == "patch") {
      std::string type = strategy == "json"    ? "application/json-patch+json"
                         : strategy == "merge" ? "application/merge-patch+json"
                                               : "application/strategic-merge-patch+json";
      if (!json_patch) manifest.erase("apiVersion"), manifest.erase("kind");
      auto answer = co_await client.Call("PATCH", path_of(name), manifest, type);
      if (!answer) co_return Error(answer.error().message());
      if (answer->status == 415 && strategy == "strategic") {
        co_return Error(kube::ApiError("PATCH", path_of(name), *answer).message() +
                        " (a custom resource takes no strategic merge: set resource.mergeStrategy: merge)");
      }
      if (answer->status / 100 != 2) co_return Refused("PATCH", path_of(name), *answer);
      object = std::move(answer->body);
      f.message = what + name + " patched";
    } else {  // delete
      co_return co_await Delete(collection, path_of, name, flags->selector, what);
    }
    if (cancel.cancelled) co_return Killed();

    // Wait for the conditions, as Argo checks them: any failure requirement that holds fails
    // the step; it succeeds when every success requirement holds (at once with none).
    if (!success->empty() || !failure->empty()) {
      for (;;) {
        for (const ResourceRequirement& req : *failure) {
          if (MatchesResourceCondition({req}, object)) {
            co_return Failed("failure condition \"" + r.failure_condition + "\" matched on " + what + name);
          }
        }
        if (MatchesResourceCondition(*success, object)) break;
        if (!co_await Wait()) co_return Killed();
        auto answer = co_await client.Call("GET", path_of(name));
        if (cancel.cancelled) co_return Killed();
        if (!answer) continue;  // the client retried already; again at the next poll
        if (answer->status == 404) {
          co_return Failed(what + name + " was deleted before its success condition held");
        }
        if (answer->status == 429 || answer->status / 100 == 5) continue;
        if (answer->status / 100 != 2) co_return Refused("GET", path_of(name), *answer);
        object = std::move(answer->body);
      }
    }

    for (const auto& [param, path] : r.json_paths) {
      auto value = EvaluateJsonPath(path, object);
      if (!value) co_return Error("outputs.parameters." + param + ".valueFrom.jsonPath: " + value.error().message());
      f.outputs[param] = std::move(*value);
    }
    co_return f;
  }

  // POST. A 409 for an object this step created before kiln restarted (its kiln.dev
  // annotations) is that object; with generateName, the step's object is looked for first by
  // its kiln.dev labels, so a restarted kiln does not make a second one.
  template <typename PathOf>
  awaitable<Result<json>> Create(json manifest, const std::string& collection, const PathOf& path_of,
                                 const std::string& name) {
    json& meta = manifest["metadata"];
    if (!meta.contains("annotations") || !meta["annotations"].is_object()) meta["annotations"] = json::object();
    meta["annotations"][std::string(kAnnotationWorkflowUid)] = ctx.workflow_uid;
    meta["annotations"][std::string(kAnnotationNode)] = step.node;
    if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
    meta["labels"][std::string(kLabelWorkflowUid)] = LabelValue(ctx.workflow_uid);
    meta["labels"][std::string(kLabelNode)] = LabelValue(step.node);
    if (name.empty()) {
      std::string selector = std::string(kLabelWorkflowUid) + "=" + LabelValue(ctx.workflow_uid) + "," +
                             std::string(kLabelNode) + "=" + LabelValue(step.node);
      auto listed = co_await client.Call("GET", Query(collection, "labelSelector", selector));
      if (!listed) co_return std::unexpected(listed.error());
      if (listed->status / 100 == 2) {
        for (const json& item : listed->body.value("items", json::array())) {
          if (item.is_object() && item.contains("metadata") && item["metadata"].is_object() &&
              item["metadata"].value("annotations", json::object()).value(std::string(kAnnotationNode), "") == step.node) {
            co_return item;  // made by this step before kiln restarted
          }
        }
      }
    }
    auto answer = co_await client.Call("POST", collection, manifest);
    if (!answer) co_return std::unexpected(answer.error());
    if (answer->status == 409 && !name.empty()) {
      auto existing = co_await client.Get(path_of(name));
      if (!existing) co_return std::unexpected(existing.error());
      json ann = existing->contains("metadata") && (*existing)["metadata"].is_object()
                     ? (*existing)["metadata"].value("annotations", json::object())
                     : json::object();
      if (ann.is_object() && ann.value(std::string(kAnnotationWorkflowUid), "") == ctx.workflow_uid &&
          ann.value(std::string(kAnnotationNode), "") == step.node) {
        co_return std::move(*existing);
      }
    }
    if (answer->status / 100 != 2) co_return std::unexpected(kube::ApiError("POST", collection, *answer));
    co_return std::move(answer->body);
  }

  // kubectl apply (client-side, as Argo's kubectl runs it): the manifest is created with the
  // last-applied annotation, or merged into the object with a patch that also removes what the
  // last applied manifest had and this one does not.
  awaitable<Result<json>> Apply(json manifest, const std::string& collection, const std::string& path) {
    json applied = manifest;
    if (applied["metadata"].contains("annotations") && applied["metadata"]["annotations"].is_object()) {
      applied["metadata"]["annotations"].erase(kLastApplied);
    }
    const std::string last_applied = applied.dump();
    auto current = co_await client.Call("GET", path);
    if (!current) co_return std::unexpected(current.error());
    if (current->status == 404) {
      json& meta = manifest["metadata"];
      if (!meta.contains("annotations") || !meta["annotations"].is_object()) meta["annotations"] = json::object();
      meta["annotations"][kLastApplied] = last_applied;
      auto created = co_await client.Call("POST", collection, manifest);
      if (!created) co_return std::unexpected(created.error());
      if (created->status / 100 != 2) co_return std::unexpected(kube::ApiError("POST", collection, *created));
      co_return std::move(created->body);
    }
    if (current->status / 100 != 2) co_return std::unexpected(kube::ApiError("GET", path, *current));
    json last = json::object();
    const json& obj = current->body;
    if (obj.contains("metadata") && obj["metadata"].is_object()) {
      json ann = obj["metadata"].value("annotations", json::object());
      if (ann.is_object() && ann.contains(kLastApplied) && ann[kLastApplied].is_string()) {
        last = json::parse(ann[kLastApplied].get<std::string>(), nullptr, false);
        if (last.is_discarded()) last = json::object();
      }
    }
    // The annotation goes into the desired object before the diff, so that annotations the last
    // manifest had and this one drops become nulls in the patch rather than being kept.
    json desired = applied;
    if (!desired["metadata"].contains("annotations") || !desired["metadata"]["annotations"].is_object()) {
      desired["metadata"]["annotations"] = json::object();
    }
    desired["metadata"]["annotations"][kLastApplied] = last_applied;
    json patch = ApplyPatchOf(last, desired);
    auto patched = co_await client.Call("PATCH", path, patch, "application/strategic-merge-patch+json");
    if (patched && patched->status == 415) {  // custom resources take no strategic merge
      patched = co_await client.Call("PATCH", path, patch, "application/merge-patch+json");
    }
    if (!patched) co_return std::unexpected(patched.error());
    if (patched->status / 100 != 2) co_return std::unexpected(kube::ApiError("PATCH", path, *patched));
    co_return std::move(patched->body);
  }

  // kubectl delete, as Argo runs it (--ignore-not-found): DELETE (propagationPolicy
  // Background) of the object, or of each object the selector lists, then a wait until they
  // are gone (finalizers may hold them), as kubectl waits.
  template <typename PathOf>
  awaitable<scheduler::StepFinished> Delete(const std::string& collection, const PathOf& path_of,
                                            const std::string& name, const std::string& selector,
                                            const std::string& what) {
    std::vector<std::string> names;
    std::map<std::string, std::string> uids;  // what was deleted: another uid is a new object
    if (!name.empty()) {
      names.push_back(name);
    } else {
      std::string list_path = Query(collection, "labelSelector", selector);
      auto listed = co_await client.Call("GET", list_path);
      if (!listed) co_return Error(listed.error().message());
      if (listed->status / 100 != 2) co_return Refused("GET", list_path, *listed);
      for (const json& item : listed->body.value("items", json::array())) {
        if (item.is_object() && item.contains("metadata") && item["metadata"].is_object()) {
          const json& meta = item["metadata"];
          std::string n = meta.contains("name") && meta["name"].is_string() ? meta["name"].get<std::string>() : "";
          if (n.empty()) continue;  // never DELETE the collection itself
          names.push_back(n);
          if (meta.contains("uid") && meta["uid"].is_string()) uids[n] = meta["uid"].get<std::string>();
        }
      }
    }
    for (const std::string& n : names) {
      if (cancel.cancelled) co_return Killed();
      std::string path = Query(path_of(n), "propagationPolicy", "Background");
      auto answer = co_await client.Call("DELETE", path);
      if (!answer) co_return Error(answer.error().message());
      if (answer->status / 100 != 2 && answer->status != 404) co_return Refused("DELETE", path, *answer);
      // The uid of what was deleted: a Status's details.uid, or the object still being deleted.
      const json& body = answer->body;
      if (answer->status / 100 == 2 && body.is_object() && !uids.count(n)) {
        const json* uid = nullptr;
        if (body.contains("details") && body["details"].is_object() && body["details"].contains("uid")) {
          uid = &body["details"]["uid"];
        } else if (body.contains("metadata") && body["metadata"].is_object() && body["metadata"].contains("uid")) {
          uid = &body["metadata"]["uid"];
        }
        if (uid && uid->is_string()) uids[n] = uid->get<std::string>();
      }
    }
    for (const std::string& n : names) {
      for (;;) {
        auto answer = co_await client.Call("GET", path_of(n));
        if (cancel.cancelled) co_return Killed();
        if (answer && answer->status == 404) break;
        if (answer && answer->status == 200 && uids.count(n) && answer->body.is_object() &&
            answer->body.contains("metadata") && answer->body["metadata"].is_object() &&
            answer->body["metadata"].value("uid", "") != uids[n]) {
          break;  // gone, and made again (a controller's): what was deleted is deleted
        }
        if (answer && answer->status / 100 != 2 && answer->status != 429 && answer->status / 100 != 5) {
          co_return Refused("GET", path_of(n), *answer);
        }
        if (!co_await Wait()) co_return Killed();
      }
    }
    f.message = name.empty() ? what.substr(0, what.size() - 1) + " -l " + selector + ": " + std::to_string(names.size()) + " deleted"
                             : what + name + " deleted";
    co_return f;
  }
};

}  // namespace

awaitable<scheduler::StepFinished> RunResourceStep(kube::Client& client, JobContext ctx, scheduler::LaunchStep step,
                                                   std::shared_ptr<ResourceCancel> cancel,
                                                   std::chrono::milliseconds poll,
                                                   std::shared_ptr<ResourceDiscovery> discovery) {
  if (!discovery) discovery = std::make_shared<ResourceDiscovery>();
  if (!step.resource) {
    scheduler::StepFinished f;
    f.node = step.node;
    f.error = true;
    f.message = "the step has no resource to act on";
    co_return f;
  }
  ResourceRun run{client, ctx, step, *step.resource, *cancel, poll, *discovery, {}};
  try {
    co_return co_await run.Run();
  } catch (const json::exception& e) {
    // An object of an unexpected shape (a manifest's field, an API answer): the step's error,
    // never kiln's crash.
    run.f.message.clear();
    co_return run.Error(std::string("resource: unexpected JSON: ") + e.what());
  }
}

}  // namespace kiln::executor
