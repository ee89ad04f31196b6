#include "dag/quantity.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "base/strings.h"

namespace kiln::dag {
namespace {

struct Suffix {
  std::string_view name;
  double multiplier;
};

constexpr std::array<Suffix, 16> kSuffixes = {{
    {"", 1},
    {"n", 1e-9},
    {"u", 1e-6},
    {"m", 1e-3},
    {"k", 1e3},
    {"M", 1e6},
    {"G", 1e9},
    {"T", 1e12},
    {"P", 1e15},
    {"E", 1e18},
    {"Ki", 1024.0},
    {"Mi", 1024.0 * 1024},
    {"Gi", 1024.0 * 1024 * 1024},
    {"Ti", 1024.0 * 1024 * 1024 * 1024},
    {"Pi", 1024.0 * 1024 * 1024 * 1024 * 1024},
    {"Ei", 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024},
}};

std::string Invalid(std::string_view text, std::string_view hint = {}) {
  return "invalid quantity " + Quote(text) +
         ": use a number with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, "
         "E), e.g. \"500m\", \"1.5Gi\", \"2\"" +
         std::string(hint);
}

// For the usual mistake of writing bytes the way disks are sold ("1.5GB", "100mb", "2K"),
// proposes the decimal and binary spellings.
std::string SuffixHint(std::string_view number, std::string_view suffix) {
  std::string lower;
  for (char c : suffix) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.size() == 2 && lower[1] == 'b') lower.pop_back();
  if (lower.size() == 2 && lower[1] == 'i') lower.pop_back();
  if (lower.size() != 1) return {};
  // A lone "e" is an exponent missing its digits, not a misspelt exa.
  if (suffix == "e") return {};
  static constexpr std::string_view kLetters = "kmgtpe";
  if (kLetters.find(lower[0]) == std::string_view::npos) return {};
  std::string decimal(1, lower[0] == 'k' ? 'k' : static_cast<char>(std::toupper(lower[0])));
  std::string binary(1, static_cast<char>(std::toupper(lower[0])));
  binary += 'i';
  if (decimal == suffix) return {};
  return " (did you mean " + Quote(std::string(number) + decimal) + " or " +
         Quote(std::string(number) + binary) + "?)";
}

}  // namespace

bool HasTemplateTag(std::string_view text) { return text.find("{{") != std::string_view::npos; }

std::expected<Quantity, std::string> ParseQuantity(std::string_view text) {
  size_t pos = 0;
  const size_t end = text.size();
  if (pos < end && (text[pos] == '+' || text[pos] == '-')) ++pos;
  size_t digits = 0;
  while (pos < end && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos, ++digits;
  if (pos < end && text[pos] == '.') {
    ++pos;
    while (pos < end && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos, ++digits;
  }
  // Kubernetes reads "", "-" and "." as zero by accident of its scanner; they are always typos.
  if (digits == 0) return std::unexpected(Invalid(text));
  std::string_view number = text.substr(0, pos);
  std::string_view suffix = text.substr(pos);

  double multiplier = 0;
  bool known = false;
  for (const Suffix& s : kSuffixes) {
    if (s.name == suffix) {
      multiplier = s.multiplier;
      known = true;
      break;
    }
  }
  if (!known && suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    std::string_view exponent = suffix.substr(1);
    bool negative = exponent[0] == '-';
    if (exponent[0] == '+' || negative) exponent.remove_prefix(1);
    bool all_digits = !exponent.empty();
    for (char c : exponent) all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
    int e = 0;
    auto [ptr, ec] = std::from_chars(exponent.data(), exponent.data() + exponent.size(), e);
    if (negative) e = -e;
    if (all_digits && ec == std::errc()) {
      multiplier = std::pow(10.0, e);
      known = true;
    } else if (all_digits && ec == std::errc::result_out_of_range) {
      return std::unexpected("invalid quantity " + Quote(text) + ": the exponent is out of range");
    }
  }
  if (!known) return std::unexpected(Invalid(text, SuffixHint(number, suffix)));

  // strtod wants a NUL-terminated string; "5." and ".5" are fine for it.
  std::string digits_text(number);
  double value = std::strtod(digits_text.c_str(), nullptr) * multiplier;
  if (!std::isfinite(value)) {
    return std::unexpected("invalid quantity " + Quote(text) + ": the value is out of range");
  }
  return Quantity{value, std::string(text)};
}

}  // namespace kiln::dag
