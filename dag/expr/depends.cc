#include "dag/expr/depends.h"

#include <array>
#include <utility>

#include "base/strings.h"

namespace kiln::expr {
namespace {

constexpr std::array<std::pair<std::string_view, TaskResult>, 8> kResults = {{
    {"Succeeded", TaskResult::kSucceeded},
    {"Failed", TaskResult::kFailed},
    {"Errored", TaskResult::kErrored},
    {"Skipped", TaskResult::kSkipped},
    {"Omitted", TaskResult::kOmitted},
    {"Daemoned", TaskResult::kDaemoned},
    {"AnySucceeded", TaskResult::kAnySucceeded},
    {"AllFailed", TaskResult::kAllFailed},
}};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string At(size_t offset) { return " at offset " + std::to_string(offset); }

}  // namespace

std::string_view TaskResultName(TaskResult result) {
  for (const auto& [name, value] : kResults) {
    if (value == result) return name;
  }
  return "?";
}

// Recursive descent over: or := and ("||" and)*; and := unary ("&&" unary)*;
// unary := "!" unary | "(" or ")" | NAME ("." RESULT)?
class DependsParser {
 public:
  explicit DependsParser(std::string_view text) : text_(text) {}

  std::expected<DependsExpr, SyntaxError> Parse() {
    SkipSpace();
    if (pos_ == text_.size()) return Fail(0, "empty depends expression");
    auto root = ParseOr();
    if (!root) return std::unexpected(root.error());
    SkipSpace();
    if (pos_ < text_.size()) return Fail(pos_, Unexpected(pos_));
    expr_.root_ = *root;
    return std::move(expr_);
  }

 private:
  using Kind = DependsExpr::Kind;
  using Node = DependsExpr::Node;

  std::unexpected<SyntaxError> Fail(size_t offset, std::string message) {
    return std::unexpected(SyntaxError{offset, std::move(message)});
  }

  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }

  bool Match(std::string_view op) {
    SkipSpace();
    if (text_.substr(pos_, op.size()) != op) return false;
    pos_ += op.size();
    return true;
  }

  // Describes the token at `offset` for an "unexpected" message.
  std::string Unexpected(size_t offset) {
    char c = text_[offset];
    if ((c == '&' || c == '|') && text_.substr(offset, 2) != "&&" && text_.substr(offset, 2) != "||") {
      return "unexpected \"" + std::string(1, c) + "\"" + At(offset) + " (did you mean \"" +
             std::string(2, c) + "\"?)";
    }
    size_t end = offset + 1;
    if (IsNameChar(c)) {
      while (end < text_.size() && (IsNameChar(text_[end]) || text_[end] == '.')) ++end;
    } else if (text_.substr(offset, 2) == "&&" || text_.substr(offset, 2) == "||") {
      end = offset + 2;
    }
    return "unexpected " + Quote(text_.substr(offset, end - offset)) + At(offset);
  }

  uint32_t Add(Node node) {
    expr_.nodes_.push_back(node);
    return static_cast<uint32_t>(expr_.nodes_.size() - 1);
  }

  // Parses operands of a chain joined by `op` into one n-ary node.
  template <typename ParseOperand>
  std::expected<uint32_t, SyntaxError> ParseChain(std::string_view op, Kind kind,
                                                  ParseOperand parse_operand) {
    auto first = parse_operand();
    if (!first) return first;
    std::vector<uint32_t> operands;
    while (true) {
      size_t save = pos_;
      if (!Match(op)) {
        pos_ = save;
        break;
      }
      size_t op_offset = pos_ - op.size();
      SkipSpace();
      if (pos_ == text_.size() || text_[pos_] == ')' || text_[pos_] == '&' || text_[pos_] == '|') {
        return Fail(op_offset, "expected an operand after \"" + std::string(op) + "\"" + At(op_offset));
      }
      auto next = parse_operand();
      if (!next) return next;
      if (operands.empty()) operands.push_back(*first);
      operands.push_back(*next);
    }
    if (operands.empty()) return *first;
    uint32_t begin = static_cast<uint32_t>(expr_.children_.size());
    expr_.children_.insert(expr_.children_.end(), operands.begin(), operands.end());
    return Add(Node{kind, begin, static_cast<uint32_t>(operands.size())});
  }

  std::expected<uint32_t, SyntaxError> ParseOr() {
    return ParseChain("||", Kind::kOr, [this] { return ParseAnd(); });
  }

  std::expected<uint32_t, SyntaxError> ParseAnd() {
    return ParseChain("&&", Kind::kAnd, [this] { return ParseUnary(); });
  }

  std::expected<uint32_t, SyntaxError> ParseUnary() {
    SkipSpace();
    if (pos_ == text_.size()) return Fail(pos_, "unexpected end of expression" + At(pos_));
    char c = text_[pos_];
    if (c == '!' || c == '(') {
      if (++depth_ > kMaxNestingDepth) return Fail(pos_, "expression nested too deeply");
      size_t open = pos_++;
      std::expected<uint32_t, SyntaxError> result;
      if (c == '!') {
        SkipSpace();
        if (pos_ == text_.size() || text_[pos_] == ')' || text_[pos_] == '&' || text_[pos_] == '|') {
          return Fail(open, "expected an operand after \"!\"" + At(open));
        }
        auto child = ParseUnary();
        if (!child) return child;
        result = Add(Node{Kind::kNot, *child, 0});
      } else {
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ')') {
          return Fail(pos_, "empty parentheses" + At(open));
        }
        result = ParseOr();
        if (!result) return result;
        SkipSpace();
        if (pos_ == text_.size()) return Fail(open, "missing \")\" for \"(\"" + At(open));
        if (text_[pos_] != ')') return Fail(pos_, Unexpected(pos_));
        ++pos_;
      }
      --depth_;
      return result;
    }
    if (!IsNameChar(c)) return Fail(pos_, Unexpected(pos_));
    size_t start = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    DependsRef ref{std::string(text_.substr(start, pos_ - start)), std::nullopt, start};
    if (pos_ < text_.size() && text_[pos_] == '.') {
      size_t suffix_start = ++pos_;
      while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
      std::string_view suffix = text_.substr(suffix_start, pos_ - suffix_start);
      for (const auto& [name, value] : kResults) {
        if (name == suffix) ref.result = value;
      }
      if (!ref.result) {
        std::string message = suffix.empty() ? "expected a task result after \"" + ref.task + ".\""
                                             : "unknown task result " + Quote(suffix);
        message += At(suffix_start) + "; expected one of ";
        for (size_t i = 0; i < kResults.size(); ++i) {
          if (i > 0) message += ", ";
          message += kResults[i].first;
        }
        return Fail(suffix_start, std::move(message));
      }
    }
    expr_.refs_.push_back(std::move(ref));
    return Add(Node{Kind::kRef, static_cast<uint32_t>(expr_.refs_.size() - 1), 0});
  }

  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
  DependsExpr expr_;
};

std::expected<DependsExpr, SyntaxError> ParseDepends(std::string_view text) {
  return DependsParser(text).Parse();
}

std::optional<bool> DependsExpr::Evaluate(const Lookup& lookup) const {
  std::vector<Outcome> outcomes;
  outcomes.reserve(refs_.size());
  for (const DependsRef& ref : refs_) {
    std::optional<Outcome> outcome = lookup(ref.task);
    if (!outcome) return std::nullopt;
    outcomes.push_back(*outcome);
  }
  if (nodes_.empty()) return std::nullopt;
  return EvaluateNode(root_, outcomes);
}

bool DependsExpr::EvaluateNode(uint32_t node, const std::vector<Outcome>& outcomes) const {
  const Node& n = nodes_[node];
  switch (n.kind) {
    case Kind::kRef: {
      const Outcome& o = outcomes[n.first];
      using Phase = Outcome::Phase;
      if (!refs_[n.first].result) {
        return o.phase == Phase::kSucceeded || o.phase == Phase::kSkipped || o.daemoned;
      }
      switch (*refs_[n.first].result) {
        case TaskResult::kSucceeded: return o.phase == Phase::kSucceeded;
        case TaskResult::kFailed: return o.phase == Phase::kFailed;
        case TaskResult::kErrored: return o.phase == Phase::kErrored;
        case TaskResult::kSkipped: return o.phase == Phase::kSkipped;
        case TaskResult::kOmitted: return o.phase == Phase::kOmitted;
        case TaskResult::kDaemoned: return o.daemoned;
        case TaskResult::kAnySucceeded: return o.any_child_succeeded;
        case TaskResult::kAllFailed: return o.all_children_failed;
      }
      return false;
    }
    case Kind::kNot:
      return !EvaluateNode(n.first, outcomes);
    case Kind::kAnd:
      for (uint32_t i = 0; i < n.count; ++i) {
        if (!EvaluateNode(children_[n.first + i], outcomes)) return false;
      }
      return true;
    case Kind::kOr:
      for (uint32_t i = 0; i < n.count; ++i) {
        if (EvaluateNode(children_[n.first + i], outcomes)) return true;
      }
      return false;
  }
  return false;
}

std::string DependsExpr::ToString() const {
  std::string out;
  if (!nodes_.empty()) Print(root_, false, out);
  return out;
}

void DependsExpr::Print(uint32_t node, bool nested, std::string& out) const {
  const Node& n = nodes_[node];
  switch (n.kind) {
    case Kind::kRef:
      out += refs_[n.first].task;
      if (refs_[n.first].result) {
        out += '.';
        out += TaskResultName(*refs_[n.first].result);
      }
      return;
    case Kind::kNot:
      out += '!';
      Print(n.first, true, out);
      return;
    case Kind::kAnd:
    case Kind::kOr: {
      if (nested) out += '(';
      for (uint32_t i = 0; i < n.count; ++i) {
        if (i > 0) out += n.kind == Kind::kAnd ? " && " : " || ";
        Print(children_[n.first + i], true, out);
      }
      if (nested) out += ')';
      return;
    }
  }
}

}  // namespace kiln::expr
