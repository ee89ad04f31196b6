// The example pipelines in examples/workflows, through the kiln binary as README.md runs them.
#include <catch2/catch.hpp>
#include <string>

#include "tests/cli/cli_util.h"

namespace {

using kiln::testing::Kiln;
using kiln::testing::KilnRun;
using kiln::testing::TempDir;

const std::string kExamples = std::string(KILN_SOURCE_DIR) + "/examples/workflows";

}  // namespace

TEST_CASE("every example workflow lints without errors or warnings", "[cli][examples]") {
  KilnRun r = Kiln("lint --strict '" + kExamples + "'");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find(": 0 errors, 0 warnings") != std::string::npos);
}

TEST_CASE("the GPU example fails its GPU step at once on a machine without a GPU",
          "[cli][examples]") {
  TempDir data;
  // KILN_LOCAL_GPUS="" stands for a machine without GPUs, whatever this one has.
  KilnRun r = Kiln("run '" + kExamples + "/gpu-train.yaml' --data-dir '" + data.path.string() + "'",
                   "KILN_LOCAL_GPUS=");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find(".prepare ") != std::string::npos);
  CHECK(r.output.find("step requests 1 nvidia.com/gpu") != std::string::npos);
}

TEST_CASE("kiln run runs the nightly CronWorkflow's workflowSpec once", "[cli][examples]") {
  TempDir data;
  KilnRun r =
      Kiln("run '" + kExamples + "/nightly-retrain.yaml' --data-dir '" + data.path.string() + "'");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find(".promote ") != std::string::npos);
  CHECK(r.output.find("Succeeded") != std::string::npos);
}
