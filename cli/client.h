// The kiln CLI as a client of `kiln server` (docs/api.md): which server and token to use, calls
// that print what went wrong the way every subcommand does, and the conversion of the server's
// Argo-style JSON back into the store's records so that `kiln get`, `list` and `watch` render a
// server's workflows exactly as they render the embedded store's.
//
// Where the server and token come from, each on its own, first found wins:
//   --server URL / --token T      (and --ca-file, --insecure-skip-tls-verify)
//   $KILN_SERVER / $KILN_TOKEN
//   the config file $XDG_CONFIG_HOME/kiln/config.yaml (default ~/.config/kiln/config.yaml):
//     server: https://kiln.example:2746
//     token: ...
//     namespace: ml                  (the default for -n; else "default")
//     ca-file: /etc/kiln/ca.pem
//     insecure-skip-tls-verify: false
// No server anywhere means the embedded mode (the local data directory).
//
// Exit codes: 1 when the server or the connection fails, 2 for usage errors.
// Thread-safety: none needed; the CLI runs these on its one thread.
#ifndef KILN_CLI_CLIENT_H_
#define KILN_CLI_CLIENT_H_

#include <CLI/CLI.hpp>
#include <expected>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "cli/workflow_view.h"
#include "http/client.h"

namespace kiln::cli {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// The client flags of one subcommand, as given on the command line ("" when not given).
struct ClientFlags {
  std::string server;
  std::string token;
  std::string ca_file;
  bool insecure_skip_tls_verify = false;
  std::string namespace_;  // -n; filled by the subcommand's own option
};

// Adds --server, --token, --ca-file and --insecure-skip-tls-verify to `cmd`.
// REQUIRES: `flags` outlives `cmd`'s parsing and callback.
void AddClientFlags(CLI::App& cmd, ClientFlags& flags);

// A resolved client configuration.
struct ClientConfig {
  http::Endpoint endpoint;
  std::string namespace_;  // -n, else the config file's, else "default"
};

// Where the config file is: $XDG_CONFIG_HOME/kiln/config.yaml, else ~/.config/kiln/config.yaml
// ("" when neither variable is set).
std::string ConfigFilePath();

// The server to talk to, from the flags, the environment and the config file (see the top of
// this file); nullopt when none of them names a server. Errors (kInvalidArgument): a config file
// that is not a YAML map of known keys to scalars, each error with file:line:column.
Result<std::optional<ClientConfig>> ResolveClient(const ClientFlags& flags);

// Resolves the client of a subcommand that has an embedded mode (get, list, logs): nullopt for
// the embedded mode, when no server is configured or `data_dir_given` (--data-dir names the
// local store, whatever the environment says). When it cannot decide it prints why and returns
// the exit code: a bad config file (1), --server together with --data-dir (2).
std::expected<std::optional<ClientConfig>, int> ServerMode(std::string_view command,
                                                           const ClientFlags& flags,
                                                           bool data_dir_given);

// Calls to the server on behalf of subcommand `command` ("get", "list", ...). Every failure is
// printed to stderr as "kiln <command>: ..." with what to do about it, and makes exit_code()
// 1 (2 for a malformed --server URL or an unusable --ca-file); callers then stop and return
// exit_code().
class ServerClient {
 public:
  ServerClient(std::string command, ClientConfig config);

  const std::string& ns() const { return config_.namespace_; }
  const http::Endpoint& endpoint() const { return config_.endpoint; }
  int exit_code() const { return exit_code_; }
  // A file name for validation details the server reports without one (the submitted file).
  void set_detail_file(std::string file) { detail_file_ = std::move(file); }

  // "/api/v1/workflows/<ns>" (encoded), and "/api/v1/workflows/<ns>/<name>" when `name` is set.
  std::string WorkflowsPath(std::string_view name = "") const;

  // Sends a request; returns the parsed JSON body of a 2xx answer (null for an empty body), or
  // nullopt after printing the failure.
  std::optional<nlohmann::json> Call(std::string_view method, const std::string& target,
                                     std::string body = "", std::vector<http::Header> headers = {});

  // How a stream ended.
  enum class StreamEnd {
    kEnded,    // the server ended it
    kStopped,  // on_object returned false
    kFailed,   // printed; exit_code() is set
  };
  // Reads a newline-delimited JSON stream (watch events, log lines): `on_object` gets each
  // line's "result" object. A line with "error" instead is a failure (printed).
  StreamEnd Stream(const std::string& target,
                   const std::function<bool(const nlohmann::json& result)>& on_object);

  // Prints "kiln <command>: <message>" to stderr; exit_code() becomes 1 unless already set.
  void Fail(const std::string& message);

 private:
  void ReportTransport(const Error& error);
  void ReportStatus(int status, std::string_view body);

  std::string command_;
  ClientConfig config_;
  std::string detail_file_;
  int exit_code_ = 0;
};

// Milliseconds since the epoch of an RFC 3339 time ("2026-11-24T08:00:00Z",
// "2026-11-24T08:00:00.123+01:00"); 0 for null, "" or text that is not such a time.
int64_t ParseTimeMs(const nlohmann::json& value);

// The store's records for a Workflow object as the server returns it (docs/api.md): the workflow
// from metadata and status, a node per status.nodes entry (its parent is the node that lists it
// in "children", else its boundaryID), spec.arguments.parameters as the workflow's parameters,
// and the nodes' input and output parameters and artifacts. Missing fields stay empty.
WorkflowRecords RecordsFromWorkflowJson(const nlohmann::json& workflow);

// Follows workflow `name` (GET, then the workflow-events stream) until its phase is final,
// redrawing its `kiln get` view on a terminal, else printing a line per node phase change and the
// view at the end. Returns 0 when it Succeeded, else 1 (after printing why). In cli/watch.cc.
int WatchWorkflow(ServerClient& client, const std::string& name);

}  // namespace kiln::cli

#endif  // KILN_CLI_CLIENT_H_
