#include "dag/internal/yaml_reader.h"

#include <algorithm>
#include <cstdlib>

#include "base/strings.h"
#include "dag/quantity.h"

namespace kiln::dag::internal {

namespace {

bool IsNullText(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool IsBoolText(std::string_view s) {
  static constexpr std::string_view kBools[] = {
      "true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO",
      "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N"};
  return std::find(std::begin(kBools), std::end(kBools), s) != std::end(kBools);
}

bool BoolValue(std::string_view s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "Yes" || s == "YES" ||
         s == "on" || s == "On" || s == "ON" || s == "y" || s == "Y";
}

bool IsIntText(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i >= s.size()) return false;
  if (s.substr(i).starts_with("0x")) {
    i += 2;
    if (i >= s.size()) return false;
    for (; i < s.size(); ++i) if (!std::isxdigit(static_cast<unsigned char>(s[i])) && s[i] != '_') return false;
    return true;
  }
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '_') return false;
  }
  return true;
}

// YAML 1.1 floats as Go's reader accepts them: [-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?
// and the special values. Hand-written: this runs for every scalar of every manifest.
bool IsFloatText(std::string_view s) {
  if (s == ".inf" || s == "-.inf" || s == "+.inf" || s == ".nan" || s == ".Inf" || s == ".NaN" ||
      s == "-.Inf" || s == "+.Inf" || s == ".INF" || s == ".NAN") {
    return true;
  }
  size_t i = 0;
  auto digit = [&](size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '9'; };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  } else {
    if (!digit(i)) return false;
    while (digit(i) || (i < s.size() && s[i] == '_')) ++i;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (digit(i) || (i < s.size() && s[i] == '_')) ++i;
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size();
}

}  // namespace

ScalarType ResolveScalar(const yaml::Node& node) {
  if (node.IsNull()) return ScalarType::kNull;
  std::string_view tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str" || tag == "!!str") return ScalarType::kString;
  std::string_view s = node.Scalar();
  if (tag == "?" || tag.empty()) {
    if (IsNullText(s)) return ScalarType::kNull;
    if (IsBoolText(s)) return ScalarType::kBool;
    if (IsIntText(s)) return ScalarType::kInt;
    if (IsFloatText(s)) return ScalarType::kFloat;
  }
  return ScalarType::kString;
}

std::string_view DescribeNode(const yaml::Node& node) {
  switch (node.Type()) {
    case yaml::NodeType::kMap: return "a map";
    case yaml::NodeType::kSequence: return "a list";
    case yaml::NodeType::kNull: return "null";
    case yaml::NodeType::kUndefined: return "nothing";
    case yaml::NodeType::kScalar:
      switch (ResolveScalar(node)) {
        case ScalarType::kNull: return "null";
        case ScalarType::kBool: return "a boolean";
        case ScalarType::kInt:
        case ScalarType::kFloat: return "a number";
        case ScalarType::kString: return "a string";
      }
  }
  return "a value";
}

Location LocOf(const yaml::Node& node) {
  yaml::Mark m = node.Mark();
  if (m.line < 0) return {};
  return Location{static_cast<uint32_t>(m.line + 1), static_cast<uint32_t>(m.column + 1)};
}

std::string ScalarText(const yaml::Node& node) {
  return node.IsScalar() ? std::string(node.Scalar()) : std::string();
}

nlohmann::json ToJson(const yaml::Node& node) {
  switch (node.Type()) {
    case yaml::NodeType::kMap: {
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        obj[it->first.IsScalar() ? std::string(it->first.Scalar()) : std::string("?")] = ToJson(it->second);
      }
      return obj;
    }
    case yaml::NodeType::kSequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const yaml::Node& item : node) arr.push_back(ToJson(item));
      return arr;
    }
    case yaml::NodeType::kScalar: {
      std::string s(node.Scalar());
      switch (ResolveScalar(node)) {
        case ScalarType::kNull: return nullptr;
        case ScalarType::kBool: return BoolValue(s);
        case ScalarType::kInt: {
          std::string digits;
          for (char c : s) if (c != '_') digits += c;
          errno = 0;
          long long v = std::strtoll(digits.c_str(), nullptr, 0);
          if (errno == ERANGE) return std::strtod(digits.c_str(), nullptr);
          return static_cast<int64_t>(v);
        }
        case ScalarType::kFloat: return std::strtod(s.c_str(), nullptr);
        case ScalarType::kString: return s;
      }
      return s;
    }
    default: return nullptr;
  }
}

void ParseContext::Error(const yaml::Node& at, const std::string& path, std::string message) const {
  diags->Error(file, LocOf(at), path, std::move(message));
}

void ParseContext::Error(Location at, const std::string& path, std::string message) const {
  diags->Error(file, at, path, std::move(message));
}

void ParseContext::Unknown(const yaml::Node& key, const std::string& path, std::string message) const {
  if (strict) {
    diags->Error(file, LocOf(key), path, std::move(message));
  } else {
    diags->Warning(file, LocOf(key), path, std::move(message));
  }
}

namespace {

bool IsScalarOfType(const yaml::Node& n, std::initializer_list<ScalarType> types) {
  if (!n.IsScalar()) return false;
  ScalarType t = ResolveScalar(n);
  return std::find(types.begin(), types.end(), t) != types.end();
}

std::string Expected(std::string_view what, const yaml::Node& got) {
  std::string msg = "expected " + std::string(what) + ", got " + std::string(DescribeNode(got));
  if (what == "a string" && got.IsScalar()) msg += " (quote it: \"" + std::string(got.Scalar()) + "\")";
  return msg;
}

void CheckQuantity(const ParseContext& ctx, const yaml::Node& n, const std::string& path) {
  if (!IsScalarOfType(n, {ScalarType::kString, ScalarType::kInt, ScalarType::kFloat})) {
    ctx.Error(n, path, Expected("a quantity such as \"500m\" or \"1Gi\"", n));
    return;
  }
  std::string_view text = n.Scalar();
  if (HasTemplateTag(text)) return;
  auto q = ParseQuantity(text);
  if (!q) ctx.Error(n, path, q.error());
}

}  // namespace

nlohmann::json CheckedJson(const ParseContext& ctx, const yaml::Node& node, const std::string& path,
                           JsonKind kind, const JsonSchema* schema, JsonKind elem) {
  // A templated scalar ("{{inputs.parameters.n}}") may stand for any type; it is resolved at run time.
  if (node.IsScalar() && ResolveScalar(node) == ScalarType::kString && HasTemplateTag(node.Scalar())) {
    if (ctx.value_locations) (*ctx.value_locations)[path] = LocOf(node);
    return std::string(node.Scalar());
  }
  switch (kind) {
    case JsonKind::kAny:
      return ToJson(node);
    case JsonKind::kString:
      if (!IsScalarOfType(node, {ScalarType::kString})) ctx.Error(node, path, Expected("a string", node));
      return ToJson(node);
    case JsonKind::kAnyString:
      if (!node.IsScalar() || ResolveScalar(node) == ScalarType::kNull) {
        ctx.Error(node, path, Expected("a string", node));
        return ToJson(node);
      }
      return std::string(node.Scalar());
    case JsonKind::kBool:
      if (!IsScalarOfType(node, {ScalarType::kBool})) ctx.Error(node, path, Expected("a boolean", node));
      return ToJson(node);
    case JsonKind::kInt:
      if (!IsScalarOfType(node, {ScalarType::kInt})) ctx.Error(node, path, Expected("an integer", node));
      return ToJson(node);
    case JsonKind::kNumber:
      if (!IsScalarOfType(node, {ScalarType::kInt, ScalarType::kFloat}))
        ctx.Error(node, path, Expected("a number", node));
      return ToJson(node);
    case JsonKind::kIntOrString:
      if (!IsScalarOfType(node, {ScalarType::kInt, ScalarType::kString}))
        ctx.Error(node, path, Expected("an integer or a string", node));
      return ToJson(node);
    case JsonKind::kQuantity:
      CheckQuantity(ctx, node, path);
      return node.IsScalar() ? nlohmann::json(std::string(node.Scalar())) : ToJson(node);
    case JsonKind::kStringMap:
    case JsonKind::kQuantityMap: {
      if (!node.IsMap()) {
        if (!node.IsNull()) ctx.Error(node, path, Expected("a map", node));
        return nlohmann::json::object();
      }
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        std::string key = ScalarText(it->first);
        std::string child = path + "." + key;
        if (kind == JsonKind::kQuantityMap) {
          CheckQuantity(ctx, it->second, child);
          obj[key] = it->second.IsScalar() ? nlohmann::json(std::string(it->second.Scalar())) : ToJson(it->second);
        } else {
          if (!it->second.IsScalar() || ResolveScalar(it->second) == ScalarType::kNull) {
            ctx.Error(it->second, child, Expected("a string", it->second));
          }
          obj[key] = ScalarText(it->second);
        }
      }
      return obj;
    }
    case JsonKind::kArray: {
      if (!node.IsSequence()) {
        if (!node.IsNull()) ctx.Error(node, path, Expected("a list", node));
        return nlohmann::json::array();
      }
      nlohmann::json arr = nlohmann::json::array();
      size_t i = 0;
      for (const yaml::Node& item : node) {
        arr.push_back(CheckedJson(ctx, item, path + "[" + std::to_string(i) + "]", elem, schema));
        ++i;
      }
      return arr;
    }
    case JsonKind::kObject: {
      if (!node.IsMap()) {
        if (!node.IsNull()) ctx.Error(node, path, Expected("a map", node));
        return nlohmann::json::object();
      }
      if (schema == nullptr || schema->open) return ToJson(node);
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        std::string key = ScalarText(it->first);
        std::string child = path + "." + key;
        auto field = std::find_if(schema->fields.begin(), schema->fields.end(),
                                  [&](const JsonField& f) { return f.name == key; });
        if (field == schema->fields.end()) {
          std::vector<std::string_view> names;
          for (const JsonField& f : schema->fields) names.push_back(f.name);
          ctx.Unknown(it->first, child,
                      "unknown field " + Quote(key) + " in " + std::string(schema->type_name) +
                          DidYouMean(key, names));
          obj[key] = ToJson(it->second);
          continue;
        }
        obj[key] = CheckedJson(ctx, it->second, child, field->kind, field->object, field->elem);
      }
      return obj;
    }
  }
  return ToJson(node);
}

MapReader::MapReader(const ParseContext& ctx, const yaml::Node& node, std::string path)
    : ctx_(ctx), node_(node), path_(std::move(path)) {
  known_.reserve(48);
  entries_.reserve(node_.size());
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) {
      bad_keys_.push_back(it->first);
      continue;
    }
    entries_.emplace_back(std::string_view(it->first.Scalar()), it->second);
  }
}

std::string MapReader::FieldPath(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

bool MapReader::Has(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return true;
  }
  return false;
}

yaml::Node MapReader::Get(std::string_view key) {
  known_.push_back(key);
  for (const auto& [k, v] : entries_) {
    if (k == key) return v;
  }
  return yaml::Node();
}

bool MapReader::String(std::string_view key, std::string* out, Location* loc) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  if (loc) *loc = LocOf(n);
  if (!IsScalarOfType(n, {ScalarType::kString})) {
    ctx_.Error(n, FieldPath(key), Expected("a string", n));
    return false;
  }
  *out = std::string(n.Scalar());
  return true;
}

bool MapReader::AnyString(std::string_view key, std::optional<std::string>* out, Location* loc) {
  yaml::Node n = Get(key);
  if (!n.IsDefined()) return false;
  if (loc) *loc = LocOf(n);
  if (n.IsNull()) return false;
  if (!n.IsScalar()) {
    ctx_.Error(n, FieldPath(key), Expected("a string", n));
    return false;
  }
  *out = std::string(n.Scalar());
  return true;
}

bool MapReader::Bool(std::string_view key, bool* out) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  if (!IsScalarOfType(n, {ScalarType::kBool})) {
    ctx_.Error(n, FieldPath(key), Expected("a boolean (true or false)", n));
    return false;
  }
  *out = BoolValue(n.Scalar());
  return true;
}

bool MapReader::Int(std::string_view key, std::optional<int64_t>* out) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  if (!IsScalarOfType(n, {ScalarType::kInt})) {
    ctx_.Error(n, FieldPath(key), Expected("an integer", n));
    return false;
  }
  nlohmann::json v = ToJson(n);
  if (!v.is_number_integer()) {
    ctx_.Error(n, FieldPath(key), "integer " + std::string(n.Scalar()) + " is out of range");
    return false;
  }
  *out = v.get<int64_t>();
  return true;
}

bool MapReader::StringList(std::string_view key, std::vector<std::string>* out, Location* loc) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  if (loc) *loc = LocOf(n);
  if (!n.IsSequence()) {
    ctx_.Error(n, FieldPath(key), Expected("a list of strings", n));
    return false;
  }
  size_t i = 0;
  bool ok = true;
  for (const yaml::Node& item : n) {
    if (!item.IsScalar() || ResolveScalar(item) == ScalarType::kNull) {
      ctx_.Error(item, FieldPath(key) + "[" + std::to_string(i) + "]", Expected("a string", item));
      ok = false;
    } else {
      out->push_back(std::string(item.Scalar()));
    }
    ++i;
  }
  return ok;
}

bool MapReader::StringMap(std::string_view key, std::map<std::string, std::string>* out) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  if (!n.IsMap()) {
    ctx_.Error(n, FieldPath(key), Expected("a map of strings", n));
    return false;
  }
  bool ok = true;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = ScalarText(it->first);
    if (!it->second.IsScalar() || ResolveScalar(it->second) == ScalarType::kNull) {
      ctx_.Error(it->second, FieldPath(key) + "." + k, Expected("a string", it->second));
      ok = false;
      continue;
    }
    (*out)[k] = std::string(it->second.Scalar());
  }
  return ok;
}

bool MapReader::Json(std::string_view key, nlohmann::json* out, JsonKind kind,
                     const JsonSchema* schema, JsonKind elem) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return false;
  *out = CheckedJson(ctx_, n, FieldPath(key), kind, schema, elem);
  return true;
}

std::optional<yaml::Node> MapReader::Map(std::string_view key) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsMap()) {
    ctx_.Error(n, FieldPath(key), Expected("a map", n));
    return std::nullopt;
  }
  return n;
}

std::optional<yaml::Node> MapReader::List(std::string_view key) {
  yaml::Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsSequence()) {
    ctx_.Error(n, FieldPath(key), Expected("a list", n));
    return std::nullopt;
  }
  return n;
}

void MapReader::Finish() {
  for (const yaml::Node& key : bad_keys_) {
    ctx_.Error(key, path_, "map keys must be strings, got " + std::string(DescribeNode(key)));
  }
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    std::string_view key = it->first.Scalar();
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    ctx_.Unknown(it->first, FieldPath(key), "unknown field" + DidYouMean(key, known_));
  }
}

}  // namespace kiln::dag::internal
