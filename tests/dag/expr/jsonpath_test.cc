#include "dag/expr/jsonpath.h"

#include <catch2/catch.hpp>

namespace kiln::expr {
namespace {

using json = nlohmann::json;

const json kEmployees = json::parse(
    R"({"employees": [{"name": "Baris", "age":43},{"name": "Mo", "age": 42}, {"name": "Jai", "age" :44}]})");

std::string Query(const json& doc, std::string_view path) {
  auto result = JsonPath(doc, path);
  INFO(path);
  if (!result) FAIL(result.error());
  return result->dump();
}

std::string QueryError(const json& doc, std::string_view path) {
  auto result = JsonPath(doc, path);
  REQUIRE_FALSE(result);
  return result.error();
}

TEST_CASE("jsonpath: corpus expression-destructure-json", "[expr]") {
  json config = json::parse(R"({"a": "1", "b": "2", "c": "3"})");
  CHECK(Query(config, "$.a") == "\"1\"");
  CHECK(Query(config, "$.b") == "\"2\"");
  CHECK(Query(config, "$.c") == "\"3\"");
}

TEST_CASE("jsonpath: corpus expression-destructure-json-complex", "[expr]") {
  CHECK(Query(kEmployees, "$.employees[?(@.name==\"Baris\")].age") == "[43]");
  CHECK(Query(kEmployees, "$.employees[?(@.age>42 && @.age<44)].age") == "[43]");
  CHECK(Query(kEmployees, "$.employees[0:1]") == R"([{"age":43,"name":"Baris"}])");
  CHECK(Query(kEmployees, "$.employees[*].name") == R"(["Baris","Mo","Jai"])");
  json params = json::parse(R"([{"name": "x", "value": "true"}])");
  CHECK(Query(params, "$[0].value") == "\"true\"");
}

TEST_CASE("jsonpath: Argo's own jsonpath cases", "[expr]") {
  json simple = json::parse(R"({"employee":{"name":"sonoo","salary":56000,"married":true}})");
  json array = json::parse(
      R"({"employees":[{"name":"Shyam","email":"shyamjaiswal@gmail.com","age":43},{"name":"Bob","email":"bob32@gmail.com","age":42},{"name":"Jai","email":"jai87@gmail.com","age":44}]})");
  CHECK(Query(simple, "$.employee.name") == "\"sonoo\"");
  CHECK(Query(array, "$.employees[1].name") == "\"Bob\"");
  CHECK(Query(array, "$.employees[?(@.name == \"Bob\")].name") == R"(["Bob"])");
  CHECK(Query(array, "$..[?(@.name.length == 4)].name") == "[]");
  CHECK(Query(array, "$..[0:4].name") == R"(["Shyam","Bob","Jai"])");
  CHECK(Query(array, "$.employees[0:1].name") == R"(["Shyam"])");
  CHECK(Query(array, "$.employees[-1].name") == "\"Jai\"");
  CHECK(Query(array, "$.employees[-2:].name") == R"(["Bob","Jai"])");
  CHECK(Query(array, "$.employees[1:].name") == R"(["Bob","Jai"])");
  CHECK(Query(array, "$.employees[:].name") == R"(["Shyam","Bob","Jai"])");
  CHECK(Query(array, "$..[2].name") == R"(["Jai"])");
  CHECK(Query(array, "$..[*].name") == R"(["Shyam","Bob","Jai"])");
  CHECK(Query(array, "$.employees[?(@.name==\"Bob\")].name") == R"(["Bob"])");
  CHECK(Query(array, "$.employees[0,2].name") == R"(["Shyam","Jai"])");
  CHECK(Query(array, "$.employees[?(@.age>42 && @.age<44)].name") == R"(["Shyam"])");
  CHECK(Query(array, "$.employees[?(@.age!=42)].name") == R"(["Shyam","Jai"])");
}

TEST_CASE("jsonpath: selectors", "[expr]") {
  json doc = json::parse(R"({"store": {"book": [{"t": "a", "p": 8.95, "isbn": "1"}, {"t": "b", "p": 12.99},
                                               {"t": "c", "p": 8.99, "isbn": "2"}, {"t": "d", "p": 22.99}],
                                      "bicycle": {"color": "red", "p": 19.95}},
                            "expensive": 10, "odd key": {"x": 1}})");
  CHECK(Query(doc, "$") == doc.dump());
  CHECK(Query(doc, "$.expensive") == "10");
  CHECK(Query(doc, "$['odd key'].x") == "1");
  CHECK(Query(doc, "$[\"odd key\"]['x']") == "1");
  CHECK(Query(doc, "$.store.bicycle.*") == R"(["red",19.95])");
  CHECK(Query(doc, "$.store.book[::2].t") == R"(["a","c"])");
  CHECK(Query(doc, "$.store.book[1:3].t") == R"(["b","c"])");
  CHECK(Query(doc, "$.store.book[5:9].t") == "[]");
  CHECK(Query(doc, "$.store.book[?(@.isbn)].t") == R"(["a","c"])");
  CHECK(Query(doc, "$.store.book[?(!@.isbn)].t") == R"(["b","d"])");
  CHECK(Query(doc, "$.store.book[?(@.p < $.expensive)].t") == R"(["a","c"])");
  CHECK(Query(doc, "$.store.book[?(@.p >= 12.99 || @.t == 'a')].t") == R"(["a","b","d"])");
  CHECK(Query(doc, "$.store.book[?((@.p > 9) && (@.p <= 13))].t") == R"(["b"])");
  CHECK(Query(doc, "$.store.book[?(@.t != 'a')].t") == R"(["b","c","d"])");
  CHECK(Query(doc, "$..p") == R"([19.95,8.95,12.99,8.99,22.99])");
  CHECK(Query(doc, "$.store['bicycle','missing'].color") == R"(["red"])");
  CHECK(Query(doc, "$..color") == R"(["red"])");
  CHECK(Query(doc, ".expensive") == "10");
}

TEST_CASE("jsonpath: errors", "[expr]") {
  json doc = json::parse(R"({"a": {"b": [1, 2]}, "s": "x"})");
  CHECK(QueryError(doc, "$.missing") == "key \"missing\" not found in JSONPath \"$.missing\"");
  CHECK(QueryError(doc, "$.a.b[5]") ==
        "index 5 out of range for array of length 2 in JSONPath \"$.a.b[5]\"");
  CHECK(QueryError(doc, "$.s.x") == "cannot get key \"x\" from string in JSONPath \"$.s.x\"");
  CHECK(QueryError(doc, "") == "invalid JSONPath \"\": empty path");
  CHECK(QueryError(doc, "a.b") == "invalid JSONPath \"a.b\": path must start with \"$\" at offset 0");
  CHECK(QueryError(doc, "$.a[") == "invalid JSONPath \"$.a[\": expected an index, a quoted key, \"*\" or a filter at offset 4");
  CHECK(QueryError(doc, "$.a[0") == "invalid JSONPath \"$.a[0\": missing \"]\" for \"[\" at offset 3");
  CHECK(QueryError(doc, "$.a['b") == "invalid JSONPath \"$.a['b\": unterminated string at offset 4");
  CHECK(QueryError(doc, "$.a[?(@.x ==)]") ==
        "invalid JSONPath \"$.a[?(@.x ==)]\": unexpected \")\" at offset 12");
  CHECK(QueryError(doc, "$.a[::0]") == "invalid JSONPath \"$.a[::0]\": slice step must be positive at offset 7");
  CHECK(QueryError(doc, "$.") == "invalid JSONPath \"$.\": expected a key name at offset 2");
  std::string deep = "$[?(" + std::string(300, '(') + "@.a" + std::string(300, ')') + ")]";
  CHECK(QueryError(doc, deep).ends_with("expression nested too deeply"));
}

TEST_CASE("jsonpath: ParseJson", "[expr]") {
  auto doc = ParseJson(R"({"a": [1, 2.5, "x"]})");
  REQUIRE(doc);
  CHECK(doc->dump() == R"({"a":[1,2.5,"x"]})");
  auto bad = ParseJson("{\"a\": ");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().starts_with("invalid JSON: parse error at line 1, column 7"));
  std::string deep(1000, '[');
  CHECK(ParseJson(deep).error() == "JSON nested too deeply");
  CHECK(ParseJson(R"(["[[[[", "]"])").has_value());
}

}  // namespace
}  // namespace kiln::expr

namespace kiln::expr {
namespace {

TEST_CASE("jsonpath: bounded work on hostile paths", "[expr]") {
  std::string chain = "$[?(@.a";
  for (int i = 0; i < 1000; ++i) chain += " && @.a";
  chain += ")]";
  CHECK(JsonPath(nlohmann::json::array(), chain).error().ends_with("expression nested too deeply"));
  nlohmann::json deep = 1;
  for (int i = 0; i < 1500; ++i) deep = nlohmann::json::array({std::move(deep)});
  auto result = JsonPath(deep, "$..*..*");
  REQUIRE_FALSE(result);
  CHECK(result.error() == "JSONPath \"$..*..*\" matches too many values");
}

}  // namespace
}  // namespace kiln::expr
