// Label selectors (store/label_selector.h): what each operator parses to, the errors, and
// matching in memory. What the stores select with them is tested in store_labels_test.cc.
#include "store/label_selector.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

namespace kiln::store {
namespace {

using Op = LabelRequirement::Op;

std::vector<LabelRequirement> Parse(const std::string& selector) {
  auto parsed = ParseLabelSelector(selector);
  if (!parsed) FAIL(parsed.error().ToString());
  return *parsed;
}

std::string ErrorOf(const std::string& selector) {
  auto parsed = ParseLabelSelector(selector);
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().code() == Code::kInvalidArgument);
  return parsed.error().message();
}

TEST_CASE("label selectors parse each operator", "[store]") {
  CHECK(Parse("").empty());
  CHECK(Parse("  ").empty());
  CHECK(Parse("app=web") == std::vector<LabelRequirement>{{"app", Op::kEquals, {"web"}}});
  CHECK(Parse("app==web") == std::vector<LabelRequirement>{{"app", Op::kEquals, {"web"}}});
  CHECK(Parse("app!=web") == std::vector<LabelRequirement>{{"app", Op::kNotEquals, {"web"}}});
  CHECK(Parse("app") == std::vector<LabelRequirement>{{"app", Op::kExists, {}}});
  CHECK(Parse("!app") == std::vector<LabelRequirement>{{"app", Op::kDoesNotExist, {}}});
  CHECK(Parse("env in (prod,dev)") ==
        std::vector<LabelRequirement>{{"env", Op::kIn, {"dev", "prod"}}});
  CHECK(Parse("env notin (prod)") == std::vector<LabelRequirement>{{"env", Op::kNotIn, {"prod"}}});
  // As in Kubernetes: "k=" asks for the empty value, and so does an empty item of a set.
  CHECK(Parse("app=") == std::vector<LabelRequirement>{{"app", Op::kEquals, {""}}});
  CHECK(Parse("app!=") == std::vector<LabelRequirement>{{"app", Op::kNotEquals, {""}}});
  CHECK(Parse("env in (a,)") == std::vector<LabelRequirement>{{"env", Op::kIn, {"", "a"}}});
}

TEST_CASE("label selectors take several requirements, whitespace and prefixed keys", "[store]") {
  CHECK(Parse(" app = web ,  env in ( prod , dev, prod ) ,!gpu,tier notin(a) ") ==
        std::vector<LabelRequirement>{{"app", Op::kEquals, {"web"}},
                                      {"env", Op::kIn, {"dev", "prod"}},
                                      {"gpu", Op::kDoesNotExist, {}},
                                      {"tier", Op::kNotIn, {"a"}}});
  CHECK(
      Parse("workflows.argoproj.io/phase!=Succeeded,kiln.dev/team") ==
      std::vector<LabelRequirement>{{"workflows.argoproj.io/phase", Op::kNotEquals, {"Succeeded"}},
                                    {"kiln.dev/team", Op::kExists, {}}});
  // "in" and "notin" are words only where an operator goes.
  CHECK(Parse("in in (in),notin=notin") ==
        std::vector<LabelRequirement>{{"in", Op::kIn, {"in"}}, {"notin", Op::kEquals, {"notin"}}});
  CHECK(Parse("a.b_c-D=1.0_x-Y") ==
        std::vector<LabelRequirement>{{"a.b_c-D", Op::kEquals, {"1.0_x-Y"}}});
  // Words are taken as written: checking them against Kubernetes' rules is the caller's.
  CHECK(Parse("Kiln.dev/a-/b=x@y;'z") ==
        std::vector<LabelRequirement>{{"Kiln.dev/a-/b", Op::kEquals, {"x@y;'z"}}});
  CHECK(Parse("ключ in (значение)") ==
        std::vector<LabelRequirement>{{"ключ", Op::kIn, {"значение"}}});
}

TEST_CASE("label selectors that do not parse name the selector and the requirement", "[store]") {
  CHECK(ErrorOf("a b") ==
        "label selector \"a b\": requirement \"a b\": unexpected \"b\" after key \"a\"; "
        "expected =, ==, !=, in or notin");
  CHECK(ErrorOf("a=b,c d") ==
        "label selector \"a=b,c d\": requirement \"c d\": unexpected \"d\" after key \"c\"; "
        "expected =, ==, !=, in or notin");
  CHECK(ErrorOf("a=b,") ==
        "label selector \"a=b,\": requirement \"\": empty; write key=value, key!=value, key, "
        "!key, key in (v1,v2) or key notin (v1)");
  CHECK(ErrorOf("a,,b") ==
        "label selector \"a,,b\": requirement \"\": empty; write key=value, key!=value, key, "
        "!key, key in (v1,v2) or key notin (v1)");
  CHECK(ErrorOf("a in (x,b") ==
        "label selector \"a in (x,b\": requirement \"a in (x,b\": missing \")\" after the values");
  CHECK(ErrorOf("a in ()") ==
        "label selector \"a in ()\": requirement \"a in ()\": no values in \"()\"; in needs one "
        "or more");
  CHECK(ErrorOf("a notin ( )") ==
        "label selector \"a notin ( )\": requirement \"a notin ( )\": no values in \"()\"; notin "
        "needs one or more");
  CHECK(ErrorOf("a in x") ==
        "label selector \"a in x\": requirement \"a in x\": expected \"(\" after \"in\"");
  CHECK(ErrorOf("a in (x y)") ==
        "label selector \"a in (x y)\": requirement \"a in (x y)\": expected \",\" or \")\" "
        "after \"x\"");
  CHECK(ErrorOf("a in (x=y)") ==
        "label selector \"a in (x=y)\": requirement \"a in (x=y)\": unexpected \"=\" among the "
        "values");
  CHECK(ErrorOf("a in (x))") ==
        "label selector \"a in (x))\": requirement \"a in (x))\": unexpected \")\"; separate "
        "requirements with \",\"");
  CHECK(ErrorOf("a>1") ==
        "label selector \"a>1\": requirement \"a>1\": the operator \">\" is not supported; use "
        "=, ==, !=, in or notin");
  CHECK(ErrorOf(std::string("a=b\0c", 5)) ==
        std::string("label selector \"a=b\0c\" is not UTF-8 text, or holds a NUL byte", 61));
  CHECK(ErrorOf("a=\xff") == "label selector \"a=\xff\" is not UTF-8 text, or holds a NUL byte");
  CHECK(ErrorOf("<a") == "label selector \"<a\": requirement \"<a\": expected a key, found \"<\"");
  CHECK(ErrorOf("!") == "label selector \"!\": requirement \"!\": expected a key after \"!\"");
  CHECK(ErrorOf("!a=b") ==
        "label selector \"!a=b\": requirement \"!a=b\": unexpected \"=\"; separate requirements "
        "with \",\"");
  CHECK(ErrorOf("=x") == "label selector \"=x\": requirement \"=x\": expected a key, found \"=\"");
  CHECK(ErrorOf("a=b=c") ==
        "label selector \"a=b=c\": requirement \"a=b=c\": unexpected \"=\"; separate "
        "requirements with \",\"");
  CHECK(ErrorOf("a==!b") ==
        "label selector \"a==!b\": requirement \"a==!b\": expected a value after \"==\", found "
        "\"!\"");
}

TEST_CASE("label selectors match labels as Kubernetes does", "[store]") {
  auto matches = [](const std::string& selector, const std::map<std::string, std::string>& labels) {
    return MatchesLabels(Parse(selector), labels);
  };
  std::map<std::string, std::string> web = {{"app", "web"}, {"env", "prod"}};
  std::map<std::string, std::string> none;
  CHECK(matches("", none));
  CHECK(matches("app=web", web));
  CHECK_FALSE(matches("app=web", none));
  CHECK_FALSE(matches("app!=web", web));
  CHECK(matches("app!=db", web));
  CHECK(matches("app!=web", none));  // absent counts as "not web"
  CHECK(matches("app", web));
  CHECK_FALSE(matches("app", none));
  CHECK(matches("!app", none));
  CHECK_FALSE(matches("!app", web));
  CHECK(matches("env in (dev,prod)", web));
  CHECK_FALSE(matches("env in (dev,prod)", none));
  CHECK_FALSE(matches("env notin (dev,prod)", web));
  CHECK(matches("env notin (dev)", web));
  CHECK(matches("env notin (dev)", none));
  CHECK(matches("app=web,env=prod", web));
  CHECK_FALSE(matches("app=web,env=dev", web));
  CHECK_FALSE(matches("app=", web));
  CHECK(matches("app=", {{"app", ""}}));
}

}  // namespace
}  // namespace kiln::store
