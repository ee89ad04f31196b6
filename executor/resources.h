// What this machine can run at once: CPU, memory and GPUs shared by concurrent steps.
// Thread-safety: ResourcePool is NOT thread-safe; the executor's driver owns it on one thread.
// DetectCapacity is safe from any thread.
#ifndef KILN_EXECUTOR_RESOURCES_H_
#define KILN_EXECUTOR_RESOURCES_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"

namespace kiln::executor {

// Capacity for steps' requests. Configurable: callers may override either field.
struct Capacity {
  int64_t cpu_millis = 0;  // 1000 per CPU
  int64_t memory_bytes = 0;
};

// The CPUs kiln may run on (sched_getaffinity) * 1000, and MemTotal from /proc/meminfo.
Capacity DetectCapacity();

// A step's requests, already parsed from Kubernetes quantities ("500m" -> 500, "1Gi" -> 2^30).
// Zero means "none requested": such a step always fits.
struct ResourceRequest {
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  int gpus = 0;  // nvidia.com/gpu
};

// Resources held by one running step until Release.
struct Grant {
  uint64_t id = 0;
  ResourceRequest request;
  std::vector<int> gpu_indexes;  // exclusive to this step, ascending

  // The CUDA_VISIBLE_DEVICES value for the step: "0,1"; "" when it has no GPU.
  std::string CudaVisibleDevices() const;
};

// Counts what running steps hold against a fixed capacity. Admission is first-fit: TryAcquire
// grants whatever fits now; ordering and fairness among waiting steps are the caller's.
class ResourcePool {
 public:
  // `gpu_indexes`: the GPUs steps may use (from DetectGpus). REQUIRES: distinct.
  ResourcePool(Capacity capacity, std::vector<int> gpu_indexes);

  // Whether `request` could ever be granted, on an idle machine. Errors:
  //   kInvalidArgument for a negative amount;
  //   kResourceExhausted when it exceeds the capacity, e.g.
  //   "step requests 4 nvidia.com/gpu but this machine has 2 (KILN_LOCAL_GPUS or detected)".
  Result<void> CheckFits(const ResourceRequest& request) const;

  // Takes `request` when it fits in what is free now, choosing the lowest free GPU indexes;
  // nullopt means wait for a Release. REQUIRES: CheckFits(request) succeeded.
  std::optional<Grant> TryAcquire(const ResourceRequest& request);

  // Returns what `grant` holds. REQUIRES: `grant` came from this pool and is not yet released.
  void Release(const Grant& grant);

  const Capacity& capacity() const { return capacity_; }
  Capacity free() const { return free_; }
  size_t free_gpus() const { return free_gpus_.size(); }
  size_t total_gpus() const { return gpu_count_; }

 private:
  Capacity capacity_;
  Capacity free_;
  size_t gpu_count_ = 0;
  std::set<int> free_gpus_;
  std::set<uint64_t> outstanding_;
  uint64_t next_grant_ = 1;
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_RESOURCES_H_
