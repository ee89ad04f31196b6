// The emulated Job controller (kubernetes pkg/controller/job, NonIndexed and Indexed modes):
// creates pods from the template with the labels, ownerReference and tracking finalizer Kubernetes sets,
// counts finished pods, applies backoffLimit, activeDeadlineSeconds, podFailurePolicy and
// ttlSecondsAfterFinished, and writes the 1.31+ conditions (SuccessCriteriaMet then Complete;
// FailureTarget then Failed) with the real reasons and messages.
// Thread-safety: io_context thread only.
#ifndef KILN_TESTS_KUBESIM_JOB_CONTROLLER_H_
#define KILN_TESTS_KUBESIM_JOB_CONTROLLER_H_

#include <memory>

#include "tests/kubesim/registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace kiln::kubesim {

class JobController {
 public:
  JobController(boost::asio::io_context& io, Registry& registry);
  ~JobController();
  void Start();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_JOB_CONTROLLER_H_
