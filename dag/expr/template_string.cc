#include "dag/expr/template_string.h"

#include "base/strings.h"

namespace kiln::expr {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Returns the offset just past the closing "}}" of an expression whose body starts at `pos`, or
// npos when there is none. Skips string literals and balanced map braces.
size_t FindExpressionEnd(std::string_view text, size_t pos) {
  int depth = 0;
  while (pos < text.size()) {
    char c = text[pos];
    if (c == '\'' || c == '"' || c == '`') {
      char quote = c;
      ++pos;
      while (pos < text.size() && text[pos] != quote) {
        if (text[pos] == '\\' && quote != '`') ++pos;
        ++pos;
      }
      if (pos >= text.size()) return std::string_view::npos;
      ++pos;
      continue;
    }
    if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (depth == 0 && pos + 1 < text.size() && text[pos + 1] == '}') return pos + 2;
      if (depth > 0) --depth;
    }
    ++pos;
  }
  return std::string_view::npos;
}

}  // namespace

std::expected<std::vector<TemplateTag>, SyntaxError> FindTags(std::string_view text) {
  std::vector<TemplateTag> tags;
  size_t pos = 0;
  while (true) {
    size_t start = text.find("{{", pos);
    if (start == std::string_view::npos) break;
    size_t inner = start + 2;
    size_t first = inner;
    while (first < text.size() && IsSpace(text[first])) ++first;
    TemplateTag tag;
    tag.offset = start;
    size_t end;
    if (first < text.size() && text[first] == '=') {
      tag.is_expression = true;
      end = FindExpressionEnd(text, first + 1);
      if (end != std::string_view::npos) {
        tag.body = std::string(Trim(text.substr(first + 1, end - 2 - (first + 1))));
      }
    } else {
      size_t close = text.find("}}", inner);
      end = close == std::string_view::npos ? close : close + 2;
      if (end != std::string_view::npos) tag.body = std::string(Trim(text.substr(inner, close - inner)));
    }
    if (end == std::string_view::npos) {
      return std::unexpected(SyntaxError{
          start, "unterminated \"{{\" at offset " + std::to_string(start)});
    }
    tag.length = end - start;
    pos = end;
    tags.push_back(std::move(tag));
  }
  return tags;
}

std::expected<std::string, SyntaxError> Substitute(std::string_view text,
                                                   const TagResolver& resolver) {
  auto tags = FindTags(text);
  if (!tags) return std::unexpected(tags.error());
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (const TemplateTag& tag : *tags) {
    out.append(text.substr(pos, tag.offset - pos));
    std::optional<std::string> value = resolver(tag);
    if (value) {
      out.append(*value);
    } else {
      out.append(text.substr(tag.offset, tag.length));
    }
    pos = tag.offset + tag.length;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace kiln::expr
