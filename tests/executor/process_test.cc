#include "executor/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "executor/internal/step_log.h"
#include "tests/executor/test_util.h"

namespace kiln::executor {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::RunToEnd;
using testing::Spec;
using testing::TempDir;

// A runner that never sandboxes: the plain-process mode.
struct Plain {
  boost::asio::io_context io;
  ProcessRunner runner{io, BubblewrapStatus{}};
};

// "2026-11-23T21:05:03.123Z" (std::regex is avoided: GCC 12 warns inside it under ASan).
bool IsTimestamp(std::string_view text) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != kShape.size()) return false;
  for (size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(text[i]))
                         : text[i] != kShape[i]) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST_CASE("echo: stdout becomes the result and timestamped log lines", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessSpec spec = Spec({"sh", "-c", "echo hello; echo oops >&2; printf partial"});
  spec.log_path = dir / "step.log";
  const ProcessResult result = RunToEnd(p.runner, p.io, spec);
  CHECK(result.exit_code == 0);
  CHECK(result.signal == 0);
  CHECK_FALSE(result.terminated);
  CHECK_FALSE(result.start_error);
  CHECK(result.stdout_text == "hello\npartial");
  CHECK_FALSE(result.stdout_truncated);

  const std::vector<std::string> lines = Lines(ReadFile(spec.log_path));
  REQUIRE(lines.size() == 3);
  for (const std::string& line : lines) {
    CHECK(IsTimestamp(line.substr(0, 24)));
    CHECK((line.substr(24, 8) == " stdout " || line.substr(24, 8) == " stderr "));
  }
  std::vector<std::string> texts;
  for (const std::string& line : lines) texts.push_back(line.substr(25));
  // stdout and stderr are separate pipes: only the order within each stream is fixed.
  std::vector<std::string> stdout_lines;
  std::copy_if(texts.begin(), texts.end(), std::back_inserter(stdout_lines),
               [](const std::string& t) { return t.starts_with("stdout "); });
  CHECK(stdout_lines == std::vector<std::string>{"stdout hello", "stdout partial"});
  CHECK(std::count(texts.begin(), texts.end(), "stderr oops") == 1);
}

TEST_CASE("exit codes and signals are reported shell-style", "[executor]") {
  Plain p;
  ProcessResult result = RunToEnd(p.runner, p.io, Spec({"sh", "-c", "exit 3"}));
  CHECK(result.exit_code == 3);
  CHECK(result.signal == 0);
  result = RunToEnd(p.runner, p.io, Spec({"sh", "-c", "kill -KILL $$"}));
  CHECK(result.exit_code == 128 + SIGKILL);
  CHECK(result.signal == SIGKILL);
  CHECK_FALSE(result.terminated);
}

TEST_CASE("the environment is exactly the one given", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessSpec spec = Spec({"sh", "-c", "echo \"$FOO|$HOME|$(pwd)\""});
  spec.env["FOO"] = "bar";
  spec.working_dir = dir.path();
  CHECK(RunToEnd(p.runner, p.io, spec).stdout_text == "bar||" + dir.path() + "\n");
}

TEST_CASE("start failures are reported as start_error", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessResult result = RunToEnd(p.runner, p.io, Spec({"definitely-not-a-command"}));
  REQUIRE(result.start_error);
  CHECK(*result.start_error == "executable not found: definitely-not-a-command");
  CHECK(result.exit_code == 127);

  ProcessSpec spec = Spec({"./x"});
  spec.working_dir = dir.path();
  { std::ofstream(dir / "x") << "#!/bin/sh\necho hi\n"; }
  ::chmod((dir / "x").c_str(), 0644);
  result = RunToEnd(p.runner, p.io, spec);
  REQUIRE(result.start_error);
  CHECK(*result.start_error == "permission denied: ./x");
  CHECK(result.exit_code == 126);

  ::chmod((dir / "x").c_str(), 0755);
  CHECK(RunToEnd(p.runner, p.io, spec).stdout_text == "hi\n");

  spec.working_dir = dir / "missing";
  result = RunToEnd(p.runner, p.io, spec);
  REQUIRE(result.start_error);
  CHECK(*result.start_error == "working directory not found: " + dir / "missing");

  result = RunToEnd(p.runner, p.io, Spec({}));
  CHECK(result.start_error == "no command to run");

  spec = Spec({"true"});
  spec.log_path = dir / "no/such/dir/step.log";
  result = RunToEnd(p.runner, p.io, spec);
  REQUIRE(result.start_error);
  CHECK(result.start_error->starts_with("cannot open log file " + dir / "no/such/dir/step.log"));
}

TEST_CASE("a missing executable is reported in the log too", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessSpec spec = Spec({"definitely-not-a-command"});
  spec.log_path = dir / "step.log";
  RunToEnd(p.runner, p.io, spec);
  CHECK(
      ReadFile(spec.log_path).ends_with(" kiln executable not found: definitely-not-a-command\n"));
}

TEST_CASE("Terminate kills the whole process tree within the grace period", "[executor]") {
  Plain p;
  TempDir dir;
  const std::string fifo = dir / "ready";
  testing::MakeFifo(fifo);
  std::optional<ProcessResult> result;
  const ProcessId id =
      p.runner.Start(Spec({"sh", "-c", "sleep 100 & echo $! > " + fifo + "; sleep 100"}),
                     [&](ProcessResult r) { result = std::move(r); });
  const pid_t grandchild = std::stoi(testing::ReadFifoLine(fifo));
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0));
  REQUIRE(pidfd >= 0);
  const auto start = std::chrono::steady_clock::now();
  p.runner.Terminate(id, 5s);
  p.io.run();
  REQUIRE(result);
  CHECK(result->terminated);
  CHECK(result->signal == SIGTERM);
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  // The grandchild has exited: its pidfd polls readable (it may stay a zombie of init briefly).
  pollfd pfd{pidfd, POLLIN, 0};
  CHECK(::poll(&pfd, 1, 2000) == 1);
  ::close(pidfd);
  CHECK(p.runner.running() == 0);
}

TEST_CASE("a child ignoring SIGTERM gets SIGKILL after the grace period", "[executor]") {
  Plain p;
  TempDir dir;
  const std::string fifo = dir / "ready";
  testing::MakeFifo(fifo);
  std::optional<ProcessResult> result;
  const ProcessId id =
      p.runner.Start(Spec({"sh", "-c", "trap '' TERM; echo ready > " + fifo + "; sleep 100"}),
                     [&](ProcessResult r) { result = std::move(r); });
  REQUIRE(testing::ReadFifoLine(fifo) == "ready");
  const auto start = std::chrono::steady_clock::now();
  p.runner.Terminate(id, 300ms);
  p.io.run();
  REQUIRE(result);
  CHECK(result->terminated);
  CHECK(result->signal == SIGKILL);
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
}

TEST_CASE("Terminate of an ended or unknown process is a no-op", "[executor]") {
  Plain p;
  p.runner.Terminate(12345, 0ms);
  std::optional<ProcessResult> result;
  const ProcessId id = p.runner.Start(Spec({"true"}), [&](ProcessResult r) { result = r; });
  p.io.run();
  p.runner.Terminate(id, 0ms);
  REQUIRE(result);
  CHECK_FALSE(result->terminated);
}

TEST_CASE("stdout is kept up to the result cap", "[executor]") {
  Plain p;
  ProcessResult result =
      RunToEnd(p.runner, p.io, Spec({"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a"}));
  CHECK(result.stdout_truncated);
  CHECK(result.stdout_text.size() == kDefaultResultCapBytes);
  CHECK(result.stdout_text.find_first_not_of('a') == std::string::npos);

  result = RunToEnd(p.runner, p.io, Spec({"sh", "-c", "head -c 262144 /dev/zero"}));
  CHECK_FALSE(result.stdout_truncated);
  CHECK(result.stdout_text.size() == 262144);
}

long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

TEST_CASE("a step printing 200 MB keeps memory and the log bounded", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessSpec spec = Spec({"sh", "-c", "yes | head -c 200000000"});
  spec.log_path = dir / "step.log";
  spec.log_cap_bytes = 1 << 20;
  const long before = ResidentBytes();
  const ProcessResult result = RunToEnd(p.runner, p.io, spec);
  const long growth = ResidentBytes() - before;
  CHECK(result.exit_code == 0);
  CHECK(result.stdout_truncated);
  CHECK(result.stdout_text.size() == kDefaultResultCapBytes);
  CHECK(growth < (16 << 20));
  const std::string log = ReadFile(spec.log_path);
  CHECK(log.size() <= (1u << 20) + 200);
  CHECK(log.size() > (1u << 20) - 100);
  const std::vector<std::string> lines = Lines(log);
  REQUIRE(lines.size() > 2);
  CHECK(lines[0].ends_with(" stdout y"));
  CHECK(lines.back().ends_with(
      " kiln log truncated: it reached its cap of 1048576 bytes; further output is discarded"));
}

TEST_CASE("long lines are split in the log, not buffered without bound", "[executor]") {
  Plain p;
  TempDir dir;
  ProcessSpec spec = Spec({"sh", "-c", "head -c 40000 /dev/zero | tr '\\0' b"});
  spec.log_path = dir / "step.log";
  RunToEnd(p.runner, p.io, spec);
  const std::vector<std::string> lines = Lines(ReadFile(spec.log_path));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].size() == 24 + 8 + internal::StepLog::kMaxLineBytes);
  CHECK(lines[2].size() == 24 + 8 + (40000 - 2 * internal::StepLog::kMaxLineBytes));
}

TEST_CASE("timestamps are UTC with milliseconds", "[executor]") {
  using namespace std::chrono;
  const sys_time<milliseconds> t = sys_days{2026y / 11 / 23} + 21h + 5min + 3s + 123ms;
  CHECK(internal::FormatTimestamp(t) == "2026-11-23T21:05:03.123Z");
}

TEST_CASE("many processes run concurrently on one io_context", "[executor]") {
  Plain p;
  int done = 0;
  for (int i = 0; i < 8; ++i) {
    p.runner.Start(Spec({"sh", "-c", "echo " + std::to_string(i)}), [&, i](ProcessResult r) {
      CHECK(r.stdout_text == std::to_string(i) + "\n");
      ++done;
    });
  }
  CHECK(p.runner.running() == 8);
  p.io.run();
  CHECK(done == 8);
}

TEST_CASE("destroying the runner kills what is still running", "[executor]") {
  TempDir dir;
  const std::string fifo = dir / "ready";
  testing::MakeFifo(fifo);
  boost::asio::io_context io;
  int pidfd = -1;
  {
    ProcessRunner runner(io, BubblewrapStatus{});
    runner.Start(Spec({"sh", "-c", "echo $$ > " + fifo + "; sleep 100"}),
                 [](ProcessResult) { FAIL("callback after destruction"); });
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, std::stoi(testing::ReadFifoLine(fifo)), 0));
  }
  io.run();
  REQUIRE(pidfd >= 0);
  pollfd pfd{pidfd, POLLIN, 0};
  CHECK(::poll(&pfd, 1, 0) == 1);
  ::close(pidfd);
}

}  // namespace
}  // namespace kiln::executor
