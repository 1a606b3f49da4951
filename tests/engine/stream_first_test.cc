// The stream-first schedule (StreamFirstPlan, EngineOptions::schedule): the plan as a pure
// function, the engine with stand-in models, and a small random-weight DiT run both ways.
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/engine/fake_denoiser.h"
#include "tests/engine/random_dit.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/stage_plan.h"
#include "worker/model/checkpoint.h"
#include "worker/model/kv_cache.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

std::vector<float> LinearSchedule(int num_steps) {
  std::vector<float> t;
  for (int k = 0; k <= num_steps; ++k) t.push_back(static_cast<float>(k) / num_steps);
  return t;
}

PlanOptions Options(int chunks, int ws, int steps, int prefix_frames = 0, std::vector<int> kvrange = {5, 4, 3, 2}) {
  PlanOptions o;
  o.chunk_num = chunks;
  o.window_size = ws;
  o.num_steps = steps;
  o.chunk_width = 6;
  o.prefix_frames = prefix_frames;
  o.noise2clean_kvrange = std::move(kvrange);
  o.clean_chunk_kvrange = 1;
  o.t_schedule = LinearSchedule(steps);
  return o;
}

// (chunk, denoise step) of every integrated chunk, in plan order.
std::vector<std::pair<int, int>> Integrations(const StagePlan& p) {
  std::vector<std::pair<int, int>> out;
  for (const auto& st : p.steps) {
    for (int k = st.first_noisy() + (st.recompute_lead ? 1 : 0); k < st.num_chunks(); ++k) {
      out.emplace_back(st.chunks[k].chunk, st.chunks[k].denoise_step);
    }
  }
  return out;
}

void CheckStreamFirst(const PlanOptions& o, int max_record_steps = -1) {
  SCOPED_TRACE(testing::Message() << "chunks=" << o.chunk_num << " ws=" << o.window_size << " steps=" << o.num_steps
                                  << " prefix=" << o.prefix_frames << " kvranges=" << o.noise2clean_kvrange.size()
                                  << " max_record_steps=" << max_record_steps);
  auto ref = PlanStages(o);
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto sf = StreamFirstPlan(*ref, max_record_steps);
  EXPECT_EQ(sf->lead_kv, max_record_steps == 0 ? LeadKv::kRecompute : LeadKv::kRecord);
  ASSERT_TRUE(sf.ok()) << sf.status();
  const int lead = ref->chunk_offset, n = o.num_steps;
  // The same chunk steps, each once; per chunk in the same order.
  auto a = Integrations(*ref), b = Integrations(*sf);
  using Steps = std::multiset<std::pair<int, int>>;
  EXPECT_TRUE(Steps(a.begin(), a.end()) == Steps(b.begin(), b.end()));
  std::map<int, std::vector<int>> order;
  for (const auto& [c, ds] : b) order[c].push_back(ds);
  for (const auto& [c, steps] : order) {
    for (size_t k = 0; k < steps.size(); ++k) EXPECT_EQ(steps[k], static_cast<int>(k)) << "chunk " << c;
  }
  // The lead chunk alone first, emitted after its own n forwards; then the same emissions.
  std::vector<int> ref_emit, sf_emit;
  for (const auto& st : ref->steps) if (st.emit) ref_emit.push_back(st.finished_chunk);
  int first_emit = -1;
  for (int i = 0; i < sf->num_forward_steps(); ++i) {
    const auto& st = sf->steps[i];
    if (st.emit) {
      sf_emit.push_back(st.finished_chunk);
      if (first_emit < 0) first_emit = i;
    }
    if (i < n) {
      ASSERT_EQ(st.num_chunks(), 1);
      EXPECT_EQ(st.chunks[0].chunk, lead);
      EXPECT_EQ(st.chunks[0].denoise_step, i);
      EXPECT_EQ(st.slice_point, lead);
    }
  }
  EXPECT_EQ(ref_emit, sf_emit);
  EXPECT_EQ(first_emit, n - 1);
  // Whatever a later pass reads of the lead chunk at a noisy step was recorded (or is
  // recomputed); rows served without a recording are outside every kv range.
  std::set<int> recorded, kept_inputs;
  for (const auto& st : sf->steps) {
    if (st.record_lead_kv) recorded.insert(st.step);
    if (st.keep_lead_input) kept_inputs.insert(st.step);
    bool reads_lead = false;
    for (const auto& pc : st.chunks) {
      if (pc.chunk != lead && !pc.extra && pc.kv_begin <= lead && st.step < n) reads_lead = true;
    }
    if (st.serve_lead_kv) {
      EXPECT_EQ(st.slice_point, lead + 1);
      EXPECT_EQ(st.release_lead_kv, reads_lead);
      if (reads_lead) EXPECT_TRUE(recorded.count(st.step)) << "step " << st.step << " reads an unrecorded lead";
    }
    if (st.recompute_lead) {
      EXPECT_TRUE(reads_lead);
      EXPECT_TRUE(kept_inputs.count(st.step));
      EXPECT_FALSE(st.nearly_clean);
    }
  }
  EXPECT_EQ(sf->lead_kv_steps, static_cast<int>(recorded.size()));
  EXPECT_EQ(sf->lead_recompute_steps, static_cast<int>(kept_inputs.size()));
  if (max_record_steps == 0) EXPECT_TRUE(recorded.empty());
  // Every step read later is either recorded or recomputed; a step limit records at most that
  // many (the first ones), and the full recording's count is the limit's ceiling.
  auto all = StreamFirstPlan(*ref);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(sf->lead_kv_steps + sf->lead_recompute_steps, all->lead_kv_steps);
  if (max_record_steps >= 0) {
    EXPECT_EQ(sf->lead_kv_steps, std::min(max_record_steps, all->lead_kv_steps));
    if (!recorded.empty() && !kept_inputs.empty()) EXPECT_LT(*recorded.rbegin(), *kept_inputs.begin());
  }
  int floor = 0;
  for (const auto& st : sf->steps) {
    EXPECT_GE(st.keep_cache_from, floor);
    floor = st.keep_cache_from;
    for (const auto& pc : st.chunks) {
      if (pc.kv_begin < std::min(st.slice_point, lead)) EXPECT_GE(pc.kv_begin, st.keep_cache_from);
    }
  }
  // Nothing to reorder: the reference's forwards.
  if (o.window_size == 1 || o.chunk_num == lead + 1) {
    ASSERT_EQ(sf->num_forward_steps(), ref->num_forward_steps());
    for (int i = 0; i < ref->num_forward_steps(); ++i) {
      EXPECT_EQ(sf->steps[i].step, ref->steps[i].step);
      EXPECT_EQ(sf->steps[i].num_chunks(), ref->steps[i].num_chunks());
    }
  }
}

TEST(StreamFirstPlan, SameChunkStepsLeadFirstAndEveryReadOfTheLeadIsCovered) {
  // Record all, recompute all, record the first 1 or 2 of the steps read later.
  for (int max_record_steps : {-1, 0, 1, 2}) {
    for (int ws = 1; ws <= 4; ++ws) {
      for (int chunks : {1, 2, 4, 7}) {
        for (int prefix : {0, 1, 6, 8}) {
          if (prefix >= chunks * 6) continue;
          for (bool full : {false, true}) {
            const int steps = ws == 3 ? 12 : (ws == 1 ? 4 : 8);
            CheckStreamFirst(Options(chunks, ws, steps, prefix, full ? std::vector<int>{} : std::vector<int>{5, 4, 3, 2}),
                             max_record_steps);
          }
        }
      }
    }
  }
  // Narrow ranges: chunk 1 never looks back at the lead, nothing is recorded.
  auto ref = PlanStages(Options(4, 4, 16, 0, {1, 1, 1, 1}));
  ASSERT_TRUE(ref.ok());
  auto sf = StreamFirstPlan(*ref);
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->lead_kv_steps, 0);
}

TEST(StreamFirstPlan, ConfigMCounts) {
  // Config M: 4 chunks, window 4, 16 steps (d = 4): the lead chunk is clean after 16 forwards
  // of one chunk instead of 40 chunk-forwards in 16 steps; 12 steps of it are recorded.
  auto ref = PlanStages(Options(4, 4, 16));
  ASSERT_TRUE(ref.ok());
  auto sf = StreamFirstPlan(*ref);
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->lead_kv_steps, 12);
  auto chunk_forwards = [](const StagePlan& p, int upto) {
    int n = 0;
    for (int i = 0; i <= upto; ++i) n += p.steps[i].num_chunks();
    return n;
  };
  int ref_first = 0, sf_first = 0;
  while (!ref->steps[ref_first].emit) ++ref_first;
  while (!sf->steps[sf_first].emit) ++sf_first;
  EXPECT_EQ(chunk_forwards(*ref, ref_first), 40);
  EXPECT_EQ(chunk_forwards(*sf, sf_first), 16);
  EXPECT_EQ(chunk_forwards(*ref, ref->num_forward_steps() - 1), chunk_forwards(*sf, sf->num_forward_steps() - 1));
  // 24B-like layout: 48 layers, 8 groups x 128, bf16, 21,600 tokens per chunk, 64 steps.
  auto big_ref = PlanStages(Options(4, 4, 64));
  auto big = StreamFirstPlan(*big_ref);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->lead_kv_steps, 48);
  EXPECT_EQ(StreamFirstRecordBytes(*big, 1, 48, 21600, 8, 128, 2), int64_t{48} * 48 * 21600 * 8 * 256 * 2);
  EXPECT_EQ(StreamFirstRecordBytes(*big_ref, 1, 48, 21600, 8, 128, 2), 0);
}

TEST(StreamFirstPlan, ScheduleNames) {
  EXPECT_EQ(*ParseSchedule("--schedule", "reference"), Schedule::kReference);
  EXPECT_EQ(*ParseSchedule("--schedule", "stream_first"), Schedule::kStreamFirst);
  auto bad = ParseSchedule("--schedule", "fast");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--schedule"), std::string::npos);
  EXPECT_NE(bad.status().message().find("'reference' or 'stream_first'"), std::string::npos);
  EXPECT_STREQ(ScheduleName(Schedule::kStreamFirst), "stream_first");
}

// A stand-in model whose outputs depend on what each chunk attends to: every chunk's keys are
// one number made of its latent, its t and its caption (so the text and null passes of cfg 3
// differ), and each chunk's velocity adds the keys of every chunk in its kv range, read from
// the cache below the slice point. Serving the wrong step's, pass's or chunk's keys changes
// the video.
class ContextDenoiser : public Denoiser {
 public:
  explicit ContextDenoiser(int head_dim) : head_dim_(head_dim) {}
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& a) override {
    ++calls;
    const int64_t N = a.x.size(0), C = a.x.size(1), T = a.x.size(2), H = a.x.size(3), W = a.x.size(4);
    const int64_t R = a.denoising_range_num, cw = T / R, M = cw * (H / 2) * (W / 2);
    const bool active = a.fwd_extra_1st_chunk || a.extract_prefix_video_feature || a.slice_point > 0 || a.record_kv;
    at::Tensor x = a.x.to(at::kFloat).reshape({N, C, R, cw, H, W});
    at::Tensor t = a.t.to(at::kFloat).reshape({N, R});
    at::Tensor y = a.y.to(at::kFloat).reshape({N, R, -1});
    // Per chunk, from a contiguous copy in double: independent of how many chunks share x.
    at::Tensor keys = at::empty({N, R});
    for (int64_t b = 0; b < N; ++b) {
      for (int64_t r = 0; r < R; ++r) {
        const double xm = x.select(0, b).select(1, r).contiguous().to(at::kDouble).mean().item<double>();
        const double ym = y.select(0, b).select(0, r).contiguous().to(at::kDouble).mean().item<double>();
        keys[b][r] = static_cast<float>(xm + ym + t[b][r].item<double>());
      }
    }
    at::Tensor kv = a.kv_range.to(at::kLong);
    const int64_t prefix = active && a.kv_cache ? static_cast<int64_t>(a.slice_point) * M : 0;
    at::Tensor cached;
    if (prefix > 0) {
      auto rows = a.kv_cache->Read(0, prefix);
      if (!rows.ok()) return rows.status();
      cached = rows->select(1, 0).select(1, 0).to(at::kFloat);  // [prefix]
    }
    at::Tensor ctx = at::zeros({N, R});
    for (int64_t b = 0; b < N; ++b) {
      for (int64_t r = 0; r < R; ++r) {
        const int64_t k0 = kv[b * R + r][0].item<int64_t>(), k1 = kv[b * R + r][1].item<int64_t>();
        float sum = 0;
        for (int64_t tok = k0; tok < k1; tok += M) {
          // Keys of a batch are flattened batch-major (cfg 3's unconditional pass).
          sum += tok < prefix ? cached[tok].item<float>() : keys.reshape({-1})[(tok - prefix) / M].item<float>();
        }
        ctx[b][r] = sum;
      }
    }
    if (active && a.kv_cache && (a.update_kv_cache || a.record_kv)) {
      const int64_t n = a.distill_nearly_clean_chunk ? R - 1 : R;
      at::Tensor w = at::empty({n * M, 1, 2 * head_dim_});
      for (int64_t r = 0; r < n; ++r) w.narrow(0, r * M, M).fill_(keys[0][r].item<float>());
      auto s = a.kv_cache->Write(0, prefix, w);
      if (!s.ok()) return s;
    }
    at::Tensor v = t.reshape({N, 1, R, 1, 1, 1}) - x + 0.01 * ctx.reshape({N, 1, R, 1, 1, 1});
    return v.reshape({N, C, T, H, W});
  }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  int kv_cache_groups(const ModelConfig&) const override { return 1; }
  int calls = 0;

 private:
  int head_dim_;
};

MagiConfig Config(int window, int steps, int cfg) {
  MagiConfig c = TinyMagiConfig();
  c.runtime.window_size = window;
  c.runtime.num_steps = steps;
  c.runtime.cfg_number = cfg;
  c.engine.distill = cfg == 1;
  return c;
}

ArRequest Request(const MagiConfig& c, int num_frames, bool two_prompts) {
  ArRequest r;
  EncodedChunkPrompt p;
  p.caption = at::randn({c.model.caption_max_length, c.model.caption_channels});
  p.mask = at::ones({c.model.caption_max_length});
  r.prompts.push_back(p);
  if (two_prompts) {
    EncodedChunkPrompt q = p;
    q.from_chunk = 1;
    q.caption = at::randn(p.caption.sizes());
    r.prompts.push_back(q);
  }
  r.null_caption = at::randn({c.model.caption_max_length, c.model.caption_channels});
  r.num_frames = num_frames;
  return r;
}

struct EngineRun {
  GenerateResult result;
  std::vector<EmittedChunk> chunks;
};

EngineRun Generate(const MagiConfig& c, Denoiser& model, const ArRequest& req, EngineOptions o) {
  EngineRun out;
  auto engine = ArEngine::Create(c, model, o);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return out;
  GenerateCallbacks cb;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    out.chunks.push_back(e);
    return ChunkAction::kContinue;
  };
  auto r = (*engine)->Generate(req, cb);
  EXPECT_TRUE(r.ok()) << r.status();
  if (r.ok()) out.result = *r;
  return out;
}

EngineOptions Opts(Schedule s, KvCacheMode kv = KvCacheMode::kWindowed, int64_t budget = -1) {
  EngineOptions o;
  o.kv_cache = kv;
  o.schedule = s;
  o.lead_kv_budget_bytes = budget;
  return o;
}

TEST(StreamFirstEngine, SameVideoAsTheReferenceWithAContextDependentModel) {
  for (int ws = 1; ws <= 4; ++ws) {
    for (int cfg : {1, 3}) {
      for (int prefix : {0, 1, 3, 4}) {
        for (int frames : {8, 20, 36}) {
          for (bool prompts : {false, true}) {
            if (prompts && frames == 8) continue;  // one chunk: no second prompt
            SCOPED_TRACE(testing::Message() << "ws=" << ws << " cfg=" << cfg << " prefix=" << prefix
                                            << " frames=" << frames << " prompts=" << prompts);
            MagiConfig c = Config(ws, ws == 3 ? 12 : 8, cfg);
            at::manual_seed(ws * 1000 + cfg * 100 + prefix * 10 + frames);
            ArRequest req = Request(c, frames, prompts);
            if (prefix > 0) req.prefix = at::randn({1, 16, prefix, 4, 6});
            req.seed = 5;
            ContextDenoiser m(c.model.kv_channels);
            EngineRun ref = Generate(c, m, req, Opts(Schedule::kReference));
            for (KvCacheMode kv : {KvCacheMode::kWindowed, KvCacheMode::kDense}) {
              // Record all, recompute all, then the smallest power-of-two budget that records
              // some steps and recomputes the others (found from the plans), where one exists.
              int total_read_later = -1;
              int64_t full_peak = 0;
              for (int64_t budget : {int64_t{-1}, int64_t{0}, int64_t{-2}}) {
                const bool partial = budget == -2;
                if (partial) {
                  if (total_read_later < 2) continue;
                  for (budget = 1; budget < (int64_t{1} << 40); budget *= 2) {
                    auto e = ArEngine::Create(c, m, Opts(Schedule::kStreamFirst, kv, budget));
                    ASSERT_TRUE(e.ok());
                    auto plan = (*e)->Plan(req);
                    ASSERT_TRUE(plan.ok()) << plan.status();
                    if (plan->lead_kv_steps > 0) break;
                  }
                }
                EngineRun sf = Generate(c, m, req, Opts(Schedule::kStreamFirst, kv, budget));
                if (budget < 0) {
                  total_read_later = sf.result.lead_kv_steps;
                  full_peak = sf.result.lead_kv_peak_bytes;
                }
                EXPECT_EQ(sf.result.lead_kv_steps + sf.result.lead_recompute_steps,
                          std::max(total_read_later, 0));
                if (partial) {
                  EXPECT_GT(sf.result.lead_kv_steps, 0);
                  EXPECT_GT(sf.result.lead_recompute_steps, 0);
                  EXPECT_LT(sf.result.lead_kv_peak_bytes, full_peak);
                }
                ASSERT_EQ(sf.chunks.size(), ref.chunks.size());
                for (size_t i = 0; i < sf.chunks.size(); ++i) {
                  EXPECT_EQ(sf.chunks[i].index, ref.chunks[i].index);
                  EXPECT_EQ(sf.chunks[i].frame_begin, ref.chunks[i].frame_begin);
                  EXPECT_TRUE(at::equal(sf.chunks[i].latent, ref.chunks[i].latent))
                      << "chunk " << i << " max |diff| "
                      << (sf.chunks[i].latent - ref.chunks[i].latent).abs().max().item<float>() << " of "
                      << ref.chunks[i].latent.abs().max().item<float>();
                }
                EXPECT_EQ(sf.result.schedule, Schedule::kStreamFirst);
                // A zero budget records only when there is nothing to record.
                if (budget < 0) EXPECT_EQ(sf.result.lead_kv, LeadKv::kRecord);
                if (budget == 0) EXPECT_EQ(sf.result.lead_kv_peak_bytes, 0);
              }
            }
          }
        }
      }
    }
  }
}

TEST(StreamFirstEngine, FirstChunkAfterItsOwnStepsAndCallbacksWork) {
  MagiConfig c = Config(4, 16, 1);
  ArRequest req = Request(c, 4 * 2 * 4, false);
  FakeDenoiser model(c.model.num_layers, c.model.num_query_groups, c.model.kv_channels);
  model.noisy_cache_rows_ok = true;  // the lead chunk's recorded K/V of noisy steps
  auto engine = ArEngine::Create(c, model, Opts(Schedule::kStreamFirst));
  ASSERT_TRUE(engine.ok());
  auto plan = (*engine)->Plan(req);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->schedule, Schedule::kStreamFirst);
  std::vector<size_t> calls_at_emit;
  std::vector<EmittedChunk> got;
  int progress = 0, last_step = 0;
  GenerateCallbacks cb;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    got.push_back(e);
    calls_at_emit.push_back(model.calls.size());
    return ChunkAction::kContinue;
  };
  cb.on_progress = [&](const ArProgress& p) {
    ++progress;
    EXPECT_EQ(p.step, last_step + 1);
    last_step = p.step;
    EXPECT_EQ(p.total_steps, plan->num_forward_steps());
  };
  auto r = (*engine)->Generate(req, cb);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(calls_at_emit[0], 16u) << "the first chunk leaves after its own 16 forwards";
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].index, static_cast<int>(i));
    EXPECT_EQ(calls_at_emit[i], static_cast<size_t>(got[i].step + 1));
  }
  EXPECT_EQ(progress, plan->num_forward_steps());
  EXPECT_GT(r->lead_kv_peak_bytes, 0);

  // kStop after the first chunk: no further model call.
  FakeDenoiser stop_model(c.model.num_layers, c.model.num_query_groups, c.model.kv_channels);
  stop_model.noisy_cache_rows_ok = true;
  auto stop_engine = ArEngine::Create(c, stop_model, Opts(Schedule::kStreamFirst));
  GenerateCallbacks stop;
  stop.on_chunk = [](const EmittedChunk&) -> absl::StatusOr<ChunkAction> { return ChunkAction::kStop; };
  auto s = (*stop_engine)->Generate(req, stop);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->stopped);
  EXPECT_EQ(s->chunks_emitted, 1);
  EXPECT_EQ(stop_model.calls.size(), 16u);

  // Cancellation within one forward.
  FakeDenoiser cancel_model(c.model.num_layers, c.model.num_query_groups, c.model.kv_channels);
  cancel_model.noisy_cache_rows_ok = true;
  auto cancel_engine = ArEngine::Create(c, cancel_model, Opts(Schedule::kStreamFirst));
  GenerateCallbacks cancel;
  cancel.cancelled = [&] { return cancel_model.calls.size() >= 20; };
  auto x = (*cancel_engine)->Generate(req, cancel);
  EXPECT_EQ(x.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cancel_model.calls.size(), 20u);
}

TEST(StreamFirstEngine, FakeModelCacheChecksPassEverywhere) {
  // The stand-in checks on every call that the cached rows its ranges reach hold the right
  // chunk: the windowed cache must keep what the reordered passes read.
  for (int ws = 1; ws <= 4; ++ws) {
    for (int cfg : {1, 3}) {
      for (int prefix : {0, 1, 3, 4}) {
        for (int frames : {8, 20, 36}) {
          SCOPED_TRACE(testing::Message() << "ws=" << ws << " cfg=" << cfg << " prefix=" << prefix << " frames=" << frames);
          MagiConfig c = Config(ws, ws == 3 ? 12 : 8, cfg);
          ArRequest req = Request(c, frames, false);
          if (prefix > 0) req.prefix = at::randn({1, 16, prefix, 4, 6});
          FakeDenoiser a(c.model.num_layers, c.model.num_query_groups, c.model.kv_channels);
          a.noisy_cache_rows_ok = true;
          auto engine = ArEngine::Create(c, a, Opts(Schedule::kStreamFirst));
          auto r = (*engine)->Generate(req);
          ASSERT_TRUE(r.ok()) << r.status();
        }
      }
    }
  }
}

// EngineOptions::elide_self_only_copy: the nearly-clean copy is skipped only where the first
// noisy chunk attends to nothing but itself. The stand-in model's velocity adds the keys of
// every chunk in the range, so an elision where the chunk sees context (a full prefix chunk,
// a later chunk) changes the video; where it sees only itself the copy's output is the
// chunk's own and the video is bit for bit the reference's.
TEST(SelfOnlyCopyElision, SameVideoFewerChunkForwardsWhereTheLeadSeesOnlyItself) {
  for (int ws : {1, 2, 4}) {
    for (int cfg : {1, 3}) {
      for (int prefix : {0, 1, 3, 4}) {
        for (Schedule order : {Schedule::kReference, Schedule::kStreamFirst}) {
          SCOPED_TRACE(testing::Message() << "ws=" << ws << " cfg=" << cfg << " prefix=" << prefix
                                          << " order=" << ScheduleName(order));
          MagiConfig c = Config(ws, 8, cfg);
          at::manual_seed(ws * 100 + cfg * 10 + prefix);
          ArRequest req = Request(c, 20, true);
          if (prefix > 0) req.prefix = at::randn({1, 16, prefix, 4, 6});
          req.seed = 5;
          ContextDenoiser m(c.model.kv_channels);
          std::vector<EmittedChunk> chunks[2];
          int64_t chunk_forwards[2] = {0, 0};
          for (int elide = 0; elide < 2; ++elide) {
            EngineOptions o = Opts(order);
            o.elide_self_only_copy = elide == 1;
            auto engine = ArEngine::Create(c, m, o);
            ASSERT_TRUE(engine.ok()) << engine.status();
            GenerateCallbacks cb;
            cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
              chunks[elide].push_back(e);
              return ChunkAction::kContinue;
            };
            cb.on_forward = [&](int, int, const DitForwardArgs& a, const at::Tensor&) {
              chunk_forwards[elide] += a.x.size(0) * a.denoising_range_num;
            };
            ASSERT_TRUE((*engine)->Generate(req, cb).ok());
          }
          ASSERT_EQ(chunks[1].size(), chunks[0].size());
          for (size_t i = 0; i < chunks[0].size(); ++i) {
            EXPECT_TRUE(at::equal(chunks[1][i].latent, chunks[0][i].latent)) << "chunk " << i;
          }
          const int cw = c.runtime.chunk_width;
          if (cfg == 3) {
            EXPECT_EQ(chunk_forwards[1], chunk_forwards[0]);  // no nearly-clean pass
          } else if (prefix < cw) {
            EXPECT_LT(chunk_forwards[1], chunk_forwards[0]);  // chunk 0 leads and sees only itself
          } else {
            EXPECT_EQ(chunk_forwards[1], chunk_forwards[0]);  // the lead attends to a prefix chunk
          }
        }
      }
    }
  }
}

// The real DiT: stream-first with the copy elided (as served) emits the reference's chunks
// to rounding, in fewer chunk-forwards.
TEST(SelfOnlyCopyElision, RealDitEmitsTheReferenceChunks) {
  MagiConfig c = Config(4, 16, 1);
  RandomDit dit;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_elide_test_dit.safetensors", &dit));
  DitDenoiser model(*dit.dit);
  at::manual_seed(23);
  ArRequest req = Request(c, 6 * 2 * 4, true);
  req.null_caption = dit.null_caption;
  req.seed = 3;
  EngineRun ref = Generate(c, model, req, Opts(Schedule::kReference));
  EngineOptions o = Opts(Schedule::kStreamFirst);
  o.elide_self_only_copy = true;
  EngineRun served = Generate(c, model, req, o);
  ASSERT_EQ(served.chunks.size(), ref.chunks.size());
  double worst = 0;
  for (size_t i = 0; i < ref.chunks.size(); ++i) {
    const at::Tensor& a = ref.chunks[i].latent;
    worst = std::max(worst, (served.chunks[i].latent - a).abs().max().item<double>() / a.abs().max().item<double>());
  }
  EXPECT_LE(worst, 1e-5);  // golden tolerance for emitted chunks: 1e-4
  std::printf("stream-first + elided copy vs reference: max |diff| / max |ref| = %.3g\n", worst);
}

// The real DiT (tiny, random weights, fp32): both orders emit the same chunks to rounding.
TEST(StreamFirstEngine, RealDitEmitsTheSameChunksBothWays) {
  const std::string path = (std::filesystem::temp_directory_path() / "magi_stream_first_test_dit.safetensors").string();
  for (int cfg : {1, 3}) {
    MagiConfig c = Config(4, 16, cfg);
    ASSERT_TRUE(WriteRandomDitCheckpoint(c.model, path).ok());
    auto ckpt = Checkpoint::Open(path);
    ASSERT_TRUE(ckpt.ok());
    DitModel::Options o;
    o.distill = cfg == 1;
    auto dit = DitModel::Load(c.model, **ckpt, o);
    ASSERT_TRUE(dit.ok()) << dit.status();
    auto null = LoadNullCaption(**ckpt, c.model);
    ASSERT_TRUE(null.ok());
    DitDenoiser model(**dit);
    for (int prefix : {0, 1, 3}) {
      SCOPED_TRACE(testing::Message() << "cfg=" << cfg << " prefix=" << prefix);
      at::manual_seed(11 + prefix);
      ArRequest req = Request(c, 6 * 2 * 4, true);
      req.null_caption = *null;
      if (prefix > 0) req.prefix = at::randn({1, 16, prefix, 4, 6});
      req.seed = 3;
      EngineRun ref = Generate(c, model, req, Opts(Schedule::kReference));
      for (int64_t budget : {int64_t{-1}, int64_t{0}}) {
        EngineRun sf = Generate(c, model, req, Opts(Schedule::kStreamFirst, KvCacheMode::kWindowed, budget));
        ASSERT_EQ(sf.chunks.size(), ref.chunks.size());
        double worst = 0;
        for (size_t i = 0; i < sf.chunks.size(); ++i) {
          const at::Tensor& a = ref.chunks[i].latent;
          const double rel = (sf.chunks[i].latent - a).abs().max().item<double>() / a.abs().max().item<double>();
          worst = std::max(worst, rel);
          // The golden tolerance for emitted chunks (tools/golden/ar_cases.cc) is 1e-4.
          EXPECT_LE(rel, 1e-5) << "chunk " << i;
        }
        std::printf("stream-first %s vs reference, cfg %d, prefix %d: max |diff| / max |ref| over %zu chunks = %.3g\n",
                    budget < 0 ? "record" : "recompute", cfg, prefix, sf.chunks.size(), worst);
      }
    }
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace magi
