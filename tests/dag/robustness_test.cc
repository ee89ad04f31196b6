// Hostile and mutated input never crashes, hangs or exhausts memory: it gets a clear error or
// parses. Run under ASan+UBSan in CI (scripts/test.sh).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dag/graph.h"
#include "dag/parse.h"
#include "dag/validate.h"

namespace kiln::dag {

namespace fs = std::filesystem;

namespace {

size_t ParseAndValidate(const std::string& text, Diagnostics* out = nullptr) {
  Diagnostics diags;
  std::vector<Manifest> ms = ParseManifests("m.yaml", text, ParseOptions{}, diags);
  TemplateLibrary lib;
  for (const Manifest& m : ms) lib.Add(m);
  for (const Manifest& m : ms) Validate(m, lib, diags);
  // Expansion must also cope with whatever validation let through (or refused).
  for (const Manifest& m : ms) {
    if (m.kind == ManifestKind::kWorkflow) (void)ExpandWorkflow(m, lib);
  }
  if (out) *out = diags;
  return diags.error_count();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

std::string FirstError(const Diagnostics& d) {
  for (const Diagnostic& x : d.items()) {
    if (x.severity == Severity::kError) return x.ToString();
  }
  return "";
}

}  // namespace

TEST_CASE("mutated corpus files never crash the parser or validator", "[dag][robustness]") {
  std::mt19937 rng(20261123);  // fixed seed: the same mutations every run
  static const char* kReplacements[] = {"[1, {a: b}]", "{x: 1}", "\"str\"", "12", "null", "~", "*nope",
                                        "[[[]]]", "{{inputs.parameters.x}}", "-1e999", "\"{{=1+}}\"", "true"};
  size_t files = 0, mutants = 0;
  for (const auto& entry : fs::recursive_directory_iterator(KILN_CORPUS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string text = buf.str();
    const std::vector<std::string> lines = Lines(text);
    if (lines.empty()) continue;
    ++files;
    for (int k = 0; k < 24; ++k) {
      std::vector<std::string> m = lines;
      size_t i = rng() % m.size();
      std::string mutated;
      switch (k % 6) {
        case 0: m.erase(m.begin() + i); mutated = Join(m); break;               // field dropped
        case 1: m.insert(m.begin() + i, m[i]); mutated = Join(m); break;        // field duplicated
        case 2: {                                                               // value retyped
          size_t colon = m[i].find(':');
          if (colon != std::string::npos) m[i] = m[i].substr(0, colon + 1) + " " + kReplacements[rng() % 12];
          mutated = Join(m);
          break;
        }
        case 3: mutated = text.substr(0, rng() % text.size()); break;           // truncated
        case 4: m[i] = "  " + m[i]; mutated = Join(m); break;                    // re-indented
        case 5: {                                                               // random bytes
          mutated = text;
          for (int b = 0; b < 4; ++b) mutated[rng() % mutated.size()] = static_cast<char>(rng() % 256);
          break;
        }
      }
      ParseAndValidate(mutated);
      ++mutants;
    }
  }
  INFO(files << " files, " << mutants << " mutants");
  CHECK(files > 100);
  CHECK(mutants == files * 24);
}

TEST_CASE("a file over the size limit is refused before parsing", "[dag][robustness]") {
  Diagnostics d;
  ParseOptions opts;
  opts.max_file_bytes = 1024;
  ParseManifests("big.yaml", std::string(2048, '#'), opts, d);
  CHECK(FirstError(d) == "big.yaml: file is 2048 bytes, over the limit of 1024 bytes; split it or raise --max-file-size");
}

TEST_CASE("deep nesting is refused, not a stack overflow", "[dag][robustness]") {
  Diagnostics d;
  std::string deep = "a: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  CHECK(ParseAndValidate(deep, &d) == 1);
  CHECK(FirstError(d).find("YAML") != std::string::npos);
  std::string nested = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec:\n  x: " + std::string(500, '[') +
                       std::string(500, ']') + "\n";
  Diagnostics d2;
  CHECK(ParseAndValidate(nested, &d2) == 1);
  CHECK(FirstError(d2) == "m.yaml:4:104: YAML nesting deeper than 100 levels; refusing the document");
}

TEST_CASE("a YAML alias bomb is refused within the node budget", "[dag][robustness]") {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
    prev = c;
  }
  Diagnostics d;
  CHECK(ParseAndValidate(bomb, &d) == 1);
  CHECK(FirstError(d).find("YAML nodes once aliases are expanded") != std::string::npos);
}

TEST_CASE("a 100k-element list parses", "[dag][robustness]") {
  std::string y = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: big}\nspec:\n"
                  "  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - name: s\n"
                  "        template: echo\n        withItems:\n";
  for (int i = 0; i < 100000; ++i) y += "        - " + std::to_string(i) + "\n";
  y += "  - name: echo\n    container: {image: busybox, command: [echo, \"{{inputs.parameters.x}}\"]}\n"
       "    inputs: {parameters: [{name: x, default: a}]}\n";
  Diagnostics d;
  CHECK(ParseAndValidate(y, &d) == 0);
}

TEST_CASE("duplicate keys are errors, as in Go's YAML reader", "[dag][robustness]") {
  Diagnostics d;
  ParseAndValidate("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nkind: Workflow\n", &d);
  CHECK(FirstError(d) == "m.yaml:3:1: duplicate key \"kind\" in a map; each key may appear once");
}

}  // namespace kiln::dag

namespace kiln::dag {

// Found by the mutation test: a WorkflowEventBinding whose spec is not a map crashed validation.
TEST_CASE("an event binding with a malformed spec is an error, not a crash", "[dag][robustness]") {
  Diagnostics d;
  CHECK(ParseAndValidate("apiVersion: argoproj.io/v1alpha1\nkind: WorkflowEventBinding\n"
                         "metadata: {name: e}\nspec: 3\n", &d) == 1);
  CHECK(FirstError(d) == "m.yaml:4:7: spec: expected a map, got a number");
}

}  // namespace kiln::dag
