#include "executor/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "executor/internal/bwrap.h"
#include "executor/internal/step_log.h"

namespace kiln::executor {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

namespace {

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
// After the main process exits, how long its pipes may stay open (held by a process that escaped
// the kill) before kiln stops reading them.
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr size_t kFirstLineCap = 1024;

// What the child reports through the CLOEXEC pipe when it fails before exec.
enum class ChildStage : int { kStdio = 1, kChdir = 2, kExec = 3 };
struct ChildFailure {
  ChildStage stage;
  int error;
};

std::string ExecError(const std::string& name, int error) {
  if (error == ENOENT || error == ENOTDIR) return "executable not found: " + name;
  if (error == EACCES) return "permission denied: " + name;
  return "cannot execute " + name + ": " + std::strerror(error);
}

// Candidates execve tries in turn, as execvp does but with the step's PATH, not kiln's.
std::vector<std::string> ExecCandidates(const std::string& name,
                                        const std::map<std::string, std::string>& env) {
  if (name.find('/') != std::string::npos) return {name};
  const auto it = env.find("PATH");
  std::string_view dirs =
      it == env.end() ? std::string_view(kDefaultPath) : std::string_view(it->second);
  std::vector<std::string> out;
  while (true) {
    const size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    out.push_back((dir.empty() ? "." : dir) + "/" + name);
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return out;
}

// Host pids of the processes below `root` at depth >= `min_depth`, from /proc.
std::vector<pid_t> Descendants(pid_t root, int min_depth) {
  std::multimap<pid_t, pid_t> children;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return {};
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream stat("/proc/" + std::string(entry->d_name) + "/stat");
    std::string text;
    std::getline(stat, text);
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(text.c_str() + close + 1, " %c %ld", &state, &ppid) != 2) continue;
    children.emplace(static_cast<pid_t>(ppid), static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  std::vector<pid_t> out;
  std::vector<std::pair<pid_t, int>> stack = {{root, 0}};
  while (!stack.empty()) {
    const auto [pid, depth] = stack.back();
    stack.pop_back();
    if (depth >= min_depth) out.push_back(pid);
    const auto [begin, end] = children.equal_range(pid);
    for (auto it = begin; it != end; ++it) stack.push_back({it->second, depth + 1});
  }
  return out;
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

struct Proc {
  explicit Proc(asio::io_context& io)
      : out(io), err(io), exit_watch(io), kill_timer(io), drain_timer(io) {}

  ProcessId id = 0;
  pid_t pid = -1;
  bool sandboxed = false;
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor err;
  asio::posix::stream_descriptor exit_watch;  // a pidfd; unused when pidfd_open is unavailable
  asio::steady_timer kill_timer;
  asio::steady_timer drain_timer;  // also polls for exit when there is no pidfd
  bool has_pidfd = false;
  internal::StepLog log;
  std::array<char, 64 << 10> out_buf;
  std::array<char, 64 << 10> err_buf;
  size_t result_cap = 0;
  std::string stdout_text;
  bool stdout_truncated = false;
  std::string stderr_first_line;
  bool stderr_first_line_done = false;
  bool exited = false;
  bool out_eof = false;
  bool err_eof = false;
  bool terminated = false;
  bool finished = false;
  int exit_code = 0;
  int signal = 0;
  SteadyClock::time_point start;
  std::function<void(ProcessResult)> on_exit;
  std::function<void(bool, std::string_view)> on_output;
};

}  // namespace

class ProcessRunner::Impl : public std::enable_shared_from_this<ProcessRunner::Impl> {
 public:
  Impl(asio::io_context& io, BubblewrapStatus bwrap) : io_(io), bwrap_(std::move(bwrap)) {}

  ProcessId Start(ProcessSpec spec, std::function<void(ProcessResult)> on_exit);
  void Terminate(ProcessId id, std::chrono::milliseconds grace);
  void Shutdown();
  size_t running() const { return procs_.size() + pending_failures_; }

 private:
  void FailStart(std::function<void(ProcessResult)> on_exit, std::string error, int exit_code,
                 SteadyClock::time_point start, internal::StepLog* log);
  void Read(const std::shared_ptr<Proc>& p, bool is_stdout);
  void OnData(Proc& p, bool is_stdout, std::string_view data);
  void WatchExit(const std::shared_ptr<Proc>& p);
  void CheckExit(const std::shared_ptr<Proc>& p);
  void MaybeFinish(const std::shared_ptr<Proc>& p);
  void Kill(Proc& p);

  asio::io_context& io_;
  BubblewrapStatus bwrap_;
  ProcessId next_id_ = 1;
  size_t pending_failures_ = 0;
  std::map<ProcessId, std::shared_ptr<Proc>> procs_;
};

ProcessId ProcessRunner::Impl::Start(ProcessSpec spec, std::function<void(ProcessResult)> on_exit) {
  const ProcessId id = next_id_++;
  const auto start = SteadyClock::now();
  auto p = std::make_shared<Proc>(io_);
  p->id = id;
  p->start = start;
  p->result_cap = spec.result_cap_bytes;
  p->on_exit = std::move(on_exit);
  p->on_output = std::move(spec.on_output);
  if (spec.argv.empty() || spec.argv[0].empty()) {
    FailStart(std::move(p->on_exit), "no command to run", 127, start, nullptr);
    return id;
  }
  if (!spec.log_path.empty()) {
    if (auto opened = p->log.Open(spec.log_path, spec.log_cap_bytes); !opened) {
      FailStart(std::move(p->on_exit), opened.error().message(), 126, start, nullptr);
      return id;
    }
  }

  p->sandboxed = spec.sandbox.has_value() && bwrap_.available;
  std::vector<std::string> argv;
  std::vector<std::string> candidates;
  if (p->sandboxed) {
    if (spec.sandbox->private_tmp && !spec.sandbox->tmp_dir_on_host.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(spec.sandbox->tmp_dir_on_host, ec);
      if (ec) {
        FailStart(std::move(p->on_exit),
                  "sandbox setup failed: cannot create " + spec.sandbox->tmp_dir_on_host + ": " +
                      ec.message(),
                  126, start, &p->log);
        return id;
      }
    }
    argv = internal::BwrapArgv(bwrap_.path, *spec.sandbox, spec.working_dir, spec.argv);
    candidates = {bwrap_.path};
  } else {
    argv = spec.argv;
    candidates = ExecCandidates(spec.argv[0], spec.env);
  }

  // Everything the child touches is prepared here: after fork only async-signal-safe calls.
  std::vector<char*> c_argv;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : spec.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> c_env;
  for (std::string& e : env_strings) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  const char* chdir_to =
      (!p->sandboxed && !spec.working_dir.empty()) ? spec.working_dir.c_str() : nullptr;

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int status_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    const int error = errno;
    for (int* fd : {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1], &status_pipe[0],
                    &status_pipe[1]}) {
      CloseFd(*fd);
    }
    FailStart(std::move(p->on_exit), std::string("cannot create pipes: ") + std::strerror(error),
              126, start, &p->log);
    return id;
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    ::setsid();
    // The step dies with kiln (kill -9 included), so a resumed run never races a step of the
    // crashed one. Only this process: grandchildren of an unsandboxed step can outlive kiln
    // (the sandbox's PID namespace and --die-with-parent take the whole tree).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(137);  // kiln already died between fork and prctl
    auto fail = [&](ChildStage stage, int error) {
      const ChildFailure failure{stage, error};
      [[maybe_unused]] ssize_t n = ::write(status_pipe[1], &failure, sizeof failure);
      ::_exit(127);
    };
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_pipe[1], 1) < 0 ||
        ::dup2(err_pipe[1], 2) < 0) {
      fail(ChildStage::kStdio, errno);
    }
    if (chdir_to != nullptr && ::chdir(chdir_to) != 0) fail(ChildStage::kChdir, errno);
    // Descriptors other modules opened without O_CLOEXEC must not leak into steps.
    ::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
    int error = ENOENT;
    bool saw_eacces = false;
    for (const std::string& candidate : candidates) {
      ::execve(candidate.c_str(), c_argv.data(), c_env.data());
      error = errno;
      if (error == EACCES) {
        saw_eacces = true;
      } else if (error != ENOENT && error != ENOTDIR) {
        break;
      }
    }
    if (saw_eacces && (error == ENOENT || error == ENOTDIR)) error = EACCES;
    fail(ChildStage::kExec, error);
  }

  const int fork_error = errno;
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  CloseFd(status_pipe[1]);
  if (pid < 0) {
    CloseFd(out_pipe[0]);
    CloseFd(err_pipe[0]);
    CloseFd(status_pipe[0]);
    FailStart(std::move(p->on_exit), std::string("cannot fork: ") + std::strerror(fork_error), 126,
              start, &p->log);
    return id;
  }
  ChildFailure failure{};
  ssize_t n;
  while ((n = ::read(status_pipe[0], &failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  CloseFd(status_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    CloseFd(out_pipe[0]);
    CloseFd(err_pipe[0]);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    std::string error;
    int exit_code = 126;
    switch (failure.stage) {
      case ChildStage::kStdio:
        error = std::string("cannot set up stdio: ") + std::strerror(failure.error);
        break;
      case ChildStage::kChdir:
        error = (failure.error == ENOENT ? "working directory not found: "
                                         : "cannot enter working directory ") +
                spec.working_dir;
        if (failure.error != ENOENT) error += std::string(": ") + std::strerror(failure.error);
        break;
      case ChildStage::kExec:
        error = ExecError(p->sandboxed ? bwrap_.path : spec.argv[0], failure.error);
        if (failure.error == ENOENT || failure.error == ENOTDIR) exit_code = 127;
        break;
    }
    FailStart(std::move(p->on_exit), std::move(error), exit_code, start, &p->log);
    return id;
  }

  p->pid = pid;
  p->out.assign(out_pipe[0]);
  p->err.assign(err_pipe[0]);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    p->exit_watch.assign(pidfd);
    p->has_pidfd = true;
  }
  procs_.emplace(id, p);
  Read(p, true);
  Read(p, false);
  WatchExit(p);
  return id;
}

void ProcessRunner::Impl::FailStart(std::function<void(ProcessResult)> on_exit, std::string error,
                                    int exit_code, SteadyClock::time_point start,
                                    internal::StepLog* log) {
  if (log != nullptr) {
    log->Note(error, SystemClock::now());
    log->Finish(SystemClock::now());
  }
  ProcessResult result;
  result.exit_code = exit_code;
  result.start_error = std::move(error);
  result.duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  ++pending_failures_;
  asio::post(io_, [weak = weak_from_this(), on_exit = std::move(on_exit),
                   result = std::move(result)]() mutable {
    const auto self = weak.lock();
    if (!self) return;
    --self->pending_failures_;
    if (on_exit) on_exit(std::move(result));
  });
}

void ProcessRunner::Impl::Read(const std::shared_ptr<Proc>& p, bool is_stdout) {
  auto& stream = is_stdout ? p->out : p->err;
  auto& buf = is_stdout ? p->out_buf : p->err_buf;
  stream.async_read_some(asio::buffer(buf), [weak = weak_from_this(), p, is_stdout](
                                                const boost::system::error_code& ec, size_t n) {
    const auto self = weak.lock();
    if (!self || p->finished) return;
    if (n > 0) self->OnData(*p, is_stdout, {(is_stdout ? p->out_buf : p->err_buf).data(), n});
    if (ec) {
      (is_stdout ? p->out_eof : p->err_eof) = true;
      boost::system::error_code ignored;
      (is_stdout ? p->out : p->err).close(ignored);
      self->MaybeFinish(p);
      return;
    }
    self->Read(p, is_stdout);
  });
}

void ProcessRunner::Impl::OnData(Proc& p, bool is_stdout, std::string_view data) {
  p.log.Append(is_stdout ? "stdout" : "stderr", data, SystemClock::now());
  if (p.on_output) p.on_output(is_stdout, data);
  if (is_stdout) {
    const size_t room = p.result_cap - std::min(p.result_cap, p.stdout_text.size());
    if (data.size() > room) p.stdout_truncated = true;
    p.stdout_text.append(data.substr(0, room));
  } else if (p.sandboxed && !p.stderr_first_line_done) {
    const size_t nl = data.find('\n');
    p.stderr_first_line.append(data.substr(0, nl));
    if (nl != std::string_view::npos || p.stderr_first_line.size() >= kFirstLineCap) {
      p.stderr_first_line_done = true;
      if (p.stderr_first_line.size() > kFirstLineCap) p.stderr_first_line.resize(kFirstLineCap);
    }
  }
}

void ProcessRunner::Impl::WatchExit(const std::shared_ptr<Proc>& p) {
  auto handler = [weak = weak_from_this(), p](const boost::system::error_code& ec) {
    const auto self = weak.lock();
    if (!self || ec == asio::error::operation_aborted || p->exited) return;
    self->CheckExit(p);
  };
  if (p->has_pidfd) {
    p->exit_watch.async_wait(asio::posix::stream_descriptor::wait_read, std::move(handler));
  } else {
    p->drain_timer.expires_after(std::chrono::milliseconds(20));
    p->drain_timer.async_wait(std::move(handler));
  }
}

void ProcessRunner::Impl::CheckExit(const std::shared_ptr<Proc>& p) {
  // Observe the exit without reaping: while the zombie holds its pid, the process group id cannot
  // be reused, so killing the group below cannot hit a stranger.
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(p->pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid == 0) {
    WatchExit(p);
    return;
  }
  ::kill(-p->pid, SIGKILL);  // what the main process left behind, as when a container ends
  int status = 0;
  while (::waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
  }
  p->exited = true;
  if (WIFSIGNALED(status)) {
    p->signal = WTERMSIG(status);
    p->exit_code = 128 + p->signal;
  } else {
    p->exit_code = WEXITSTATUS(status);
    // bwrap reports a command killed by signal N as exit status 128+N.
    if (p->sandboxed && p->exit_code > 128 && p->exit_code < 128 + NSIG) {
      p->signal = p->exit_code - 128;
    }
  }
  p->kill_timer.cancel();
  boost::system::error_code ignored;
  p->exit_watch.close(ignored);
  if (!p->out_eof || !p->err_eof) {
    p->drain_timer.expires_after(kDrainTimeout);
    p->drain_timer.async_wait([p](const boost::system::error_code& ec) {
      if (ec) return;
      boost::system::error_code ignored;
      p->out.close(ignored);  // pending reads complete with operation_aborted, then MaybeFinish
      p->err.close(ignored);
    });
  }
  MaybeFinish(p);
}

void ProcessRunner::Impl::MaybeFinish(const std::shared_ptr<Proc>& p) {
  if (p->finished || !p->exited || !p->out_eof || !p->err_eof) return;
  p->finished = true;
  p->drain_timer.cancel();
  p->log.Finish(SystemClock::now());
  ProcessResult result;
  result.exit_code = p->exit_code;
  result.signal = p->signal;
  result.terminated = p->terminated;
  result.stdout_text = std::move(p->stdout_text);
  result.stdout_truncated = p->stdout_truncated;
  if (p->sandboxed && p->exit_code == 1 && !p->terminated) {
    result.start_error = internal::BwrapStartError(p->stderr_first_line);
    if (result.start_error && result.start_error->starts_with("executable not found")) {
      result.exit_code = 127;
    } else if (result.start_error) {
      result.exit_code = 126;
    }
  }
  result.duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - p->start);
  auto on_exit = std::move(p->on_exit);
  procs_.erase(p->id);
  if (on_exit) on_exit(std::move(result));
}

void ProcessRunner::Impl::Kill(Proc& p) {
  // The group holds the main process (and under bwrap the namespace's init, whose death ends
  // every process in the namespace).
  ::kill(-p.pid, SIGKILL);
  ::kill(p.pid, SIGKILL);
}

void ProcessRunner::Impl::Terminate(ProcessId id, std::chrono::milliseconds grace) {
  const auto it = procs_.find(id);
  if (it == procs_.end() || it->second->exited) return;
  const std::shared_ptr<Proc> p = it->second;
  p->terminated = true;
  if (grace <= std::chrono::milliseconds(0)) {
    Kill(*p);
    return;
  }
  if (p->sandboxed) {
    // bwrap does not forward signals, and SIGTERM to bwrap itself would end the namespace at
    // once; signal the command and its descendants (depth >= 2: below bwrap and its init).
    for (const pid_t pid : Descendants(p->pid, 2)) ::kill(pid, SIGTERM);
  } else {
    ::kill(-p->pid, SIGTERM);
  }
  p->kill_timer.expires_after(grace);
  p->kill_timer.async_wait([weak = weak_from_this(), p](const boost::system::error_code& ec) {
    const auto self = weak.lock();
    if (!self || ec || p->exited) return;
    self->Kill(*p);
  });
}

void ProcessRunner::Impl::Shutdown() {
  for (auto& [id, p] : procs_) {
    if (!p->exited) {
      Kill(*p);
      while (::waitpid(p->pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    p->finished = true;
    boost::system::error_code ignored;
    p->out.close(ignored);
    p->err.close(ignored);
    p->exit_watch.close(ignored);
    p->kill_timer.cancel();
    p->drain_timer.cancel();
    p->log.Finish(SystemClock::now());
  }
  procs_.clear();
}

ProcessRunner::ProcessRunner(asio::io_context& io) : ProcessRunner(io, DetectBubblewrap()) {}

ProcessRunner::ProcessRunner(asio::io_context& io, BubblewrapStatus bwrap)
    : impl_(std::make_shared<Impl>(io, std::move(bwrap))) {}

ProcessRunner::~ProcessRunner() { impl_->Shutdown(); }

ProcessId ProcessRunner::Start(ProcessSpec spec, std::function<void(ProcessResult)> on_exit) {
  return impl_->Start(std::move(spec), std::move(on_exit));
}

void ProcessRunner::Terminate(ProcessId id, std::chrono::milliseconds grace) {
  impl_->Terminate(id, grace);
}

size_t ProcessRunner::running() const { return impl_->running(); }

}  // namespace kiln::executor
