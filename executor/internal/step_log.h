// A step's log file: lines from stdout and stderr, each stamped with UTC time, up to a byte cap.
// Thread-safety: not thread-safe; used by ProcessRunner on its io_context thread.
#ifndef KILN_EXECUTOR_INTERNAL_STEP_LOG_H_
#define KILN_EXECUTOR_INTERNAL_STEP_LOG_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace kiln::executor::internal {

// "2026-11-23T21:05:03.123Z"
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

class StepLog {
 public:
  // A log that discards everything (no path).
  StepLog() = default;
  ~StepLog();
  StepLog(const StepLog&) = delete;
  StepLog& operator=(const StepLog&) = delete;

  // Creates or truncates `path`. Errors: kUnavailable "cannot open log file PATH: REASON".
  Result<void> Open(const std::string& path, uint64_t cap_bytes);

  // Appends `data` read from `stream` ("stdout", "stderr"): complete lines are written, a partial
  // one is kept until its newline (or until it reaches kMaxLineBytes, then written as a line).
  // Memory stays bounded by kMaxLineBytes per stream plus a write buffer.
  void Append(std::string_view stream, std::string_view data,
              std::chrono::system_clock::time_point now);
  // A line from kiln itself (stream "kiln").
  void Note(std::string_view text, std::chrono::system_clock::time_point now);
  // Writes partial lines and buffered bytes and closes the file. Idempotent.
  void Finish(std::chrono::system_clock::time_point now);

  uint64_t bytes_written() const { return written_; }
  bool truncated() const { return truncated_; }

  static constexpr size_t kMaxLineBytes = 16 << 10;

 private:
  struct Partial {
    std::string text;
  };
  Partial& PartialFor(std::string_view stream);
  void WriteLine(std::string_view stream, std::string_view text, const std::string& stamp);
  void Flush();

  int fd_ = -1;
  uint64_t cap_ = 0;
  uint64_t written_ = 0;  // bytes of lines accepted, the truncation line excluded
  bool truncated_ = false;
  std::string buffer_;
  Partial stdout_partial_;
  Partial stderr_partial_;
};

}  // namespace kiln::executor::internal

#endif  // KILN_EXECUTOR_INTERNAL_STEP_LOG_H_
