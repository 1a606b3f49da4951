#include "worker/engine/lead_kv_recording.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {

class LeadKvRecording::RecorderCache : public KvCache {
 public:
  RecorderCache(LeadKvRecording& store, KvCache* cache, int step, int pass, bool forward)
      : store_(store), cache_(cache), step_(step), pass_(pass), forward_(forward) {}
  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override { return cache_->Read(layer, end); }
  absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst) override {
    return cache_->ReadInto(layer, end, dst);
  }
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override {
    const int64_t m = store_.tokens_per_chunk_;
    if (layer < 0 || layer >= store_.num_layers_ || start != store_.lead_chunk_ * m || kv.dim() != 3 ||
        kv.size(0) < m) {
      return absl::InternalError(absl::StrCat("lead-chunk K/V recorder: write of ", kv.dim() > 0 ? kv.size(0) : 0,
                                              " rows at ", start, " (layer ", layer, ") does not start with chunk ",
                                              store_.lead_chunk_, "'s ", m, " rows"));
    }
    Layers& layers = store_.steps_[step_][pass_];
    if (layers.empty()) layers.resize(store_.num_layers_);
    at::Tensor& slot = layers[layer];
    if (slot.defined()) store_.bytes_ -= slot.nbytes();
    slot = kv.narrow(0, 0, m).clone(at::MemoryFormat::Contiguous);
    store_.bytes_ += slot.nbytes();
    store_.peak_bytes_ = std::max(store_.peak_bytes_, store_.bytes_);
    return forward_ ? cache_->Write(layer, start, kv) : absl::OkStatus();
  }

 private:
  LeadKvRecording& store_;
  KvCache* cache_;
  int step_, pass_;
  bool forward_;
};

class LeadKvRecording::ServerCache : public KvCache {
 public:
  ServerCache(LeadKvRecording& store, KvCache* cache, int step, int pass, bool forward)
      : store_(store), cache_(cache), step_(step), pass_(pass), forward_(forward) {}
  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override {
    MAGI_ASSIGN_OR_RETURN(at::Tensor below, cache_->Read(layer, std::min(end, Lead())));
    at::Tensor out = at::empty({end, below.size(1), below.size(2)}, below.options());
    MAGI_RETURN_IF_ERROR(ReadInto(layer, end, out));
    return out;
  }
  absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst) override {
    const int64_t m = store_.tokens_per_chunk_, lead = Lead();
    if (end != lead + m || dst.dim() != 3 || dst.size(0) != end) {
      return absl::InternalError(absl::StrCat("lead-chunk K/V server: read of rows [0, ", end,
                                              ") (layer ", layer, "), the pass must read up to the end of chunk ",
                                              store_.lead_chunk_, " (row ", lead + m, ")"));
    }
    MAGI_RETURN_IF_ERROR(cache_->ReadInto(layer, lead, dst.narrow(0, 0, lead)));
    at::Tensor rows = dst.narrow(0, lead, m);
    auto it = store_.steps_.find(step_);
    const at::Tensor* kept = nullptr;
    if (it != store_.steps_.end() && !it->second[pass_].empty() && it->second[pass_][layer].defined()) {
      kept = &it->second[pass_][layer];
    }
    if (kept != nullptr) {
      rows.copy_(*kept);
    } else {
      rows.zero_();
    }
    return absl::OkStatus();
  }
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override {
    return forward_ ? cache_->Write(layer, start, kv) : absl::OkStatus();
  }

 private:
  int64_t Lead() const { return store_.lead_chunk_ * store_.tokens_per_chunk_; }
  LeadKvRecording& store_;
  KvCache* cache_;
  int step_, pass_;
  bool forward_;
};

LeadKvRecording::LeadKvRecording(int lead_chunk, int64_t tokens_per_chunk, int num_layers)
    : lead_chunk_(lead_chunk), tokens_per_chunk_(tokens_per_chunk), num_layers_(num_layers) {}

std::unique_ptr<KvCache> LeadKvRecording::Recorder(KvCache* cache, int step, int pass, bool forward_writes) {
  return std::make_unique<RecorderCache>(*this, cache, step, pass, forward_writes);
}

std::unique_ptr<KvCache> LeadKvRecording::Server(KvCache* cache, int step, int pass, bool forward_writes) {
  return std::make_unique<ServerCache>(*this, cache, step, pass, forward_writes);
}

void LeadKvRecording::Release(int step) {
  auto it = steps_.find(step);
  if (it == steps_.end()) return;
  for (const Layers& layers : it->second) {
    for (const at::Tensor& t : layers) bytes_ -= t.defined() ? t.nbytes() : 0;
  }
  steps_.erase(it);
}

}  // namespace magi
