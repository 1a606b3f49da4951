#include "worker/engine/chunk_captions.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

ChunkPrompt Prompt(int from, int valid, float value) {
  ChunkPrompt p;
  p.from_chunk = from;
  p.caption = at::full({1, 1, 64, 8}, value);
  p.mask = at::zeros({1, 64}, at::kLong);
  p.mask.narrow(1, 0, valid).fill_(1);
  return p;
}

TEST(ChunkCaptions, PrefixChunksNullRowsAndBroadcast) {
  at::Tensor null = at::randn({64, 8});
  auto c = BuildChunkCaptions({Prompt(0, 11, 1.0f)}, null, 5, 2);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->text_rows.size(), 5u);
  EXPECT_TRUE(at::equal(c->text_rows[0], null));
  EXPECT_EQ(c->text_masks[1].sum().item<float>(), 0.0f);  // prefix chunks: all-zero mask
  EXPECT_TRUE(at::equal(c->text_rows[4], at::full({64, 8}, 1.0f)));
  EXPECT_EQ(c->text_masks[4].sum().item<float>(), 11.0f);
  EXPECT_EQ(c->text_rows[2].data_ptr(), c->text_rows[4].data_ptr()) << "one prompt is shared, not copied";
  EXPECT_EQ(c->null_mask.sum().item<float>(), 50.0f);
  EXPECT_EQ(c->null_mask[49].item<float>(), 1.0f);
  EXPECT_EQ(c->null_mask[50].item<float>(), 0.0f);
}

TEST(ChunkCaptions, ChunkWisePromptsAndEmptyMaskFallback) {
  at::Tensor null = at::randn({64, 8});
  auto c = BuildChunkCaptions({Prompt(0, 5, 1.0f), Prompt(2, 0, 2.0f), Prompt(3, 7, 3.0f)}, null, 4, 0);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text_rows[1][0][0].item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(c->text_rows[2], null));  // all-zero mask: null rows (reference rule)
  EXPECT_TRUE(at::equal(c->text_masks[2], c->null_mask));
  EXPECT_EQ(c->text_rows[3][0][0].item<float>(), 3.0f);
}

TEST(ChunkCaptions, ErrorsNameTheField) {
  at::Tensor null = at::randn({64, 8});
  auto expect = [](const absl::StatusOr<ChunkCaptions>& r, const std::string& what) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status();
  };
  expect(BuildChunkCaptions({}, null, 4, 0), "prompts");
  expect(BuildChunkCaptions({Prompt(1, 5, 1.f)}, null, 4, 0), "prompts[0].from_chunk");
  expect(BuildChunkCaptions({Prompt(0, 5, 1.f), Prompt(0, 5, 1.f)}, null, 4, 0), "prompts[1].from_chunk");
  expect(BuildChunkCaptions({Prompt(0, 5, 1.f), Prompt(4, 5, 1.f)}, null, 4, 0), "prompts[1].from_chunk");
  ChunkPrompt bad = Prompt(0, 5, 1.f);
  bad.caption = at::randn({64, 9});
  expect(BuildChunkCaptions({bad}, null, 4, 0), "prompts[0].caption");
  bad = Prompt(0, 5, 1.f);
  bad.mask = at::ones({63});
  expect(BuildChunkCaptions({bad}, null, 4, 0), "prompts[0].mask");
}

}  // namespace
}  // namespace magi

namespace magi {
namespace {

TEST(ChunkCaptions, SpecialTokensInTheReferenceOrder) {
  at::Tensor null = at::randn({64, 8});
  PromptTokens sp;
  sp.prompt_tokens = {at::full({8}, 10.0f)};  // HQ
  sp.duration_tokens = at::arange(8, at::kFloat).unsqueeze(1).expand({8, 8}).contiguous() + 100;
  sp.negative_tokens = {at::full({8}, -1.0f), at::full({8}, -2.0f)};
  auto c = BuildChunkCaptions({Prompt(0, 11, 1.0f)}, null, 12, 1, sp);
  ASSERT_TRUE(c.ok()) << c.status();
  // 11 generated chunks: chunk i gets DURATION min(10 − i, 7); rows [DURATION, HQ, caption...].
  for (int c_abs = 1; c_abs < 12; ++c_abs) {
    const int rel = c_abs - 1;
    const at::Tensor& row = c->text_rows[c_abs];
    EXPECT_EQ(row[0][0].item<float>(), 100.0f + std::min(10 - rel, 7)) << rel;
    EXPECT_EQ(row[1][0].item<float>(), 10.0f);
    EXPECT_EQ(row[2][0].item<float>(), 1.0f);
    EXPECT_EQ(c->text_masks[c_abs].sum().item<float>(), 13.0f);
    EXPECT_EQ(row.size(0), 64);
  }
  // Null rows: [second negative, first negative, null_0 ...]; mask unchanged.
  EXPECT_EQ(c->null_row[0][0].item<float>(), -2.0f);
  EXPECT_EQ(c->null_row[1][0].item<float>(), -1.0f);
  EXPECT_TRUE(at::equal(c->null_row[2], null[0]));
  EXPECT_EQ(c->null_mask.sum().item<float>(), 50.0f);
  sp.duration_tokens = at::zeros({7, 8});
  EXPECT_FALSE(BuildChunkCaptions({Prompt(0, 11, 1.0f)}, null, 12, 1, sp).ok());
}

}  // namespace
}  // namespace magi
