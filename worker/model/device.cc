#include "worker/model/device.h"

#include <cstdlib>

#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "absl/strings/str_cat.h"

namespace magi {

absl::StatusOr<c10::Device> ParseDevice(const std::string& flag, const std::string& value, bool allow_index) {
  if (value == "cpu") return c10::Device(c10::kCPU);
  int index = 0;
  if (value != "cuda") {
    char* end = nullptr;
    const long n = allow_index && value.rfind("cuda:", 0) == 0 && value.size() > 5
                       ? std::strtol(value.c_str() + 5, &end, 10)
                       : -1;
    if (n < 0 || n > 255 || end == nullptr || *end != '\0') {
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be cpu or cuda", allow_index ? " or cuda:N (N a GPU index)" : "",
                                                     "; got '", value, "'"));
    }
    index = static_cast<int>(n);
  }
  if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", value, ": this build uses a LibTorch without CUDA (Debian's libtorch is CPU-only); build against "
        "an official CUDA LibTorch 2.x (docs/gpu.md), or use cpu"));
  }
  if (!at::hasCUDA()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", value, ": this LibTorch has CUDA but no CUDA GPU is "
                                                   "visible (check the driver, CUDA_VISIBLE_DEVICES and the container's "
                                                   "GPU request)"));
  }
  const int gpus = static_cast<int>(at::getNumGPUs());
  if (index >= gpus) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", value, ": GPU index must be in [0, ", gpus - 1, "] (", gpus, " visible)"));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace magi
