#include "dag/quantity.h"

#include <catch2/catch.hpp>

namespace kiln::dag {
namespace {

double Value(std::string_view text) {
  auto q = ParseQuantity(text);
  REQUIRE(q.has_value());
  CHECK(q->text == text);
  return q->value;
}

std::string Error(std::string_view text) {
  auto q = ParseQuantity(text);
  REQUIRE_FALSE(q.has_value());
  return q.error();
}

constexpr char kRule[] =
    ": use a number with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E), "
    "e.g. \"500m\", \"1.5Gi\", \"2\"";

}  // namespace

TEST_CASE("ParseQuantity reads Kubernetes quantities in base units", "[dag]") {
  CHECK(Value("500m") == Approx(0.5));
  CHECK(Value("1.5Gi") == 1.5 * 1024 * 1024 * 1024);
  CHECK(Value("2") == 2);
  CHECK(Value("1e3") == 1000);
  CHECK(Value("12E-2") == Approx(0.12));
  CHECK(Value("1e+3") == 1000);
  CHECK(Value("128974848") == 128974848);
  CHECK(Value("129M") == 129e6);
  CHECK(Value("123Mi") == 123.0 * 1024 * 1024);
  CHECK(Value("-1") == -1);
  CHECK(Value("+1") == 1);
  CHECK(Value(".5") == 0.5);
  CHECK(Value("5.") == 5);
  CHECK(Value("1E") == 1e18);  // exa, not an exponent
  CHECK(Value("100n") == Approx(1e-7));
  CHECK(Value("1Ki") == 1024);
  CHECK(Value("0") == 0);
}

TEST_CASE("ParseQuantity rejects other spellings with one sentence", "[dag]") {
  CHECK(Error("1.5GB") == std::string("invalid quantity \"1.5GB\"") + kRule +
                              " (did you mean \"1.5G\" or \"1.5Gi\"?)");
  CHECK(Error("10mb") ==
        std::string("invalid quantity \"10mb\"") + kRule + " (did you mean \"10M\" or \"10Mi\"?)");
  CHECK(Error("2K") ==
        std::string("invalid quantity \"2K\"") + kRule + " (did you mean \"2k\" or \"2Ki\"?)");
  CHECK(Error("1 Gi") == std::string("invalid quantity \"1 Gi\"") + kRule);
  CHECK(Error("Gi") == std::string("invalid quantity \"Gi\"") + kRule);
  CHECK(Error("") == std::string("invalid quantity \"\"") + kRule);
  CHECK(Error("1.2.3") == std::string("invalid quantity \"1.2.3\"") + kRule);
  CHECK(Error("-") == std::string("invalid quantity \"-\"") + kRule);
  CHECK(Error(".") == std::string("invalid quantity \".\"") + kRule);
  CHECK(Error("1e") == std::string("invalid quantity \"1e\"") + kRule);
  CHECK(Error("1e+-3") == std::string("invalid quantity \"1e+-3\"") + kRule);
  CHECK(Error("1i") == std::string("invalid quantity \"1i\"") + kRule);
  CHECK(Error(" 1") == std::string("invalid quantity \" 1\"") + kRule);
  CHECK(Error("1 ") == std::string("invalid quantity \"1 \"") + kRule);
  CHECK(Error("1e99999999999") ==
        "invalid quantity \"1e99999999999\": the exponent is out of range");
  CHECK(Error("1e400") == "invalid quantity \"1e400\": the value is out of range");
}

TEST_CASE("HasTemplateTag spots run-time placeholders", "[dag]") {
  CHECK(HasTemplateTag("{{inputs.parameters.mem}}"));
  CHECK(HasTemplateTag("{{=asInt(x)}}Mi"));
  CHECK_FALSE(HasTemplateTag("1Gi"));
  CHECK_FALSE(HasTemplateTag("{"));
}

}  // namespace kiln::dag
