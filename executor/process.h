// Running steps as host processes, optionally inside a bubblewrap sandbox, on a Boost.Asio
// io_context: pipes and exits are watched asynchronously, logs go to a file with a size cap.
//
// Thread-safety: a ProcessRunner is NOT thread-safe. Construct it, call Start and Terminate, and
// destroy it on the thread that runs its io_context (post to the io_context from other threads).
// Callbacks run on that thread too.
#ifndef KILN_EXECUTOR_PROCESS_H_
#define KILN_EXECUTOR_PROCESS_H_

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "executor/sandbox.h"

namespace kiln::executor {

inline constexpr uint64_t kDefaultLogCapBytes = 64ull << 20;  // 64 MiB
inline constexpr size_t kDefaultResultCapBytes = 256u << 10;  // 256 KiB, Argo's outputs.result

// What to run.
struct ProcessSpec {
  // argv[0] is looked up on env["PATH"] (default "/usr/local/bin:/usr/bin:/bin") unless it
  // contains a '/', in which case it is relative to working_dir. Empty: start_error
  // "no command to run".
  std::vector<std::string> argv;
  // The full environment; nothing is inherited from kiln unless the caller copies it.
  std::map<std::string, std::string> env;
  // Empty: kiln's current directory (plain) or / (sandboxed).
  std::string working_dir;
  // Where stdout and stderr go, interleaved, one line each:
  //   2026-11-23T21:05:03.123Z stdout <text>
  // Empty: output is not logged (stdout_text is still collected).
  std::string log_path;
  // At most this many bytes of lines, then one final line saying the log was truncated.
  uint64_t log_cap_bytes = kDefaultLogCapBytes;
  // ProcessResult::stdout_text keeps at most this many bytes.
  size_t result_cap_bytes = kDefaultResultCapBytes;
  // Run inside bubblewrap. Ignored (plain process) when the runner has no working bwrap.
  std::optional<Sandbox> sandbox;
  // Called with each chunk of output as it is read (a line may span chunks), on the io_context
  // thread, before on_exit; for callers that show output live (kubesim's container logs).
  std::function<void(bool is_stdout, std::string_view data)> on_output;
};

// How a process ended.
struct ProcessResult {
  // Shell-style: the exit status, 128+N when killed by signal N, 127 when the executable was not
  // found and 126 when it could not be executed (see start_error).
  int exit_code = 0;
  // The signal that ended the process, 0 if none. Under bwrap the signal is inferred from
  // bwrap's exit status 128+N.
  int signal = 0;
  // True when Terminate was called before the process ended.
  bool terminated = false;
  // The first result_cap_bytes bytes of stdout, exactly as written (trailing newline included).
  std::string stdout_text;
  bool stdout_truncated = false;
  // Set when the command never ran: "executable not found: NAME", "permission denied: NAME",
  // "working directory not found: DIR", "cannot open log file PATH: ...",
  // "sandbox setup failed: ..." (bwrap's own words).
  std::optional<std::string> start_error;
  std::chrono::milliseconds duration{0};
};

using ProcessId = uint64_t;

// Starts processes and reports their ends. Each process runs in a session and process group of
// its own (plain) or in a PID namespace of its own (bubblewrap); when its main process exits,
// whatever it left running is killed, as when a container's main process exits.
class ProcessRunner {
 public:
  // Uses DetectBubblewrap() for sandboxed specs.
  explicit ProcessRunner(boost::asio::io_context& io);
  // Uses `bwrap` for sandboxed specs; when !bwrap.available, sandboxed specs run plain.
  ProcessRunner(boost::asio::io_context& io, BubblewrapStatus bwrap);
  // Kills (SIGKILL) and reaps every process still running; their callbacks are not called.
  ~ProcessRunner();
  ProcessRunner(const ProcessRunner&) = delete;
  ProcessRunner& operator=(const ProcessRunner&) = delete;

  // Forks and execs `spec` and returns its id at once. `on_exit` is called exactly once, on the
  // io_context thread and never from within Start, when the process has exited and its output
  // has been drained; a process that could not start is reported the same way with start_error
  // set. Blocks only for the fork/exec handshake.
  ProcessId Start(ProcessSpec spec, std::function<void(ProcessResult)> on_exit);

  // Sends SIGTERM to the whole process tree (the process group; under bwrap every process in the
  // step's PID namespace), then SIGKILL after `grace` if the main process is still running.
  // grace <= 0 kills at once. No-op for an id that has ended or was never started.
  void Terminate(ProcessId id, std::chrono::milliseconds grace);

  // Number of processes started and not yet reported.
  size_t running() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_PROCESS_H_
