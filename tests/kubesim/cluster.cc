#include "tests/kubesim/cluster.h"

#include <yaml-cpp/yaml.h>

namespace kiln::kubesim {
namespace {

json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      // Every scalar stays text: labels, taint values and quantities are all strings in the API.
      return node.as<std::string>();
    default:
      return nullptr;
  }
}

}  // namespace

Result<std::vector<json>> LoadCluster(const std::string& path) {
  json doc;
  try {
    doc = ToJson(YAML::LoadFile(path));
  } catch (const YAML::Exception& e) {
    return MakeError(Code::kInvalidArgument, e.what(), path);
  }
  if (!doc.is_object() || !doc.contains("nodes") || !doc["nodes"].is_array()) {
    return MakeError(Code::kInvalidArgument, "expected a map with a list \"nodes\"", path);
  }
  std::vector<json> nodes;
  int index = 0;
  for (const json& n : doc["nodes"]) {
    std::string where = path + ": nodes[" + std::to_string(index++) + "]";
    if (!n.is_object() || !n.contains("name") || !n["name"].is_string()) {
      return MakeError(Code::kInvalidArgument, "each node needs a \"name\"", where);
    }
    std::string name = n["name"];
    json labels = {{"kubernetes.io/hostname", name},
                   {"kubernetes.io/os", "linux"},
                   {"kubernetes.io/arch", "amd64"},
                   {"beta.kubernetes.io/os", "linux"},
                   {"beta.kubernetes.io/arch", "amd64"}};
    if (n.contains("labels")) {
      if (!n["labels"].is_object()) return MakeError(Code::kInvalidArgument, "labels must be a map", where);
      for (const auto& [k, v] : n["labels"].items()) labels[k] = v;
    }
    json capacity = {{"cpu", "8"}, {"memory", "32Gi"}, {"pods", "110"}, {"ephemeral-storage", "100Gi"}};
    if (n.contains("capacity")) {
      if (!n["capacity"].is_object()) return MakeError(Code::kInvalidArgument, "capacity must be a map", where);
      for (const auto& [k, v] : n["capacity"].items()) capacity[k] = v;
    }
    json allocatable = capacity;
    if (n.contains("allocatable") && n["allocatable"].is_object()) {
      for (const auto& [k, v] : n["allocatable"].items()) allocatable[k] = v;
    }
    json spec = json::object();
    if (n.contains("taints")) {
      if (!n["taints"].is_array()) return MakeError(Code::kInvalidArgument, "taints must be a list", where);
      spec["taints"] = n["taints"];
    }
    std::string ip = "192.168.0." + std::to_string(index + 1);
    std::string now = Rfc3339(std::chrono::system_clock::now());
    auto cond = [&](const char* type, const char* status, const char* reason, const char* message) {
      return json{{"type", type}, {"status", status}, {"lastHeartbeatTime", now},
                  {"lastTransitionTime", now}, {"reason", reason}, {"message", message}};
    };
    nodes.push_back(
        {{"metadata", {{"name", name}, {"labels", labels}}},
         {"spec", spec},
         {"status",
          {{"capacity", capacity},
           {"allocatable", allocatable},
           {"conditions",
            {cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
             cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
             cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
             cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")}},
           {"addresses", {{{"type", "InternalIP"}, {"address", ip}}, {{"type", "Hostname"}, {"address", name}}}},
           {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 10250}}}}},
           {"nodeInfo",
            {{"machineID", RandomHex(32)},
             {"systemUUID", NewUid()},
             {"bootID", NewUid()},
             {"kernelVersion", "6.1.0-kubesim"},
             {"osImage", "kubesim"},
             {"containerRuntimeVersion", "containerd://1.7.24"},
             {"kubeletVersion", "v1.32.0-kubesim"},
             {"kubeProxyVersion", "v1.32.0-kubesim"},
             {"operatingSystem", "linux"},
             {"architecture", "amd64"}}}}}});
  }
  return nodes;
}

}  // namespace kiln::kubesim
