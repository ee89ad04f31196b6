// The emulated controllers in process for tests: store, registry, kubelet, scheduler and Job
// controller on one io_context that the test runs. Thread-safety: none; the test's thread.
#ifndef KILN_TESTS_KUBESIM_IN_PROCESS_H_
#define KILN_TESTS_KUBESIM_IN_PROCESS_H_

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "tests/kubesim/cluster.h"
#include "tests/kubesim/job_controller.h"
#include "tests/kubesim/kubelet.h"
#include "tests/kubesim/registry.h"
#include "tests/kubesim/scheduler.h"

namespace kiln::kubesim::testing {

struct InProcessCluster {
  explicit InProcessCluster(const std::string& file, KubeletOptions kubelet_options = {})
      : store(1000), registry(store), kubelet(io, registry, kubelet_options), scheduler(io, registry),
        jobs(io, registry) {
    registry.Bootstrap();
    auto nodes = LoadCluster(std::string(KILN_SOURCE_DIR) + "/tests/kubesim/clusters/" + file);
    REQUIRE(nodes);
    for (json& n : *nodes) REQUIRE(registry.Create(Nodes(), "", std::move(n)));
    kubelet.Start();
    scheduler.Start();
    jobs.Start();
  }
  // Runs every controller until nothing is left to do (simulated pods take no time unless
  // their duration annotation says so; process pods until their processes end).
  void Settle() {
    io.restart();
    io.run();
  }
  // Runs handlers one at a time until `done()` holds.
  template <typename Predicate>
  void RunUntil(Predicate done) {
    io.restart();
    while (!done()) {
      if (io.run_one() == 0) FAIL("nothing left to run before the condition held");
    }
  }
  boost::asio::io_context io;
  Store store;
  Registry registry;
  Kubelet kubelet;
  Scheduler scheduler;
  JobController jobs;
};

}  // namespace kiln::kubesim::testing

#endif  // KILN_TESTS_KUBESIM_IN_PROCESS_H_
