#include "store/label_selector.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "store/internal/checks.h"

namespace kiln::store {

namespace {

using Op = LabelRequirement::Op;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

enum class Tok {
  kWord,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kBang,
  kOpen,
  kClose,
  kComma,
  kCompare,  // "<" or ">": Kubernetes' numeric operators, which kiln refuses
  kEnd,
};

struct Token {
  Tok type;
  std::string_view text;
};

bool IsSpecial(char c) {
  return IsSpace(c) || c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '<' ||
         c == '>';
}

// The tokens of one requirement, ending with kEnd.
std::vector<Token> Lex(std::string_view s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (IsSpace(c)) {
      ++i;
      continue;
    }
    auto two = [&](char next) { return i + 1 < s.size() && s[i + 1] == next; };
    Tok type = Tok::kWord;
    size_t n = 1;
    if (c == '=') {
      type = two('=') ? Tok::kDoubleEquals : Tok::kEquals;
      n = two('=') ? 2 : 1;
    } else if (c == '!') {
      type = two('=') ? Tok::kNotEquals : Tok::kBang;
      n = two('=') ? 2 : 1;
    } else if (c == '(') {
      type = Tok::kOpen;
    } else if (c == ')') {
      type = Tok::kClose;
    } else if (c == ',') {
      type = Tok::kComma;
    } else if (c == '<' || c == '>') {
      type = Tok::kCompare;
    } else {
      while (i + n < s.size() && !IsSpecial(s[i + n])) ++n;
    }
    tokens.push_back({type, s.substr(i, n)});
    i += n;
  }
  tokens.push_back({Tok::kEnd, {}});
  return tokens;
}

// One requirement's text (no comma outside parentheses), or why it is not one.
Result<LabelRequirement> ParseRequirement(std::string_view text) {
  auto fail = [](std::string why) { return MakeError(Code::kInvalidArgument, std::move(why)); };
  std::vector<Token> t = Lex(text);
  LabelRequirement r;
  size_t next = 0;  // the first token after the requirement
  if (t[0].type == Tok::kEnd) {
    return fail("empty; write key=value, key!=value, key, !key, key in (v1,v2) or key notin (v1)");
  }
  if (t[0].type == Tok::kBang) {
    if (t[1].type != Tok::kWord) return fail("expected a key after \"!\"");
    r.key = t[1].text;
    r.op = Op::kDoesNotExist;
    next = 2;
  } else if (t[0].type != Tok::kWord) {
    return fail("expected a key, found " + Quoted(t[0].text));
  } else {
    r.key = t[0].text;
    const Token& op = t[1];
    if (op.type == Tok::kEnd) {
      r.op = Op::kExists;
      next = 1;
    } else if (op.type == Tok::kEquals || op.type == Tok::kDoubleEquals ||
               op.type == Tok::kNotEquals) {
      r.op = op.type == Tok::kNotEquals ? Op::kNotEquals : Op::kEquals;
      // "k=" asks for the empty value, as in Kubernetes.
      if (t[2].type == Tok::kWord) {
        r.values = {std::string(t[2].text)};
        next = 3;
      } else if (t[2].type == Tok::kEnd) {
        r.values = {""};
        next = 2;
      } else {
        return fail("expected a value after " + Quoted(op.text) + ", found " + Quoted(t[2].text));
      }
    } else if (op.type == Tok::kWord && (op.text == "in" || op.text == "notin")) {
      r.op = op.text == "in" ? Op::kIn : Op::kNotIn;
      if (t[2].type != Tok::kOpen) return fail("expected \"(\" after " + Quoted(op.text));
      // Values separated by commas; an empty one (as in "(a,)") is the empty value.
      std::optional<std::string_view> value;
      bool any = false;
      size_t i = 3;
      for (;; ++i) {
        if (t[i].type == Tok::kWord) {
          if (value) return fail("expected \",\" or \")\" after " + Quoted(*value));
          value = t[i].text;
        } else if (t[i].type == Tok::kComma || t[i].type == Tok::kClose) {
          if (t[i].type == Tok::kClose && !value && !any) {
            return fail("no values in \"()\"; " + std::string(op.text) + " needs one or more");
          }
          r.values.emplace_back(value.value_or(""));
          value.reset();
          any = true;
          if (t[i].type == Tok::kClose) break;
        } else if (t[i].type == Tok::kEnd) {
          return fail("missing \")\" after the values");
        } else {
          return fail("unexpected " + Quoted(t[i].text) + " among the values");
        }
      }
      next = i + 1;
    } else if (op.type == Tok::kCompare) {
      return fail("the operator " + Quoted(op.text) +
                  " is not supported; use =, ==, !=, in or notin");
    } else {
      return fail("unexpected " + Quoted(op.text) + " after key " + Quoted(r.key) +
                  "; expected =, ==, !=, in or notin");
    }
  }
  if (t[next].type != Tok::kEnd) {
    return fail("unexpected " + Quoted(t[next].text) + "; separate requirements with \",\"");
  }
  std::sort(r.values.begin(), r.values.end());
  r.values.erase(std::unique(r.values.begin(), r.values.end()), r.values.end());
  return r;
}

}  // namespace

Result<std::vector<LabelRequirement>> ParseLabelSelector(std::string_view selector) {
  std::vector<LabelRequirement> requirements;
  if (!internal::IsStorableText(selector)) {
    return MakeError(Code::kInvalidArgument, "label selector " + Quoted(selector) +
                                                 " is not UTF-8 text, or holds a NUL byte");
  }
  if (Trim(selector).empty()) return requirements;
  // Requirements end at commas outside parentheses ("k in (a,b)" is one requirement). An
  // unclosed "(" leaves the rest of the selector to its requirement, which then reports it.
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= selector.size(); ++i) {
    if (i < selector.size()) {
      if (selector[i] == '(') ++depth;
      if (selector[i] == ')' && depth > 0) --depth;
      if (selector[i] != ',' || depth > 0) continue;
    }
    std::string_view text = Trim(selector.substr(start, i - start));
    auto requirement = ParseRequirement(text);
    if (!requirement) {
      return MakeError(Code::kInvalidArgument, "label selector " + Quoted(selector) +
                                                   ": requirement " + Quoted(text) + ": " +
                                                   requirement.error().message());
    }
    requirements.push_back(std::move(*requirement));
    start = i + 1;
  }
  return requirements;
}

bool MatchesLabels(const std::vector<LabelRequirement>& requirements,
                   const std::map<std::string, std::string>& labels) {
  return std::all_of(requirements.begin(), requirements.end(), [&](const LabelRequirement& r) {
    auto it = labels.find(r.key);
    // The positive form of each operator: the label is there (and, with values, has one of them).
    bool found =
        it != labels.end() &&
        (r.values.empty() || std::binary_search(r.values.begin(), r.values.end(), it->second));
    return found != r.negated();
  });
}

}  // namespace kiln::store
