#include "worker/engine/stage_plan.h"

#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace magi {
namespace {

// A strictly increasing stand-in schedule: T[k] = k / num_steps.
std::vector<float> LinearSchedule(int num_steps) {
  std::vector<float> t;
  for (int k = 0; k <= num_steps; ++k) t.push_back(static_cast<float>(k) / num_steps);
  return t;
}

PlanOptions Options(int chunks, int ws, int steps, int prefix_frames = 0, int cw = 6) {
  PlanOptions o;
  o.chunk_num = chunks;
  o.window_size = ws;
  o.num_steps = steps;
  o.chunk_width = cw;
  o.prefix_frames = prefix_frames;
  o.noise2clean_kvrange = {5, 4, 3, 2};
  o.clean_chunk_kvrange = 1;
  o.t_schedule = LinearSchedule(steps);
  return o;
}

// Properties every plan must have, for any window, chunk count and prefix.
void CheckProperties(const PlanOptions& o) {
  SCOPED_TRACE(testing::Message() << "chunks=" << o.chunk_num << " ws=" << o.window_size << " steps=" << o.num_steps
                                  << " prefix=" << o.prefix_frames);
  auto plan = PlanStages(o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int off = o.prefix_frames / o.chunk_width;
  EXPECT_EQ(plan->chunk_offset, off);
  EXPECT_EQ(plan->num_forward_steps(), (o.num_steps / o.window_size) * (o.chunk_num + o.window_size - 1 - off));
  EXPECT_EQ(plan->has_prefix_pass, off > 0);
  std::map<int, std::vector<int>> steps_of;  // chunk -> denoise steps in order
  std::vector<int> finished;
  int last_read_floor = 0;
  for (const auto& st : plan->steps) {
    ASSERT_FALSE(st.chunks.empty());
    EXPECT_LE(st.clip_end - st.clip_start, o.window_size);
    EXPECT_EQ(st.extra_clean_chunk, st.clip_start > off && st.idx == 0);
    if (st.extra_clean_chunk) {
      EXPECT_TRUE(st.chunks[0].extra);
      EXPECT_EQ(st.chunks[0].chunk, st.clip_start - 1);
      EXPECT_EQ(st.slice_point, st.clip_start - 1);
      EXPECT_EQ(st.chunks[0].t_in, o.clean_t);
      ASSERT_FALSE(finished.empty());
      EXPECT_EQ(finished.back(), st.clip_start - 1) << "the extra chunk is the one just finished";
    } else {
      EXPECT_EQ(st.slice_point, st.clip_start);
    }
    for (const auto& pc : st.chunks) {
      EXPECT_EQ(pc.kv_end, pc.chunk + 1);
      EXPECT_LE(pc.kv_begin, pc.chunk);
      EXPECT_GE(pc.kv_begin, 0);
      if (pc.kv_begin < st.slice_point) EXPECT_GE(pc.kv_begin, st.keep_cache_from);
      if (pc.extra) continue;
      EXPECT_GE(pc.chunk, off);
      steps_of[pc.chunk].push_back(pc.denoise_step);
      EXPECT_EQ(pc.t_before, o.t_schedule[pc.denoise_step]);
      EXPECT_EQ(pc.t_after, o.t_schedule[pc.denoise_step + 1]);
    }
    // Oldest chunk first: denoise steps decrease along the window.
    for (int k = st.first_noisy() + 1; k < st.num_chunks(); ++k) {
      EXPECT_GT(st.chunks[k - 1].denoise_step, st.chunks[k].denoise_step);
    }
    EXPECT_GE(st.keep_cache_from, last_read_floor) << "cache floor never moves back";
    last_read_floor = st.keep_cache_from;
    if (st.finished_chunk >= 0) {
      EXPECT_EQ(steps_of[st.finished_chunk].size(), static_cast<size_t>(o.num_steps));
      finished.push_back(st.finished_chunk);
    }
  }
  for (int c = off; c < o.chunk_num; ++c) {
    ASSERT_EQ(steps_of[c].size(), static_cast<size_t>(o.num_steps)) << "chunk " << c;
    for (int k = 0; k < o.num_steps; ++k) EXPECT_EQ(steps_of[c][k], k) << "chunk " << c;
  }
  // Chunks finish in order, each once, the last at the last step.
  ASSERT_EQ(finished.size(), static_cast<size_t>(o.chunk_num - off));
  for (size_t i = 0; i < finished.size(); ++i) EXPECT_EQ(finished[i], off + static_cast<int>(i));
  EXPECT_EQ(plan->steps.back().finished_chunk, o.chunk_num - 1);
}

TEST(StagePlan, PropertiesForWindowsOneToFour) {
  for (int ws = 1; ws <= 4; ++ws) {
    for (int chunks = 1; chunks <= 9; ++chunks) {
      for (int steps : {4 * ws, 8 * ws, 12}) {
        if (steps % ws != 0 || steps % 4 != 0) continue;
        CheckProperties(Options(chunks, ws, steps));
      }
    }
  }
}

TEST(StagePlan, PropertiesWithPrefixes) {
  for (int ws = 1; ws <= 4; ++ws) {
    for (int chunks = 2; chunks <= 8; ++chunks) {
      for (int prefix : {1, 2, 6, 8, 13}) {
        if (prefix >= chunks * 6) continue;
        CheckProperties(Options(chunks, ws, ws == 3 ? 12 : 8, prefix));
      }
    }
  }
  CheckProperties(Options(1, 4, 16, 1));  // i2v of a single chunk
}

TEST(StagePlan, WorkedExampleOfTheSpec) {
  // pipeline.md §9: 4 chunks, window 2, 8 steps, kv ranges [5,4,3,2] / 1.
  PlanOptions o = Options(4, 2, 8, 0, 2);
  auto plan = PlanStages(o);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->num_forward_steps(), 20);
  const int sp[20] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3};
  const int finished[20] = {-1, -1, -1, -1, -1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3};
  for (int s = 0; s < 20; ++s) {
    EXPECT_EQ(plan->steps[s].slice_point, sp[s]) << s;
    EXPECT_EQ(plan->steps[s].finished_chunk, finished[s]) << s;
    EXPECT_EQ(plan->steps[s].extra_clean_chunk, s == 8 || s == 12 || s == 16) << s;
  }
  // Step 12: c1* [1,2), c2 [0,3), c3 [0,4); step 14: c2 [1,3), c3 [0,4); step 19: c3 [2,4).
  auto kv = [&](int s) {
    std::vector<std::pair<int, int>> r;
    for (const auto& c : plan->steps[s].chunks) r.emplace_back(c.kv_begin, c.kv_end);
    return r;
  };
  EXPECT_EQ(kv(12), (std::vector<std::pair<int, int>>{{1, 2}, {0, 3}, {0, 4}}));
  EXPECT_EQ(kv(14), (std::vector<std::pair<int, int>>{{1, 3}, {0, 4}}));
  EXPECT_EQ(kv(16), (std::vector<std::pair<int, int>>{{2, 3}, {1, 4}}));
  EXPECT_EQ(kv(19), (std::vector<std::pair<int, int>>{{2, 4}}));
}

TEST(StagePlan, NearlyCleanFlagIsStrictOnFloat32) {
  PlanOptions o = Options(3, 2, 8, 0, 2);
  o.t_schedule = {0.f, .005263f, .021739f, .051724f, .1f, .176056f, 0.3f, .521277f, 1.f};
  auto plan = PlanStages(o);
  ASSERT_TRUE(plan.ok());
  // fp32 0.3 is 0.30000001192..., which is > 0.3 as a double.
  EXPECT_TRUE(plan->steps[6].nearly_clean);
  EXPECT_FALSE(plan->steps[5].nearly_clean);
  o.t_schedule[6] = 0.29999998f;
  plan = PlanStages(o);
  EXPECT_FALSE(plan->steps[6].nearly_clean);
}

TEST(StagePlan, V2vPrefixPassAndPartialChunk) {
  PlanOptions o = Options(6, 2, 8, 3, 2);  // prefix of 1.5 chunks, as golden ar_v2v_*
  auto plan = PlanStages(o);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->has_prefix_pass);
  EXPECT_EQ(plan->prefix_pass.chunks, 1);
  EXPECT_EQ(plan->num_forward_steps(), 24);
  EXPECT_EQ(plan->steps[0].slice_point, 1);
  int emitted = 0;
  for (const auto& st : plan->steps) {
    if (!st.emit) continue;
    if (emitted == 0) {
      EXPECT_EQ(st.emit_frame_begin, 3);
      EXPECT_EQ(st.emit_frame_end, 4);
    }
    EXPECT_EQ(st.emit_index, emitted);
    ++emitted;
  }
  EXPECT_EQ(emitted, 5);
}

TEST(StagePlan, I2vEmitsTheWholeFirstChunk) {
  auto plan = PlanStages(Options(5, 2, 8, 1, 2));
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->has_prefix_pass);
  for (const auto& st : plan->steps) {
    if (st.emit && st.finished_chunk == 0) {
      EXPECT_EQ(st.emit_frame_begin, 0);
      EXPECT_EQ(st.emit_frame_end, 2);
    }
  }
}

TEST(StagePlan, CacheHoldsTheSameNumberOfChunksForShortAndLongVideos) {
  auto five = PlanStages(Options(5, 4, 16));
  auto twenty = PlanStages(Options(20, 4, 16));
  ASSERT_TRUE(five.ok() && twenty.ok());
  EXPECT_EQ(five->max_cached_chunks, twenty->max_cached_chunks);
  EXPECT_LE(twenty->max_cached_chunks, 9);
  // Without kv ranges everything stays readable.
  PlanOptions full = Options(20, 4, 16);
  full.noise2clean_kvrange.clear();
  auto all = PlanStages(full);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->steps.back().keep_cache_from, 0);
}

TEST(StagePlan, RejectsBadOptionsNamingTheField) {
  PlanOptions o = Options(4, 4, 10);
  auto p = PlanStages(o);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("window_size"), std::string::npos) << p.status();
  o = Options(4, 2, 6);  // 6 % 4 entries of noise2clean_kvrange
  p = PlanStages(o);
  EXPECT_NE(p.status().message().find("noise2clean_kvrange"), std::string::npos) << p.status();
  o = Options(4, 2, 8);
  o.t_schedule.pop_back();
  EXPECT_NE(PlanStages(o).status().message().find("t_schedule"), std::string::npos);
  o = Options(2, 2, 8, 12);
  EXPECT_NE(PlanStages(o).status().message().find("prefix_frames"), std::string::npos);
  o = Options(0, 2, 8);
  EXPECT_NE(PlanStages(o).status().message().find("chunk_num"), std::string::npos);
}

TEST(StagePlan, LatentChunkCountFollowsTheReference) {
  EXPECT_EQ(LatentChunkCount(96, 4, 0, 6), 4);
  EXPECT_EQ(LatentChunkCount(96, 4, 1, 6), 5);   // i2v
  EXPECT_EQ(LatentChunkCount(96, 4, 8, 6), 6);   // v2v, 32-frame prefix
  EXPECT_EQ(LatentChunkCount(32, 4, 3, 2), 6);   // golden v2v
}

}  // namespace
}  // namespace magi
