#include "dag/cron.h"

#include <catch2/catch.hpp>

#include <cstdio>

namespace kiln::dag {
namespace {

using std::chrono::system_clock;

// A UTC instant written "2024-03-10T06:30:00Z" style (seconds optional).
// Parsed by hand: date::parse trips GCC 12's -Wmaybe-uninitialized inside date.h.
system_clock::time_point Utc(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  int n = std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s);
  REQUIRE(n >= 5);
  date::sys_days day = date::year{y} / date::month{static_cast<unsigned>(mo)} / date::day{static_cast<unsigned>(d)};
  return day + std::chrono::hours{h} + std::chrono::minutes{mi} + std::chrono::seconds{s};
}

std::string Format(system_clock::time_point t) {
  return date::format("%Y-%m-%dT%H:%M:%SZ", std::chrono::floor<std::chrono::seconds>(t));
}

CronSchedule Parsed(std::string_view spec) {
  auto s = ParseCronSchedule(spec);
  INFO(spec);
  REQUIRE(s.has_value());
  return *s;
}

std::string Error(std::string_view spec) {
  auto s = ParseCronSchedule(spec);
  REQUIRE_FALSE(s.has_value());
  return s.error();
}

// The next `n` fire times after `from`, in UTC.
std::vector<std::string> Next(std::string_view spec, const std::string& from, int n,
                              const date::time_zone* tz = nullptr) {
  CronSchedule s = Parsed(spec);
  std::vector<std::string> out;
  system_clock::time_point t = Utc(from);
  for (int i = 0; i < n; ++i) {
    t = NextAfter(s, t, tz);
    out.push_back(Format(t));
  }
  return out;
}

const date::time_zone* NewYork() { return *LookupTimeZone("America/New_York"); }

}  // namespace

TEST_CASE("ParseCronSchedule reads fields into bitsets", "[dag]") {
  CronSchedule s = Parsed("*/15 0-6/2,23 1,15 JAN-mar,Dec mon-FRI");
  CHECK(s.minutes.to_ullong() == (1ull << 0 | 1ull << 15 | 1ull << 30 | 1ull << 45));
  CHECK(s.hours.to_ulong() == (1ul << 0 | 1ul << 2 | 1ul << 4 | 1ul << 6 | 1ul << 23));
  CHECK(s.days_of_month.to_ulong() == (1ul << 1 | 1ul << 15));
  CHECK(s.months.to_ulong() == (1ul << 1 | 1ul << 2 | 1ul << 3 | 1ul << 12));
  CHECK(s.days_of_week.to_ulong() == 0b0111110);
  CHECK_FALSE(s.dom_star);
  CHECK_FALSE(s.dow_star);
  CHECK(Parsed("0 0 * * 7").days_of_week.to_ulong() == 1);  // 7 is Sunday
  CHECK(Parsed("0 0 * * 5-7").days_of_week.to_ulong() == 0b1100001);
  CHECK(Parsed("0 0 ? * *").dom_star);
  CHECK(Parsed("5/20 * * * *").minutes.to_ullong() == (1ull << 5 | 1ull << 25 | 1ull << 45));
  CHECK(Parsed("0 0 */1 * *").dom_star);        // robfig keeps the star for a step of 1
  CHECK_FALSE(Parsed("0 0 */2 * *").dom_star);  // and drops it otherwise
  CHECK(Parsed("  0   0 * * *  ").hours.to_ulong() == 1);
  CHECK(Parsed("@weekly").days_of_week.to_ulong() == 1);
  CHECK(Parsed("@every 90s").every == std::chrono::seconds(90));
  CHECK(Parsed("@every 1500ms").every == std::chrono::seconds(1));
  CHECK(Parsed("@every 10ms").every == std::chrono::seconds(1));
  CronSchedule tz = Parsed("CRON_TZ=America/New_York 0 2 * * *");
  CHECK(tz.time_zone == "America/New_York");
  CHECK(tz.zone == NewYork());
  CHECK(Parsed("TZ=UTC @daily").time_zone == "UTC");
}

TEST_CASE("ParseCronSchedule names the bad field", "[dag]") {
  CHECK(Error("61 * * * *") ==
        "invalid schedule \"61 * * * *\": minute field: 61 is out of range 0-59");
  CHECK(Error("* 24 * * *") ==
        "invalid schedule \"* 24 * * *\": hour field: 24 is out of range 0-23");
  CHECK(Error("0 0 0 * *") ==
        "invalid schedule \"0 0 0 * *\": day-of-month field: 0 is out of range 1-31");
  CHECK(Error("0 0 * 13 *") ==
        "invalid schedule \"0 0 * 13 *\": month field: 13 is out of range 1-12");
  CHECK(Error("0 0 * * 8") ==
        "invalid schedule \"0 0 * * 8\": day-of-week field: 8 is out of range 0-7");
  CHECK(Error("0 0 * JANUARY *") ==
        "invalid schedule \"0 0 * JANUARY *\": month field: \"JANUARY\" is not a number or a "
        "month name (JAN-DEC)");
  CHECK(Error("0 0 * * MONDAY") ==
        "invalid schedule \"0 0 * * MONDAY\": day-of-week field: \"MONDAY\" is not a number or a "
        "weekday name (SUN-SAT)");
  CHECK(Error("x * * * *") ==
        "invalid schedule \"x * * * *\": minute field: \"x\" is not a number");
  CHECK(Error("-1 * * * *") ==
        "invalid schedule \"-1 * * * *\": minute field: \"\" is not a number");
  CHECK(Error("30-10 * * * *") ==
        "invalid schedule \"30-10 * * * *\": minute field: range 30-10 starts after it ends");
  CHECK(Error("*/0 * * * *") ==
        "invalid schedule \"*/0 * * * *\": minute field: step \"0\" in \"*/0\" must be a positive "
        "number");
  CHECK(Error("*/x * * * *") ==
        "invalid schedule \"*/x * * * *\": minute field: step \"x\" in \"*/x\" must be a positive "
        "number");
  CHECK(Error("1/2/3 * * * *") ==
        "invalid schedule \"1/2/3 * * * *\": minute field: \"1/2/3\" has more than one '/'");
  CHECK(Error("1-2-3 * * * *") ==
        "invalid schedule \"1-2-3 * * * *\": minute field: \"1-2-3\" has more than one '-'");
  CHECK(Error("1,,2 * * * *") ==
        "invalid schedule \"1,,2 * * * *\": minute field: empty list element in \"1,,2\"");
  CHECK(Error("0 0 * * * *") ==
        "invalid schedule \"0 0 * * * *\": expected 5 fields (minute hour day-of-month month "
        "day-of-week) or a descriptor such as \"@daily\" or \"@every 1h\", found 6");
  CHECK(Error("  ") ==
        "invalid schedule \"  \": it is empty; use five fields such as \"0 2 * * *\" or a "
        "descriptor such as \"@daily\"");
  CHECK(Error("@Daily") ==
        "invalid schedule \"@Daily\": unknown descriptor \"@Daily\" (did you mean \"@daily\"?): "
        "use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every "
        "<duration>");
  CHECK(Error("@every 5 min") ==
        "invalid schedule \"@every 5 min\": @every needs a positive duration such as \"90s\" or "
        "\"1h30m\", got \"5 min\"");
  CHECK(Error("@every 30") ==
        "invalid schedule \"@every 30\": @every needs a positive duration such as \"90s\" or "
        "\"1h30m\", got \"30\"");
  CHECK(Error("@every 0s").ends_with("got \"0s\""));
  CHECK(Error("CRON_TZ=Mars/Base * * * * *") ==
        "invalid schedule \"CRON_TZ=Mars/Base * * * * *\": unknown time zone \"Mars/Base\": use "
        "an IANA name such as \"America/Los_Angeles\"");
  CHECK(Error("CRON_TZ=UTC") ==
        "invalid schedule \"CRON_TZ=UTC\": a time zone prefix must be followed by a space and a "
        "schedule");
  CHECK(Error("0 0 30 2 *") ==
        "invalid schedule \"0 0 30 2 *\": it never fires: February has no day 30");
  CHECK(Error("0 0 31 4,6 *") ==
        "invalid schedule \"0 0 31 4,6 *\": it never fires: none of the months in the month field "
        "has a day 31");
  CHECK(ParseCronSchedule("0 0 29 2 *").has_value());
  CHECK(ParseCronSchedule("0 0 30 2 MON").has_value());  // fires on Mondays in February
}

TEST_CASE("LookupTimeZone uses the system tz database", "[dag]") {
  auto ny = LookupTimeZone("America/New_York");
  REQUIRE(ny.has_value());
  CHECK((*ny)->name() == "America/New_York");
  REQUIRE(LookupTimeZone("").has_value());
  CHECK((*LookupTimeZone(""))->name() == "UTC");
  CHECK(LookupTimeZone("Mars/Base").error() ==
        "unknown time zone \"Mars/Base\": use an IANA name such as \"America/Los_Angeles\"");
}

TEST_CASE("NextAfter follows standard cron semantics", "[dag]") {
  CHECK(Next("*/15 * * * *", "2024-01-01T10:07:00Z", 3) ==
        std::vector<std::string>{"2024-01-01T10:15:00Z", "2024-01-01T10:30:00Z",
                                 "2024-01-01T10:45:00Z"});
  // Strictly after: a time that is itself a fire time moves on.
  CHECK(Next("*/15 * * * *", "2024-01-01T10:15:00Z", 1) ==
        std::vector<std::string>{"2024-01-01T10:30:00Z"});
  // 2024-01-05 is a Friday.
  CHECK(Next("0 2 * * MON-FRI", "2024-01-05T01:00:00Z", 3) ==
        std::vector<std::string>{"2024-01-05T02:00:00Z", "2024-01-08T02:00:00Z",
                                 "2024-01-09T02:00:00Z"});
  // Both day fields restricted: either matches (the 13th, or any Friday).
  CHECK(Next("0 0 13 * FRI", "2024-09-01T00:00:00Z", 4) ==
        std::vector<std::string>{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z",
                                 "2024-09-20T00:00:00Z", "2024-09-27T00:00:00Z"});
  // A starred day-of-month narrows to the day of week.
  CHECK(Next("0 0 */1 * FRI", "2024-09-01T00:00:00Z", 1) ==
        std::vector<std::string>{"2024-09-06T00:00:00Z"});
  CHECK(Next("@yearly", "2024-06-01T00:00:00Z", 1) ==
        std::vector<std::string>{"2025-01-01T00:00:00Z"});
  CHECK(Next("0 0 29 2 *", "2024-03-01T00:00:00Z", 1) ==
        std::vector<std::string>{"2028-02-29T00:00:00Z"});
  CHECK(Next("0 0 29 2 *", "2096-03-01T00:00:00Z", 1) ==
        std::vector<std::string>{"2104-02-29T00:00:00Z"});
  CHECK(Next("59 23 31 12 *", "2024-12-31T23:59:00Z", 1) ==
        std::vector<std::string>{"2025-12-31T23:59:00Z"});
}

TEST_CASE("NextAfter with @every adds to the time truncated to the second", "[dag]") {
  CronSchedule s = Parsed("@every 90s");
  system_clock::time_point t = Utc("2024-01-01T10:00:00Z") + std::chrono::milliseconds(500);
  CHECK(Format(NextAfter(s, t, NewYork())) == "2024-01-01T10:01:30Z");
  CHECK(Next("@every 1h30m", "2024-01-01T10:00:00Z", 2) ==
        std::vector<std::string>{"2024-01-01T11:30:00Z", "2024-01-01T13:00:00Z"});
}

TEST_CASE("NextAfter matches wall-clock time in the zone", "[dag]") {
  // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
  CHECK(Next("0 9 * * *", "2024-01-01T00:00:00Z", 1, NewYork()) ==
        std::vector<std::string>{"2024-01-01T14:00:00Z"});
  CHECK(Next("0 9 * * *", "2024-07-01T00:00:00Z", 1, NewYork()) ==
        std::vector<std::string>{"2024-07-01T13:00:00Z"});
  // A CRON_TZ= prefix wins over the zone passed in.
  CHECK(Next("CRON_TZ=America/New_York 0 9 * * *", "2024-01-01T00:00:00Z", 1) ==
        std::vector<std::string>{"2024-01-01T14:00:00Z"});
  CHECK(Next("TZ=Asia/Tokyo 0 9 * * *", "2024-01-01T00:00:00Z", 1, NewYork()) ==
        std::vector<std::string>{"2024-01-02T00:00:00Z"});
  // A local day that started before `after` in UTC: 2024-01-01 23:30 in New York.
  CHECK(Next("30 23 * * *", "2024-01-02T00:00:00Z", 1, NewYork()) ==
        std::vector<std::string>{"2024-01-02T04:30:00Z"});
}

TEST_CASE("NextAfter across daylight-saving transitions in New York", "[dag]") {
  // Spring forward, 2024-03-10: 02:00 EST becomes 03:00 EDT.
  CHECK(Next("0 * * * *", "2024-03-10T05:30:00Z", 3, NewYork()) ==
        std::vector<std::string>{"2024-03-10T06:00:00Z",    // 01:00 EST
                                 "2024-03-10T07:00:00Z",    // 03:00 EDT
                                 "2024-03-10T08:00:00Z"});  // 04:00 EDT
  // 02:30 does not exist that day, so it does not fire (as robfig/cron and Argo).
  CHECK(Next("30 2 * * *", "2024-03-09T12:00:00Z", 2, NewYork()) ==
        std::vector<std::string>{"2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"});
  CHECK(Next("*/15 * * * *", "2024-03-10T06:50:00Z", 2, NewYork()) ==
        std::vector<std::string>{"2024-03-10T07:00:00Z", "2024-03-10T07:15:00Z"});
  // Fall back, 2024-11-03: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
  CHECK(Next("30 1 * * *", "2024-11-03T04:00:00Z", 3, NewYork()) ==
        std::vector<std::string>{"2024-11-03T05:30:00Z",    // 01:30 EDT
                                 "2024-11-03T06:30:00Z",    // 01:30 EST
                                 "2024-11-04T06:30:00Z"});  // 01:30 EST next day
  CHECK(Next("0 2 * * *", "2024-11-03T04:00:00Z", 1, NewYork()) ==
        std::vector<std::string>{"2024-11-03T07:00:00Z"});
  // Every quarter hour keeps firing through the repeated hour.
  CHECK(Next("*/30 * * * *", "2024-11-03T05:00:00Z", 4, NewYork()) ==
        std::vector<std::string>{"2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z",
                                 "2024-11-03T06:30:00Z", "2024-11-03T07:00:00Z"});
  // Daily at midnight keeps local midnight on both sides.
  CHECK(Next("@daily", "2024-03-09T12:00:00Z", 2, NewYork()) ==
        std::vector<std::string>{"2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z"});
}

}  // namespace kiln::dag
