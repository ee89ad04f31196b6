// The bearer token a kube::Client sends: a fixed token, the content of a token file that is
// read again once the copy is older than a maximum age, or the token an exec credential plugin
// prints. Bound service-account tokens (the in-cluster token) and the files behind a
// kubeconfig's tokenFile are rotated by the kubelet or by whoever wrote them; client-go re-reads
// them every minute, and so does kiln. An exec plugin (aws eks get-token,
// gke-gcloud-auth-plugin, kubelogin, ...) is run when there is no token yet, when the last one
// reached its expirationTimestamp, and after the server answered 401 (Invalidate); as in
// client-go it runs synchronously, its stdin closed and its stderr kiln's.
// Thread-safety: not thread-safe; a Client uses its TokenSource on its io_context's thread.
#ifndef KILN_KUBE_TOKEN_SOURCE_H_
#define KILN_KUBE_TOKEN_SOURCE_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "kube/kubeconfig.h"

namespace kiln::kube {

// Runs exec plugin `config` with KUBERNETES_EXEC_INFO=`exec_info` in its environment (and
// config.env added); returns what it printed on stdout. Blocks until it exits. Errors:
// kNotFound when the command is not found (with the plugin's installHint), kUnavailable
// when it cannot start, exits non-zero, runs longer than config.timeout (it is then killed)
// or prints over 1 MiB.
using ExecRunner = std::function<Result<std::string>(const ExecConfig& config, const std::string& exec_info)>;
Result<std::string> RunExecPlugin(const ExecConfig& config, const std::string& exec_info);

// The KUBERNETES_EXEC_INFO a plugin of `cluster` gets: an ExecCredential with
// spec.interactive false and, with provideClusterInfo, spec.cluster (server,
// certificate-authority-data, insecure-skip-tls-verify).
std::string ExecInfo(const ClusterConfig& cluster);

struct ExecCredential {
  std::string token;
  std::optional<std::chrono::system_clock::time_point> expires;  // status.expirationTimestamp
};
// Parses a plugin's output. Errors (kInvalidArgument) name the plugin and what is wrong: not
// JSON, another kind or apiVersion than asked for, no status.token (a plugin that returns
// only a client certificate is refused: kiln takes tokens from plugins), a bad timestamp.
Result<ExecCredential> ParseExecCredential(const ExecConfig& config, std::string_view text);

class TokenSource {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;

  // `token` is the token as first read (or the fixed token when `file` is empty); `file`, when
  // set, is read again by Token() once the copy is `max_age` old. `now` is the clock (tests
  // pass a fake one).
  TokenSource(std::string token, std::string file, std::chrono::milliseconds max_age,
              Now now = [] { return std::chrono::steady_clock::now(); });

  using SysNow = std::function<std::chrono::system_clock::time_point()>;
  // The token of exec plugin `exec`, run by `run` with KUBERNETES_EXEC_INFO `exec_info`;
  // `now` is the wall clock that expirationTimestamp is compared with.
  TokenSource(ExecConfig exec, std::string exec_info, ExecRunner run = RunExecPlugin,
              SysNow now = [] { return std::chrono::system_clock::now(); });

  // The token to send now ("" for none). When the file is due and cannot be read or is empty,
  // the token read before is kept (a request with an expired token then gets a 401 that names
  // the cause) and the failure is in last_error() until a read succeeds; the next attempt is
  // made at the next call, so a file that comes back is picked up at once.
  const std::string& Token();

  // Exec plugins: the server refused token `sent` (401), so the next Token() runs the plugin
  // again, unless the token was refreshed since `sent` went out (several requests answered 401
  // together run the plugin once). Returns false (and does nothing) for other sources.
  bool Invalidate(const std::string& sent);
  bool exec() const { return exec_.has_value(); }
  // Times the exec plugin ran.
  int exec_runs() const { return exec_runs_; }

  // Why the last re-read (or plugin run) failed, naming the file (or plugin); nullopt after a
  // successful one.
  const std::optional<Error>& last_error() const { return last_error_; }
  // Reads of the file made by Token() (not counting the first, done by the caller).
  int rereads() const { return rereads_; }

 private:
  std::string token_;
  std::string file_;
  std::chrono::milliseconds max_age_;
  Now now_;
  std::chrono::steady_clock::time_point read_at_;
  std::optional<Error> last_error_;
  int rereads_ = 0;
  // Exec plugin mode.
  const std::string& ExecToken();
  std::optional<ExecConfig> exec_;
  std::string exec_info_;
  ExecRunner run_;
  SysNow sys_now_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  bool stale_ = false;  // Invalidate()d
  int exec_runs_ = 0;
};

// Reads a token file: its content without the trailing newline. Errors: kNotFound when it
// cannot be read, kInvalidArgument when it is empty; both name the file.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace kiln::kube

#endif  // KILN_KUBE_TOKEN_SOURCE_H_
