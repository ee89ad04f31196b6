// NVIDIA GPUs of this machine, found through the CUDA driver API at run time (no CUDA headers or
// link-time dependency), or listed by KILN_LOCAL_GPUS.
// Thread-safety: pure functions of the environment, safe from any thread.
#ifndef KILN_EXECUTOR_GPU_H_
#define KILN_EXECUTOR_GPU_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace kiln::executor {

struct GpuInfo {
  int index = 0;              // the CUDA device ordinal, as CUDA_VISIBLE_DEVICES takes it
  std::string name;           // "NVIDIA H100 80GB HBM3"; "override" when from KILN_LOCAL_GPUS
  uint64_t memory_bytes = 0;  // 0 when from KILN_LOCAL_GPUS
};

// KILN_LOCAL_GPUS set: the indexes it lists ("0,1"; "" means no GPU). Otherwise the devices the
// CUDA driver reports (dlopen("libcuda.so.1")); the driver's own CUDA_VISIBLE_DEVICES in kiln's
// environment applies. No driver library or no device: an empty list, not an error.
// Errors: kInvalidArgument for a malformed KILN_LOCAL_GPUS; kUnavailable when the driver is
// present but fails (the message names the CUDA call and its error code).
Result<std::vector<GpuInfo>> DetectGpus();

// Parses a KILN_LOCAL_GPUS value: comma-separated distinct non-negative indexes, spaces allowed.
// Errors: kInvalidArgument, e.g. `KILN_LOCAL_GPUS: "x" is not a GPU index (use e.g. "0,1")`.
Result<std::vector<GpuInfo>> ParseLocalGpus(std::string_view text);

// The CUDA devices that the driver library `library` reports (see DetectGpus).
Result<std::vector<GpuInfo>> DetectCudaGpus(const std::string& library = "libcuda.so.1");

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_GPU_H_
