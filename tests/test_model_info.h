// A ModelInfo shaped like MAGI-1's tiny set (chunks of 6 latent frames x 4 video frames, limits
// as server/model_catalog.cc's DefaultTinyModel without its special tokens), for tests of the
// layers below the server (api/, jobspec/) that cannot link the server's catalog.
#ifndef MAGI_TESTS_TEST_MODEL_INFO_H_
#define MAGI_TESTS_TEST_MODEL_INFO_H_

#include <string>

#include "magi/internal/v1/worker_pool.pb.h"

namespace magi {
namespace testing_models {

inline ::magi::internal::v1::ModelInfo TinyLikeModelInfo(const std::string& name = "tiny") {
  ::magi::internal::v1::ModelInfo m;
  m.set_name(name);
  m.set_frames_per_chunk(24);
  m.set_max_frames(960);
  m.set_max_width(512);
  m.set_max_height(512);
  m.set_default_width(256);
  m.set_default_height(256);
  m.set_default_frames(48);
  m.set_default_fps(24);
  m.set_default_steps(8);
  m.set_max_steps(64);
  m.set_frames_multiple(4);
  m.set_latent_frames_per_chunk(6);
  m.set_steps_multiple(4);
  m.set_size_multiple(16);
  m.set_min_size(32);
  m.add_cfg_numbers(1);
  m.set_default_seed(1234);
  return m;
}

}  // namespace testing_models
}  // namespace magi

#endif  // MAGI_TESTS_TEST_MODEL_INFO_H_
