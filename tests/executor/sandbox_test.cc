#include "executor/sandbox.h"

#include <signal.h>

#include <catch2/catch.hpp>

#include <filesystem>

#include <fstream>

#include "executor/internal/bwrap.h"
#include "executor/process.h"
#include "tests/executor/test_util.h"

namespace kiln::executor {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::RunToEnd;
using testing::Spec;
using testing::TempDir;

// Sandbox tests need a working bwrap; without one they say so and pass.
#define REQUIRE_BWRAP()                              \
  if (!DetectBubblewrap().available) {               \
    WARN("skipped: " << DetectBubblewrap().warning); \
    return;                                          \
  }

TEST_CASE("bubblewrap detection: a missing bwrap gives one clear warning", "[executor]") {
  const BubblewrapStatus missing = ProbeBubblewrap("/nonexistent/bwrap");
  CHECK_FALSE(missing.available);
  CHECK(missing.warning ==
        "bubblewrap (bwrap) not found; steps run as plain host processes: no private /tmp, no "
        "volume binds, no PID namespace (install the Debian package bubblewrap to sandbox steps)");
  const BubblewrapStatus broken = ProbeBubblewrap("/bin/false");
  CHECK_FALSE(broken.available);
  CHECK(broken.warning.starts_with("/bin/false does not work here (it failed); steps run as"));
  // Cached: the same object every time.
  CHECK(&DetectBubblewrap() == &DetectBubblewrap());
  if (DetectBubblewrap().available) CHECK(DetectBubblewrap().warning.empty());
}

TEST_CASE("bwrap's own failures become start errors", "[executor]") {
  using internal::BwrapStartError;
  CHECK(BwrapStartError("bwrap: execvp foo: No such file or directory") ==
        "executable not found: foo");
  CHECK(BwrapStartError("bwrap: execvp ./x: Permission denied") == "permission denied: ./x");
  CHECK(BwrapStartError("bwrap: Can't find source path /v: No such file or directory") ==
        "sandbox setup failed: Can't find source path /v: No such file or directory");
  CHECK(BwrapStartError("some output of the step") == std::nullopt);
}

TEST_CASE("bwrap argv: read-only host, private /tmp, binds, PID namespace", "[executor]") {
  Sandbox sandbox;
  sandbox.tmp_dir_on_host = "/var/kiln/tmp/step1";
  sandbox.binds = {{"/host/vol", "/data", false}, {"/host/cfg", "/cfg", true}};
  const std::vector<std::string> argv =
      internal::BwrapArgv("/usr/bin/bwrap", sandbox, "/data", {"sh", "-c", "echo hi"});
  auto joined = [&] {
    std::string out;
    for (const std::string& a : argv) out += a + " ";
    return out;
  }();
  CHECK(argv.front() == "/usr/bin/bwrap");
  CHECK(joined.find("--ro-bind-try /usr /usr ") != std::string::npos);
  CHECK(joined.find(
            "--dev /dev --proc /proc --bind /var/kiln/tmp/step1 /tmp "
            "--bind /host/vol /data --ro-bind /host/cfg /cfg --remount-ro / "
            "--unshare-pid --die-with-parent --new-session --chdir /data -- sh -c echo hi ") !=
        std::string::npos);
  sandbox.tmp_dir_on_host.clear();
  CHECK(internal::BwrapArgv("bwrap", sandbox, "", {"true"}).size() > 0);
}

TEST_CASE("bwrap argv: a writable root, as a container's layer, with /mnt left empty", "[executor]") {
  Sandbox sandbox;
  TempDir root_parent;
  sandbox.root_dir_on_host = root_parent / "root";
  sandbox.binds = {{"/host/vol", "/mnt/vol", false}};
  const std::vector<std::string> argv = internal::BwrapArgv("bwrap", sandbox, "/", {"true"});
  std::string joined;
  for (const std::string& a : argv) joined += a + " ";
  CHECK(joined.starts_with("bwrap --bind " + sandbox.root_dir_on_host + " / "));
  CHECK(std::filesystem::is_directory(sandbox.root_dir_on_host));
  CHECK(joined.find("--ro-bind-try /usr /usr ") != std::string::npos);
  if (std::filesystem::exists("/mnt")) CHECK(joined.find("--dir /mnt ") != std::string::npos);
  CHECK(joined.find("--ro-bind-try /mnt ") == std::string::npos);
  CHECK(joined.find("--tmpfs /mnt ") == std::string::npos);  // the mount point is made in the writable root
  CHECK(joined.find("--bind /host/vol /mnt/vol ") != std::string::npos);
  CHECK(joined.find("--remount-ro") == std::string::npos);
}

TEST_CASE("bwrap argv: a mount point missing inside a host directory gets that directory as a tmpfs",
          "[executor]") {
  // /etc exists on every host, /etc/kiln-test-volume does not: bwrap could not create it inside the
  // read-only /etc, so /etc becomes a tmpfs holding the host's entries again.
  Sandbox sandbox;
  sandbox.binds = {{"/host/vol", "/etc/kiln-test-volume", false}};
  std::string joined;
  for (const std::string& a : internal::BwrapArgv("bwrap", sandbox, "", {"true"})) joined += a + " ";
  const size_t tmpfs = joined.find("--tmpfs /etc ");
  REQUIRE(tmpfs != std::string::npos);
  CHECK(joined.find("--ro-bind-try /etc/passwd /etc/passwd ", tmpfs) != std::string::npos);
  CHECK(joined.find("--bind /host/vol /etc/kiln-test-volume ", tmpfs) != std::string::npos);
}

TEST_CASE("a GPU step's sandbox binds the NVIDIA device nodes, and only those", "[executor][gpu]") {
  char tmpl[] = "/tmp/kiln-dev-XXXXXX";
  const std::string dev = ::mkdtemp(tmpl);
  for (const char* name : {"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-caps",
                           "nvidia-modeset", "nvidia-foo", "null", "nvidiaX"}) {
    std::ofstream(dev + "/" + name) << "";
  }
  const std::vector<std::string> nodes = NvidiaDeviceNodes(dev);
  std::filesystem::remove_all(dev);
  CHECK(nodes == std::vector<std::string>{dev + "/nvidia-caps", dev + "/nvidia-modeset", dev + "/nvidia-uvm",
                                          dev + "/nvidia-uvm-tools", dev + "/nvidia0", dev + "/nvidia1",
                                          dev + "/nvidiactl"});
  Sandbox sandbox;
  sandbox.devices = {"/dev/nvidiactl", "/dev/nvidia0"};
  std::string joined;
  for (const std::string& a : internal::BwrapArgv("bwrap", sandbox, "", {"true"})) joined += a + " ";
  CHECK(joined.find("--dev /dev --proc /proc --dev-bind-try /dev/nvidiactl /dev/nvidiactl "
                    "--dev-bind-try /dev/nvidia0 /dev/nvidia0 ") != std::string::npos);
}

TEST_CASE("sandboxed: a missing executable is 'executable not found'", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  ProcessSpec spec = Spec({"definitely-not-a-command"});
  spec.sandbox = Sandbox{};
  const ProcessResult result = RunToEnd(runner, io, spec);
  REQUIRE(result.start_error);
  CHECK(*result.start_error == "executable not found: definitely-not-a-command");
  CHECK(result.exit_code == 127);
}

TEST_CASE("sandboxed steps writing the same /tmp path do not collide", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  TempDir dir;
  int done = 0;
  for (const std::string name : {"a", "b"}) {
    ProcessSpec spec =
        Spec({"sh", "-c", "echo " + name + " > /tmp/hello_world.txt; cat /tmp/hello_world.txt"});
    spec.sandbox = Sandbox{};
    spec.sandbox->tmp_dir_on_host = dir / ("tmp-" + name);
    runner.Start(spec, [&, name](ProcessResult r) {
      CHECK(r.exit_code == 0);
      CHECK(r.stdout_text == name + "\n");
      ++done;
    });
  }
  io.run();
  CHECK(done == 2);
  CHECK(ReadFile(dir / "tmp-a/hello_world.txt") == "a\n");
  CHECK(ReadFile(dir / "tmp-b/hello_world.txt") == "b\n");
  CHECK_FALSE(std::filesystem::exists("/tmp/hello_world.txt.kiln-never-written"));
}

TEST_CASE("sandboxed: volumes are bound at their mountPaths, the rest is read-only", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  TempDir dir;
  std::filesystem::create_directories(dir / "vol");
  std::filesystem::create_directories(dir / "cfg");
  { std::ofstream(dir / "vol/in.txt") << "from host\n"; }
  { std::ofstream(dir / "cfg/c.txt") << "config\n"; }
  ProcessSpec spec = Spec({"sh", "-c",
                           "cat in.txt /kiln-cfg/c.txt; echo out > /kiln-vol/out.txt; "
                           "touch /kiln-cfg/x 2>/dev/null || echo cfg-ro; "
                           "touch /usr/kiln-x 2>/dev/null || echo usr-ro; echo $$"});
  spec.working_dir = "/kiln-vol";
  spec.sandbox = Sandbox{};
  spec.sandbox->binds = {{dir / "vol", "/kiln-vol", false}, {dir / "cfg", "/kiln-cfg", true}};
  const ProcessResult result = RunToEnd(runner, io, spec);
  CHECK_FALSE(result.start_error);
  // PID 2: the command runs under bwrap's init in a PID namespace of its own.
  CHECK(result.stdout_text == "from host\nconfig\ncfg-ro\nusr-ro\n2\n");
  CHECK(ReadFile(dir / "vol/out.txt") == "out\n");
}

TEST_CASE("sandboxed: a bad bind is a sandbox setup error", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  ProcessSpec spec = Spec({"true"});
  spec.sandbox = Sandbox{};
  spec.sandbox->binds = {{"/nonexistent/kiln-vol", "/kiln-vol", false}};
  const ProcessResult result = RunToEnd(runner, io, spec);
  REQUIRE(result.start_error);
  CHECK(result.start_error->starts_with("sandbox setup failed: "));
}

TEST_CASE("sandboxed: Terminate delivers SIGTERM to the command, not just bwrap", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  TempDir dir;
  testing::MakeFifo(dir / "ready");
  ProcessSpec spec =
      Spec({"sh", "-c", "trap 'exit 7' TERM; sleep 100 & echo ready > /tmp/ready; wait"});
  spec.sandbox = Sandbox{};
  spec.sandbox->tmp_dir_on_host = dir.path();
  std::optional<ProcessResult> result;
  const ProcessId id = runner.Start(spec, [&](ProcessResult r) { result = std::move(r); });
  REQUIRE(testing::ReadFifoLine(dir / "ready") == "ready");
  runner.Terminate(id, 5s);
  io.run();
  REQUIRE(result);
  CHECK(result->terminated);
  CHECK(result->exit_code == 7);  // the trap ran: the grace period was honoured
  CHECK(result->signal == 0);
  // The background sleep died with the namespace; it held stdout, so a survivor would have
  // delayed the end by the 2 s drain timeout.
  CHECK(result->duration < 1500ms);
}

TEST_CASE("sandboxed: a command ignoring SIGTERM is killed after the grace", "[executor]") {
  REQUIRE_BWRAP();
  boost::asio::io_context io;
  ProcessRunner runner(io);
  TempDir dir;
  testing::MakeFifo(dir / "ready");
  ProcessSpec spec = Spec({"sh", "-c", "trap '' TERM; echo ready > /tmp/ready; sleep 100"});
  spec.sandbox = Sandbox{};
  spec.sandbox->tmp_dir_on_host = dir.path();
  std::optional<ProcessResult> result;
  const ProcessId id = runner.Start(spec, [&](ProcessResult r) { result = std::move(r); });
  REQUIRE(testing::ReadFifoLine(dir / "ready") == "ready");
  const auto start = std::chrono::steady_clock::now();
  runner.Terminate(id, 300ms);
  io.run();
  REQUIRE(result);
  CHECK(result->terminated);
  CHECK(result->signal == SIGKILL);
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);
}

TEST_CASE("without bwrap, sandboxed specs run as plain processes", "[executor]") {
  boost::asio::io_context io;
  ProcessRunner runner(io, ProbeBubblewrap("/nonexistent/bwrap"));
  ProcessSpec spec = Spec({"sh", "-c", "echo $$"});
  spec.sandbox = Sandbox{};
  const ProcessResult result = RunToEnd(runner, io, spec);
  CHECK(result.exit_code == 0);
  CHECK(result.stdout_text != "2\n");
  spec = Spec({"definitely-not-a-command"});
  spec.sandbox = Sandbox{};
  CHECK(RunToEnd(runner, io, spec).start_error == "executable not found: definitely-not-a-command");
}

}  // namespace
}  // namespace kiln::executor
