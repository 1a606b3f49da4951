#include "worker/model/dit.h"


#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "kernels/attention.h"
#include "kernels/fused_ops.h"
#include "kernels/gemm.h"
#include "kernels/norms.h"
#include "parallel/communicator.h"
#include "parallel/sequence_exchange.h"
#include "worker/model/checkpoint.h"
#include "worker/model/host_allocator.h"
#include "worker/model/kv_cache.h"
#include "worker/model/safetensors.h"

namespace magi {
namespace {

constexpr int kTimestepFrequencies = 256;
constexpr double kTimestepMaxPeriod = 10000.0;
constexpr double kTimestepRescale = 1000.0;
// The reference's training used 8-way tensor parallelism and left an 8-way interleave of
// [self | cross] attention outputs in front of linear_proj (spec dit.md §3.7g).
constexpr int kProjInterleave = 8;
constexpr double kFp8Max = 448.0;

const std::vector<StDtype> kFloatTypes = {StDtype::kF32, StDtype::kBF16, StDtype::kF16};

// A bias-free or biased linear layer whose weight may be an fp8 checkpoint tensor.
struct Linear {
  at::Tensor weight;  // [out, in] in params dtype (or fp32 where the reference upcasts)
  at::Tensor bias;    // undefined when the layer has none
  // FP8 (spec dit.md §6.3): weight holds the decoded e4m3 values (exact in bf16).
  bool fp8 = false;
  bool smoothed = false;     // per-channel class: divides by smooth_scale, A-scale input_scale[0]
  at::Tensor divisor;        // [in] float32: input_scale (per-tensor) or smooth_scale (smoothed)
  double output_scale = 1;   // input_scale[0] * weight_scale[0]
};

struct Norm {
  at::Tensor weight;
  at::Tensor bias;
};

struct Layer {
  Linear ada;
  Norm qkv_pre_norm;  // linear_qkv.layer_norm (plain)
  Linear q, qx, k, v, kv_xattn, proj;
  Norm q_norm, k_norm, q_norm_xattn, k_norm_xattn;  // LN1p
  Norm attn_post_norm, mlp_pre_norm, mlp_post_norm;
  Linear fc1, fc2;
  // GLU models: without TP, fc1 is the checkpoint's whole [gate; up] weight (one GEMM, an
  // alias of the mapping, no copy) and fc1_up is empty; under TP a rank's gate and up rows are
  // not adjacent, so fc1 holds its gate rows and fc1_up its up rows.
  Linear fc1_up;
  bool fc1_gate_up = false;  // fc1 is [gate; up]
};

at::Tensor ApplyLinear(const Linear& l, const at::Tensor& x) {
  if (!l.fp8) return gemm::Linear(x, l.weight, l.bias);
  // Two roundings of the activation: bf16, then e4m3 (round to nearest even).
  at::Tensor scaled = (x.to(at::kFloat) / l.divisor).clamp(-kFp8Max, kFp8Max).to(at::kBFloat16).to(at::kFloat);
  at::Tensor xq = DecodeE4M3(EncodeE4M3(scaled));
  at::Tensor y = gemm::Linear(xq, l.weight.to(at::kFloat)) * l.output_scale;
  return y.to(at::kBFloat16);
}

// Row i of the packing is (row r, token p) for every valid caption token, in order.
struct CaptionPacking {
  std::vector<int64_t> valid_per_row;
  std::vector<TokenRange> key_ranges;  // cuK ranges per row
  int64_t total = 0;
};

// One forward's shapes, checked against the model (spec §2).
struct ForwardShape {
  int64_t N = 0, T = 0, Hl = 0, Wl = 0;  // batch and latent frames/height/width of x
  int64_t R = 1;                         // chunks in the window (denoising_range_num)
  int64_t Tp = 0, Hp = 0, Wp = 0;        // token grid
  int64_t M = 0;                         // tokens per chunk
  int64_t S = 0;                         // tokens of the window (per batch row)
  int64_t rows = 0;                      // N * R: one per batch row and chunk
  bool use_cache = false;                // some call reads or writes its KV cache
  std::vector<TokenRange> q_ranges, k_ranges;  // self-attention, batch-major (b, s)
  // The calls of this forward, in batch order: one (all N batch rows), or one per row when
  // calls of several requests share the forward (ForwardBatch). Each call's keys are
  // [its cached prefix | its window], laid out in batch order from key_base on.
  struct Call {
    const DitForwardArgs* args = nullptr;
    int64_t first_row = 0, rows = 1;  // batch rows [first_row, first_row + rows)
    bool use_cache = false;
    int64_t prefix_tokens = 0;
    int64_t key_base = 0;
  };
  std::vector<Call> calls;
};

// The window embedded (spec §3.1-3.6), computed on every rank for the whole window.
struct Embedded {
  at::Tensor h;          // [S, N, D] params dtype
  at::Tensor rope;       // [S, 2 * half]
  at::Tensor cond_silu;  // [N, R, Dc] params dtype: SiLU of the adaLN condition
  at::Tensor y_flat;     // [valid caption tokens, Dx] params dtype
  std::vector<TokenRange> xk_ranges;  // cross-attention keys of each (b, chunk) row
};

// What every layer reads, for this rank's token slice.
struct LayerInputs {
  const ForwardShape& shape;
  const DitForwardArgs& args;
  const UlyssesExchange& cp;
  const Embedded& emb;
  at::Tensor rope_sin, rope_cos;      // [local, 1, 1, half]
  at::Tensor token_chunk_index;       // [local] long: each local token's chunk (its gate row)
  std::vector<TokenRange> xq_ranges;  // cross-attention queries of each (b, chunk) row
  int64_t token_chunk = 1;            // tokens per step of the per-token work
};

// A layer's attention inputs for the local tokens and this TP rank's heads.
struct AttentionInputs {
  at::Tensor q;   // [local, N, Hq, hd], normed and rotated
  at::Tensor kv;  // [local, N, G, 2 hd]: [k | v], k normed and rotated
  at::Tensor qx;  // [local, N, Hq, hd] cross-attention queries, normed
};

// Self- and cross-attention outputs back on the local tokens: [local, N, Hq * hd] each.
struct AttentionOutputs {
  at::Tensor self;
  at::Tensor cross;
};

}  // namespace

struct DitModel::Impl {
  ModelConfig config;
  Options options;
  at::ScalarType pd = at::kFloat;  // params dtype
  // Global parameters (fp32 where the reference upcasts them).
  at::Tensor x_embed_w;                    // [D, Cin, pt, p, p]
  Linear t_mlp0, t_mlp2;                   // timestep MLP
  Linear y_proj_xattn, y_proj_adaln;       // caption embedder
  at::Tensor null_caption;                 // [Ly, Cy]
  at::Tensor rope_bands;                   // [hd / 8]
  bool rope_bands_stored = false;          // read from the checkpoint (else the default bands)
  Norm final_norm;
  at::Tensor final_w;                      // [p*p*pt*Cout, D]
  std::vector<Layer> layers;
  int64_t weight_bytes = 0;

  absl::Status LoadAll(Checkpoint& ckpt);
  at::Tensor TimestepEmbedding(const at::Tensor& t) const;
  at::Tensor RopeTable(int64_t t_total, int64_t tp, int64_t hp, int64_t wp) const;
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& a, DitRecorder* rec) const;
  absl::StatusOr<std::vector<at::Tensor>> ForwardBatch(const std::vector<const DitForwardArgs*>& calls) const;
  // The forward of checked arguments (one call's, or the merged calls of a batch).
  absl::StatusOr<at::Tensor> Run(const DitForwardArgs& a, const ForwardShape& shape, DitRecorder* rec) const;

  // The steps of Forward, in order.
  absl::StatusOr<ForwardShape> CheckArgs(const DitForwardArgs& a) const;
  Embedded Embed(const DitForwardArgs& a, const ForwardShape& s, DitRecorder* rec) const;
  LayerInputs SliceForRank(const ForwardShape& s, const UlyssesExchange& cp, const Embedded& e,
                           const DitForwardArgs& a) const;
  // One layer (§3.7): projections per token chunk, attention over the window (Ulysses exchange
  // around it), then linear_proj, gates, post-norms, residuals and the MLP per token chunk.
  AttentionInputs ProjectQkv(const Layer& L, const at::Tensor& h, const LayerInputs& in) const;
  absl::StatusOr<AttentionOutputs> Attend(size_t li, const Layer& L, AttentionInputs qkv, const LayerInputs& in) const;
  absl::StatusOr<at::Tensor> ProjectAndMlp(const Layer& L, const at::Tensor& h, const AttentionOutputs& att,
                                           const LayerInputs& in) const;
  absl::StatusOr<at::Tensor> OutputHead(const at::Tensor& h, const LayerInputs& in, DitRecorder* rec) const;
};

namespace {

// One rank's share of a linear weight: rows (dim 0) or columns (dim 1) [begin, begin + n).
// n < 0 keeps the whole tensor.
struct Slice {
  int dim = 0;
  int64_t begin = 0;
  int64_t n = -1;
  at::Tensor Cut(const at::Tensor& t) const { return n < 0 ? t : t.narrow(dim, begin, n); }
};

// Reads weights from the mapped checkpoint and places them on the model's device. Every
// tensor is cut to this rank's shard on the mapped host tensor first and only then converted
// and copied: a TP rank never converts or uploads the rows it does not keep, and only the
// pages of its slice are read from the file. On CPU a tensor whose stored dtype is the target
// dtype stays an alias of the mapping (no copy).
class Loader {
 public:
  Loader(Checkpoint& ckpt, at::Device device, int64_t* bytes) : ckpt_(ckpt), device_(device), bytes_(bytes) {}

  // A float tensor of `shape`, cut by `slice`, converted to `dtype` (nullopt keeps the stored
  // dtype) on the device.
  absl::StatusOr<at::Tensor> Float(const std::string& key, const std::vector<int64_t>& shape,
                                   std::optional<at::ScalarType> dtype, const Slice& slice = {}) {
    MAGI_ASSIGN_OR_RETURN(at::Tensor t, ckpt_.Take(key, shape, kFloatTypes));
    return Place(slice.Cut(t), dtype);
  }

  absl::StatusOr<Norm> LoadNorm(const std::string& prefix, int64_t dim, std::optional<at::ScalarType> dtype) {
    Norm n;
    MAGI_ASSIGN_OR_RETURN(n.weight, Float(prefix + ".weight", {dim}, dtype));
    MAGI_ASSIGN_OR_RETURN(n.bias, Float(prefix + ".bias", {dim}, dtype));
    return n;
  }

  // A linear layer [out, in] (this rank's `slice` of it); fp8 when the checkpoint stores its
  // weight as F8_E4M3. A row slice cuts the bias too, a column slice the fp8 divisor.
  absl::StatusOr<Linear> LoadLinear(const std::string& prefix, int64_t out, int64_t in, bool has_bias,
                                    std::optional<at::ScalarType> dtype, bool fp8_allowed, const Slice& slice = {}) {
    Linear l;
    const std::string wkey = prefix + ".weight";
    const Slice vector_slice = slice.n >= 0 ? Slice{0, slice.begin, slice.n} : Slice{};
    const StTensorInfo* info = ckpt_.Find(wkey);
    if (info != nullptr && info->dtype == StDtype::kF8E4M3) {
      if (!fp8_allowed) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint file '", ckpt_.FileOf(wkey), "': key '", wkey,
                                                       "' is F8_E4M3 but this layer is never quantized"));
      }
      MAGI_ASSIGN_OR_RETURN(at::Tensor codes, ckpt_.Take(wkey, {1, out, in}, {StDtype::kF8E4M3}));
      l.fp8 = true;
      const at::Tensor kept = slice.Cut(codes.view({out, in})).contiguous();
      l.weight = DecodeE4M3(kept).to(device_, at::kBFloat16);
      MAGI_ASSIGN_OR_RETURN(at::Tensor wscale, ckpt_.Take(prefix + ".weight_scale", {1}, {StDtype::kF32}));
      l.smoothed = ckpt_.Contains(prefix + ".smooth_scale");
      at::Tensor iscale, divisor;
      if (l.smoothed) {
        MAGI_ASSIGN_OR_RETURN(iscale, ckpt_.Take(prefix + ".input_scale", {1}, {StDtype::kF32}));
        MAGI_ASSIGN_OR_RETURN(at::Tensor smooth, ckpt_.Take(prefix + ".smooth_scale", {1, in}, {StDtype::kF32}));
        divisor = smooth.view({in});
      } else {
        MAGI_ASSIGN_OR_RETURN(iscale, ckpt_.Take(prefix + ".input_scale", {in}, {StDtype::kF32}));
        divisor = iscale;
      }
      if (slice.dim == 1) divisor = vector_slice.Cut(divisor);  // per input channel
      l.divisor = divisor.to(device_, at::kFloat).contiguous();
      // The reference multiplies the two fp32 scales in fp32.
      l.output_scale = static_cast<double>(static_cast<float>(iscale[0].item<float>() * wscale[0].item<float>()));
      *bytes_ += kept.nbytes() + l.divisor.nbytes();
      return l;
    }
    MAGI_ASSIGN_OR_RETURN(l.weight, Float(wkey, {out, in}, dtype, slice));
    if (has_bias) {
      MAGI_ASSIGN_OR_RETURN(l.bias, Float(prefix + ".bias", {out}, dtype, slice.dim == 0 ? vector_slice : Slice{}));
    }
    return l;
  }

 private:
  absl::StatusOr<at::Tensor> Place(const at::Tensor& host, std::optional<at::ScalarType> dtype) {
    at::Tensor out = (dtype ? host.to(device_, *dtype) : host.to(device_)).contiguous();
    *bytes_ += out.nbytes();
    return out;
  }

  Checkpoint& ckpt_;
  at::Device device_;
  int64_t* bytes_;
};

}  // namespace

absl::Status DitModel::Impl::LoadAll(Checkpoint& ckpt) {
  const ModelConfig& m = config;
  const ShardLayout& lay = options.layout;
  MAGI_RETURN_IF_ERROR(lay.CheckDivisible(m.num_attention_heads, "num_attention_heads"));
  MAGI_RETURN_IF_ERROR(lay.CheckDivisible(m.num_query_groups, "num_query_groups"));
  MAGI_RETURN_IF_ERROR(lay.CheckDivisible(m.ffn_hidden_size, "ffn_hidden_size"));
  if (8 % lay.tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", lay.tp_size,
                                                   " must divide 8: linear_proj's input carries the reference's "
                                                   "8-way [self | cross] interleave (spec dit.md §3.7g)"));
  }
  if (lay.cp_size < 1 || lay.cp_rank < 0 || lay.cp_rank >= lay.cp_size) {
    return absl::InvalidArgumentError(absl::StrCat("context-parallel rank ", lay.cp_rank, " of ", lay.cp_size,
                                                   " is invalid"));
  }
  const int groups_tp = m.num_query_groups / lay.tp_size;
  if ((m.num_attention_heads / lay.tp_size) % lay.cp_size != 0 ||
      (groups_tp % lay.cp_size != 0 && lay.cp_size % groups_tp != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Ulysses context parallelism needs the per-TP-rank heads (", m.num_attention_heads / lay.tp_size,
        ") divisible by the context-parallel size (", lay.cp_size, ") and the per-TP-rank K/V groups (", groups_tp,
        ") divisible by it or dividing it (K/V groups are then replicated)"));
  }
  if (lay.tp_size > 1 && options.tp_comm == nullptr) {
    return absl::InvalidArgumentError("tensor-parallel layout without a tp communicator");
  }
  if (lay.cp_size > 1 && options.cp_comm == nullptr) {
    return absl::InvalidArgumentError("context-parallel layout without a cp communicator");
  }
  Loader L(ckpt, options.device, &weight_bytes);
  const at::ScalarType f32 = at::kFloat;
  const int64_t D = m.hidden_size, Dc = m.cond_dim(), Dx = m.xattn_dim(), Cy = m.caption_channels;
  const int64_t Qd = m.query_dim(), Kd = m.kv_dim(), hd = m.kv_channels;
  MAGI_ASSIGN_OR_RETURN(x_embed_w, L.Float("x_embedder.weight",
                                           {D, m.in_channels, m.t_patch_size, m.patch_size, m.patch_size}, f32));
  MAGI_ASSIGN_OR_RETURN(t_mlp0, L.LoadLinear("t_embedder.mlp.0", Dc, kTimestepFrequencies, true, f32, false));
  MAGI_ASSIGN_OR_RETURN(t_mlp2, L.LoadLinear("t_embedder.mlp.2", Dc, Dc, true, f32, false));
  MAGI_ASSIGN_OR_RETURN(y_proj_xattn, L.LoadLinear("y_embedder.y_proj_xattn.0", Dx, Cy, true, f32, false));
  MAGI_ASSIGN_OR_RETURN(y_proj_adaln, L.LoadLinear("y_embedder.y_proj_adaln.0", Dc, Cy, true, f32, false));
  MAGI_ASSIGN_OR_RETURN(null_caption, L.Float("y_embedder.null_caption_embedding", {m.caption_max_length, Cy}, f32));
  if (ckpt.Contains("rope.bands")) {
    MAGI_ASSIGN_OR_RETURN(rope_bands, L.Float("rope.bands", {hd / 8}, f32));
    rope_bands_stored = true;
  } else {
    // The reference silently keeps its default bands when the key is absent (spec §6.5).
    rope_bands = at::pow(10000.0, -at::arange(hd / 8, at::kFloat) / static_cast<double>(hd / 8)).to(options.device);
  }
  MAGI_ASSIGN_OR_RETURN(final_norm, L.LoadNorm("videodit_blocks.final_layernorm", D, f32));
  const int64_t final_out = static_cast<int64_t>(m.patch_size) * m.patch_size * m.t_patch_size * m.out_channels;
  MAGI_ASSIGN_OR_RETURN(final_w, L.Float("final_linear.linear.weight", {final_out, D}, f32));

  for (int i = 0; i < m.num_layers; ++i) {
    const std::string p = absl::StrCat("videodit_blocks.layers.", i, ".");
    const std::string sa = p + "self_attention.";
    const bool fp8_ok = i >= 1 && i <= m.num_layers - 2;  // first and last layer stay bf16
    Layer l;
    // Megatron split (a whole tensor without TP): q/qx/k/v/kv_xattn/fc1 by output rows (own
    // heads, groups, MLP columns), linear_proj/fc2 by input columns. Heads are contiguous per
    // group, and with tp | 8 the own self/cross heads of linear_proj are one contiguous column
    // block. GLU: fc1 is [all gate; all up]; a TP rank keeps its gate rows in fc1 and its up
    // rows in fc1_up, so SiLU(gate) * up stays local (one rank: the whole [gate; up], one GEMM).
    const int t = lay.tp_size, r = lay.tp_rank;
    const int64_t F = m.ffn_hidden_size, Fl = F / t;
    auto rows = [&](int64_t total) { return Slice{0, r * total / t, total / t}; };
    const Slice cols_proj{1, r * 2 * Qd / t, 2 * Qd / t}, cols_fc2{1, r * Fl, Fl};
    MAGI_ASSIGN_OR_RETURN(l.ada, L.LoadLinear(p + "ada_modulate_layer.proj.0", 2 * D, Dc, true, pd, false));
    MAGI_ASSIGN_OR_RETURN(l.qkv_pre_norm, L.LoadNorm(sa + "linear_qkv.layer_norm", D, std::nullopt));
    MAGI_ASSIGN_OR_RETURN(l.q, L.LoadLinear(sa + "linear_qkv.q", Qd, D, false, pd, fp8_ok, rows(Qd)));
    MAGI_ASSIGN_OR_RETURN(l.qx, L.LoadLinear(sa + "linear_qkv.qx", Qd, D, false, pd, fp8_ok, rows(Qd)));
    MAGI_ASSIGN_OR_RETURN(l.k, L.LoadLinear(sa + "linear_qkv.k", Kd, D, false, pd, fp8_ok, rows(Kd)));
    MAGI_ASSIGN_OR_RETURN(l.v, L.LoadLinear(sa + "linear_qkv.v", Kd, D, false, pd, fp8_ok, rows(Kd)));
    MAGI_ASSIGN_OR_RETURN(l.kv_xattn,
                          L.LoadLinear(sa + "linear_kv_xattn", 2 * Kd, Dx, false, pd, false, rows(2 * Kd)));
    // linear_proj runs in fp32 (the reference's fp32 autocast) outside fp8 layers: its weight
    // is upcast once here (exact from bf16) instead of at every forward.
    MAGI_ASSIGN_OR_RETURN(l.proj, L.LoadLinear(sa + "linear_proj", D, 2 * Qd, false, f32, fp8_ok, cols_proj));
    MAGI_ASSIGN_OR_RETURN(l.q_norm, L.LoadNorm(sa + "q_layernorm", hd, f32));
    MAGI_ASSIGN_OR_RETURN(l.k_norm, L.LoadNorm(sa + "k_layernorm", hd, f32));
    // The xattn QK-norms are not upcast: w + 1 is evaluated in the stored dtype (§3.7c).
    MAGI_ASSIGN_OR_RETURN(l.q_norm_xattn, L.LoadNorm(sa + "q_layernorm_xattn", hd, std::nullopt));
    MAGI_ASSIGN_OR_RETURN(l.k_norm_xattn, L.LoadNorm(sa + "k_layernorm_xattn", hd, std::nullopt));
    MAGI_ASSIGN_OR_RETURN(l.attn_post_norm, L.LoadNorm(p + "self_attn_post_norm", D, f32));
    MAGI_ASSIGN_OR_RETURN(l.mlp_pre_norm, L.LoadNorm(p + "mlp.layer_norm", D, std::nullopt));
    MAGI_ASSIGN_OR_RETURN(l.mlp_post_norm, L.LoadNorm(p + "mlp_post_norm", D, f32));
    const std::string fc1 = p + "mlp.linear_fc1";
    if (m.gated_linear_unit && t == 1) {
      MAGI_ASSIGN_OR_RETURN(l.fc1, L.LoadLinear(fc1, m.fc1_out(), D, false, pd, fp8_ok));
      l.fc1_gate_up = true;
    } else {
      MAGI_ASSIGN_OR_RETURN(l.fc1, L.LoadLinear(fc1, m.fc1_out(), D, false, pd, fp8_ok, Slice{0, r * Fl, Fl}));
      if (m.gated_linear_unit) {
        MAGI_ASSIGN_OR_RETURN(l.fc1_up,
                              L.LoadLinear(fc1, m.fc1_out(), D, false, pd, fp8_ok, Slice{0, F + r * Fl, Fl}));
      }
    }
    MAGI_ASSIGN_OR_RETURN(l.fc2, L.LoadLinear(p + "mlp.linear_fc2", D, F, false, pd, fp8_ok, cols_fc2));
    layers.push_back(std::move(l));
  }
  if (options.strict) MAGI_RETURN_IF_ERROR(ckpt.CheckAllUsed());
  return absl::OkStatus();
}

at::Tensor DitModel::Impl::TimestepEmbedding(const at::Tensor& t) const {
  // fp32 in the reference's order: the argument reaches 1000 * phi where one ulp matters (§3.4).
  const int64_t half = kTimestepFrequencies / 2;
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(t.device());
  at::Tensor freqs = at::exp(at::arange(half, f32) * static_cast<float>(-std::log(kTimestepMaxPeriod)) /
                             static_cast<float>(half));
  at::Tensor args = t.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0) * static_cast<float>(kTimestepRescale);
  at::Tensor e = at::cat({at::cos(args), at::sin(args)}, -1).to(pd).to(at::kFloat);
  at::Tensor h = at::silu(ApplyLinear(t_mlp0, e));
  return ApplyLinear(t_mlp2, h);
}

at::Tensor DitModel::Impl::RopeTable(int64_t t_total, int64_t tp, int64_t hp, int64_t wp) const {
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(rope_bands.device());
  const double rescale = std::sqrt(static_cast<double>(hp * wp) / 256.0);
  const int64_t feat[3] = {t_total, hp, wp};
  const double ref[3] = {static_cast<double>(t_total), hp / rescale, wp / rescale};
  std::vector<at::Tensor> axes;
  for (int a = 0; a < 3; ++a) {
    at::Tensor x = at::arange(feat[a], f32);
    if (a > 0) x = x - static_cast<float>((feat[a] - 1) / 2.0);
    if (feat[a] != 1) {
      x = x / static_cast<float>(feat[a] - 1) * static_cast<float>(ref[a] - 1);
    }
    axes.push_back(x);
  }
  std::vector<at::Tensor> grid = at::meshgrid(axes, "ij");
  at::Tensor g = at::stack(grid, -1).unsqueeze(-1);          // [T, H, W, 3, 1]
  at::Tensor pos = (g * rope_bands).reshape({t_total * hp * wp, -1});  // [S_total, 3 * nb]
  at::Tensor table = at::cat({at::sin(pos), at::cos(pos)}, -1);
  return table.narrow(0, table.size(0) - tp * hp * wp, tp * hp * wp);
}

namespace {

absl::Status ForEachChunk(int64_t total, int64_t chunk, const std::function<absl::Status(int64_t, int64_t)>& fn) {
  for (int64_t c0 = 0; c0 < total; c0 += chunk) MAGI_RETURN_IF_ERROR(fn(c0, std::min(chunk, total - c0)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ForwardShape> DitModel::Impl::CheckArgs(const DitForwardArgs& a) const {
  const ModelConfig& m = config;
  auto bad = [](const std::string& msg) { return absl::InvalidArgumentError(absl::StrCat("DiT forward: ", msg)); };
  if (!a.x.defined() || a.x.dim() != 5) return bad("x must be [N, C, T, H, W]");
  ForwardShape s;
  s.N = a.x.size(0);
  const int64_t C = a.x.size(1);
  s.T = a.x.size(2), s.Hl = a.x.size(3), s.Wl = a.x.size(4);
  s.R = a.denoising_range_num;
  const int p = m.patch_size, pt = m.t_patch_size;
  if (C != m.latent_channels()) return bad(absl::StrCat("x has ", C, " channels, the model takes ", m.latent_channels()));
  if (s.T % pt != 0 || s.Hl % p != 0 || s.Wl % p != 0) {
    return bad(absl::StrCat("x frames/height/width (", s.T, ", ", s.Hl, ", ", s.Wl, ") must be multiples of the patch (",
                            pt, ", ", p, ", ", p, ")"));
  }
  s.Tp = s.T / pt, s.Hp = s.Hl / p, s.Wp = s.Wl / p;
  if (s.Hp < 2 || s.Wp < 2) return bad(absl::StrCat("token grid ", s.Hp, "x", s.Wp, " must be at least 2x2"));
  if (s.R < 1 || s.Tp % s.R != 0) {
    return bad(absl::StrCat("denoising_range_num (", s.R, ") must divide the ", s.Tp, " token frames"));
  }
  s.M = (s.Tp / s.R) * s.Hp * s.Wp;
  s.S = s.Tp * s.Hp * s.Wp;
  s.rows = s.N * s.R;
  const int64_t N = s.N, R = s.R, rows = s.rows;
  const int64_t Ly = m.caption_max_length, Cy = m.caption_channels;
  if (!a.t.defined() || a.t.dim() != 2 || a.t.size(0) != N || a.t.size(1) != R) {
    return bad(absl::StrCat("t must be [N, R] = [", N, ", ", R, "]"));
  }
  if (!a.y.defined() || a.y.dim() != 4 || a.y.size(0) != rows || a.y.size(1) != 1 || a.y.size(2) != Ly ||
      a.y.size(3) != Cy) {
    return bad(absl::StrCat("y must be [N*R, 1, Ly, Cy] = [", rows, ", 1, ", Ly, ", ", Cy, "]"));
  }
  if (!a.xattn_mask.defined() || a.xattn_mask.numel() != rows * Ly) {
    return bad(absl::StrCat("xattn_mask must be [N*R, 1, Ly] = [", rows, ", 1, ", Ly, "]"));
  }
  if (!a.caption_dropout_mask.defined() || a.caption_dropout_mask.dim() != 1 ||
      (a.caption_dropout_mask.size(0) != N && a.caption_dropout_mask.size(0) != 1)) {
    return bad(absl::StrCat("caption_dropout_mask must be [N] or [1] (N = ", N, ")"));
  }
  if (!a.kv_range.defined() || a.kv_range.dim() != 2 || a.kv_range.size(0) != rows || a.kv_range.size(1) != 2) {
    return bad(absl::StrCat("kv_range must be [N*R, 2] = [", rows, ", 2]"));
  }
  const bool cache_active = a.extract_prefix_video_feature || a.fwd_extra_1st_chunk || a.slice_point > 0 || a.record_kv;
  if (cache_active && a.kv_cache == nullptr) {
    return bad("slice_point > 0, fwd_extra_1st_chunk or extract_prefix_video_feature needs a kv_cache");
  }
  s.use_cache = cache_active && a.kv_cache != nullptr;
  if (s.use_cache && N != 1) return bad(absl::StrCat("the KV cache supports batch 1, got N = ", N));
  if (a.slice_point < 0) return bad("slice_point must be >= 0");
  if (m.num_layers > 0 && options.distill && a.num_steps <= 0) return bad("num_steps must be > 0 for a distilled model");
  if (options.distill && a.num_steps == 12 && a.distill_interval <= 0) {
    return bad("distill_interval must be > 0 at 12 steps");
  }
  const int64_t prefix_tokens = s.use_cache ? static_cast<int64_t>(a.slice_point) * s.M : 0;  // cached keys
  s.calls.push_back({&a, 0, N, s.use_cache, prefix_tokens, 0});
  const int64_t key_tokens = prefix_tokens + N * s.S;
  at::Tensor kv_cpu = a.kv_range.to(at::kCPU).to(at::kLong).contiguous();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t k0 = kv_cpu[r][0].item<int64_t>(), k1 = kv_cpu[r][1].item<int64_t>();
    if (k0 < 0 || k1 < k0 || k1 > key_tokens) {
      return bad(absl::StrCat("kv_range[", r, "] = [", k0, ", ", k1, ") must lie within [0, ", key_tokens, "]"));
    }
    s.q_ranges.emplace_back(r * s.M, (r + 1) * s.M);
    s.k_ranges.emplace_back(k0, k1);
  }
  return s;
}

Embedded DitModel::Impl::Embed(const DitForwardArgs& a, const ForwardShape& s, DitRecorder* rec) const {
  const ModelConfig& m = config;
  const at::Device dev = options.device;
  const at::ScalarType f32 = at::kFloat;
  const int p = m.patch_size, pt = m.t_patch_size;
  const int64_t N = s.N, R = s.R, rows = s.rows, Ly = m.caption_max_length, Cy = m.caption_channels;
  Embedded e;
  at::Tensor x = a.x.to(dev, f32) * static_cast<float>(m.x_rescale_factor);
  if (m.half_channel_vae) x = at::cat({x, x}, 1);
  at::Tensor patches = gemm::Conv3d(x, x_embed_w, {}, {pt, p, p});    // [N, D, Tp, Hp, Wp]
  e.h = patches.flatten(2).permute({2, 0, 1}).contiguous().to(pd);   // [S, N, D]
  if (rec) rec->tensors["pre.x_embed"] = e.h.to(f32);

  // RoPE over the window's place in its video: one table, or one per call ([S, N, 2 * half])
  // when calls at different places share the forward.
  auto rope_of = [&](const DitForwardArgs& c) {
    return RopeTable(s.Tp + (s.Tp / R) * c.slice_point, s.Tp, s.Hp, s.Wp);  // [S, 2 * half]
  };
  if (s.calls.size() == 1) {
    e.rope = rope_of(*s.calls[0].args);
  } else {
    std::vector<at::Tensor> tables;
    for (const auto& c : s.calls) tables.push_back(rope_of(*c.args).unsqueeze(1).expand({-1, c.rows, -1}));
    e.rope = at::cat(tables, 1);
  }
  if (rec) rec->tensors["pre.rope"] = e.rope;

  at::Tensor t_flat = a.t.to(dev, f32).reshape({rows});
  at::Tensor temb = TimestepEmbedding(t_flat);                      // [N*R, Dc]
  if (options.distill) {
    // The shortcut-step embedding of each call's step count, on each of its rows.
    std::vector<float> factor;
    for (const auto& c : s.calls) {
      const DitForwardArgs& ca = *c.args;
      const double f = ca.num_steps == 12 ? 4.0 / ca.distill_interval * 2.0 : ca.num_steps / 4.0 * 2.0;
      factor.insert(factor.end(), static_cast<size_t>(c.rows * R), static_cast<float>(f));
    }
    at::Tensor ft = at::tensor(factor, at::TensorOptions().dtype(f32)).to(dev);
    temb = temb + TimestepEmbedding(ft);
  }
  // Caption: cross-attention tokens and the adaLN "text on/off" row.
  // Only the valid caption tokens reach cross-attention, so only they are projected (the
  // reference projects all Ly padded tokens of every row and then selects; a caption is
  // typically tens of its 800 tokens).
  at::Tensor y = a.y.to(dev, f32).reshape({rows, Ly, Cy});
  at::Tensor mask = a.xattn_mask.to(dev).reshape({rows, Ly}).to(at::kBool);
  at::Tensor y_valid = y.masked_select(mask.unsqueeze(-1)).view({-1, Cy});  // [valid tokens, Cy]
  e.y_flat = at::silu(ApplyLinear(y_proj_xattn, y_valid)).to(pd);            // [valid tokens, Dx]
  if (rec) rec->tensors["pre.y_xattn_flat"] = e.y_flat.to(f32);
  at::Tensor counts = mask.sum(1).to(at::kCPU).to(at::kLong).contiguous();
  int64_t acc = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = counts[r].item<int64_t>();
    e.xk_ranges.emplace_back(acc, acc + c);
    acc += c;
  }
  at::Tensor drop = a.caption_dropout_mask.to(dev).to(at::kBool);
  at::Tensor rows_idx = at::where(drop, at::full_like(drop, Ly - 1, at::kLong), at::full_like(drop, Ly - 2, at::kLong));
  at::Tensor ya = ApplyLinear(y_proj_adaln, null_caption.index_select(0, rows_idx));  // [N', Dc]
  at::Tensor cond = (temb.view({N, R, -1}) + ya.unsqueeze(1)).to(pd);                 // [N, R, Dc]
  if (rec) rec->tensors["pre.condition"] = cond.to(f32);
  e.cond_silu = at::silu(cond.to(f32)).to(pd);
  return e;
}

LayerInputs DitModel::Impl::SliceForRank(const ForwardShape& s, const UlyssesExchange& cp, const Embedded& e,
                                         const DitForwardArgs& a) const {
  LayerInputs in{s, a, cp, e};
  const int64_t off = cp.offset(), n = cp.local();
  const at::Tensor rope = cp.Slice(e.rope);
  const int64_t rot_half = rope.size(-1) / 2;
  const int64_t rope_batch = rope.dim() == 3 ? rope.size(1) : 1;  // per-call tables
  in.rope_sin = rope.narrow(-1, 0, rot_half).reshape({n, rope_batch, 1, rot_half});
  in.rope_cos = rope.narrow(-1, rot_half, rot_half).reshape({n, rope_batch, 1, rot_half});
  in.token_chunk_index =
      at::div(at::arange(off, off + n, at::TensorOptions().dtype(at::kLong).device(options.device)), s.M, "floor");
  for (int64_t b = 0; b < s.N; ++b) {
    for (int64_t j = 0; j < s.R; ++j) {
      const int64_t lo = std::max(j * s.M, off), hi = std::min((j + 1) * s.M, off + n);
      in.xq_ranges.emplace_back(hi > lo ? b * n + lo - off : 0, hi > lo ? b * n + hi - off : 0);
    }
  }
  // Equal pieces of at most token_chunk_rows rows (all N batch rows of a token go together).
  const int64_t most = std::max<int64_t>(1, options.token_chunk_rows / s.N);
  const int64_t pieces = std::max<int64_t>(1, (n + most - 1) / most);
  in.token_chunk = std::max<int64_t>(1, (n + pieces - 1) / pieces);
  return in;
}

AttentionInputs DitModel::Impl::ProjectQkv(const Layer& L, const at::Tensor& h, const LayerInputs& in) const {
  const ModelConfig& m = config;
  const at::ScalarType f32 = at::kFloat;
  const double eps = m.layernorm_epsilon;
  const int64_t N = in.shape.N, n_loc = in.cp.local(), hd = m.kv_channels;
  const int64_t Hq = m.num_attention_heads / options.layout.tp_size, G = m.num_query_groups / options.layout.tp_size;
  AttentionInputs o;
  // k and v go straight into one [k | v] buffer (the Ulysses exchange and the cache take it).
  o.q = at::empty({n_loc, N, Hq, hd}, h.options());
  o.kv = at::empty({n_loc, N, G, 2 * hd}, h.options());
  o.qx = at::empty({n_loc, N, Hq, hd}, h.options());
  for (int64_t c0 = 0; c0 < n_loc; c0 += in.token_chunk) {
    const int64_t n = std::min(in.token_chunk, n_loc - c0);
    const at::Tensor hc = h.narrow(0, c0, n);
    const at::Tensor sin = in.rope_sin.narrow(0, c0, n), cos = in.rope_cos.narrow(0, c0, n);
    at::Tensor hn = LayerNormF32(hc, L.qkv_pre_norm.weight, L.qkv_pre_norm.bias, eps, false).to(pd);
    at::Tensor qc = ApplyLinear(L.q, hn).view({n, N, Hq, hd}).to(f32);
    o.q.narrow(0, c0, n).copy_(ApplyRotary(LayerNormF32(qc, L.q_norm.weight, L.q_norm.bias, eps, true), sin, cos));
    at::Tensor kc = ApplyLinear(L.k, hn).view({n, N, G, hd}).to(f32);
    o.kv.narrow(0, c0, n).narrow(-1, 0, hd).copy_(
        ApplyRotary(LayerNormF32(kc, L.k_norm.weight, L.k_norm.bias, eps, true), sin, cos));
    o.kv.narrow(0, c0, n).narrow(-1, hd, hd).copy_(ApplyLinear(L.v, hn).view({n, N, G, hd}));
    at::Tensor qxc = ApplyLinear(L.qx, hn).view({n, N, Hq, hd});
    o.qx.narrow(0, c0, n).copy_(LayerNormF32(qxc, L.q_norm_xattn.weight, L.q_norm_xattn.bias, eps, true));
  }
  return o;
}

absl::StatusOr<AttentionOutputs> DitModel::Impl::Attend(size_t li, const Layer& L, AttentionInputs qkv,
                                                        const LayerInputs& in) const {
  const ModelConfig& m = config;
  const double eps = m.layernorm_epsilon;
  const ForwardShape& s = in.shape;
  const int64_t N = s.N, S = s.S, n_loc = in.cp.local(), hd = m.kv_channels, cp = in.cp.size();
  const int64_t Hq = m.num_attention_heads / options.layout.tp_size, G = m.num_query_groups / options.layout.tp_size;
  // Heads / K/V groups this rank attends over after the exchange. With fewer groups than CP
  // ranks the groups are replicated first (as the reference does), one per rank.
  const int64_t kv_repeat = G < cp ? cp / G : 1;
  const int64_t Hc = Hq / cp, Gc = G * kv_repeat / cp, Qd = Hq * hd;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  // Caption k, v (per-head [k | v] rows in linear_kv_xattn).
  at::Tensor kvx = ApplyLinear(L.kv_xattn, in.emb.y_flat).view({-1, G, 2 * hd});
  at::Tensor kx = LayerNormF32(kvx.narrow(-1, 0, hd), L.k_norm_xattn.weight, L.k_norm_xattn.bias, eps, true).to(pd);
  at::Tensor vx = kvx.narrow(-1, hd, hd);

  // Heads to the whole sequence (Ulysses; identity without CP): kv first, then q.
  if (kv_repeat > 1) qkv.kv = qkv.kv.repeat_interleave(kv_repeat, 2);
  MAGI_ASSIGN_OR_RETURN(at::Tensor kv_seq, in.cp.ScatterHeads(qkv.kv, "cp.alltoall.kv"));
  MAGI_ASSIGN_OR_RETURN(at::Tensor q_seq, in.cp.ScatterHeads(qkv.q, "cp.alltoall.q"));
  // Batch-major flattening (b, s) of queries and keys.
  at::Tensor q_flat = q_seq.transpose(0, 1).reshape({N * S, Hc, hd});
  at::Tensor kv_cur = kv_seq.transpose(0, 1).reshape({N * S, Gc, 2 * hd});
  at::Tensor kv_all = kv_cur;
  if (s.use_cache) {
    // Per call, [cached prefix | its window] in one buffer on the model's device: the prefix
    // is copied once, straight from the call's cache.
    const ForwardShape::Call& last = s.calls.back();
    kv_all = at::empty({last.key_base + last.prefix_tokens + last.rows * S, Gc, 2 * hd}, kv_cur.options());
    for (const ForwardShape::Call& c : s.calls) {
      const DitForwardArgs& ca = *c.args;
      const at::Tensor window = kv_cur.narrow(0, c.first_row * S, c.rows * S);
      if (c.use_cache) {
        MAGI_RETURN_IF_ERROR(ca.kv_cache->ReadInto(static_cast<int>(li), c.prefix_tokens,
                                                   kv_all.narrow(0, c.key_base, c.prefix_tokens)));
        if (ca.update_kv_cache || ca.record_kv) {
          const int64_t n = ca.distill_nearly_clean_chunk ? (s.R - 1) * s.M : s.R * s.M;
          MAGI_RETURN_IF_ERROR(ca.kv_cache->Write(static_cast<int>(li), c.prefix_tokens, window.narrow(0, 0, n)));
        }
      }
      kv_all.narrow(0, c.key_base + c.prefix_tokens, window.size(0)).copy_(window);
    }
  }
  qkv.kv = kv_seq = kv_cur = q_seq = qkv.q = at::Tensor();
  at::Tensor os = RangeAttention(q_flat, kv_all.narrow(-1, 0, hd), kv_all.narrow(-1, hd, hd), s.q_ranges, s.k_ranges,
                                 scale);                                   // [N*S, Hc, hd]
  q_flat = kv_all = at::Tensor();
  MAGI_ASSIGN_OR_RETURN(os, in.cp.GatherHeads(os.view({N, S, Hc, hd}).transpose(0, 1), "cp.alltoall.out"));
  at::Tensor qx_flat = qkv.qx.transpose(0, 1).reshape({N * n_loc, Hq, hd});
  qkv.qx = at::Tensor();
  at::Tensor ox = RangeAttention(qx_flat, kx, vx, in.xq_ranges, in.emb.xk_ranges, scale);  // [N*local, Hq, hd]
  qx_flat = at::Tensor();
  AttentionOutputs out;
  out.self = os.reshape({n_loc, N, Qd});
  out.cross = ox.view({N, n_loc, Qd}).transpose(0, 1);
  return out;
}

absl::StatusOr<at::Tensor> DitModel::Impl::ProjectAndMlp(const Layer& L, const at::Tensor& h,
                                                         const AttentionOutputs& att, const LayerInputs& in) const {
  const ModelConfig& m = config;
  const at::ScalarType f32 = at::kFloat;
  const double eps = m.layernorm_epsilon;
  const int64_t N = in.shape.N, D = m.hidden_size, tp = options.layout.tp_size;
  const int64_t Qd = m.query_dim() / tp, blocks = kProjInterleave / tp, E = m.query_dim() / kProjInterleave;
  at::Tensor gates = at::tanh(ApplyLinear(L.ada, in.emb.cond_silu).to(f32)).to(pd);  // softcap, cap 1
  at::Tensor g_attn_rows = gates.narrow(-1, 0, D), g_mlp_rows = gates.narrow(-1, D, D);
  at::Tensor h_next = at::empty_like(h);
  // With tensor parallelism this part stays one chunk: its two all-reduces then keep their one
  // call per layer.
  const int64_t chunk = tp > 1 ? in.cp.local() : in.token_chunk;
  MAGI_RETURN_IF_ERROR(ForEachChunk(in.cp.local(), chunk, [&](int64_t c0, int64_t n) -> absl::Status {
    const at::Tensor token_rows = in.token_chunk_index.narrow(0, c0, n);
    auto gate_rows = [&](const at::Tensor& g) {  // g [N, R, D] -> [n, N, D] fp32 (spec §3.6)
      return g.to(f32).transpose(0, 1).index_select(0, token_rows);
    };
    // [Os | Ox] viewed (2, 8, E) and reordered to (8, 2, E) before linear_proj (§3.7g); a TP
    // rank holds 8/tp of the blocks.
    at::Tensor merged = at::cat({att.self.narrow(0, c0, n), att.cross.narrow(0, c0, n)}, -1)
                            .view({n, N, 2, blocks, E})
                            .transpose(2, 3)
                            .reshape({n, N, 2 * Qd});
    at::Tensor attn_out;
    if (L.proj.fp8) {
      attn_out = ApplyLinear(L.proj, merged).to(f32);
    } else {
      attn_out = gemm::Linear(merged.to(f32), L.proj.weight);  // fp32 weight (cached at load)
    }
    merged = at::Tensor();
    MAGI_RETURN_IF_ERROR(SumPartials(options.tp_comm, attn_out, "tp.allreduce.proj"));
    // Gate before the sandwich post-norm, then the residual, in fp32 (§3.7i): one fused op.
    at::Tensor h1 = GatePostNormResidual(attn_out, gate_rows(g_attn_rows), L.attn_post_norm.weight,
                                         L.attn_post_norm.bias, h.narrow(0, c0, n), eps, pd);
    attn_out = at::Tensor();
    at::Tensor z = LayerNormF32(h1, L.mlp_pre_norm.weight, L.mlp_pre_norm.bias, eps, false).to(pd);
    if (m.gated_linear_unit) {
      // SiLU(gate) * up in fp32, rounded once to params dtype (§3.7j).
      at::Tensor act;
      if (L.fc1_gate_up) {
        const at::Tensor gate_up = ApplyLinear(L.fc1, z).to(f32);  // [n, N, 2 F]
        const int64_t F = gate_up.size(-1) / 2;
        act = at::silu(gate_up.narrow(-1, 0, F));
        act.mul_(gate_up.narrow(-1, F, F));
      } else {
        act = at::silu(ApplyLinear(L.fc1, z).to(f32));
        act.mul_(ApplyLinear(L.fc1_up, z).to(f32));
      }
      z = act.to(pd);
    } else {
      z = at::gelu(ApplyLinear(L.fc1, z).to(f32)).to(pd);
    }
    at::Tensor mo = ApplyLinear(L.fc2, z);
    z = at::Tensor();
    if (tp > 1) {
      // Partials are summed in fp32, then rounded once to params dtype.
      mo = mo.to(f32);
      MAGI_RETURN_IF_ERROR(SumPartials(options.tp_comm, mo, "tp.allreduce.fc2"));
      mo = mo.to(pd);
    }
    h_next.narrow(0, c0, n).copy_(GatePostNormResidual(mo.to(f32), gate_rows(g_mlp_rows), L.mlp_post_norm.weight,
                                                       L.mlp_post_norm.bias, h1, eps, pd));
    return absl::OkStatus();
  }));
  return h_next;
}

absl::StatusOr<at::Tensor> DitModel::Impl::OutputHead(const at::Tensor& h, const LayerInputs& in,
                                                      DitRecorder* rec) const {
  const ModelConfig& m = config;
  const ForwardShape& s = in.shape;
  const int p = m.patch_size, pt = m.t_patch_size;
  at::Tensor xf = LayerNorm1p(h, final_norm.weight, final_norm.bias, m.layernorm_epsilon);
  if (rec && in.cp.size() == 1) rec->tensors["blocks.out_final_layernorm"] = xf;
  at::Tensor pout = gemm::Linear(xf, final_w);  // [local, N, pt*p*p*Cout]
  MAGI_ASSIGN_OR_RETURN(pout, in.cp.GatherTokens(pout, "cp.allgather.out"));
  const int64_t Cout = m.out_channels;
  at::Tensor out = pout.view({s.Tp, s.Hp, s.Wp, s.N, pt, p, p, Cout})
                       .permute({3, 7, 0, 4, 1, 5, 2, 6})
                       .reshape({s.N, Cout, s.T, s.Hl, s.Wl});
  if (m.half_channel_vae) out = out.narrow(1, 0, 16);
  out = out / static_cast<float>(m.x_rescale_factor);
  return out.contiguous();
}

absl::StatusOr<at::Tensor> DitModel::Impl::Forward(const DitForwardArgs& a, DitRecorder* rec) const {
  MAGI_ASSIGN_OR_RETURN(ForwardShape shape, CheckArgs(a));              // spec §2
  return Run(a, shape, rec);
}

absl::StatusOr<std::vector<at::Tensor>> DitModel::Impl::ForwardBatch(
    const std::vector<const DitForwardArgs*>& calls) const {
  if (calls.empty()) return std::vector<at::Tensor>{};
  if (calls.size() == 1) {
    MAGI_ASSIGN_OR_RETURN(at::Tensor out, Forward(*calls[0], nullptr));
    return std::vector<at::Tensor>{out};
  }
  // Each call is checked as if alone; then they must agree on the window's shape.
  ForwardShape s;
  std::vector<at::Tensor> xs, ts, ys, masks, drops;
  int64_t key_base = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    const DitForwardArgs& c = *calls[i];
    auto checked = CheckArgs(c);
    if (!checked.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("batched call ", i, ": ", checked.status().message()));
    }
    const ForwardShape& one = *checked;
    if (one.N != 1) {
      return absl::InvalidArgumentError(absl::StrCat("DiT forward batch: call ", i, " has batch N = ", one.N,
                                                     "; batched calls take N = 1 each"));
    }
    if (i == 0) {
      s = one;
      s.calls.clear();
      s.q_ranges.clear();
      s.k_ranges.clear();
      s.use_cache = false;
    } else if (one.T != s.T || one.Hl != s.Hl || one.Wl != s.Wl || one.R != s.R) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DiT forward batch: call ", i, " has window [T ", one.T, ", H ", one.Hl, ", W ", one.Wl, "] of ", one.R,
          " chunks; call 0 has [T ", s.T, ", H ", s.Hl, ", W ", s.Wl, "] of ", s.R, ": batched calls must agree"));
    }
    const int64_t prefix_tokens = one.calls[0].prefix_tokens;
    s.calls.push_back({&c, static_cast<int64_t>(i), 1, one.use_cache, prefix_tokens, key_base});
    s.use_cache = s.use_cache || one.use_cache;
    for (int64_t r = 0; r < one.R; ++r) {
      const int64_t row = static_cast<int64_t>(i) * one.R + r;
      s.q_ranges.emplace_back(row * one.M, (row + 1) * one.M);
      s.k_ranges.emplace_back(one.k_ranges[r].first + key_base, one.k_ranges[r].second + key_base);
    }
    key_base += prefix_tokens + one.S;
    xs.push_back(c.x);
    ts.push_back(c.t.reshape({1, one.R}));
    ys.push_back(c.y);
    masks.push_back(c.xattn_mask.reshape({one.R, 1, -1}));
    drops.push_back(c.caption_dropout_mask.reshape({1}));
  }
  s.N = static_cast<int64_t>(calls.size());
  s.rows = s.N * s.R;
  DitForwardArgs merged = *calls[0];
  merged.x = at::cat(xs, 0);
  merged.t = at::cat(ts, 0);
  merged.y = at::cat(ys, 0);
  merged.xattn_mask = at::cat(masks, 0);
  merged.caption_dropout_mask = at::cat(drops, 0);
  merged.kv_range = at::Tensor();  // per call, in s.k_ranges
  merged.kv_cache = nullptr;       // per call, in s.calls
  MAGI_ASSIGN_OR_RETURN(at::Tensor out, Run(merged, s, nullptr));
  std::vector<at::Tensor> outs;
  for (int64_t b = 0; b < s.N; ++b) outs.push_back(out.narrow(0, b, 1));
  return outs;
}

absl::StatusOr<at::Tensor> DitModel::Impl::Run(const DitForwardArgs& a, const ForwardShape& shape,
                                               DitRecorder* rec) const {
  Embedded emb = Embed(a, shape, rec);                                   // §3.1-3.6, whole window
  const UlyssesExchange cp(options.cp_comm, options.layout.cp_rank, options.layout.cp_size, shape.S, shape.N);
  const LayerInputs in = SliceForRank(shape, cp, emb, a);
  at::Tensor h = cp.Slice(emb.h).contiguous();                           // this rank's tokens
  emb.h = at::Tensor();  // the window's embedding is not kept past the first layer
  for (size_t li = 0; li < layers.size(); ++li) {                        // §3.7
    const Layer& L = layers[li];
    MAGI_ASSIGN_OR_RETURN(AttentionOutputs att, Attend(li, L, ProjectQkv(L, h, in), in));
    MAGI_ASSIGN_OR_RETURN(h, ProjectAndMlp(L, h, att, in));
    if (rec && cp.size() == 1) rec->tensors[absl::StrCat("layer", li, ".out")] = h.to(at::kFloat);
  }
  return OutputHead(h, in, rec);                                         // §3.8
}

DitModel::DitModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DitModel::~DitModel() = default;

namespace {
// Under AddressSanitizer LibTorch's allocator stays: ASan checks only the blocks it allocates,
// and the host allocator's mapped blocks would hide use-after-free of activations from it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUseHostAllocator = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUseHostAllocator = false;
#else
constexpr bool kUseHostAllocator = true;
#endif
#else
constexpr bool kUseHostAllocator = true;
#endif
}  // namespace

absl::StatusOr<std::unique_ptr<DitModel>> DitModel::Load(const ModelConfig& config, Checkpoint& checkpoint,
                                                         const Options& options) {
  MAGI_RETURN_IF_ERROR(ValidateModelConfig(config));
  if (kUseHostAllocator && !HostAllocatorInstalled()) MAGI_RETURN_IF_ERROR(InstallHostAllocator());
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  impl->pd = config.params_dtype == ParamsDtype::kFloat32 ? at::kFloat : at::kBFloat16;
  MAGI_RETURN_IF_ERROR(impl->LoadAll(checkpoint));
  return std::unique_ptr<DitModel>(new DitModel(std::move(impl)));
}

absl::StatusOr<std::vector<at::Tensor>> DitModel::ForwardBatch(const std::vector<const DitForwardArgs*>& calls) const {
  try {
    return impl_->ForwardBatch(calls);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("DiT forward failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> DitModel::Forward(const DitForwardArgs& args, DitRecorder* recorder) const {
  try {
    return impl_->Forward(args, recorder);
  } catch (const std::exception& e) {
    // ATen reports shape and device errors by exception; keep them inside this module.
    return absl::InternalError(absl::StrCat("DiT forward failed: ", e.what()));
  }
}

absl::StatusOr<std::map<std::string, at::Tensor>> DitModel::NamedWeights() const {
  const Impl& m = *impl_;
  const ShardLayout& lay = m.options.layout;
  if (lay.tp_size != 1 || lay.cp_size != 1) {
    return absl::FailedPreconditionError(absl::StrCat("DiT weights by key: the model is a shard (tp ", lay.tp_size,
                                                      ", cp ", lay.cp_size, "); only a single-rank model holds them whole"));
  }
  std::map<std::string, at::Tensor> w;
  absl::Status fp8_error;
  auto linear = [&](const std::string& key, const Linear& l) {
    if (l.fp8 && fp8_error.ok()) {
      fp8_error = absl::FailedPreconditionError(absl::StrCat("DiT weights by key: ", key, " is an fp8 layer"));
    }
    w[key + ".weight"] = l.weight;
    if (l.bias.defined()) w[key + ".bias"] = l.bias;
  };
  auto norm = [&](const std::string& key, const Norm& n) {
    w[key + ".weight"] = n.weight;
    w[key + ".bias"] = n.bias;
  };
  w["x_embedder.weight"] = m.x_embed_w;
  linear("t_embedder.mlp.0", m.t_mlp0);
  linear("t_embedder.mlp.2", m.t_mlp2);
  linear("y_embedder.y_proj_xattn.0", m.y_proj_xattn);
  linear("y_embedder.y_proj_adaln.0", m.y_proj_adaln);
  w["y_embedder.null_caption_embedding"] = m.null_caption;
  if (m.rope_bands_stored) w["rope.bands"] = m.rope_bands;
  norm("videodit_blocks.final_layernorm", m.final_norm);
  w["final_linear.linear.weight"] = m.final_w;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const std::string p = absl::StrCat("videodit_blocks.layers.", i, ".");
    const std::string sa = p + "self_attention.";
    linear(p + "ada_modulate_layer.proj.0", l.ada);
    norm(sa + "linear_qkv.layer_norm", l.qkv_pre_norm);
    linear(sa + "linear_qkv.q", l.q);
    linear(sa + "linear_qkv.qx", l.qx);
    linear(sa + "linear_qkv.k", l.k);
    linear(sa + "linear_qkv.v", l.v);
    linear(sa + "linear_kv_xattn", l.kv_xattn);
    linear(sa + "linear_proj", l.proj);
    norm(sa + "q_layernorm", l.q_norm);
    norm(sa + "k_layernorm", l.k_norm);
    norm(sa + "q_layernorm_xattn", l.q_norm_xattn);
    norm(sa + "k_layernorm_xattn", l.k_norm_xattn);
    norm(p + "self_attn_post_norm", l.attn_post_norm);
    norm(p + "mlp.layer_norm", l.mlp_pre_norm);
    norm(p + "mlp_post_norm", l.mlp_post_norm);
    linear(p + "mlp.linear_fc1", l.fc1);  // single rank: the whole [gate; up] of a GLU
    linear(p + "mlp.linear_fc2", l.fc2);
  }
  MAGI_RETURN_IF_ERROR(fp8_error);
  return w;
}

const ModelConfig& DitModel::config() const { return impl_->config; }
const DitModel::Options& DitModel::options() const { return impl_->options; }
int64_t DitModel::weight_bytes() const { return impl_->weight_bytes; }
std::vector<int64_t> DitModel::KvCacheGroupIndices(const ModelConfig& config, const ShardLayout& l) {
  const int64_t per_tp = config.num_query_groups / l.tp_size;
  const int64_t first_tp = static_cast<int64_t>(l.tp_rank) * per_tp;
  std::vector<int64_t> out;
  if (per_tp >= l.cp_size) {
    const int64_t per_cp = per_tp / l.cp_size;
    for (int64_t g = 0; g < per_cp; ++g) out.push_back(first_tp + l.cp_rank * per_cp + g);
  } else {
    out.push_back(first_tp + l.cp_rank / (l.cp_size / per_tp));
  }
  return out;
}

int DitModel::kv_cache_groups() const {
  const ShardLayout& l = impl_->options.layout;
  return std::max(1, impl_->config.num_query_groups / (l.tp_size * l.cp_size));
}

double DitModel::ForwardFlops(const ModelConfig& m, int64_t tokens, int64_t keys_per_query, int64_t caption_tokens,
                              int64_t caption_rows) {
  const double D = m.hidden_size, Qd = m.query_dim(), Kd = m.kv_dim(), Dx = m.xattn_dim();
  const double per_token = 2 * D * Qd * 2          // q, qx
                           + 2 * D * Kd * 2        // k, v
                           + 2 * (2 * Qd) * D      // linear_proj
                           + 2 * D * m.fc1_out()   // fc1
                           + 2 * m.ffn_hidden_size * D  // fc2
                           + 4 * Qd * keys_per_query    // self-attention QK^T and PV
                           + 4 * Qd * caption_tokens;   // cross-attention
  const double per_caption_token = 2 * Dx * 2 * Kd;     // linear_kv_xattn
  const double layer = per_token * tokens + per_caption_token * caption_tokens * caption_rows;
  const double head = 2.0 * D * m.patch_size * m.patch_size * m.t_patch_size * m.out_channels * tokens +
                      2.0 * m.in_channels * m.patch_size * m.patch_size * m.t_patch_size * D * tokens;
  return layer * m.num_layers + head;
}

}  // namespace magi
