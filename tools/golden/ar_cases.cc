// Golden cases of kind 'ar': whole autoregressive runs (ar_*.safetensors), metadata in
// golden.json / golden_prefix.json / golden_w4.json (the section named after the file).
//
// Each file is checked twice:
//  1. replay: the engine runs with a stand-in model that returns the recorded output of
//     every inner forward, so everything below the DiT (schedule, plan, caption rows,
//     guidance mixing, Euler steps, emission) must match bit for bit, and every forward's
//     inputs are compared with what the reference passed;
//  2. model: the engine runs with our DiT on the folder's weights; every inner forward's
//     output (<= 5e-5 of max|ref|), every emitted chunk and final_latents (<= 1e-4), and the
//     final dense KV cache (<= 5e-5) are compared; a second run with the windowed cache must
//     give identical chunks.
// With --schedule=stream_first (GoldenContext::schedule) the engine runs the lead chunk alone
// first: the replay and the per-forward outputs are reference-order only and not run; the
// model run compares every emitted chunk, final_latents (<= 1e-4) and the final dense KV
// cache (<= 5e-5) with the reference's, and the windowed-cache run must give identical chunks.
// Both runs use the case's recorded run-script env (ar_env.h): special tokens in the caption
// rows, prev_chunks_scale in the guidance. An env the checker cannot apply fails the case.
#include <filesystem>
#include <map>
#include <optional>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "tools/golden/ar_env.h"
#include "tools/golden/golden_io.h"
#include "tools/golden/golden_report.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/timestep_schedule.h"
#include "worker/model/kv_cache.h"
#include "worker/model/safetensors.h"
#include "worker/model/special_tokens.h"

namespace magi {
namespace {

// Tolerances (max|diff| / max|ref|) from the golden README's rounding-level probe (the
// reference against itself with attention summed in another order) and what we observe on
// folder A (magi-golden prints each ratio):
//  - inner forwards: probe <= 2.9e-5 on single forwards; ours <= 1.1e-5 -> 5e-5.
//  - chunks / final_latents: the README's float32 acceptance for the w4 runs is 1e-4 (probe
//    <= 6.1e-5 on cfg3, whose text scale 7.5 amplifies); ours <= 7.2e-6 -> 1e-4.
//  - final KV cache: ours <= 1.4e-5 -> 5e-5.
// (The README's general suggestion, 1e-4 / 1e-3, left a port 10-100x worse than ours green.)
constexpr double kForwardTolerance = 5e-5;
constexpr double kLatentTolerance = 1e-4;
constexpr double kKvTolerance = 5e-5;

using nlohmann::json;

// The worst of many comparisons, with where it happened.
struct Worst {
  GoldenComparison c;
  std::string where;
  int count = 0;
  void Add(const std::string& name, const GoldenComparison& g) {
    ++count;
    const bool worse = !g.error.empty() ? c.error.empty() : (c.error.empty() && g.ratio() > c.ratio());
    if (count == 1 || worse) {
      c = g;
      where = name;
    }
  }
  GoldenComparison Result() const {
    GoldenComparison r = c;
    if (!where.empty()) r.error = r.error.empty() ? "" : absl::StrCat(where, ": ", r.error);
    return r;
  }
};

struct ArCase {
  std::string name;
  json section;
  MagiConfig config;
  std::unique_ptr<SafetensorsFile> file;
  at::Tensor null_caption;
  ArCaseEnv env;

  EngineOptions Options(KvCacheMode mode, Schedule schedule = Schedule::kReference, bool elide = false) const {
    EngineOptions o;
    o.kv_cache = mode;
    o.schedule = schedule;
    o.elide_self_only_copy = elide;
    o.keep_final_latents = true;
    o.prev_chunks_scale = env.env.prev_chunks_scale;
    return o;
  }

  at::Tensor Get(const std::string& key) const {
    auto t = file->Get(key);
    return t.ok() ? *t : at::Tensor();
  }
  bool Has(const std::string& key) const { return file->Contains(key); }
};

std::string StepKey(int dispatch, const std::string& rest) { return absl::StrFormat("s%02d.%s", dispatch, rest); }

ArRequest MakeRequest(const ArCase& c) {
  ArRequest r;
  EncodedChunkPrompt p;
  p.from_chunk = 0;
  p.caption = c.Get("input.caption_embs");
  p.mask = c.Get("input.emb_masks");
  r.prompts.push_back(p);
  r.null_caption = c.null_caption;
  r.special_tokens = c.env.tokens;
  if (c.Has("input.prefix_video")) r.prefix = c.Get("input.prefix_video");
  r.noise = c.Get("noise");
  return r;
}

// Returns the recorded outputs in call order and compares each call's inputs with the
// recorded ones.
class ReplayDenoiser : public Denoiser {
 public:
  explicit ReplayDenoiser(const ArCase& c) : c_(c) {}
  void set_dispatch(int d) {
    if (d != dispatch_) call_ = 0;
    dispatch_ = d;
  }
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& a) override {
    const std::string base = StepKey(dispatch_, absl::StrCat("fwd", call_, "."));
    const json* meta = nullptr;
    for (const auto& f : c_.section["model_forwards"]) {
      if (f.value("step", -1) == dispatch_ && f.value("call", -1) == call_) meta = &f;
    }
    const std::string where = absl::StrCat("s", dispatch_, ".fwd", call_);
    if (!c_.Has(base + "out") || meta == nullptr) {
      return absl::NotFoundError(absl::StrCat("the reference made no forward ", where));
    }
    inputs.Add(where + ".x", CompareToReference(a.x, c_.Get(base + "x")));
    inputs.Add(where + ".t", CompareToReference(a.t, c_.Get(base + "t")));
    inputs.Add(where + ".kv_range", CompareToReference(a.kv_range.to(at::kFloat), c_.Get(base + "kv_range").to(at::kFloat)));
    if (c_.Has(base + "y")) inputs.Add(where + ".y", CompareToReference(a.y, c_.Get(base + "y")));
    if (c_.Has(base + "xattn_mask")) {
      inputs.Add(where + ".xattn_mask",
                 CompareToReference(a.xattn_mask.to(at::kFloat), c_.Get(base + "xattn_mask").to(at::kFloat)));
    }
    const json& kw = (*meta)["kwargs"];
    auto flag = [&](const char* k, bool ours) {
      if (kw.contains(k) && kw[k].get<bool>() != ours) AddMismatch(where, k);
    };
    flag("fwd_extra_1st_chunk", a.fwd_extra_1st_chunk);
    flag("distill_nearly_clean_chunk", a.distill_nearly_clean_chunk);
    // Our unconditional pass drops the (cache-less, hence inert) extraction flag.
    if (a.kv_cache != nullptr) flag("extract_prefix_video_feature", a.extract_prefix_video_feature);
    if (kw.value("slice_point", 0) != a.slice_point) AddMismatch(where, "slice_point");
    if (kw.value("denoising_range_num", 1) != a.denoising_range_num) AddMismatch(where, "denoising_range_num");
    if (static_cast<int>(kw.value("distill_interval", 1.0)) != a.distill_interval) AddMismatch(where, "distill_interval");
    if (kw.value("num_steps", 0) != a.num_steps) AddMismatch(where, "num_steps");
    const json& ip = (*meta)["inference_params"];
    if (ip.is_null() != (a.kv_cache == nullptr)) AddMismatch(where, "kv cache presence");
    if (!ip.is_null() && ip.value("update_kv_cache", false) != a.update_kv_cache) AddMismatch(where, "update_kv_cache");
    const bool drop = a.caption_dropout_mask.to(at::kCPU).to(at::kBool)[0].item<bool>();
    if ((*meta)["caption_dropout_mask"][0].get<bool>() != drop) AddMismatch(where, "caption_dropout_mask");
    ++call_;
    return c_.Get(base + "out").clone();
  }
  c10::Device device() const override { return c10::Device(c10::kCPU); }

  Worst inputs;
  std::vector<std::string> mismatches;

 private:
  void AddMismatch(const std::string& where, const std::string& what) {
    if (mismatches.size() < 8) mismatches.push_back(absl::StrCat(where, " ", what));
  }
  const ArCase& c_;
  int dispatch_ = 0;
  int call_ = 0;
};

void CheckEmitted(const ArCase& c, const std::string& prefix, const std::vector<EmittedChunk>& chunks,
                  const GenerateResult& result, double tol, GoldenReport& report) {
  const int expected = static_cast<int>(c.section.value("emitted_chunks", json::array()).is_array()
                                            ? c.section["emitted_chunks"].size()
                                            : c.section.value("emitted_chunks", 0));
  if (static_cast<int>(chunks.size()) != expected) {
    report.Fail(prefix + "chunks", absl::StrCat("emitted ", chunks.size(), " chunks, the reference ", expected));
    return;
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    report.CheckTensor(absl::StrCat(prefix, "chunk", i), chunks[i].latent, c.Get(absl::StrCat("chunk", i)), tol);
  }
  report.CheckTensor(prefix + "final_latents", result.final_latents, c.Get("final_latents"), tol);
  if (c.Has("emitted_chunk_idx")) {
    at::Tensor ref = c.Get("emitted_chunk_idx").to(at::kLong);
    bool same = ref.numel() == static_cast<int64_t>(chunks.size());
    for (size_t i = 0; same && i < chunks.size(); ++i) same = ref[i].item<int64_t>() == chunks[i].index;
    report.CheckExact(prefix + "emitted_chunk_idx", same);
  }
}

void RunReplay(const ArCase& c, GoldenReport& report) {
  const std::string p = c.name + "/replay.";
  ReplayDenoiser model(c);
  auto engine = ArEngine::Create(c.config, model, c.Options(KvCacheMode::kDense));
  if (!engine.ok()) {
    report.Fail(p + "engine", std::string(engine.status().message()));
    return;
  }
  Worst disp;
  GenerateCallbacks cb;
  std::vector<EmittedChunk> chunks;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    chunks.push_back(e);
    return ChunkAction::kContinue;
  };
  cb.on_dispatch = [&](int d, const GuidanceStep& st, const at::Tensor& v) {
    const std::string k = StepKey(d, "disp.");
    if (c.Has(k + "x")) disp.Add(k + "x", CompareToReference(st.x, c.Get(k + "x").narrow(0, 0, 1)));
    if (c.Has(k + "out")) disp.Add(k + "out", CompareToReference(v, c.Get(k + "out").narrow(0, 0, 1)));
    if (c.Has(k + "timestep")) {
      at::Tensor t = at::tensor(st.t).unsqueeze(0);
      disp.Add(k + "timestep", CompareToReference(t, c.Get(k + "timestep").narrow(0, 0, 1)));
    }
    model.set_dispatch(d + 1);
  };
  auto result = (*engine)->Generate(MakeRequest(c), cb);
  if (!result.ok()) {
    report.Fail(p + "run", std::string(result.status().message()));
    return;
  }
  const int expected_forwards = c.section.value("num_model_forwards", -1);
  report.CheckExact(p + "forward_count", result->model_calls == expected_forwards,
                    absl::StrCat(result->model_calls, " model calls, reference ", expected_forwards));
  report.Check(p + "forward_inputs", model.inputs.Result(), 0.0);
  std::string mism;
  for (const auto& m : model.mismatches) absl::StrAppend(&mism, mism.empty() ? "" : "; ", m);
  report.CheckExact(p + "forward_flags", model.mismatches.empty(), mism);
  report.Check(p + "dispatch_io", disp.Result(), 0.0);
  CheckEmitted(c, p, chunks, *result, 0.0, report);
}

void RunModel(const ArCase& c, const GoldenContext& ctx, GoldenReport& report) {
  // The reference's calls one for one: then every forward's output is compared too.
  const bool reference = ctx.schedule == Schedule::kReference && !ctx.elide_self_only_copy;
  const std::string p =
      c.name + (reference ? "/model."
                          : absl::StrCat("/model[", ScheduleName(ctx.schedule),
                                         ctx.elide_self_only_copy ? ",elide_self_only_copy" : "", "]."));
  auto dit = LoadGoldenDit(ctx, c.config.model, c.config.engine.distill);
  if (!dit.ok()) {
    report.Fail(p + "load", absl::StrCat("the DiT does not load: ", dit.status().message()));
    return;
  }
  DitDenoiser model(**dit);
  auto engine = ArEngine::Create(c.config, model, c.Options(KvCacheMode::kDense, ctx.schedule, ctx.elide_self_only_copy));
  if (!engine.ok()) {
    report.Fail(p + "engine", std::string(engine.status().message()));
    return;
  }
  Worst fwd;
  GenerateCallbacks cb;
  std::vector<EmittedChunk> chunks;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    chunks.push_back(e);
    return ChunkAction::kContinue;
  };
  if (reference) cb.on_forward = [&](int d, int call, const DitForwardArgs&, const at::Tensor& out) {
    const std::string k = StepKey(d, absl::StrCat("fwd", call, ".out"));
    if (c.Has(k)) {
      fwd.Add(k, CompareToReference(out, c.Get(k)));
    } else {
      GoldenComparison g;
      g.error = "the reference made no such forward";
      fwd.Add(k, g);
    }
  };
  auto result = (*engine)->Generate(MakeRequest(c), cb);
  if (!result.ok()) {
    report.Fail(p + "run", std::string(result.status().message()));
    return;
  }
  if (reference) {
    report.Check(absl::StrCat(p, "forward_outputs(", fwd.count, ")"), fwd.Result(), kForwardTolerance);
    if (!fwd.where.empty() && ctx.verbose) std::printf("  worst forward: %s\n", fwd.where.c_str());
  }
  CheckEmitted(c, p, chunks, *result, kLatentTolerance, report);
  auto* dense = dynamic_cast<DenseKvCache*>((*engine)->last_cache());
  for (int l = 0; dense != nullptr && l < c.config.model.num_layers; ++l) {
    const std::string key = absl::StrCat("kvcache_final.layer", l);
    if (!c.Has(key)) continue;
    // Under TP/CP this rank caches only its K/V groups: compare those columns.
    const auto groups = DitModel::KvCacheGroupIndices(c.config.model, ctx.layout);
    at::Tensor ref = c.Get(key).index_select(1, at::tensor(groups, at::kLong));
    report.CheckTensor(p + key, dense->buffer(l), ref, kKvTolerance);
  }

  // The windowed cache drops rows no later step reads: the chunks must not change at all.
  auto windowed = ArEngine::Create(c.config, model, c.Options(KvCacheMode::kWindowed, ctx.schedule, ctx.elide_self_only_copy));
  auto wres = (*windowed)->Generate(MakeRequest(c));
  if (!wres.ok()) {
    report.Fail(p + "windowed_kv_cache", std::string(wres.status().message()));
    return;
  }
  report.Check(absl::StrCat(p, "windowed_kv_cache(peak ", wres->kv_peak_bytes, " B)"),
               CompareToReference(wres->final_latents, result->final_latents), 0.0);
}

// The golden section describing `stem`, and the config it ran with.
absl::Status FindSection(const std::string& dir, const std::string& stem, json* section, MagiConfig* config) {
  MAGI_ASSIGN_OR_RETURN(auto base, ReadGoldenJson(dir, "golden.json"));
  for (const char* name : {"golden.json", "golden_prefix.json", "golden_w4.json"}) {
    auto j = ReadGoldenJson(dir, name);
    if (!j.ok() || !j->contains(stem)) continue;
    *section = (*j)[stem];
    MAGI_ASSIGN_OR_RETURN(auto cfg, section->contains("config")
                                        ? GoldenConfig(*section, absl::StrCat(dir, "/", name, ":", stem))
                                        : GoldenConfig(base, absl::StrCat(dir, "/golden.json")));
    *config = cfg;
    config->runtime.cfg_number = section->value("cfg_number", config->runtime.cfg_number);
    config->engine.distill = section->value("engine_distill", config->engine.distill);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("no section '", stem, "' in golden.json, golden_prefix.json or golden_w4.json"));
}

}  // namespace

absl::StatusOr<ArCaseEnv> ApplyArCaseEnv(const json& env, const std::string& dir, int64_t caption_channels,
                                         const std::string& where) {
  namespace fs = std::filesystem;
  std::map<std::string, std::optional<std::string>> values;
  if (!env.is_null() && !env.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": env must be an object, got ", env.dump()));
  }
  for (auto it = env.begin(); !env.is_null() && it != env.end(); ++it) {
    const json& v = it.value();
    if (v.is_null()) {
      values[it.key()] = std::nullopt;
    } else if (v.is_string()) {
      values[it.key()] = v.get<std::string>();
    } else if (v.is_boolean()) {
      values[it.key()] = v.get<bool>() ? "True" : "False";  // Python's str()
    } else if (v.is_number()) {
      values[it.key()] = v.dump();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ": env ", it.key(), " = ", v.dump(),
                                                     " cannot be read (expected a string, boolean, number or null)"));
    }
  }
  ArCaseEnv out;
  MAGI_ASSIGN_OR_RETURN(out.env, ParseRunEnv(values, where));
  std::unique_ptr<SpecialTokens> tokens;
  if (out.env.special_tokens.any()) {
    const std::string enabled = absl::StrJoin(out.env.special_tokens.EnabledNames(), ", ");
    std::error_code ec;
    if (!out.env.special_token_path.empty()) {
      const fs::path given(out.env.special_token_path);
      out.token_file = fs::is_regular_file(given, ec) ? given.string() : (fs::path(dir) / given.filename()).string();
    } else {
      out.token_file = (fs::path(dir) / "special_tokens.npz").string();
    }
    if (!fs::is_regular_file(out.token_file, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, ": env enables ", enabled, " but the special-token file ", out.token_file, " does not exist",
          out.env.special_token_path.empty() ? "" : absl::StrCat(" (SPECIAL_TOKEN_PATH '", out.env.special_token_path,
                                                                 "' was not found as given either)")));
    }
    auto loaded = SpecialTokens::Load(out.token_file);
    if (!loaded.ok()) return absl::Status(loaded.status().code(), absl::StrCat(where, ": ", loaded.status().message()));
    tokens = std::move(*loaded);
  }
  auto selected = SelectPromptTokens(out.env.special_tokens, tokens.get(), caption_channels);
  if (!selected.ok()) return absl::Status(selected.status().code(), absl::StrCat(where, ": ", selected.status().message()));
  out.tokens = std::move(*selected);
  return out;
}

void RunArCases(const GoldenContext& ctx, GoldenReport& report) {
  for (const auto& path : GoldenFiles(ctx.dir, "ar_", ".safetensors")) {
    ArCase c;
    c.name = std::filesystem::path(path).stem().string();
    if (auto s = FindSection(ctx.dir, c.name, &c.section, &c.config); !s.ok()) {
      report.Fail(c.name, std::string(s.message()));
      continue;
    }
    auto file = SafetensorsFile::Open(path);
    if (!file.ok()) {
      report.Fail(c.name, std::string(file.status().message()));
      continue;
    }
    c.file = std::move(*file);
    auto weights = SafetensorsFile::Open((std::filesystem::path(ctx.dir) / "weights.safetensors").string());
    if (!weights.ok()) {
      report.Fail(c.name, std::string(weights.status().message()));
      continue;
    }
    auto null = (*weights)->Get("y_embedder.null_caption_embedding");
    if (!null.ok()) {
      report.Fail(c.name, std::string(null.status().message()));
      continue;
    }
    c.null_caption = null->to(at::kFloat).clone();
    auto env = ApplyArCaseEnv(c.section.contains("env") ? c.section["env"] : json(), ctx.dir,
                              c.config.model.caption_channels, c.name + " env");
    if (!env.ok()) {
      report.Fail(c.name + "/env", std::string(env.status().message()));
      continue;
    }
    c.env = std::move(*env);
    if (ctx.verbose && c.env.env.special_tokens.any()) {
      std::printf("  %s: special tokens %s from %s, prev_chunks_scale %g\n", c.name.c_str(),
                  absl::StrJoin(c.env.env.special_tokens.EnabledNames(), ", ").c_str(), c.env.token_file.c_str(),
                  c.env.env.prev_chunks_scale);
    }

    // Schedule and caption rows, straight from the library.
    auto sched = TimestepSchedule(c.config.runtime.num_steps, c.config.engine.shortcut_mode);
    if (c.Has("t_schedule") && sched.ok()) {
      report.Check(c.name + "/t_schedule", CompareToReference(at::tensor(*sched), c.Get("t_schedule")), 0.0);
    }
    if (c.Has("transport.y")) {
      ArRequest req = MakeRequest(c);
      const int cw = c.config.runtime.chunk_width;
      const int prefix_frames = req.prefix.defined() ? static_cast<int>(req.prefix.size(2)) : 0;
      const int chunk_num = static_cast<int>(c.Get("transport.y").size(1));
      auto caps = BuildChunkCaptions(req.prompts, req.null_caption, chunk_num, prefix_frames / cw, req.special_tokens);
      if (!caps.ok()) {
        report.Fail(c.name + "/transport.y", std::string(caps.status().message()));
      } else {
        std::vector<at::Tensor> y1(caps->text_rows.size(), caps->null_row), m1(caps->text_rows.size(), caps->null_mask);
        at::Tensor y = at::stack({at::stack(caps->text_rows), at::stack(y1)});
        at::Tensor m = at::stack({at::stack(caps->text_masks), at::stack(m1)});
        report.Check(c.name + "/transport.y", CompareToReference(y, c.Get("transport.y")), 0.0);
        if (c.Has("transport.emb_masks")) {
          report.Check(c.name + "/transport.emb_masks",
                       CompareToReference(m, c.Get("transport.emb_masks").to(at::kFloat)), 0.0);
        }
      }
    }
    if (ctx.schedule == Schedule::kReference && !ctx.elide_self_only_copy) RunReplay(c, report);
    RunModel(c, ctx, report);
  }
}

}  // namespace magi
