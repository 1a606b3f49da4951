#include "tests/engine/host_backed_device.h"

#include <atomic>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

namespace magi {
namespace {

const c10::Device kHost(c10::DeviceType::PrivateUse1, 0);
std::atomic<int64_t> allocated_bytes{0};

void DropStorageRef(void* ctx) { delete static_cast<c10::Storage*>(ctx); }

// A storage on `device` over the memory of `s` (which it keeps alive).
c10::Storage ShareStorage(const c10::Storage& s, c10::Device device, bool resizable) {
  c10::DataPtr data(s.data(), new c10::Storage(s), &DropStorageRef, device);
  return c10::Storage(c10::Storage::use_byte_size_t(), s.nbytes(), std::move(data),
                      resizable ? c10::GetAllocator(c10::kCPU) : nullptr, resizable);
}

at::Tensor WithStorage(c10::Storage storage, c10::DispatchKey key, const at::Tensor& like) {
  at::Tensor t = at::detail::make_tensor<c10::TensorImpl>(std::move(storage), c10::DispatchKeySet(key), like.dtype());
  t.unsafeGetTensorImpl()->set_sizes_and_strides(like.sizes(), like.strides());
  t.unsafeGetTensorImpl()->set_storage_offset(like.storage_offset());
  return t;
}

bool IsHost(const at::Tensor& t) { return t.defined() && t.device() == kHost; }

// The CPU aliases of one op call's host-backed arguments, and the way back.
class Aliases {
 public:
  at::Tensor ToCpu(const at::Tensor& t) {
    if (!IsHost(t)) return t;
    c10::StorageImpl* key = t.storage().unsafeGetStorageImpl();
    auto it = cpu_of_.find(key);
    if (it == cpu_of_.end()) {
      // Resizable, so out= kernels may grow it; SyncBack() then re-points the original.
      c10::Storage cpu = ShareStorage(t.storage(), c10::Device(c10::kCPU), /*resizable=*/true);
      host_of_[cpu.unsafeGetStorageImpl()] = t.storage();
      it = cpu_of_.emplace(key, cpu).first;
    }
    at::Tensor alias = WithStorage(it->second, c10::DispatchKey::CPU, t);
    originals_.emplace(alias.unsafeGetTensorImpl(), t);
    return alias;
  }

  // A result of the CPU kernel, back on the host-backed device: the original argument for an
  // in-place / out= result, a view of the original storage for a view, a new tensor otherwise.
  at::Tensor ToHost(const at::Tensor& t) {
    if (!t.defined() || !t.device().is_cpu()) return t;
    auto orig = originals_.find(t.unsafeGetTensorImpl());
    if (orig != originals_.end()) return orig->second;
    auto it = host_of_.find(t.storage().unsafeGetStorageImpl());
    if (it != host_of_.end() && it->second.data() == t.storage().data()) {
      return WithStorage(it->second, c10::DispatchKey::PrivateUse1, t);  // a view of an argument
    }
    allocated_bytes += static_cast<int64_t>(t.storage().nbytes());  // memory new to the device
    return WithStorage(ShareStorage(t.storage(), kHost, /*resizable=*/false), c10::DispatchKey::PrivateUse1, t);
  }

  // After an op that wrote `alias` (in place or out=): the original host-backed tensor takes
  // the alias's shape and, if the kernel reallocated it, its memory.
  void SyncBack(const at::Tensor& alias) {
    auto orig = originals_.find(alias.unsafeGetTensorImpl());
    if (orig == originals_.end()) return;
    c10::TensorImpl* impl = orig->second.unsafeGetTensorImpl();
    if (orig->second.storage().data() != alias.storage().data() ||
        orig->second.storage().nbytes() != alias.storage().nbytes()) {
      allocated_bytes += static_cast<int64_t>(alias.storage().nbytes());
      impl->set_storage_keep_dtype(ShareStorage(alias.storage(), kHost, /*resizable=*/false));
    }
    impl->set_sizes_and_strides(alias.sizes(), alias.strides());
    impl->set_storage_offset(alias.storage_offset());
  }

  // True when `t` is one of this call's CPU aliases (not a CPU tensor the caller passed).
  bool IsAlias(const at::Tensor& t) const { return t.defined() && originals_.count(t.unsafeGetTensorImpl()) > 0; }

 private:
  std::unordered_map<c10::StorageImpl*, c10::Storage> cpu_of_;   // host storage -> CPU alias storage
  std::unordered_map<c10::StorageImpl*, c10::Storage> host_of_;  // CPU alias storage -> host storage
  std::unordered_map<c10::TensorImpl*, at::Tensor> originals_;   // CPU alias -> host-backed argument
};

// Applies `f` to every tensor inside `v` (a tensor, a tensor list, or a list of optional
// tensors) and stores the results back.
template <typename F>
void ForEachTensor(c10::IValue& v, F&& f) {
  if (v.isTensor()) {
    v = f(v.toTensor());
  } else if (v.isTensorList()) {
    c10::List<at::Tensor> l = v.toTensorList();
    for (size_t i = 0; i < l.size(); ++i) l.set(i, f(l.get(i)));
  } else if (v.isList()) {
    c10::List<c10::IValue> l = v.toList();
    for (size_t i = 0; i < l.size(); ++i) {
      c10::IValue e = l.get(i);
      if (e.isTensor()) l.set(i, f(e.toTensor()));
    }
  }
}

bool CrossDeviceAllowed(const std::string& name) {
  return name == "aten::_copy_from" || name == "aten::_copy_from_and_resize" || name == "aten::copy_" ||
         name == "aten::_to_copy";
}

void HostFallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const c10::FunctionSchema& schema = op.schema();
  const std::string& name = schema.name();
  const size_t n = schema.arguments().size();
  const size_t first = stack->size() - n;

  // CUDA's rule: every tensor of an op on one device, except 0-dim CPU tensors (scalars).
  if (!CrossDeviceAllowed(name)) {
    bool host = false, cpu = false;
    for (size_t i = first; i < stack->size(); ++i) {
      ForEachTensor((*stack)[i], [&](const at::Tensor& t) {
        if (IsHost(t)) host = true;
        if (t.defined() && t.device().is_cpu() && t.dim() > 0) cpu = true;
        return t;
      });
    }
    TORCH_CHECK(!(host && cpu), "Expected all tensors to be on the same device, but found at least two devices, ",
                kHost, " and cpu! (in ", name, ")");
  }

  Aliases aliases;
  std::vector<c10::IValue> args(stack->begin() + first, stack->end());
  for (size_t i = first; i < stack->size(); ++i) {
    c10::IValue& v = (*stack)[i];
    if (v.isDevice() && v.toDevice() == kHost) {
      v = c10::IValue(c10::Device(c10::kCPU));  // factory functions: allocate on the CPU, wrap after
    } else {
      ForEachTensor(v, [&](const at::Tensor& t) { return aliases.ToCpu(t); });
    }
  }

  if (name == "aten::_copy_from" || name == "aten::_copy_from_and_resize") {
    // _copy_from(self, dst): what copy_ calls for a device pair it does not know.
    at::Tensor src = (*stack)[first].toTensor();
    at::Tensor dst = (*stack)[first + 1].toTensor();
    if (name == "aten::_copy_from_and_resize") dst.resize_(src.sizes());
    dst.copy_(src);
    if (aliases.IsAlias(dst)) aliases.SyncBack(dst);
    torch::jit::drop(*stack, n);
    torch::jit::push(*stack, args[1]);
    return;
  }

  if (name == "aten::convolution_overrideable") {
    // What at::convolution calls for a backend it does not know: run the CPU convolution.
    auto& a = *stack;
    const c10::optional<at::Tensor> bias = a[first + 2].toOptional<at::Tensor>();
    at::Tensor out = at::convolution(a[first].toTensor(), a[first + 1].toTensor(), bias, a[first + 3].toIntVector(),
                                     a[first + 4].toIntVector(), a[first + 5].toIntVector(), a[first + 6].toBool(),
                                     a[first + 7].toIntVector(), a[first + 8].toInt());
    torch::jit::drop(*stack, n);
    torch::jit::push(*stack, aliases.ToHost(out));
    return;
  }

  std::vector<at::Tensor> written;
  for (size_t i = 0; i < n; ++i) {
    const auto& info = schema.arguments()[i].alias_info();
    if (info != nullptr && info->isWrite() && (*stack)[first + i].isTensor()) {
      written.push_back((*stack)[first + i].toTensor());
    }
  }
  op.callBoxed(stack);
  for (const at::Tensor& w : written) aliases.SyncBack(w);
  const size_t r = schema.returns().size();
  for (size_t i = stack->size() - r; i < stack->size(); ++i) {
    ForEachTensor((*stack)[i], [&](const at::Tensor& t) { return aliases.ToHost(t); });
  }
}

}  // namespace
}  // namespace magi

C10_REGISTER_GUARD_IMPL(PrivateUse1, c10::impl::NoOpDeviceGuardImpl<c10::DeviceType::PrivateUse1>);

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&magi::HostFallback>());
}

// at::convolution sends backends other than CPU/CUDA to convolution_overrideable, whose
// default kernel throws; route it through the fallback too.
TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("convolution_overrideable", torch::CppFunction::makeFromBoxedFunction<&magi::HostFallback>());
}

namespace magi {

c10::Device HostBackedDevice() { return kHost; }

int64_t HostBackedBytesAllocated() { return allocated_bytes.load(); }

}  // namespace magi
