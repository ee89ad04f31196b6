// A node whose kubelet is gone, and what the control plane does about it: the node lifecycle
// controller (Ready becomes Unknown, the unreachable taints, pods marked not ready), the taint
// eviction controller (DisruptionTarget DeletionByTaintManager and a graceful delete once the
// pod's tolerationSeconds run out) and the PodGC (the pod the kubelet can no longer finish is
// marked Failed and force-deleted). Driven by POST /kubesim/nodes/NAME/notready and /ready
// (docs/kubesim.md, Faults). Thread-safety: none; io_context thread only.
#ifndef KILN_TESTS_KUBESIM_NODE_LIFECYCLE_H_
#define KILN_TESTS_KUBESIM_NODE_LIFECYCLE_H_

#include <functional>
#include <memory>
#include <string>

#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

inline constexpr const char* kUnreachableTaintKey = "node.kubernetes.io/unreachable";

// Whether the node's kubelet has stopped posting status: its Ready condition is Unknown.
bool KubeletGone(const json& node);

class NodeLifecycleController {
 public:
  // `now` is the controllers' clock. With `timers` they wake themselves when an eviction or a
  // PodGC deletion falls due (the kubesim binary: system clock, real timers); without, only
  // Wake does (tests: a fake clock moved by hand).
  NodeLifecycleController(boost::asio::io_context& io, Registry& registry,
                          std::function<SysTime()> now, bool timers);
  ~NodeLifecycleController();
  // Subscribes to node and pod changes; call once before serving.
  void Start();

  // The kubelet of `node` stops posting status: every node condition becomes Unknown
  // (NodeStatusUnknown, "Kubelet stopped posting node status."), the node gets the taints
  // node.kubernetes.io/unreachable:NoSchedule and :NoExecute (timeAdded now), and its pods get
  // Ready False. Returns the Node, or NotFound. Idempotent.
  ApiResult<ObjectPtr> SetNotReady(const std::string& node);
  // The kubelet is back: the conditions it posts and no unreachable taints. Returns the Node,
  // or NotFound. Idempotent.
  ApiResult<ObjectPtr> SetReady(const std::string& node);
  // Runs the evictions and PodGC deletions due at the clock's current time (posted to the
  // io_context).
  void Wake();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_NODE_LIFECYCLE_H_
