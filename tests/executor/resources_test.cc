#include "executor/resources.h"

#include <catch2/catch.hpp>

#include "executor/gpu.h"

namespace kiln::executor {
namespace {

constexpr int64_t kGi = int64_t{1} << 30;

TEST_CASE("GPU pool: exclusive indexes, waiting, and requests that can never fit", "[executor]") {
  const auto gpus = ParseLocalGpus("0,1");  // what KILN_LOCAL_GPUS=0,1 gives
  REQUIRE(gpus);
  std::vector<int> indexes;
  for (const GpuInfo& gpu : *gpus) indexes.push_back(gpu.index);
  ResourcePool pool({4000, 8 * kGi}, indexes);

  const ResourceRequest one{0, 0, 1};
  REQUIRE(pool.CheckFits(one));
  const auto first = pool.TryAcquire(one);
  const auto second = pool.TryAcquire(one);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->gpu_indexes != second->gpu_indexes);
  CHECK(first->CudaVisibleDevices() == "0");
  CHECK(second->CudaVisibleDevices() == "1");
  CHECK_FALSE(pool.TryAcquire(one));  // waits: none free
  pool.Release(*first);
  const auto third = pool.TryAcquire(one);
  REQUIRE(third);
  CHECK(third->CudaVisibleDevices() == "0");

  const auto too_many = pool.CheckFits({0, 0, 3});
  REQUIRE_FALSE(too_many);
  CHECK(too_many.error().code() == Code::kResourceExhausted);
  CHECK(too_many.error().message() ==
        "step requests 3 nvidia.com/gpu but this machine has 2 (KILN_LOCAL_GPUS or detected)");
}

TEST_CASE("CPU and memory bound concurrency", "[executor]") {
  ResourcePool pool({2000, 4 * kGi}, {});
  const ResourceRequest step{1000, kGi, 0};
  const auto a = pool.TryAcquire(step);
  const auto b = pool.TryAcquire(step);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->CudaVisibleDevices().empty());
  CHECK_FALSE(pool.TryAcquire(step));
  CHECK(pool.TryAcquire({0, 0, 0}));  // no requests: always fits
  CHECK(pool.free().cpu_millis == 0);
  pool.Release(*a);
  CHECK(pool.free().cpu_millis == 1000);
  CHECK(pool.free().memory_bytes == 3 * kGi);
  CHECK_FALSE(pool.TryAcquire({500, 4 * kGi, 0}));  // memory short
  CHECK(pool.TryAcquire({500, 3 * kGi, 0}));

  CHECK(pool.CheckFits({4000, 0, 0}).error().message() ==
        "step requests cpu 4000m but kiln may use 2000m on this machine");
  CHECK(pool.CheckFits({0, 64 * kGi, 0}).error().message() ==
        "step requests memory 64Gi but kiln may use 4Gi on this machine");
  CHECK(pool.CheckFits({-1, 0, 0}).error().code() == Code::kInvalidArgument);
  CHECK(pool.CheckFits({0, 0, 1}).error().message() ==
        "step requests 1 nvidia.com/gpu but this machine has 0 (KILN_LOCAL_GPUS or detected)");
}

TEST_CASE("machine capacity comes from the CPUs and MemTotal", "[executor]") {
  const Capacity capacity = DetectCapacity();
  CHECK(capacity.cpu_millis >= 1000);
  CHECK(capacity.cpu_millis % 1000 == 0);
  CHECK(capacity.memory_bytes > (64 << 20));
}

}  // namespace
}  // namespace kiln::executor
