// Helpers for tests that run the real kiln binary (KILN_BINARY, set by tests/CMakeLists.txt) as a
// user would: its exit code and what it prints. Not thread-safe (Catch2 runs tests serially).
#ifndef KILN_TESTS_CLI_CLI_UTIL_H_
#define KILN_TESTS_CLI_CLI_UTIL_H_

#include <stdlib.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace kiln::testing {

// Runs `cmd` with /bin/sh; returns what it wrote to stdout (and to stderr when the command
// redirects it with 2>&1) and sets *exit_code (-1 when it did not exit normally).
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

struct KilnRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

// Runs `kiln <args>` (args as a shell would split them) with stderr merged into stdout;
// `env` ("NAME=value ...") is put before the command.
inline KilnRun Kiln(const std::string& args, const std::string& env = "") {
  KilnRun r;
  r.output = Capture(env + " " + std::string(KILN_BINARY) + " " + args + " 2>&1", &r.exit_code);
  return r;
}

// Runs `kiln <args>` and returns stdout only; stderr goes to the test's stderr.
inline KilnRun KilnStdout(const std::string& args) {
  KilnRun r;
  r.output = Capture(std::string(KILN_BINARY) + " " + args, &r.exit_code);
  return r;
}

// A temporary directory, removed with everything in it when the test ends.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/kiln-cli-test-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    REQUIRE(made != nullptr);
    path = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to path/name and returns the file's path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::filesystem::path p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string Path(const std::string& name) const { return (path / name).string(); }
};

// The bytes of the file at `path` ("" when it cannot be read).
inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace kiln::testing

#endif  // KILN_TESTS_CLI_CLI_UTIL_H_
