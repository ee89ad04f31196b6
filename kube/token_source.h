// The bearer token a kube::Client sends: a fixed token, or the content of a token file that is
// read again once the copy is older than a maximum age. Bound service-account tokens (the
// in-cluster token) and the files behind a kubeconfig's tokenFile are rotated by the kubelet
// or by whoever wrote them; client-go re-reads them every minute, and so does kiln.
// Thread-safety: not thread-safe; a Client uses its TokenSource on its io_context's thread.
#ifndef KILN_KUBE_TOKEN_SOURCE_H_
#define KILN_KUBE_TOKEN_SOURCE_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "base/error.h"

namespace kiln::kube {

class TokenSource {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;

  // `token` is the token as first read (or the fixed token when `file` is empty); `file`, when
  // set, is read again by Token() once the copy is `max_age` old. `now` is the clock (tests
  // pass a fake one).
  TokenSource(std::string token, std::string file, std::chrono::milliseconds max_age,
              Now now = [] { return std::chrono::steady_clock::now(); });

  // The token to send now ("" for none). When the file is due and cannot be read or is empty,
  // the token read before is kept (a request with an expired token then gets a 401 that names
  // the cause) and the failure is in last_error() until a read succeeds; the next attempt is
  // made at the next call, so a file that comes back is picked up at once.
  const std::string& Token();

  // Why the last re-read failed, naming the file; nullopt after a successful read.
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
};

// Reads a token file: its content without the trailing newline. Errors: kNotFound when it
// cannot be read, kInvalidArgument when it is empty; both name the file.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace kiln::kube

#endif  // KILN_KUBE_TOKEN_SOURCE_H_
