#include "dag/duration.h"

#include <cstdint>
#include <limits>
#include <optional>

#include "base/strings.h"

namespace kiln::dag {
namespace {

constexpr uint64_t kMaxMagnitude = uint64_t{1} << 63;  // |INT64_MIN|

std::string Invalid(std::string_view text) {
  return "invalid duration " + Quote(text) +
         ": use a number with a unit (ns, us, ms, s, m, h), e.g. \"30s\", \"1m30s\", or a plain "
         "number of seconds";
}

std::string OutOfRange(std::string_view text) {
  return "invalid duration " + Quote(text) + ": it is out of range (at most about 292 years)";
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

uint64_t UnitNanos(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") return 1'000;
  if (unit == "ms") return 1'000'000;
  if (unit == "s") return 1'000'000'000;
  if (unit == "m") return 60'000'000'000;
  if (unit == "h") return 3'600'000'000'000;
  return 0;
}

// A signed decimal integer that fits int64, or nullopt.
std::optional<int64_t> ParseInteger(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    if (v > (kMaxMagnitude - (c - '0')) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (negative) return static_cast<int64_t>(-v);  // -2^63 wraps to itself, as intended
  if (v > kMaxMagnitude - 1) return std::nullopt;
  return static_cast<int64_t>(v);
}

// Go's time.ParseDuration, including its overflow checks and its truncation of fractions.
std::expected<std::chrono::nanoseconds, std::string> ParseGo(std::string_view orig) {
  std::string_view s = orig;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return std::unexpected(Invalid(orig));
  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || IsDigit(s[0]))) return std::unexpected(Invalid(orig));
    uint64_t whole = 0;
    size_t i = 0;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
      if (whole > (kMaxMagnitude - 1) / 10) return std::unexpected(OutOfRange(orig));
      whole = whole * 10 + (s[i] - '0');
      if (whole > kMaxMagnitude) return std::unexpected(OutOfRange(orig));
    }
    bool pre = i > 0;
    s.remove_prefix(i);
    uint64_t fraction = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflow = false;
      for (i = 0; i < s.size() && IsDigit(s[i]); ++i) {
        if (overflow) continue;
        if (fraction > (kMaxMagnitude - 1) / 10) {
          overflow = true;
          continue;
        }
        fraction = fraction * 10 + (s[i] - '0');
        scale *= 10;
      }
      post = i > 0;
      s.remove_prefix(i);
    }
    if (!pre && !post) return std::unexpected(Invalid(orig));
    for (i = 0; i < s.size() && s[i] != '.' && !IsDigit(s[i]); ++i) {
    }
    if (i == 0) return std::unexpected(Invalid(orig));  // a number without a unit
    uint64_t unit = UnitNanos(s.substr(0, i));
    if (unit == 0) return std::unexpected(Invalid(orig));
    s.remove_prefix(i);
    if (whole > kMaxMagnitude / unit) return std::unexpected(OutOfRange(orig));
    whole *= unit;
    if (fraction > 0) {
      whole += static_cast<uint64_t>(static_cast<double>(fraction) *
                                     (static_cast<double>(unit) / scale));
      if (whole > kMaxMagnitude) return std::unexpected(OutOfRange(orig));
    }
    total += whole;
    if (total > kMaxMagnitude) return std::unexpected(OutOfRange(orig));
  }
  if (negative) return std::chrono::nanoseconds(static_cast<int64_t>(-total));
  if (total > kMaxMagnitude - 1) return std::unexpected(OutOfRange(orig));
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

// Appends v / 10^prec's fraction (".25"), without trailing zeros; returns v / 10^prec.
uint64_t FormatFraction(std::string& out, uint64_t v, int prec) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    int digit = static_cast<int>(v % 10);
    print = print || digit != 0;
    if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
    v /= 10;
  }
  if (print) out += "." + digits;
  return v;
}

}  // namespace

std::expected<std::chrono::nanoseconds, std::string> ParseGoDuration(std::string_view text) {
  return ParseGo(text);
}

std::expected<std::chrono::nanoseconds, std::string> ParseDuration(std::string_view text) {
  bool integer = !text.empty();
  for (size_t i = 0; i < text.size(); ++i) {
    integer = integer && (IsDigit(text[i]) || (i == 0 && (text[i] == '+' || text[i] == '-')));
  }
  if (integer && text != "+" && text != "-") {
    std::optional<int64_t> seconds = ParseInteger(text);
    constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000;
    if (!seconds || *seconds > kMaxSeconds || *seconds < -kMaxSeconds) {
      return std::unexpected(OutOfRange(text));
    }
    return std::chrono::seconds(*seconds);
  }
  return ParseGo(text);
}

std::string FormatDuration(std::chrono::nanoseconds d) {
  int64_t count = d.count();
  bool negative = count < 0;
  uint64_t u = negative ? -static_cast<uint64_t>(count) : static_cast<uint64_t>(count);
  std::string out;
  if (u < 1'000'000'000) {
    std::string_view unit;
    int prec = 0;
    if (u == 0) return "0s";
    if (u < 1'000) {
      unit = "ns";
    } else if (u < 1'000'000) {
      prec = 3;
      unit = "\u00b5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    std::string fraction;
    u = FormatFraction(fraction, u, prec);
    out = std::to_string(u) + fraction + std::string(unit);
  } else {
    std::string fraction;
    u = FormatFraction(fraction, u, 9);
    out = std::to_string(u % 60) + fraction + "s";
    u /= 60;
    if (u > 0) {
      out = std::to_string(u % 60) + "m" + out;
      u /= 60;
      if (u > 0) out = std::to_string(u) + "h" + out;
    }
  }
  return negative ? "-" + out : out;
}

}  // namespace kiln::dag
