// Accelerator profiles: friendly names for kinds of GPU ("a100-80gb", "t4") mapped to the node
// labels that mark such nodes, for the Kubernetes executor. A step names one, or an ordered
// fallback list, with the annotation `kiln.dev/accelerator`; its pod gets the profile as
// required node affinity. Built-in profiles cover the labels of NVIDIA GPU feature discovery
// (nvidia.com/gpu.product), GKE (cloud.google.com/gke-accelerator) and Karpenter on AWS
// (karpenter.k8s.aws/instance-gpu-name); a configuration file adds or replaces profiles
// (docs/kubernetes.md, "Accelerator profiles"). Pure, no I/O except Load's read of the file.
// Thread-safety: immutable once built.
#ifndef KILN_EXECUTOR_ACCELERATORS_H_
#define KILN_EXECUTOR_ACCELERATORS_H_

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace kiln::executor {

inline constexpr std::string_view kAnnotationAccelerator = "kiln.dev/accelerator";
inline constexpr std::string_view kAnnotationPendingTimeout = "kiln.dev/pending-timeout";
// On a Job: the profile its pod asks for (from the step's list).
inline constexpr std::string_view kAnnotationAcceleratorProfile = "kiln.dev/accelerator-profile";

struct AcceleratorProfile {
  std::string name;
  // Node selector terms, any of which a node may match (nodeAffinity's ORed
  // nodeSelectorTerms): [{"matchExpressions": [{key, operator: In, values}]}].
  nlohmann::json terms = nlohmann::json::array();
};

class AcceleratorProfiles {
 public:
  // The built-in profiles only.
  AcceleratorProfiles();

  // The built-in profiles, then those of the YAML file at `path`:
  //   accelerators:
  //     a100-80gb:                       # a profile: a list of label sets, any of which fits
  //     - nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB
  //     - karpenter.k8s.aws/instance-gpu-name: a100
  //       karpenter.k8s.aws/instance-gpu-memory: "81920"   # a set's labels must all match
  //     my-pool:
  //     - pool: [gpu-a, gpu-b]           # a list: any of the values
  //   cpuOnlySteps:                      # optional: required node affinity of steps without GPUs
  //   - {key: nvidia.com/gpu.present, operator: DoesNotExist}
  // A profile in the file replaces the built-in one of its name. Errors name the file, line and
  // column and say what is expected.
  static Result<AcceleratorProfiles> Load(const std::string& path);

  const AcceleratorProfile* Find(std::string_view name) const;
  std::vector<std::string> Names() const;
  // Node selector requirements ([{key, operator, values?}]) added to the required node
  // affinity of pods that request no GPU; empty when not configured.
  const nlohmann::json& cpu_only() const { return cpu_only_; }

 private:
  std::map<std::string, AcceleratorProfile, std::less<>> profiles_;
  nlohmann::json cpu_only_ = nlohmann::json::array();
};

// The built-in profiles (one shared instance).
const AcceleratorProfiles& BuiltinAccelerators();

// The profile names of a `kiln.dev/accelerator` value: "a100-80gb", "a100-80gb, t4" or
// "[a100-80gb, t4]" (an ordered fallback list). Empty names are dropped.
std::vector<std::string> ParseAcceleratorList(std::string_view value);

// Adds `terms` (ORed node selector terms) to the required node affinity of `pod_spec`: a pod
// with terms of its own must match one of them *and* one of `terms`, so the result is every
// own term joined with every profile term.
void RequireNodeTerms(nlohmann::json& pod_spec, const nlohmann::json& terms);

// What a step asks of its placement, from its pod annotations.
struct Placement {
  std::vector<std::string> accelerators;                  // kiln.dev/accelerator, in order
  std::optional<std::chrono::nanoseconds> pending_timeout;  // kiln.dev/pending-timeout
};
// Errors (kInvalidArgument, naming the annotation): an unknown profile (with the known ones),
// a pending timeout that is not a positive Go duration.
Result<Placement> PlacementOf(const nlohmann::json& annotations, const AcceleratorProfiles& profiles);

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_ACCELERATORS_H_
