// Golden cases of kind 'vae': the pipeline's tiled encode of a video and an image, the
// pipeline's tiled decode of a latent chunk (float and uint8 output), and single decoder
// tiles, in both the float32 and the reference-bf16 variants (golden README, "VAE files").
// Config, tile sizes and scale factor come from the folder's golden_vae.json.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "tools/golden/golden_report.h"
#include "worker/model/checkpoint.h"
#include "worker/model/safetensors.h"
#include "worker/vae/vae_codec.h"
#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

using nlohmann::json;

// max|diff| / max|ref| bounds (golden README "Observed tolerance (second pass)"): float32
// agrees to ~3e-7; an equally valid bf16 op order moves values by a few bf16 ulps.
constexpr double kF32Tolerance = 1e-5;
constexpr double kBf16Tolerance = 2e-2;
// uint8 levels: truncation can flip one level at exact integers even in float32.
constexpr double kF32Uint8Levels = 1;
constexpr double kBf16Uint8Levels = 2;

absl::StatusOr<VaeTileOptions> TileOptionsFrom(const json& kw, const std::string& where) {
  VaeTileOptions o;
  try {
    o.tile_sample_min_height = kw.at("tile_sample_min_height").get<int64_t>();
    o.tile_sample_min_width = kw.at("tile_sample_min_width").get<int64_t>();
    o.tile_sample_min_length = kw.at("tile_sample_min_length").get<int64_t>();
    o.spatial_tile_overlap_factor = kw.at("spatial_tile_overlap_factor").get<double>();
    o.temporal_tile_overlap_factor = kw.at("temporal_tile_overlap_factor").get<double>();
    o.allow_spatial_tiling = kw.value("allow_spatial_tiling", true);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("golden_vae.json ", where, ": ", e.what()));
  }
  return o;
}

std::string ShapeString(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ","), "]"); }

// One variant (bf16 / f32): its model and codec, and our outputs computed on demand.
struct Variant {
  std::string name;
  std::unique_ptr<ViTVae> vae;
  std::unique_ptr<VaeCodec> codec;
  std::map<std::string, at::Tensor> ours;  // golden tensor name (without the variant prefix) -> ours
  std::map<std::string, std::string> errors;
};

// The tile calls the reference makes for our inputs, as golden_vae.json lists them:
// [kind, input shape, output shape] in call order (encode video, encode image, decode float,
// decode uint8).
absl::StatusOr<std::vector<json>> ExpectedTiles(const ViTVae& vae, const VaeTileOptions& enc, const VaeTileOptions& dec,
                                                const std::vector<at::Tensor>& enc_inputs, const at::Tensor& latent,
                                                int decode_calls) {
  const VaeConfig& c = vae.config();
  std::vector<json> out;
  for (const at::Tensor& v : enc_inputs) {
    MAGI_ASSIGN_OR_RETURN(auto plan,
                          PlanTiledEncode(v.size(2), v.size(3), v.size(4), enc, c.patch_size, c.patch_length));
    for (const VaeTile& t : plan.tiles) {
      const int64_t lt = t.t_len == 1 ? 1 : t.t_len / c.patch_length;
      out.push_back(json::array({"enc",
                                 {v.size(0), v.size(1), t.t_len, t.h_len, t.w_len},
                                 {v.size(0), c.z_chans, lt, t.h_len / c.patch_size, t.w_len / c.patch_size}}));
    }
  }
  for (int call = 0; call < decode_calls; ++call) {
    MAGI_ASSIGN_OR_RETURN(auto plan, PlanTiledDecode(latent.size(2), latent.size(3), latent.size(4), dec,
                                                     c.patch_size, c.patch_length));
    for (const VaeTile& t : plan.tiles) {
      const int64_t frames = t.t_len == 1 ? 1 : t.t_len * c.patch_length;
      out.push_back(
          json::array({"dec",
                       {latent.size(0), latent.size(1), t.t_len, t.h_len, t.w_len},
                       {latent.size(0), c.in_chans, frames, t.h_len * c.patch_size, t.w_len * c.patch_size}}));
    }
  }
  return out;
}

}  // namespace

void RunVaeCases(const GoldenContext& ctx, GoldenReport& report) {
  namespace fs = std::filesystem;
  const std::vector<std::string> files = GoldenFiles(ctx.dir, "vae_", ".safetensors");
  if (files.empty()) return;
  auto fail_all = [&](const std::string& why) {
    for (const auto& f : files) {
      const std::string stem = fs::path(f).stem().string();
      if (stem != "vae_weights") report.Fail(stem, why);
    }
  };

  // ---- configuration ----
  const std::string json_path = (fs::path(ctx.dir) / "golden_vae.json").string();
  std::ifstream in(json_path);
  if (!in) return fail_all("golden_vae.json is missing");
  std::stringstream ss;
  ss << in.rdbuf();
  json golden = json::parse(ss.str(), nullptr, false);
  if (golden.is_discarded() || !golden.is_object() || !golden.contains("ddconfig") || !golden.contains("variants")) {
    return fail_all("golden_vae.json is not valid JSON with ddconfig and variants");
  }
  auto config = ParseVaeDdconfig(golden["ddconfig"].dump(), json_path);
  if (!config.ok()) return fail_all(std::string(config.status().message()));
  auto enc_opts = TileOptionsFrom(golden.value("encode_kwargs", json::object()), "encode_kwargs");
  auto dec_opts = TileOptionsFrom(golden.value("decode_kwargs", json::object()), "decode_kwargs");
  if (!enc_opts.ok()) return fail_all(std::string(enc_opts.status().message()));
  if (!dec_opts.ok()) return fail_all(std::string(dec_opts.status().message()));
  const double scale = golden.value("scale_factor", 0.18215);
  const std::string weights = (fs::path(ctx.dir) / "vae_weights.safetensors").string();

  // ---- inputs ----
  std::map<std::string, std::unique_ptr<SafetensorsFile>> data;
  for (const char* stem : {"vae_encode", "vae_decode"}) {
    const std::string path = (fs::path(ctx.dir) / (std::string(stem) + ".safetensors")).string();
    if (!fs::exists(path)) continue;
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) {
      report.Fail(stem, std::string(f.status().message()));
      continue;
    }
    data[stem] = std::move(*f);
  }
  auto input = [&](const std::string& stem, const std::string& key) -> at::Tensor {
    auto it = data.find(stem);
    if (it == data.end()) return at::Tensor();
    auto t = it->second->Get(key);
    return t.ok() ? *t : at::Tensor();
  };
  const at::Tensor video = input("vae_encode", "in.video_u8");
  const at::Tensor image = input("vae_encode", "in.image_u8");
  const at::Tensor latent = input("vae_decode", "in.latent");

  // ---- run each variant ----
  std::map<std::string, Variant> variants;
  for (auto it = golden["variants"].begin(); it != golden["variants"].end(); ++it) {
    Variant v;
    v.name = it.key();
    ViTVae::Options opt;
    opt.device = ctx.device;
    if (v.name == "f32") {
      opt.compute = VaeCompute::kFloat32;
    } else if (v.name == "bf16") {
      opt.compute = VaeCompute::kBFloat16;
    } else {
      report.Skip("vae/" + v.name, "unknown variant");
      continue;
    }
    auto ckpt = Checkpoint::Open(weights);
    if (!ckpt.ok()) {
      report.Fail("vae/" + v.name + "/load", std::string(ckpt.status().message()));
      continue;
    }
    auto vae = ViTVae::Load(*config, **ckpt, opt);
    if (!vae.ok()) {
      report.Fail("vae/" + v.name + "/load", std::string(vae.status().message()));
      continue;
    }
    v.vae = std::move(*vae);
    v.codec = std::make_unique<VaeCodec>(v.vae.get(), *enc_opts, *dec_opts, scale);

    // Tile layout against the reference's recorded tile calls.
    const json& rec = it.value().value("tiles", json::array());
    if (!rec.empty() && video.defined() && image.defined() && latent.defined()) {
      auto expected = ExpectedTiles(*v.vae, *enc_opts, *dec_opts, {video, image}, latent, 2);
      if (!expected.ok()) {
        report.Fail("vae/" + v.name + "/tiles", std::string(expected.status().message()));
      } else {
        bool same = expected->size() == rec.size();
        std::string detail = absl::StrCat(rec.size(), " tile calls");
        for (size_t k = 0; same && k < rec.size(); ++k) {
          const json& r = rec[k];
          const json& e = (*expected)[k];
          if (!r.is_array() || r.size() < 3 || r[0] != e[0] || r[1] != e[1] || r[2] != e[2]) {
            same = false;
            detail = absl::StrCat("tile ", k, ": reference ", r.dump(), ", ours ", e.dump());
          }
        }
        if (expected->size() != rec.size()) {
          detail = absl::StrCat("reference has ", rec.size(), " tile calls, ours ", expected->size());
        }
        report.CheckExact("vae/" + v.name + "/tiles", same, detail);
      }
    }

    auto keep = [&](const std::string& name, absl::StatusOr<at::Tensor> t) {
      if (t.ok()) {
        v.ours[name] = *t;
      } else {
        v.errors[name] = std::string(t.status().message());
      }
    };
    if (video.defined()) {
      auto z = v.codec->Encode(video.to(ctx.device));
      keep("enc_video.z", z);
      if (z.ok()) keep("enc_video.z_scaled", *z * scale);
    }
    if (image.defined()) {
      auto z = v.codec->Encode(image.to(ctx.device));
      keep("enc_image.z", z);
      if (z.ok()) keep("enc_image.z_scaled", *z * scale);
    }
    if (latent.defined()) {
      auto out = v.codec->DecodeLatent(latent.to(ctx.device));
      keep("dec.out", out);
      if (out.ok()) keep("dec.out_uint8", FramesToUint8(*out));
    }
    variants[v.name] = std::move(v);
  }

  // ---- compare every recorded tensor ----
  for (auto& [stem, file] : data) {
    for (const std::string& key : file->Keys()) {
      if (absl::StartsWith(key, "in.")) continue;
      const std::string name = absl::StrCat(stem, "/", key);
      const size_t dot = key.find('.');
      auto vit = dot == std::string::npos ? variants.end() : variants.find(key.substr(0, dot));
      if (vit == variants.end()) {
        report.Skip(name, "no model for this variant");
        continue;
      }
      Variant& v = vit->second;
      const std::string what = key.substr(dot + 1);
      auto ref = file->Get(key);
      if (!ref.ok()) {
        report.Fail(name, std::string(ref.status().message()));
        continue;
      }
      // Single decoder tiles: dec_tileNN.out is tile NN of the decode call.
      int tile_index = -1;
      if (absl::StartsWith(what, "dec_tile") && absl::EndsWith(what, ".out") &&
          absl::SimpleAtoi(what.substr(8, what.size() - 12), &tile_index) && latent.defined()) {
        const VaeConfig& c = v.vae->config();
        auto plan =
            PlanTiledDecode(latent.size(2), latent.size(3), latent.size(4), *dec_opts, c.patch_size, c.patch_length);
        if (!plan.ok() || tile_index < 0 || tile_index >= static_cast<int>(plan->tiles.size())) {
          report.Fail(name, "tile index outside our decode plan");
          continue;
        }
        const VaeTile& t = plan->tiles[tile_index];
        at::Tensor z = (latent / scale)
                           .slice(2, t.t0, t.t0 + t.t_len)
                           .slice(3, t.h0, t.h0 + t.h_len)
                           .slice(4, t.w0, t.w0 + t.w_len);
        auto out = v.vae->DecodeTile(z);
        if (!out.ok()) {
          report.Fail(name, std::string(out.status().message()));
          continue;
        }
        report.CheckTensor(name, *out, *ref, v.name == "f32" ? kF32Tolerance : kBf16Tolerance);
        continue;
      }
      if (v.errors.count(what)) {
        report.Fail(name, v.errors[what]);
        continue;
      }
      auto oit = v.ours.find(what);
      if (oit == v.ours.end()) {
        report.Skip(name, "no such output in this checker");
        continue;
      }
      if (absl::EndsWith(what, "uint8")) {
        GoldenComparison cmp = CompareToReference(oit->second, *ref);
        const double levels = v.name == "f32" ? kF32Uint8Levels : kBf16Uint8Levels;
        // Tolerance in levels, expressed relative to the reference's range for the report.
        report.Check(name + " (uint8, +-" + std::to_string(static_cast<int>(levels)) + ")", cmp,
                     cmp.max_ref > 0 ? levels / cmp.max_ref : levels);
      } else {
        report.CheckTensor(name, oit->second, *ref, v.name == "f32" ? kF32Tolerance : kBf16Tolerance);
      }
    }
  }
  if (ctx.verbose) {
    for (auto& [name, v] : variants) {
      std::printf("  vae/%s: %lld weight bytes\n", name.c_str(), static_cast<long long>(v.vae->weight_bytes()));
    }
  }
  (void)ShapeString;
}

}  // namespace magi
