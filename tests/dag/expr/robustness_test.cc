// Every parser and evaluator in dag/expr survives arbitrary input: no crash, no hang.
#include <random>

#include <catch2/catch.hpp>

#include "dag/expr/depends.h"
#include "dag/expr/expr_lang.h"
#include "dag/expr/govaluate.h"
#include "dag/expr/jsonpath.h"
#include "dag/expr/template_string.h"

namespace kiln::expr {
namespace {

TEST_CASE("expression parsers survive random input", "[expr]") {
  const std::string alphabet = "ab1 .()[]{}'\"`\\?:!&|=<>+-*/%#,@$_~^\n" "\xc3\xa9";
  const std::vector<std::string> words = {"a.b", "&&", "||", "in", "not", "{{", "}}", "{{=", "filter(", "#",
                                          "sprig.add(", "jsonpath('{}', '$..*')", "[?(@.a", "..", "?.", "??",
                                          "1e9", "0x", "'", "nil", "true", "(", ")", "-"};
  std::mt19937 rng(12345);
  nlohmann::json env = BuildEnv({{"a.b", "1"}, {"x", "[1,2]"}});
  nlohmann::json doc = nlohmann::json::parse(R"({"a": [1, {"b": 2}], "c": "d"})");
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    int n = static_cast<int>(rng() % 24);
    for (int j = 0; j < n; ++j) {
      if (rng() % 3 == 0) {
        text += words[rng() % words.size()];
      } else {
        text += alphabet[rng() % alphabet.size()];
      }
    }
    (void)FindTags(text);
    if (auto d = ParseDepends(text)) {
      (void)d->Evaluate([](std::string_view) { return DependsExpr::Outcome{DependsExpr::Outcome::Phase::kSucceeded}; });
    }
    (void)EvaluateWhen(text);
    if (auto program = ParseExpr(text)) {
      ++parsed;
      (void)ReferencedPaths(*program);
      (void)Evaluate(*program, env);
    }
    (void)JsonPath(doc, text);
    (void)JsonPath(doc, "$" + text);
    (void)ParseJson(text);
  }
  CHECK(parsed > 0);
}

}  // namespace
}  // namespace kiln::expr
