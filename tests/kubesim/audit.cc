#include "tests/kubesim/audit.h"

#include <nlohmann/json.hpp>

namespace kiln::kubesim {
namespace {

// "2026-04-26T18:35:42.123456Z" (metav1.MicroTime).
std::string Micro(SysTime t) {
  std::string nano = Rfc3339Nano(t);  // "...:42.123456789Z"
  size_t dot = nano.find('.');
  if (dot == std::string::npos || nano.size() < dot + 7) return nano;
  return nano.substr(0, dot + 7) + "Z";
}

}  // namespace

std::unique_ptr<AuditLog> AuditLog::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) return nullptr;
  return std::unique_ptr<AuditLog>(new AuditLog(file));
}

AuditLog::~AuditLog() { std::fclose(file_); }

void AuditLog::Record(const http::Request& request, const RequestInfo& info, SysTime received,
                      std::chrono::steady_clock::duration latency, const std::string& stage,
                      int code) {
  json event = {
      {"kind", "Event"},
      {"apiVersion", "audit.k8s.io/v1"},
      {"level", "Metadata"},
      {"auditID", NewUid()},
      {"stage", stage},
      {"requestURI", request.target},
      {"verb", info.verb},
      // kubesim has one identity: the kubeconfig's token, with cluster-admin powers.
      {"user",
       {{"username", "kubesim-admin"}, {"groups", {"system:masters", "system:authenticated"}}}}};
  std::string ip = request.remote.substr(0, request.remote.rfind(':'));
  if (ip.size() > 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  event["sourceIPs"] = json::array({ip});
  if (auto agent = request.GetHeader("User-Agent")) event["userAgent"] = std::string(*agent);
  if (info.is_resource) {
    json ref = {{"resource", info.resource}, {"apiVersion", info.api_version}};
    if (!info.ns.empty()) ref["namespace"] = info.ns;
    if (!info.name.empty()) ref["name"] = info.name;
    if (!info.api_group.empty()) ref["apiGroup"] = info.api_group;
    if (!info.subresource.empty()) ref["subresource"] = info.subresource;
    event["objectRef"] = ref;
  }
  if (code != 0) event["responseStatus"] = {{"metadata", json::object()}, {"code", code}};
  auto done = received + std::chrono::duration_cast<SysTime::duration>(latency);
  event["requestReceivedTimestamp"] = Micro(received);
  event["stageTimestamp"] = Micro(done);
  double ms = std::chrono::duration<double, std::milli>(latency).count();
  char latency_text[32];
  std::snprintf(latency_text, sizeof latency_text, "%.3fms", ms);
  event["annotations"] = {{"authorization.k8s.io/decision", "allow"},
                          {"authorization.k8s.io/reason", ""},
                          {"kubesim.kiln.dev/latency", latency_text}};
  std::string line = event.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace kiln::kubesim
