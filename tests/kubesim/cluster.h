// The cluster shape file: nodes with labels, taints and capacity (YAML or JSON), turned into
// Node objects as a kubelet would register them. Thread-safety: pure functions.
#ifndef KILN_TESTS_KUBESIM_CLUSTER_H_
#define KILN_TESTS_KUBESIM_CLUSTER_H_

#include <string>
#include <vector>

#include "base/error.h"
#include "tests/kubesim/util.h"

namespace kiln::kubesim {

// Reads `path`:
//   nodes:
//   - name: a100-1
//     labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
//     taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
//     capacity: {cpu: "32", memory: 256Gi, nvidia.com/gpu: "8"}   # pods defaults to 110
//     allocatable: {...}                                           # defaults to capacity
// Returns the Node objects, or kInvalidArgument naming the file and the bad field.
Result<std::vector<json>> LoadCluster(const std::string& path);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_CLUSTER_H_
