#include "dag/expr/depends.h"

#include <map>

#include <catch2/catch.hpp>

namespace kiln::expr {
namespace {

using Outcome = DependsExpr::Outcome;
using Phase = Outcome::Phase;

DependsExpr::Lookup Tasks(std::map<std::string, Outcome> tasks) {
  return [tasks = std::move(tasks)](std::string_view name) -> std::optional<Outcome> {
    auto it = tasks.find(std::string(name));
    if (it == tasks.end()) return std::nullopt;
    return it->second;
  };
}

Outcome Done(Phase phase) { return Outcome{phase}; }

std::string ParseError(std::string_view text) {
  auto parsed = ParseDepends(text);
  REQUIRE_FALSE(parsed);
  return parsed.error().message;
}

TEST_CASE("depends parses every corpus form", "[expr]") {
  struct Case {
    const char* text;
    std::vector<std::string> tasks;
    const char* canonical;
  };
  for (const Case& c : std::vector<Case>{
           {"A", {"A"}, "A"},
           {"B && C", {"B", "C"}, "B && C"},
           {"a && svc", {"a", "svc"}, "a && svc"},
           {"generate", {"generate"}, "generate"},
           {"producer.Succeeded || producer.Skipped", {"producer", "producer"},
            "producer.Succeeded || producer.Skipped"},
           {"c-loop", {"c-loop"}, "c-loop"},
           {"divide-by-2", {"divide-by-2"}, "divide-by-2"},
           {"inner-B && inner-C", {"inner-B", "inner-C"}, "inner-B && inner-C"},
           {"producer-1 && producer-2 && producer-3", {"producer-1", "producer-2", "producer-3"},
            "producer-1 && producer-2 && producer-3"},
           {"init_database", {"init_database"}, "init_database"},
           {"A && (B.Failed || !C)", {"A", "B", "C"}, "A && (B.Failed || !C)"},
           {"  ( (A) )  ", {"A"}, "A"},
           {"A&&B||C", {"A", "B", "C"}, "(A && B) || C"},
       }) {
    auto parsed = ParseDepends(c.text);
    REQUIRE(parsed);
    std::vector<std::string> tasks;
    for (const DependsRef& ref : parsed->refs()) tasks.push_back(ref.task);
    CHECK(tasks == c.tasks);
    CHECK(parsed->ToString() == c.canonical);
  }
}

TEST_CASE("depends refs carry result and offset", "[expr]") {
  auto parsed = ParseDepends("a.Succeeded || b.AnySucceeded && !c.AllFailed || d.Daemoned || e.Omitted || f.Errored");
  REQUIRE(parsed);
  const auto& refs = parsed->refs();
  REQUIRE(refs.size() == 6);
  CHECK(refs[0].result == TaskResult::kSucceeded);
  CHECK(refs[0].offset == 0);
  CHECK(refs[1].task == "b");
  CHECK(refs[1].result == TaskResult::kAnySucceeded);
  CHECK(refs[1].offset == 15);
  CHECK(refs[2].result == TaskResult::kAllFailed);
  CHECK(refs[2].offset == 34);
  CHECK(refs[3].result == TaskResult::kDaemoned);
  CHECK(refs[4].result == TaskResult::kOmitted);
  CHECK(refs[5].result == TaskResult::kErrored);
  auto bare = ParseDepends("x");
  CHECK_FALSE(bare->refs()[0].result.has_value());
  CHECK(TaskResultName(TaskResult::kAnySucceeded) == "AnySucceeded");
}

TEST_CASE("depends bare name means succeeded, skipped or daemoned", "[expr]") {
  auto parsed = ParseDepends("A");
  REQUIRE(parsed);
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kSucceeded)}})) == true);
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kSkipped)}})) == true);
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kFailed)}})) == false);
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kErrored)}})) == false);
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kOmitted)}})) == false);
  Outcome daemon{Phase::kFailed, true};
  CHECK(parsed->Evaluate(Tasks({{"A", daemon}})) == true);
}

TEST_CASE("depends evaluates results and operators", "[expr]") {
  auto parsed = ParseDepends("producer.Succeeded || producer.Skipped");
  REQUIRE(parsed);
  CHECK(parsed->Evaluate(Tasks({{"producer", Done(Phase::kSkipped)}})) == true);
  CHECK(parsed->Evaluate(Tasks({{"producer", Done(Phase::kFailed)}})) == false);

  auto mixed = ParseDepends("A && (B.Failed || !C.Succeeded)");
  REQUIRE(mixed);
  CHECK(mixed->Evaluate(Tasks({{"A", Done(Phase::kSucceeded)}, {"B", Done(Phase::kFailed)},
                               {"C", Done(Phase::kSucceeded)}})) == true);
  CHECK(mixed->Evaluate(Tasks({{"A", Done(Phase::kSucceeded)}, {"B", Done(Phase::kSucceeded)},
                               {"C", Done(Phase::kSucceeded)}})) == false);
  CHECK(mixed->Evaluate(Tasks({{"A", Done(Phase::kSucceeded)}, {"B", Done(Phase::kSucceeded)},
                               {"C", Done(Phase::kErrored)}})) == true);

  auto expanded = ParseDepends("loop.AnySucceeded && !other.AllFailed");
  Outcome loop{Phase::kFailed};
  loop.any_child_succeeded = true;
  Outcome other{Phase::kFailed};
  other.all_children_failed = true;
  CHECK(expanded->Evaluate(Tasks({{"loop", loop}, {"other", Done(Phase::kFailed)}})) == true);
  CHECK(expanded->Evaluate(Tasks({{"loop", loop}, {"other", other}})) == false);

  auto each = ParseDepends("a.Errored && b.Omitted && c.Daemoned");
  Outcome daemon{Phase::kSucceeded, true};
  CHECK(each->Evaluate(Tasks({{"a", Done(Phase::kErrored)}, {"b", Done(Phase::kOmitted)}, {"c", daemon}})) == true);
}

TEST_CASE("depends waits for unfinished tasks", "[expr]") {
  auto parsed = ParseDepends("A || B");
  REQUIRE(parsed);
  CHECK_FALSE(parsed->Evaluate(Tasks({{"A", Done(Phase::kSucceeded)}})).has_value());
  CHECK(parsed->Evaluate(Tasks({{"A", Done(Phase::kFailed)}, {"B", Done(Phase::kSucceeded)}})) == true);
}

TEST_CASE("depends reports syntax errors", "[expr]") {
  CHECK(ParseError("") == "empty depends expression");
  CHECK(ParseError("   ") == "empty depends expression");
  CHECK(ParseError("A.Succeded") ==
        "unknown task result \"Succeded\" at offset 2; expected one of Succeeded, Failed, Errored, "
        "Skipped, Omitted, Daemoned, AnySucceeded, AllFailed");
  CHECK(ParseError("A.") ==
        "expected a task result after \"A.\" at offset 2; expected one of Succeeded, Failed, Errored, "
        "Skipped, Omitted, Daemoned, AnySucceeded, AllFailed");
  CHECK(ParseError("A && B)") == "unexpected \")\" at offset 6");
  CHECK(ParseError("A &&") == "expected an operand after \"&&\" at offset 2");
  CHECK(ParseError("A || && B") == "expected an operand after \"||\" at offset 2");
  CHECK(ParseError("(A && B") == "missing \")\" for \"(\" at offset 0");
  CHECK(ParseError("A & B") == "unexpected \"&\" at offset 2 (did you mean \"&&\"?)");
  CHECK(ParseError("A | B") == "unexpected \"|\" at offset 2 (did you mean \"||\"?)");
  CHECK(ParseError("A B") == "unexpected \"B\" at offset 2");
  CHECK(ParseError("!") == "expected an operand after \"!\" at offset 0");
  CHECK(ParseError("()") == "empty parentheses at offset 0");
  CHECK(ParseError("A && $") == "unexpected \"$\" at offset 5");
  auto error = ParseDepends("A && B)");
  CHECK(error.error().offset == 6);
}

TEST_CASE("depends refuses deep nesting and handles long chains", "[expr]") {
  std::string deep(300, '(');
  deep += "A";
  deep += std::string(300, ')');
  CHECK(ParseError(deep) == "expression nested too deeply");
  std::string nots(1000, '!');
  CHECK(ParseError(nots + "A") == "expression nested too deeply");

  std::string chain = "t0";
  std::map<std::string, Outcome> tasks{{"t0", Done(Phase::kSucceeded)}};
  for (int i = 1; i < 20000; ++i) {
    chain += " && t" + std::to_string(i);
    tasks.emplace("t" + std::to_string(i), Done(Phase::kSucceeded));
  }
  auto parsed = ParseDepends(chain);
  REQUIRE(parsed);
  CHECK(parsed->refs().size() == 20000);
  CHECK(parsed->Evaluate(Tasks(tasks)) == true);
}

}  // namespace
}  // namespace kiln::expr
