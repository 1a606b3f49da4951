// A distilled DiT of random weights for engine tests: a temporary checkpoint (removed with
// it), the loaded model and its null caption.
#ifndef MAGI_TESTS_ENGINE_RANDOM_DIT_H_
#define MAGI_TESTS_ENGINE_RANDOM_DIT_H_

#include <filesystem>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/engine/denoiser.h"
#include "worker/model/checkpoint.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {

struct RandomDit {
  std::string path;
  std::unique_ptr<Checkpoint> ckpt;  // the weights alias it
  std::unique_ptr<DitModel> dit;
  at::Tensor null_caption;
  ~RandomDit() {
    dit.reset();
    ckpt.reset();
    if (!path.empty()) std::filesystem::remove(path);
  }
};

// Call through ASSERT_NO_FATAL_FAILURE.
inline void LoadRandomDit(const MagiConfig& c, const std::string& name, RandomDit* out) {
  out->path = (std::filesystem::temp_directory_path() / name).string();
  ASSERT_TRUE(WriteRandomDitCheckpoint(c.model, out->path).ok());
  auto ckpt = Checkpoint::Open(out->path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  out->ckpt = std::move(*ckpt);
  DitModel::Options o;
  o.distill = true;
  auto dit = DitModel::Load(c.model, *out->ckpt, o);
  ASSERT_TRUE(dit.ok()) << dit.status();
  out->dit = std::move(*dit);
  auto null = LoadNullCaption(*out->ckpt, c.model);
  ASSERT_TRUE(null.ok()) << null.status();
  out->null_caption = *null;
}

}  // namespace magi

#endif  // MAGI_TESTS_ENGINE_RANDOM_DIT_H_
