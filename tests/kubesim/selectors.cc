#include "tests/kubesim/selectors.h"

#include <algorithm>

#include "tests/kubesim/resources.h"

namespace kiln::kubesim {
namespace {

enum class Tok { kIdent, kEq, kDoubleEq, kNotEq, kBang, kIn, kNotIn, kOpen, kClose, kComma, kGt, kLt, kEnd };

struct Lexer {
  std::string_view s;
  size_t pos = 0;
  std::string text;

  Tok Next() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
    text.clear();
    if (pos >= s.size()) return Tok::kEnd;
    char c = s[pos];
    auto two = [&](char next) { return pos + 1 < s.size() && s[pos + 1] == next; };
    switch (c) {
      case '=':
        if (two('=')) { pos += 2; text = "=="; return Tok::kDoubleEq; }
        ++pos; text = "="; return Tok::kEq;
      case '!':
        if (two('=')) { pos += 2; text = "!="; return Tok::kNotEq; }
        ++pos; text = "!"; return Tok::kBang;
      case '(': ++pos; text = "("; return Tok::kOpen;
      case ')': ++pos; text = ")"; return Tok::kClose;
      case ',': ++pos; text = ","; return Tok::kComma;
      case '>': ++pos; text = ">"; return Tok::kGt;
      case '<': ++pos; text = "<"; return Tok::kLt;
      default: break;
    }
    size_t start = pos;
    while (pos < s.size() && std::string_view(" \t,()=!<>").find(s[pos]) == std::string_view::npos) {
      ++pos;
    }
    text = std::string(s.substr(start, pos - start));
    if (text == "in") return Tok::kIn;
    if (text == "notin") return Tok::kNotIn;
    return Tok::kIdent;
  }
  Tok Peek() {
    size_t saved = pos;
    std::string saved_text = text;
    Tok t = Next();
    pos = saved;
    text = saved_text;
    return t;
  }
};

ApiError ParseError(const std::string& detail) {
  return BadRequest("unable to parse requirement: " + detail);
}

std::string_view LabelOf(const json& labels, const std::string& key, bool& present) {
  present = false;
  if (!labels.is_object()) return {};
  auto it = labels.find(key);
  if (it == labels.end() || !it->is_string()) return {};
  present = true;
  return it->get_ref<const std::string&>();
}

}  // namespace

ApiResult<LabelSelector> LabelSelector::Parse(std::string_view text) {
  LabelSelector selector;
  Lexer lex;
  lex.s = text;
  if (lex.Peek() == Tok::kEnd) return selector;
  while (true) {
    Requirement req;
    Tok t = lex.Next();
    if (t == Tok::kBang) {
      if (lex.Next() != Tok::kIdent) return Fail(ParseError("found '" + lex.text + "', expected: identifier after '!'"));
      req.key = lex.text;
      req.op = Op::kDoesNotExist;
    } else if (t == Tok::kIdent) {
      req.key = lex.text;
      Tok op = lex.Peek();
      if (op == Tok::kEnd || op == Tok::kComma) {
        req.op = Op::kExists;
      } else {
        lex.Next();
        switch (op) {
          case Tok::kEq:
          case Tok::kDoubleEq:
          case Tok::kNotEq:
          case Tok::kGt:
          case Tok::kLt: {
            req.op = op == Tok::kNotEq ? Op::kNotEquals
                     : op == Tok::kGt  ? Op::kGt
                     : op == Tok::kLt  ? Op::kLt
                                       : Op::kEquals;
            Tok v = lex.Peek();
            if (v == Tok::kIdent || v == Tok::kIn || v == Tok::kNotIn) {
              lex.Next();
              req.values.push_back(lex.text);
            } else if (v == Tok::kEnd || v == Tok::kComma) {
              req.values.push_back("");
            } else {
              lex.Next();
              return Fail(ParseError("found '" + lex.text + "', expected: identifier"));
            }
            break;
          }
          case Tok::kIn:
          case Tok::kNotIn: {
            req.op = op == Tok::kIn ? Op::kIn : Op::kNotIn;
            if (lex.Next() != Tok::kOpen) return Fail(ParseError("found '" + lex.text + "', expected: '('"));
            while (true) {
              Tok v = lex.Next();
              if (v == Tok::kClose && req.values.empty()) break;
              if (v == Tok::kIdent || v == Tok::kIn || v == Tok::kNotIn) {
                req.values.push_back(lex.text);
                v = lex.Next();
              } else if (v == Tok::kComma || v == Tok::kClose) {
                req.values.push_back("");
              }
              if (v == Tok::kClose) break;
              if (v != Tok::kComma) return Fail(ParseError("found '" + lex.text + "', expected: ',', ')' or identifier"));
            }
            break;
          }
          default:
            return Fail(ParseError("found '" + lex.text + "', expected: in, notin, =, ==, !=, gt, lt"));
        }
      }
    } else {
      return Fail(ParseError("found '" + lex.text + "', expected: !, identifier, or 'end of string'"));
    }
    selector.requirements_.push_back(std::move(req));
    Tok sep = lex.Next();
    if (sep == Tok::kEnd) break;
    if (sep != Tok::kComma) return Fail(ParseError("found '" + lex.text + "', expected: ',' or 'end of string'"));
  }
  return selector;
}

ApiResult<LabelSelector> LabelSelector::FromJson(const json& selector) {
  LabelSelector out;
  if (!selector.is_object()) return out;
  if (auto it = selector.find("matchLabels"); it != selector.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      out.requirements_.push_back({k, Op::kEquals, {v.is_string() ? v.get<std::string>() : v.dump()}});
    }
  }
  if (auto it = selector.find("matchExpressions"); it != selector.end() && it->is_array()) {
    for (const json& e : *it) {
      Requirement req;
      req.key = e.value("key", "");
      std::string op = e.value("operator", "");
      if (op == "In") req.op = Op::kIn;
      else if (op == "NotIn") req.op = Op::kNotIn;
      else if (op == "Exists") req.op = Op::kExists;
      else if (op == "DoesNotExist") req.op = Op::kDoesNotExist;
      else return Fail(BadRequest("\"" + op + "\" is not a valid label selector operator"));
      if (auto v = e.find("values"); v != e.end() && v->is_array()) {
        for (const json& s : *v) req.values.push_back(s.is_string() ? s.get<std::string>() : s.dump());
      }
      out.requirements_.push_back(std::move(req));
    }
  }
  return out;
}

bool LabelSelector::Matches(const json& labels) const {
  for (const Requirement& r : requirements_) {
    bool present = false;
    std::string_view value = LabelOf(labels, r.key, present);
    bool in_values = present && std::find(r.values.begin(), r.values.end(), value) != r.values.end();
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!in_values) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (in_values) return false;
        break;
      case Op::kExists:
        if (!present) return false;
        break;
      case Op::kDoesNotExist:
        if (present) return false;
        break;
      case Op::kGt:
      case Op::kLt: {
        if (!present || r.values.empty()) return false;
        try {
          long long have = std::stoll(std::string(value));
          long long want = std::stoll(r.values[0]);
          if (r.op == Op::kGt ? !(have > want) : !(have < want)) return false;
        } catch (const std::exception&) {
          return false;
        }
        break;
      }
    }
  }
  return true;
}

std::string FieldValue(const json& object, const std::string& field) {
  std::string path = field == "status.successful" ? "status.succeeded" : field;
  const json* at = &object;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string::npos) dot = path.size();
    std::string key = path.substr(start, dot - start);
    if (!at->is_object()) return "";
    auto it = at->find(key);
    if (it == at->end()) return "";
    at = &*it;
    start = dot + 1;
  }
  if (at->is_string()) return at->get<std::string>();
  if (at->is_boolean()) return at->get<bool>() ? "true" : "false";
  if (at->is_number()) return at->dump();
  if (at->is_object() && field == "source") return at->value("component", "");
  return "";
}

ApiResult<FieldSelector> FieldSelector::Parse(std::string_view text, const ResourceInfo& resource) {
  FieldSelector out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = text.substr(start, comma - start);
    start = comma + 1;
    if (part.empty()) continue;
    Term term;
    size_t op = part.find("!=");
    size_t len = 2;
    term.equal = false;
    if (op == std::string_view::npos) {
      term.equal = true;
      op = part.find("==");
      if (op == std::string_view::npos) {
        op = part.find('=');
        len = 1;
      }
    }
    if (op == std::string_view::npos) {
      return Fail(BadRequest("invalid selector: '" + std::string(text) +
                             "'; can't understand '" + std::string(part) + "'"));
    }
    term.field = std::string(part.substr(0, op));
    term.value = std::string(part.substr(op + len));
    bool supported = term.field == "metadata.name" || term.field == "metadata.namespace";
    for (const std::string& label : resource.field_labels) supported |= label == term.field;
    if (!supported) {
      return Fail(BadRequest("field label not supported: " + term.field));
    }
    out.terms_.push_back(std::move(term));
  }
  return out;
}

bool FieldSelector::Matches(const json& object) const {
  for (const Term& t : terms_) {
    bool equal = FieldValue(object, t.field) == t.value;
    if (equal != t.equal) return false;
  }
  return true;
}

}  // namespace kiln::kubesim
