// Error values returned across module boundaries (std::expected<T, Error>).
// Thread-safety: plain values, safe to copy between threads.
#ifndef KILN_BASE_ERROR_H_
#define KILN_BASE_ERROR_H_

#include <expected>
#include <string>
#include <string_view>

namespace kiln {

// What kind of failure an Error is; api/ maps each to one HTTP status.
enum class Code {
  kInvalidArgument,   // bad user input: a manifest, a flag, a request body
  kNotFound,          // a file, workflow or template that does not exist
  kAlreadyExists,
  kFailedPrecondition,
  kResourceExhausted, // an input over a configured limit (size, depth, node budget)
  kUnavailable,       // an environment failure worth retrying
  kInternal,
};

std::string_view CodeName(Code code);

// An error: a code, a message written for the person who has to act on it, and where it
// applies (a file:line:column, a field path, a request path), already folded into `where`.
class Error {
 public:
  Error(Code code, std::string message, std::string where = {})
      : code_(code), message_(std::move(message)), where_(std::move(where)) {}

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& where() const { return where_; }

  // "where: message", or just the message when there is no location.
  std::string ToString() const;

 private:
  Code code_;
  std::string message_;
  std::string where_;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> MakeError(Code code, std::string message, std::string where = {}) {
  return std::unexpected<Error>(Error(code, std::move(message), std::move(where)));
}

}  // namespace kiln

#endif  // KILN_BASE_ERROR_H_
