// Durations as Argo users write them: Go time.ParseDuration strings ("10s", "1m30s", "1.5h",
// "300ms") or a bare integer number of seconds ("30"), for retryStrategy.backoff.duration and
// maxDuration and a template's timeout. Thread-safety: pure functions, safe from any thread.
#ifndef KILN_DAG_DURATION_H_
#define KILN_DAG_DURATION_H_

#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace kiln::dag {

// Parses `text` the way Argo does (parseStringToDuration): a bare integer, optionally signed, is a
// number of seconds ("30", or a YAML int passed as its text); anything else must be a Go duration.
// Returns the duration, or a message such as
//   invalid duration "10 sec": use a number with a unit (ns, us, ms, s, m, h), e.g. "30s", ...
// Values beyond the range of int64 nanoseconds (about 292 years) are an error.
// REQUIRES: `text` holds no "{{...}}" placeholder; callers skip those.
std::expected<std::chrono::nanoseconds, std::string> ParseDuration(std::string_view text);

// Parses a Go time.ParseDuration string only: an optional sign, then one or more decimal numbers
// each with a unit (ns, us, µs, ms, s, m, h), or "0". A bare number other than 0 is an error
// (as in robfig/cron's "@every"). Returns the duration or a message like ParseDuration's.
std::expected<std::chrono::nanoseconds, std::string> ParseGoDuration(std::string_view text);

// Formats `d` as Go's Duration.String does: "1m30s", "1h0m0s", "500ms", "1.5µs", "0s".
std::string FormatDuration(std::chrono::nanoseconds d);

}  // namespace kiln::dag

#endif  // KILN_DAG_DURATION_H_
