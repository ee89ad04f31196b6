#include "dag/expr/template_string.h"

#include <catch2/catch.hpp>

namespace kiln::expr {
namespace {

TEST_CASE("FindTags finds simple tags with and without spaces", "[expr]") {
  auto tags = FindTags("echo {{inputs.parameters.x}} and {{ workflow.name }}!");
  REQUIRE(tags);
  REQUIRE(tags->size() == 2);
  CHECK((*tags)[0].offset == 5);
  CHECK((*tags)[0].length == 23);
  CHECK_FALSE((*tags)[0].is_expression);
  CHECK((*tags)[0].body == "inputs.parameters.x");
  CHECK((*tags)[1].offset == 33);
  CHECK((*tags)[1].length == 19);
  CHECK((*tags)[1].body == "workflow.name");
}

TEST_CASE("FindTags finds corpus tag forms", "[expr]") {
  for (const char* text :
       {"{{steps.*}}", "{{workflow.annotations.example.io/owner}}", "{{item}}",
        "{{steps.<stepname>.outputs.result}}", "{{ .token }}", "{{inputs.parameters.num-1}}",
        "{{workflow.creationTimestamp.RFC3339}}", "{{tasks.c-loop.outputs.parameters}}"}) {
    auto tags = FindTags(text);
    REQUIRE(tags);
    REQUIRE(tags->size() == 1);
    CHECK((*tags)[0].offset == 0);
    CHECK((*tags)[0].length == std::string_view(text).size());
  }
  auto tags = FindTags("{{ .token }}");
  CHECK((*tags)[0].body == ".token");
}

TEST_CASE("FindTags finds expression tags", "[expr]") {
  auto tags = FindTags("hello {{=asInt(inputs.parameters.foo) * 10}} @ {{= sprig.date('2006', x) }}");
  REQUIRE(tags);
  REQUIRE(tags->size() == 2);
  CHECK((*tags)[0].is_expression);
  CHECK((*tags)[0].body == "asInt(inputs.parameters.foo) * 10");
  CHECK((*tags)[0].offset == 6);
  CHECK((*tags)[0].length == 38);
  CHECK((*tags)[1].is_expression);
  CHECK((*tags)[1].body == "sprig.date('2006', x)");
}

TEST_CASE("FindTags respects quotes and braces inside expressions", "[expr]") {
  auto tags = FindTags("a {{={x: '}}', y: \"}}\", z: `}}`}}} b {{= {a: {b: 1}}}}");
  REQUIRE(tags);
  REQUIRE(tags->size() == 2);
  CHECK((*tags)[0].body == "{x: '}}', y: \"}}\", z: `}}`}");
  CHECK((*tags)[1].body == "{a: {b: 1}}");
  auto closure = FindTags("{{=toJson(filter([1, 3], {# > 1}))}}");
  REQUIRE(closure);
  REQUIRE(closure->size() == 1);
  CHECK((*closure)[0].body == "toJson(filter([1, 3], {# > 1}))");
  auto escaped = FindTags("{{= 'it\\'s }}' }}");
  REQUIRE(escaped);
  CHECK((*escaped)[0].body == "'it\\'s }}'");
}

TEST_CASE("FindTags multi-line expression", "[expr]") {
  auto tags = FindTags("{{=\n  map([1], {\n    toJson({a: #})\n  })[0]\n}}");
  REQUIRE(tags);
  REQUIRE(tags->size() == 1);
  CHECK((*tags)[0].body == "map([1], {\n    toJson({a: #})\n  })[0]");
}

TEST_CASE("FindTags reports unterminated tags", "[expr]") {
  auto simple = FindTags("ok {{a}} then {{b");
  REQUIRE_FALSE(simple);
  CHECK(simple.error().offset == 14);
  CHECK(simple.error().message == "unterminated \"{{\" at offset 14");
  auto expression = FindTags("{{= 'abc }}");
  REQUIRE_FALSE(expression);
  CHECK(expression.error().message == "unterminated \"{{\" at offset 0");
  auto brace = FindTags("{{= {a: 1 }}");
  REQUIRE_FALSE(brace);
  CHECK(brace.error().offset == 0);
}

TEST_CASE("FindTags with no tags and lone braces", "[expr]") {
  auto tags = FindTags("no tags } here { at all }}");
  REQUIRE(tags);
  CHECK(tags->empty());
  auto empty = FindTags("{{}}");
  REQUIRE(empty);
  CHECK((*empty)[0].body.empty());
}

TEST_CASE("Substitute replaces resolved tags and keeps unresolved ones", "[expr]") {
  auto out = Substitute("{{a}}-{{ b }}-{{=c + 1}}-{{d}}", [](const TemplateTag& tag) -> std::optional<std::string> {
    if (tag.body == "a") return "A";
    if (tag.body == "b") return "";
    if (tag.is_expression) return "<" + tag.body + ">";
    return std::nullopt;
  });
  REQUIRE(out);
  CHECK(*out == "A--<c + 1>-{{d}}");
  auto bad = Substitute("x {{", [](const TemplateTag&) { return std::optional<std::string>("y"); });
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "unterminated \"{{\" at offset 2");
}

}  // namespace
}  // namespace kiln::expr
