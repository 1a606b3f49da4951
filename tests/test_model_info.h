// A ModelInfo shaped like MAGI-1's tiny set (jobspec/builtin_models.h's TinyModelInfo under
// another name and without its special tokens), for the tests of api/ and jobspec/.
#ifndef MAGI_TESTS_TEST_MODEL_INFO_H_
#define MAGI_TESTS_TEST_MODEL_INFO_H_

#include <string>

#include "jobspec/builtin_models.h"
#include "magi/internal/v1/worker_pool.pb.h"

namespace magi {
namespace testing_models {

inline ::magi::internal::v1::ModelInfo TinyLikeModelInfo(const std::string& name = "tiny") {
  ::magi::internal::v1::ModelInfo m = TinyModelInfo();
  m.set_name(name);
  m.clear_special_tokens();
  return m;
}

}  // namespace testing_models
}  // namespace magi

#endif  // MAGI_TESTS_TEST_MODEL_INFO_H_
