// A run's lock: two processes driving one workflow at once (`kiln run`/`kiln resume`, or a
// `kiln server`) would launch its steps twice. flock(2) on <workflow dir>/lock, released by the
// kernel when the process dies (kill -9); the file holds the holder's pid for the message.
// Thread-safety: one RunLock per thread; Held is thread-safe.
#ifndef KILN_API_RUN_LOCK_H_
#define KILN_API_RUN_LOCK_H_

#include <string>

#include "base/error.h"

namespace kiln::api {

class RunLock {
 public:
  RunLock() = default;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();
  // Errors: kFailedPrecondition when another process holds it (the message says which).
  Result<void> Acquire(const std::string& dir);
  // Whether another process holds the lock of `dir`.
  static bool Held(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace kiln::api

#endif  // KILN_API_RUN_LOCK_H_
