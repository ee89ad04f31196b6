// Resource templates on Kubernetes: the step acts on the API itself (get, create, apply,
// delete, replace, patch of its manifest) instead of running a pod, then waits until the
// object meets successCondition or failureCondition, and reads output parameters from the
// object with valueFrom.jsonPath. Argo runs `kubectl` in a pod for this; kiln makes the same
// calls from the controller (issue 5: "go straight to the API").
//
// The pure parts (conditions, JSONPath, kubectl-style flags, discovery lookups) have no I/O and
// are tested without a cluster (tests/kubernetes/resource_test.cc); RunResourceStep does the
// calls. Thread-safety: pure functions; RunResourceStep on the client's io_context thread.
#ifndef KILN_EXECUTOR_KUBERNETES_RESOURCE_H_
#define KILN_EXECUTOR_KUBERNETES_RESOURCE_H_

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "dag/resource_syntax.h"
#include "executor/kubernetes_job.h"
#include "kube/client.h"
#include "scheduler/state.h"

namespace kiln::executor {

using dag::MatchesResourceCondition;
using dag::ParseResourceCondition;
using dag::ParseResourceFlags;
using dag::ResourceFlags;
using dag::ResourceRequirement;



// kubectl's JSONPath template (kubectl get -o jsonpath=...), as valueFrom.jsonPath uses it:
// text with {...} expressions of fields (.a.b, ['a.b'], a\.b), indexes ([0], [-1]), [*],
// recursive descent (..name) and filters ([?(@.type=="Ready")], ==, !=, or a bare @.path). Each
// result prints as kubectl prints it: a string as is, anything else as JSON; several are joined
// by spaces; a field that is not there prints nothing (kubectl get -o jsonpath allows missing
// keys). Errors: kInvalidArgument for a malformed template.
Result<std::string> EvaluateJsonPath(std::string_view templ, const nlohmann::json& object);

// A resource type as discovery (GET /api/v1, /apis/GROUP/VERSION) names it.
struct ApiResource {
  std::string group_version;  // "v1", "batch/v1"
  std::string name;           // plural: "jobs"
  std::string kind;           // "Job"
  bool namespaced = true;
  // The collection path: /api/v1/namespaces/NS/configmaps, /apis/batch/v1/jobs, ...
  std::string Collection(const std::string& ns) const;
};
// In APIResourceList `list`: the resource of `kind` (the manifest's kind, exact), or, with
// `type` instead, the one whose plural, singular, kind (any case) or short name is `type`.
// Subresources ("pods/log") are never matched.
std::optional<ApiResource> FindApiResource(const nlohmann::json& list, std::string_view kind, std::string_view type);

// Ends a running resource step early (Kill): the step stops waiting for its condition.
struct ResourceCancel {
  explicit ResourceCancel(boost::asio::io_context& io) : timer(io) {}
  bool cancelled = false;
  boost::asio::steady_timer timer;  // the wait between two reads of the object
  void Cancel() {
    cancelled = true;
    timer.cancel();
  }
};

// The resource types a runner's resource steps found in discovery, by apiVersion and kind or
// by kubectl TYPE: looked up once per workflow, not once per step. Only types found are kept,
// so a CRD that a step installs is found by a later one.
struct ResourceDiscovery {
  std::map<std::string, ApiResource> found;
};

// Runs resource step `step` (LaunchStep::resource set) in `ctx.namespace_` unless its manifest
// or flags name another: the action, then, while a condition is given and neither holds, a read
// of the object every `poll` until one does. Returns the step's end: Succeeded with the
// output parameters (valueFrom.jsonPath on the object), Failed when failureCondition holds or
// the action was refused by the API (its message), Error for what kiln cannot do (named).
boost::asio::awaitable<scheduler::StepFinished> RunResourceStep(kube::Client& client, JobContext ctx,
                                                                scheduler::LaunchStep step,
                                                                std::shared_ptr<ResourceCancel> cancel,
                                                                std::chrono::milliseconds poll,
                                                                std::shared_ptr<ResourceDiscovery> discovery = nullptr);

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_KUBERNETES_RESOURCE_H_
