// GCC 12 reports a false -Wmaybe-uninitialized inside <regex> when sanitizers are on.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "dag/expr/regex_search.h"

#include <regex>

#include "base/strings.h"

namespace kiln::expr {

std::expected<bool, std::string> RegexSearch(std::string_view text, std::string_view pattern) {
  try {
    std::regex re(pattern.begin(), pattern.end(), std::regex::ECMAScript);
    return std::regex_search(text.begin(), text.end(), re);
  } catch (const std::regex_error& e) {
    return std::unexpected("invalid regular expression " + Quote(pattern) + ": " + e.what());
  }
}

}  // namespace kiln::expr
