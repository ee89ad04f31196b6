#include "executor/gpu.h"

#include <dlfcn.h>

#include <charconv>
#include <cstdlib>
#include <set>

namespace kiln::executor {
namespace {

// The few CUDA driver API entry points used, declared by hand (cuda.h is not needed).
using CUresult = int;
using CUdevice = int;
constexpr CUresult kCudaSuccess = 0;
constexpr CUresult kCudaErrorNoDevice = 100;
using CuInit = CUresult (*)(unsigned int);
using CuDeviceGetCount = CUresult (*)(int*);
using CuDeviceGet = CUresult (*)(CUdevice*, int);
using CuDeviceGetName = CUresult (*)(char*, int, CUdevice);
using CuDeviceTotalMem = CUresult (*)(size_t*, CUdevice);

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

Error CudaError(std::string_view call, CUresult rc) {
  return Error(Code::kUnavailable,
               "CUDA driver: " + std::string(call) + " failed with error " + std::to_string(rc));
}

}  // namespace

Result<std::vector<GpuInfo>> ParseLocalGpus(std::string_view text) {
  std::vector<GpuInfo> out;
  std::set<int> seen;
  if (Trim(text).empty()) return out;
  while (true) {
    const size_t comma = text.find(',');
    const std::string_view token = Trim(text.substr(0, comma));
    int index = -1;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
    if (token.empty() || ec != std::errc() || ptr != token.data() + token.size() || index < 0) {
      return MakeError(Code::kInvalidArgument, "KILN_LOCAL_GPUS: \"" + std::string(token) +
                                                   "\" is not a GPU index (use e.g. \"0,1\")");
    }
    if (!seen.insert(index).second) {
      return MakeError(Code::kInvalidArgument,
                       "KILN_LOCAL_GPUS: GPU " + std::to_string(index) + " is listed twice");
    }
    out.push_back(GpuInfo{index, "override", 0});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

Result<std::vector<GpuInfo>> DetectCudaGpus(const std::string& library) {
  // Kept loaded: the driver does not support being unloaded.
  void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return std::vector<GpuInfo>{};
  const auto init = reinterpret_cast<CuInit>(::dlsym(handle, "cuInit"));
  const auto get_count = reinterpret_cast<CuDeviceGetCount>(::dlsym(handle, "cuDeviceGetCount"));
  const auto get = reinterpret_cast<CuDeviceGet>(::dlsym(handle, "cuDeviceGet"));
  const auto get_name = reinterpret_cast<CuDeviceGetName>(::dlsym(handle, "cuDeviceGetName"));
  const auto total_mem = reinterpret_cast<CuDeviceTotalMem>(::dlsym(handle, "cuDeviceTotalMem_v2"));
  if (!init || !get_count || !get || !get_name || !total_mem) {
    return MakeError(Code::kUnavailable, "CUDA driver: " + library +
                                             " lacks cuInit, cuDeviceGetCount, cuDeviceGet, "
                                             "cuDeviceGetName or cuDeviceTotalMem_v2");
  }
  if (const CUresult rc = init(0); rc == kCudaErrorNoDevice) {
    return std::vector<GpuInfo>{};
  } else if (rc != kCudaSuccess) {
    return std::unexpected(CudaError("cuInit", rc));
  }
  int count = 0;
  if (const CUresult rc = get_count(&count); rc != kCudaSuccess) {
    return std::unexpected(CudaError("cuDeviceGetCount", rc));
  }
  std::vector<GpuInfo> out;
  for (int i = 0; i < count; ++i) {
    CUdevice device = 0;
    if (const CUresult rc = get(&device, i); rc != kCudaSuccess) {
      return std::unexpected(CudaError("cuDeviceGet", rc));
    }
    char name[256] = {};
    if (const CUresult rc = get_name(name, sizeof name - 1, device); rc != kCudaSuccess) {
      return std::unexpected(CudaError("cuDeviceGetName", rc));
    }
    size_t bytes = 0;
    if (const CUresult rc = total_mem(&bytes, device); rc != kCudaSuccess) {
      return std::unexpected(CudaError("cuDeviceTotalMem_v2", rc));
    }
    out.push_back(GpuInfo{i, name, static_cast<uint64_t>(bytes)});
  }
  return out;
}

Result<std::vector<GpuInfo>> DetectGpus() {
  if (const char* local = std::getenv("KILN_LOCAL_GPUS")) return ParseLocalGpus(local);
  return DetectCudaGpus();
}

}  // namespace kiln::executor
