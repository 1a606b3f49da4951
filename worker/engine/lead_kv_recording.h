// The stream-first schedule's store of the lead chunk's K/V (docs/schedule.md, StreamFirstPlan
// in stage_plan.h). Phase 1 runs the lead chunk alone; the K/V that later chunks read from it
// at its noisy steps is kept here per (reference step, pass) and served to phase 2, whose
// passes have the lead chunk out of x (slice_point moved past it).
//
// The store hands out KvCache adapters that sit in front of the request's real cache:
//  - Recorder(): reads go to the real cache; the lead chunk's rows of a write are kept as
//    the recording of (step, pass), and the write reaches the real cache only if asked.
//  - Server(): rows below the lead chunk come from the real cache, the lead chunk's rows from
//    the recording of (step, pass) (zeros when none was kept: no kv range reaches them);
//    writes reach the real cache only if asked.
// Pass 0 is the cache-writing pass (cfg_number 1's single pass, cfg_number 3's null-text
// pass B2); pass 1 is cfg_number 3's text pass B1, whose K/V differ (other caption).
//
// Not thread-safe; adapters must not outlive the store or the real cache. Owns the recorded
// tensors (on the model's device, in the cache's dtype).
#ifndef MAGI_WORKER_ENGINE_LEAD_KV_RECORDING_H_
#define MAGI_WORKER_ENGINE_LEAD_KV_RECORDING_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/model/kv_cache.h"

namespace magi {

class LeadKvRecording {
 public:
  LeadKvRecording(int lead_chunk, int64_t tokens_per_chunk, int num_layers);
  LeadKvRecording(const LeadKvRecording&) = delete;
  LeadKvRecording& operator=(const LeadKvRecording&) = delete;

  std::unique_ptr<KvCache> Recorder(KvCache* cache, int step, int pass, bool forward_writes);
  std::unique_ptr<KvCache> Server(KvCache* cache, int step, int pass, bool forward_writes);
  // Frees the recordings of `step` (every pass).
  void Release(int step);

  int64_t bytes() const { return bytes_; }
  int64_t peak_bytes() const { return peak_bytes_; }

 private:
  class RecorderCache;
  class ServerCache;
  using Layers = std::vector<at::Tensor>;  // per layer [tokens_per_chunk, G, 2*hd]
  int lead_chunk_;
  int64_t tokens_per_chunk_;
  int num_layers_;
  std::map<int, std::array<Layers, 2>> steps_;
  int64_t bytes_ = 0;
  int64_t peak_bytes_ = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_LEAD_KV_RECORDING_H_
