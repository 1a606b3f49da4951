#include "worker/engine/guidance.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "parallel/communicator.h"
#include "worker/model/kv_cache.h"

namespace magi {
namespace {

at::Tensor StackRows(const std::vector<at::Tensor>& rows, size_t begin, size_t end, const c10::Device& dev) {
  std::vector<at::Tensor> picked(rows.begin() + begin, rows.begin() + end);
  return at::stack(picked, 0).unsqueeze(1).to(dev);  // [k, 1, ...]
}

at::Tensor RangeTensor(const std::vector<std::array<int64_t, 2>>& ranges) {
  at::Tensor t = at::empty({static_cast<int64_t>(ranges.size()), 2}, at::kInt);
  auto a = t.accessor<int32_t, 2>();
  for (size_t i = 0; i < ranges.size(); ++i) {
    a[i][0] = static_cast<int32_t>(ranges[i][0]);
    a[i][1] = static_cast<int32_t>(ranges[i][1]);
  }
  return t;
}

at::Tensor TimeTensor(const std::vector<float>& t, size_t begin, size_t end) {
  at::Tensor out = at::empty({1, static_cast<int64_t>(end - begin)}, at::kFloat);
  for (size_t i = begin; i < end; ++i) out[0][i - begin] = t[i];
  return out;
}

at::Tensor Bool1(bool v) { return at::full({1}, v, at::TensorOptions().dtype(at::kBool)); }

}  // namespace

CfgPasses CfgPasses::For(int rank, int size, int64_t m) {
  CfgPasses p;
  if (size <= 1) {
    p.uncond_end = m;
    return p;
  }
  p.text = rank == 0;
  p.context = rank == 1;
  int64_t begin = m, end = m;
  for (int64_t j = 0; j < m; ++j) {
    if (UncondOwner(j, size, m) != rank) continue;
    if (begin == m) begin = j;
    end = j + 1;
  }
  p.uncond_begin = begin;
  p.uncond_end = begin == m ? m : end;
  return p;
}

int CfgPasses::UncondOwner(int64_t j, int size, int64_t m) {
  if (size <= 1) return 0;
  if (size >= 3) return 2;
  return j < (m + 1) / 2 ? 0 : 1;
}

class CfgCacheMirror::Capture : public KvCache {
 public:
  explicit Capture(KvCache* inner) : inner_(inner) {}
  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override { return inner_->Read(layer, end); }
  absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst) override {
    return inner_->ReadInto(layer, end, dst);
  }
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override {
    MAGI_RETURN_IF_ERROR(inner_->Write(layer, start, kv));
    writes.push_back({layer, start, kv.contiguous().clone()});
    return absl::OkStatus();
  }
  struct Written {
    int layer;
    int64_t start;
    at::Tensor kv;
  };
  std::vector<Written> writes;

 private:
  KvCache* inner_;
};

CfgCacheMirror::CfgCacheMirror(Communicator& comm, KvCache* cache, c10::Device device)
    : comm_(comm), cache_(cache), device_(device) {
  if (comm_.rank() == 1) capture_ = std::make_unique<Capture>(cache);
}
CfgCacheMirror::~CfgCacheMirror() = default;

KvCache* CfgCacheMirror::cache() { return capture_ ? static_cast<KvCache*>(capture_.get()) : cache_; }

absl::Status CfgCacheMirror::Sync() {
  // Header: the number of writes, then per write layer, start, rows, groups, width, dtype
  // (0 float32, 1 bfloat16, 2 float16). Built on the host, moved on the cache's device (an
  // NCCL group moves device tensors only).
  constexpr int kFields = 6;
  const auto on_device = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor count = at::zeros({1}, at::kLong);
  if (capture_) count[0] = static_cast<int64_t>(capture_->writes.size());
  count = count.to(on_device);
  MAGI_RETURN_IF_ERROR(comm_.Broadcast(count, 1, "cfg.cache_writes"));
  const int64_t n = count.to(at::kCPU)[0].item<int64_t>();
  if (n == 0) return absl::OkStatus();
  at::Tensor header = at::zeros({n, kFields}, at::kLong);
  if (capture_) {
    auto h = header.accessor<int64_t, 2>();
    for (int64_t i = 0; i < n; ++i) {
      const auto& w = capture_->writes[i];
      h[i][0] = w.layer;
      h[i][1] = w.start;
      h[i][2] = w.kv.size(0);
      h[i][3] = w.kv.size(1);
      h[i][4] = w.kv.size(2);
      h[i][5] = w.kv.scalar_type() == at::kBFloat16 ? 1 : w.kv.scalar_type() == at::kHalf ? 2 : 0;
    }
  }
  header = header.to(on_device);
  MAGI_RETURN_IF_ERROR(comm_.Broadcast(header, 1, "cfg.cache_write_header"));
  header = header.to(at::kCPU);
  auto h = header.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor kv;
    if (capture_) {
      kv = capture_->writes[i].kv;
    } else {
      const at::ScalarType dtype = h[i][5] == 1 ? at::kBFloat16 : h[i][5] == 2 ? at::kHalf : at::kFloat;
      kv = at::empty({h[i][2], h[i][3], h[i][4]}, at::TensorOptions().dtype(dtype).device(device_));
    }
    MAGI_RETURN_IF_ERROR(comm_.Broadcast(kv, 1, "cfg.cache_write"));
    if (comm_.rank() == 0) MAGI_RETURN_IF_ERROR(cache_->Write(static_cast<int>(h[i][0]), h[i][1], kv));
  }
  if (capture_) capture_->writes.clear();
  return absl::OkStatus();
}

absl::Status ValidateCfgParallel(int cfg_number, int ranks, const std::string& field) {
  if (ranks <= 1) return absl::OkStatus();
  if (ranks > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", ranks, " ranks; CFG-parallel splits cfg_number 3's three passes over 2 or 3 ranks"));
  }
  if (cfg_number != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": CFG-parallel over ", ranks, " ranks needs cfg_number 3 (base models); this model runs cfg_number ",
        cfg_number, " (one pass per step: nothing to split); use 1"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGuidanceConfig(const GuidanceConfig& o) {
  if (o.cfg_number == 2) {
    return absl::InvalidArgumentError(
        "cfg_number 2 is not supported: the reference implements only 1 (distilled / fp8 models) and 3 (base models)");
  }
  if (o.cfg_number != 1 && o.cfg_number != 3) {
    return absl::InvalidArgumentError(absl::StrCat("cfg_number must be 1 or 3, got ", o.cfg_number));
  }
  if (o.cfg_number == 3) {
    if (o.cfg_t_range.empty()) return absl::InvalidArgumentError("cfg_t_range must not be empty for cfg_number 3");
    if (o.prev_chunk_scales.size() != o.cfg_t_range.size() || o.text_scales.size() != o.cfg_t_range.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prev_chunk_scales (", o.prev_chunk_scales.size(), " entries) and text_scales (", o.text_scales.size(),
          " entries) must have as many entries as cfg_t_range (", o.cfg_t_range.size(), ")"));
    }
  }
  if (o.cfg_comm != nullptr) MAGI_RETURN_IF_ERROR(ValidateCfgParallel(o.cfg_number, o.cfg_comm->size(), "cfg group"));
  if (o.chunk_width < 1) return absl::InvalidArgumentError("chunk_width must be >= 1");
  if (o.tokens_per_chunk < 1) return absl::InvalidArgumentError("tokens_per_chunk must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<int> CfgBucket(float t, const std::vector<double>& cfg_t_range) {
  const float eps = static_cast<float>(1e-7);
  int count = 0;
  for (double e : cfg_t_range) {
    if (static_cast<float>(static_cast<float>(e) - eps) < t) ++count;
  }
  if (count - 1 < 0) {
    return absl::OutOfRangeError(
        absl::StrCat("timestep ", t, " lies below the first cfg_t_range breakpoint ", cfg_t_range.empty() ? 0.0 : cfg_t_range[0]));
  }
  return count - 1;
}

at::Tensor CombineCfg3(const at::Tensor& uncond, const at::Tensor& cond_pre, const at::Tensor& cond_pre_text,
                       float prev_scale, float text_scale) {
  const float a = 1.0f - prev_scale;
  const float b = prev_scale - text_scale;
  at::Tensor out = at::mul(uncond, static_cast<double>(a));
  out = at::add(out, at::mul(cond_pre, static_cast<double>(b)));
  return at::add(out, at::mul(cond_pre_text, static_cast<double>(text_scale)));
}

at::Tensor BlendNearlyClean(const at::Tensor& with_context, const at::Tensor& self_only, double g) {
  // Python: a * g + b * (1 - g); the scalars are doubles rounded to fp32 by the kernels.
  return at::add(at::mul(with_context, g), at::mul(self_only, 1.0 - g));
}

absl::StatusOr<at::Tensor> GuidedVelocity(Denoiser& model, KvCache* cache, const GuidanceConfig& o,
                                          const GuidanceStep& s, const ForwardObserver& observer,
                                          const std::function<bool()>& cancelled) {
  MAGI_RETURN_IF_ERROR(ValidateGuidanceConfig(o));
  const size_t n = s.t.size();
  if (n == 0 || s.text_rows.size() != n || s.text_masks.size() != n || s.null_rows.size() != n ||
      s.null_masks.size() != n || s.kv_range.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("guidance step: t, caption rows, masks and kv ranges must all have ",
                                                   n, " entries"));
  }
  if (!s.x.defined() || s.x.dim() != 5 || s.x.size(0) != 1 || s.x.size(2) != static_cast<int64_t>(n) * o.chunk_width) {
    return absl::InvalidArgumentError(absl::StrCat("guidance step: x must be [1, C, ", n * o.chunk_width, ", H, W]"));
  }
  const c10::Device dev = model.device();
  const int cw = o.chunk_width;
  const int extra = s.fwd_extra_1st_chunk ? 1 : 0;
  int call = 0;
  // `cancelled` is polled once per pass slot on every rank -- before each model call, and on a
  // CFG-parallel rank also before the passes another rank runs -- since in a rank group the
  // poll is an agreement every rank must make the same number of times.
  auto poll = [&]() -> absl::Status {
    if (cancelled && cancelled()) return absl::CancelledError("generation cancelled");
    return absl::OkStatus();
  };
  auto run = [&](const DitForwardArgs& args) -> absl::StatusOr<at::Tensor> {
    MAGI_RETURN_IF_ERROR(poll());
    MAGI_ASSIGN_OR_RETURN(at::Tensor out, model.Forward(args));
    if (observer) observer(call, args, out);
    ++call;
    return out;
  };

  DitForwardArgs base;
  base.x = s.x;
  base.t = TimeTensor(s.t, 0, n).to(dev);
  base.kv_range = RangeTensor(s.kv_range).to(dev);
  base.denoising_range_num = static_cast<int>(n);
  base.slice_point = s.slice_point;
  base.fwd_extra_1st_chunk = s.fwd_extra_1st_chunk;
  base.extract_prefix_video_feature = s.extract_prefix_video_feature;
  base.distill_nearly_clean_chunk = s.distill_nearly_clean_chunk;
  base.num_steps = s.num_steps;
  base.distill_interval = s.distill_interval;
  base.kv_cache = cache;
  base.record_kv = s.record_kv;

  if (o.cfg_number == 3) {
    const int64_t m = static_cast<int64_t>(n) - extra;
    const int64_t width = m * cw;
    Communicator* split = o.cfg_comm != nullptr && o.cfg_comm->size() > 1 ? o.cfg_comm : nullptr;
    const CfgPasses mine = CfgPasses::For(split ? split->rank() : 0, split ? split->size() : 1, m);
    const int64_t C = s.x.size(1), H = s.x.size(3), W = s.x.size(4);
    const auto out_options = s.x.options().dtype(at::kFloat).device(dev);
    at::Tensor out1, out2, out3b;
    // B1: text + context, reads the cache only.
    if (mine.text) {
      DitForwardArgs b1 = base;
      b1.y = StackRows(s.text_rows, 0, n, dev);
      b1.xattn_mask = StackRows(s.text_masks, 0, n, dev);
      b1.caption_dropout_mask = Bool1(false).to(dev);
      b1.update_kv_cache = false;
      if (s.text_pass_cache != nullptr) b1.kv_cache = s.text_pass_cache;
      MAGI_ASSIGN_OR_RETURN(out1, run(b1));
    } else {
      MAGI_RETURN_IF_ERROR(poll());
    }
    // B2: context only (null text); the cache-writing pass.
    if (mine.context) {
      DitForwardArgs b2 = base;
      b2.y = StackRows(s.null_rows, 0, n, dev);
      b2.xattn_mask = StackRows(s.null_masks, 0, n, dev);
      b2.caption_dropout_mask = Bool1(true).to(dev);
      b2.update_kv_cache = true;
      MAGI_ASSIGN_OR_RETURN(out2, run(b2));
    } else {
      MAGI_RETURN_IF_ERROR(poll());
    }
    // B3: each noisy chunk alone as a batch item, no context, no cache (this rank's chunks).
    const int64_t k = mine.uncond_end - mine.uncond_begin;
    if (k > 0) {
      at::Tensor xn = s.x.narrow(2, (extra + mine.uncond_begin) * cw, k * cw);
      DitForwardArgs b3;
      b3.x = xn.squeeze(0).reshape({C, k, cw, H, W}).transpose(0, 1).contiguous();
      b3.t = TimeTensor(s.t, extra + mine.uncond_begin, extra + mine.uncond_end).transpose(0, 1).contiguous().to(dev);
      b3.y = StackRows(s.null_rows, extra + mine.uncond_begin, extra + mine.uncond_end, dev);
      b3.xattn_mask = StackRows(s.null_masks, extra + mine.uncond_begin, extra + mine.uncond_end, dev);
      b3.caption_dropout_mask = Bool1(true).to(dev);
      std::vector<std::array<int64_t, 2>> own;
      for (int64_t i = 0; i < k; ++i) own.push_back({i * o.tokens_per_chunk, (i + 1) * o.tokens_per_chunk});
      b3.kv_range = RangeTensor(own).to(dev);
      b3.denoising_range_num = 1;
      b3.slice_point = 0;
      // Without a cache the reference ignores the cache flags; ours must not ask for one.
      b3.fwd_extra_1st_chunk = false;
      b3.extract_prefix_video_feature = false;
      b3.distill_nearly_clean_chunk = s.distill_nearly_clean_chunk;
      b3.num_steps = s.num_steps;
      b3.distill_interval = s.distill_interval;
      b3.kv_cache = nullptr;
      b3.update_kv_cache = false;
      b3.record_kv = false;
      MAGI_ASSIGN_OR_RETURN(out3b, run(b3));
    } else {
      MAGI_RETURN_IF_ERROR(poll());
    }
    if (split != nullptr) {
      // Every rank combines the same velocity: each pass's output comes from its owner.
      if (!out1.defined()) out1 = at::empty({1, C, static_cast<int64_t>(n) * cw, H, W}, out_options);
      if (!out2.defined()) out2 = at::empty({1, C, static_cast<int64_t>(n) * cw, H, W}, out_options);
      at::Tensor all3 = at::empty({m, C, cw, H, W}, out_options);
      if (k > 0) all3.narrow(0, mine.uncond_begin, k).copy_(out3b);
      out1 = out1.contiguous();
      out2 = out2.contiguous();
      MAGI_RETURN_IF_ERROR(split->Broadcast(out1, 0, "cfg.text_pass"));
      MAGI_RETURN_IF_ERROR(split->Broadcast(out2, 1, "cfg.context_pass"));
      for (int r = 0; r < split->size(); ++r) {
        const CfgPasses theirs = CfgPasses::For(r, split->size(), m);
        const int64_t len = theirs.uncond_end - theirs.uncond_begin;
        if (len <= 0) continue;
        at::Tensor part = all3.narrow(0, theirs.uncond_begin, len);  // contiguous: leading dim
        MAGI_RETURN_IF_ERROR(split->Broadcast(part, r, "cfg.uncond_pass"));
      }
      out3b = all3;
    }
    at::Tensor out3 = out3b.transpose(0, 1).reshape({1, C, width, H, W});

    std::vector<at::Tensor> parts;
    if (extra) parts.push_back(s.x.narrow(2, 0, cw).to(dev));
    for (int64_t j = 0; j < m; ++j) {
      MAGI_ASSIGN_OR_RETURN(int b, CfgBucket(s.t[extra + j], o.cfg_t_range));
      if (b >= static_cast<int>(o.prev_chunk_scales.size())) {
        return absl::OutOfRangeError(absl::StrCat("cfg bucket ", b, " of t ", s.t[extra + j], " has no scale"));
      }
      const int64_t l = (extra + j) * cw;
      parts.push_back(CombineCfg3(out3.narrow(2, j * cw, cw), out2.narrow(2, l, cw), out1.narrow(2, l, cw),
                                  static_cast<float>(o.prev_chunk_scales[b]), static_cast<float>(o.text_scales[b])));
    }
    return at::cat(parts, 2);
  }

  // cfg_number 1: one pass with text, writes the cache.
  DitForwardArgs a = base;
  a.caption_dropout_mask = Bool1(false).to(dev);
  a.update_kv_cache = true;
  const int s0 = extra;
  // Nearly clean, but the first noisy chunk already attends only to itself: its output is what
  // the appended copy would give (GuidanceConfig::elide_self_only_copy), so none is appended
  // and the pass writes all of its chunks' K/V (the flag's only effect in the DiT is to leave
  // the appended chunk out of the cache write).
  const bool self_only = s.distill_nearly_clean_chunk && o.elide_self_only_copy &&
                         s.kv_range[s0][1] - s.kv_range[s0][0] == o.tokens_per_chunk;
  if (!s.distill_nearly_clean_chunk || self_only) {
    a.distill_nearly_clean_chunk = false;
    a.y = StackRows(s.text_rows, 0, n, dev);
    a.xattn_mask = StackRows(s.text_masks, 0, n, dev);
    MAGI_ASSIGN_OR_RETURN(at::Tensor out, run(a));
    if (self_only) {
      at::Tensor v = out.clone();
      const at::Tensor first = out.narrow(2, s0 * cw, cw);
      v.narrow(2, s0 * cw, cw).copy_(BlendNearlyClean(first, first, o.prev_chunks_scale));
      return v;
    }
    if (!extra) return out;
    return at::cat({s.x.narrow(2, 0, cw).to(dev), out.narrow(2, cw, out.size(2) - cw)}, 2);
  }
  // Nearly clean: append a copy of the first noisy chunk that attends only to itself.
  int64_t kmax = 0;
  for (const auto& r : s.kv_range) kmax = std::max({kmax, r[0], r[1]});
  std::vector<std::array<int64_t, 2>> ranges = s.kv_range;
  ranges.push_back({kmax, kmax + o.tokens_per_chunk});
  std::vector<float> t = s.t;
  t.push_back(s.t[s0]);
  std::vector<at::Tensor> rows = s.text_rows, masks = s.text_masks;
  rows.push_back(s.text_rows[s0]);
  masks.push_back(s.text_masks[s0]);
  a.x = at::cat({s.x, s.x.narrow(2, s0 * cw, cw)}, 2);
  a.t = TimeTensor(t, 0, n + 1).to(dev);
  a.kv_range = RangeTensor(ranges).to(dev);
  a.y = StackRows(rows, 0, n + 1, dev);
  a.xattn_mask = StackRows(masks, 0, n + 1, dev);
  a.denoising_range_num = static_cast<int>(n) + 1;
  MAGI_ASSIGN_OR_RETURN(at::Tensor out, run(a));
  at::Tensor blended = BlendNearlyClean(out.narrow(2, s0 * cw, cw), out.narrow(2, n * cw, cw), o.prev_chunks_scale);
  at::Tensor v = out.narrow(2, 0, n * cw).clone();
  v.narrow(2, s0 * cw, cw).copy_(blended);
  // The reference sizes its copy with the incremented range count, so every slot (the
  // extra one included) carries the model output here.
  return v;
}

}  // namespace magi
