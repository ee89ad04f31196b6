#include "dag/expr/jsonpath.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "dag/expr/syntax_error.h"
#include "dag/expr/value_format.h"

namespace kiln::expr {
namespace {

using json = nlohmann::json;

struct Filter;

// One selector of a path.
struct Step {
  enum class Kind { kKeys, kIndices, kSlice, kWildcard, kFilter } kind = Kind::kKeys;
  bool recursive = false;  // preceded by ".."
  std::vector<std::string> keys;
  std::vector<int64_t> indices;
  std::optional<int64_t> start, end;
  int64_t stride = 1;
  std::shared_ptr<const Filter> filter;  // shared: steps are copied while a path is built
};

struct Path {
  bool from_root = true;  // "$" rather than "@"
  std::vector<Step> steps;
  bool Definite() const {
    for (const Step& s : steps) {
      if (s.recursive || s.kind == Step::Kind::kSlice || s.kind == Step::Kind::kWildcard ||
          s.kind == Step::Kind::kFilter || s.keys.size() > 1 || s.indices.size() > 1) {
        return false;
      }
    }
    return true;
  }
};

// A filter expression tree.
struct Filter {
  enum class Kind { kOr, kAnd, kNot, kCompare, kExists, kLiteral } kind;
  std::string op;  // comparison operator
  std::unique_ptr<Filter> lhs, rhs;
  std::optional<Path> path;  // operand path for kExists/kCompare operands
  json literal;
  int height = 1;  // bounds the evaluator's recursion
};

// Bounds the work of paths like "$..*..*..*" on large documents.
constexpr size_t kMaxMatches = 1'000'000;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '$' || static_cast<unsigned char>(c) >= 0x80;
}
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

class PathParser {
 public:
  explicit PathParser(std::string_view text) : text_(text) {}

  std::expected<Path, SyntaxError> ParseWhole() {
    SkipSpace();
    if (pos_ == text_.size()) return Fail("empty path");
    auto path = ParsePath();
    if (!path) return path;
    SkipSpace();
    if (pos_ < text_.size()) return Fail("unexpected " + Quote(text_.substr(pos_, 1)) + At());
    return path;
  }

 private:
  std::string At() const { return " at offset " + std::to_string(pos_); }
  std::unexpected<SyntaxError> Fail(std::string message) const {
    return std::unexpected(SyntaxError{pos_, std::move(message)});
  }
  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }
  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  // "$" or "@" followed by selectors.
  std::expected<Path, SyntaxError> ParsePath() {
    Path path;
    if (Peek('$') || Peek('@')) {
      path.from_root = text_[pos_] == '$';
      ++pos_;
    } else if (!Peek('.') && !Peek('[')) {
      return Fail("path must start with \"$\"" + At());
    }
    while (pos_ < text_.size()) {
      Step step;
      if (text_.substr(pos_, 2) == "..") {
        step.recursive = true;
        pos_ += 2;
        if (Peek('[')) {
          auto parsed = ParseBracket(std::move(step));
          if (!parsed) return std::unexpected(parsed.error());
          path.steps.push_back(std::move(*parsed));
          continue;
        }
      } else if (Peek('.')) {
        ++pos_;
      } else if (Peek('[')) {
        auto parsed = ParseBracket(std::move(step));
        if (!parsed) return std::unexpected(parsed.error());
        path.steps.push_back(std::move(*parsed));
        continue;
      } else {
        break;
      }
      if (Peek('*')) {
        ++pos_;
        step.kind = Step::Kind::kWildcard;
      } else {
        size_t start = pos_;
        while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
        if (start == pos_) return Fail("expected a key name" + At());
        step.keys.emplace_back(text_.substr(start, pos_ - start));
      }
      path.steps.push_back(std::move(step));
    }
    return path;
  }

  std::expected<std::string, SyntaxError> ParseQuoted() {
    char quote = text_[pos_];
    size_t start = pos_++;
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (pos_ == text_.size()) {
      pos_ = start;
      return Fail("unterminated string" + At());
    }
    ++pos_;
    return out;
  }

  std::optional<int64_t> ParseInt() {
    SkipSpace();
    size_t start = pos_;
    if (Peek('-') || Peek('+')) ++pos_;
    size_t digits = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    if (pos_ == digits || pos_ - digits > 15) {
      pos_ = start;
      return std::nullopt;
    }
    int64_t value = std::stoll(std::string(text_.substr(start, pos_ - start)));
    SkipSpace();
    return value;
  }

  std::expected<Step, SyntaxError> ParseBracket(Step step) {
    size_t open = pos_++;
    SkipSpace();
    if (Peek('*')) {
      ++pos_;
      step.kind = Step::Kind::kWildcard;
    } else if (Peek('?')) {
      ++pos_;
      SkipSpace();
      if (!Peek('(')) return Fail("expected \"(\" after \"?\"" + At());
      ++pos_;
      auto filter = ParseOr();
      if (!filter) return std::unexpected(filter.error());
      SkipSpace();
      if (!Peek(')')) return Fail("expected \")\" to close the filter" + At());
      ++pos_;
      step.kind = Step::Kind::kFilter;
      step.filter = std::move(*filter);
    } else if (Peek('\'') || Peek('"')) {
      while (true) {
        SkipSpace();
        if (!Peek('\'') && !Peek('"')) return Fail("expected a quoted key" + At());
        auto key = ParseQuoted();
        if (!key) return std::unexpected(key.error());
        step.keys.push_back(std::move(*key));
        SkipSpace();
        if (!Peek(',')) break;
        ++pos_;
      }
    } else {
      std::optional<int64_t> first = ParseInt();
      if (Peek(':')) {
        step.kind = Step::Kind::kSlice;
        step.start = first;
        ++pos_;
        step.end = ParseInt();
        if (Peek(':')) {
          ++pos_;
          std::optional<int64_t> stride = ParseInt();
          if (stride) step.stride = *stride;
          if (step.stride <= 0) return Fail("slice step must be positive" + At());
        }
      } else {
        if (!first) return Fail("expected an index, a quoted key, \"*\" or a filter" + At());
        step.kind = Step::Kind::kIndices;
        step.indices.push_back(*first);
        while (Peek(',')) {
          ++pos_;
          std::optional<int64_t> next = ParseInt();
          if (!next) return Fail("expected an index" + At());
          step.indices.push_back(*next);
        }
      }
    }
    SkipSpace();
    if (!Peek(']')) {
      if (pos_ == text_.size()) {
        pos_ = open;
        return Fail("missing \"]\" for \"[\"" + At());
      }
      return Fail("unexpected " + Quote(text_.substr(pos_, 1)) + At());
    }
    ++pos_;
    return step;
  }

  using FilterResult = std::expected<std::unique_ptr<Filter>, SyntaxError>;

  FilterResult Binary(Filter::Kind kind, std::string_view op, FilterResult (PathParser::*next)()) {
    auto lhs = (this->*next)();
    if (!lhs) return lhs;
    while (true) {
      SkipSpace();
      if (text_.substr(pos_, 2) != op) break;
      pos_ += 2;
      auto rhs = (this->*next)();
      if (!rhs) return rhs;
      auto node = std::make_unique<Filter>();
      node->kind = kind;
      node->height = std::max((*lhs)->height, (*rhs)->height) + 1;
      if (node->height > kMaxNestingDepth) return Fail("expression nested too deeply");
      node->lhs = std::move(*lhs);
      node->rhs = std::move(*rhs);
      lhs = std::move(node);
    }
    return lhs;
  }

  FilterResult ParseOr() { return Binary(Filter::Kind::kOr, "||", &PathParser::ParseAnd); }
  FilterResult ParseAnd() { return Binary(Filter::Kind::kAnd, "&&", &PathParser::ParseUnary); }

  FilterResult ParseUnary() {
    SkipSpace();
    if (++depth_ > kMaxNestingDepth) return Fail("expression nested too deeply");
    FilterResult result;
    if (Peek('!') && text_.substr(pos_, 2) != "!=") {
      ++pos_;
      auto child = ParseUnary();
      if (!child) return child;
      auto node = std::make_unique<Filter>();
      node->kind = Filter::Kind::kNot;
      node->height = (*child)->height + 1;
      node->lhs = std::move(*child);
      result = std::move(node);
    } else if (Peek('(')) {
      size_t open = pos_++;
      result = ParseOr();
      if (!result) return result;
      SkipSpace();
      if (!Peek(')')) {
        pos_ = open;
        return Fail("missing \")\" for \"(\"" + At());
      }
      ++pos_;
    } else {
      result = ParseComparison();
    }
    --depth_;
    return result;
  }

  FilterResult ParseOperand() {
    SkipSpace();
    auto node = std::make_unique<Filter>();
    node->kind = Filter::Kind::kLiteral;
    if (Peek('@') || Peek('$')) {
      auto path = ParsePath();
      if (!path) return std::unexpected(path.error());
      node->kind = Filter::Kind::kExists;
      node->path = std::move(*path);
      return node;
    }
    if (Peek('\'') || Peek('"')) {
      auto text = ParseQuoted();
      if (!text) return std::unexpected(text.error());
      node->literal = std::move(*text);
      return node;
    }
    size_t start = pos_;
    while (pos_ < text_.size() && (IsNameChar(text_[pos_]) || text_[pos_] == '.' || text_[pos_] == '+')) {
      ++pos_;
    }
    std::string word(text_.substr(start, pos_ - start));
    if (word == "true" || word == "false") {
      node->literal = word == "true";
      return node;
    }
    if (word == "null") return node;
    if (!word.empty()) {
      try {
        node->literal = json::parse(word);
        if (node->literal.is_number()) return node;
      } catch (const json::exception&) {
      }
    }
    pos_ = start;
    if (pos_ == text_.size()) return Fail("expected an operand at the end of the filter");
    return Fail("unexpected " + Quote(text_.substr(pos_, 1)) + At());
  }

  FilterResult ParseComparison() {
    auto lhs = ParseOperand();
    if (!lhs) return lhs;
    SkipSpace();
    static constexpr std::string_view kOps[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (std::string_view op : kOps) {
      if (text_.substr(pos_, op.size()) != op) continue;
      pos_ += op.size();
      auto rhs = ParseOperand();
      if (!rhs) return rhs;
      auto node = std::make_unique<Filter>();
      node->kind = Filter::Kind::kCompare;
      node->height = std::max((*lhs)->height, (*rhs)->height) + 1;
      node->op = std::string(op);
      node->lhs = std::move(*lhs);
      node->rhs = std::move(*rhs);
      return node;
    }
    if ((*lhs)->kind == Filter::Kind::kExists) return lhs;
    // A lone literal is its own truth value.
    return lhs;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
};

class Evaluator {
 public:
  explicit Evaluator(const json& root) : root_(root) {}

  // Whether a selection was abandoned for matching more than kMaxMatches values.
  bool too_large() const { return too_large_; }

  // Returns every match of `path` starting at `current`.
  std::vector<const json*> Select(const Path& path, const json& current) {
    std::vector<const json*> set{path.from_root ? &root_ : &current};
    for (const Step& step : path.steps) {
      std::vector<const json*> next;
      for (const json* node : set) {
        if (step.recursive) {
          std::vector<const json*> stack{node};
          std::vector<const json*> all;
          while (!stack.empty()) {
            const json* n = stack.back();
            stack.pop_back();
            all.push_back(n);
            if (n->is_structured()) {
              std::vector<const json*> children;
              for (const auto& child : *n) children.push_back(&child);
              for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(*it);
            }
          }
          for (const json* n : all) Apply(step, *n, next);
        } else {
          Apply(step, *node, next);
        }
        if (next.size() > kMaxMatches) {
          too_large_ = true;
          return {};
        }
      }
      set = std::move(next);
    }
    return set;
  }

  // Explains why a single-value path matched nothing.
  std::string Explain(const Path& path) {
    const json* node = &root_;
    for (const Step& step : path.steps) {
      if (step.kind == Step::Kind::kKeys) {
        if (!node->is_object()) {
          return "cannot get key " + Quote(step.keys[0]) + " from " + TypeName(*node);
        }
        auto it = node->find(step.keys[0]);
        if (it == node->end()) return "key " + Quote(step.keys[0]) + " not found";
        node = &*it;
      } else {
        if (!node->is_array()) {
          return "cannot index " + TypeName(*node) + " with " + std::to_string(step.indices[0]);
        }
        int64_t size = static_cast<int64_t>(node->size());
        int64_t i = step.indices[0] < 0 ? step.indices[0] + size : step.indices[0];
        if (i < 0 || i >= size) {
          return "index " + std::to_string(step.indices[0]) + " out of range for array of length " +
                 std::to_string(size);
        }
        node = &(*node)[static_cast<size_t>(i)];
      }
    }
    return "no match";
  }

 private:
  void Apply(const Step& step, const json& node, std::vector<const json*>& out) {
    switch (step.kind) {
      case Step::Kind::kKeys:
        if (!node.is_object()) return;
        for (const std::string& key : step.keys) {
          auto it = node.find(key);
          if (it != node.end()) out.push_back(&*it);
        }
        return;
      case Step::Kind::kIndices: {
        if (!node.is_array()) return;
        int64_t size = static_cast<int64_t>(node.size());
        for (int64_t index : step.indices) {
          int64_t i = index < 0 ? index + size : index;
          if (i >= 0 && i < size) out.push_back(&node[static_cast<size_t>(i)]);
        }
        return;
      }
      case Step::Kind::kSlice: {
        if (!node.is_array()) return;
        int64_t size = static_cast<int64_t>(node.size());
        auto clamp = [size](int64_t i) {
          if (i < 0) i += size;
          return std::clamp<int64_t>(i, 0, size);
        };
        int64_t start = step.start ? clamp(*step.start) : 0;
        int64_t end = step.end ? clamp(*step.end) : size;
        for (int64_t i = start; i < end; i += step.stride) out.push_back(&node[static_cast<size_t>(i)]);
        return;
      }
      case Step::Kind::kWildcard:
        if (!node.is_structured()) return;
        for (const auto& child : node) out.push_back(&child);
        return;
      case Step::Kind::kFilter:
        if (!node.is_structured()) return;
        for (const auto& child : node) {
          if (Truthy(*step.filter, child)) out.push_back(&child);
        }
        return;
    }
  }

  // The operand's value for a comparison; nullopt when a path matches nothing.
  std::optional<json> Operand(const Filter& f, const json& current) {
    if (f.kind == Filter::Kind::kLiteral) return f.literal;
    if (f.kind == Filter::Kind::kExists) {
      std::vector<const json*> matches = Select(*f.path, current);
      if (f.path->Definite()) {
        if (matches.empty()) return std::nullopt;
        return *matches[0];
      }
      json out = json::array();
      for (const json* m : matches) out.push_back(*m);
      return out;
    }
    return Truthy(f, current);
  }

  bool Truthy(const Filter& f, const json& current) {
    switch (f.kind) {
      case Filter::Kind::kOr: return Truthy(*f.lhs, current) || Truthy(*f.rhs, current);
      case Filter::Kind::kAnd: return Truthy(*f.lhs, current) && Truthy(*f.rhs, current);
      case Filter::Kind::kNot: return !Truthy(*f.lhs, current);
      case Filter::Kind::kLiteral: return f.literal.is_boolean() ? f.literal.get<bool>() : !f.literal.is_null();
      case Filter::Kind::kExists: {
        std::optional<json> value = Operand(f, current);
        return value && !(value->is_array() && value->empty() && !f.path->Definite());
      }
      case Filter::Kind::kCompare: {
        std::optional<json> l = Operand(*f.lhs, current);
        std::optional<json> r = Operand(*f.rhs, current);
        if (!l || !r) return false;
        if (f.op == "==") return *l == *r;
        if (f.op == "!=") return *l != *r;
        int cmp;
        if (l->is_number() && r->is_number()) {
          double a = l->get<double>(), b = r->get<double>();
          if (a != a || b != b) return false;
          cmp = a < b ? -1 : (a > b ? 1 : 0);
        } else if (l->is_string() && r->is_string()) {
          cmp = l->get_ref<const std::string&>().compare(r->get_ref<const std::string&>());
        } else {
          return false;
        }
        if (f.op == "<") return cmp < 0;
        if (f.op == "<=") return cmp <= 0;
        if (f.op == ">") return cmp > 0;
        return cmp >= 0;
      }
    }
    return false;
  }

  const json& root_;
  bool too_large_ = false;
};

}  // namespace

std::expected<json, std::string> JsonPath(const json& doc, std::string_view path_text) {
  auto path = PathParser(path_text).ParseWhole();
  if (!path) return std::unexpected("invalid JSONPath " + Quote(path_text) + ": " + path.error().message);
  try {
    Evaluator evaluator(doc);
    std::vector<const json*> matches = evaluator.Select(*path, doc);
    if (evaluator.too_large()) {
      return std::unexpected("JSONPath " + Quote(path_text) + " matches too many values");
    }
    if (path->Definite()) {
      if (matches.empty()) return std::unexpected(evaluator.Explain(*path) + " in JSONPath " + Quote(path_text));
      return *matches[0];
    }
    json out = json::array();
    for (const json* m : matches) out.push_back(*m);
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(std::string("JSONPath ") + Quote(path_text) + ": " + e.what());
  }
}

std::expected<json, std::string> ParseJson(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth) return std::unexpected("JSON nested too deeply");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    try {
      json ignored = json::parse(text);
      (void)ignored;
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> "parse error ..."
      size_t pos = what.find("] ");
      return std::unexpected("invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
    } catch (const std::exception& e) {
      return std::unexpected(std::string("invalid JSON: ") + e.what());
    }
    return std::unexpected("invalid JSON");
  }
  return doc;
}

}  // namespace kiln::expr
