// The audit log (--audit-log PATH): one audit.k8s.io/v1 Event per request at level Metadata,
// as a JSON line, flushed as written so tests can read it while kubesim runs.
// Thread-safety: none; owned by the io_context thread.
#ifndef KILN_TESTS_KUBESIM_AUDIT_H_
#define KILN_TESTS_KUBESIM_AUDIT_H_

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "http/server.h"
#include "tests/kubesim/faults.h"
#include "tests/kubesim/util.h"

namespace kiln::kubesim {

class AuditLog {
 public:
  // Opens (appends to) `path`. Returns nullptr when it cannot be opened.
  static std::unique_ptr<AuditLog> Open(const std::string& path);
  ~AuditLog();

  // Writes the Event of one request: `stage` is ResponseComplete, or ResponseStarted for a
  // stream (watch, followed log) when its headers go out. `code` 0 means the connection was
  // dropped without an answer (the Event then has no responseStatus).
  void Record(const http::Request& request, const RequestInfo& info, SysTime received,
              std::chrono::steady_clock::duration latency, const std::string& stage, int code);

 private:
  explicit AuditLog(std::FILE* file) : file_(file) {}
  std::FILE* file_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_AUDIT_H_
