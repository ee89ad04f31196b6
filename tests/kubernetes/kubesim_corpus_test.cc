// Every corpus file with an expected_local_phase runs under `kiln run --executor kubernetes` on a
// kubesim (whose kubelet runs the containers as host processes, docs/kubesim.md) to the same
// phase as locally, with the `kiln exec` agent reporting outputs and moving artifacts through the
// artifact PVC (kubesim keeps it in a host directory, which kiln sees at <data dir>/artifacts as
// a deployed kiln would through its own mount). Exceptions, with the reason:
// tests/data/kubesim-run-known-failures.tsv (tests/cli/corpus_run.h).
#include <filesystem>

#include "tests/cli/corpus_run.h"
#include "tests/kubesim/test_util.h"

TEST_CASE("corpus workflows run on kubesim to their expected phase", "[kubernetes][kubesim][corpus][.slow]") {
  // The kiln binary is visible in the containers wherever the build lives (/tmp is private).
  const std::string kiln_dir = std::filesystem::path(KILN_BINARY).parent_path().string();
  kiln::kubesim::testing::TempDir volumes;
  kiln::kubesim::testing::Kubesim sim("mixed-gpu.yaml", {"--image-dir", kiln_dir, "--volume-dir", volumes.path()});
  const std::string pvc = volumes.path() + "/default/kiln-artifacts";
  std::filesystem::create_directories(pvc);
  kiln::testing::corpus::RunCorpus(
      "--executor kubernetes --kubeconfig " + sim.kubeconfig() + " --namespace default --agent-path " +
          std::string(KILN_BINARY) + " --artifact-pvc kiln-artifacts",
      {"run-known-failures.tsv", "kubesim-run-known-failures.tsv"}, "on kubesim",
      [&](const std::string& data_dir) { std::filesystem::create_directory_symlink(pvc, data_dir + "/artifacts"); });
}
