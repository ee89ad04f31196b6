#include "executor/resources.h"

#include <sched.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "base/check.h"

namespace kiln::executor {
namespace {

// "64Gi", "1536Mi" or "1000" (bytes), the way a manifest would spell it.
std::string FormatBytes(int64_t bytes) {
  constexpr const char* kSuffixes[] = {"Ti", "Gi", "Mi", "Ki"};
  for (int i = 0; i < 4; ++i) {
    const int64_t unit = int64_t{1} << (10 * (4 - i));
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + kSuffixes[i];
  }
  return std::to_string(bytes);
}

}  // namespace

Capacity DetectCapacity() {
  Capacity capacity;
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = 0;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  capacity.cpu_millis = int64_t{cpus} * 1000;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (!line.starts_with("MemTotal:")) continue;
    std::istringstream fields(line.substr(9));
    int64_t kib = 0;
    fields >> kib;
    capacity.memory_bytes = kib * 1024;
    break;
  }
  return capacity;
}

std::string Grant::CudaVisibleDevices() const {
  std::string out;
  for (const int index : gpu_indexes) {
    if (!out.empty()) out += ',';
    out += std::to_string(index);
  }
  return out;
}

ResourcePool::ResourcePool(Capacity capacity, std::vector<int> gpu_indexes)
    : capacity_(capacity),
      free_(capacity),
      gpu_count_(gpu_indexes.size()),
      free_gpus_(gpu_indexes.begin(), gpu_indexes.end()) {
  KILN_CHECK(free_gpus_.size() == gpu_count_);
}

Result<void> ResourcePool::CheckFits(const ResourceRequest& request) const {
  if (request.cpu_millis < 0 || request.memory_bytes < 0 || request.gpus < 0) {
    return MakeError(Code::kInvalidArgument, "step requests a negative amount of a resource");
  }
  if (request.gpus > static_cast<int64_t>(gpu_count_)) {
    return MakeError(Code::kResourceExhausted, "step requests " + std::to_string(request.gpus) +
                                                   " nvidia.com/gpu but this machine has " +
                                                   std::to_string(gpu_count_) +
                                                   " (KILN_LOCAL_GPUS or detected)");
  }
  if (request.cpu_millis > capacity_.cpu_millis) {
    return MakeError(Code::kResourceExhausted,
                     "step requests cpu " + std::to_string(request.cpu_millis) +
                         "m but kiln may use " + std::to_string(capacity_.cpu_millis) +
                         "m on this machine");
  }
  if (request.memory_bytes > capacity_.memory_bytes) {
    return MakeError(Code::kResourceExhausted,
                     "step requests memory " + FormatBytes(request.memory_bytes) +
                         " but kiln may use " + FormatBytes(capacity_.memory_bytes) +
                         " on this machine");
  }
  return {};
}

std::optional<Grant> ResourcePool::TryAcquire(const ResourceRequest& request) {
  if (request.cpu_millis > free_.cpu_millis || request.memory_bytes > free_.memory_bytes ||
      request.gpus > static_cast<int64_t>(free_gpus_.size())) {
    return std::nullopt;
  }
  Grant grant;
  grant.id = next_grant_++;
  grant.request = request;
  for (int i = 0; i < request.gpus; ++i) {
    grant.gpu_indexes.push_back(*free_gpus_.begin());
    free_gpus_.erase(free_gpus_.begin());
  }
  free_.cpu_millis -= request.cpu_millis;
  free_.memory_bytes -= request.memory_bytes;
  outstanding_.insert(grant.id);
  return grant;
}

void ResourcePool::Release(const Grant& grant) {
  KILN_CHECK(outstanding_.erase(grant.id) == 1);
  free_.cpu_millis += grant.request.cpu_millis;
  free_.memory_bytes += grant.request.memory_bytes;
  for (const int index : grant.gpu_indexes) KILN_CHECK(free_gpus_.insert(index).second);
}

}  // namespace kiln::executor
