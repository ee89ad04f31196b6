#include "executor/internal/step_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace kiln::executor::internal {
namespace {

constexpr size_t kFlushBytes = 64 << 10;

}  // namespace

std::string FormatTimestamp(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return text;
}

StepLog::~StepLog() { Finish(std::chrono::system_clock::now()); }

Result<void> StepLog::Open(const std::string& path, uint64_t cap_bytes) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    return MakeError(Code::kUnavailable,
                     "cannot open log file " + path + ": " + std::strerror(errno));
  }
  cap_ = cap_bytes;
  return {};
}

StepLog::Partial& StepLog::PartialFor(std::string_view stream) {
  return stream == "stdout" ? stdout_partial_ : stderr_partial_;
}

void StepLog::Append(std::string_view stream, std::string_view data,
                     std::chrono::system_clock::time_point now) {
  if (fd_ < 0 || truncated_) return;
  const std::string stamp = FormatTimestamp(now);
  Partial& partial = PartialFor(stream);
  while (!data.empty() && !truncated_) {
    const size_t newline = data.find('\n');
    if (newline == std::string_view::npos) {
      const size_t room = kMaxLineBytes - partial.text.size();
      partial.text.append(data.substr(0, room));
      data.remove_prefix(std::min(room, data.size()));
      if (partial.text.size() >= kMaxLineBytes) {
        WriteLine(stream, partial.text, stamp);
        partial.text.clear();
      }
      continue;
    }
    if (partial.text.empty()) {
      WriteLine(stream, data.substr(0, newline), stamp);
    } else {
      partial.text.append(data.substr(0, newline));
      WriteLine(stream, partial.text, stamp);
      partial.text.clear();
    }
    data.remove_prefix(newline + 1);
  }
}

void StepLog::Note(std::string_view text, std::chrono::system_clock::time_point now) {
  if (fd_ < 0 || truncated_) return;
  WriteLine("kiln", text, FormatTimestamp(now));
}

void StepLog::WriteLine(std::string_view stream, std::string_view text, const std::string& stamp) {
  const size_t size = stamp.size() + 1 + stream.size() + 1 + text.size() + 1;
  if (written_ + size > cap_) {
    truncated_ = true;
    buffer_ += stamp;
    buffer_ += " kiln log truncated: it reached its cap of " + std::to_string(cap_) +
               " bytes; further output is discarded\n";
    Flush();
    stdout_partial_.text.clear();
    stderr_partial_.text.clear();
    return;
  }
  written_ += size;
  buffer_ += stamp;
  buffer_ += ' ';
  buffer_ += stream;
  buffer_ += ' ';
  buffer_ += text;
  buffer_ += '\n';
  if (buffer_.size() >= kFlushBytes) Flush();
}

void StepLog::Flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // a full disk loses log lines, never the step
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

void StepLog::Finish(std::chrono::system_clock::time_point now) {
  if (fd_ < 0) return;
  const std::string stamp = FormatTimestamp(now);
  if (!truncated_ && !stdout_partial_.text.empty()) {
    const std::string text = std::move(stdout_partial_.text);
    WriteLine("stdout", text, stamp);
  }
  if (!truncated_ && !stderr_partial_.text.empty()) {
    const std::string text = std::move(stderr_partial_.text);
    WriteLine("stderr", text, stamp);
  }
  Flush();
  ::close(fd_);
  fd_ = -1;
}

}  // namespace kiln::executor::internal
