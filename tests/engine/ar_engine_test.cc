#include "worker/engine/ar_engine.h"

#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/engine/fake_denoiser.h"
#include "tests/engine/random_dit.h"
#include "worker/engine/windowed_kv_cache.h"
#include "worker/model/checkpoint.h"
#include "worker/model/random_checkpoint.h"
#include "worker/model/safetensors.h"

namespace magi {
namespace {

MagiConfig Config(int window = 2, int steps = 8, int cfg = 1) {
  MagiConfig c = TinyMagiConfig();
  c.runtime.window_size = window;
  c.runtime.num_steps = steps;
  c.runtime.cfg_number = cfg;
  c.engine.distill = cfg == 1;
  return c;
}

ArRequest Request(const MagiConfig& c, int num_frames = -1) {
  ArRequest r;
  EncodedChunkPrompt p;
  p.caption = at::randn({c.model.caption_max_length, c.model.caption_channels});
  p.mask = at::ones({c.model.caption_max_length});
  p.mask.narrow(0, 11, 5).zero_();
  r.prompts.push_back(p);
  r.null_caption = at::randn({c.model.caption_max_length, c.model.caption_channels});
  if (num_frames > 0) r.num_frames = num_frames;
  return r;
}

FakeDenoiser Fake(const MagiConfig& c) { return FakeDenoiser(c.model.num_layers, c.model.num_query_groups, c.model.kv_channels); }

TEST(ArEngine, StreamsEachChunkRightAfterTheStepThatFinishesIt) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto plan = (*engine)->Plan(Request(c));
  ASSERT_TRUE(plan.ok());
  std::vector<EmittedChunk> got;
  std::vector<size_t> calls_at_emit;
  GenerateCallbacks cb;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    got.push_back(e);
    calls_at_emit.push_back(model.calls.size());
    return ChunkAction::kContinue;
  };
  int progress_calls = 0;
  cb.on_progress = [&](const ArProgress& p) {
    ++progress_calls;
    EXPECT_LE(p.step, p.total_steps);
    EXPECT_GE(p.eta_seconds, 0);
  };
  auto r = (*engine)->Generate(Request(c), cb);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(progress_calls, plan->num_forward_steps());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].index, static_cast<int>(i));
    EXPECT_EQ(got[i].chunks_total, 4);
    EXPECT_EQ(got[i].latent.sizes(), (at::IntArrayRef{1, 16, 2, 4, 6}));
    EXPECT_EQ(calls_at_emit[i], static_cast<size_t>(got[i].step + 1)) << "chunk " << i << " was held back";
    if (i > 0) EXPECT_GE(got[i].seconds, got[i - 1].seconds);
  }
  EXPECT_EQ(r->forward_steps, 20);
  EXPECT_TRUE(at::equal(r->final_latents.narrow(2, 2, 2), got[1].latent));
}

TEST(ArEngine, CancellationReturnsWithinOneForward) {
  MagiConfig c = Config(2, 8, 3);
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  ASSERT_TRUE(engine.ok());
  GenerateCallbacks cb;
  cb.cancelled = [&] { return model.calls.size() >= 7; };
  auto r = (*engine)->Generate(Request(c), cb);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(model.calls.size(), 7u);
}

TEST(ArEngine, ChunkCallbackErrorAborts) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  GenerateCallbacks cb;
  cb.on_chunk = [](const EmittedChunk&) -> absl::StatusOr<ChunkAction> { return absl::DataLossError("disk full"); };
  auto r = (*engine)->Generate(Request(c), cb);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ArEngine, ChunkCallbackStopEndsTheRunSuccessfullyWithoutAnotherModelCall) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<EmittedChunk> got;
  size_t calls_at_stop = 0;
  GenerateCallbacks cb;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    got.push_back(e);
    if (e.index < 1) return ChunkAction::kContinue;
    calls_at_stop = model.calls.size();
    return ChunkAction::kStop;
  };
  auto r = (*engine)->Generate(Request(c), cb);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(r->chunks_emitted, 2);
  EXPECT_EQ(model.calls.size(), calls_at_stop) << "the engine ran a model call after kStop";
  EXPECT_LT(r->forward_steps, 20);
  EXPECT_EQ(r->final_latents.size(2), 4);  // the two chunks handed out
}

TEST(ArEngine, StopOnTheLastChunkIsNotAnEarlyStop) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  ASSERT_TRUE(engine.ok()) << engine.status();
  GenerateCallbacks cb;
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    return e.index + 1 == e.chunks_total ? ChunkAction::kStop : ChunkAction::kContinue;
  };
  auto r = (*engine)->Generate(Request(c), cb);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_emitted, 4);
  EXPECT_EQ(r->forward_steps, 20);
  EXPECT_FALSE(r->stopped);
}

TEST(ArEngine, SeededNoiseIsReproducibleAndMatchesTorchManualSeed) {
  MagiConfig c = Config();
  auto first_input = [&](std::optional<int64_t> seed, at::Tensor noise) {
    FakeDenoiser model = Fake(c);
    auto engine = ArEngine::Create(c, model);
    ArRequest req = Request(c);
    req.seed = seed;
    req.noise = noise;
    auto r = (*engine)->Generate(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return std::make_pair(model.calls.at(0).x.clone(), r.ok() ? r->final_latents : at::Tensor());
  };
  auto a = first_input(1234, {});
  auto b = first_input(1234, {});
  auto d = first_input(99, {});
  EXPECT_TRUE(at::equal(a.second, b.second));
  EXPECT_FALSE(at::equal(a.first, d.first));
  // The golden runs drew their noise with torch.manual_seed(1234); torch.randn on CPU.
  auto f = SafetensorsFile::Open(std::string(MAGI_GOLDEN_DIR) + "/ar_cfg1_distill.safetensors");
  ASSERT_TRUE(f.ok());
  at::Tensor noise = *(*f)->Get("noise");
  EXPECT_TRUE(at::equal(a.first, noise.narrow(2, 0, 2)));
  // Injected noise is used as given.
  at::Tensor mine = at::randn(noise.sizes());
  auto e = first_input(std::nullopt, mine);
  EXPECT_TRUE(at::equal(e.first, mine.narrow(2, 0, 2)));
}

TEST(ArEngine, WindowedKvCachePeakDoesNotGrowWithLength) {
  MagiConfig c = Config(4, 16, 1);
  auto peak = [&](int chunks) {
    FakeDenoiser model = Fake(c);  // also checks that every cached row read is the right clean chunk
    auto engine = ArEngine::Create(c, model);
    auto r = (*engine)->Generate(Request(c, chunks * 2 * 4));
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r.ok() ? r->chunks_emitted : 0, chunks);
    return r.ok() ? r->kv_peak_bytes : -1;
  };
  const int64_t five = peak(5), twenty = peak(20);
  EXPECT_GT(five, 0);
  EXPECT_EQ(five, twenty);
  // Whole-video dense cache for comparison: grows with the video.
  const int64_t row = 2 * c.model.num_query_groups * 2 * c.model.kv_channels * 4;
  EXPECT_LT(twenty, 20 * 12 * row);
}

TEST(ArEngine, WindowedAndDenseCachesGiveIdenticalVideosWithTheRealDit) {
  MagiConfig c = Config(4, 16, 1);
  RandomDit random;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_engine_test_dit.safetensors", &random));
  DitDenoiser model(*random.dit);
  ArRequest req = Request(c, 7 * 2 * 4);
  req.null_caption = random.null_caption;
  auto dense = ArEngine::Create(c, model, {KvCacheMode::kDense, true, 0.7});
  auto windowed = ArEngine::Create(c, model, {KvCacheMode::kWindowed, true, 0.7});
  auto a = (*dense)->Generate(req);
  auto b = (*windowed)->Generate(req);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(at::equal(a->final_latents, b->final_latents));
  EXPECT_TRUE(at::isfinite(a->final_latents).all().item<bool>());
  auto* w = dynamic_cast<WindowedKvCache*>((*windowed)->last_cache());
  ASSERT_NE(w, nullptr);
  EXPECT_LT(w->peak_bytes(), dynamic_cast<DenseKvCache*>((*dense)->last_cache())->bytes());
}

TEST(ArEngine, I2vAndV2vEmitOnlyGeneratedFrames) {
  MagiConfig c = Config();
  {
    FakeDenoiser model = Fake(c);
    auto engine = ArEngine::Create(c, model);
    ArRequest req = Request(c);
    req.prefix = at::randn({1, 16, 1, 4, 6});
    std::vector<EmittedChunk> got;
    GenerateCallbacks cb;
    cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
      got.push_back(e);
      return ChunkAction::kContinue;
    };
    auto r = (*engine)->Generate(req, cb);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(got.size(), 5u);  // ceil((8 + 1) / 2)
    EXPECT_EQ(got[0].latent.size(2), 2);
    // Every step's chunk-0 input starts with the image latent.
    EXPECT_TRUE(at::equal(model.calls[0].x.narrow(2, 0, 1), req.prefix));
  }
  {
    FakeDenoiser model = Fake(c);
    auto engine = ArEngine::Create(c, model);
    ArRequest req = Request(c);
    req.prefix = at::randn({1, 16, 3, 4, 6});
    std::vector<EmittedChunk> got;
    GenerateCallbacks cb;
    cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
      got.push_back(e);
      return ChunkAction::kContinue;
    };
    auto r = (*engine)->Generate(req, cb);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0].latent.size(2), 1);  // latent frame 3 only
    EXPECT_EQ(r->final_latents.size(2), 9);
    EXPECT_TRUE(model.calls[0].extract_prefix_video_feature);
    EXPECT_TRUE(at::equal(model.calls[0].x, req.prefix.narrow(2, 0, 2)));
  }
}

TEST(ArEngine, ChunkWisePrompts) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto engine = ArEngine::Create(c, model);
  ArRequest req = Request(c);
  EncodedChunkPrompt second = req.prompts[0];
  second.from_chunk = 2;
  second.caption = at::randn(second.caption.sizes());
  req.prompts.push_back(second);
  auto r = (*engine)->Generate(req);
  ASSERT_TRUE(r.ok()) << r.status();
  bool saw_first = false, saw_second = false;
  for (const auto& a : model.calls) {
    for (int i = 0; i < a.denoising_range_num; ++i) {
      const int chunk = a.slice_point + i;
      if (a.fwd_extra_1st_chunk && i == 0) continue;
      if (a.distill_nearly_clean_chunk && i == a.denoising_range_num - 1) continue;  // appended copy
      const at::Tensor& want = chunk >= 2 ? second.caption : req.prompts[0].caption;
      EXPECT_TRUE(at::equal(a.y[i][0], want)) << "chunk " << chunk;
      (chunk >= 2 ? saw_second : saw_first) = true;
    }
  }
  EXPECT_TRUE(saw_first && saw_second);
}

// A prompt given live, as its chunk is about to start, gives the very video of a request
// that named it from that chunk up front (the record a resumed job replays), in both orders;
// the hook is asked once per generated chunk, in order, and replaces later prompts.
TEST(ArEngine, LivePromptEqualsThePromptSubmittedFromItsChunk) {
  MagiConfig c = Config(2, 8, 1);
  RandomDit random;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_engine_live_prompt.safetensors", &random));
  DitDenoiser model(*random.dit);
  ArRequest req = Request(c);
  req.null_caption = random.null_caption;
  EncodedChunkPrompt live = req.prompts[0];
  live.caption = at::randn(live.caption.sizes());
  EncodedChunkPrompt later = req.prompts[0];  // submitted for chunk 3: the live one replaces it
  later.caption = at::randn(later.caption.sizes());
  later.from_chunk = 3;
  for (Schedule schedule : {Schedule::kReference, Schedule::kStreamFirst}) {
    EngineOptions eo;
    eo.schedule = schedule;
    auto engine = ArEngine::Create(c, model, eo);
    ASSERT_TRUE(engine.ok()) << engine.status();
    ArRequest submitted = req;
    live.from_chunk = 2;
    submitted.prompts.push_back(live);
    auto want = (*engine)->Generate(submitted);
    ASSERT_TRUE(want.ok()) << want.status();

    ArRequest base = req;
    base.prompts.push_back(later);
    std::vector<int> asked;
    GenerateCallbacks cb;
    cb.prompt_for_chunk = [&](int chunk) -> absl::StatusOr<std::optional<EncodedChunkPrompt>> {
      asked.push_back(chunk);
      if (chunk != 2) return std::nullopt;
      EncodedChunkPrompt p = live;
      p.from_chunk = 99;  // ignored: the engine uses it from the chunk it asked for
      return std::optional<EncodedChunkPrompt>(p);
    };
    auto got = (*engine)->Generate(base, cb);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(at::equal(want->final_latents, got->final_latents)) << static_cast<int>(schedule);
    std::vector<int> every(static_cast<size_t>(got->chunks_emitted));
    for (size_t i = 0; i < every.size(); ++i) every[i] = static_cast<int>(i);
    EXPECT_EQ(asked, every);

    auto plain = (*engine)->Generate(base);
    ASSERT_TRUE(plain.ok());
    EXPECT_FALSE(at::equal(plain->final_latents, got->final_latents));  // the update mattered

    cb.prompt_for_chunk = [](int chunk) -> absl::StatusOr<std::optional<EncodedChunkPrompt>> {
      if (chunk == 1) return absl::UnavailableError("prompt source gone");
      return std::nullopt;
    };
    auto failed = (*engine)->Generate(base, cb);
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  }
}

TEST(ArEngine, BadRequestsAndConfigsNameTheField) {
  MagiConfig c = Config();
  FakeDenoiser model = Fake(c);
  auto expect = [](const absl::Status& s, const std::string& field) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(field), std::string::npos) << s;
  };
  MagiConfig bad = c;
  bad.runtime.cfg_number = 2;
  expect(ArEngine::Create(bad, model).status(), "cfg_number");
  bad = c;
  bad.runtime.num_steps = 9;
  expect(ArEngine::Create(bad, model).status(), "window_size");
  bad = c;
  bad.runtime.window_size = 5;
  bad.runtime.num_steps = 10;
  expect(ArEngine::Create(bad, model).status(), "noise2clean_kvrange");

  auto engine = ArEngine::Create(c, model);
  ArRequest req = Request(c);
  req.prefix = at::randn({1, 16, 1, 5, 6});
  expect((*engine)->Generate(req).status(), "prefix");
  req = Request(c);
  req.noise = at::randn({1, 16, 7, 4, 6});
  expect((*engine)->Generate(req).status(), "noise");
  req = Request(c);
  req.null_caption = at::Tensor();
  expect((*engine)->Generate(req).status(), "null_caption");
  req = Request(c);
  req.prompts[0].caption = at::randn({16, 65});
  expect((*engine)->Generate(req).status(), "prompts[0].caption");
  req = Request(c);
  req.prompts.push_back(req.prompts[0]);
  expect((*engine)->Generate(req).status(), "prompts[1].from_chunk");
  req = Request(c);
  req.num_frames = 2;
  expect((*engine)->Generate(req).status(), "num_frames");
  EXPECT_EQ(model.calls.size(), 0u);
}

}  // namespace
}  // namespace magi

namespace magi {
namespace {

// Every combination of window, guidance, prefix and length: the fake model checks on every
// call that the cached rows its ranges reach hold the right clean chunk, so the windowed
// cache may drop only rows nobody reads; and both caches give identical videos.
TEST(ArEngine, WindowedCacheNeverDropsARowThatIsRead) {
  for (int ws = 1; ws <= 4; ++ws) {
    for (int cfg : {1, 3}) {
      for (int prefix : {0, 1, 3, 4}) {
        for (int frames : {8, 20, 36}) {
          SCOPED_TRACE(testing::Message() << "ws=" << ws << " cfg=" << cfg << " prefix=" << prefix << " frames=" << frames);
          MagiConfig c = Config(ws, ws == 3 ? 12 : 8, cfg);
          ArRequest req = Request(c, frames);
          if (prefix > 0) req.prefix = at::randn({1, 16, prefix, 4, 6});
          FakeDenoiser a = Fake(c), b = Fake(c);
          auto windowed = ArEngine::Create(c, a, {KvCacheMode::kWindowed, true, 0.7});
          auto dense = ArEngine::Create(c, b, {KvCacheMode::kDense, true, 0.7});
          ASSERT_TRUE(windowed.ok() && dense.ok());
          auto rw = (*windowed)->Generate(req);
          auto rd = (*dense)->Generate(req);
          ASSERT_TRUE(rw.ok()) << rw.status();
          ASSERT_TRUE(rd.ok()) << rd.status();
          EXPECT_TRUE(at::equal(rw->final_latents, rd->final_latents));
          // Everything after the prefix is emitted; i2v also emits the image frame's chunk whole.
          EXPECT_EQ(rw->final_latents.size(2), LatentChunkCount(frames, 4, prefix, 2) * 2 - (prefix > 1 ? prefix : 0));
        }
      }
    }
  }
}

}  // namespace
}  // namespace magi
