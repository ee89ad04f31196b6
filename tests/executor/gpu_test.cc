#include "executor/gpu.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <optional>

namespace kiln::executor {
namespace {

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_CASE("KILN_LOCAL_GPUS overrides GPU detection", "[executor]") {
  {
    ScopedEnv env("KILN_LOCAL_GPUS", "0,1");
    const auto gpus = DetectGpus();
    REQUIRE(gpus);
    REQUIRE(gpus->size() == 2);
    CHECK((*gpus)[0].index == 0);
    CHECK((*gpus)[1].index == 1);
    CHECK((*gpus)[1].name == "override");
    CHECK((*gpus)[1].memory_bytes == 0);
  }
  {
    ScopedEnv env("KILN_LOCAL_GPUS", "");
    const auto gpus = DetectGpus();
    REQUIRE(gpus);
    CHECK(gpus->empty());
  }
  {
    ScopedEnv env("KILN_LOCAL_GPUS", "0,x");
    const auto gpus = DetectGpus();
    REQUIRE_FALSE(gpus);
    CHECK(gpus.error().code() == Code::kInvalidArgument);
    CHECK(gpus.error().message() == "KILN_LOCAL_GPUS: \"x\" is not a GPU index (use e.g. \"0,1\")");
  }
}

TEST_CASE("KILN_LOCAL_GPUS parsing", "[executor]") {
  CHECK(ParseLocalGpus(" 2 , 5 ")->size() == 2);
  CHECK((*ParseLocalGpus("3"))[0].index == 3);
  CHECK(ParseLocalGpus("1,1").error().message() == "KILN_LOCAL_GPUS: GPU 1 is listed twice");
  CHECK(ParseLocalGpus("-1").error().code() == Code::kInvalidArgument);
  CHECK(ParseLocalGpus("0,").error().message() ==
        "KILN_LOCAL_GPUS: \"\" is not a GPU index (use e.g. \"0,1\")");
}

TEST_CASE("GPU detection without a CUDA driver finds none", "[executor]") {
  const auto missing = DetectCudaGpus("libkiln-no-such-cuda.so.1");
  REQUIRE(missing);
  CHECK(missing->empty());

  ScopedEnv env("KILN_LOCAL_GPUS", std::nullopt);
  const auto gpus = DetectGpus();
  void* cuda = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (cuda == nullptr) cuda = ::dlopen("libcuda.so.1", RTLD_NOW);
  if (cuda == nullptr) {
    REQUIRE(gpus);
    CHECK(gpus->empty());
  } else {
    // A machine with the driver: whatever it reports must be well formed.
    if (gpus) {
      for (size_t i = 0; i < gpus->size(); ++i) {
        CHECK((*gpus)[i].index == static_cast<int>(i));
        CHECK_FALSE((*gpus)[i].name.empty());
        CHECK((*gpus)[i].memory_bytes > 0);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::executor
