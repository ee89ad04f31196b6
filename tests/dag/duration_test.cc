#include "dag/duration.h"

#include <catch2/catch.hpp>

namespace kiln::dag {
namespace {

using namespace std::chrono_literals;

std::chrono::nanoseconds Parsed(std::string_view text) {
  auto d = ParseDuration(text);
  REQUIRE(d.has_value());
  return *d;
}

std::string Error(std::string_view text) {
  auto d = ParseDuration(text);
  REQUIRE_FALSE(d.has_value());
  return d.error();
}

std::string Invalid(std::string_view quoted) {
  return "invalid duration " + std::string(quoted) +
         ": use a number with a unit (ns, us, ms, s, m, h), e.g. \"30s\", \"1m30s\", or a plain "
         "number of seconds";
}

}  // namespace

TEST_CASE("ParseDuration reads Go durations and bare seconds", "[dag]") {
  CHECK(Parsed("1m30s") == 90s);
  CHECK(Parsed("300ms") == 300ms);
  CHECK(Parsed("1.5h") == 90min);
  CHECK(Parsed("2h45m") == 2h + 45min);
  CHECK(Parsed("10s") == 10s);
  CHECK(Parsed("30") == 30s);
  CHECK(Parsed("+30") == 30s);
  CHECK(Parsed("0") == 0s);
  CHECK(Parsed("-1.5s") == -1500ms);
  CHECK(Parsed(".5s") == 500ms);
  CHECK(Parsed("5.s") == 5s);
  CHECK(Parsed("1us") == 1us);
  CHECK(Parsed("1\u00b5s") == 1us);
  CHECK(Parsed("1\u03bcs") == 1us);
  CHECK(Parsed("7ns") == 7ns);
  CHECK(Parsed("1h1m1s1ms1us1ns") == 1h + 1min + 1s + 1ms + 1us + 1ns);
  CHECK(Parsed("1.0000000001s") == 1s);  // Go truncates fractions of a nanosecond
  CHECK(Parsed("1.9999999999ns") == 1ns);
  CHECK(Parsed("9223372036854775807ns").count() == INT64_MAX);
  CHECK(Parsed("-9223372036854775808ns").count() == INT64_MIN);
  CHECK(Parsed("9223372036") == 9223372036s);
}

TEST_CASE("ParseDuration rejects other spellings and overflow", "[dag]") {
  CHECK(Error("10 sec") == Invalid("\"10 sec\""));
  CHECK(Error("1x") == Invalid("\"1x\""));
  CHECK(Error("-") == Invalid("\"-\""));
  CHECK(Error("") == Invalid("\"\""));
  CHECK(Error("1.5") == Invalid("\"1.5\""));
  CHECK(Error("s") == Invalid("\"s\""));
  CHECK(Error(".s") == Invalid("\".s\""));
  CHECK(Error("1h30") == Invalid("\"1h30\""));
  CHECK(Error("1 h") == Invalid("\"1 h\""));
  CHECK(Error("1H") == Invalid("\"1H\""));
  const std::string kRange = "\": it is out of range (at most about 292 years)";
  CHECK(Error("9223372036854775808ns") == "invalid duration \"9223372036854775808ns" + kRange);
  CHECK(Error("3000000h") == "invalid duration \"3000000h" + kRange);
  CHECK(Error("2562047h48m") == "invalid duration \"2562047h48m" + kRange);
  CHECK(Error("9223372037") == "invalid duration \"9223372037" + kRange);
  CHECK(Error("99999999999999999999999") == "invalid duration \"99999999999999999999999" + kRange);
}

TEST_CASE("ParseGoDuration needs a unit except for zero", "[dag]") {
  CHECK(ParseGoDuration("90s") == 90s);
  CHECK(ParseGoDuration("0") == 0s);
  CHECK(ParseGoDuration("30").error() == Invalid("\"30\""));
}

TEST_CASE("FormatDuration writes Go's Duration.String", "[dag]") {
  CHECK(FormatDuration(0s) == "0s");
  CHECK(FormatDuration(90s) == "1m30s");
  CHECK(FormatDuration(500ms) == "500ms");
  CHECK(FormatDuration(1h) == "1h0m0s");
  CHECK(FormatDuration(2h + 45min) == "2h45m0s");
  CHECK(FormatDuration(1500ns) == "1.5\u00b5s");
  CHECK(FormatDuration(7ns) == "7ns");
  CHECK(FormatDuration(1500ms) == "1.5s");
  CHECK(FormatDuration(-90s) == "-1m30s");
  CHECK(FormatDuration(std::chrono::nanoseconds(INT64_MIN)) == "-2562047h47m16.854775808s");
  CHECK(FormatDuration(std::chrono::nanoseconds(INT64_MAX)) == "2562047h47m16.854775807s");
  for (std::string_view text : {"1m30s", "1.5h", "300ms", "1h1m1.001s"}) {
    CAPTURE(text);
    CHECK(ParseDuration(FormatDuration(*ParseDuration(text))) == ParseDuration(text));
  }
}

}  // namespace kiln::dag
