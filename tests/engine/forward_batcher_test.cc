#include "worker/engine/forward_batcher.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/engine/random_dit.h"
#include "worker/engine/ar_engine.h"

namespace magi {
namespace {

MagiConfig Config() {
  MagiConfig c = TinyMagiConfig();
  c.runtime.window_size = 2;
  c.runtime.num_steps = 8;
  c.runtime.cfg_number = 1;
  c.engine.distill = true;
  return c;
}

// A request of `chunks` latent chunks with its own caption and seed.
ArRequest Request(const MagiConfig& c, const at::Tensor& null_caption, int chunks, int64_t seed) {
  at::manual_seed(seed);
  ArRequest r;
  EncodedChunkPrompt p;
  p.caption = at::randn({c.model.caption_max_length, c.model.caption_channels});
  p.mask = at::ones({c.model.caption_max_length});
  p.mask.narrow(0, 5 + seed % 7, c.model.caption_max_length - 5 - seed % 7).zero_();
  r.prompts.push_back(p);
  r.null_caption = null_caption;
  r.num_frames = chunks * c.runtime.chunk_width * c.runtime.temporal_downsample_factor;
  r.seed = seed;
  return r;
}

absl::StatusOr<GenerateResult> Solo(const MagiConfig& c, Denoiser& model, const ArRequest& r, const EngineOptions& o) {
  auto engine = ArEngine::Create(c, model, o);
  if (!engine.ok()) return engine.status();
  return (*engine)->Generate(r);
}

double RelDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// Three requests of different lengths, captions and seeds, the third joining once the first
// has streamed a chunk (so the group runs windows of different shapes side by side), in both
// schedules: each video equals its solo run up to float32 rounding, and forwards were shared.
TEST(ForwardBatcher, SharedForwardsGiveEachRequestItsSoloVideo) {
  const MagiConfig c = Config();
  RandomDit random;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_forward_batcher_test_dit.safetensors", &random));
  DitDenoiser solo_model(*random.dit);
  for (Schedule schedule : {Schedule::kReference, Schedule::kStreamFirst}) {
    EngineOptions eo;
    eo.schedule = schedule;
    const std::vector<ArRequest> requests = {Request(c, random.null_caption, 5, 1),
                                             Request(c, random.null_caption, 3, 2),
                                             Request(c, random.null_caption, 4, 3)};
    std::vector<at::Tensor> solo;
    for (const auto& r : requests) {
      auto out = Solo(c, solo_model, r, eo);
      ASSERT_TRUE(out.ok()) << out.status();
      solo.push_back(out->final_latents);
    }
    ForwardBatcherOptions bo;
    bo.straggler_wait = std::chrono::seconds(30);  // every forward waits for all joined requests
    ForwardBatcher batcher(*random.dit, bo);
    std::mutex mu;
    std::condition_variable cv;
    bool first_chunk_out = false;
    std::vector<absl::StatusOr<GenerateResult>> results(requests.size(), absl::UnknownError("not run"));
    auto run = [&](size_t i) {
      if (i == 2) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return first_chunk_out; });
      }
      std::unique_ptr<Denoiser> member = batcher.Join();
      GenerateCallbacks cb;
      cb.on_chunk = [&, i](const EmittedChunk&) -> absl::StatusOr<ChunkAction> {
        if (i == 0) {
          std::lock_guard<std::mutex> lock(mu);
          first_chunk_out = true;
          cv.notify_all();
        }
        return ChunkAction::kContinue;
      };
      auto engine = ArEngine::Create(c, *member, eo);
      results[i] = engine.ok() ? (*engine)->Generate(requests[i], cb) : engine.status();
    };
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) threads.emplace_back(run, i);
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE(results[i].ok()) << results[i].status();
      ASSERT_EQ(results[i]->final_latents.sizes(), solo[i].sizes());
      const double diff = RelDiff(results[i]->final_latents, solo[i]);
      std::printf("schedule %d request %zu: max |batched - solo| / max |solo| = %.3g\n", static_cast<int>(schedule), i,
                  diff);
      // Measured about 1e-6: GEMM roundings of the batched forwards, carried through 8 steps.
      EXPECT_LE(diff, 1e-4) << "request " << i;
    }
    const ForwardBatcherStats st = batcher.stats();
    std::printf("calls %lld, forwards %lld, widest batch %d\n", static_cast<long long>(st.calls),
                static_cast<long long>(st.forwards), st.max_batch);
    EXPECT_GE(st.max_batch, 2);
    EXPECT_LT(st.forwards, st.calls);
  }
}

// A request that is cancelled, one refused before its first forward and one that holds its
// place without calling: none of them keeps the others from finishing (the idle one only for
// straggler_wait per forward).
TEST(ForwardBatcher, CancelledRefusedAndIdleRequestsDoNotHoldTheOthers) {
  const MagiConfig c = Config();
  RandomDit random;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_forward_batcher_test_dit2.safetensors", &random));
  DitDenoiser solo_model(*random.dit);
  const ArRequest good = Request(c, random.null_caption, 3, 5);
  auto solo = Solo(c, solo_model, good, {});
  ASSERT_TRUE(solo.ok()) << solo.status();

  ForwardBatcherOptions bo;
  bo.straggler_wait = std::chrono::milliseconds(20);
  ForwardBatcher batcher(*random.dit, bo);
  // Holds its place until the good request is done: the batcher must not wait for it forever.
  std::unique_ptr<Denoiser> idle = batcher.Join();
  std::atomic<int> calls{0};
  auto cancelled = std::async(std::launch::async, [&] {
    std::unique_ptr<Denoiser> member = batcher.Join();
    GenerateCallbacks cb;
    cb.cancelled = [&] { return calls.load() >= 2; };
    cb.on_forward = [&](int, int, const DitForwardArgs&, const at::Tensor&) { ++calls; };
    auto engine = ArEngine::Create(c, *member, {});
    return (*engine)->Generate(Request(c, random.null_caption, 4, 6), cb).status();
  });
  auto refused = std::async(std::launch::async, [&] {
    std::unique_ptr<Denoiser> member = batcher.Join();
    ArRequest bad = Request(c, random.null_caption, 4, 7);
    bad.noise = at::zeros({1, 2, 3});
    auto engine = ArEngine::Create(c, *member, {});
    return (*engine)->Generate(bad).status();
  });
  auto finished = std::async(std::launch::async, [&] {
    std::unique_ptr<Denoiser> member = batcher.Join();
    auto engine = ArEngine::Create(c, *member, {});
    return (*engine)->Generate(good);
  });
  ASSERT_EQ(finished.wait_for(std::chrono::seconds(120)), std::future_status::ready) << "the good request hangs";
  auto out = finished.get();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LE(RelDiff(out->final_latents, solo->final_latents), 1e-4);
  EXPECT_EQ(cancelled.get().code(), absl::StatusCode::kCancelled);
  const absl::Status bad = refused.get();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_NE(bad.message().find("noise"), std::string::npos) << bad;
  idle.reset();
}

// In-process rank group of two for the forward order: the leader's announcements reach the
// follower through a queue (what CommForwardOrder's broadcast does between processes).
struct QueueOrder {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<int>> queue;
  int announced = 0;

  class End : public ForwardOrder {
   public:
    End(QueueOrder& q, bool leader) : q_(q), leader_(leader) {}
    bool decides() const override { return leader_; }
    absl::Status Exchange(std::vector<int>* slots) override {
      std::unique_lock<std::mutex> lock(q_.mu);
      if (leader_) {
        q_.queue.push_back(*slots);
        ++q_.announced;
        q_.cv.notify_all();
        return absl::OkStatus();
      }
      if (!q_.cv.wait_for(lock, std::chrono::seconds(60), [&] { return !q_.queue.empty(); })) {
        return absl::DeadlineExceededError("no announcement");
      }
      *slots = q_.queue.front();
      q_.queue.pop_front();
      return absl::OkStatus();
    }

   private:
    QueueOrder& q_;
    const bool leader_;
  };
};

// Several jobs on a rank group: the follower's batcher runs exactly the forwards the leader
// announces, whatever its own timing. Its requests start in another order and late (request
// 0 by 300 ms), and it would give up on stragglers after 1 ms if it decided itself (then it
// would run 1 and 2 without 0); following, it makes the same forwards as the leader (same
// count, same widest batch) and bit-equal videos, which is what keeps the ranks' collectives
// in step.
TEST(ForwardBatcher, AFollowingRankRunsTheLeadersForwardsWhateverItsOwnTiming) {
  const MagiConfig c = Config();
  RandomDit random;
  ASSERT_NO_FATAL_FAILURE(LoadRandomDit(c, "magi_forward_batcher_test_dit3.safetensors", &random));
  const std::vector<ArRequest> requests = {Request(c, random.null_caption, 4, 1), Request(c, random.null_caption, 2, 2),
                                           Request(c, random.null_caption, 3, 3)};
  QueueOrder q;
  QueueOrder::End leader_end(q, true), follower_end(q, false);
  ForwardBatcherOptions lo;
  lo.straggler_wait = std::chrono::seconds(30);
  lo.order = &leader_end;
  ForwardBatcherOptions fo;
  fo.straggler_wait = std::chrono::milliseconds(1);
  fo.order = &follower_end;
  ForwardBatcher leader(*random.dit, lo), follower(*random.dit, fo);
  using Results = std::vector<absl::StatusOr<GenerateResult>>;
  Results led(requests.size(), absl::UnknownError("not run")), followed(requests.size(), absl::UnknownError("not run"));
  // All of a rank's requests join before any starts (as a group's slots fill), then run.
  auto rank = [&](ForwardBatcher& b, Results& out, bool late) {
    std::vector<std::unique_ptr<Denoiser>> members;
    for (size_t i = 0; i < requests.size(); ++i) members.push_back(b.Join(static_cast<int>(i)));
    std::vector<std::thread> threads;
    for (size_t k = 0; k < requests.size(); ++k) {
      const size_t i = late ? requests.size() - 1 - k : k;  // the follower starts them in reverse
      threads.emplace_back([&, i] {
        if (late && i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        auto engine = ArEngine::Create(c, *members[i], {});
        out[i] = engine.ok() ? (*engine)->Generate(requests[i]) : engine.status();
        members[i].reset();
      });
    }
    for (auto& t : threads) t.join();
  };
  std::thread leading(rank, std::ref(leader), std::ref(led), false);
  std::thread following(rank, std::ref(follower), std::ref(followed), true);
  leading.join();
  following.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(led[i].ok()) << led[i].status();
    ASSERT_TRUE(followed[i].ok()) << followed[i].status();
    EXPECT_TRUE(at::equal(led[i]->final_latents, followed[i]->final_latents)) << "request " << i;
  }
  const ForwardBatcherStats ls = leader.stats(), fs = follower.stats();
  std::printf("leader: calls %lld, forwards %lld, widest %d; follower: calls %lld, forwards %lld, widest %d; "
              "%d announced\n",
              static_cast<long long>(ls.calls), static_cast<long long>(ls.forwards), ls.max_batch,
              static_cast<long long>(fs.calls), static_cast<long long>(fs.forwards), fs.max_batch, q.announced);
  EXPECT_EQ(fs.calls, ls.calls);
  EXPECT_EQ(fs.forwards, ls.forwards);
  EXPECT_EQ(fs.max_batch, ls.max_batch);
  EXPECT_EQ(ls.max_batch, 3);
  EXPECT_LT(ls.forwards, ls.calls);
  EXPECT_TRUE(q.queue.empty());
}

}  // namespace
}  // namespace magi
