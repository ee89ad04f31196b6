#include "kube/token_source.h"

#include <openssl/evp.h>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/process/args.hpp>
#include <boost/process/async_pipe.hpp>
#include <boost/process/child.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "dag/expr/go_time.h"

namespace kiln::kube {

namespace {

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

constexpr size_t kExecOutputLimit = 1 << 20;

std::string Hint(const ExecConfig& c) { return c.install_hint.empty() ? "" : "\n" + c.install_hint; }

std::string PluginName(const ExecConfig& c) { return "exec plugin \"" + c.command + "\" (user \"" + c.user + "\")"; }

}  // namespace

Result<std::string> RunExecPlugin(const ExecConfig& config, const std::string& exec_info) {
  namespace bp = boost::process;
  boost::system::error_code fs_ec;
  boost::filesystem::path exe = config.command.find('/') != std::string::npos ? boost::filesystem::path(config.command)
                                                                                : bp::search_path(config.command);
  if (exe.empty() || !boost::filesystem::exists(exe, fs_ec)) {
    return MakeError(Code::kNotFound, PluginName(config) + ": the command is not found" +
                                          (config.command.find('/') == std::string::npos ? " in $PATH" : "") +
                                          Hint(config));
  }
  exe = boost::filesystem::absolute(exe);
  if (::access(exe.c_str(), X_OK) != 0) {
    return MakeError(Code::kFailedPrecondition, PluginName(config) + ": " + exe.string() + " is not executable" + Hint(config));
  }
  // The plugin's variables go through env(1): Boost 1.74's basic_environment::operator[] reads
  // past the end of shorter entries (its find compares name.size() bytes), which ASan reports.
  // env(1) takes NAME=VALUE words up to the command, so neither may be mistaken for the other.
  if (exe.string().find('=') != std::string::npos) {
    return MakeError(Code::kInvalidArgument, PluginName(config) + ": kiln cannot run a command whose path has '='");
  }
  std::vector<std::string> argv;
  for (const auto& [name, value] : config.env) {
    if (name.empty() || name.find('=') != std::string::npos) {
      return MakeError(Code::kInvalidArgument, PluginName(config) + ": env name \"" + name + "\" is empty or has '='");
    }
    argv.push_back(name + "=" + value);
  }
  argv.push_back("KUBERNETES_EXEC_INFO=" + exec_info);
  argv.push_back(exe.string());
  for (const std::string& a : config.args) argv.push_back(a);

  // Run on an io_context of its own, so that a plugin that hangs (a prompt nobody answers) is
  // stopped after config.timeout and one that floods stdout is cut at kExecOutputLimit.
  boost::asio::io_context io;
  bp::async_pipe out(io);
  std::error_code ec;
  bp::child child(boost::filesystem::path("/usr/bin/env"), bp::args(argv), bp::std_out > out, bp::std_in < bp::null, ec);
  if (ec) return MakeError(Code::kUnavailable, PluginName(config) + ": cannot start /usr/bin/env: " + ec.message());
  std::string text;
  std::array<char, 65536> buf;
  bool too_much = false;
  std::function<void(const boost::system::error_code&, size_t)> on_read = [&](const boost::system::error_code& e, size_t n) {
    text.append(buf.data(), n);
    if (text.size() > kExecOutputLimit) {
      too_much = true;
      return;
    }
    if (!e) out.async_read_some(boost::asio::buffer(buf), on_read);
  };
  out.async_read_some(boost::asio::buffer(buf), on_read);
  io.run_for(config.timeout);
  const bool done = io.stopped();
  if (!done || too_much) {
    child.terminate(ec);
    child.wait(ec);
    return MakeError(Code::kUnavailable, PluginName(config) +
                                             (too_much ? " printed more than " + std::to_string(kExecOutputLimit >> 20) + " MiB"
                                                       : " did not finish in " + std::to_string(config.timeout.count()) +
                                                             " s (does it wait for input? kiln runs it without a terminal)") +
                                             Hint(config));
  }
  child.wait(ec);
  if (ec) return MakeError(Code::kUnavailable, PluginName(config) + ": " + ec.message());
  if (child.exit_code() != 0) {
    return MakeError(Code::kUnavailable, PluginName(config) + " exited with status " + std::to_string(child.exit_code()) +
                                             " (its messages are on kiln's stderr)" + Hint(config));
  }
  return text;
}

std::string ExecInfo(const ClusterConfig& cluster) {
  nlohmann::json spec = {{"interactive", false}};
  if (cluster.exec && cluster.exec->provide_cluster_info) {
    nlohmann::json c = {{"server", cluster.server}};
    if (!cluster.ca_pem.empty()) c["certificate-authority-data"] = Base64(cluster.ca_pem);
    if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
    spec["cluster"] = std::move(c);
  }
  return nlohmann::json{{"apiVersion", cluster.exec ? cluster.exec->api_version : "client.authentication.k8s.io/v1"},
                        {"kind", "ExecCredential"},
                        {"spec", std::move(spec)}}
      .dump();
}

Result<ExecCredential> ParseExecCredential(const ExecConfig& config, std::string_view text) {
  auto bad = [&](const std::string& what) { return MakeError(Code::kInvalidArgument, PluginName(config) + ": " + what); };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("its output is not an ExecCredential in JSON");
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (str("kind") != "ExecCredential") return bad("it printed kind \"" + str("kind") + "\", not ExecCredential");
  if (str("apiVersion") != config.api_version) {
    return bad("it answered apiVersion \"" + str("apiVersion") + "\" to a request for " + config.api_version);
  }
  nlohmann::json status = j.contains("status") && j["status"].is_object() ? j["status"] : nlohmann::json::object();
  ExecCredential c;
  if (status.contains("token") && status["token"].is_string()) c.token = status["token"].get<std::string>();
  if (c.token.empty()) {
    if (status.contains("clientCertificateData")) {
      return bad("it returned a client certificate; kiln takes only tokens from exec plugins (use a plugin mode that "
                 "prints a token, or client-certificate-data in the kubeconfig)");
    }
    return bad("its ExecCredential has no status.token");
  }
  if (auto e = status.find("expirationTimestamp"); e != status.end() && e->is_string()) {
    auto t = expr::ParseRfc3339(e->get<std::string>());
    if (!t) return bad("status.expirationTimestamp \"" + e->get<std::string>() + "\" is not an RFC 3339 time");
    c.expires = std::chrono::system_clock::time_point(std::chrono::seconds(t->seconds));
  }
  return c;
}

TokenSource::TokenSource(ExecConfig exec, std::string exec_info, ExecRunner run, SysNow now)
    : max_age_(0),
      now_([] { return std::chrono::steady_clock::now(); }),
      read_at_(now_()),
      exec_(std::move(exec)),
      exec_info_(std::move(exec_info)),
      run_(std::move(run)),
      sys_now_(std::move(now)) {}

bool TokenSource::Invalidate(const std::string& sent) {
  if (!exec_) return false;
  if (sent != token_) return true;  // refreshed since that request: its 401 is about the old one
  stale_ = true;
  return true;
}

const std::string& TokenSource::ExecToken() {
  bool expired = expires_ && sys_now_() >= *expires_;
  if (!token_.empty() && !expired && !stale_) return token_;
  ++exec_runs_;
  auto out = run_(*exec_, exec_info_);
  auto cred = out ? ParseExecCredential(*exec_, *out) : Result<ExecCredential>(std::unexpected(out.error()));
  if (!cred) {
    // An expired or refused token is useless: drop it, so the request fails with the
    // plugin's error rather than a 401.
    last_error_ = cred.error();
    if (expired || stale_) token_.clear();
    return token_;
  }
  token_ = std::move(cred->token);
  expires_ = cred->expires;
  stale_ = false;
  last_error_.reset();
  return token_;
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, "cannot read " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty()) return MakeError(Code::kInvalidArgument, "token file " + path + " is empty");
  return token;
}

TokenSource::TokenSource(std::string token, std::string file, std::chrono::milliseconds max_age,
                         Now now)
    : token_(std::move(token)),
      file_(std::move(file)),
      max_age_(max_age),
      now_(std::move(now)),
      read_at_(now_()) {}

const std::string& TokenSource::Token() {
  if (exec_) return ExecToken();
  if (file_.empty()) return token_;
  auto now = now_();
  if (now - read_at_ < max_age_) return token_;
  ++rereads_;
  auto read = ReadTokenFile(file_);
  if (!read) {
    // Keep the copy and try again on the next call: a rotation may be mid-way (the kubelet
    // swaps a symlink), and a token that expired shows up as a 401 on the request itself.
    last_error_ = read.error();
    return token_;
  }
  token_ = std::move(*read);
  read_at_ = now;
  last_error_.reset();
  return token_;
}

}  // namespace kiln::kube
