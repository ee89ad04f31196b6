// The emulated kube-scheduler: binds pending pods to nodes by nodeSelector, node affinity
// (required and preferred), taints and tolerations, and resource requests against allocatable
// (nvidia.com/gpu included); writes PodScheduled=False/Unschedulable and a FailedScheduling
// event worded as the real scheduler's when nothing fits. Thread-safety: io_context thread only.
#ifndef KILN_TESTS_KUBESIM_SCHEDULER_H_
#define KILN_TESTS_KUBESIM_SCHEDULER_H_

#include <memory>
#include <string>

#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

// Whether `toleration` tolerates `taint` (api core/v1 ToleratesTaint): an empty effect matches
// every effect, an empty key (operator Exists) every key, Exists ignores the value.
bool Tolerates(const json& toleration, const json& taint);

class Scheduler {
 public:
  Scheduler(boost::asio::io_context& io, Registry& registry);
  ~Scheduler();
  void Start();

  // The FitError text for `pod` against the current nodes, or "" when a node fits (exposed
  // for tests).
  std::string Explain(const json& pod) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_SCHEDULER_H_
