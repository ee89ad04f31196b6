// Go's time layouts ("2006-01-02T15:04:05Z07:00"), for sprig.date.
// Thread-safety: pure functions.
#ifndef KILN_DAG_EXPR_GO_TIME_H_
#define KILN_DAG_EXPR_GO_TIME_H_

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace kiln::expr {

// A UTC instant.
struct GoTime {
  int64_t seconds = 0;  // since the Unix epoch
  int32_t nanos = 0;
};

// Returns `time` formatted with a Go layout, in UTC. Supported: 2006 06 January Jan 01 1 Monday
// Mon 02 _2 2 002 15 03 3 04 4 05 5 PM pm MST Z07:00 Z0700 Z07 -07:00 -0700 -07 and fractional
// seconds .000 .999 (any length, '.' or ','). Other text is copied.
std::string FormatGoTime(std::string_view layout, GoTime time);

// Returns the instant of an RFC 3339 timestamp such as "2024-03-05T14:07:09Z" or
// "2024-03-05T14:07:09.5+02:00".
// Errors: `cannot parse "x" as an RFC 3339 time`.
std::expected<GoTime, std::string> ParseRfc3339(std::string_view text);

}  // namespace kiln::expr

#endif  // KILN_DAG_EXPR_GO_TIME_H_
