#include "executor/sandbox.h"

#include <algorithm>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "executor/internal/bwrap.h"

extern char** environ;

namespace kiln::executor {
namespace {

constexpr std::string_view kFallback =
    "steps run as plain host processes: no private /tmp, no volume binds, no PID namespace";

// Runs argv with stdin/stdout at /dev/null; returns the wait status and the first stderr line.
std::pair<int, std::string> RunQuietly(const std::vector<std::string>& argv) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return {-1, std::strerror(errno)};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(err_pipe[0]);
    return {-1, std::strerror(rc)};
  }
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = ::read(err_pipe[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && err.size() < 4096) err.append(buf, static_cast<size_t>(n));
  }
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (const size_t nl = err.find('\n'); nl != std::string::npos) err.resize(nl);
  return {status, err};
}

std::string FindBwrap() {
  if (::access("/usr/bin/bwrap", X_OK) == 0) return "/usr/bin/bwrap";
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = std::string(dir) + "/bwrap";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

}  // namespace

BubblewrapStatus ProbeBubblewrap(const std::string& bwrap_path) {
  BubblewrapStatus status;
  if (bwrap_path.empty() || ::access(bwrap_path.c_str(), X_OK) != 0) {
    status.warning = "bubblewrap (bwrap) not found; " + std::string(kFallback) +
                     " (install the Debian package bubblewrap to sandbox steps)";
    return status;
  }
  const auto [wait_status, first_line] =
      RunQuietly({bwrap_path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                  "--unshare-pid", "--die-with-parent", "true"});
  if (wait_status >= 0 && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) {
    status.available = true;
    status.path = bwrap_path;
    return status;
  }
  std::string why = first_line.empty() ? "it failed" : first_line;
  status.warning = bwrap_path + " does not work here (" + why + "); " + std::string(kFallback);
  return status;
}

const BubblewrapStatus& DetectBubblewrap() {
  static const BubblewrapStatus status = ProbeBubblewrap(FindBwrap());
  return status;
}

std::vector<std::string> NvidiaDeviceNodes(const std::string& dev_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dev_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("nvidia")) continue;
    const std::string rest = name.substr(6);
    const bool numbered = !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (numbered || rest == "ctl" || rest == "-uvm" || rest == "-uvm-tools" || rest == "-modeset" || rest == "-caps") {
      out.push_back(dev_dir + "/" + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace internal {

std::vector<std::string> BwrapArgv(const std::string& bwrap_path, const Sandbox& sandbox,
                                   const std::string& working_dir,
                                   const std::vector<std::string>& argv) {
  std::vector<std::string> out = {bwrap_path};
  auto add = [&out](std::initializer_list<std::string> args) {
    out.insert(out.end(), args.begin(), args.end());
  };
  std::error_code ec;
  const bool writable_root = !sandbox.root_dir_on_host.empty();
  // With a writable root, the directories that start empty there, as in a container image.
  auto left_empty = [&](const std::string& name) {
    return writable_root && (name == "mnt" || name == "srv" || name == "media");
  };
  if (writable_root) {
    std::filesystem::create_directories(sandbox.root_dir_on_host, ec);
    add({"--bind", sandbox.root_dir_on_host, "/"});
  }
  for (const auto& entry : std::filesystem::directory_iterator("/", ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "proc" || name == "dev" || name == "tmp") continue;
    if (left_empty(name)) {
      add({"--dir", "/" + name});
      continue;
    }
    const std::string path = "/" + name;
    std::error_code link_ec;
    if (entry.is_symlink(link_ec)) {
      const auto target = std::filesystem::read_symlink(entry.path(), link_ec);
      if (!link_ec) add({"--symlink", target.string(), path});
      continue;
    }
    add({"--ro-bind-try", path, path});
  }
  add({"--dev", "/dev", "--proc", "/proc"});
  for (const std::string& device : sandbox.devices) add({"--dev-bind-try", device, device});
  if (!sandbox.private_tmp) {
    add({"--bind", "/tmp", "/tmp"});
  } else if (sandbox.tmp_dir_on_host.empty()) {
    add({"--tmpfs", "/tmp"});
  } else {
    add({"--bind", sandbox.tmp_dir_on_host, "/tmp"});
  }
  // A bind whose mount point does not exist inside a read-only host directory (a volume at
  // /mnt/work when the host has /mnt but no /mnt/work): bwrap cannot create it there, so that
  // directory becomes a tmpfs holding the host's entries again, plus the new mount point.
  std::set<std::string> expanded;
  for (const Bind& bind : sandbox.binds) {
    const std::filesystem::path target(bind.sandbox_path);
    if (bind.sandbox_path == "/tmp" || bind.sandbox_path.starts_with("/tmp/")) continue;
    std::error_code exists_ec;
    if (std::filesystem::exists(target, exists_ec)) continue;
    std::filesystem::path dir = target.parent_path();
    while (dir != "/" && !dir.empty() && !std::filesystem::exists(dir, exists_ec)) dir = dir.parent_path();
    if (dir == "/" || dir.empty() || dir == "/tmp" || dir == "/proc" || dir == "/dev") continue;
    if (auto top = dir.begin(); top != dir.end() && ++top != dir.end() && left_empty(top->string())) continue;
    if (!std::filesystem::is_directory(dir, exists_ec) || !expanded.insert(dir.string()).second) continue;
    add({"--tmpfs", dir.string()});
    for (const auto& entry : std::filesystem::directory_iterator(dir, exists_ec)) {
      const std::string path = entry.path().string();
      std::error_code link_ec;
      if (entry.is_symlink(link_ec)) {
        const auto link = std::filesystem::read_symlink(entry.path(), link_ec);
        if (!link_ec) add({"--symlink", link.string(), path});
        continue;
      }
      add({"--ro-bind-try", path, path});
    }
  }
  for (const Bind& bind : sandbox.binds) {
    add({bind.read_only ? "--ro-bind" : "--bind", bind.host_path, bind.sandbox_path});
  }
  if (!writable_root) add({"--remount-ro", "/"});
  add({"--unshare-pid", "--die-with-parent", "--new-session"});
  if (!working_dir.empty()) add({"--chdir", working_dir});
  out.push_back("--");
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::optional<std::string> BwrapStartError(std::string_view line) {
  constexpr std::string_view kPrefix = "bwrap: ";
  if (!line.starts_with(kPrefix)) return std::nullopt;
  line.remove_prefix(kPrefix.size());
  constexpr std::string_view kExec = "execvp ";
  if (line.starts_with(kExec)) {
    std::string_view rest = line.substr(kExec.size());
    const size_t colon = rest.rfind(": ");
    if (colon != std::string_view::npos) {
      const std::string name(rest.substr(0, colon));
      const std::string_view reason = rest.substr(colon + 2);
      if (reason == "No such file or directory" || reason == "Not a directory") {
        return "executable not found: " + name;
      }
      if (reason == "Permission denied") return "permission denied: " + name;
      return "cannot execute " + name + ": " + std::string(reason);
    }
  }
  return "sandbox setup failed: " + std::string(line);
}

}  // namespace internal
}  // namespace kiln::executor
