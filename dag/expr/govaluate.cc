#include "dag/expr/govaluate.h"

#include <cmath>
#include <utility>

#include "base/strings.h"
#include "dag/expr/regex_search.h"
#include "dag/expr/value_format.h"

namespace kiln::expr {
namespace {

using json = nlohmann::json;

enum class TokenKind { kNumber, kString, kBool, kWord, kCall, kOp, kEnd };

struct Token {
  TokenKind kind;
  size_t offset;
  std::string text;  // operator text, string value, word, or function name
  double number = 0;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

std::string At(size_t offset) { return " at offset " + std::to_string(offset); }

// Splits the text into govaluate tokens.
std::expected<std::vector<Token>, SyntaxError> Lex(std::string_view text) {
  static constexpr std::string_view kTwoChar[] = {"==", "!=", ">=", "<=", "=~", "!~", "&&", "||",
                                                  "**", "<<", ">>", "??"};
  std::vector<Token> tokens;
  size_t pos = 0;
  while (true) {
    while (pos < text.size() && IsSpace(text[pos])) ++pos;
    if (pos == text.size()) break;
    size_t start = pos;
    char c = text[pos];
    if (IsDigit(c) || (c == '.' && pos + 1 < text.size() && IsDigit(text[pos + 1]))) {
      if (c == '0' && pos + 1 < text.size() && (text[pos + 1] == 'x' || text[pos + 1] == 'X')) {
        pos += 2;
        while (pos < text.size() && std::isxdigit(static_cast<unsigned char>(text[pos]))) ++pos;
        std::string digits(text.substr(start + 2, pos - start - 2));
        if (digits.empty() || digits.size() > 15) {
          return std::unexpected(SyntaxError{start, "unable to parse numeric value " +
                                                        Quote(text.substr(start, pos - start)) +
                                                        At(start)});
        }
        tokens.push_back({TokenKind::kNumber, start, {}, static_cast<double>(std::stoll(digits, nullptr, 16))});
        continue;
      }
      while (pos < text.size() && (IsDigit(text[pos]) || text[pos] == '.')) ++pos;
      std::string digits(text.substr(start, pos - start));
      char* end = nullptr;
      double value = std::strtod(digits.c_str(), &end);
      if (end != digits.c_str() + digits.size()) {
        return std::unexpected(
            SyntaxError{start, "unable to parse numeric value " + Quote(digits) + At(start)});
      }
      tokens.push_back({TokenKind::kNumber, start, {}, value});
      continue;
    }
    if (IsLetter(c)) {
      while (pos < text.size() && (IsLetter(text[pos]) || IsDigit(text[pos]) || text[pos] == '.')) {
        ++pos;
      }
      std::string word(text.substr(start, pos - start));
      if (word == "true" || word == "false") {
        tokens.push_back({TokenKind::kBool, start, word, 0});
      } else if (word == "in" || word == "IN") {
        tokens.push_back({TokenKind::kOp, start, "in", 0});
      } else if (pos < text.size() && text[pos] == '(') {
        tokens.push_back({TokenKind::kCall, start, word, 0});
      } else {
        tokens.push_back({TokenKind::kWord, start, word, 0});
      }
      continue;
    }
    if (c == '\'' || c == '"' || c == '[') {
      char close = c == '[' ? ']' : c;
      std::string value;
      ++pos;
      while (pos < text.size() && text[pos] != close) {
        if (text[pos] == '\\' && pos + 1 < text.size()) ++pos;
        value += text[pos++];
      }
      if (pos == text.size()) {
        return std::unexpected(SyntaxError{
            start, std::string(c == '[' ? "unterminated \"[\"" : "unterminated string") + At(start)});
      }
      ++pos;
      tokens.push_back({c == '[' ? TokenKind::kWord : TokenKind::kString, start, value, 0});
      continue;
    }
    std::string op(1, c);
    for (std::string_view two : kTwoChar) {
      if (text.substr(pos, 2) == two) op = std::string(two);
    }
    static constexpr std::string_view kSupported[] = {
        "==", "!=", ">=", "<=", "=~", "!~", "&&", "||", ">", "<", "+", "-", "*", "/", "%", "!",
        "(", ")", ","};
    bool supported = false;
    for (std::string_view s : kSupported) supported = supported || s == op;
    if (!supported) {
      bool known = op.size() == 2 || std::string_view("?:&|^~").find(c) != std::string_view::npos;
      return std::unexpected(SyntaxError{
          start, std::string(known ? "unsupported operator " : "invalid character ") + Quote(op) +
                     At(start)});
    }
    pos += op.size();
    tokens.push_back({TokenKind::kOp, start, op, 0});
  }
  tokens.push_back({TokenKind::kEnd, text.size(), {}, 0});
  return tokens;
}

}  // namespace

// Recursive descent, lowest precedence first: || ; && ; comparators ; + - ; * / % ; prefix ! -.
class WhenParser {
 public:
  explicit WhenParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::expected<WhenExpr, SyntaxError> Parse() {
    if (Peek().kind == TokenKind::kEnd) return Fail(0, "empty expression");
    auto root = ParseBinary(0);
    if (!root) return std::unexpected(root.error());
    if (Peek().kind != TokenKind::kEnd) return Fail(Peek().offset, Unexpected(Peek()));
    expr_.root_ = *root;
    return std::move(expr_);
  }

 private:
  using Op = WhenExpr::Op;
  using Node = WhenExpr::Node;
  using Result = std::expected<uint32_t, SyntaxError>;

  static constexpr int kLevels = 5;

  const Token& Peek() const { return tokens_[pos_]; }

  std::unexpected<SyntaxError> Fail(size_t offset, std::string message) {
    return std::unexpected(SyntaxError{offset, std::move(message)});
  }

  static std::string Unexpected(const Token& token) {
    switch (token.kind) {
      case TokenKind::kEnd: return "unexpected end of expression" + At(token.offset);
      case TokenKind::kNumber: return "unexpected " + FormatNumber(token.number) + At(token.offset);
      case TokenKind::kString: return "unexpected string " + Quote(token.text) + At(token.offset);
      default: return "unexpected " + Quote(token.text) + At(token.offset);
    }
  }

  // Returns the operator of `token` if it is a binary operator of precedence `level`.
  static std::optional<Op> BinaryOp(const Token& token, int level) {
    if (token.kind != TokenKind::kOp) return std::nullopt;
    static const std::pair<std::string_view, Op> kOps[kLevels][9] = {
        {{"||", Op::kOr}},
        {{"&&", Op::kAnd}},
        {{"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt}, {"<=", Op::kLe}, {">", Op::kGt},
         {">=", Op::kGe}, {"=~", Op::kMatch}, {"!~", Op::kNotMatch}, {"in", Op::kIn}},
        {{"+", Op::kAdd}, {"-", Op::kSub}},
        {{"*", Op::kMul}, {"/", Op::kDiv}, {"%", Op::kMod}},
    };
    for (const auto& [text, op] : kOps[level]) {
      if (!text.empty() && text == token.text) return op;
    }
    return std::nullopt;
  }

  Result Add(Node node, size_t offset, std::initializer_list<uint32_t> children) {
    uint32_t h = 1;
    for (uint32_t child : children) h = std::max(h, heights_[child] + 1);
    if (h > kMaxNestingDepth) return Fail(offset, "expression nested too deeply");
    expr_.nodes_.push_back(node);
    heights_.push_back(h);
    return static_cast<uint32_t>(expr_.nodes_.size() - 1);
  }

  Result ParseBinary(int level) {
    if (level == kLevels) return ParsePrefix();
    auto lhs = ParseBinary(level + 1);
    if (!lhs) return lhs;
    while (auto op = BinaryOp(Peek(), level)) {
      const Token& op_token = tokens_[pos_++];
      if (Peek().kind == TokenKind::kEnd || (Peek().kind == TokenKind::kOp && Peek().text == ")")) {
        return Fail(op_token.offset,
                    "expected an operand after " + Quote(op_token.text) + At(op_token.offset));
      }
      auto rhs = ParseBinary(level + 1);
      if (!rhs) return rhs;
      lhs = Add(Node{*op, *lhs, *rhs, 0}, op_token.offset, {*lhs, *rhs});
      if (!lhs) return lhs;
    }
    return lhs;
  }

  Result ParsePrefix() {
    const Token& token = Peek();
    if (token.kind == TokenKind::kOp && (token.text == "!" || token.text == "-")) {
      if (++depth_ > kMaxNestingDepth) return Fail(token.offset, "expression nested too deeply");
      ++pos_;
      if (Peek().kind == TokenKind::kEnd) {
        return Fail(token.offset, "expected an operand after " + Quote(token.text) + At(token.offset));
      }
      auto child = ParsePrefix();
      if (!child) return child;
      --depth_;
      return Add(Node{token.text == "!" ? Op::kNot : Op::kNegate, *child, 0, 0}, token.offset,
                 {*child});
    }
    return ParsePrimary();
  }

  uint32_t AddLiteral(json value) {
    expr_.literals_.push_back(std::move(value));
    return static_cast<uint32_t>(expr_.literals_.size() - 1);
  }

  Result ParsePrimary() {
    const Token& token = tokens_[pos_];
    switch (token.kind) {
      case TokenKind::kNumber:
        ++pos_;
        return Add(Node{Op::kLiteral, 0, 0, AddLiteral(token.number)}, token.offset, {});
      case TokenKind::kString:
      case TokenKind::kWord:
        ++pos_;
        return Add(Node{Op::kLiteral, 0, 0, AddLiteral(token.text)}, token.offset, {});
      case TokenKind::kBool:
        ++pos_;
        return Add(Node{Op::kLiteral, 0, 0, AddLiteral(token.text == "true")}, token.offset, {});
      case TokenKind::kCall: {
        // Argo passes govaluate no functions, so any call fails; parse it to report that clearly.
        ++pos_;
        auto args = ParseParenthesized();
        if (!args) return args;
        return Add(Node{Op::kCall, *args, 0, AddLiteral(token.text)}, token.offset, {*args});
      }
      case TokenKind::kOp:
        if (token.text == "(") return ParseParenthesized();
        return Fail(token.offset, Unexpected(token));
      case TokenKind::kEnd:
        return Fail(token.offset, Unexpected(token));
    }
    return Fail(token.offset, Unexpected(token));
  }

  // "(" expr ("," expr)* ")": one expression, or an array when there are commas.
  Result ParseParenthesized() {
    const Token& open = tokens_[pos_++];
    if (++depth_ > kMaxNestingDepth) return Fail(open.offset, "expression nested too deeply");
    std::vector<uint32_t> items;
    if (Peek().kind == TokenKind::kOp && Peek().text == ")") {
      ++pos_;
    } else {
      while (true) {
        auto item = ParseBinary(0);
        if (!item) return item;
        items.push_back(*item);
        const Token& next = Peek();
        if (next.kind == TokenKind::kOp && next.text == ",") {
          ++pos_;
          continue;
        }
        if (next.kind == TokenKind::kOp && next.text == ")") {
          ++pos_;
          break;
        }
        if (next.kind == TokenKind::kEnd) {
          return Fail(open.offset, "missing \")\" for \"(\"" + At(open.offset));
        }
        return Fail(next.offset, Unexpected(next));
      }
    }
    --depth_;
    if (items.size() == 1) return items[0];
    uint32_t h = 1;
    for (uint32_t item : items) h = std::max(h, heights_[item] + 1);
    if (h > kMaxNestingDepth) return Fail(open.offset, "expression nested too deeply");
    uint32_t begin = static_cast<uint32_t>(expr_.list_.size());
    expr_.list_.insert(expr_.list_.end(), items.begin(), items.end());
    expr_.nodes_.push_back(Node{Op::kArray, begin, static_cast<uint32_t>(items.size()), 0});
    heights_.push_back(h);
    return static_cast<uint32_t>(expr_.nodes_.size() - 1);
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<uint32_t> heights_;
  WhenExpr expr_;
};

std::expected<WhenExpr, SyntaxError> ParseWhen(std::string_view text) {
  auto tokens = Lex(text);
  if (!tokens) return std::unexpected(tokens.error());
  return WhenParser(std::move(*tokens)).Parse();
}

std::expected<json, std::string> WhenExpr::Evaluate() const {
  if (nodes_.empty()) return std::unexpected("empty expression");
  return Eval(root_);
}

namespace {

std::string_view OpText(int op_index) {
  static constexpr std::string_view kTexts[] = {"", "", "", "!", "-", "||", "&&", "==", "!=", "<",
                                                "<=", ">", ">=", "=~", "!~", "in", "+", "-", "*",
                                                "/", "%"};
  return kTexts[op_index];
}

}  // namespace

std::expected<json, std::string> WhenExpr::Eval(uint32_t index) const {
  const Node& node = nodes_[index];
  std::string_view op_text = OpText(static_cast<int>(node.op));
  switch (node.op) {
    case Op::kLiteral:
      return literals_[node.value];
    case Op::kArray: {
      json out = json::array();
      for (uint32_t i = 0; i < node.rhs; ++i) {
        auto item = Eval(list_[node.lhs + i]);
        if (!item) return item;
        out.push_back(std::move(*item));
      }
      return out;
    }
    case Op::kCall:
      return std::unexpected("undefined function " +
                             Quote(literals_[node.value].get_ref<const std::string&>()));
    case Op::kNot:
    case Op::kNegate: {
      auto value = Eval(node.lhs);
      if (!value) return value;
      if (node.op == Op::kNot) {
        if (!value->is_boolean()) {
          return std::unexpected("value " + DescribeValue(*value) +
                                 " cannot be used with the prefix \"!\", it is not a bool");
        }
        return !value->get<bool>();
      }
      if (!value->is_number()) {
        return std::unexpected("value " + DescribeValue(*value) +
                               " cannot be used with the prefix \"-\", it is not a number");
      }
      return -value->get<double>();
    }
    case Op::kOr:
    case Op::kAnd: {
      auto lhs = Eval(node.lhs);
      if (!lhs) return lhs;
      auto check = [&](const json& v) -> std::expected<bool, std::string> {
        if (!v.is_boolean()) {
          return std::unexpected("value " + DescribeValue(v) + " cannot be used with the logical operator " +
                                 Quote(op_text) + ", it is not a bool");
        }
        return v.get<bool>();
      };
      auto l = check(*lhs);
      if (!l) return std::unexpected(l.error());
      if (node.op == Op::kOr && *l) return true;
      if (node.op == Op::kAnd && !*l) return false;
      auto rhs = Eval(node.rhs);
      if (!rhs) return rhs;
      auto r = check(*rhs);
      if (!r) return std::unexpected(r.error());
      return *r;
    }
    default:
      break;
  }
  auto lhs = Eval(node.lhs);
  if (!lhs) return lhs;
  auto rhs = Eval(node.rhs);
  if (!rhs) return rhs;
  const json& l = *lhs;
  const json& r = *rhs;
  switch (node.op) {
    case Op::kEq: return l == r;
    case Op::kNe: return l != r;
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      int cmp;
      if (l.is_number() && r.is_number()) {
        double a = l.get<double>(), b = r.get<double>();
        if (std::isnan(a) || std::isnan(b)) return false;
        cmp = a < b ? -1 : (a > b ? 1 : 0);
      } else if (l.is_string() && r.is_string()) {
        cmp = l.get_ref<const std::string&>().compare(r.get_ref<const std::string&>());
      } else {
        return std::unexpected("cannot compare " + DescribeValue(l) + " and " + DescribeValue(r) +
                               " with " + Quote(op_text));
      }
      switch (node.op) {
        case Op::kLt: return cmp < 0;
        case Op::kLe: return cmp <= 0;
        case Op::kGt: return cmp > 0;
        default: return cmp >= 0;
      }
    }
    case Op::kMatch:
    case Op::kNotMatch: {
      if (!l.is_string() || !r.is_string()) {
        return std::unexpected("value " + DescribeValue(l.is_string() ? r : l) +
                               " cannot be used with the comparator " + Quote(op_text) +
                               ", it is not a string");
      }
      auto found = RegexSearch(l.get_ref<const std::string&>(), r.get_ref<const std::string&>());
      if (!found) return std::unexpected(found.error());
      return node.op == Op::kMatch ? *found : !*found;
    }
    case Op::kIn: {
      if (!r.is_array()) {
        return std::unexpected("value " + DescribeValue(r) +
                               " cannot be used with the comparator \"in\", it is not an array");
      }
      for (const json& item : r) {
        if (item == l) return true;
      }
      return false;
    }
    case Op::kAdd:
      if (l.is_number() && r.is_number()) return l.get<double>() + r.get<double>();
      if (l.is_string() || r.is_string()) return FormatValue(l) + FormatValue(r);
      [[fallthrough]];
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod: {
      if (!l.is_number() || !r.is_number()) {
        return std::unexpected("value " + DescribeValue(l.is_number() ? r : l) +
                               " cannot be used with the modifier " + Quote(op_text) +
                               ", it is not a number");
      }
      double a = l.get<double>(), b = r.get<double>();
      switch (node.op) {
        case Op::kSub: return a - b;
        case Op::kMul: return a * b;
        case Op::kDiv: return a / b;
        default: return std::fmod(a, b);
      }
    }
    default:
      return std::unexpected("internal error: unknown operator");
  }
}

std::expected<bool, std::string> EvaluateWhen(std::string_view text) {
  auto parsed = ParseWhen(text);
  if (!parsed) {
    return std::unexpected("invalid 'when' expression '" + std::string(text) +
                           "': " + parsed.error().message);
  }
  std::expected<json, std::string> value;
  try {
    value = parsed->Evaluate();
  } catch (const std::exception& e) {
    value = std::unexpected(std::string(e.what()));
  }
  if (!value) {
    return std::unexpected("failed to evaluate expression '" + std::string(text) +
                           "': " + value.error());
  }
  if (!value->is_boolean()) {
    return std::unexpected("expected boolean evaluation for '" + std::string(text) + "', got " +
                           FormatValue(*value));
  }
  return value->get<bool>();
}

}  // namespace kiln::expr
