// Small string helpers shared by the modules. Thread-safe (pure functions).
#ifndef KILN_BASE_STRINGS_H_
#define KILN_BASE_STRINGS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// Levenshtein distance, capped: returns max_distance + 1 as soon as the distance exceeds it.
size_t EditDistance(std::string_view a, std::string_view b, size_t max_distance);

// The candidate closest to `word` if it is close enough to be a likely typo, else empty.
std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates);

// " (did you mean \"x\"?)" or "" when nothing is close.
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

// JSON-style quoting for messages: "text" with \" and control characters escaped.
std::string Quote(std::string_view text);

bool StartsWith(std::string_view s, std::string_view prefix);
std::string_view Trim(std::string_view s);

}  // namespace kiln

#endif  // KILN_BASE_STRINGS_H_
