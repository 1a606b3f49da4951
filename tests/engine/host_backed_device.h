// A second device for tests on a machine without a GPU: tensors on HostBackedDevice() live in
// host memory but are not CPU tensors. Every op on them runs ATen's CPU kernel on a zero-copy
// CPU alias, so results are bit-identical to the CPU's, while the device rules are CUDA's:
// an op that mixes a host-backed tensor with a CPU tensor (other than a 0-dim scalar tensor)
// fails with "Expected all tensors to be on the same device", and copies between the two
// devices go through copy_ / .to() only.
//
// What it catches: model, engine or VAE code that creates a tensor on a fixed device (for
// example at::zeros(sizes) or at::arange(n) without the input's device) and then combines it
// with the input -- exactly what breaks on a GPU -- here, on the CPU.
//
// It is the PrivateUse1 dispatch key with a boxed backend fallback, registered once per
// process on first use. Test-only.
#ifndef MAGI_TESTS_ENGINE_HOST_BACKED_DEVICE_H_
#define MAGI_TESTS_ENGINE_HOST_BACKED_DEVICE_H_

#include <cstdint>

#include <c10/core/Device.h>

namespace magi {

// The host-backed device (privateuseone:0). Registers the backend on first call.
c10::Device HostBackedDevice();

// Bytes of memory ever allocated for tensors on the device, process-wide (never decreases):
// what uploads to it and computation on it created. Differences between two readings tell
// what the code in between allocated there.
int64_t HostBackedBytesAllocated();

}  // namespace magi

#endif  // MAGI_TESTS_ENGINE_HOST_BACKED_DEVICE_H_
