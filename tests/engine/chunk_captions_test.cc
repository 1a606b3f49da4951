#include "worker/engine/chunk_captions.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/model/special_tokens.h"

namespace magi {
namespace {

EncodedChunkPrompt Prompt(int from, int valid, float value) {
  EncodedChunkPrompt p;
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
  EncodedChunkPrompt bad = Prompt(0, 5, 1.f);
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

// SelectPromptTokens + BuildChunkCaptions with a real (small) token set: what the served path,
// magi generate and the golden checker run. Rows are [DURATION_k, HQ, caption...].
std::unique_ptr<SpecialTokens> SmallTokens(int64_t C) {
  at::Tensor other = at::arange(100 * C, at::kDouble).view({100, C}) / 1024.0;  // exact in fp16
  auto tok = SpecialTokens::FromTensors(at::full({1, C}, 0.5, at::kDouble), at::full({1, C}, 0.25, at::kDouble), other);
  EXPECT_TRUE(tok.ok());
  return std::move(*tok);
}

TEST(ChunkCaptions, SelectedHqDurationRowsWithPrefix) {
  const int64_t L = 6, C = 3;
  auto tok = SmallTokens(C);
  auto sp = SelectPromptTokens(SpecialTokenFlags::RunScriptDefaults(), tok.get(), C);
  ASSERT_TRUE(sp.ok()) << sp.status();
  EncodedChunkPrompt p;
  p.caption = at::arange(L * C, at::kFloat).view({1, L, C}) + 100;
  p.mask = at::tensor(std::vector<int64_t>{1, 1, 1, 0, 0, 0}).view({1, L});
  at::Tensor null = -at::ones({L, C});
  auto c = BuildChunkCaptions({p}, null, /*chunk_num=*/4, /*chunk_offset=*/1, *sp);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(at::equal(c->text_rows[0], null));  // prefix chunk: null row, zero mask
  EXPECT_EQ(c->text_masks[0].sum().item<float>(), 0);
  for (int64_t i = 0; i < 3; ++i) {  // denoised chunk i of 3: DURATION_{min(2 - i, 7) + 1}
    const at::Tensor& row = c->text_rows[1 + i];
    EXPECT_TRUE(at::equal(row[0], tok->other(7 + (2 - i))[0])) << i;
    EXPECT_TRUE(at::equal(row[1], tok->other(1)[0]));
    EXPECT_TRUE(at::equal(row[2], p.caption[0][0]));
    EXPECT_TRUE(at::equal(row[L - 1], p.caption[0][L - 3]));  // cut back to L
    EXPECT_TRUE(at::equal(c->text_masks[1 + i], at::tensor(std::vector<float>{1, 1, 1, 1, 1, 0})));
  }
  EXPECT_EQ(c->null_mask.sum().item<float>(), L);  // min(50, L)
}

TEST(ChunkCaptions, SelectedOrderAndNegativePromptKeepsPrefixRowsPlain) {
  const int64_t L = 8, C = 2;
  auto tok = SmallTokens(C);
  SpecialTokenFlags f;
  for (const auto& field : SpecialTokenFlags::Fields()) f.*field.member = true;
  auto sp = SelectPromptTokens(f, tok.get(), C);
  ASSERT_TRUE(sp.ok()) << sp.status();
  // Application order STATIC, DYNAMIC, BORDERNESS, HQ, THREE_D, TWO_D; DURATION last.
  const std::vector<int64_t> rows = {2, 3, 4, 1, 15, 16};
  ASSERT_EQ(sp->prompt_tokens.size(), rows.size());
  for (size_t k = 0; k < rows.size(); ++k) EXPECT_TRUE(at::equal(sp->prompt_tokens[k], tok->other(rows[k])[0])) << k;
  ASSERT_EQ(sp->negative_tokens.size(), 4u);
  EncodedChunkPrompt p;
  p.caption = at::ones({L, C});
  p.mask = at::ones({L});
  at::Tensor null = at::full({L, C}, -3.0f);
  auto c = BuildChunkCaptions({p}, null, 3, 1, *sp);
  ASSERT_TRUE(c.ok()) << c.status();
  // Null rows: [BORDERNESS, TRANS, LOGO, CAPTION, null...]; the prefix chunk's row is plain.
  EXPECT_TRUE(at::equal(c->null_row[0], tok->other(4)[0]));
  EXPECT_TRUE(at::equal(c->null_row[1], tok->other(0)[0]));
  EXPECT_TRUE(at::equal(c->null_row[2], tok->logo()[0]));
  EXPECT_TRUE(at::equal(c->null_row[3], tok->caption()[0]));
  EXPECT_TRUE(at::equal(c->text_rows[0], null));
  // Conditional: DURATION, TWO_D, THREE_D, HQ, BORDERNESS, DYNAMIC, STATIC, caption.
  EXPECT_TRUE(at::equal(c->text_rows[1][0], tok->other(8)[0]));
  EXPECT_TRUE(at::equal(c->text_rows[1][1], tok->other(16)[0]));
  EXPECT_TRUE(at::equal(c->text_rows[1][6], tok->other(2)[0]));
  EXPECT_TRUE(at::equal(c->text_rows[1][7], p.caption[0]));
  EXPECT_TRUE(at::equal(c->text_rows[2][0], tok->other(7)[0]));
}

TEST(ChunkCaptions, SelectNeedsTokensOfTheCaptionWidth) {
  auto none = SelectPromptTokens(SpecialTokenFlags(), nullptr, 4);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->prompt_tokens.empty() && !none->duration_tokens.defined() && none->negative_tokens.empty());
  auto missing = SelectPromptTokens(SpecialTokenFlags::RunScriptDefaults(), nullptr, 4);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("PAD_HQ, PAD_DURATION"), std::string::npos);
  EXPECT_NE(std::string(missing.status().message()).find("special_tokens.npz"), std::string::npos);
  auto tok = SmallTokens(3);
  auto wide = SelectPromptTokens(SpecialTokenFlags::RunScriptDefaults(), tok.get(), 4);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(std::string(wide.status().message()).find("caption_channels is 4"), std::string::npos);
}

}  // namespace
}  // namespace magi
