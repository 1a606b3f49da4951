#include "physics/physics_iq.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace magi {
namespace physics {
namespace {

// Erosion (take_max = false) or dilation (true) with a k x k square; pixels outside the image
// are ignored, which is what OpenCV's default border value for erode/dilate amounts to.
BinaryMask Morph(const BinaryMask& in, int k, bool take_max) {
  const int r = k / 2;
  const int w = in.width, h = in.height;
  // Separable: rows, then columns.
  BinaryMask rows(w, h), out(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t v = take_max ? 0 : 1;
      for (int d = std::max(0, x - r); d <= std::min(w - 1, x + r); ++d) {
        const uint8_t b = in.bits[static_cast<size_t>(y) * w + d];
        v = take_max ? std::max(v, b) : std::min(v, b);
      }
      rows.bits[static_cast<size_t>(y) * w + x] = v;
    }
  }
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t v = take_max ? 0 : 1;
      for (int d = std::max(0, y - r); d <= std::min(h - 1, y + r); ++d) {
        const uint8_t b = rows.bits[static_cast<size_t>(d) * w + x];
        v = take_max ? std::max(v, b) : std::min(v, b);
      }
      out.bits[static_cast<size_t>(y) * w + x] = v;
    }
  }
  return out;
}

absl::Status CheckSameShape(const std::vector<BinaryMask>& a, const std::vector<BinaryMask>& b) {
  if (a.empty() || a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat("mask videos have ", a.size(), " and ", b.size(),
                                                   " frames; need the same number, at least 1"));
  }
  for (size_t t = 0; t < a.size(); ++t) {
    if (a[t].width != b[t].width || a[t].height != b[t].height ||
        a[t].bits.size() != static_cast<size_t>(a[t].width) * a[t].height ||
        b[t].bits.size() != a[t].bits.size()) {
      return absl::InvalidArgumentError(absl::StrCat("mask frame ", t, " is ", a[t].width, "x",
                                                     a[t].height, " vs ", b[t].width, "x",
                                                     b[t].height, "; need equal sizes"));
    }
  }
  return absl::OkStatus();
}

BinaryMask UnionOverTime(const std::vector<BinaryMask>& masks) {
  BinaryMask out(masks[0].width, masks[0].height);
  for (const BinaryMask& m : masks) {
    for (size_t p = 0; p < m.bits.size(); ++p) out.bits[p] |= m.bits[p];
  }
  return out;
}

}  // namespace

uint8_t Gray(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((4899u * r + 9617u * g + 1868u * b + 8192u) >> 14);
}

absl::StatusOr<std::vector<BinaryMask>> MotionMasks(const std::vector<RgbFrame>& frames,
                                                    const MotionMaskOptions& options) {
  if (frames.empty()) return absl::InvalidArgumentError("MotionMasks: no frames");
  if (options.threshold < 0 || options.threshold > 254) {
    return absl::InvalidArgumentError(
        absl::StrCat("MotionMaskOptions.threshold is ", options.threshold, "; allowed: [0, 254]"));
  }
  if (!(options.alpha > 0.0 && options.alpha <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MotionMaskOptions.alpha is ", options.alpha, "; allowed: (0, 1]"));
  }
  if (options.morph_kernel < 1 || options.morph_kernel % 2 == 0 || options.morph_kernel > 31) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MotionMaskOptions.morph_kernel is ", options.morph_kernel, "; allowed: odd, in [1, 31]"));
  }
  const int w = frames[0].width, h = frames[0].height;
  const size_t n = static_cast<size_t>(w) * h;
  for (size_t t = 0; t < frames.size(); ++t) {
    if (frames[t].width != w || frames[t].height != h || frames[t].rgb24.size() != n * 3 ||
        n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("frame ", t, " is ", frames[t].width, "x", frames[t].height, " with ",
                       frames[t].rgb24.size(), " bytes; frame 0 is ", w, "x", h));
    }
  }
  std::vector<double> background(n);
  std::vector<uint8_t> gray(n);
  auto to_gray = [&](const RgbFrame& f) {
    for (size_t p = 0; p < n; ++p) {
      gray[p] = Gray(f.rgb24[p * 3], f.rgb24[p * 3 + 1], f.rgb24[p * 3 + 2]);
    }
  };
  to_gray(frames[0]);
  for (size_t p = 0; p < n; ++p) background[p] = gray[p];
  std::vector<BinaryMask> masks;
  masks.reserve(frames.size());
  masks.emplace_back(w, h);
  for (size_t t = 1; t < frames.size(); ++t) {
    to_gray(frames[t]);
    BinaryMask m(w, h);
    for (size_t p = 0; p < n; ++p) {
      background[p] = (1.0 - options.alpha) * background[p] + options.alpha * gray[p];
      const int avg = static_cast<int>(std::nearbyint(background[p]));  // convertScaleAbs
      m.bits[p] = std::abs(gray[p] - avg) > options.threshold ? 1 : 0;
    }
    if (options.morph_kernel > 1) {
      const int k = options.morph_kernel;
      m = Morph(Morph(m, k, /*take_max=*/false), k, /*take_max=*/true);  // opening
      m = Morph(Morph(m, k, /*take_max=*/true), k, /*take_max=*/false);  // closing
    }
    masks.push_back(std::move(m));
  }
  return masks;
}

absl::StatusOr<double> MaskIou(const BinaryMask& a, const BinaryMask& b) {
  if (a.width != b.width || a.height != b.height || a.bits.size() != b.bits.size() ||
      a.bits.size() != static_cast<size_t>(a.width) * a.height) {
    return absl::InvalidArgumentError(absl::StrCat("masks are ", a.width, "x", a.height, " and ",
                                                   b.width, "x", b.height, "; need equal sizes"));
  }
  size_t inter = 0, uni = 0;
  for (size_t p = 0; p < a.bits.size(); ++p) {
    inter += (a.bits[p] && b.bits[p]) ? 1 : 0;
    uni += (a.bits[p] || b.bits[p]) ? 1 : 0;
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

absl::StatusOr<double> MeanSquaredError(const std::vector<RgbFrame>& truth,
                                        const std::vector<RgbFrame>& candidate) {
  if (truth.empty() || truth.size() != candidate.size()) {
    return absl::InvalidArgumentError(absl::StrCat("videos have ", truth.size(), " and ",
                                                   candidate.size(),
                                                   " frames; need the same number, at least 1"));
  }
  double sum = 0.0;
  for (size_t t = 0; t < truth.size(); ++t) {
    const RgbFrame& a = truth[t];
    const RgbFrame& b = candidate[t];
    if (a.width != b.width || a.height != b.height || a.rgb24.size() != a.ExpectedBytes() ||
        b.rgb24.size() != a.rgb24.size() || a.rgb24.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("frame ", t, " is ", a.width, "x", a.height,
                                                     " vs ", b.width, "x", b.height,
                                                     "; need equal sizes"));
    }
    double frame = 0.0;
    for (size_t i = 0; i < a.rgb24.size(); ++i) {
      const double d = (static_cast<double>(a.rgb24[i]) - b.rgb24[i]) / 255.0;
      frame += d * d;
    }
    sum += frame / static_cast<double>(a.rgb24.size());
  }
  return sum / static_cast<double>(truth.size());
}

absl::StatusOr<double> SpatialIou(const std::vector<BinaryMask>& truth,
                                  const std::vector<BinaryMask>& candidate) {
  absl::Status ok = CheckSameShape(truth, candidate);
  if (!ok.ok()) return ok;
  return MaskIou(UnionOverTime(truth), UnionOverTime(candidate));
}

absl::StatusOr<double> SpatiotemporalIou(const std::vector<BinaryMask>& truth,
                                         const std::vector<BinaryMask>& candidate) {
  absl::Status ok = CheckSameShape(truth, candidate);
  if (!ok.ok()) return ok;
  double sum = 0.0;
  for (size_t t = 0; t < truth.size(); ++t) sum += *MaskIou(truth[t], candidate[t]);
  return sum / static_cast<double>(truth.size());
}

absl::StatusOr<double> WeightedSpatialIou(const std::vector<BinaryMask>& truth,
                                          const std::vector<BinaryMask>& candidate) {
  absl::Status ok = CheckSameShape(truth, candidate);
  if (!ok.ok()) return ok;
  // Counts instead of fractions: both are divided by the same frame count, which cancels.
  const size_t n = truth[0].bits.size();
  std::vector<int> ca(n, 0), cb(n, 0);
  for (size_t t = 0; t < truth.size(); ++t) {
    for (size_t p = 0; p < n; ++p) {
      ca[p] += truth[t].bits[p];
      cb[p] += candidate[t].bits[p];
    }
  }
  double inter = 0.0, uni = 0.0;
  for (size_t p = 0; p < n; ++p) {
    inter += std::min(ca[p], cb[p]);
    uni += std::max(ca[p], cb[p]);
  }
  return uni == 0.0 ? 1.0 : inter / uni;
}

absl::StatusOr<SceneMetrics> ScoreContinuation(const std::vector<RgbFrame>& truth,
                                               const std::vector<RgbFrame>& candidate,
                                               const MotionMaskOptions& options) {
  SceneMetrics m;
  absl::StatusOr<double> mse = MeanSquaredError(truth, candidate);
  if (!mse.ok()) return mse.status();
  m.mse = *mse;
  absl::StatusOr<std::vector<BinaryMask>> mt = MotionMasks(truth, options);
  if (!mt.ok()) return mt.status();
  absl::StatusOr<std::vector<BinaryMask>> mc = MotionMasks(candidate, options);
  if (!mc.ok()) return mc.status();
  m.spatial_iou = *SpatialIou(*mt, *mc);
  m.spatiotemporal_iou = *SpatiotemporalIou(*mt, *mc);
  for (size_t t = 0; t < mt->size(); ++t) {
    const bool still = std::count((*mt)[t].bits.begin(), (*mt)[t].bits.end(), 1) == 0;
    const double iou = *MaskIou((*mt)[t], (*mc)[t]);
    ++m.frames;
    if (still) {
      ++m.still_frames;
      m.still_agreed += iou == 1.0 ? 1 : 0;  // both empty
    } else {
      m.moving_iou_sum += iou;
    }
  }
  m.weighted_spatial_iou = *WeightedSpatialIou(*mt, *mc);
  return m;
}

SceneMetrics PhysicalVarianceOfTruth() {
  SceneMetrics v;
  v.spatial_iou = v.spatiotemporal_iou = v.weighted_spatial_iou = 1.0;
  v.mse = 0.0;
  return v;
}

double SceneMetrics::StillShare() const { return frames > 0 ? static_cast<double>(still_frames) / frames : 0.0; }

double SceneMetrics::StillAgreement() const {
  return still_frames > 0 ? static_cast<double>(still_agreed) / still_frames : 0.0;
}

double SceneMetrics::MovingIou() const {
  return frames > still_frames ? moving_iou_sum / (frames - still_frames) : 0.0;
}

absl::StatusOr<MethodSummary> Summarize(const std::vector<SceneMetrics>& scenes,
                                        const std::vector<SceneMetrics>& variance) {
  if (scenes.empty() || scenes.size() != variance.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Summarize: ", scenes.size(), " scenes and ", variance.size(),
                     " variance references; need the same number, at least 1"));
  }
  SceneMetrics mean, var;
  for (size_t i = 0; i < scenes.size(); ++i) {
    mean.spatial_iou += scenes[i].spatial_iou;
    mean.spatiotemporal_iou += scenes[i].spatiotemporal_iou;
    mean.weighted_spatial_iou += scenes[i].weighted_spatial_iou;
    mean.mse += scenes[i].mse;
    var.spatial_iou += variance[i].spatial_iou;
    var.spatiotemporal_iou += variance[i].spatiotemporal_iou;
    var.weighted_spatial_iou += variance[i].weighted_spatial_iou;
    var.mse += variance[i].mse;
    mean.frames += scenes[i].frames;
    mean.still_frames += scenes[i].still_frames;
    mean.still_agreed += scenes[i].still_agreed;
    mean.moving_iou_sum += scenes[i].moving_iou_sum;
  }
  const double n = static_cast<double>(scenes.size());
  for (SceneMetrics* s : {&mean, &var}) {
    s->spatial_iou /= n;
    s->spatiotemporal_iou /= n;
    s->weighted_spatial_iou /= n;
    s->mse /= n;
  }
  if (var.spatial_iou <= 0.0 || var.spatiotemporal_iou <= 0.0 || var.weighted_spatial_iou <= 0.0) {
    return absl::InvalidArgumentError("Summarize: a physical-variance IoU mean is 0");
  }
  const double raw =
      (mean.spatial_iou / var.spatial_iou + mean.spatiotemporal_iou / var.spatiotemporal_iou +
       mean.weighted_spatial_iou / var.weighted_spatial_iou) /
          3.0 -
      (mean.mse - var.mse);
  MethodSummary out;
  out.mean = mean;
  out.physics_iq = 100.0 * std::min(1.0, std::max(0.0, raw));
  return out;
}

}  // namespace physics
}  // namespace magi
