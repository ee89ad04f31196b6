// The apiserver's registry layer: create/update/delete with Kubernetes semantics (defaulting,
// generateName, uid, resourceVersion checks, graceful pod deletion, finalizers, owner-reference
// propagation) on top of the Store, used by both the REST handlers and the emulated controllers.
// Thread-safety: none; owned by the server's io_context thread.
#ifndef KILN_TESTS_KUBESIM_REGISTRY_H_
#define KILN_TESTS_KUBESIM_REGISTRY_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/kubesim/api_error.h"
#include "tests/kubesim/store.h"
#include "tests/kubesim/util.h"

namespace kiln::kubesim {

struct DeleteOptions {
  std::optional<std::string> propagation;  // Background | Foreground | Orphan
  std::optional<int64_t> grace_period_seconds;
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_rv;
};

struct DeleteResult {
  ObjectPtr object;   // the removed object, or its state with deletionTimestamp when deferred
  bool removed = false;
  std::vector<std::string> warnings;  // Warning header values
};

class Registry {
 public:
  explicit Registry(Store& store) : store_(store) {}
  Store& store() { return store_; }

  // POST. `ns` is the request's namespace ("" for cluster resources).
  ApiResult<ObjectPtr> Create(const ResourceInfo& r, const std::string& ns, json object);
  // PUT of the object (`status` false) or of its /status subresource. 409 on a stale
  // metadata.resourceVersion; an empty one updates unconditionally.
  ApiResult<ObjectPtr> Update(const ResourceInfo& r, const std::string& ns, const std::string& name,
                              json object, bool status);
  // Read-modify-write for controllers: `mutate` edits a copy of the current object; the result
  // is stored like an unconditional Update (of everything, status included).
  ApiResult<ObjectPtr> Mutate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                              const std::function<void(json&)>& mutate);
  ApiResult<DeleteResult> Delete(const ResourceInfo& r, const std::string& ns,
                                 const std::string& name, const DeleteOptions& options);

  // Records a core/v1 Event about `involved` (any object with kind/apiVersion/metadata).
  void RecordEvent(const json& involved, const std::string& type, const std::string& reason,
                   const std::string& message, const std::string& component,
                   const std::string& host = "");

  // Creates the namespaces every cluster has (default, kube-system, kube-public,
  // kube-node-lease) and their default service accounts.
  void Bootstrap();

 private:
  // Stores `object`, or removes it when it is being deleted and has no finalizers left.
  ObjectPtr Commit(const ResourceInfo& r, json object);
  void DeleteDependents(const json& owner, const std::string& propagation);
  void OrphanDependents(const json& owner);
  void ReleaseForegroundOwners(const json& dependent);
  void DeleteNamespaceContents(const std::string& ns);

  Store& store_;
};

// Applies the API defaults of a pod spec (restartPolicy, terminationMessagePath, requests from
// limits, the not-ready/unreachable tolerations, ...).
void DefaultPodSpec(json& spec);
// "Guaranteed", "Burstable" or "BestEffort" for a defaulted pod spec.
std::string QosClass(const json& spec);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_REGISTRY_H_
