// Golden cases of kind 't5': caption cleaning (exact strings), tokenisation (exact ids and
// masks at every max_length the folder lists), and the T5 encoder (bucket function exact;
// embeddings, position bias, per-block intermediates and last_hidden_state within 1e-4
// absolute). Every list is read from the folder's files, so other golden folders work.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/golden/golden_report.h"
#include "worker/model/safetensors.h"
#include "worker/t5/caption_clean.h"
#include "worker/t5/t5_encoder.h"
#include "worker/t5/t5_tokenizer.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kAbsTol = 1e-4;

bool ReadJson(const std::string& path, json* out, std::string* err) {
  std::ifstream in(path);
  if (!in) {
    *err = "cannot open " + path;
    return false;
  }
  try {
    *out = json::parse(in);
  } catch (const std::exception& e) {
    *err = path + ": " + e.what();
    return false;
  }
  return true;
}

// Passes when max|ours - ref| <= kAbsTol.
void CheckAbs(GoldenReport& report, const std::string& name, const at::Tensor& ours, const at::Tensor& ref) {
  GoldenComparison c = CompareToReference(ours, ref);
  const double rel = c.max_ref > 0 ? kAbsTol / c.max_ref : kAbsTol;
  report.Check(name, c, rel);
}

void RunCaptionClean(const GoldenContext& ctx, GoldenReport& report) {
  const std::string path = (fs::path(ctx.dir) / "caption_clean.json").string();
  if (!fs::exists(path)) return;
  json j;
  std::string err;
  if (!ReadJson(path, &j, &err)) return report.Fail("caption_clean", err);
  for (const auto& c : j.value("cases", json::array())) {
    const std::string id = c.value("id", "?");
    auto once = CleanCaptionOnce(c.value("input", ""));
    auto full = CleanCaption(c.value("input", ""));
    if (!once.ok() || !full.ok()) {
      report.Fail("caption_clean/" + id, std::string((once.ok() ? full.status() : once.status()).message()));
      continue;
    }
    const std::string want = c.value("output", "");
    const bool ok = *once == c.value("once", "") && *full == want;
    report.CheckExact("caption_clean/" + id, ok, ok ? "" : absl::StrCat("got '", *full, "' want '", want, "'"));
  }
}

void RunTokenize(const GoldenContext& ctx, GoldenReport& report) {
  const std::string path = (fs::path(ctx.dir) / "tokenize.json").string();
  if (!fs::exists(path)) return;
  json j;
  std::string err;
  if (!ReadJson(path, &j, &err)) return report.Fail("tokenize", err);
  const std::string model = (fs::path(ctx.dir) / j.value("spiece_model", "spiece.model")).string();
  auto tok = T5Tokenizer::Load(model);
  if (!tok.ok()) return report.Fail("tokenize", std::string(tok.status().message()));
  for (const auto& c : j.value("cases", json::array())) {
    const std::string id = c.value("id", "?");
    for (const auto& [key, val] : c.items()) {
      if (!absl::StartsWith(key, "max_length_")) continue;
      const int64_t L = std::stoll(key.substr(11));
      auto t = (*tok)->Encode(c.value("text", ""), L);
      const std::string name = absl::StrCat("tokenize/", id, "/", L);
      if (!t.ok()) {
        report.Fail(name, std::string(t.status().message()));
        continue;
      }
      const bool ok = t->input_ids == val["input_ids"].get<std::vector<int64_t>>() &&
                      t->attention_mask == val["attention_mask"].get<std::vector<int64_t>>() &&
                      (!c.contains("num_pieces") || t->num_pieces == c["num_pieces"].get<int64_t>());
      report.CheckExact(name, ok);
    }
  }
}

void RunEncoder(const GoldenContext& ctx, GoldenReport& report) {
  const std::string vectors = (fs::path(ctx.dir) / "t5_encode.safetensors").string();
  if (!fs::exists(vectors)) return;
  auto file = SafetensorsFile::Open(vectors);
  if (!file.ok()) return report.Fail("t5_encode", std::string(file.status().message()));
  auto enc = T5Encoder::LoadFiles((fs::path(ctx.dir) / "t5_config.json").string(),
                                  (fs::path(ctx.dir) / "t5_weights.safetensors").string());
  if (!enc.ok()) return report.Fail("t5_encode", std::string(enc.status().message()));
  const SafetensorsFile& f = **file;
  auto get = [&](const std::string& k) -> at::Tensor {
    auto t = f.Get(k);
    return t.ok() ? *t : at::Tensor();
  };
  if (f.Contains("rel_bucket.relative_position")) {
    const T5Config& cfg = (*enc)->config();
    at::Tensor b = T5RelativePositionBucket(get("rel_bucket.relative_position"), true,
                                            cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance);
    report.CheckExact("t5/rel_bucket", at::equal(b, get("rel_bucket.bucket")));
  }
  std::set<std::string> prefixes;
  for (const std::string& k : f.Keys()) {
    if (absl::EndsWith(k, ".input_ids")) prefixes.insert(k.substr(0, k.size() - 10));
  }
  for (const std::string& p : prefixes) {
    T5Encoder::Trace trace;
    auto out = (*enc)->Encode(get(p + ".input_ids"), get(p + ".attention_mask"), &trace);
    if (!out.ok()) {
      report.Fail("t5/" + p, std::string(out.status().message()));
      continue;
    }
    if (f.Contains(p + ".embed")) CheckAbs(report, "t5/" + p + ".embed", trace.embed, get(p + ".embed"));
    if (f.Contains(p + ".position_bias")) {
      CheckAbs(report, "t5/" + p + ".position_bias", trace.position_bias, get(p + ".position_bias"));
    }
    for (size_t i = 0; i < trace.block_out.size(); ++i) {
      const std::string b = absl::StrCat(p, ".block", i);
      if (f.Contains(b + ".attn_residual")) {
        CheckAbs(report, "t5/" + b + ".attn_residual", trace.attn_residual[i], get(b + ".attn_residual"));
      }
      if (f.Contains(b + ".out")) CheckAbs(report, "t5/" + b + ".out", trace.block_out[i], get(b + ".out"));
    }
    if (f.Contains(p + ".last_hidden_state")) {
      CheckAbs(report, "t5/" + p + ".last_hidden_state", *out, get(p + ".last_hidden_state"));
    } else {
      report.Fail("t5/" + p, "no last_hidden_state in " + vectors);
    }
  }
}

}  // namespace

void RunT5Cases(const GoldenContext& ctx, GoldenReport& report) {
  RunCaptionClean(ctx, report);
  RunTokenize(ctx, report);
  RunEncoder(ctx, report);
}

}  // namespace magi
