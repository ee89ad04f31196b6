#include "executor/kubernetes_resource.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "dag/parse.h"

namespace kiln::executor {

namespace {

using nlohmann::json;
using boost::asio::awaitable;
using Op = ResourceRequirement::Op;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  s = Trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// kubectl prints a string as it is and anything else as JSON.
std::string Text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Splits on `sep` outside parentheses.
std::vector<std::string_view> SplitTop(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(') ++depth;
    if (s[i] == ')') --depth;
    if (s[i] == sep && depth == 0) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

// The value at dotted `path` ("\." escapes a dot; a number indexes an array), or null.
const json* AtPath(const json& object, std::string_view path) {
  const json* cur = &object;
  std::string key;
  auto step = [&]() -> bool {
    if (cur->is_object()) {
      auto it = cur->find(key);
      if (it == cur->end()) return false;
      cur = &*it;
    } else if (cur->is_array()) {
      auto i = ParseInt(key);
      if (!i || *i < 0 || static_cast<size_t>(*i) >= cur->size()) return false;
      cur = &(*cur)[static_cast<size_t>(*i)];
    } else {
      return false;
    }
    key.clear();
    return true;
  };
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' && i + 1 < path.size() && path[i + 1] == '.') {
      key += '.';
      ++i;
    } else if (path[i] == '.') {
      if (!step()) return nullptr;
    } else {
      key += path[i];
    }
  }
  return step() ? cur : nullptr;
}

Error ConditionError(std::string_view text, const std::string& what) {
  return Error(Code::kInvalidArgument, "condition \"" + std::string(text) + "\": " + what);
}

// ---- JSONPath ------------------------------------------------------------------------------

class JsonPath {
 public:
  JsonPath(std::string_view expr, const json& root) : s_(expr), root_(root) {}

  Result<std::vector<const json*>> Run() {
    std::vector<const json*> cur = {&root_};
    if (!s_.empty() && s_[0] == '$') ++i_;
    while (i_ < s_.size()) {
      if (Std(" \t")) {
        ++i_;
        continue;
      }
      if (s_.substr(i_).starts_with("..")) {
        i_ += 2;
        std::string name = Name();
        if (name.empty()) return Bad("a name after ..");
        std::vector<const json*> next;
        for (const json* c : cur) Descend(*c, name, next);
        cur = std::move(next);
      } else if (s_[i_] == '.') {
        ++i_;
        if (i_ < s_.size() && s_[i_] == '*') {
          ++i_;
          cur = Children(cur);
          continue;
        }
        std::string name = Name();
        if (name.empty()) continue;  // "{.}" is the object itself
        cur = Field(cur, name);
      } else if (s_[i_] == '[') {
        auto r = Bracket(cur);
        if (!r) return std::unexpected(r.error());
        cur = std::move(*r);
      } else {
        return Bad("'.' or '['");
      }
    }
    return cur;
  }

 private:
  bool Std(std::string_view set) const { return i_ < s_.size() && set.find(s_[i_]) != std::string_view::npos; }

  Error BadError(std::string_view wanted) const {
    return Error(Code::kInvalidArgument, "JSONPath \"{" + std::string(s_) + "}\": expected " + std::string(wanted) +
                                             " at offset " + std::to_string(i_));
  }
  std::unexpected<Error> Bad(std::string_view wanted) const { return std::unexpected(BadError(wanted)); }

  std::string Name() {
    std::string name;
    while (i_ < s_.size() && s_[i_] != '.' && s_[i_] != '[' && s_[i_] != ' ') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      name += s_[i_++];
    }
    return name;
  }

  static std::vector<const json*> Field(const std::vector<const json*>& cur, const std::string& name) {
    std::vector<const json*> next;
    for (const json* c : cur) {
      if (!c->is_object()) continue;
      if (auto it = c->find(name); it != c->end()) next.push_back(&*it);
    }
    return next;
  }

  static std::vector<const json*> Children(const std::vector<const json*>& cur) {
    std::vector<const json*> next;
    for (const json* c : cur) {
      if (!c->is_structured()) continue;
      for (const json& v : *c) next.push_back(&v);
    }
    return next;
  }

  static void Descend(const json& v, const std::string& name, std::vector<const json*>& out) {
    if (v.is_object()) {
      if (auto it = v.find(name); it != v.end()) out.push_back(&*it);
    }
    if (v.is_structured()) {
      for (const json& c : v) Descend(c, name, out);
    }
  }

  std::optional<std::string> Quoted() {
    if (!Std("'\"")) return std::nullopt;
    char q = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (i_ >= s_.size()) return std::nullopt;
    ++i_;
    return out;
  }

  Result<std::vector<const json*>> Bracket(const std::vector<const json*>& cur) {
    ++i_;  // [
    size_t close = s_.find(']', i_);
    if (close == std::string_view::npos) return Bad("']'");
    if (s_[i_] == '*') {
      i_ = close + 1;
      return Children(cur);
    }
    if (Std("'\"")) {
      auto name = Quoted();
      if (!name || i_ >= s_.size() || s_[i_] != ']') return Bad("a quoted name and ']'");
      ++i_;
      return Field(cur, *name);
    }
    if (s_[i_] == '?') return Filter(cur);
    auto index = ParseInt(s_.substr(i_, close - i_));
    if (!index) return Bad("an index, '*', a quoted name or a filter ?(...) in [...]");
    i_ = close + 1;
    std::vector<const json*> next;
    for (const json* c : cur) {
      if (!c->is_array()) continue;
      int64_t n = static_cast<int64_t>(c->size());
      int64_t k = *index < 0 ? n + *index : *index;
      if (k >= 0 && k < n) next.push_back(&(*c)[static_cast<size_t>(k)]);
    }
    return next;
  }

  // [?(@.path OP literal)] or [?(@.path)].
  Result<std::vector<const json*>> Filter(const std::vector<const json*>& cur) {
    ++i_;  // ?
    if (i_ >= s_.size() || s_[i_] != '(') return Bad("'(' after '?'");
    size_t end = s_.find(")]", i_);
    if (end == std::string_view::npos) return Bad("')]' closing the filter");
    std::string_view body = Trim(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 2;
    if (!body.starts_with("@")) return Bad("a filter on @");
    size_t op_at = body.find_first_of("=!<>");
    std::string_view lhs = Trim(body.substr(1, op_at == std::string_view::npos ? std::string_view::npos : op_at - 1));
    std::string op;
    std::optional<json> rhs;
    if (op_at != std::string_view::npos) {
      size_t op_end = body.find_first_not_of("=!<>", op_at);
      op = std::string(body.substr(op_at, op_end - op_at));
      std::string_view lit = Trim(body.substr(op_end == std::string_view::npos ? body.size() : op_end));
      if (lit.size() >= 2 && (lit.front() == '"' || lit.front() == '\'') && lit.back() == lit.front()) {
        rhs = json(std::string(lit.substr(1, lit.size() - 2)));
      } else {
        json parsed = json::parse(lit, nullptr, false);
        if (parsed.is_discarded()) return Bad("a quoted string, number, true or false after " + op);
        rhs = std::move(parsed);
      }
      if (op != "==" && op != "!=" && op != "<" && op != ">" && op != "<=" && op != ">=") {
        return Bad("==, !=, <, <=, > or >= in the filter");
      }
    }
    std::vector<const json*> next;
    for (const json* c : cur) {
      if (!c->is_array()) continue;
      for (const json& e : *c) {
        std::string_view path = lhs.starts_with(".") ? lhs.substr(1) : lhs;
        const json* v = path.empty() ? &e : AtPath(e, path);
        bool keep = false;
        if (!rhs) {
          keep = v != nullptr && !v->is_null() && *v != false;
        } else if (v != nullptr) {
          if (op == "==") keep = *v == *rhs;
          if (op == "!=") keep = *v != *rhs;
          if (v->is_number() && rhs->is_number()) {
            double a = v->get<double>(), b = rhs->get<double>();
            if (op == "<") keep = a < b;
            if (op == "<=") keep = a <= b;
            if (op == ">") keep = a > b;
            if (op == ">=") keep = a >= b;
          }
        }
        if (keep) next.push_back(&e);
      }
    }
    return next;
  }

  std::string_view s_;
  const json& root_;
  size_t i_ = 0;
};

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

Result<std::vector<ResourceRequirement>> ParseResourceCondition(std::string_view text) {
  std::vector<ResourceRequirement> out;
  if (Trim(text).empty()) return out;
  for (std::string_view part : SplitTop(text, ',')) {
    part = Trim(part);
    if (part.empty()) return std::unexpected(ConditionError(text, "an empty requirement (two commas, or one at an end)"));
    ResourceRequirement r;
    if (part.front() == '!') {
      r.path = std::string(Trim(part.substr(1)));
      r.op = Op::kDoesNotExist;
      if (r.path.empty() || r.path.find(' ') != std::string::npos) {
        return std::unexpected(ConditionError(text, "'!' needs a path (e.g. !status.failed)"));
      }
      out.push_back(std::move(r));
      continue;
    }
    size_t end = part.find_first_of(" \t=!<>");
    r.path = std::string(part.substr(0, end));
    std::string_view rest = end == std::string_view::npos ? std::string_view() : Trim(part.substr(end));
    if (rest.empty()) {
      r.op = Op::kExists;
    } else if (rest.starts_with("in ") || rest.starts_with("in(") || rest.starts_with("notin ") ||
               rest.starts_with("notin(")) {
      r.op = rest.starts_with("in") ? Op::kIn : Op::kNotIn;
      rest = Trim(rest.substr(r.op == Op::kIn ? 2 : 5));
      if (!rest.starts_with("(") || !rest.ends_with(")")) {
        return std::unexpected(ConditionError(text, r.path + ": in and notin take a list in parentheses, e.g. (Failed, Error)"));
      }
      for (std::string_view v : SplitTop(rest.substr(1, rest.size() - 2), ',')) r.values.emplace_back(Trim(v));
    } else {
      std::string_view op = rest.substr(0, rest.find_first_not_of("=!<>"));
      if (op == "=" || op == "==") {
        r.op = Op::kEquals;
      } else if (op == "!=") {
        r.op = Op::kNotEquals;
      } else if (op == ">") {
        r.op = Op::kGreaterThan;
      } else if (op == "<") {
        r.op = Op::kLessThan;
      } else {
        return std::unexpected(ConditionError(
            text, r.path + ": unknown operator \"" + std::string(op.empty() ? rest.substr(0, rest.find(' ')) : op) +
                      "\" (use =, ==, !=, <, >, in, notin, or a bare path for exists)"));
      }
      std::string_view value = Trim(rest.substr(op.size()));
      if (value.empty()) return std::unexpected(ConditionError(text, r.path + " " + std::string(op) + ": a value is missing"));
      if ((r.op == Op::kGreaterThan || r.op == Op::kLessThan) && !ParseInt(value)) {
        return std::unexpected(ConditionError(text, r.path + " " + std::string(op) + " needs an integer, not \"" +
                                                        std::string(value) + "\""));
      }
      r.values.emplace_back(value);
    }
    if (r.path.empty()) return std::unexpected(ConditionError(text, "a requirement starts with no path"));
    out.push_back(std::move(r));
  }
  return out;
}

bool MatchesResourceCondition(const std::vector<ResourceRequirement>& requirements, const json& object) {
  for (const ResourceRequirement& r : requirements) {
    const json* v = AtPath(object, r.path);
    std::string text = v ? Text(*v) : "";
    bool listed = std::find(r.values.begin(), r.values.end(), text) != r.values.end();
    bool ok = false;
    switch (r.op) {
      case Op::kExists: ok = v != nullptr; break;
      case Op::kDoesNotExist: ok = v == nullptr; break;
      case Op::kEquals:
      case Op::kIn: ok = v != nullptr && listed; break;
      case Op::kNotEquals:
      case Op::kNotIn: ok = v == nullptr || !listed; break;
      case Op::kGreaterThan:
      case Op::kLessThan: {
        auto have = v ? ParseInt(text) : std::nullopt;
        auto want = ParseInt(r.values.front());
        ok = have && want && (r.op == Op::kGreaterThan ? *have > *want : *have < *want);
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

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
    auto results = JsonPath(expr, object).Run();
    if (!results) return std::unexpected(results.error());
    for (size_t k = 0; k < results->size(); ++k) {
      if (k) out += ' ';
      out += Text(*(*results)[k]);
    }
    i = close + 1;
  }
  return out;
}

Result<ResourceFlags> ParseResourceFlags(const std::vector<std::string>& flags) {
  ResourceFlags out;
  std::vector<std::string> positional;
  auto bad = [](const std::string& what) {
    return MakeError(Code::kInvalidArgument,
                     "resource.flags: " + what +
                         "; kiln calls the API itself and understands TYPE [NAME], --selector/-l, --namespace/-n, "
                         "--ignore-not-found and --validate");
  };
  for (size_t i = 0; i < flags.size(); ++i) {
    const std::string& f = flags[i];
    if (!f.starts_with("-")) {
      positional.push_back(f);
      continue;
    }
    std::string name = f, value;
    bool has_value = false;
    if (size_t eq = f.find('='); eq != std::string::npos) {
      name = f.substr(0, eq);
      value = f.substr(eq + 1);
      has_value = true;
    }
    auto take = [&]() -> std::optional<std::string> {
      if (has_value) return value;
      if (i + 1 < flags.size()) return flags[++i];
      return std::nullopt;
    };
    if (name == "--selector" || name == "-l") {
      auto v = take();
      if (!v) return bad(name + " needs a value");
      out.selector = *v;
    } else if (name == "--namespace" || name == "-n") {
      auto v = take();
      if (!v) return bad(name + " needs a value");
      out.namespace_ = *v;
    } else if (name == "--ignore-not-found") {
      out.ignore_not_found = !has_value || value == "true";
    } else if (name == "--validate") {
      // Accepted: the API server validates what it is sent (kubectl's client-side schema
      // check has no counterpart here).
    } else {
      return bad("unsupported flag \"" + f + "\"");
    }
  }
  if (positional.size() == 1 && positional[0].find('/') != std::string::npos) {
    size_t slash = positional[0].find('/');
    out.type = positional[0].substr(0, slash);
    out.name = positional[0].substr(slash + 1);
  } else if (positional.size() <= 2) {
    if (!positional.empty()) out.type = positional[0];
    if (positional.size() == 2) out.name = positional[1];
  } else {
    return bad("more than TYPE and NAME given (\"" + positional[2] + "\")");
  }
  if (out.type.empty() && !out.name.empty()) return bad("a NAME without a TYPE");
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

awaitable<scheduler::StepFinished> RunResourceStep(kube::Client& client, JobContext ctx,
                                                   scheduler::LaunchStep step, std::shared_ptr<ResourceCancel> cancel,
                                                   std::chrono::milliseconds poll) {
  scheduler::StepFinished f;
  f.node = step.node;
  auto error = [&](std::string message) {
    f.error = true;
    f.exit_code = -1;
    f.message = std::move(message);
    return f;
  };
  auto failed = [&](std::string message) {
    f.exit_code = 1;
    f.message = std::move(message);
    return f;
  };
  if (!step.resource) co_return error("the step has no resource to act on");
  const scheduler::LaunchStep::Resource& r = *step.resource;
  if (step.tmpl && step.tmpl->resource.set_owner_reference) {
    co_return error(
        "resource.setOwnerReference makes the object owned by the Workflow object Argo keeps in the cluster; kiln "
        "keeps none, so nothing could own it: remove setOwnerReference and delete the object in a later step or "
        "an onExit handler (action: delete)");
  }
  auto flags = ParseResourceFlags(r.flags);
  if (!flags) co_return error(flags.error().message());
  auto success = ParseResourceCondition(r.success_condition);
  if (!success) co_return error("resource.successCondition: " + success.error().message());
  auto failure = ParseResourceCondition(r.failure_condition);
  if (!failure) co_return error("resource.failureCondition: " + failure.error().message());
  const std::string& action = r.action;
  const std::string strategy = r.merge_strategy.empty() ? "strategic" : r.merge_strategy;
  if (action == "patch" && strategy != "strategic" && strategy != "merge" && strategy != "json") {
    co_return error("resource.mergeStrategy \"" + strategy + "\": use strategic (the default), merge or json");
  }
  const bool json_patch = action == "patch" && strategy == "json";

  json manifest;
  if (!Trim(r.manifest).empty()) {
    auto m = dag::YamlToJson("resource.manifest", r.manifest);
    if (!m) co_return error(m.error().message());
    manifest = std::move(*m);
    if (json_patch ? !manifest.is_array() : !manifest.is_object()) {
      co_return error(json_patch ? "resource.manifest of a json patch must be a list of operations (RFC 6902)"
                                 : "resource.manifest must be one Kubernetes object (apiVersion, kind, metadata)");
    }
  }
  std::string api_version, kind, name, ns;
  if (manifest.is_object()) {
    api_version = manifest.value("apiVersion", "");
    kind = manifest.value("kind", "");
    json meta = manifest.value("metadata", json::object());
    name = meta.value("name", "");
    ns = meta.value("namespace", "");
  }
  if (!flags->name.empty()) name = flags->name;
  if (!flags->namespace_.empty()) ns = flags->namespace_;
  if (ns.empty()) ns = ctx.namespace_;
  if (manifest.is_null() && flags->type.empty()) {
    co_return error("resource: no manifest, and no TYPE in resource.flags to say what to " + action);
  }
  auto resource = co_await Discover(client, api_version, kind, flags->type);
  if (!resource) co_return error(resource.error().message());
  if (manifest.is_object() && resource->namespaced) manifest["metadata"]["namespace"] = ns;
  const std::string collection = resource->Collection(ns);
  const std::string what = resource->name + "/";
  auto path_of = [&](const std::string& n) { return collection + "/" + n; };
  auto need_name = [&]() -> std::optional<std::string> {
    if (!name.empty()) return std::nullopt;
    return "resource: " + action + " needs the object's name (metadata.name in resource.manifest, or NAME in resource.flags)";
  };
  auto refused = [&](const std::string& method, const std::string& path, const kube::ApiResponse& answer) {
    return error(kube::ApiError(method, path, answer).message());
  };

  json object;  // the object after the action (what the conditions and outputs read)
  if (action == "create" || action == "apply") {
    // kiln's annotations let a restarted kiln recognise the object it created (a 409 then).
    json& annotations = manifest["metadata"]["annotations"];
    if (!annotations.is_object()) annotations = json::object();
    annotations[std::string(kAnnotationWorkflowUid)] = ctx.workflow_uid;
    annotations[std::string(kAnnotationNode)] = step.node;
    auto answer = co_await client.Call("POST", collection, manifest);
    if (!answer) co_return error(answer.error().message());
    if (answer->status == 409 && !name.empty()) {
      auto existing = co_await client.Get(path_of(name));
      if (!existing) co_return error(existing.error().message());
      const json ann = (*existing)["metadata"].value("annotations", json::object());
      const bool ours = ann.value(std::string(kAnnotationWorkflowUid), "") == ctx.workflow_uid &&
                        ann.value(std::string(kAnnotationNode), "") == step.node;
      if (ours) {
        object = std::move(*existing);  // created by this step before kiln restarted
      } else if (action == "apply") {
        // kubectl apply of an object that exists: its fields merged into the object.
        std::string patch_path = path_of(name);
        auto patched = co_await client.Call("PATCH", patch_path, manifest, "application/strategic-merge-patch+json");
        if (patched && patched->status == 415) {  // custom resources take no strategic merge
          patched = co_await client.Call("PATCH", patch_path, manifest, "application/merge-patch+json");
        }
        if (!patched) co_return error(patched.error().message());
        if (patched->status / 100 != 2) co_return refused("PATCH", patch_path, *patched);
        object = std::move(patched->body);
      } else {
        co_return refused("POST", collection, *answer);
      }
    } else if (answer->status / 100 != 2) {
      co_return refused("POST", collection, *answer);
    } else {
      object = std::move(answer->body);
    }
    name = object["metadata"].value("name", name);
    f.message = what + name + (action == "create" ? " created" : " applied");
  } else if (action == "get") {
    if (auto e = need_name()) co_return error(*e);
    auto answer = co_await client.Call("GET", path_of(name));
    if (!answer) co_return error(answer.error().message());
    if (answer->status == 404 && flags->ignore_not_found) {
      f.message = what + name + " not found (--ignore-not-found)";
      co_return f;
    }
    if (answer->status / 100 != 2) co_return refused("GET", path_of(name), *answer);
    object = std::move(answer->body);
  } else if (action == "replace") {
    if (auto e = need_name()) co_return error(*e);
    auto answer = co_await client.Call("PUT", path_of(name), manifest);
    if (!answer) co_return error(answer.error().message());
    if (answer->status / 100 != 2) co_return refused("PUT", path_of(name), *answer);
    object = std::move(answer->body);
    f.message = what + name + " replaced";
  } else if (action == "patch") {
    if (auto e = need_name()) co_return error(*e);
    std::string type = strategy == "json"    ? "application/json-patch+json"
                       : strategy == "merge" ? "application/merge-patch+json"
                                             : "application/strategic-merge-patch+json";
    auto answer = co_await client.Call("PATCH", path_of(name), manifest, type);
    if (!answer) co_return error(answer.error().message());
    if (answer->status == 415 && strategy == "strategic") {
      co_return error(kube::ApiError("PATCH", path_of(name), *answer).message() +
                      " (a custom resource takes no strategic merge: set resource.mergeStrategy: merge)");
    }
    if (answer->status / 100 != 2) co_return refused("PATCH", path_of(name), *answer);
    object = std::move(answer->body);
    f.message = what + name + " patched";
  } else if (action == "delete") {
    // As Argo runs it (kubectl delete --ignore-not-found): an object already gone is deleted.
    std::string path;
    if (!name.empty()) {
      path = Query(path_of(name), "propagationPolicy", "Background");
    } else if (!flags->selector.empty()) {
      path = Query(Query(collection, "labelSelector", flags->selector), "propagationPolicy", "Background");
    } else {
      co_return error("resource: delete needs the object's name (metadata.name, or NAME in resource.flags) or "
                      "--selector in resource.flags");
    }
    auto answer = co_await client.Call("DELETE", path);
    if (!answer) co_return error(answer.error().message());
    if (answer->status / 100 != 2 && answer->status != 404) co_return refused("DELETE", path, *answer);
    f.message = what + (name.empty() ? "-l " + flags->selector : name) + " deleted";
    co_return f;
  } else {
    co_return error("resource.action \"" + action + "\": use get, create, apply, delete, replace or patch");
  }

  // Wait for the conditions: the failure condition first, as Argo checks them.
  if (!success->empty() || !failure->empty()) {
    for (;;) {
      if (!failure->empty() && MatchesResourceCondition(*failure, object)) {
        co_return failed("failure condition \"" + r.failure_condition + "\" matched on " + what + name);
      }
      if (!success->empty() && MatchesResourceCondition(*success, object)) break;
      cancel->timer.expires_after(poll);
      boost::system::error_code ec;
      co_await cancel->timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      if (cancel->cancelled) co_return failed("killed");
      auto answer = co_await client.Call("GET", path_of(name));
      if (cancel->cancelled) co_return failed("killed");
      if (!answer) continue;  // the client retried already; try again at the next poll
      if (answer->status == 404) {
        co_return failed(what + name + " was deleted before " +
                         (success->empty() ? "its failure condition could be checked" : "its success condition held"));
      }
      if (answer->status / 100 != 2) continue;
      object = std::move(answer->body);
    }
  }

  // Output parameters read from the object.
  if (step.tmpl) {
    for (const dag::Parameter& p : step.tmpl->outputs.parameters) {
      if (!p.value_from) continue;
      if (!p.value_from->jq_filter.empty()) {
        co_return error("outputs.parameters." + p.name +
                        ".valueFrom.jqFilter is not supported by kiln (no jq): use valueFrom.jsonPath");
      }
      if (p.value_from->json_path.empty()) continue;
      auto value = EvaluateJsonPath(p.value_from->json_path, object);
      if (!value) co_return error("outputs.parameters." + p.name + ".valueFrom.jsonPath: " + value.error().message());
      f.outputs[p.name] = std::move(*value);
    }
  }
  co_return f;
}

}  // namespace kiln::executor
