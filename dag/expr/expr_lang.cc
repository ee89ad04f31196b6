#include "dag/expr/expr_lang.h"

#include <algorithm>
#include <cerrno>
#include <set>
#include <utility>

#include "base/strings.h"
#include "dag/expr/value_format.h"

namespace kiln::expr {
namespace {

using json = nlohmann::json;

enum class TokenKind { kNumber, kString, kIdent, kPointer, kOp, kEnd };

struct Token {
  TokenKind kind;
  uint32_t offset;
  std::string text;  // raw text for ops and identifiers, decoded value for strings
  json number;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }

std::string At(size_t offset) { return " at offset " + std::to_string(offset); }

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::expected<std::vector<Token>, SyntaxError> Lex(std::string_view text) {
  std::vector<Token> tokens;
  size_t pos = 0;
  auto fail = [](size_t offset, std::string message) {
    return std::unexpected(SyntaxError{offset, std::move(message)});
  };
  while (true) {
    while (pos < text.size() && IsSpace(text[pos])) ++pos;
    // Comments, as expr-lang allows them: "// to the end of the line" and "/* ... */".
    if (text.substr(pos, 2) == "//") {
      while (pos < text.size() && text[pos] != '\n') ++pos;
      continue;
    }
    if (text.substr(pos, 2) == "/*") {
      size_t close = text.find("*/", pos + 2);
      if (close == std::string_view::npos) return fail(pos, "unterminated comment" + At(pos));
      pos = close + 2;
      continue;
    }
    if (pos == text.size()) break;
    uint32_t start = static_cast<uint32_t>(pos);
    char c = text[pos];
    if (IsDigit(c) || (c == '.' && pos + 1 < text.size() && IsDigit(text[pos + 1]))) {
      std::string digits;
      bool is_float = false;
      if (c == '0' && pos + 1 < text.size() && (text[pos + 1] == 'x' || text[pos + 1] == 'X')) {
        pos += 2;
        while (pos < text.size() && (std::isxdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '_')) {
          if (text[pos] != '_') digits += text[pos];
          ++pos;
        }
        if (digits.empty() || digits.size() > 15) {
          return fail(start, "invalid number " + Quote(text.substr(start, pos - start)) + At(start));
        }
        tokens.push_back({TokenKind::kNumber, start, {}, json(std::stoll(digits, nullptr, 16))});
        continue;
      }
      while (pos < text.size()) {
        char d = text[pos];
        if (IsDigit(d) || d == '_') {
          if (d != '_') digits += d;
          ++pos;
        } else if (d == '.' && !is_float && !(pos + 1 < text.size() && text[pos + 1] == '.')) {
          is_float = true;
          digits += d;
          ++pos;
        } else if ((d == 'e' || d == 'E') && pos + 1 < text.size() &&
                   (IsDigit(text[pos + 1]) ||
                    ((text[pos + 1] == '+' || text[pos + 1] == '-') && pos + 2 < text.size() &&
                     IsDigit(text[pos + 2])))) {
          is_float = true;
          digits += d;
          digits += text[pos + 1];
          pos += 2;
        } else {
          break;
        }
      }
      if (pos < text.size() && IsIdentStart(text[pos])) {
        size_t end = pos;
        while (end < text.size() && IsIdentChar(text[end])) ++end;
        return fail(start, "invalid number " + Quote(text.substr(start, end - start)) + At(start));
      }
      if (is_float) {
        char* end = nullptr;
        double value = std::strtod(digits.c_str(), &end);
        tokens.push_back({TokenKind::kNumber, start, {}, json(value)});
      } else {
        errno = 0;
        long long value = std::strtoll(digits.c_str(), nullptr, 10);
        if (errno == ERANGE) {
          tokens.push_back({TokenKind::kNumber, start, {}, json(std::strtod(digits.c_str(), nullptr))});
        } else {
          tokens.push_back({TokenKind::kNumber, start, {}, json(static_cast<int64_t>(value))});
        }
      }
      continue;
    }
    if (IsIdentStart(c)) {
      while (pos < text.size() && IsIdentChar(text[pos])) ++pos;
      tokens.push_back({TokenKind::kIdent, start, std::string(text.substr(start, pos - start)), {}});
      continue;
    }
    if (c == '#') {
      ++pos;
      tokens.push_back({TokenKind::kPointer, start, "#", {}});
      continue;
    }
    if (c == '\'' || c == '"' || c == '`') {
      std::string value;
      ++pos;
      while (pos < text.size() && text[pos] != c) {
        if (text[pos] != '\\' || c == '`') {
          value += text[pos++];
          continue;
        }
        if (pos + 1 >= text.size()) break;
        char e = text[pos + 1];
        size_t escape_at = pos;
        pos += 2;
        switch (e) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case 'a': value += '\a'; break;
          case 'b': value += '\b'; break;
          case 'f': value += '\f'; break;
          case 'v': value += '\v'; break;
          case '0': value += '\0'; break;
          case '\\': case '\'': case '"': case '`': case '/': value += e; break;
          case 'x':
          case 'u':
          case 'U': {
            size_t n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
            if (pos + n > text.size()) return fail(escape_at, "invalid escape sequence" + At(escape_at));
            uint32_t cp = 0;
            for (size_t i = 0; i < n; ++i) {
              char h = text[pos + i];
              int v = IsDigit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
              if (v < 0) return fail(escape_at, "invalid escape sequence" + At(escape_at));
              cp = cp * 16 + static_cast<uint32_t>(v);
            }
            if (cp > 0x10FFFF) return fail(escape_at, "invalid escape sequence" + At(escape_at));
            pos += n;
            if (e == 'x') {
              value += static_cast<char>(cp);
            } else {
              AppendUtf8(value, cp);
            }
            break;
          }
          default:
            return fail(escape_at, "invalid escape sequence \"\\" + std::string(1, e) + "\"" + At(escape_at));
        }
      }
      if (pos >= text.size()) return fail(start, "unterminated string" + At(start));
      ++pos;
      tokens.push_back({TokenKind::kString, start, std::move(value), {}});
      continue;
    }
    static constexpr std::string_view kTwoChar[] = {"**", "==", "!=", "<=", ">=", "&&", "||",
                                                    "??", "?.", ".."};
    std::string op(1, c);
    for (std::string_view two : kTwoChar) {
      if (text.substr(pos, 2) == two) op = std::string(two);
    }
    // "a ?.5 : 1" is a ternary, not optional chaining.
    if (op == "?." && pos + 2 < text.size() && IsDigit(text[pos + 2])) op = "?";
    if (op.size() == 1 && std::string_view("+-*/%^<>!?:.,()[]{}=;").find(c) == std::string_view::npos) {
      return fail(start, "unexpected " + Quote(op) + At(start));
    }
    pos += op.size();
    tokens.push_back({TokenKind::kOp, start, op, {}});
  }
  tokens.push_back({TokenKind::kEnd, static_cast<uint32_t>(text.size()), {}, {}});
  return tokens;
}

using Op = ExprProgram::Op;

struct BinaryInfo {
  Op op;
  int precedence;
  bool right_assoc;
};

std::optional<BinaryInfo> BinaryOperator(const Token& token) {
  static const std::pair<std::string_view, BinaryInfo> kOps[] = {
      {"or", {Op::kOr, 10, false}},         {"||", {Op::kOr, 10, false}},
      {"and", {Op::kAnd, 15, false}},       {"&&", {Op::kAnd, 15, false}},
      {"==", {Op::kEq, 20, false}},         {"!=", {Op::kNe, 20, false}},
      {"<", {Op::kLt, 20, false}},          {"<=", {Op::kLe, 20, false}},
      {">", {Op::kGt, 20, false}},          {">=", {Op::kGe, 20, false}},
      {"in", {Op::kIn, 20, false}},         {"matches", {Op::kMatches, 20, false}},
      {"contains", {Op::kContains, 20, false}}, {"startsWith", {Op::kStartsWith, 20, false}},
      {"endsWith", {Op::kEndsWith, 20, false}}, {"..", {Op::kRange, 25, false}},
      {"+", {Op::kAdd, 30, false}},         {"-", {Op::kSub, 30, false}},
      {"*", {Op::kMul, 60, false}},         {"/", {Op::kDiv, 60, false}},
      {"%", {Op::kMod, 60, false}},         {"**", {Op::kPow, 100, true}},
      {"^", {Op::kPow, 100, true}},         {"??", {Op::kCoalesce, 500, false}},
  };
  if (token.kind != TokenKind::kOp && token.kind != TokenKind::kIdent) return std::nullopt;
  for (const auto& [text, info] : kOps) {
    if (text == token.text) {
      // Word operators are identifiers to the lexer; symbols are operators.
      bool word = IsIdentStart(text[0]);
      if (word == (token.kind == TokenKind::kIdent)) return info;
    }
  }
  return std::nullopt;
}

Op Negated(Op op) {
  switch (op) {
    case Op::kIn: return Op::kNotIn;
    case Op::kMatches: return Op::kNotMatches;
    case Op::kContains: return Op::kNotContains;
    case Op::kStartsWith: return Op::kNotStartsWith;
    case Op::kEndsWith: return Op::kNotEndsWith;
    default: return Op::kNone;
  }
}

bool IsPredicate(std::string_view name) {
  static constexpr std::string_view kPredicates[] = {"all", "any", "none", "one", "filter", "map",
                                                     "count", "find", "findIndex", "findLast",
                                                     "findLastIndex", "sum"};
  return std::find(std::begin(kPredicates), std::end(kPredicates), name) != std::end(kPredicates);
}

}  // namespace

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::expected<ExprProgram, SyntaxError> Parse() {
    if (Peek().kind == TokenKind::kEnd) return Fail(0, "empty expression");
    auto root = ParseExpression(0);
    if (!root) return std::unexpected(root.error());
    if (Peek().kind != TokenKind::kEnd) return Fail(Peek().offset, Unexpected(Peek()));
    program_.root_ = *root;
    return std::move(program_);
  }

 private:
  using Kind = ExprProgram::Kind;
  using Node = ExprProgram::Node;
  using Result = std::expected<uint32_t, SyntaxError>;
  static constexpr uint32_t kNone = ExprProgram::kNone;

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  bool IsOp(const Token& token, std::string_view op) const {
    return token.kind == TokenKind::kOp && token.text == op;
  }
  std::unexpected<SyntaxError> Fail(size_t offset, std::string message) const {
    return std::unexpected(SyntaxError{offset, std::move(message)});
  }
  static std::string Unexpected(const Token& token) {
    switch (token.kind) {
      case TokenKind::kEnd: return "unexpected end of expression" + At(token.offset);
      case TokenKind::kNumber: return "unexpected number " + FormatValue(token.number) + At(token.offset);
      case TokenKind::kString: return "unexpected string " + Quote(token.text) + At(token.offset);
      default: return "unexpected " + Quote(token.text) + At(token.offset);
    }
  }
  // Consumes `op` or fails naming what was expected.
  std::expected<void, SyntaxError> Expect(std::string_view op) {
    if (IsOp(Peek(), op)) {
      ++pos_;
      return {};
    }
    const Token& token = Peek();
    if (token.kind == TokenKind::kEnd) {
      return Fail(token.offset, "expected " + Quote(op) + " but found end of expression" + At(token.offset));
    }
    return Fail(token.offset, "expected " + Quote(op) + " but found " +
                                  (token.kind == TokenKind::kString ? Quote(token.text) : Quote(TokenText(token))) +
                                  At(token.offset));
  }
  static std::string TokenText(const Token& token) {
    return token.kind == TokenKind::kNumber ? FormatValue(token.number) : token.text;
  }

  Result Add(Node node, std::initializer_list<uint32_t> children,
             const std::vector<uint32_t>& list = {}) {
    uint32_t h = 1;
    for (uint32_t child : children) {
      if (child != kNone) h = std::max(h, heights_[child] + 1);
    }
    for (uint32_t child : list) h = std::max(h, heights_[child] + 1);
    if (h > kMaxNestingDepth) return Fail(node.offset, "expression nested too deeply");
    if (!list.empty()) {
      node.list_begin = static_cast<uint32_t>(program_.lists_.size());
      node.list_size = static_cast<uint32_t>(list.size());
      program_.lists_.insert(program_.lists_.end(), list.begin(), list.end());
    }
    program_.nodes_.push_back(node);
    heights_.push_back(h);
    return static_cast<uint32_t>(program_.nodes_.size() - 1);
  }
  uint32_t Name(std::string name) {
    program_.names_.push_back(std::move(name));
    return static_cast<uint32_t>(program_.names_.size() - 1);
  }
  uint32_t Constant(json value) {
    program_.constants_.push_back(std::move(value));
    return static_cast<uint32_t>(program_.constants_.size() - 1);
  }

  Result ParseExpression(int min_precedence) {
    if (++depth_ > kMaxNestingDepth) return Fail(Peek().offset, "expression nested too deeply");
    // "let name = value; body" binds a variable for the rest of the (sub)expression.
    if (min_precedence == 0 && Peek().kind == TokenKind::kIdent && Peek().text == "let") {
      uint32_t offset = Peek().offset;
      ++pos_;
      const Token& name = Peek();
      if (name.kind != TokenKind::kIdent) return Fail(name.offset, "expected a variable name after \"let\"" + At(name.offset));
      std::string bound = name.text;
      ++pos_;
      if (auto eq = Expect("="); !eq) return std::unexpected(eq.error());
      Result value = ParseExpression(0);
      if (!value) return value;
      if (auto semi = Expect(";"); !semi) return std::unexpected(semi.error());
      Result body = ParseExpression(0);
      if (!body) return body;
      --depth_;
      Node node{Kind::kLet};
      node.text = Name(bound);
      node.a = *value;
      node.b = *body;
      node.offset = offset;
      return Add(node, {*value, *body});
    }
    auto lhs = ParsePrimary();
    if (!lhs) return lhs;
    while (true) {
      const Token& token = Peek();
      std::optional<BinaryInfo> info;
      size_t width = 1;
      if (token.kind == TokenKind::kIdent && token.text == "not") {
        std::optional<BinaryInfo> next = BinaryOperator(Peek(1));
        if (next && Negated(next->op) != Op::kNone) {
          info = BinaryInfo{Negated(next->op), next->precedence, false};
          width = 2;
        }
      } else {
        info = BinaryOperator(token);
      }
      if (!info || info->precedence < min_precedence) break;
      uint32_t offset = token.offset;
      std::string op_text = width == 2 ? "not " + Peek(1).text : token.text;
      pos_ += width;
      if (Peek().kind == TokenKind::kEnd) {
        return Fail(offset, "expected an operand after " + Quote(op_text) + At(offset));
      }
      auto rhs = ParseExpression(info->right_assoc ? info->precedence : info->precedence + 1);
      if (!rhs) return rhs;
      Node node{Kind::kBinary};
      node.op = info->op;
      node.a = *lhs;
      node.b = *rhs;
      node.offset = offset;
      lhs = Add(node, {*lhs, *rhs});
      if (!lhs) return lhs;
    }
    if (min_precedence == 0 && IsOp(Peek(), "?")) {
      uint32_t offset = Peek().offset;
      ++pos_;
      auto then = ParseExpression(0);
      if (!then) return then;
      if (auto colon = Expect(":"); !colon) return std::unexpected(colon.error());
      auto otherwise = ParseExpression(0);
      if (!otherwise) return otherwise;
      Node node{Kind::kTernary};
      node.a = *lhs;
      node.b = *then;
      node.c = *otherwise;
      node.offset = offset;
      lhs = Add(node, {*lhs, *then, *otherwise});
    }
    --depth_;
    return lhs;
  }

  Result ParsePrimary() {
    const Token& token = Peek();
    if ((token.kind == TokenKind::kOp && (token.text == "!" || token.text == "-" || token.text == "+")) ||
        (token.kind == TokenKind::kIdent && token.text == "not")) {
      ++pos_;
      if (Peek().kind == TokenKind::kEnd) {
        return Fail(token.offset, "expected an operand after " + Quote(token.text) + At(token.offset));
      }
      bool logical = token.text == "!" || token.text == "not";
      auto operand = ParseExpression(logical ? 50 : 90);
      if (!operand) return operand;
      Node node{Kind::kUnary};
      node.op = logical ? Op::kNot : (token.text == "-" ? Op::kNeg : Op::kPlus);
      node.a = *operand;
      node.offset = token.offset;
      auto unary = Add(node, {*operand});
      if (!unary) return unary;
      return ParsePostfix(*unary);
    }
    if (IsOp(token, "(")) {
      ++pos_;
      auto inner = ParseExpression(0);
      if (!inner) return inner;
      if (auto close = Expect(")"); !close) return std::unexpected(close.error());
      return ParsePostfix(*inner);
    }
    auto secondary = ParseSecondary();
    if (!secondary) return secondary;
    return ParsePostfix(*secondary);
  }

  Result ParseSecondary() {
    const Token& token = Peek();
    Node node{Kind::kLiteral};
    node.offset = token.offset;
    switch (token.kind) {
      case TokenKind::kNumber:
        ++pos_;
        node.text = Constant(token.number);
        return Add(node, {});
      case TokenKind::kString:
        ++pos_;
        node.text = Constant(token.text);
        return Add(node, {});
      case TokenKind::kPointer:
        ++pos_;
        node.kind = Kind::kPointer;
        return Add(node, {});
      case TokenKind::kIdent: {
        ++pos_;
        if (token.text == "true" || token.text == "false") {
          node.text = Constant(token.text == "true");
          return Add(node, {});
        }
        if (token.text == "nil") {
          node.text = Constant(nullptr);
          return Add(node, {});
        }
        if (IsOp(Peek(), "(")) return ParseCall(token.text, token.offset, kNone);
        node.kind = Kind::kIdent;
        node.text = Name(token.text);
        return Add(node, {});
      }
      case TokenKind::kOp:
        if (token.text == "[") return ParseArray();
        if (token.text == "{") return ParseMap();
        return Fail(token.offset, Unexpected(token));
      case TokenKind::kEnd:
        return Fail(token.offset, Unexpected(token));
    }
    return Fail(token.offset, Unexpected(token));
  }

  // Parses "(args)" after a function name; `object` is the receiver of a method call.
  Result ParseCall(const std::string& name, uint32_t offset, uint32_t object) {
    uint32_t open = Peek().offset;
    ++pos_;  // "("
    if (++depth_ > kMaxNestingDepth) return Fail(open, "expression nested too deeply");
    std::vector<uint32_t> args;
    bool predicate = object == kNone && IsPredicate(name);
    while (!IsOp(Peek(), ")")) {
      if (!args.empty()) {
        if (auto comma = Expect(","); !comma) return std::unexpected(comma.error());
        if (IsOp(Peek(), ")")) break;
      }
      Result arg = predicate && args.size() == 1 ? ParseClosure() : ParseExpression(0);
      if (!arg) return arg;
      args.push_back(*arg);
    }
    ++pos_;  // ")"
    --depth_;
    Node node{object == kNone ? Kind::kCall : Kind::kMethodCall};
    node.a = object;
    node.text = Name(name);
    node.offset = offset;
    return Add(node, {object}, args);
  }

  // A predicate: "{ body }" or, as newer expr-lang allows, a bare body.
  Result ParseClosure() {
    uint32_t offset = Peek().offset;
    Result body;
    if (IsOp(Peek(), "{")) {
      ++pos_;
      body = ParseExpression(0);
      if (!body) return body;
      if (auto close = Expect("}"); !close) return std::unexpected(close.error());
    } else {
      body = ParseExpression(0);
      if (!body) return body;
    }
    Node node{Kind::kClosure};
    node.a = *body;
    node.offset = offset;
    return Add(node, {*body});
  }

  Result ParseArray() {
    uint32_t offset = Peek().offset;
    ++pos_;
    if (++depth_ > kMaxNestingDepth) return Fail(offset, "expression nested too deeply");
    std::vector<uint32_t> items;
    while (!IsOp(Peek(), "]")) {
      if (!items.empty()) {
        if (auto comma = Expect(","); !comma) return std::unexpected(comma.error());
        if (IsOp(Peek(), "]")) break;
      }
      auto item = ParseExpression(0);
      if (!item) return item;
      items.push_back(*item);
    }
    ++pos_;
    --depth_;
    Node node{Kind::kArray};
    node.offset = offset;
    return Add(node, {}, items);
  }

  Result ParseMap() {
    uint32_t offset = Peek().offset;
    ++pos_;
    if (++depth_ > kMaxNestingDepth) return Fail(offset, "expression nested too deeply");
    std::vector<uint32_t> items;
    while (!IsOp(Peek(), "}")) {
      if (!items.empty()) {
        if (auto comma = Expect(","); !comma) return std::unexpected(comma.error());
        if (IsOp(Peek(), "}")) break;
      }
      const Token& key = Peek();
      Result key_node;
      if (key.kind == TokenKind::kIdent || key.kind == TokenKind::kString ||
          key.kind == TokenKind::kNumber) {
        ++pos_;
        Node literal{Kind::kLiteral};
        literal.offset = key.offset;
        literal.text = Constant(key.kind == TokenKind::kNumber ? json(FormatValue(key.number)) : json(key.text));
        key_node = Add(literal, {});
      } else if (IsOp(key, "(")) {
        ++pos_;
        key_node = ParseExpression(0);
        if (!key_node) return key_node;
        if (auto close = Expect(")"); !close) return std::unexpected(close.error());
      } else {
        return Fail(key.offset, "expected a map key but found " +
                                    (key.kind == TokenKind::kEnd ? std::string("end of expression") : Quote(TokenText(key))) +
                                    At(key.offset));
      }
      if (!key_node) return key_node;
      if (auto colon = Expect(":"); !colon) return std::unexpected(colon.error());
      auto value = ParseExpression(0);
      if (!value) return value;
      items.push_back(*key_node);
      items.push_back(*value);
    }
    ++pos_;
    --depth_;
    Node node{Kind::kMap};
    node.offset = offset;
    return Add(node, {}, items);
  }

  Result ParsePostfix(uint32_t node_index) {
    Result current = node_index;
    while (true) {
      const Token& token = Peek();
      bool optional = IsOp(token, "?.");
      if (IsOp(token, ".") || optional) {
        ++pos_;
        if (optional && IsOp(Peek(), "[")) {
          current = ParseIndex(*current, true);
          if (!current) return current;
          continue;
        }
        const Token& name = Peek();
        if (name.kind != TokenKind::kIdent) {
          return Fail(name.offset, "expected a name after " + Quote(token.text) + At(name.offset));
        }
        ++pos_;
        if (IsOp(Peek(), "(")) {
          const Node& object = program_.nodes_[*current];
          if (object.kind == Kind::kIdent && program_.names_[object.text] == "sprig") {
            current = ParseCall("sprig." + name.text, object.offset, kNone);
          } else {
            current = ParseCall(name.text, name.offset, *current);
          }
          if (!current) return current;
          continue;
        }
        Node member{Kind::kMember};
        member.a = *current;
        member.optional = optional;
        member.text = Name(name.text);
        member.offset = name.offset;
        current = Add(member, {*current});
        if (!current) return current;
        continue;
      }
      if (IsOp(token, "[")) {
        current = ParseIndex(*current, false);
        if (!current) return current;
        continue;
      }
      return current;
    }
  }

  Result ParseIndex(uint32_t object, bool optional) {
    uint32_t offset = Peek().offset;
    ++pos_;  // "["
    if (++depth_ > kMaxNestingDepth) return Fail(offset, "expression nested too deeply");
    uint32_t from = kNone, to = kNone;
    bool slice = false;
    if (!IsOp(Peek(), ":")) {
      auto index = ParseExpression(0);
      if (!index) return index;
      from = *index;
    }
    if (IsOp(Peek(), ":")) {
      slice = true;
      ++pos_;
      if (!IsOp(Peek(), "]")) {
        auto end = ParseExpression(0);
        if (!end) return end;
        to = *end;
      }
    }
    if (auto close = Expect("]"); !close) return std::unexpected(close.error());
    --depth_;
    Node node{slice ? Kind::kSlice : Kind::kIndex};
    node.a = object;
    node.b = from;
    node.c = to;
    node.optional = optional;
    node.offset = offset;
    return Add(node, {object, from, to});
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<uint32_t> heights_;
  ExprProgram program_;
};

std::expected<ExprProgram, SyntaxError> ParseExpr(std::string_view text) {
  auto tokens = Lex(text);
  if (!tokens) return std::unexpected(tokens.error());
  return ExprParser(std::move(*tokens)).Parse();
}

namespace {

using Kind = ExprProgram::Kind;
constexpr uint32_t kNone = ExprProgram::kNone;

class PathCollector {
 public:
  explicit PathCollector(const ExprProgram& program) : program_(program) {}

  void Visit(uint32_t index) {
    if (index == kNone) return;
    const ExprProgram::Node& node = program_.nodes()[index];
    switch (node.kind) {
      case Kind::kIdent:
      case Kind::kMember:
      case Kind::kIndex:
        VisitChain(index);
        return;
      case Kind::kLet:
        Visit(node.a);
        bound_.push_back(program_.name(node.text));
        Visit(node.b);
        bound_.pop_back();
        return;
      default:
        break;
    }
    Visit(node.a);
    Visit(node.b);
    Visit(node.c);
    for (uint32_t i = 0; i < node.list_size; ++i) Visit(program_.list(node.list_begin + i));
  }

  std::vector<std::vector<std::string>> Take() { return std::move(paths_); }

 private:
  // A chain of members and indexes: records the constant path from an identifier and visits the
  // expressions inside the chain.
  void VisitChain(uint32_t index) {
    std::vector<uint32_t> chain;  // outermost first
    uint32_t current = index;
    while (true) {
      const ExprProgram::Node& node = program_.nodes()[current];
      if (node.kind != Kind::kMember && node.kind != Kind::kIndex) break;
      chain.push_back(current);
      current = node.a;
    }
    const ExprProgram::Node& base = program_.nodes()[current];
    if (base.kind != Kind::kIdent) {
      Visit(current);
      for (uint32_t link : chain) Visit(program_.nodes()[link].b);
      return;
    }
    if (std::find(bound_.begin(), bound_.end(), program_.name(base.text)) != bound_.end()) {
      for (uint32_t link : chain) Visit(program_.nodes()[link].b);
      return;
    }
    std::vector<std::string> path{program_.name(base.text)};
    std::vector<uint32_t> dynamic;  // index expressions, visited after this path is recorded
    bool constant = true;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const ExprProgram::Node& link = program_.nodes()[*it];
      if (link.kind == Kind::kMember) {
        if (constant) path.push_back(program_.name(link.text));
        continue;
      }
      const ExprProgram::Node& key = program_.nodes()[link.b];
      if (constant && key.kind == Kind::kLiteral &&
          (program_.constant(key.text).is_string() || program_.constant(key.text).is_number_integer())) {
        path.push_back(RenderValue(program_.constant(key.text)));
      } else {
        constant = false;
        dynamic.push_back(link.b);
      }
    }
    if (seen_.insert(path).second) paths_.push_back(std::move(path));
    for (uint32_t index_expr : dynamic) Visit(index_expr);
  }

  const ExprProgram& program_;
  std::vector<std::vector<std::string>> paths_;
  std::set<std::vector<std::string>> seen_;
  std::vector<std::string> bound_;  // names bound by enclosing "let"s
};

}  // namespace

std::vector<std::vector<std::string>> ReferencedPaths(const ExprProgram& program) {
  PathCollector collector(program);
  if (!program.nodes().empty()) collector.Visit(program.root());
  return collector.Take();
}

json BuildEnv(const std::map<std::string, std::string>& flat) {
  json env = json::object();
  for (const auto& [name, value] : flat) {
    json* node = &env;
    size_t start = 0;
    while (true) {
      size_t dot = name.find('.', start);
      std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (dot == std::string::npos) {
        auto it = node->find(part);
        // Where a name is also a prefix of others, the nested map wins.
        if (it == node->end() || !it->is_object()) (*node)[part] = value;
        break;
      }
      json& child = (*node)[part];
      if (!child.is_object()) child = json::object();
      node = &child;
      start = dot + 1;
    }
  }
  return env;
}

std::string RenderValue(const json& value) { return FormatValue(value); }

}  // namespace kiln::expr
