// Helpers for the kubesim tests: temporary directories, a kubesim child process whose
// kubeconfig the tests wait for (inotify, no sleeps), and running client commands.
#ifndef KILN_TESTS_KUBESIM_TEST_UTIL_H_
#define KILN_TESTS_KUBESIM_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace kiln::kubesim::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kubesim-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Starts `argv` with stdout and stderr sent to `output_file` (or a pipe when `pipe_fd` is
// given). Returns the pid.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& output_file,
                   int* pipe_fd = nullptr) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int fds[2] = {-1, -1};
  if (pipe_fd) {
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (pipe_fd) {
    ::close(fds[1]);
    *pipe_fd = fds[0];
  }
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return pid;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult Run(const std::vector<std::string>& argv, const std::string& scratch_dir) {
  std::string out = scratch_dir + "/command-output.txt";
  pid_t pid = Spawn(argv, out);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.output = ReadFile(out);
  return r;
}

// A kubesim server for one test. The constructor returns once the kubeconfig exists.
class Kubesim {
 public:
  explicit Kubesim(const std::string& cluster, std::vector<std::string> extra = {}) {
    kubeconfig_ = dir_ / "kubeconfig";
    std::vector<std::string> argv = {KUBESIM_BINARY, "--cluster",
                                     std::string(KILN_SOURCE_DIR) + "/tests/kubesim/clusters/" + cluster,
                                     "--write-kubeconfig", kubeconfig_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    ::inotify_add_watch(fd, dir_.path().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
    pid_ = Spawn(argv, dir_ / "kubesim.log");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(kubeconfig_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ::close(fd);
        throw std::runtime_error("kubesim exited: " + ReadFile(dir_ / "kubesim.log"));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::close(fd);
        throw std::runtime_error("kubesim did not write its kubeconfig");
      }
      pollfd p{fd, POLLIN, 0};
      // Wakes on the rename; the timeout only bounds the check that the child is alive.
      if (::poll(&p, 1, 200) > 0) {
        char buf[4096];
        while (::read(fd, buf, sizeof buf) > 0) {
        }
      }
    }
    ::close(fd);
  }
  ~Kubesim() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  const std::string& kubeconfig() const { return kubeconfig_; }
  const TempDir& dir() const { return dir_; }
  std::string log() const { return ReadFile(dir_ / "kubesim.log"); }

  // kubectl with this server's kubeconfig and a private discovery cache.
  CommandResult Kubectl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {KUBECTL_PROGRAM, "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ / "kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv, dir_.path());
  }

 private:
  TempDir dir_;
  std::string kubeconfig_;
  pid_t pid_ = -1;
};

// Reads lines from `fd` until one contains `needle`; returns everything read, or throws after
// `timeout`.
inline std::string ReadUntil(int fd, const std::string& needle, std::chrono::seconds timeout) {
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("timed out waiting for \"" + needle + "\"; got:\n" + seen);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("stream ended before \"" + needle + "\"; got:\n" + seen);
    seen.append(buf, static_cast<size_t>(n));
  }
  return seen;
}

}  // namespace kiln::kubesim::testing

#endif  // KILN_TESTS_KUBESIM_TEST_UTIL_H_
