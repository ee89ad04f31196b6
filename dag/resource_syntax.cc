#include "dag/resource_syntax.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

#include "base/strings.h"

namespace kiln::dag {

namespace {

using nlohmann::json;
using Op = ResourceRequirement::Op;

std::optional<int64_t> ParseInt(std::string_view s) {
  s = Trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
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

Error ConditionError(std::string_view text, const std::string& what) {
  return Error(Code::kInvalidArgument, "condition \"" + std::string(text) + "\": " + what);
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

bool MatchesResourceCondition(const std::vector<ResourceRequirement>& requirements, const json& object) {
  for (const ResourceRequirement& r : requirements) {
    const json* v = AtPath(object, r.path);
    std::string text = !v || v->is_null() ? "" : v->is_string() ? v->get<std::string>() : v->dump();  // gjson's String() of null is ""
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
        // `text` is "" when the path is absent, which is no integer.
        const std::optional<int64_t> have = ParseInt(text);
        const std::optional<int64_t> want = ParseInt(r.values.front());
        if (have.has_value() && want.has_value()) {
          ok = r.op == Op::kGreaterThan ? have.value() > want.value() : have.value() < want.value();
        }
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace kiln::dag
