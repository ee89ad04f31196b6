// Runs every corpus file with an expected_local_phase under `kiln run <flags>` and checks it
// reaches that phase. Shared by the local run (tests/cli/run_corpus_test.cc) and the run on
// kubesim (tests/kubernetes/kubesim_corpus_test.cc). Files labelled `duration` (long sleeps by
// design) or marked nondeterministic are excluded with the reason printed; files kiln cannot yet
// run to their phase are listed, with the reason, in the known-failures files and must still
// fail (so the lists shrink as features land).
#ifndef KILN_TESTS_CLI_CORPUS_RUN_H_
#define KILN_TESTS_CLI_CORPUS_RUN_H_

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::testing::corpus {

namespace fs = std::filesystem;

inline std::string Capture(const std::string& cmd, int* exit_code) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// The rows of the known-failures files under tests/data/ (later files win).
inline std::map<std::string, std::string> KnownFailures(const std::vector<std::string>& files) {
  std::map<std::string, std::string> out;
  for (const std::string& file : files) {
    std::ifstream in(std::string(KILN_SOURCE_DIR) + "/tests/data/" + file);
    REQUIRE(in);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      size_t tab = line.find('\t');
      out[line.substr(0, tab)] = tab == std::string::npos ? "" : line.substr(tab + 1);
    }
  }
  return out;
}

// `flags` go to every `kiln run`; `where` names the run in the summary ("locally").
// `prepare`, when given, is called with the data directory before the first run.
inline void RunCorpus(const std::string& flags, const std::vector<std::string>& known_failure_files,
                      const std::string& where, const std::function<void(const std::string& data_dir)>& prepare = {}) {
  const std::string corpus = KILN_CORPUS_DIR;
  std::ifstream tsv(corpus + "/expectations.tsv");
  REQUIRE(tsv);
  char tmpl[] = "/tmp/kiln-corpus-run-XXXXXX";
  std::string data = ::mkdtemp(tmpl);
  if (prepare) prepare(data);
  auto known = KnownFailures(known_failure_files);
  std::string line;
  std::getline(tsv, line);  // header
  size_t passed = 0, excluded = 0, known_failed = 0, total = 0;
  std::string mismatched;
  while (std::getline(tsv, line)) {
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string col;
    while (std::getline(ss, col, '\t')) cols.push_back(col);
    if (cols.size() < 4 || cols[3] == "-") continue;
    const std::string& file = cols[0];
    const std::string& label = cols[2];
    const std::string& want = cols[3];
    if (label == "duration") {
      std::printf("excluded %s: labelled 'duration' upstream (sleeps for minutes by design)\n", file.c_str());
      ++excluded;
      continue;
    }
    if (known.count(file) && known[file].starts_with("nondeterministic")) {
      std::printf("excluded %s: %s\n", file.c_str(), known[file].c_str());
      ++excluded;
      continue;
    }
    ++total;
    // Probabilistic by design (upstream's retry examples fail each attempt with probability 2/3,
    // so a run fails with probability (2/3)^11 ~ 1.2%): up to three runs, so a failure means a
    // bug, not bad luck (~1.5e-6).
    const bool probabilistic = known.count(file) && known[file].starts_with("probabilistic");
    int code = 0;
    std::string got;
    for (int run = 0; run < (probabilistic ? 3 : 1); ++run) {
      // Known failures may be ones that hang (an unenforced timeout): give them less time.
      std::string limit = known.count(file) && !probabilistic ? "20" : "120";
      std::string out = Capture("timeout " + limit + " " + std::string(KILN_BINARY) + " run " + flags + " -o json --data-dir " +
                                    data + " --templates " + corpus + " " + corpus + "/" + file + " 2>/dev/null",
                                &code);
      auto j = nlohmann::json::parse(out, nullptr, false);
      got = (!j.is_discarded() && j.contains("phase")) ? j["phase"].get<std::string>()
                                                        : "(no result, exit " + std::to_string(code) + ")";
      if (got == want) break;
      std::printf("run %d of %s: want %s, got %s\n", run + 1, file.c_str(), want.c_str(), got.c_str());
    }
    INFO(file << ": want " << want << ", got " << got);
    if (got != want && !known.count(file)) mismatched += " " + file;
    if (known.count(file) && !probabilistic) {
      // Fixed? Then remove it from run-known-failures.tsv. Stopped by the limit (124) still fails.
      CHECK_FALSE((got == want && code != 124));
      ++known_failed;
      continue;
    }
    CHECK(got == want);
    CHECK(code == (want == "Succeeded" ? 0 : 1));  // 124 would mean the test's limit stopped it
    if (got == want) ++passed;
  }
  fs::remove_all(data);
  std::printf("corpus run %s: %zu of %zu workflows reached their expected phase; %zu known failures "
              "(tests/data/); %zu excluded (duration, nondeterministic)\n",
              where.c_str(), passed, total, known_failed, excluded);
  if (!mismatched.empty()) std::printf("corpus run %s: did not reach their expected phase:%s\n", where.c_str(), mismatched.c_str());
  CHECK(passed + known_failed == total);
}

}  // namespace kiln::testing::corpus

#endif  // KILN_TESTS_CLI_CORPUS_RUN_H_
