#include "dag/cron.h"

#include <array>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <vector>

#include "base/strings.h"
#include "dag/duration.h"

namespace kiln::dag {
namespace {

using std::chrono::days;
using std::chrono::seconds;
using std::chrono::system_clock;

// A day that matches the schedule's day fields recurs at least once in eight years (29 February
// skips a century year such as 2100); nine years covers it with room to spare.
constexpr int kMaxDaysSearched = 366 * 9;

struct Field {
  std::string_view name;
  int min;
  int max;
  const std::array<std::string_view, 12>* names;  // names[i] is value i + names_base, or nullptr
  int names_base;
  std::string_view names_hint;
};

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 12> kWeekdayNames = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", "", "", "", "", ""};
constexpr std::array<std::string_view, 12> kMonthTitles = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<int, 13> kMaxDaysInMonth = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

const Field kMinute{"minute", 0, 59, nullptr, 0, {}};
const Field kHour{"hour", 0, 23, nullptr, 0, {}};
const Field kDayOfMonth{"day-of-month", 1, 31, nullptr, 0, {}};
const Field kMonth{"month", 1, 12, &kMonthNames, 1, " or a month name (JAN-DEC)"};
// 7 is Sunday as well as 0; the caller folds bit 7 onto bit 0.
const Field kDayOfWeek{"day-of-week", 0, 7, &kWeekdayNames, 0, " or a weekday name (SUN-SAT)"};

struct FieldBits {
  uint64_t bits = 0;
  bool star = false;
};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

std::expected<int, std::string> ParseValue(const Field& field, std::string_view text) {
  if (field.names != nullptr && text.size() == 3) {
    std::string lower;
    for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < field.names->size(); ++i) {
      if (!(*field.names)[i].empty() && (*field.names)[i] == lower) {
        return static_cast<int>(i) + field.names_base;
      }
    }
  }
  bool digits = !text.empty() && text.size() <= 9;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  if (!digits) {
    return std::unexpected(std::string(field.name) + " field: " + Quote(text) + " is not a number" +
                           std::string(field.names_hint));
  }
  int value = std::stoi(std::string(text));
  if (value < field.min || value > field.max) {
    return std::unexpected(std::string(field.name) + " field: " + std::to_string(value) +
                           " is out of range " + std::to_string(field.min) + "-" +
                           std::to_string(field.max));
  }
  return value;
}

// One field: a comma-separated list of '*', '?', values and ranges, each with an optional step.
std::expected<FieldBits, std::string> ParseField(const Field& field, std::string_view text) {
  FieldBits out;
  const std::string prefix = std::string(field.name) + " field: ";
  for (std::string_view part : Split(text, ',')) {
    if (part.empty()) return std::unexpected(prefix + "empty list element in " + Quote(text));
    std::vector<std::string_view> range_and_step = Split(part, '/');
    if (range_and_step.size() > 2) {
      return std::unexpected(prefix + Quote(part) + " has more than one '/'");
    }
    std::string_view range = range_and_step[0];
    int start = 0, end = 0, step = 1;
    bool star = false;
    if (range == "*" || range == "?") {
      start = field.min;
      end = field.max == 7 ? 6 : field.max;  // "*" in day-of-week is 0-6
      star = true;
    } else {
      std::vector<std::string_view> bounds = Split(range, '-');
      if (bounds.size() > 2) {
        return std::unexpected(prefix + Quote(part) + " has more than one '-'");
      }
      auto low = ParseValue(field, bounds[0]);
      if (!low) return std::unexpected(low.error());
      start = end = *low;
      if (bounds.size() == 2) {
        auto high = ParseValue(field, bounds[1]);
        if (!high) return std::unexpected(high.error());
        end = *high;
        if (start > end) {
          return std::unexpected(prefix + "range " + std::string(range) + " starts after it ends");
        }
      } else if (range_and_step.size() == 2) {
        end = field.max == 7 ? 6 : field.max;  // "a/n" means a to the maximum, every n
      }
    }
    if (range_and_step.size() == 2) {
      std::string_view step_text = range_and_step[1];
      bool digits = !step_text.empty() && step_text.size() <= 9;
      for (char c : step_text) digits = digits && c >= '0' && c <= '9';
      step = digits ? std::stoi(std::string(step_text)) : 0;
      if (step <= 0) {
        return std::unexpected(prefix + "step " + Quote(step_text) + " in " + Quote(part) +
                               " must be a positive number");
      }
      if (step > 1) star = false;  // as robfig: "*/2" restricts the day, "*/1" does not
    }
    for (int v = start; v <= end; v += step) out.bits |= uint64_t{1} << v;
    out.star = out.star || star;
  }
  return out;
}

std::string Invalid(std::string_view spec, std::string_view why) {
  return "invalid schedule " + Quote(spec) + ": " + std::string(why);
}

template <size_t N>
std::bitset<N> ToBits(uint64_t bits) {
  return std::bitset<N>(bits);
}

// Fills `out`'s fields from five fields, or returns why they are invalid.
std::optional<std::string> ParseFields(std::string_view fields_text, CronSchedule& out) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < fields_text.size()) {
    while (i < fields_text.size() && std::isspace(static_cast<unsigned char>(fields_text[i]))) ++i;
    size_t start = i;
    while (i < fields_text.size() && !std::isspace(static_cast<unsigned char>(fields_text[i]))) ++i;
    if (i > start) fields.push_back(fields_text.substr(start, i - start));
  }
  if (fields.size() != 5) {
    return "expected 5 fields (minute hour day-of-month month day-of-week) or a descriptor such "
           "as \"@daily\" or \"@every 1h\", found " +
           std::to_string(fields.size());
  }
  auto minute = ParseField(kMinute, fields[0]);
  if (!minute) return minute.error();
  auto hour = ParseField(kHour, fields[1]);
  if (!hour) return hour.error();
  auto dom = ParseField(kDayOfMonth, fields[2]);
  if (!dom) return dom.error();
  auto month = ParseField(kMonth, fields[3]);
  if (!month) return month.error();
  auto dow = ParseField(kDayOfWeek, fields[4]);
  if (!dow) return dow.error();
  uint64_t dow_bits = dow->bits;
  if (dow_bits & (uint64_t{1} << 7)) dow_bits = (dow_bits & 0x7f) | 1;
  out.minutes = ToBits<60>(minute->bits);
  out.hours = ToBits<24>(hour->bits);
  out.days_of_month = ToBits<32>(dom->bits);
  out.months = ToBits<13>(month->bits);
  out.days_of_week = ToBits<7>(dow_bits);
  out.dom_star = dom->star;
  out.dow_star = dow->star;

  // When the day of week does not widen the choice, some chosen month must have a chosen day.
  if (out.dow_star && !out.dom_star) {
    int first_day = 1;
    while (!out.days_of_month[first_day]) ++first_day;
    int months = 0, only_month = 0;
    for (int m = 1; m <= 12; ++m) {
      if (!out.months[m]) continue;
      if (kMaxDaysInMonth[m] >= first_day) return std::nullopt;
      ++months;
      only_month = m;
    }
    if (months == 1) {
      return "it never fires: " + std::string(kMonthTitles[only_month - 1]) + " has no day " +
             std::to_string(first_day);
    }
    return "it never fires: none of the months in the month field has a day " +
           std::to_string(first_day);
  }
  return std::nullopt;
}

constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kDescriptors = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

std::optional<std::string> ParseDescriptor(std::string_view descriptor, CronSchedule& out) {
  constexpr std::string_view kEvery = "@every";
  if (descriptor.starts_with(kEvery) &&
      (descriptor.size() == kEvery.size() ||
       std::isspace(static_cast<unsigned char>(descriptor[kEvery.size()])))) {
    std::string_view text = Trim(descriptor.substr(kEvery.size()));
    auto d = ParseGoDuration(text);
    if (!d || *d <= std::chrono::nanoseconds(0)) {
      return "@every needs a positive duration such as \"90s\" or \"1h30m\", got " + Quote(text);
    }
    // As robfig: whole seconds, and at least one.
    out.every = std::max(seconds(1), std::chrono::floor<seconds>(*d));
    return std::nullopt;
  }
  for (const auto& [name, fields] : kDescriptors) {
    if (descriptor == name) return ParseFields(fields, out);
  }
  std::vector<std::string_view> names;
  for (const auto& [name, fields] : kDescriptors) names.push_back(name);
  names.push_back(kEvery);
  return "unknown descriptor " + Quote(descriptor) + DidYouMean(descriptor, names) +
         ": use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or "
         "@every <duration>";
}

bool DayMatches(const CronSchedule& s, date::year_month_day ymd, date::weekday wd) {
  bool dom = s.days_of_month[static_cast<unsigned>(ymd.day())];
  bool dow = s.days_of_week[wd.c_encoding()];
  if (s.dom_star || s.dow_star) return dom && dow;
  return dom || dow;
}

// The instants at which wall-clock time `local` occurs in `zone` (UTC when null), earliest
// first: none in a gap when clocks go forward, two in an overlap when they go back.
int Instants(const date::time_zone* zone, date::local_seconds local,
             std::array<date::sys_seconds, 2>& out) {
  if (zone == nullptr) {
    out[0] = date::sys_seconds(local.time_since_epoch());
    return 1;
  }
  date::local_info info = zone->get_info(local);
  switch (info.result) {
    case date::local_info::unique:
      out[0] = date::sys_seconds(local.time_since_epoch() - info.first.offset);
      return 1;
    case date::local_info::ambiguous:
      out[0] = date::sys_seconds(local.time_since_epoch() - info.first.offset);
      out[1] = date::sys_seconds(local.time_since_epoch() - info.second.offset);
      return 2;
    default:
      return 0;
  }
}

// The earliest fire time after `after` among the wall-clock times of local day `day`, also
// considering `best` found so far.
std::optional<date::sys_seconds> BestOnDay(const CronSchedule& s, const date::time_zone* zone,
                                           date::local_days day, system_clock::time_point after,
                                           std::optional<date::sys_seconds> best) {
  date::year_month_day ymd{day};
  if (!s.months[static_cast<unsigned>(ymd.month())]) return best;
  if (!DayMatches(s, ymd, date::weekday{day})) return best;
  std::array<date::sys_seconds, 2> instants;
  for (int h = 0; h < 24; ++h) {
    if (!s.hours[h]) continue;
    for (int m = 0; m < 60; ++m) {
      if (!s.minutes[m]) continue;
      int n = Instants(zone, day + std::chrono::hours(h) + std::chrono::minutes(m), instants);
      // A time's earliest instant never decreases as the wall-clock time grows.
      if (n > 0 && best && instants[0] >= *best) return best;
      for (int i = 0; i < n; ++i) {
        if (instants[i] > after && (!best || instants[i] < *best)) best = instants[i];
      }
    }
  }
  return best;
}

}  // namespace

std::expected<const date::time_zone*, std::string> LookupTimeZone(std::string_view name) {
  try {
    if (name.empty()) return date::locate_zone("UTC");
    if (name == "Local") return date::current_zone();
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return std::unexpected("unknown time zone " + Quote(name) +
                           ": use an IANA name such as \"America/Los_Angeles\"");
  }
}

std::expected<CronSchedule, std::string> ParseCronSchedule(std::string_view spec) {
  CronSchedule out;
  out.text = std::string(spec);
  std::string_view rest = Trim(spec);
  if (rest.empty()) {
    return std::unexpected(Invalid(spec,
                                   "it is empty; use five fields such as \"0 2 * * *\" or "
                                   "a descriptor such as \"@daily\""));
  }
  for (std::string_view tz_prefix : {"CRON_TZ=", "TZ="}) {
    if (!rest.starts_with(tz_prefix)) continue;
    size_t space = rest.find_first_of(" \t");
    if (space == std::string_view::npos) {
      return std::unexpected(
          Invalid(spec, "a time zone prefix must be followed by a space and a schedule"));
    }
    out.time_zone = std::string(rest.substr(tz_prefix.size(), space - tz_prefix.size()));
    auto zone = LookupTimeZone(out.time_zone);
    if (!zone) return std::unexpected(Invalid(spec, zone.error()));
    out.zone = *zone;
    rest = Trim(rest.substr(space));
    break;
  }
  std::optional<std::string> error =
      rest.starts_with('@') ? ParseDescriptor(rest, out) : ParseFields(rest, out);
  if (error) return std::unexpected(Invalid(spec, *error));
  return out;
}

system_clock::time_point NextAfter(const CronSchedule& schedule, system_clock::time_point after,
                                   const date::time_zone* tz) {
  if (schedule.every > seconds(0)) {
    return std::chrono::floor<seconds>(after) + schedule.every;
  }
  const date::time_zone* zone = schedule.zone != nullptr ? schedule.zone : tz;
  date::sys_seconds after_seconds = std::chrono::floor<seconds>(after);
  date::local_seconds local_after = zone != nullptr
                                        ? zone->to_local(after_seconds)
                                        : date::local_seconds(after_seconds.time_since_epoch());
  // Start a day early and, once a day yields a time, look at the next day too: an overlap that
  // spans midnight can put the next day's first instant before this day's last.
  date::local_days day = std::chrono::floor<days>(local_after) - days(1);
  std::optional<date::sys_seconds> best;
  for (int i = 0; i < kMaxDaysSearched; ++i, day += days(1)) {
    if (best) return *BestOnDay(schedule, zone, day, after, best);
    best = BestOnDay(schedule, zone, day, after, best);
  }
  return best ? system_clock::time_point(*best) : system_clock::time_point::max();
}

}  // namespace kiln::dag
