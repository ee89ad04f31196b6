// Every file of the Argo example corpus must pass `kiln lint`, except those listed with a reason
// in tests/data/lint-rejects.tsv (which must then really be rejected, so the list stays honest).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "dag/lint.h"

namespace kiln::dag {

namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> ReadRejects() {
  std::map<std::string, std::string> rejects;
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/tests/data/lint-rejects.tsv");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    rejects[line.substr(0, tab)] = tab == std::string::npos ? "" : line.substr(tab + 1);
  }
  return rejects;
}

std::string Relative(const std::string& path) {
  return fs::relative(path, KILN_CORPUS_DIR).string();
}

}  // namespace

TEST_CASE("every corpus file passes kiln lint", "[dag][corpus]") {
  REQUIRE(fs::is_directory(KILN_CORPUS_DIR));
  LintResult result = Lint({KILN_CORPUS_DIR}, LintOptions{});
  std::map<std::string, std::string> rejects = ReadRejects();
  std::map<std::string, std::vector<std::string>> errors;
  for (const Diagnostic& d : result.diags.items()) {
    if (d.severity == Severity::kError) errors[Relative(d.file)].push_back(d.ToString());
  }
  size_t passed = 0;
  for (const std::string& file : result.files) {
    std::string rel = Relative(file);
    INFO(rel);
    if (rejects.count(rel)) {
      CHECK_FALSE(errors[rel].empty());  // a listed file that now passes should leave the list
      continue;
    }
    std::ostringstream all;
    for (const std::string& e : errors[rel]) all << e << "\n";
    INFO(all.str());
    CHECK(errors[rel].empty());
    if (errors[rel].empty()) ++passed;
  }
  // Every file named in expectations.tsv was linted.
  std::ifstream tsv(std::string(KILN_CORPUS_DIR) + "/expectations.tsv");
  std::string line;
  std::getline(tsv, line);
  std::set<std::string> linted;
  for (const std::string& f : result.files) linted.insert(Relative(f));
  size_t listed = 0;
  while (std::getline(tsv, line)) {
    std::string file = line.substr(0, line.find('\t'));
    ++listed;
    CHECK(linted.count(file) == 1);
  }
  std::printf("corpus: %zu of %zu files pass kiln lint (%zu listed as rejected, %zu in expectations.tsv)\n",
              passed, result.files.size(), rejects.size(), listed);
  CHECK(passed + rejects.size() == result.files.size());
}

}  // namespace kiln::dag
