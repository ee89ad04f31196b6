// Kubernetes Status errors (apimachinery pkg/api/errors), with the exact reasons, codes and
// message texts clients and tests compare. Thread-safety: plain values.
#ifndef KILN_TESTS_KUBESIM_API_ERROR_H_
#define KILN_TESTS_KUBESIM_API_ERROR_H_

#include <expected>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::kubesim {

using nlohmann::json;

struct ResourceInfo;

struct ApiError {
  int code = 500;
  std::string reason;   // "NotFound", "AlreadyExists", "Conflict", "Invalid", ...
  std::string message;
  json details = json::object();

  // The Status object: {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",...}.
  json ToStatus() const;
};

template <typename T>
using ApiResult = std::expected<T, ApiError>;

inline std::unexpected<ApiError> Fail(ApiError e) { return std::unexpected<ApiError>(std::move(e)); }

// "jobs.batch" for batch, "pods" for the core group.
std::string QualifiedResource(const ResourceInfo& r);

ApiError NotFound(const ResourceInfo& r, const std::string& name);
ApiError AlreadyExists(const ResourceInfo& r, const std::string& name);
ApiError Conflict(const ResourceInfo& r, const std::string& name, const std::string& why);
ApiError StaleConflict(const ResourceInfo& r, const std::string& name);
// 422: `Kind.group "name" is invalid: field: Reason text` with one cause per (field, reason, text).
struct Cause {
  std::string reason;  // FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
  std::string field;
  std::string message;  // "Required value: ..." / "Invalid value: ...: ..."
};
ApiError Invalid(const ResourceInfo& r, const std::string& name, std::vector<Cause> causes);
ApiError BadRequest(const std::string& message);
ApiError MethodNotAllowed();
ApiError ResourceNotFoundPath();  // "the server could not find the requested resource"
ApiError Expired(const std::string& message);  // 410, reason Expired
ApiError Gone(const std::string& message);     // 410, reason Gone
ApiError Unauthorized();
ApiError UnsupportedMediaType();
ApiError InternalError(const std::string& message);
ApiError TooManyRequests(int retry_after_seconds);
ApiError ServiceUnavailable(const std::string& message);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_API_ERROR_H_
