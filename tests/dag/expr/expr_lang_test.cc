#include "dag/expr/expr_lang.h"

#include <catch2/catch.hpp>

#include "dag/expr/template_string.h"

namespace kiln::expr {
namespace {

using json = nlohmann::json;
using Paths = std::vector<std::vector<std::string>>;

json Eval(std::string_view text, const json& env = json::object()) {
  auto program = ParseExpr(text);
  INFO(text);
  if (!program) FAIL(program.error().message);
  auto value = Evaluate(*program, env);
  if (!value) FAIL(value.error());
  return *value;
}

// The value rendered as Argo would put it into a template.
std::string Render(std::string_view text, const json& env = json::object()) {
  return RenderValue(Eval(text, env));
}

std::string EvalError(std::string_view text, const json& env = json::object()) {
  auto program = ParseExpr(text);
  INFO(text);
  if (!program) FAIL(program.error().message);
  auto value = Evaluate(*program, env);
  REQUIRE_FALSE(value);
  return value.error();
}

std::string ParseError(std::string_view text) {
  auto program = ParseExpr(text);
  INFO(text);
  REQUIRE_FALSE(program);
  return program.error().message;
}

Paths PathsOf(std::string_view text) {
  auto program = ParseExpr(text);
  INFO(text);
  if (!program) FAIL(program.error().message);
  return ReferencedPaths(*program);
}

TEST_CASE("expr: literals", "[expr]") {
  CHECK(Eval("1") == json(1));
  CHECK(Eval("1.5").get<double>() == 1.5);
  CHECK(Eval("1_000") == json(1000));
  CHECK(Eval("0x1F") == json(31));
  CHECK(Eval("1e3").get<double>() == 1000.0);
  CHECK(Eval("'single'") == json("single"));
  CHECK(Eval("\"double\"") == json("double"));
  CHECK(Eval("`raw \\n`") == json("raw \\n"));
  CHECK(Eval(R"("a\nb\t\"c\" \u00e9 \x41")") == json("a\nb\t\"c\" \xc3\xa9 A"));
  CHECK(Eval(R"('it\'s')") == json("it's"));
  CHECK(Eval("true") == json(true));
  CHECK(Eval("false") == json(false));
  CHECK(Eval("nil").is_null());
  CHECK(Eval("[1, 'a', [true], ]").dump() == R"([1,"a",[true]])");
  CHECK(Eval("{a: 1, 'b c': 2, \"d\": [3], (\"e\" + \"f\"): 4}").dump() == R"({"a":1,"b c":2,"d":[3],"ef":4})");
  CHECK(Eval("{}").dump() == "{}");
  CHECK(Eval("[]").dump() == "[]");
}

TEST_CASE("expr: arithmetic", "[expr]") {
  CHECK(Eval("1 + 2 * 3") == json(7));
  CHECK(Eval("(1 + 2) * 3") == json(9));
  CHECK(Eval("7 / 2").get<double>() == 3.5);
  CHECK(Eval("6 / 3").is_number_float());
  CHECK(Render("6 / 3") == "2");
  CHECK(Eval("7 % 3") == json(1));
  CHECK(Eval("2 ** 10").get<double>() == 1024.0);
  CHECK(Eval("2 ^ 3 ^ 2").get<double>() == 512.0);
  CHECK(Eval("-2 ** 2").get<double>() == -4.0);
  CHECK(Eval("1.5 + 1").get<double>() == 2.5);
  CHECK(Eval("10 - 2 - 3") == json(5));
  CHECK(Eval("-(3)") == json(-3));
  CHECK(Eval("+3") == json(3));
  CHECK(Eval("'a' + 'b'") == json("ab"));
  CHECK(Eval("[1] + [2]").dump() == "[1,2]");
  CHECK(Eval("1..3").dump() == "[1,2,3]");
  CHECK(Eval("9223372036854775807 + 1") == json(INT64_MIN));
}

TEST_CASE("expr: comparisons and logic", "[expr]") {
  CHECK(Eval("1 == 1.0") == json(true));
  CHECK(Eval("'1' == 1") == json(false));
  CHECK(Eval("[1, {a: 'x'}] == [1.0, {a: 'x'}]") == json(true));
  CHECK(Eval("{a: 1} != {a: 2}") == json(true));
  CHECK(Eval("nil == nil") == json(true));
  CHECK(Eval("2 < 3 && 3 <= 3 && 4 > 3 && 4 >= 5") == json(false));
  CHECK(Eval("'abc' < 'abd'") == json(true));
  CHECK(Eval("true and not false") == json(true));
  CHECK(Eval("false or !false") == json(true));
  CHECK(Eval("!true == false") == json(true));
  CHECK(Eval("false && 1") == json(false));
  CHECK(Eval("true || 1") == json(true));
  CHECK(Eval("1 > 0 ? 'yes' : 'no'") == json("yes"));
  CHECK(Eval("false ? 1 : true ? 2 : 3") == json(2));
  CHECK(Eval("nil ?? 'fallback'") == json("fallback"));
  CHECK(Eval("'x' ?? 'fallback'") == json("x"));
  CHECK(Eval("a.b ?? 'fallback'", json::parse(R"({"a": {}})")) == json("fallback"));
  CHECK(Eval("missing.deep.path ?? 2") == json(2));
}

TEST_CASE("expr: string and membership operators", "[expr]") {
  CHECK(Eval("2 in [1, 2]") == json(true));
  CHECK(Eval("'a' in {a: 1}") == json(true));
  CHECK(Eval("'b' not in {a: 1}") == json(true));
  CHECK(Eval("3 not in [1, 2]") == json(true));
  CHECK(Eval("'abc' contains 'b'") == json(true));
  CHECK(Eval("'abc' startsWith 'ab'") == json(true));
  CHECK(Eval("'abc' endsWith 'bc'") == json(true));
  CHECK(Eval("'abc' not endsWith 'bc'") == json(false));
  CHECK(Eval("'pod deleted by x' matches 'imminent node shutdown|pod deleted'") == json(true));
  CHECK(Eval("'abc' matches '^b'") == json(false));
  CHECK(Eval("'abc' not matches '^b'") == json(true));
}

TEST_CASE("expr: member access, indexing and slices", "[expr]") {
  json env = json::parse(R"({"a": {"b": {"c": 5}, "list": [10, 20, 30], "s": "hello", "n": null}})");
  CHECK(Eval("a.b.c", env) == json(5));
  CHECK(Eval("a['b']['c']", env) == json(5));
  CHECK(Eval("a[\"b\"].c", env) == json(5));
  CHECK(Eval("a.list[0]", env) == json(10));
  CHECK(Eval("a.list[-1]", env) == json(30));
  CHECK(Eval("a.list[1:]", env).dump() == "[20,30]");
  CHECK(Eval("a.list[:2]", env).dump() == "[10,20]");
  CHECK(Eval("a.list[-2:-1]", env).dump() == "[20]");
  CHECK(Eval("a.s[1:3]", env) == json("el"));
  CHECK(Eval("a.s[0]", env) == json("h"));
  CHECK(Eval("a?.b?.c", env) == json(5));
  CHECK(Eval("a.n?.x", env).is_null());
  CHECK(Eval("a.n?.x.y", env).is_null());
  CHECK(Eval("a?.missing", env).is_null());
  CHECK(Eval("{x: 1}.y").is_null());
  CHECK(Eval("[1, 2][1]") == json(2));
}

TEST_CASE("expr: Argo functions", "[expr]") {
  json env = json::parse(R"({"inputs": {"parameters": {"foo": "3", "f": "1.5", "bad": "1.56"}}})");
  CHECK(Eval("asInt(inputs.parameters.foo) * 10", env) == json(30));
  CHECK(Eval("asInt(2.9)") == json(2));
  CHECK(Eval("asFloat(inputs.parameters.f)", env).get<double>() == 1.5);
  CHECK(Eval("asFloat(2)").get<double>() == 2.0);
  CHECK(Eval("string(1.5)") == json("1.5"));
  CHECK(Eval("string(2)") == json("2"));
  CHECK(Eval("string([1, 'a'])") == json(R"([1,"a"])"));
  CHECK(Eval("toJson({b: [1, 2.0], a: 'x'})") == json(R"({"a":"x","b":[1,2]})"));
  CHECK(Eval("toJson('s')") == json(R"("s")"));
  CHECK(Eval("jsonpath('{\"a\": {\"b\": 2}}', '$.a.b')") == json(2));
  CHECK(EvalError("asInt(inputs.parameters.bad)", env) == "asInt(): cannot parse \"1.56\" as an integer");
  CHECK(EvalError("asFloat('x')") == "asFloat(): cannot parse \"x\" as a float");
  CHECK(EvalError("asInt(true)") == "asInt(): not supported on bool true");
  CHECK(EvalError("jsonpath('{', '$.a')").starts_with("jsonpath(): invalid JSON: parse error"));
  CHECK(EvalError("jsonpath('{}', '$.a')") == "jsonpath(): key \"a\" not found in JSONPath \"$.a\"");
  CHECK(EvalError("jsonpath({}, '$.a')") == "jsonpath() expects a string as argument 1, got map");
}

TEST_CASE("expr: builtin functions", "[expr]") {
  CHECK(Eval("len('abc')") == json(3));
  CHECK(Eval("len([1, 2])") == json(2));
  CHECK(Eval("len({a: 1})") == json(1));
  CHECK(Eval("upper('abc') + lower('DEF')") == json("ABCdef"));
  CHECK(Eval("trim('  x  ')") == json("x"));
  CHECK(Eval("trim('__x__', '_')") == json("x"));
  CHECK(Eval("trimPrefix('v1.2', 'v')") == json("1.2"));
  CHECK(Eval("trimSuffix('a.txt', '.txt')") == json("a"));
  CHECK(Eval("split('a,b,c', ',')").dump() == R"(["a","b","c"])");
  CHECK(Eval("join(['a', 'b'], '-')") == json("a-b"));
  CHECK(Eval("join(['a', 'b'])") == json("ab"));
  CHECK(Eval("replace('aaa', 'a', 'b')") == json("bbb"));
  CHECK(Eval("hasPrefix('abc', 'a') && hasSuffix('abc', 'c')") == json(true));
  CHECK(Eval("indexOf('abc', 'c')") == json(2));
  CHECK(Eval("repeat('ab', 2)") == json("abab"));
  CHECK(Eval("keys({b: 1, a: 2})").dump() == R"(["a","b"])");
  CHECK(Eval("values({b: 1, a: 2})").dump() == "[2,1]");
  CHECK(Eval("first([1, 2]) + last([1, 2])") == json(3));
  CHECK(Eval("min(3, 1, 2)") == json(1));
  CHECK(Eval("max([3, 1.5, 2])") == json(3));
  CHECK(Eval("abs(-2)") == json(2));
  CHECK(Eval("int('42') + int(2.7)") == json(44));
  CHECK(Eval("float('2.5')").get<double>() == 2.5);
  CHECK(Eval("fromJSON('{\"a\": [1]}').a[0]") == json(1));
  CHECK(Eval("toJSON({a: 1})") == json("{\n  \"a\": 1\n}"));
  CHECK(Eval("sum([1, 2, 3])") == json(6));
}

TEST_CASE("expr: predicates with #", "[expr]") {
  CHECK(Eval("toJson(filter([1, 3], {# > 1}))") == json("[3]"));
  CHECK(Eval("map([1, 2], {# * 2})").dump() == "[2,4]");
  CHECK(Eval("map([1, 2], # + 1)").dump() == "[2,3]");
  CHECK(Eval("all([1, 2], {# > 0})") == json(true));
  CHECK(Eval("any([1, 2], {# > 1})") == json(true));
  CHECK(Eval("none([1, 2], {# > 2})") == json(true));
  CHECK(Eval("one([1, 2], {# > 1})") == json(true));
  CHECK(Eval("count([1, 2, 3], {# >= 2})") == json(2));
  CHECK(Eval("find([1, 2, 3], {# >= 2})") == json(2));
  CHECK(Eval("findIndex([1, 2, 3], {# >= 2})") == json(1));
  CHECK(Eval("findLast([1, 2, 3], {# >= 2})") == json(3));
  CHECK(Eval("sum([1, 2], {# * 10})") == json(30));
  CHECK(Eval("map([[1, 2]], {#[1]})").dump() == "[2]");
  CHECK(Eval("map([{a: 1}], {#.a})").dump() == "[1]");
  CHECK(Eval("map([[1], [2, 3]], {map(#, {# * 10})})").dump() == "[[10],[20,30]]");
  CHECK(EvalError("filter([1], {#})") == "filter() predicate must return a bool, got int");
  CHECK(EvalError("#") == "\"#\" used outside of a predicate");
}

TEST_CASE("expr: sprig functions", "[expr]") {
  CHECK(Eval("sprig.date('2006', '2024-03-05T14:07:09Z')") == json("2024"));
  CHECK(Eval("sprig.date('2006-01-02 15:04:05 Mon Jan _2 3PM MST Z07:00 -0700', '2024-03-05T14:07:09Z')") ==
        json("2024-03-05 14:07:09 Tue Mar  5 2PM UTC Z +0000"));
  CHECK(Eval("sprig.date('January 2, 06 03:04:05.000 pm', '2021-12-31T23:59:58.123456+01:00')") ==
        json("December 31, 21 10:59:58.123 pm"));
  CHECK(Eval("sprig.date('Monday 002 .999', 0)") == json("Thursday 001 "));
  CHECK(Eval("sprig.upper('a') + sprig.lower('B') + sprig.trim(' c ')") == json("Abc"));
  CHECK(Eval("sprig.replace('a', 'b', 'banana')") == json("bbnbnb"));
  CHECK(Eval("sprig.trimPrefix('v', 'v1') + sprig.trimSuffix('.go', 'x.go')") == json("1x"));
  CHECK(Eval("sprig.contains('an', 'banana') && sprig.hasPrefix('ba', 'banana') && sprig.hasSuffix('na', 'banana')") ==
        json(true));
  CHECK(Eval("sprig.toString(5)") == json("5"));
  CHECK(Eval("sprig.atoi('12') + sprig.atoi('x')") == json(12));
  CHECK(Eval("sprig.int('7') + sprig.int(2.9)") == json(9));
  CHECK(Eval("sprig.add(1, '2', 3.9)") == json(6));
  CHECK(Eval("sprig.sub(5, 2) * sprig.mul(2, 3) + sprig.div(7, 2)") == json(21));
  CHECK(Eval("sprig.max(1, 5, 3)") == json(5));
  CHECK(Eval("sprig.min(4, 2, 3)") == json(2));
  CHECK(Eval("sprig.default('d', '')") == json("d"));
  CHECK(Eval("sprig.default('d', 'v')") == json("v"));
  CHECK(Eval("sprig.empty('') && sprig.empty([]) && !sprig.empty(0.5)") == json(true));
  CHECK(Eval("sprig.quote('a', 1)") == json("\"a\" \"1\""));
  CHECK(Eval("sprig.b64enc('hello')") == json("aGVsbG8="));
  CHECK(Eval("sprig.b64dec('aGVsbG8=')") == json("hello"));
  CHECK(Eval("sprig.b64dec('!!')") == json("illegal base64 data at input byte 0"));
  CHECK(Eval("sprig.splitList(',', 'a,b')").dump() == R"(["a","b"])");
  CHECK(Eval("sprig.join('-', [1, 'a'])") == json("1-a"));
  CHECK(Eval("sprig.list(1, 'a')").dump() == R"([1,"a"])");
  CHECK(Eval("sprig.dict('k', 1, 'j', 2)").dump() == R"({"j":2,"k":1})");
  CHECK(Eval("sprig.toJson({a: 1})") == json(R"({"a":1})"));
  CHECK(Eval("sprig.fromJson('{\"a\": 1}').a") == json(1));
  CHECK(Eval("sprig.fromJson('{').x ?? 'none'") == json("none"));
  CHECK(EvalError("sprig.div(1, 0)") == "sprig.div(): integer divide by zero");
  CHECK(EvalError("sprig.nope(1)") == "unknown function sprig.nope");
  CHECK(EvalError("sprig.date('2006', 'yesterday')") ==
        "sprig.date(): cannot parse \"yesterday\" as an RFC 3339 time");
}

TEST_CASE("expr: evaluation errors", "[expr]") {
  json env = json::parse(R"({"inputs": {"parameters": {"x": "1"}}, "n": null})");
  CHECK(EvalError("inputs.foo", env) == "unknown name inputs.foo");
  CHECK(EvalError("inputs.parameters['y']", env) == "unknown name inputs.parameters.y");
  CHECK(EvalError("nope", env) == "unknown name nope");
  CHECK(EvalError("n.x", env) == "cannot get \"x\" from nil");
  CHECK(EvalError("'a' + 1") == "invalid operation: + (mismatched types string and int)");
  CHECK(EvalError("'a' < 1") == "invalid operation: < (mismatched types string and int)");
  CHECK(EvalError("1 && true") == "invalid operation: && (mismatched types int and bool)");
  CHECK(EvalError("1.5 % 1") == "invalid operation: % (mismatched types float and int)");
  CHECK(EvalError("1 % 0") == "integer divide by zero");
  CHECK(EvalError("!1") == "invalid operation: ! on int");
  CHECK(EvalError("1 in 'abc'") == "invalid operation: in (mismatched types int and string)");
  CHECK(EvalError("[1][5]") == "index out of range: 5 (array of length 1)");
  CHECK(EvalError("[1]['a']") == "cannot index array with string \"a\"");
  CHECK(EvalError("1 ? 2 : 3") == "non-bool condition 1 in ternary operator");
  CHECK(EvalError("len(1)") == "len(): invalid argument of type int");
  CHECK(EvalError("len()") == "len() expects 1 argument, got 0");
  CHECK(EvalError("upper(1)") == "upper() expects a string as argument 1, got int");
  CHECK(EvalError("nosuch(1)") == "unknown function nosuch");
  CHECK(EvalError("'a' matches '('").starts_with("invalid regular expression \"(\": "));
  CHECK(EvalError("now()") == "now() is not supported: kiln does not read the clock in expressions");
  CHECK(EvalError("(1).Seconds()") == "method Seconds() is not supported");
  CHECK(EvalError("1..100000000") == "range 1..100000000 is too large");
}

TEST_CASE("expr: syntax errors", "[expr]") {
  CHECK(ParseError("") == "empty expression");
  CHECK(ParseError("(1 + 2))") == "unexpected \")\" at offset 7");
  CHECK(ParseError("'abc") == "unterminated string at offset 0");
  CHECK(ParseError("1 +") == "expected an operand after \"+\" at offset 2");
  CHECK(ParseError("1 &&") == "expected an operand after \"&&\" at offset 2");
  CHECK(ParseError("(1 + 2") == "expected \")\" but found end of expression at offset 6");
  CHECK(ParseError("[1, 2") == "expected \",\" but found end of expression at offset 5");
  CHECK(ParseError("{a 1}") == "expected \":\" but found \"1\" at offset 3");
  CHECK(ParseError("{+: 1}") == "expected a map key but found \"+\" at offset 1");
  CHECK(ParseError("true ? 1") == "expected \":\" but found end of expression at offset 8");
  CHECK(ParseError("a.") == "expected a name after \".\" at offset 2");
  CHECK(ParseError("1 2") == "unexpected number 2 at offset 2");
  CHECK(ParseError("a b") == "unexpected \"b\" at offset 2");
  CHECK(ParseError("'\\q'") == "invalid escape sequence \"\\q\" at offset 1");
  CHECK(ParseError("5abc") == "invalid number \"5abc\" at offset 0");
  CHECK(ParseError("a @ b") == "unexpected \"@\" at offset 2");
  CHECK(ParseError("f(1,") == "unexpected end of expression at offset 4");
  std::string deep(300, '(');
  CHECK(ParseError(deep + "1" + std::string(300, ')')) == "expression nested too deeply");
  std::string chain = "1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  CHECK(ParseError(chain) == "expression nested too deeply");
  std::string arrays(300, '[');
  CHECK(ParseError(arrays) == "expression nested too deeply");
  CHECK(ParseError(std::string(300, '-') + "1") == "expression nested too deeply");
}

TEST_CASE("expr: ReferencedPaths", "[expr]") {
  CHECK(PathsOf("inputs.parameters[\"should-print\"] == 'true'") ==
        Paths{{"inputs", "parameters", "should-print"}});
  CHECK(PathsOf("steps['step-1'].status") == Paths{{"steps", "step-1", "status"}});
  CHECK(PathsOf("asInt(inputs.parameters.foo) * 10") == Paths{{"inputs", "parameters", "foo"}});
  CHECK(PathsOf("sprig.date('2006', workflow.creationTimestamp)") ==
        Paths{{"workflow", "creationTimestamp"}});
  CHECK(PathsOf("a[b.c].d + a[0] + a.x + a.x") == Paths{{"a"}, {"b", "c"}, {"a", "0"}, {"a", "x"}});
  CHECK(PathsOf("map(items, {#.x + y})") == Paths{{"items"}, {"y"}});
  CHECK(PathsOf("(now() - cron.last).Seconds() > 1") == Paths{{"cron", "last"}});
  CHECK(PathsOf("x?.y ?? z") == Paths{{"x", "y"}, {"z"}});
  CHECK(PathsOf("1 + len('a')").empty());
}

TEST_CASE("expr: BuildEnv and RenderValue", "[expr]") {
  json env = BuildEnv({{"inputs.parameters.x", "1"},
                       {"inputs.parameters", "[{\"name\":\"x\"}]"},
                       {"workflow.name", "w"},
                       {"item", "a"}});
  CHECK(env.dump() == R"({"inputs":{"parameters":{"x":"1"}},"item":"a","workflow":{"name":"w"}})");
  CHECK(RenderValue(json("s")) == "s");
  CHECK(RenderValue(json(30)) == "30");
  CHECK(RenderValue(json(30.0)) == "30");
  CHECK(RenderValue(json(35.8)) == "35.8");
  CHECK(RenderValue(json(1e21)) == "1e+21");
  CHECK(RenderValue(json(-0.5)) == "-0.5");
  CHECK(RenderValue(json(true)) == "true");
  CHECK(RenderValue(json::parse(R"([1.0, {"b": 2, "a": "x"}])")) == R"([1,{"a":"x","b":2}])");
  CHECK(RenderValue(json()) == "<nil>");
}

// Every {{=...}} and expression form in the corpus parses; those that need no cluster state
// evaluate to what Argo produces.
TEST_CASE("expr: corpus expressions", "[expr]") {
  json env = BuildEnv({
      {"inputs.parameters.should-print", "true"},
      {"inputs.parameters.foo", "4"},
      {"inputs.parameters.num", "2"},
      {"item", "3"},
      {"workflow.creationTimestamp", "2023-06-01T10:00:00Z"},
      {"workflow.parameters.config", R"({"a": "1", "b": "2", "c": "3"})"},
      {"workflow.parameters.json", R"([{"name": "x", "value": "true"}])"},
      {"workflow.parameters.weather", R"({"weekWeather": "eyJ0ZW1wcyI6IFszNCwgMjcsIDE1LCA1NywgNDZdfQo="})"},
      {"workflow.status", "Running"},
      {"steps.step2.status", "Succeeded"},
      {"steps.step-1.status", "Running"},
      {"steps.fibonacci-helper.outputs.parameters.result", "5"},
      {"lastRetry.exitCode", "2"},
      {"lastRetry.status", "Failed"},
      {"lastRetry.duration", "30"},
      {"lastRetry.message", "pod deleted"},
  });
  CHECK(Render("inputs.parameters[\"should-print\"] == 'true'", env) == "true");
  CHECK(Render("asInt(inputs.parameters.foo) * 10", env) == "40");
  CHECK(Render("item", env) == "3");
  CHECK(Render("sprig.date('2006', workflow.creationTimestamp)", env) == "2023");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.a')", env) == "1");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.b')", env) == "2");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.c')", env) == "3");
  CHECK(Render("jsonpath(workflow.parameters.json, '$[0].value') == 'true'", env) == "true");
  CHECK(Render("toJson(filter([1, 3], {# > 1}))", env) == "[3]");
  CHECK(Render("asInt(inputs.parameters.num) == 1? 1: asInt(inputs.parameters.num) == 2? 1: "
               "steps['fibonacci-helper'].outputs.parameters.result",
               env) == "1");
  CHECK(Render("workflow.status == \"Running\"", env) == "true");
  CHECK(Render("steps.step2.status == \"Running\"", env) == "false");
  CHECK(Render("steps.step2.status == \"Succeeded\"", env) == "true");
  CHECK(Render("steps[\"step-1\"].status == \"Running\"", env) == "true");
  CHECK(Render("steps[\"step-1\"].status == \"Succeeded\"", env) == "false");
  CHECK(Render("asInt(lastRetry.exitCode) > 1 &&\n  lastRetry.status != \"Error\" &&\n  "
               "asInt(lastRetry.duration) < 120 &&\n  (false == true || lastRetry.message matches "
               "'imminent node shutdown|pod deleted')",
               env) == "true");
  CHECK(Render("tasks.producer.outputs.parameters.msg ?? 'expr-fallback'", env) == "expr-fallback");
  CHECK(Render("tasks.producer.outputs.parameters.msg ?? 'expr-fallback'",
               BuildEnv({{"tasks.producer.outputs.parameters.msg", "hi"}})) == "hi");

  // expression-reusing-verbose-snippets.yaml
  std::string week_temps = Render(R"(
                map([
                    jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')
                  ], {
                    toJson({
                      avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5,
                      min: sprig.min(#[0], #[1], #[2], #[3], #[4]),
                      max: sprig.max(#[0], #[1], #[2], #[3], #[4])
                    })
                })[0])",
                                  env);
  CHECK(week_temps == R"({"avg":35.8,"max":57,"min":15})");
  json temps = BuildEnv({{"inputs.parameters.week-temps", week_temps}});
  CHECK(Render("jsonpath(inputs.parameters['week-temps'], '$.avg')", temps) == "35.8");
  CHECK(Render("jsonpath(inputs.parameters['week-temps'], '$.min')", temps) == "15");
  CHECK(Render("jsonpath(inputs.parameters['week-temps'], '$.max')", temps) == "57");

  // expression-destructure-json-complex.yaml
  json complex = BuildEnv({{"workflow.parameters.config",
                            R"({"employees": [{"name": "Baris", "age":43},{"name": "Mo", "age": 42}, {"name": "Jai", "age" :44}]})"}});
  CHECK(Render("jsonpath(workflow.parameters.config, '$.employees[?(@.name==\"Baris\")].age')", complex) == "[43]");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')", complex) == "[43]");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.employees[0:1]')", complex) == R"([{"age":43,"name":"Baris"}])");
  CHECK(Render("jsonpath(workflow.parameters.config, '$.employees[*].name')", complex) == R"(["Baris","Mo","Jai"])");

  // cron-when.yaml needs the clock unless the last run is nil.
  const char* cron = "cronworkflow.lastScheduledTime == nil || (now() - cronworkflow.lastScheduledTime).Seconds() > 360";
  CHECK(ParseExpr(cron).has_value());
  CHECK(Render(cron, json::parse(R"({"cronworkflow": {"lastScheduledTime": null}})")) == "true");
  CHECK(EvalError(cron, BuildEnv({{"cronworkflow.lastScheduledTime", "2024-01-01T00:00:00Z"}})) ==
        "now() is not supported: kiln does not read the clock in expressions");
}

TEST_CASE("expr: every {{=...}} tag in the corpus parses", "[expr]") {
  const char* templates[] = {
      "{{= cronworkflow.lastScheduledTime == nil || (now() - cronworkflow.lastScheduledTime).Seconds() > 360 }}",
      "{{= inputs.parameters[\"should-print\"] == 'true'}}",
      "{{=asInt(inputs.parameters.foo) * 10}}",
      "{{=item}}",
      "{{=jsonpath(inputs.parameters['week-temps'], '$.avg')}}",
      "{{=jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')}}",
      "{{=jsonpath(workflow.parameters.config, '$.employees[?(@.name==\"Baris\")].age')}}",
      "{{=jsonpath(workflow.parameters.json, '$[0].value') == 'true'}}",
      "{{=sprig.date('2006', workflow.creationTimestamp)}}",
      "{{=toJson(filter([1, 3], {# > 1}))}}",
      "{{=\n  map([\n      jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')\n"
      "    ], {\n      toJson({\n        avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5,\n"
      "        min: sprig.min(#[0], #[1], #[2], #[3], #[4]),\n        max: sprig.max(#[0], #[1], #[2], #[3], #[4])\n"
      "      })\n  })[0]\n}}",
  };
  for (const char* text : templates) {
    INFO(text);
    auto tags = FindTags(text);
    REQUIRE(tags);
    REQUIRE(tags->size() == 1);
    CHECK((*tags)[0].is_expression);
    auto program = ParseExpr((*tags)[0].body);
    if (!program) FAIL(program.error().message);
  }
  // The retry expression after Argo substitutes {{inputs.parameters.safe-to-retry}}, and as lint sees it.
  CHECK(ParseExpr("asInt(lastRetry.exitCode) > 1 && (true == true || lastRetry.message matches 'x')").has_value());
  CHECK(ParseExpr("asInt(lastRetry.exitCode) > 1 && (PLACEHOLDER == true || lastRetry.message matches 'x')").has_value());
}

}  // namespace
}  // namespace kiln::expr

namespace kiln::expr {

TEST_CASE("expr-lang let bindings and comments", "[expr]") {
  auto p = ParseExpr("let x = 2; // two\n /* then */ let y = x * 3; y + x");
  REQUIRE(p.has_value());
  auto v = Evaluate(*p, nlohmann::json::object());
  REQUIRE(v.has_value());
  CHECK(*v == 8);
  CHECK(ReferencedPaths(*p).empty());  // let-bound names are not environment variables
  auto q = ParseExpr("any(items, { let it = #; it > limit })");
  REQUIRE(q.has_value());
  CHECK(ReferencedPaths(*q) == std::vector<std::vector<std::string>>{{"items"}, {"limit"}});
  auto r = Evaluate(*q, nlohmann::json{{"items", {1, 5}}, {"limit", 3}});
  REQUIRE(r.has_value());
  CHECK(*r == true);
  CHECK(ParseExpr("let = 1; 2").error().message == "expected a variable name after \"let\" at offset 4");
  CHECK(ParseExpr("1 /* open").error().message == "unterminated comment at offset 2");
}

}  // namespace kiln::expr
