#include "dag/expr/govaluate.h"

#include <catch2/catch.hpp>

namespace kiln::expr {
namespace {

bool When(std::string_view text) {
  auto result = EvaluateWhen(text);
  INFO(text);
  if (!result) FAIL(result.error());
  return *result;
}

std::string WhenError(std::string_view text) {
  auto result = EvaluateWhen(text);
  REQUIRE_FALSE(result);
  return result.error();
}

std::string SyntaxMessage(std::string_view text) {
  auto parsed = ParseWhen(text);
  REQUIRE_FALSE(parsed);
  return parsed.error().message;
}

TEST_CASE("when: corpus forms after substitution", "[expr]") {
  CHECK(When("tails == heads") == false);
  CHECK(When("heads == heads") == true);
  CHECK(When("Succeeded == Succeeded") == true);
  CHECK(When("Failed == Succeeded") == false);
  CHECK(When("Running != Succeeded") == true);
  CHECK(When("YES == YES") == true);
  CHECK(When("even == even") == true);
  CHECK(When("false") == false);
  CHECK(When("true == true") == true);
  CHECK(When("false == true") == false);
  CHECK(When("3 != 1 && 3 != 2") == true);
  CHECK(When("2 != 1 && 2 != 2") == false);
  CHECK(When("1 != 1 && 1 != 2") == false);
}

TEST_CASE("when: numbers, strings and bools", "[expr]") {
  CHECK(When("5 == 5") == true);
  CHECK(When("5 == 5.0") == true);
  CHECK(When("\"5\" == 5") == false);
  CHECK(When("'5' != 5") == true);
  CHECK(When("'heads' == heads") == true);
  CHECK(When("\"a b\" == 'a b'") == true);
  CHECK(When("'it\\'s' == \"it's\"") == true);
  CHECK(When("0x10 == 16") == true);
  CHECK(When(".5 == 0.5") == true);
  CHECK(When("inputs.parameters.x == inputs.parameters.x") == true);
  CHECK(When("[my var] == 'my var'") == true);
}

TEST_CASE("when: comparison and arithmetic operators", "[expr]") {
  CHECK(When("1 < 2") == true);
  CHECK(When("2 <= 2") == true);
  CHECK(When("3 > 2.5") == true);
  CHECK(When("3 >= 4") == false);
  CHECK(When("abc < abd") == true);
  CHECK(When("1 + 2 * 3 == 7") == true);
  CHECK(When("(1 + 2) * 3 == 9") == true);
  CHECK(When("10 / 4 == 2.5") == true);
  CHECK(When("10 % 4 == 2") == true);
  CHECK(When("-3 + 5 == 2") == true);
  CHECK(When("7 - 2 - 1 == 4") == true);
  CHECK(When("'a' + 1 == 'a1'") == true);
  CHECK(When("!false") == true);
  CHECK(When("!(1 == 1) || 2 == 2") == true);
  CHECK(When("true && false || true") == true);
  CHECK(When("false && (1 < 'x')") == false);
}

TEST_CASE("when: regex and in", "[expr]") {
  CHECK(When("'feature-x' =~ '^feature-'") == true);
  CHECK(When("'main' =~ 'feat'") == false);
  CHECK(When("main !~ 'feat'") == true);
  CHECK(When("b in (a, b, c)") == true);
  CHECK(When("2 in (1, 3)") == false);
  CHECK(When("d IN (a, b)") == false);
  CHECK(WhenError("'a' =~ '('").starts_with(
      "failed to evaluate expression ''a' =~ '('': invalid regular expression \"(\": "));
}

TEST_CASE("when: Argo's error messages", "[expr]") {
  CHECK(WhenError("1 + 1") == "expected boolean evaluation for '1 + 1', got 2");
  CHECK(WhenError("heads") == "expected boolean evaluation for 'heads', got heads");
  CHECK(WhenError("1.5 * 1") == "expected boolean evaluation for '1.5 * 1', got 1.5");
  CHECK(WhenError("'a' < 1") ==
        "failed to evaluate expression ''a' < 1': cannot compare \"a\" and 1 with \"<\"");
  CHECK(WhenError("a - 1 == 2") ==
        "failed to evaluate expression 'a - 1 == 2': value \"a\" cannot be used with the modifier "
        "\"-\", it is not a number");
  CHECK(WhenError("a && true") ==
        "failed to evaluate expression 'a && true': value \"a\" cannot be used with the logical "
        "operator \"&&\", it is not a bool");
  CHECK(WhenError("!a") ==
        "failed to evaluate expression '!a': value \"a\" cannot be used with the prefix \"!\", it is "
        "not a bool");
  CHECK(WhenError("a in b") ==
        "failed to evaluate expression 'a in b': value \"b\" cannot be used with the comparator "
        "\"in\", it is not an array");
  CHECK(WhenError("foo(1) == 1") ==
        "failed to evaluate expression 'foo(1) == 1': undefined function \"foo\"");
  CHECK(WhenError(" == heads") ==
        "invalid 'when' expression ' == heads': unexpected \"==\" at offset 1");
}

TEST_CASE("when: syntax errors", "[expr]") {
  CHECK(SyntaxMessage("") == "empty expression");
  CHECK(SyntaxMessage("a == 'b") == "unterminated string at offset 5");
  CHECK(SyntaxMessage("(a == b") == "missing \")\" for \"(\" at offset 0");
  CHECK(SyntaxMessage("a == b)") == "unexpected \")\" at offset 6");
  CHECK(SyntaxMessage("a ==") == "expected an operand after \"==\" at offset 2");
  CHECK(SyntaxMessage("a &&") == "expected an operand after \"&&\" at offset 2");
  CHECK(SyntaxMessage("a b") == "unexpected \"b\" at offset 2");
  CHECK(SyntaxMessage("5abc == 5") == "unexpected \"abc\" at offset 1");
  CHECK(SyntaxMessage("1.2.3 == 1") == "unable to parse numeric value \"1.2.3\" at offset 0");
  CHECK(SyntaxMessage("a ? b : c") == "unsupported operator \"?\" at offset 2");
  CHECK(SyntaxMessage("a @ b") == "invalid character \"@\" at offset 2");
  CHECK(SyntaxMessage("-") == "expected an operand after \"-\" at offset 0");
  std::string deep(300, '(');
  CHECK(SyntaxMessage(deep + "1" + std::string(300, ')')) == "expression nested too deeply");
  std::string chain = "1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  CHECK(SyntaxMessage(chain) == "expression nested too deeply");
}

TEST_CASE("when: lint placeholders parse as operands", "[expr]") {
  for (const char* text : {"PLACEHOLDER == heads", "PLACEHOLDER != 1 && PLACEHOLDER != 2",
                           "PLACEHOLDER == true", "PLACEHOLDER == Succeeded", "PLACEHOLDER"}) {
    INFO(text);
    CHECK(ParseWhen(text).has_value());
  }
}

TEST_CASE("when: Evaluate returns govaluate values", "[expr]") {
  auto parsed = ParseWhen("(1, 'a', b)");
  REQUIRE(parsed);
  auto value = parsed->Evaluate();
  REQUIRE(value);
  CHECK(value->dump() == "[1.0,\"a\",\"b\"]");
}

}  // namespace
}  // namespace kiln::expr
