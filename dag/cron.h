// CronWorkflow schedules: robfig/cron's standard specs as Argo accepts them ("0 2 * * MON-FRI",
// "@daily", "@every 90s", "CRON_TZ=Europe/Paris 0 9 * * *"), and their next fire times across
// daylight-saving transitions. Thread-safety: a CronSchedule is an immutable value once parsed;
// all functions are safe from any thread (the tz database loads once, thread-safely).
#ifndef KILN_DAG_CRON_H_
#define KILN_DAG_CRON_H_

#include <date/tz.h>

#include <bitset>
#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace kiln::dag {

// A parsed schedule. For the 5-field form a time matches when its minute, hour and month bits are
// set and its day matches: when both day fields are restricted, either one matching is enough;
// when either starts with '*' or '?' (robfig's "star bit", also kept by "*/1"), both must match.
struct CronSchedule {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // bits 1-31
  std::bitset<13> months;         // bits 1-12
  std::bitset<7> days_of_week;    // bit 0 = Sunday
  bool dom_star = true;           // day-of-month field was '*' or '?'
  bool dow_star = true;           // day-of-week field was '*' or '?'
  // Positive for "@every <duration>" (whole seconds, at least 1s); the fields above are then
  // unused and fire times do not depend on any time zone.
  std::chrono::seconds every{0};
  // The zone named by a "CRON_TZ=" or "TZ=" prefix, or "" and nullptr when there is none.
  std::string time_zone;
  const date::time_zone* zone = nullptr;  // not owned; lives in the process-wide tz database
  std::string text;                       // the spec as written
};

// Parses a robfig/cron standard spec: five fields (minute hour day-of-month month day-of-week)
// of '*', '?', numbers, names (JAN-DEC, SUN-SAT, any case), ranges "a-b", steps "*/n", "a-b/n"
// and "a/n" (a to the maximum), lists "a,b"; day-of-week 0-6 with 7 also meaning Sunday; or one
// of @yearly @annually @monthly @weekly @daily @midnight @hourly, or "@every <Go duration>".
// Either form may be prefixed "CRON_TZ=<zone> " or "TZ=<zone> ".
// Returns the schedule, or a message naming the spec and the bad field, e.g.
//   invalid schedule "61 * * * *": minute field: 61 is out of range 0-59
// A spec that can never fire ("0 0 30 2 *") is an error too.
std::expected<CronSchedule, std::string> ParseCronSchedule(std::string_view spec);

// Looks up an IANA time zone in the system tz database. "" is UTC, "Local" the machine's zone.
// Returns the zone (not owned, valid for the life of the process), or
//   unknown time zone "Mars/Base": use an IANA name such as "America/Los_Angeles"
std::expected<const date::time_zone*, std::string> LookupTimeZone(std::string_view name);

// Returns the first fire time strictly after `after`, as robfig/cron (and so Argo) computes it.
// Times are matched in the schedule's own zone if it has a CRON_TZ= prefix, else in `tz`, else
// (tz == nullptr) in UTC. Across daylight-saving transitions a schedule fires at every instant
// whose wall-clock time matches: a wall-clock time repeated when clocks go back fires twice, and
// one skipped when clocks go forward does not fire that day. "@every d" fires at
// `after` truncated to the second plus d. Returns time_point::max() if the schedule does not fire
// within nine years (which ParseCronSchedule's check rules out).
std::chrono::system_clock::time_point NextAfter(const CronSchedule& schedule,
                                                std::chrono::system_clock::time_point after,
                                                const date::time_zone* tz);

}  // namespace kiln::dag

#endif  // KILN_DAG_CRON_H_
