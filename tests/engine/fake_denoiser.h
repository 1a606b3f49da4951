// A stand-in DiT for engine tests: velocity = t − x per chunk (cheap, deterministic), and
// KV-cache traffic shaped like the real model's (read [0, sp·M), write the pass's chunks),
// with every written row marking its chunk and whether it was clean (t = clean_t). Each
// call checks that the cached rows its kv ranges reach hold the clean keys of the right
// chunk, so a cache that drops or keeps the wrong rows fails loudly.
#ifndef MAGI_TESTS_ENGINE_FAKE_DENOISER_H_
#define MAGI_TESTS_ENGINE_FAKE_DENOISER_H_

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "worker/engine/denoiser.h"
#include "worker/model/kv_cache.h"

namespace magi {

class FakeDenoiser : public Denoiser {
 public:
  FakeDenoiser(int layers, int groups, int head_dim, float clean_t = 0.9999f)
      : layers_(layers), groups_(groups), head_dim_(head_dim), clean_t_(clean_t) {}

  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& a) override {
    calls.push_back(a);
    if (on_call) on_call(static_cast<int>(calls.size()));
    const int64_t N = a.x.size(0), C = a.x.size(1), T = a.x.size(2), H = a.x.size(3), W = a.x.size(4);
    const int64_t R = a.denoising_range_num;
    const int64_t cw = T / R;
    const int64_t M = cw * (H / 2) * (W / 2);
    const bool active = a.fwd_extra_1st_chunk || a.extract_prefix_video_feature || a.slice_point > 0 || a.record_kv;
    if (active && a.kv_cache != nullptr) {
      const int64_t prefix = static_cast<int64_t>(a.slice_point) * M;
      at::Tensor kv = a.kv_range.to(at::kLong);
      for (int l = 0; l < layers_; ++l) {
        auto rows = a.kv_cache->Read(l, prefix);
        if (!rows.ok()) return rows.status();
        for (int64_t r = 0; r < R; ++r) {
          const int64_t k0 = kv[r][0].item<int64_t>(), k1 = std::min(kv[r][1].item<int64_t>(), prefix);
          for (int64_t tok = k0; tok < k1; tok += M) {
            const float v = (*rows)[tok][0][0].item<float>();
            const float want = static_cast<float>(tok / M + 1);
            // Stream-first serves the lead chunk's K/V of a noisy step (negative marks).
            if (v != want && !(noisy_cache_rows_ok && v == -want)) {
              return absl::InternalError("cache row of chunk " + std::to_string(tok / M) + " holds " +
                                         std::to_string(v) + ", expected its clean keys");
            }
          }
        }
        if (a.update_kv_cache || a.record_kv) {
          const int64_t n = a.distill_nearly_clean_chunk ? R - 1 : R;
          at::Tensor w = at::empty({n * M, groups_, 2 * head_dim_});
          for (int64_t r = 0; r < n; ++r) {
            const bool clean = a.t[0][r].item<float>() == clean_t_;
            w.narrow(0, r * M, M).fill_(static_cast<float>(a.slice_point + r + 1) * (clean ? 1.f : -1.f));
          }
          auto s = a.kv_cache->Write(l, prefix, w);
          if (!s.ok()) return s;
        }
      }
    }
    at::Tensor t = a.t.to(at::kFloat).reshape({N, 1, R, 1, 1, 1});
    at::Tensor x = a.x.to(at::kFloat).reshape({N, C, R, cw, H, W});
    at::Tensor v = (t - x).reshape({N, C, T, H, W});
    const size_t call = calls.size() - 1;
    return call < call_offsets.size() ? v + call_offsets[call] : v;
  }
  c10::Device device() const override { return c10::Device(c10::kCPU); }

  std::vector<DitForwardArgs> calls;
  std::function<void(int)> on_call;
  // Added to the velocity of call i (0-based), so guidance tests can tell the passes apart.
  std::vector<float> call_offsets;
  // Accept a cached row that holds the right chunk's keys of a noisy step (the stream-first
  // schedule's recorded lead chunk); the reference order reads clean rows only.
  bool noisy_cache_rows_ok = false;

 private:
  int layers_, groups_, head_dim_;
  float clean_t_;
};

}  // namespace magi

#endif  // MAGI_TESTS_ENGINE_FAKE_DENOISER_H_
