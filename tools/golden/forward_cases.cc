// Golden cases of kind 'forward': single DiT forwards (forward_*.safetensors), each compared
// on its output and on every intermediate the reference recorded that the model exposes.
#include <filesystem>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "tools/golden/golden_io.h"
#include "tools/golden/golden_report.h"
#include "worker/model/safetensors.h"

namespace magi {
namespace {

constexpr double kForwardTolerance = 1e-4;

void RunOne(const std::string& path, const nlohmann::json& golden, const MagiConfig& config, const GoldenContext& ctx,
            GoldenReport& report) {
  const std::string name = std::filesystem::path(path).stem().string();
  if (!golden.contains(name)) {
    report.Fail(name, "golden.json has no section for this file");
    return;
  }
  const nlohmann::json& sec = golden[name];
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) {
    report.Fail(name, std::string(file.status().message()));
    return;
  }
  auto get = [&](const std::string& key) -> at::Tensor {
    auto t = (*file)->Get(key);
    return t.ok() ? *t : at::Tensor();
  };
  const bool distill = sec.value("engine_distill", false);
  auto model = LoadGoldenDit(ctx, config.model, distill);
  if (!model.ok()) {
    report.Fail(name, std::string(model.status().message()));
    return;
  }
  const nlohmann::json& kw = sec["kwargs"];
  DitForwardArgs args;
  args.x = get("in.x");
  args.t = get("in.t");
  args.y = get("in.y");
  args.xattn_mask = get("in.xattn_mask");
  args.caption_dropout_mask = get("in.caption_dropout_mask");
  args.kv_range = get("in.kv_range");
  args.denoising_range_num = kw.value("denoising_range_num", 1);
  args.slice_point = kw.value("slice_point", 0);
  args.fwd_extra_1st_chunk = kw.value("fwd_extra_1st_chunk", false);
  args.distill_nearly_clean_chunk = kw.value("distill_nearly_clean_chunk", false);
  args.num_steps = kw.value("num_steps", config.runtime.num_steps);
  args.distill_interval = kw.value("distill_interval", 1);
  DitRecorder rec;
  auto out = (*model)->Forward(args, &rec);
  if (!out.ok()) {
    report.Fail(name, std::string(out.status().message()));
    return;
  }
  report.CheckTensor(name + "/out", *out, get("out"), kForwardTolerance);
  for (const auto& key : (*file)->Keys()) {
    auto it = rec.tensors.find(key);
    if (it == rec.tensors.end()) continue;
    report.CheckTensor(absl::StrCat(name, "/", key), it->second, get(key), kForwardTolerance);
  }
}

}  // namespace

void RunForwardCases(const GoldenContext& ctx, GoldenReport& report) {
  const auto files = GoldenFiles(ctx.dir, "forward_", ".safetensors");
  if (files.empty()) return;
  auto golden = ReadGoldenJson(ctx.dir, "golden.json");
  if (!golden.ok()) {
    for (const auto& f : files) report.Fail(std::filesystem::path(f).stem().string(), std::string(golden.status().message()));
    return;
  }
  auto config = GoldenConfig(*golden, ctx.dir + "/golden.json");
  if (!config.ok()) {
    for (const auto& f : files) report.Fail(std::filesystem::path(f).stem().string(), std::string(config.status().message()));
    return;
  }
  for (const auto& f : files) RunOne(f, *golden, *config, ctx, report);
}

}  // namespace magi
