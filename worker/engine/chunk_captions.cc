#include "worker/engine/chunk_captions.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "worker/model/special_tokens.h"

namespace magi {
namespace {

// The reference's null caption has 50 valid tokens (null_token_length).
constexpr int64_t kNullTokens = 50;

std::string Shape(const at::Tensor& t) { return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]"); }

// _pad_special_token: token at position 0, everything shifted right, truncated to L.
void Prepend(const at::Tensor& token, at::Tensor* row, at::Tensor* mask) {
  const int64_t L = row->size(0);
  *row = at::cat({token.view({1, -1}), row->narrow(0, 0, L - 1)}, 0).contiguous();
  if (mask != nullptr) *mask = at::cat({at::ones({1}, at::kFloat), mask->narrow(0, 0, L - 1)}, 0).contiguous();
}

absl::Status CheckToken(const at::Tensor& t, int64_t Cy, const std::string& name) {
  if (!t.defined() || t.numel() != Cy) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must hold ", Cy, " values (caption_channels), got ",
                                                   t.defined() ? Shape(t) : "nothing"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PromptTokens> SelectPromptTokens(const SpecialTokenFlags& flags, const SpecialTokens* tokens,
                                                int64_t caption_channels) {
  PromptTokens out;
  if (!flags.any()) return out;
  const std::string names = absl::StrJoin(flags.EnabledNames(), ", ");
  if (tokens == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("special tokens ", names,
                                                      " are enabled but no special_tokens.npz was loaded"));
  }
  if (tokens->width() != caption_channels) {
    return absl::InvalidArgumentError(absl::StrCat("special tokens (enabled: ", names, ") are ", tokens->width(),
                                                   " wide, the model's caption_channels is ", caption_channels));
  }
  auto row = [&](int64_t r) { return tokens->other(r).reshape({-1}); };
  // get_special_token_keys order; each one is prepended, so the last ends up first.
  if (flags.pad_static) out.prompt_tokens.push_back(row(2));
  if (flags.pad_dynamic) out.prompt_tokens.push_back(row(3));
  if (flags.pad_borderness) out.prompt_tokens.push_back(row(4));
  if (flags.pad_hq) out.prompt_tokens.push_back(row(1));
  if (flags.pad_three_d_model) out.prompt_tokens.push_back(row(15));
  if (flags.pad_two_d_anime) out.prompt_tokens.push_back(row(16));
  if (flags.pad_duration) {
    std::vector<at::Tensor> d;
    for (int64_t k = 7; k <= 14; ++k) d.push_back(row(k));
    out.duration_tokens = at::stack(d);
  }
  if (flags.neg_prompt) {
    out.negative_tokens = {tokens->caption().reshape({-1}), tokens->logo().reshape({-1}), row(0), row(4)};
  }
  return out;
}

absl::StatusOr<ChunkCaptions> BuildChunkCaptions(const std::vector<EncodedChunkPrompt>& prompts, const at::Tensor& null_caption,
                                                 int chunk_num, int chunk_offset, const PromptTokens& special) {
  if (!null_caption.defined() || null_caption.dim() != 2) {
    return absl::InvalidArgumentError("null_caption must be [caption_max_length, caption_channels]");
  }
  const int64_t L = null_caption.size(0), Cy = null_caption.size(1);
  const int generated = chunk_num - chunk_offset;
  if (generated < 1) return absl::InvalidArgumentError("no chunk to generate");
  if (prompts.empty()) return absl::InvalidArgumentError("prompts: at least one prompt is needed");
  ChunkCaptions out;
  out.null_row = null_caption.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor plain_null = out.null_row;  // prefix chunks' conditional rows
  out.null_mask = at::zeros({L}, at::kFloat);
  out.null_mask.narrow(0, 0, std::min(L, kNullTokens)).fill_(1);
  for (size_t k = 0; k < special.prompt_tokens.size(); ++k) {
    MAGI_RETURN_IF_ERROR(CheckToken(special.prompt_tokens[k], Cy, absl::StrCat("special.prompt_tokens[", k, "]")));
  }
  for (size_t k = 0; k < special.negative_tokens.size(); ++k) {
    if (auto s = CheckToken(special.negative_tokens[k], Cy, absl::StrCat("special.negative_tokens[", k, "]")); !s.ok()) {
      return s;
    }
    Prepend(special.negative_tokens[k].to(at::kCPU, at::kFloat), &out.null_row, nullptr);
  }
  if (special.duration_tokens.defined() &&
      (special.duration_tokens.dim() != 2 || special.duration_tokens.size(0) != 8 || special.duration_tokens.size(1) != Cy)) {
    return absl::InvalidArgumentError(absl::StrCat("special.duration_tokens must be [8, ", Cy, "], got ",
                                                   Shape(special.duration_tokens)));
  }

  std::vector<at::Tensor> rows, masks;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const EncodedChunkPrompt& p = prompts[i];
    const std::string name = absl::StrCat("prompts[", i, "]");
    if (i == 0 && p.from_chunk != 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".from_chunk must be 0 for the first prompt, got ", p.from_chunk));
    }
    if (i > 0 && p.from_chunk <= prompts[i - 1].from_chunk) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".from_chunk (", p.from_chunk,
                                                     ") must be greater than the previous prompt's (",
                                                     prompts[i - 1].from_chunk, ")"));
    }
    if (p.from_chunk >= generated) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".from_chunk (", p.from_chunk, ") must be below the ",
                                                     generated, " generated chunks"));
    }
    if (!p.caption.defined() || p.caption.numel() != L * Cy || p.caption.size(-1) != Cy ||
        (p.caption.dim() > 2 && p.caption.numel() != p.caption.size(-2) * Cy) || p.caption.dim() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".caption must be [", L, ", ", Cy, "] (caption_max_length, ",
                                                     "caption_channels), got ",
                                                     p.caption.defined() ? Shape(p.caption) : "nothing"));
    }
    if (!p.mask.defined() || p.mask.numel() != L || p.mask.size(-1) != L) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".mask must be [", L, "], got ",
                                                     p.mask.defined() ? Shape(p.mask) : "nothing"));
    }
    at::Tensor mask = p.mask.to(at::kCPU).reshape({L}).to(at::kFloat);
    if ((mask != 0).sum().item<int64_t>() == 0) {
      // Reference: an all-zero prompt mask selects the null rows for both halves.
      rows.push_back(out.null_row);
      masks.push_back(out.null_mask);
    } else {
      at::Tensor row = p.caption.to(at::kCPU, at::kFloat).reshape({L, Cy}).contiguous();
      for (const auto& tok : special.prompt_tokens) Prepend(tok.to(at::kCPU, at::kFloat), &row, &mask);
      rows.push_back(row);
      masks.push_back(mask.contiguous());
    }
  }
  const at::Tensor zero_mask = at::zeros({L}, at::kFloat);
  size_t which = 0;
  for (int c = 0; c < chunk_num; ++c) {
    if (c < chunk_offset) {
      out.text_rows.push_back(plain_null);
      out.text_masks.push_back(zero_mask);
      continue;
    }
    const int rel = c - chunk_offset;
    while (which + 1 < prompts.size() && prompts[which + 1].from_chunk <= rel) ++which;
    at::Tensor row = rows[which], mask = masks[which];
    if (special.duration_tokens.defined() && !row.is_same(out.null_row)) {
      // "Chunks still to come after this one", capped at 7.
      const int k = std::min(generated - 1 - rel, 7);
      Prepend(special.duration_tokens[k].to(at::kCPU, at::kFloat), &row, &mask);
    }
    out.text_rows.push_back(row);
    out.text_masks.push_back(mask);
  }
  return out;
}

}  // namespace magi
