#include "dag/expr/go_time.h"

#include <chrono>
#include <cstdio>

#include "base/strings.h"

namespace kiln::expr {
namespace {

constexpr const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                   "July",    "August",   "September", "October", "November", "December"};
constexpr const char* kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

std::string Pad(int64_t value, int width, char fill = '0') {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out = value < 0 ? "-" : "";
  if (static_cast<int>(digits.size()) < width) out.append(width - digits.size(), fill);
  return out + digits;
}

bool StartsAt(std::string_view s, size_t pos, std::string_view prefix) {
  return s.substr(pos, prefix.size()) == prefix;
}

}  // namespace

std::string FormatGoTime(std::string_view layout, GoTime time) {
  using namespace std::chrono;
  sys_seconds tp{seconds{time.seconds}};
  sys_days day = floor<days>(tp);
  year_month_day ymd{day};
  hh_mm_ss hms{tp - day};
  int year = static_cast<int>(ymd.year());
  int month = static_cast<int>(static_cast<unsigned>(ymd.month()));
  int mday = static_cast<int>(static_cast<unsigned>(ymd.day()));
  int hour = static_cast<int>(hms.hours().count());
  int minute = static_cast<int>(hms.minutes().count());
  int second = static_cast<int>(hms.seconds().count());
  int weekday = static_cast<int>(std::chrono::weekday{day}.c_encoding());
  int yday = static_cast<int>((day - sys_days{ymd.year() / January / 1}).count()) + 1;
  int hour12 = hour % 12 == 0 ? 12 : hour % 12;

  std::string out;
  size_t i = 0;
  while (i < layout.size()) {
    auto take = [&](std::string_view token, const std::string& value) {
      if (!StartsAt(layout, i, token)) return false;
      out += value;
      i += token.size();
      return true;
    };
    char c = layout[i];
    switch (c) {
      case 'J':
        if (take("January", kMonths[month - 1]) || take("Jan", std::string(kMonths[month - 1], 3))) continue;
        break;
      case 'M':
        if (take("Monday", kDays[weekday]) || take("Mon", std::string(kDays[weekday], 3)) ||
            take("MST", "UTC")) {
          continue;
        }
        break;
      case '0':
        if (take("002", Pad(yday, 3)) || take("01", Pad(month, 2)) || take("02", Pad(mday, 2)) ||
            take("03", Pad(hour12, 2)) || take("04", Pad(minute, 2)) || take("05", Pad(second, 2)) ||
            take("06", Pad(year % 100, 2))) {
          continue;
        }
        break;
      case '1':
        if (take("15", Pad(hour, 2)) || take("1", std::to_string(month))) continue;
        break;
      case '2':
        if (take("2006", Pad(year, 4)) || take("2", std::to_string(mday))) continue;
        break;
      case '_':
        if (take("_2006", "_" + Pad(year, 4)) || take("__2", Pad(yday, 3, ' ')) || take("_2", Pad(mday, 2, ' '))) continue;
        break;
      case '3':
        if (take("3", std::to_string(hour12))) continue;
        break;
      case '4':
        if (take("4", std::to_string(minute))) continue;
        break;
      case '5':
        if (take("5", std::to_string(second))) continue;
        break;
      case 'P':
        if (take("PM", hour >= 12 ? "PM" : "AM")) continue;
        break;
      case 'p':
        if (take("pm", hour >= 12 ? "pm" : "am")) continue;
        break;
      case 'Z':
        if (take("Z07:00:00", "Z") || take("Z070000", "Z") || take("Z07:00", "Z") || take("Z0700", "Z") ||
            take("Z07", "Z")) {
          continue;
        }
        break;
      case '-':
        if (take("-07:00:00", "+00:00:00") || take("-070000", "+000000") || take("-07:00", "+00:00") ||
            take("-0700", "+0000") || take("-07", "+00")) {
          continue;
        }
        break;
      case '.':
      case ',': {
        size_t j = i + 1;
        if (j < layout.size() && (layout[j] == '0' || layout[j] == '9')) {
          char digit = layout[j];
          while (j < layout.size() && layout[j] == digit) ++j;
          if (j == layout.size() || layout[j] < '0' || layout[j] > '9') {
            size_t width = std::min<size_t>(j - i - 1, 9);
            std::string frac = Pad(time.nanos, 9).substr(0, width);
            if (digit == '9') {
              while (!frac.empty() && frac.back() == '0') frac.pop_back();
              if (!frac.empty()) out += c + frac;
            } else {
              out += c + frac;
            }
            i = j;
            continue;
          }
        }
        break;
      }
      default:
        break;
    }
    out += c;
    ++i;
  }
  return out;
}

std::expected<GoTime, std::string> ParseRfc3339(std::string_view text) {
  auto fail = [&] { return std::unexpected("cannot parse " + Quote(text) + " as an RFC 3339 time"); };
  int y, mo, d, h, mi, s;
  int consumed = 0;
  std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6 ||
      consumed != 19) {
    return fail();
  }
  size_t pos = 19;
  int32_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 9) {
        nanos = nanos * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return fail();
    for (; digits < 9; ++digits) nanos *= 10;
  }
  int64_t offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') && text[pos + 3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(copy.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return fail();
    offset = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return fail();
  }
  if (pos != text.size()) return fail();
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return fail();
  int64_t secs = sys_days{ymd}.time_since_epoch().count() * 86400LL + h * 3600 + mi * 60 + s - offset;
  return GoTime{secs, nanos};
}

}  // namespace kiln::expr
