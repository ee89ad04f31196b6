// `kiln exec`: the agent in a step's pod (Kubernetes executor). It places the input artifacts from
// the artifact repository (a shared volume, the local repository's layout), runs the step's
// command, passes its stdout through (the pod log) while keeping the first 256 KiB for
// outputs.result, reads the output parameters' files, stores the output artifacts (sha256,
// content-addressed, and under their key when they have one), and writes the parameters, the
// result and the artifact refs as JSON to the termination message file, which the controller
// reads from the pod's status (executor/kubernetes_job.h, ParseTerminationMessage). Exits with
// the command's exit code (128+N for signal N).
//
//   kiln exec [--param NAME=PATH]... [--termination-log PATH] [--artifact-root DIR
//             --artifacts JSON] -- COMMAND [ARG]...
//
// --artifacts is {"inputs": [{name, path, ref, optional}], "outputs": [{name, path, key, archive,
// optional}]} (executor/kubernetes_job.cc AgentArtifacts writes it).
//
// The message must fit the 4096 bytes Kubernetes keeps. A larger one is stored in the artifact
// repository when its volume is mounted (--artifact-root), and the message is then
// {"outputs": {"sha256": ..., "size": ...}}; without it the result is dropped first (with a
// note), then the step fails with an "error" naming the sizes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "executor/local_artifact_repository.h"
#include "scheduler/state.h"

namespace kiln::cli {

namespace {

constexpr size_t kResultLimit = 256 << 10;  // as the local executor's outputs.result
constexpr size_t kMessageLimit = 4096;      // what Kubernetes keeps of a termination message

volatile sig_atomic_t g_child = 0;

void Forward(int sig) {
  if (g_child > 0) ::kill(static_cast<pid_t>(g_child), sig);
}

std::string TrimTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

struct ExecFlags {
  std::vector<std::string> params;  // NAME=PATH
  std::string termination_log = "/dev/termination-log";
  size_t message_limit = kMessageLimit;  // less when the pod has several containers
  std::string artifact_root;             // where the artifact repository's volume is mounted
  std::string artifacts;                 // JSON: the inputs to place, the outputs to store
  std::vector<std::string> command;
};

// Stores `text` (a termination message too large for Kubernetes) in the artifact repository
// at `root`, through a temporary file there.
Result<scheduler::ArtifactRef> StoreMessage(executor::ArtifactRepository& repo, const std::string& root,
                                            const std::string& text) {
  std::random_device random;
  char token[32];
  std::snprintf(token, sizeof token, "%08x%08x", random(), random());
  const std::string temp = root + "/.kiln-outputs-" + token;
  {
    std::ofstream out(temp, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) return MakeError(Code::kUnavailable, "cannot write " + temp + ": " + std::strerror(errno));
  }
  auto ref = repo.Put(temp);
  std::error_code ec;
  std::filesystem::remove(temp, ec);
  return ref;
}

// Writes `text` to the termination log; says on stderr when it cannot.
void WriteMessage(const ExecFlags& flags, const std::string& text) {
  std::ofstream log(flags.termination_log, std::ios::trunc | std::ios::binary);
  log << text;
  log.close();
  if (!log) {
    std::fprintf(stderr, "kiln exec: cannot write the outputs to %s: %s\n", flags.termination_log.c_str(),
                 std::strerror(errno));
  }
}

// Fails the step before its command runs: the reason goes to stderr (the pod log) and, as
// "error", to the termination message, which the controller shows as the step's message.
int FailEarly(const ExecFlags& flags, const std::string& why) {
  std::fprintf(stderr, "kiln exec: %s\n", why.c_str());
  WriteMessage(flags, nlohmann::json{{"error", why}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return 1;
}

// Places every input artifact of `spec` at its path. Returns "" or why one could not be.
std::string PlaceInputs(executor::ArtifactRepository& repo, const nlohmann::json& spec) {
  if (!spec.contains("inputs")) return "";
  for (const nlohmann::json& in : spec["inputs"]) {
    std::string name = in.value("name", "");
    std::string path = in.value("path", "");
    auto ref = in.contains("ref") ? scheduler::ArtifactRef::FromJson(in["ref"].dump()) : std::nullopt;
    if (path.empty() || !ref) return "input artifact \"" + name + "\": the agent's --artifacts has no path or ref for it";
    if (auto ok = repo.Get(*ref, path); !ok) {
      // An optional input whose key holds nothing is left out, as Argo does.
      if (in.value("optional", false) && !ref->key.empty() && ok.error().code() == Code::kNotFound) continue;
      return "input artifact \"" + name + "\": " + ok.error().message();
    }
  }
  return "";
}

// Stores every output artifact of `spec` that the command wrote: {name: ref}. A missing one is
// an error (in `*error`) when the command succeeded and the artifact is not optional.
nlohmann::json StoreOutputs(executor::ArtifactRepository& repo, const nlohmann::json& spec, int code,
                            std::string* error) {
  nlohmann::json refs = nlohmann::json::object();
  if (!spec.contains("outputs")) return refs;
  for (const nlohmann::json& out : spec["outputs"]) {
    std::string name = out.value("name", "");
    std::string path = out.value("path", "");
    std::error_code ec;
    if (path.empty()) continue;
    if (!std::filesystem::exists(path, ec)) {
      if (!out.value("optional", false) && code == 0 && error->empty()) {
        *error = "output artifact \"" + name + "\": " + path + " does not exist (the step did not write it)";
      }
      continue;
    }
    auto fail = [&](const Error& e) {
      if (error->empty()) *error = "output artifact \"" + name + "\": " + e.message();
    };
    auto ref = repo.Put(path);
    if (!ref) {
      fail(ref.error());
      continue;
    }
    if (std::string key = out.value("key", ""); !key.empty()) {
      auto archive = executor::ArchiveOf(out.value("archive", nlohmann::json()));
      if (!archive) {
        fail(archive.error());
        continue;
      }
      if (auto ok = repo.PutKey(key, path, *archive); !ok) {
        fail(ok.error());
        continue;
      }
      ref->key = key;
    }
    // Compact, as the message is small: no location (the controller knows where its repository
    // is mounted), archived and key only when set.
    nlohmann::json j = {{"kiln_artifact", ref->sha256}, {"size", ref->size}};
    if (ref->archived) j["archived"] = true;
    if (!ref->key.empty()) j["key"] = ref->key;
    refs[name] = std::move(j);
  }
  return refs;
}

int Exec(const ExecFlags& flags) {
  if (flags.command.empty()) {
    std::fprintf(stderr, "kiln exec: no command: pass it after --, e.g. kiln exec -- python train.py\n");
    return 2;
  }
  std::map<std::string, std::string> params;
  for (const std::string& p : flags.params) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size()) {
      std::fprintf(stderr, "kiln exec: --param %s: expected NAME=PATH\n", p.c_str());
      return 2;
    }
    params[p.substr(0, eq)] = p.substr(eq + 1);
  }
  nlohmann::json artifacts = nlohmann::json::object();
  if (!flags.artifacts.empty()) {
    artifacts = nlohmann::json::parse(flags.artifacts, nullptr, false);
    if (artifacts.is_discarded() || !artifacts.is_object()) {
      std::fprintf(stderr, "kiln exec: --artifacts: expected a JSON object {\"inputs\": [...], \"outputs\": [...]}\n");
      return 2;
    }
    if (flags.artifact_root.empty()) {
      std::fprintf(stderr, "kiln exec: --artifacts needs --artifact-root (where the artifact volume is mounted)\n");
      return 2;
    }
  }
  executor::LocalArtifactRepository repo(flags.artifact_root);
  if (std::string why = PlaceInputs(repo, artifacts); !why.empty()) return FailEarly(flags, why);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "kiln exec: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  // The signals a pod's container gets are passed on to the command. They wait, blocked, until
  // the child's pid is known; the child starts with the default handlers.
  sigset_t forwarded, before;
  sigemptyset(&forwarded);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, &before);
  struct sigaction sa {};
  sa.sa_handler = Forward;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "kiln exec: fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, &before, nullptr);
    ::dup2(out[1], 1);
    std::vector<char*> argv;
    for (const std::string& a : flags.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "kiln exec: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(errno == ENOENT ? 127 : 126);
  }
  g_child = pid;
  ::sigprocmask(SIG_SETMASK, &before, nullptr);
  ::close(out[1]);
  std::string result;
  bool truncated = false;
  char buf[65536];
  // Until the pipe's end, or the command's exit plus a second to drain what it wrote: a
  // background process that keeps stdout open does not hold the step. As the pod's PID 1 the
  // agent also reaps orphans that are reparented to it.
  int status = 0;
  bool exited = false;
  auto drain_until = std::chrono::steady_clock::time_point::max();
  for (;;) {
    if (!exited) {
      int reaped = 0;
      for (pid_t r; (r = ::waitpid(-1, &reaped, WNOHANG)) > 0;) {
        if (r == pid) {
          status = reaped;
          exited = true;
          drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
          break;
        }
      }
    }
    if (std::chrono::steady_clock::now() >= drain_until) break;
    pollfd p{out[0], POLLIN, 0};
    int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    WriteAll(1, buf, static_cast<size_t>(n));  // the pod's log
    size_t keep = std::min(static_cast<size_t>(n), kResultLimit - std::min(kResultLimit, result.size()));
    result.append(buf, keep);
    truncated = truncated || keep < static_cast<size_t>(n);
  }
  ::close(out[0]);
  while (!exited) {
    pid_t r = ::waitpid(pid, &status, 0);
    if (r == pid || (r < 0 && errno != EINTR)) exited = true;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  nlohmann::json message = nlohmann::json::object();
  nlohmann::json out_params = nlohmann::json::object();
  for (const auto& [name, path] : params) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;  // not written: the controller applies valueFrom.default or reports it
    std::stringstream text;
    text << in.rdbuf();
    out_params[name] = TrimTrailingNewlines(text.str());
  }
  message["parameters"] = out_params;
  std::string artifact_error;
  nlohmann::json refs = StoreOutputs(repo, artifacts, code, &artifact_error);
  if (!refs.empty()) message["artifacts"] = std::move(refs);
  if (!artifact_error.empty()) message["error"] = artifact_error;
  message["result"] = TrimTrailingNewlines(result);
  if (truncated) message["note"] = "stdout over 256 KiB; outputs.result holds its first 256 KiB";
  // Output that is not UTF-8 (binary stdout, a cut character) is kept with U+FFFD for bad bytes.
  constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
  std::string text = message.dump(-1, ' ', false, kReplace);
  const size_t limit = std::min(flags.message_limit, kMessageLimit);
  if (text.size() > limit && !flags.artifact_root.empty() && artifact_error.empty()) {
    // Too large for a termination message: the whole message goes to the artifact repository
    // (content-addressed, as an artifact) and the termination message holds its ref, which the
    // controller reads from its own mount of the volume.
    auto ref = StoreMessage(repo, flags.artifact_root, text);
    if (ref) {
      WriteMessage(flags, nlohmann::json{{"outputs", {{"sha256", ref->sha256}, {"size", ref->size}}}}.dump());
      return code;
    }
    std::fprintf(stderr, "kiln exec: cannot store the outputs in the artifact repository: %s\n",
                 ref.error().message().c_str());
  }
  if (text.size() > limit) {
    message.erase("result");
    message["note"] = "outputs.result left out: with it the termination message would be " +
                      std::to_string(text.size()) + " bytes, more than the " + std::to_string(limit) +
                      " Kubernetes keeps";
    text = message.dump(-1, ' ', false, kReplace);
  }
  if (text.size() > limit && !artifact_error.empty()) {
    text = nlohmann::json{{"error", artifact_error}}.dump(-1, ' ', false, kReplace);  // the first cause
  } else if (text.size() > limit) {
    const bool with_artifacts = message.contains("artifacts");
    text = nlohmann::json{{"error", std::string(with_artifacts ? "output parameters and artifact refs are "
                                                               : "output parameters are ") +
                                        std::to_string(text.size()) + " bytes as a termination message, more than the " +
                                        std::to_string(limit) + " Kubernetes keeps; " +
                                        (with_artifacts ? "pack many output artifacts into one directory artifact"
                                                        : "write large outputs as artifacts")}}
               .dump(-1, ' ', false, kReplace);
  }
  WriteMessage(flags, text);
  return code;
}

}  // namespace

int ExecMain(int argc, char** argv) {
  ExecFlags flags;
  constexpr const char* kUsage =
      "usage: kiln exec [--param NAME=PATH]... [--termination-log PATH] [--message-limit BYTES]\n"
      "                 [--artifact-root DIR --artifacts JSON] -- COMMAND [ARG]...\n"
      "The agent in a Kubernetes step's pod: places the input artifacts from the repository at\n"
      "DIR, runs COMMAND, passes its stdout through, stores the output artifacts, and writes\n"
      "outputs.result, the output parameters read from the files and the artifacts' refs as JSON\n"
      "to the termination log (default /dev/termination-log). Exits with COMMAND's exit code.\n";
  int i = 2;  // argv[0] kiln, argv[1] exec
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--message-limit" && i + 1 < argc) {
      char* end = nullptr;
      unsigned long n = std::strtoul(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || n == 0) {
        std::fprintf(stderr, "kiln exec: --message-limit %s: expected a positive number of bytes\n", argv[i]);
        return 2;
      }
      flags.message_limit = n;
    } else if (a == "--artifact-root" && i + 1 < argc) {
      flags.artifact_root = argv[++i];
    } else if (a == "--artifacts" && i + 1 < argc) {
      flags.artifacts = argv[++i];
    } else if ((a == "--param" || a == "--termination-log") && i + 1 < argc) {
      (a == "--param" ? flags.params.emplace_back() : flags.termination_log) = argv[++i];
    } else if (a.starts_with("--param=")) {
      flags.params.push_back(a.substr(8));
    } else if (a.starts_with("--termination-log=")) {
      flags.termination_log = a.substr(18);
    } else if (a.starts_with("-")) {
      std::fprintf(stderr, "kiln exec: unknown flag %s (the command goes after --)\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      break;  // the command
    }
  }
  for (; i < argc; ++i) flags.command.emplace_back(argv[i]);
  return Exec(flags);
}


}  // namespace kiln::cli
