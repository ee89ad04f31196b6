// `kiln run` on a terminal (a pseudo-terminal here): the live tree, redrawn in place, stays on
// screen above the summary; --no-tree and -o json print no escape sequences.
#include <errno.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/cli_util.h"

namespace kiln::testing {
namespace {

const char* kWorkflow = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: tree-wf}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: hello, template: echo}
    - - {name: a, template: echo}
      - {name: b, template: echo}
  - name: echo
    container: {image: busybox, command: [sh, -c, "echo hi"]}
)";

struct PtyRun {
  int exit_code = -1;
  std::string output;  // what the terminal received, "\r\n" line ends as the tty writes them
};

// Runs `kiln run <args>` with a 100x40 pseudo-terminal as its stdin, stdout and stderr, and the
// environment variables `env` ("NAME=value") set (TERM=xterm, and no LANG, LC_*, NO_COLOR unless
// given). Reads until the terminal is closed (kiln and its steps exited).
PtyRun KilnOnTerminal(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::fflush(stdout);  // or the child would flush Catch's buffered output a second time
  int master = -1;
  struct winsize size {};
  size.ws_row = 40;
  size.ws_col = 100;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (const char* name : {"LANG", "LC_ALL", "LC_CTYPE", "NO_COLOR"}) ::unsetenv(name);
    ::setenv("TERM", "xterm", 1);
    for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv{const_cast<char*>("kiln"), const_cast<char*>("run")};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(KILN_BINARY, argv.data());
    ::_exit(127);
  }
  PtyRun r;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      r.output.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO: the last process holding the terminal closed it
    }
  }
  ::close(master);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The lines of `text` ("\r\n" or "\n" ends), durations ("0.0s", "1m02s") at line ends removed.
std::vector<std::string> LinesWithoutDurations(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  static const std::regex kDuration(R"(\s+[0-9.hms]+s$|\s+[0-9]+h[0-9]+m$)");
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::regex_replace(line, kDuration, ""));
  }
  return lines;
}

TEST_CASE("kiln run on a terminal redraws the tree in place and leaves the final one", "[cli]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", kWorkflow);
  PtyRun r = KilnOnTerminal({"--no-sandbox", "--data-dir", d.Path("data"), file},
                            {"LANG=C.UTF-8", "NO_COLOR=1"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  // At least two frames: the first on the first transition, the final one over the last.
  std::smatch erase;
  REQUIRE(std::regex_search(r.output, erase, std::regex("\r\x1b\\[[0-9]+A\x1b\\[J")));
  CHECK_FALSE(std::regex_search(r.output, std::regex("\x1b\\[[0-9;]*m")));  // NO_COLOR: no colours

  // The final frame: after the last erase, up to the summary.
  size_t last = r.output.rfind("\x1b[J");
  size_t summary = r.output.find("\r\nSTEP ", last);
  REQUIRE(summary != std::string::npos);
  std::vector<std::string> tree =
      LinesWithoutDurations(r.output.substr(last + 3, summary - last - 3));
  REQUIRE(tree.size() == 6);
  CHECK(tree[0] == "tree-wf  Succeeded");
  CHECK(tree[1] == "✔ tree-wf");
  CHECK(tree[2] == "├─ ✔ hello");
  CHECK(tree[3] == "└─ ✔ [1]");
  // a and b run at once: either may have started first.
  bool ab = tree[4] == "   ├─ ✔ a" && tree[5] == "   └─ ✔ b";
  bool ba = tree[4] == "   ├─ ✔ b" && tree[5] == "   └─ ✔ a";
  CHECK((ab || ba));

  // The summary follows, as off a terminal.
  CHECK(r.output.find("workflow tree-wf Succeeded", summary) != std::string::npos);
}

TEST_CASE("kiln run's tree is ASCII outside a UTF-8 locale and coloured unless NO_COLOR", "[cli]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", kWorkflow);
  PtyRun r = KilnOnTerminal({"--no-sandbox", "--data-dir", d.Path("data"), file}, {"LANG=C"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("|- \x1b[32m+\x1b[0m hello") != std::string::npos);
  CHECK(r.output.find("tree-wf  \x1b[32mSucceeded\x1b[0m") != std::string::npos);
  CHECK(r.output.find("✔") == std::string::npos);
}

TEST_CASE("kiln run --no-tree and -o json print no escape sequences on a terminal", "[cli]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", kWorkflow);
  PtyRun lines = KilnOnTerminal({"--no-tree", "--no-sandbox", "--data-dir", d.Path("data"), file},
                                {"LANG=C.UTF-8"});
  INFO(lines.output);
  REQUIRE(lines.exit_code == 0);
  CHECK(lines.output.find('\x1b') == std::string::npos);
  CHECK(std::regex_search(lines.output, std::regex(R"(tree-wf\[0\]\.hello +Succeeded)")));

  PtyRun json = KilnOnTerminal({"-o", "json", "--no-sandbox", "--data-dir", d.Path("json"), file},
                               {"LANG=C.UTF-8"});
  INFO(json.output);
  REQUIRE(json.exit_code == 0);
  CHECK(json.output.find('\x1b') == std::string::npos);
  CHECK(json.output.find("\"phase\": \"Succeeded\"") != std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
