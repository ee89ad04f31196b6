// Evaluation of ExprProgram and the functions available to expressions.
#include <algorithm>
#include <cerrno>
#include <cmath>

#include "base/strings.h"
#include "dag/expr/expr_lang.h"
#include "dag/expr/go_time.h"
#include "dag/expr/jsonpath.h"
#include "dag/expr/regex_search.h"
#include "dag/expr/value_format.h"

namespace kiln::expr {
namespace {

using json = nlohmann::json;
using Kind = ExprProgram::Kind;
using Op = ExprProgram::Op;
using Node = ExprProgram::Node;
constexpr uint32_t kNone = ExprProgram::kNone;
constexpr int64_t kMaxRange = 1'000'000;

struct EvalError {
  std::string message;
  bool missing = false;  // an unknown name or nil access: `??` falls back on these
};
using Value = std::expected<json, EvalError>;

std::unexpected<EvalError> Error(std::string message, bool missing = false) {
  return std::unexpected(EvalError{std::move(message), missing});
}

bool IsInt(const json& v) { return v.is_number_integer(); }
int64_t ToInt(const json& v) {
  return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
}
double ToDouble(const json& v) { return v.get<double>(); }
int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapMul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}
int64_t Trunc(double d) {
  if (std::isnan(d)) return 0;
  if (d >= 9.2e18) return INT64_MAX;
  if (d <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(d);
}

bool Equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (IsInt(a) && IsInt(b)) return ToInt(a) == ToInt(b);
    return ToDouble(a) == ToDouble(b);
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!Equal(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a.items()) {
      auto it = b.find(key);
      if (it == b.end() || !Equal(value, *it)) return false;
    }
    return true;
  }
  return a == b;
}

bool IsSpaceChar(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string TrimSpace(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpaceChar(s[b])) ++b;
  while (e > b && IsSpaceChar(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos);
  return out;
}

json Split(const std::string& s, const std::string& sep) {
  json out = json::array();
  if (sep.empty()) {
    for (size_t i = 0; i < s.size();) {
      size_t n = 1;
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0xF0) n = 4; else if (c >= 0xE0) n = 3; else if (c >= 0xC0) n = 2;
      out.push_back(s.substr(i, n));
      i += n;
    }
    return out;
  }
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(sep, pos);
    if (hit == std::string::npos) break;
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

std::string Base64Encode(const std::string& in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < in.size()) {
    uint32_t n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Go's base64.StdEncoding.DecodeString; sprig returns the error text as the result.
std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  auto illegal = [](size_t at) { return "illegal base64 data at input byte " + std::to_string(at); };
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    int v[4];
    size_t n = 0;
    size_t start = i;
    for (; n < 4 && i < in.size(); ++n, ++i) {
      if (in[i] == '=') break;
      v[n] = value(in[i]);
      if (v[n] < 0) return illegal(i);
    }
    if (n < 4) {
      // Padding or a short final quantum.
      if (n < 2) return illegal(i < in.size() ? i : start + n);
      size_t pad = 4 - n;
      for (size_t p = 0; p < pad; ++p, ++i) {
        if (i >= in.size() || in[i] != '=') return illegal(i < in.size() ? i : in.size());
      }
      if (i != in.size()) return illegal(i);
    }
    uint32_t bits = 0;
    for (size_t k = 0; k < 4; ++k) bits = (bits << 6) | static_cast<uint32_t>(k < n ? v[k] : 0);
    out += static_cast<char>((bits >> 16) & 0xFF);
    if (n > 2) out += static_cast<char>((bits >> 8) & 0xFF);
    if (n > 3) out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

// Go's strconv.ParseInt(s, 10, 64).
std::optional<int64_t> ParseInt10(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (size_t j = i; j < s.size(); ++j) {
    if (s[j] < '0' || s[j] > '9') return std::nullopt;
  }
  errno = 0;
  long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return v;
}

// Go's strconv.ParseFloat(s, 64), close enough: the whole string must be a number.
std::optional<double> ParseFloat(const std::string& s) {
  if (s.empty() || IsSpaceChar(s[0])) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// sprig's toInt64 (spf13/cast): failures are 0.
int64_t SprigInt(const json& v) {
  if (IsInt(v)) return ToInt(v);
  if (v.is_number_float()) return Trunc(ToDouble(v));
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (auto i = ParseInt10(s)) return *i;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
      char* end = nullptr;
      long long h = std::strtoll(s.c_str() + 2, &end, 16);
      if (*end == '\0') return h;
    }
  }
  return 0;
}

bool Empty(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return true;
    case json::value_t::boolean: return !v.get<bool>();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return ToInt(v) == 0;
    case json::value_t::number_float: return ToDouble(v) == 0;
    case json::value_t::string: return v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return v.empty();
    default: return true;
  }
}

std::unexpected<EvalError> Mismatch(std::string_view op, const json& a, const json& b) {
  return Error("invalid operation: " + std::string(op) + " (mismatched types " + TypeName(a) + " and " +
               TypeName(b) + ")");
}

std::string_view OpText(Op op) {
  switch (op) {
    case Op::kNot: return "!";
    case Op::kNeg: return "-";
    case Op::kPlus: return "+";
    case Op::kOr: return "||";
    case Op::kAnd: return "&&";
    case Op::kEq: return "==";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    case Op::kIn: return "in";
    case Op::kNotIn: return "not in";
    case Op::kMatches: return "matches";
    case Op::kNotMatches: return "not matches";
    case Op::kContains: return "contains";
    case Op::kNotContains: return "not contains";
    case Op::kStartsWith: return "startsWith";
    case Op::kNotStartsWith: return "not startsWith";
    case Op::kEndsWith: return "endsWith";
    case Op::kNotEndsWith: return "not endsWith";
    case Op::kRange: return "..";
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    case Op::kMod: return "%";
    case Op::kPow: return "**";
    case Op::kCoalesce: return "??";
    case Op::kNone: break;
  }
  return "?";
}


class Args {
 public:
  Args(std::string name, std::vector<json> values) : name_(std::move(name)), values_(std::move(values)) {}
  size_t size() const { return values_.size(); }
  const json& operator[](size_t i) const { return values_[i]; }
  const std::vector<json>& all() const { return values_; }

  std::expected<void, EvalError> Count(size_t min, size_t max) const {
    if (values_.size() >= min && values_.size() <= max) return {};
    std::string expected = min == max ? std::to_string(min)
                           : max == SIZE_MAX ? "at least " + std::to_string(min)
                                             : std::to_string(min) + " to " + std::to_string(max);
    return Error(name_ + "() expects " + expected + " argument" + (max == 1 && min == 1 ? "" : "s") +
                 ", got " + std::to_string(values_.size()));
  }
  std::expected<std::string, EvalError> Str(size_t i) const {
    if (values_[i].is_string()) return values_[i].get<std::string>();
    return Error(name_ + "() expects a string as argument " + std::to_string(i + 1) + ", got " +
                 TypeName(values_[i]));
  }
  std::expected<int64_t, EvalError> Int(size_t i) const {
    if (IsInt(values_[i])) return ToInt(values_[i]);
    return Error(name_ + "() expects an int as argument " + std::to_string(i + 1) + ", got " +
                 TypeName(values_[i]));
  }
  std::expected<void, EvalError> Array(size_t i) const {
    if (values_[i].is_array()) return {};
    return Error(name_ + "() expects an array as argument " + std::to_string(i + 1) + ", got " +
                 TypeName(values_[i]));
  }
  std::unexpected<EvalError> Fail(const std::string& message) const { return Error(name_ + "(): " + message); }

 private:
  std::string name_;
  std::vector<json> values_;
};

#define KILN_TRY(expr)                                   \
  do {                                                   \
    auto kiln_try_result = (expr);                       \
    if (!kiln_try_result) return std::unexpected(kiln_try_result.error()); \
  } while (0)
#define KILN_ASSIGN(lhs, expr)                           \
  auto lhs##_result = (expr);                            \
  if (!lhs##_result) return std::unexpected(lhs##_result.error()); \
  auto lhs = std::move(*lhs##_result)

// Variadic numbers, or one array of numbers: min/max.
Value MinMax(const Args& args, bool max) {
  KILN_TRY(args.Count(1, SIZE_MAX));
  const std::vector<json>* items = &args.all();
  std::vector<json> flat;
  if (args.size() == 1 && args[0].is_array()) {
    flat.assign(args[0].begin(), args[0].end());
    items = &flat;
  }
  if (items->empty()) return args.Fail("empty array");
  json best;
  for (const json& v : *items) {
    if (!v.is_number()) return args.Fail("expects numbers, got " + TypeName(v));
    if (best.is_null() || (max ? ToDouble(v) > ToDouble(best) : ToDouble(v) < ToDouble(best))) best = v;
  }
  return best;
}

Value ExprBuiltin(const std::string& name, const Args& args) {
  if (name == "len") {
    KILN_TRY(args.Count(1, 1));
    if (args[0].is_string()) return static_cast<int64_t>(args[0].get_ref<const std::string&>().size());
    if (args[0].is_array() || args[0].is_object()) return static_cast<int64_t>(args[0].size());
    return args.Fail("invalid argument of type " + TypeName(args[0]));
  }
  if (name == "abs") {
    KILN_TRY(args.Count(1, 1));
    if (IsInt(args[0])) return ToInt(args[0]) < 0 ? WrapSub(0, ToInt(args[0])) : ToInt(args[0]);
    if (args[0].is_number()) return std::fabs(ToDouble(args[0]));
    return args.Fail("invalid argument of type " + TypeName(args[0]));
  }
  if (name == "min" || name == "max") return MinMax(args, name == "max");
  if (name == "asInt" || name == "int") {
    KILN_TRY(args.Count(1, 1));
    const json& v = args[0];
    if (IsInt(v)) return ToInt(v);
    if (v.is_number_float()) return Trunc(ToDouble(v));
    if (v.is_string()) {
      if (auto i = ParseInt10(v.get<std::string>())) return *i;
      return args.Fail("cannot parse " + Quote(v.get<std::string>()) + " as an integer");
    }
    return args.Fail("not supported on " + TypeName(v) + " " + DescribeValue(v));
  }
  if (name == "asFloat" || name == "float") {
    KILN_TRY(args.Count(1, 1));
    const json& v = args[0];
    if (v.is_number()) return ToDouble(v);
    if (v.is_string()) {
      if (auto f = ParseFloat(v.get<std::string>())) return *f;
      return args.Fail("cannot parse " + Quote(v.get<std::string>()) + " as a float");
    }
    return args.Fail("not supported on " + TypeName(v) + " " + DescribeValue(v));
  }
  if (name == "string") {
    KILN_TRY(args.Count(1, 1));
    return FormatValue(args[0]);
  }
  if (name == "toJson") {
    KILN_TRY(args.Count(1, 1));
    return ToJson(args[0]);
  }
  if (name == "toJSON") {
    KILN_TRY(args.Count(1, 1));
    return args[0].dump(2, ' ', false, json::error_handler_t::replace);
  }
  if (name == "fromJSON") {
    KILN_TRY(args.Count(1, 1));
    KILN_ASSIGN(text, args.Str(0));
    auto doc = ParseJson(text);
    if (!doc) return args.Fail(doc.error());
    return *doc;
  }
  if (name == "jsonpath") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(text, args.Str(0));
    KILN_ASSIGN(path, args.Str(1));
    auto doc = ParseJson(text);
    if (!doc) return args.Fail(doc.error());
    auto result = JsonPath(*doc, path);
    if (!result) return args.Fail(result.error());
    return *result;
  }
  if (name == "upper" || name == "lower") {
    KILN_TRY(args.Count(1, 1));
    KILN_ASSIGN(s, args.Str(0));
    for (char& c : s) c = name == "upper" ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                                          : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  if (name == "trim") {
    KILN_TRY(args.Count(1, 2));
    KILN_ASSIGN(s, args.Str(0));
    if (args.size() == 1) return TrimSpace(s);
    KILN_ASSIGN(chars, args.Str(1));
    size_t b = s.find_first_not_of(chars);
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(chars) - b + 1);
  }
  if (name == "trimPrefix" || name == "trimSuffix" || name == "hasPrefix" || name == "hasSuffix" ||
      name == "indexOf") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(s, args.Str(0));
    KILN_ASSIGN(affix, args.Str(1));
    if (name == "trimPrefix") return s.starts_with(affix) ? s.substr(affix.size()) : s;
    if (name == "trimSuffix") return s.ends_with(affix) ? s.substr(0, s.size() - affix.size()) : s;
    if (name == "hasPrefix") return s.starts_with(affix);
    if (name == "hasSuffix") return s.ends_with(affix);
    size_t at = s.find(affix);
    return at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(at);
  }
  if (name == "split") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(s, args.Str(0));
    KILN_ASSIGN(sep, args.Str(1));
    return Split(s, sep);
  }
  if (name == "join") {
    KILN_TRY(args.Count(1, 2));
    KILN_TRY(args.Array(0));
    std::string sep;
    if (args.size() == 2) {
      KILN_ASSIGN(s, args.Str(1));
      sep = s;
    }
    std::string out;
    for (size_t i = 0; i < args[0].size(); ++i) {
      if (!args[0][i].is_string()) return args.Fail("expects an array of strings, got " + TypeName(args[0][i]));
      if (i > 0) out += sep;
      out += args[0][i].get<std::string>();
    }
    return out;
  }
  if (name == "replace") {
    KILN_TRY(args.Count(3, 3));
    KILN_ASSIGN(s, args.Str(0));
    KILN_ASSIGN(from, args.Str(1));
    KILN_ASSIGN(to, args.Str(2));
    return ReplaceAll(s, from, to);
  }
  if (name == "repeat") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(s, args.Str(0));
    KILN_ASSIGN(n, args.Int(1));
    if (n < 0 || static_cast<double>(n) * static_cast<double>(s.size()) > 1e7) return args.Fail("invalid count");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += s;
    return out;
  }
  if (name == "keys" || name == "values") {
    KILN_TRY(args.Count(1, 1));
    if (!args[0].is_object()) return args.Fail("expects a map, got " + TypeName(args[0]));
    json out = json::array();
    for (const auto& [key, value] : args[0].items()) out.push_back(name == "keys" ? json(key) : value);
    return out;
  }
  if (name == "first" || name == "last") {
    KILN_TRY(args.Count(1, 1));
    KILN_TRY(args.Array(0));
    if (args[0].empty()) return json();
    return name == "first" ? args[0].front() : args[0].back();
  }
  if (name == "now") return Error("now() is not supported: kiln does not read the clock in expressions");
  return Error("unknown function " + name);
}

Value SprigBuiltin(const std::string& full_name, const Args& args) {
  std::string name = full_name.substr(6);  // after "sprig."
  if (name == "date") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(layout, args.Str(0));
    const json& t = args[1];
    GoTime time;
    if (t.is_string()) {
      auto parsed = ParseRfc3339(t.get<std::string>());
      if (!parsed) return args.Fail(parsed.error());
      time = *parsed;
    } else if (t.is_number()) {
      time.seconds = IsInt(t) ? ToInt(t) : Trunc(ToDouble(t));
    } else {
      return args.Fail("expects a time, got " + TypeName(t));
    }
    if (time.seconds < -62135596800LL || time.seconds > 253402300799LL) return args.Fail("time out of range");
    return FormatGoTime(layout, time);
  }
  if (name == "upper" || name == "lower" || name == "trim") {
    KILN_TRY(args.Count(1, 1));
    return ExprBuiltin(name, Args(full_name, {json(FormatValue(args[0]))}));
  }
  if (name == "replace") {
    KILN_TRY(args.Count(3, 3));
    KILN_ASSIGN(from, args.Str(0));
    KILN_ASSIGN(to, args.Str(1));
    KILN_ASSIGN(s, args.Str(2));
    return ReplaceAll(s, from, to);
  }
  if (name == "trimPrefix" || name == "trimSuffix" || name == "hasPrefix" || name == "hasSuffix" ||
      name == "contains") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(affix, args.Str(0));
    KILN_ASSIGN(s, args.Str(1));
    if (name == "contains") return s.find(affix) != std::string::npos;
    return ExprBuiltin(name, Args(full_name, {json(s), json(affix)}));
  }
  if (name == "toString") {
    KILN_TRY(args.Count(1, 1));
    return FormatValue(args[0]);
  }
  if (name == "atoi") {
    KILN_TRY(args.Count(1, 1));
    KILN_ASSIGN(s, args.Str(0));
    return ParseInt10(s).value_or(0);
  }
  if (name == "int" || name == "int64") {
    KILN_TRY(args.Count(1, 1));
    return SprigInt(args[0]);
  }
  if (name == "float64") {
    KILN_TRY(args.Count(1, 1));
    if (args[0].is_number()) return ToDouble(args[0]);
    if (args[0].is_string()) return ParseFloat(args[0].get<std::string>()).value_or(0.0);
    return 0.0;
  }
  if (name == "add" || name == "mul") {
    int64_t acc = name == "add" ? 0 : 1;
    for (const json& v : args.all()) acc = name == "add" ? WrapAdd(acc, SprigInt(v)) : WrapMul(acc, SprigInt(v));
    return acc;
  }
  if (name == "add1") {
    KILN_TRY(args.Count(1, 1));
    return WrapAdd(SprigInt(args[0]), 1);
  }
  if (name == "sub" || name == "div" || name == "mod") {
    KILN_TRY(args.Count(2, 2));
    int64_t a = SprigInt(args[0]), b = SprigInt(args[1]);
    if (name == "sub") return WrapSub(a, b);
    if (b == 0) return args.Fail("integer divide by zero");
    if (b == -1) return name == "div" ? WrapSub(0, a) : int64_t{0};
    return name == "div" ? a / b : a % b;
  }
  if (name == "max" || name == "min") {
    KILN_TRY(args.Count(1, SIZE_MAX));
    int64_t best = SprigInt(args[0]);
    for (const json& v : args.all()) best = name == "max" ? std::max(best, SprigInt(v)) : std::min(best, SprigInt(v));
    return best;
  }
  if (name == "default") {
    KILN_TRY(args.Count(1, 2));
    if (args.size() == 1 || Empty(args[1])) return args[0];
    return args[1];
  }
  if (name == "empty") {
    KILN_TRY(args.Count(1, 1));
    return Empty(args[0]);
  }
  if (name == "quote" || name == "squote") {
    std::string out;
    for (const json& v : args.all()) {
      if (v.is_null()) continue;
      if (!out.empty()) out += ' ';
      out += name == "quote" ? Quote(FormatValue(v)) : "'" + FormatValue(v) + "'";
    }
    return out;
  }
  if (name == "b64enc" || name == "b64dec") {
    KILN_TRY(args.Count(1, 1));
    std::string s = FormatValue(args[0]);
    return name == "b64enc" ? Base64Encode(s) : Base64Decode(s);
  }
  if (name == "splitList") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(sep, args.Str(0));
    KILN_ASSIGN(s, args.Str(1));
    return Split(s, sep);
  }
  if (name == "join") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(sep, args.Str(0));
    if (!args[1].is_array()) return FormatValue(args[1]);
    std::string out;
    bool first = true;
    for (const json& v : args[1]) {
      if (v.is_null()) continue;
      if (!first) out += sep;
      first = false;
      out += FormatValue(v);
    }
    return out;
  }
  if (name == "list") return json(args.all());
  if (name == "dict") {
    json out = json::object();
    for (size_t i = 0; i < args.size(); i += 2) {
      out[FormatValue(args[i])] = i + 1 < args.size() ? args[i + 1] : json("");
    }
    return out;
  }
  if (name == "toJson") {
    KILN_TRY(args.Count(1, 1));
    return ToJson(args[0]);
  }
  if (name == "fromJson") {
    KILN_TRY(args.Count(1, 1));
    KILN_ASSIGN(s, args.Str(0));
    auto doc = ParseJson(s);
    return doc ? *doc : json();
  }
  if (name == "repeat") {
    KILN_TRY(args.Count(2, 2));
    KILN_ASSIGN(s, args.Str(1));
    return ExprBuiltin("repeat", Args(full_name, {json(s), json(SprigInt(args[0]))}));
  }
  return Error("unknown function " + full_name);
}

}  // namespace

class ExprEvaluator {
 public:
  ExprEvaluator(const ExprProgram& program, const json& env) : program_(program), env_(env) {}

  Value Eval(uint32_t index) {
    const Node& node = program_.nodes()[index];
    switch (node.kind) {
      case Kind::kLiteral:
        return program_.constant(node.text);
      case Kind::kIdent: {
        const std::string& name = program_.name(node.text);
        for (auto it = lets_.rbegin(); it != lets_.rend(); ++it) {
          if (it->first == name) return it->second;
        }
        if (env_.is_object()) {
          auto it = env_.find(name);
          if (it != env_.end()) return *it;
        }
        return Error("unknown name " + name, true);
      }
      case Kind::kLet: {
        KILN_ASSIGN(value, Eval(node.a));
        lets_.emplace_back(program_.name(node.text), std::move(value));
        auto result = Eval(node.b);
        lets_.pop_back();
        return result;
      }
      case Kind::kPointer:
        if (pointers_.empty()) return Error("\"#\" used outside of a predicate");
        return *pointers_.back();
      case Kind::kMember: {
        KILN_ASSIGN(object, Eval(node.a));
        return Access(index, object, json(program_.name(node.text)));
      }
      case Kind::kIndex: {
        KILN_ASSIGN(object, Eval(node.a));
        KILN_ASSIGN(key, Eval(node.b));
        return Access(index, object, key);
      }
      case Kind::kSlice:
        return EvalSlice(node);
      case Kind::kCall:
        return EvalCall(node);
      case Kind::kMethodCall: {
        KILN_TRY(Eval(node.a));
        return Error("method " + program_.name(node.text) + "() is not supported");
      }
      case Kind::kUnary:
        return EvalUnary(node);
      case Kind::kBinary:
        return EvalBinary(node);
      case Kind::kTernary: {
        KILN_ASSIGN(condition, Eval(node.a));
        if (!condition.is_boolean()) {
          return Error("non-bool condition " + DescribeValue(condition) + " in ternary operator");
        }
        return Eval(condition.get<bool>() ? node.b : node.c);
      }
      case Kind::kArray: {
        json out = json::array();
        for (uint32_t i = 0; i < node.list_size; ++i) {
          KILN_ASSIGN(item, Eval(program_.list(node.list_begin + i)));
          out.push_back(std::move(item));
        }
        return out;
      }
      case Kind::kMap: {
        json out = json::object();
        for (uint32_t i = 0; i + 1 < node.list_size; i += 2) {
          KILN_ASSIGN(key, Eval(program_.list(node.list_begin + i)));
          KILN_ASSIGN(value, Eval(program_.list(node.list_begin + i + 1)));
          if (!key.is_string()) return Error("map keys must be strings, got " + TypeName(key));
          out[key.get<std::string>()] = std::move(value);
        }
        return out;
      }
      case Kind::kClosure:
        return Eval(node.a);
    }
    return Error("internal error: unknown node");
  }

 private:
  // "a.b['c']" for a chain of constant accesses rooted at a name, for "unknown name" errors.
  std::optional<std::string> PathText(uint32_t index) const {
    const Node& node = program_.nodes()[index];
    if (node.kind == Kind::kIdent) return program_.name(node.text);
    if (node.kind == Kind::kMember) {
      auto base = PathText(node.a);
      if (!base) return std::nullopt;
      return *base + "." + program_.name(node.text);
    }
    if (node.kind == Kind::kIndex && program_.nodes()[node.b].kind == Kind::kLiteral) {
      auto base = PathText(node.a);
      if (!base) return std::nullopt;
      return *base + "." + FormatValue(program_.constant(program_.nodes()[node.b].text));
    }
    return std::nullopt;
  }

  // Whether an optional access ("?.") earlier in the chain allows nil to propagate.
  bool ChainOptional(uint32_t index) const {
    while (true) {
      const Node& node = program_.nodes()[index];
      if (node.kind != Kind::kMember && node.kind != Kind::kIndex && node.kind != Kind::kSlice) return false;
      if (node.optional) return true;
      index = node.a;
    }
  }

  Value Access(uint32_t index, const json& object, const json& key) {
    const Node& node = program_.nodes()[index];
    if (object.is_null()) {
      if (ChainOptional(index)) return json();
      return Error("cannot get " + DescribeValue(key) + " from nil", true);
    }
    if (object.is_object()) {
      if (!key.is_string()) return Error("cannot index map with " + TypeName(key));
      auto it = object.find(key.get_ref<const std::string&>());
      if (it != object.end()) return *it;
      if (node.optional) return json();
      if (auto path = PathText(index)) return Error("unknown name " + *path, true);
      return json();
    }
    if (object.is_array() || object.is_string()) {
      if (!IsInt(key)) {
        return Error("cannot index " + TypeName(object) + " with " + TypeName(key) +
                     (key.is_string() ? " " + DescribeValue(key) : ""));
      }
      int64_t size = static_cast<int64_t>(object.is_array() ? object.size() : object.get_ref<const std::string&>().size());
      int64_t i = ToInt(key);
      if (i < 0) i += size;
      if (i < 0 || i >= size) {
        return Error("index out of range: " + std::to_string(ToInt(key)) + " (" + TypeName(object) +
                     " of length " + std::to_string(size) + ")");
      }
      if (object.is_array()) return object[static_cast<size_t>(i)];
      return std::string(1, object.get_ref<const std::string&>()[static_cast<size_t>(i)]);
    }
    return Error("cannot get " + DescribeValue(key) + " from " + TypeName(object));
  }

  Value EvalSlice(const Node& node) {
    KILN_ASSIGN(object, Eval(node.a));
    if (!object.is_array() && !object.is_string()) return Error("cannot slice " + TypeName(object));
    int64_t size = static_cast<int64_t>(object.is_array() ? object.size() : object.get_ref<const std::string&>().size());
    int64_t bounds[2] = {0, size};
    uint32_t children[2] = {node.b, node.c};
    for (int k = 0; k < 2; ++k) {
      if (children[k] == kNone) continue;
      KILN_ASSIGN(bound, Eval(children[k]));
      if (!IsInt(bound)) return Error("slice bounds must be ints, got " + TypeName(bound));
      int64_t b = ToInt(bound);
      if (b < 0) b += size;
      bounds[k] = std::clamp<int64_t>(b, 0, size);
    }
    if (bounds[1] < bounds[0]) bounds[1] = bounds[0];
    if (object.is_string()) {
      return object.get_ref<const std::string&>().substr(static_cast<size_t>(bounds[0]),
                                                          static_cast<size_t>(bounds[1] - bounds[0]));
    }
    return json(std::vector<json>(object.begin() + bounds[0], object.begin() + bounds[1]));
  }

  Value EvalUnary(const Node& node) {
    KILN_ASSIGN(value, Eval(node.a));
    if (node.op == Op::kNot) {
      if (!value.is_boolean()) return Error("invalid operation: ! on " + TypeName(value));
      return !value.get<bool>();
    }
    if (!value.is_number()) return Error("invalid operation: " + std::string(OpText(node.op)) + " on " + TypeName(value));
    if (node.op == Op::kPlus) return value;
    if (IsInt(value)) return WrapSub(0, ToInt(value));
    return -ToDouble(value);
  }

  Value EvalBinary(const Node& node) {
    if (node.op == Op::kAnd || node.op == Op::kOr) {
      KILN_ASSIGN(lhs, Eval(node.a));
      if (!lhs.is_boolean()) return Mismatch(OpText(node.op), lhs, json(true));
      if (lhs.get<bool>() == (node.op == Op::kOr)) return lhs;
      KILN_ASSIGN(rhs, Eval(node.b));
      if (!rhs.is_boolean()) return Mismatch(OpText(node.op), lhs, rhs);
      return rhs;
    }
    if (node.op == Op::kCoalesce) {
      Value lhs = Eval(node.a);
      if (!lhs && !lhs.error().missing) return lhs;
      if (lhs && !lhs->is_null()) return lhs;
      return Eval(node.b);
    }
    KILN_ASSIGN(l, Eval(node.a));
    KILN_ASSIGN(r, Eval(node.b));
    std::string_view op = OpText(node.op);
    switch (node.op) {
      case Op::kEq: return Equal(l, r);
      case Op::kNe: return !Equal(l, r);
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        int cmp;
        if (l.is_number() && r.is_number()) {
          if (IsInt(l) && IsInt(r)) {
            cmp = ToInt(l) < ToInt(r) ? -1 : (ToInt(l) > ToInt(r) ? 1 : 0);
          } else {
            double a = ToDouble(l), b = ToDouble(r);
            if (std::isnan(a) || std::isnan(b)) return false;
            cmp = a < b ? -1 : (a > b ? 1 : 0);
          }
        } else if (l.is_string() && r.is_string()) {
          cmp = l.get_ref<const std::string&>().compare(r.get_ref<const std::string&>());
        } else {
          return Mismatch(op, l, r);
        }
        if (node.op == Op::kLt) return cmp < 0;
        if (node.op == Op::kLe) return cmp <= 0;
        if (node.op == Op::kGt) return cmp > 0;
        return cmp >= 0;
      }
      case Op::kIn:
      case Op::kNotIn: {
        bool found = false;
        if (r.is_array()) {
          found = std::any_of(r.begin(), r.end(), [&](const json& item) { return Equal(l, item); });
        } else if (r.is_object()) {
          if (!l.is_string()) return Mismatch(op, l, r);
          found = r.contains(l.get_ref<const std::string&>());
        } else if (!r.is_null()) {
          return Mismatch(op, l, r);
        }
        return node.op == Op::kIn ? found : !found;
      }
      case Op::kMatches:
      case Op::kNotMatches:
      case Op::kContains:
      case Op::kNotContains:
      case Op::kStartsWith:
      case Op::kNotStartsWith:
      case Op::kEndsWith:
      case Op::kNotEndsWith: {
        if (!l.is_string() || !r.is_string()) return Mismatch(op, l, r);
        const std::string& a = l.get_ref<const std::string&>();
        const std::string& b = r.get_ref<const std::string&>();
        bool result;
        bool negate = node.op == Op::kNotMatches || node.op == Op::kNotContains ||
                      node.op == Op::kNotStartsWith || node.op == Op::kNotEndsWith;
        if (node.op == Op::kMatches || node.op == Op::kNotMatches) {
          auto found = RegexSearch(a, b);
          if (!found) return Error(found.error());
          result = *found;
        } else if (node.op == Op::kContains || node.op == Op::kNotContains) {
          result = a.find(b) != std::string::npos;
        } else if (node.op == Op::kStartsWith || node.op == Op::kNotStartsWith) {
          result = a.starts_with(b);
        } else {
          result = a.ends_with(b);
        }
        return negate ? !result : result;
      }
      case Op::kRange: {
        if (!IsInt(l) || !IsInt(r)) return Mismatch(op, l, r);
        int64_t a = ToInt(l), b = ToInt(r);
        if (b >= a && (b - a) >= kMaxRange) return Error("range " + std::to_string(a) + ".." + std::to_string(b) + " is too large");
        json out = json::array();
        for (int64_t i = a; i <= b; ++i) out.push_back(i);
        return out;
      }
      case Op::kAdd:
        if (l.is_string() && r.is_string()) return l.get<std::string>() + r.get<std::string>();
        if (l.is_array() && r.is_array()) {
          json out = l;
          for (const json& item : r) out.push_back(item);
          return out;
        }
        [[fallthrough]];
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod:
      case Op::kPow: {
        if (!l.is_number() || !r.is_number()) return Mismatch(op, l, r);
        bool ints = IsInt(l) && IsInt(r);
        switch (node.op) {
          case Op::kAdd: return ints ? json(WrapAdd(ToInt(l), ToInt(r))) : json(ToDouble(l) + ToDouble(r));
          case Op::kSub: return ints ? json(WrapSub(ToInt(l), ToInt(r))) : json(ToDouble(l) - ToDouble(r));
          case Op::kMul: return ints ? json(WrapMul(ToInt(l), ToInt(r))) : json(ToDouble(l) * ToDouble(r));
          case Op::kDiv: return ToDouble(l) / ToDouble(r);
          case Op::kMod:
            if (!ints) return Mismatch(op, l, r);
            if (ToInt(r) == 0) return Error("integer divide by zero");
            if (ToInt(r) == -1) return int64_t{0};
            return ToInt(l) % ToInt(r);
          default: return std::pow(ToDouble(l), ToDouble(r));
        }
      }
      default:
        return Error("internal error: unknown operator");
    }
  }

  Value EvalCall(const Node& node) {
    const std::string& name = program_.name(node.text);
    bool predicate = node.list_size == 2 && program_.nodes()[program_.list(node.list_begin + 1)].kind == Kind::kClosure;
    if (predicate) return EvalPredicate(name, node);
    std::vector<json> values;
    for (uint32_t i = 0; i < node.list_size; ++i) {
      KILN_ASSIGN(value, Eval(program_.list(node.list_begin + i)));
      values.push_back(std::move(value));
    }
    if (name.starts_with("sprig.")) return SprigBuiltin(name, Args(name, std::move(values)));
    if (name == "sum") {
      Args args(name, std::move(values));
      KILN_TRY(args.Count(1, 1));
      KILN_TRY(args.Array(0));
      json total = int64_t{0};
      for (const json& v : args[0]) {
        if (!v.is_number()) return args.Fail("expects numbers, got " + TypeName(v));
        total = IsInt(total) && IsInt(v) ? json(WrapAdd(ToInt(total), ToInt(v))) : json(ToDouble(total) + ToDouble(v));
      }
      return total;
    }
    return ExprBuiltin(name, Args(name, std::move(values)));
  }

  Value EvalPredicate(const std::string& name, const Node& node) {
    KILN_ASSIGN(items, Eval(program_.list(node.list_begin)));
    uint32_t body = program_.list(node.list_begin + 1);
    if (!items.is_array()) return Error(name + "() expects an array as argument 1, got " + TypeName(items));
    json out = json::array();
    int64_t count = 0;
    json sum = int64_t{0};
    for (size_t i = 0; i < items.size(); ++i) {
      pointers_.push_back(&items[i]);
      Value value = Eval(body);
      pointers_.pop_back();
      if (!value) return value;
      if (name == "map") {
        out.push_back(std::move(*value));
        continue;
      }
      if (name == "sum") {
        if (!value->is_number()) return Error("sum() expects numbers, got " + TypeName(*value));
        sum = IsInt(sum) && IsInt(*value) ? json(WrapAdd(ToInt(sum), ToInt(*value))) : json(ToDouble(sum) + ToDouble(*value));
        continue;
      }
      if (!value->is_boolean()) {
        return Error(name + "() predicate must return a bool, got " + TypeName(*value));
      }
      bool yes = value->get<bool>();
      if (name == "filter" && yes) out.push_back(items[i]);
      if (name == "all" && !yes) return false;
      if (name == "any" && yes) return true;
      if (name == "none" && yes) return false;
      if (name == "find" && yes) return items[i];
      if (name == "findIndex" && yes) return static_cast<int64_t>(i);
      if (yes) {
        ++count;
        if (name == "findLast") out = items[i];
        if (name == "findLastIndex") out = static_cast<int64_t>(i);
      }
    }
    if (name == "map" || name == "filter") return out;
    if (name == "sum") return sum;
    if (name == "all" || name == "none") return true;
    if (name == "any") return false;
    if (name == "one") return count == 1;
    if (name == "count") return count;
    if (name == "find") return json();
    if (name == "findIndex") return int64_t{-1};
    if (name == "findLast") return out.is_array() ? json() : out;
    if (name == "findLastIndex") return out.is_array() ? json(int64_t{-1}) : out;
    return Error("unknown function " + name);
  }

  const ExprProgram& program_;
  const json& env_;
  std::vector<const json*> pointers_;
  std::vector<std::pair<std::string, json>> lets_;  // variables bound by "let", innermost last
};

std::expected<json, std::string> Evaluate(const ExprProgram& program, const json& env) {
  if (program.nodes().empty()) return std::unexpected("empty expression");
  try {
    ExprEvaluator evaluator(program, env);
    Value value = evaluator.Eval(program.root());
    if (!value) return std::unexpected(value.error().message);
    return std::move(*value);
  } catch (const std::exception& e) {
    return std::unexpected(std::string("evaluation failed: ") + e.what());
  }
}

}  // namespace kiln::expr
