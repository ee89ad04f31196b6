// kubesim driven by the official Python kubernetes client (Debian python3-kubernetes).
#include <catch2/catch.hpp>

#include "tests/kubesim/test_util.h"

#if KUBESIM_HAVE_PYTHON_CLIENT
namespace kiln::kubesim::testing {
namespace {

TEST_CASE("the Python kubernetes client runs a Job to completion and reads its log",
          "[kubesim][python]") {
  Kubesim sim("cpu-only.yaml");
  CommandResult r = Run({"/usr/bin/python3", std::string(KILN_SOURCE_DIR) + "/tests/kubesim/python_client.py",
                         sim.kubeconfig()},
                        sim.dir().path());
  INFO(r.output << "\n--- kubesim log ---\n" << sim.log());
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("log ok") != std::string::npos);
  CHECK(r.output.find("deleted") != std::string::npos);
}

}  // namespace
}  // namespace kiln::kubesim::testing
#endif  // KUBESIM_HAVE_PYTHON_CLIENT
