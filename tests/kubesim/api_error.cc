#include "tests/kubesim/api_error.h"

#include "tests/kubesim/resources.h"

namespace kiln::kubesim {

json ApiError::ToStatus() const {
  json status = {{"kind", "Status"},  {"apiVersion", "v1"}, {"metadata", json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", reason},
                 {"details", details}, {"code", code}};
  if (details.empty()) status["details"] = json::object();
  if (reason.empty()) status.erase("reason");
  return status;
}

std::string QualifiedResource(const ResourceInfo& r) {
  return r.group.empty() ? r.name : r.name + "." + r.group;
}

namespace {
json Details(const ResourceInfo& r, const std::string& name) {
  json d = {{"name", name}, {"kind", r.name}};
  if (!r.group.empty()) d["group"] = r.group;
  return d;
}
}  // namespace

ApiError NotFound(const ResourceInfo& r, const std::string& name) {
  return {404, "NotFound", QualifiedResource(r) + " \"" + name + "\" not found", Details(r, name)};
}

ApiError AlreadyExists(const ResourceInfo& r, const std::string& name) {
  return {409, "AlreadyExists", QualifiedResource(r) + " \"" + name + "\" already exists",
          Details(r, name)};
}

ApiError Conflict(const ResourceInfo& r, const std::string& name, const std::string& why) {
  return {409, "Conflict",
          "Operation cannot be fulfilled on " + QualifiedResource(r) + " \"" + name + "\": " + why,
          Details(r, name)};
}

ApiError StaleConflict(const ResourceInfo& r, const std::string& name) {
  return Conflict(r, name,
                  "the object has been modified; please apply your changes to the latest version "
                  "and try again");
}

ApiError Invalid(const ResourceInfo& r, const std::string& name, std::vector<Cause> causes) {
  std::string message = r.kind + (r.group.empty() ? "" : "." + r.group) + " \"" + name +
                        "\" is invalid: ";
  json list = json::array();
  for (size_t i = 0; i < causes.size(); ++i) {
    if (i > 0) message += ", ";
    message += causes[i].field + ": " + causes[i].message;
    list.push_back({{"reason", causes[i].reason},
                    {"message", causes[i].message},
                    {"field", causes[i].field}});
  }
  if (causes.size() > 1) {
    // Kubernetes wraps several errors in brackets: `is invalid: [a: x, b: y]`.
    size_t at = message.find("is invalid: ") + 12;
    message.insert(at, "[");
    message += "]";
  }
  json details = {{"name", name}, {"kind", r.kind}, {"causes", list}};
  if (!r.group.empty()) details["group"] = r.group;
  return {422, "Invalid", message, details};
}

ApiError BadRequest(const std::string& message) { return {400, "BadRequest", message, {}}; }

ApiError MethodNotAllowed() {
  return {405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
          {}};
}

ApiError ResourceNotFoundPath() {
  return {404, "NotFound", "the server could not find the requested resource", {}};
}

ApiError Expired(const std::string& message) { return {410, "Expired", message, {}}; }
ApiError Gone(const std::string& message) { return {410, "Gone", message, {}}; }

ApiError Unauthorized() { return {401, "Unauthorized", "Unauthorized", {}}; }

ApiError UnsupportedMediaType() {
  return {415, "UnsupportedMediaType",
          "the body of the request was in an unknown format - accepted media types include: "
          "application/json-patch+json, application/merge-patch+json, "
          "application/strategic-merge-patch+json",
          {}};
}

ApiError InternalError(const std::string& message) {
  return {500, "InternalError", "Internal error occurred: " + message,
          {{"causes", json::array({{{"message", message}}})}}};
}

ApiError TooManyRequests(int retry_after_seconds) {
  return {429, "TooManyRequests", "Too many requests, please try again later.",
          {{"retryAfterSeconds", retry_after_seconds}}};
}

ApiError ServiceUnavailable(const std::string& message) {
  return {503, "ServiceUnavailable", message, {}};
}

}  // namespace kiln::kubesim
