#include "jobspec/job_spec.h"

#include <gtest/gtest.h>

#include "tests/test_model_info.h"

namespace magi {
namespace {

using ::magi::internal::v1::ModelInfo;
using ::magi::v1::GenerateRequest;

// A model shaped like MAGI-1's tiny set: chunks of 6 latent frames x 4 video frames.
ModelInfo Model() {
  ModelInfo m = testing_models::TinyLikeModelInfo("m");
  m.set_default_height(128);
  return m;
}

GenerateRequest Request() {
  GenerateRequest r;
  r.add_prompts()->set_text("a fox");
  return r;
}

TEST(JobSpecTest, FillsDefaultsGeometryAndEncoding) {
  auto spec = BuildJobSpec(Request(), Model());
  ASSERT_TRUE(spec.ok()) << spec.status();
  const GenerateRequest& r = spec->request();
  EXPECT_EQ(r.model(), "m");
  EXPECT_EQ(r.mode(), ::magi::v1::MODE_T2V);
  EXPECT_EQ(r.num_frames(), 48);
  EXPECT_EQ(r.width(), 256);
  EXPECT_EQ(r.height(), 128);
  EXPECT_EQ(r.fps(), 24);
  EXPECT_EQ(r.num_steps(), 8);
  EXPECT_EQ(r.seed(), 1234);
  EXPECT_EQ(spec->frames_per_chunk(), 24);
  EXPECT_EQ(spec->chunks_total(), 2);
  EXPECT_EQ(spec->frames_per_latent(), 4);
  EXPECT_EQ(spec->latent_frames_per_chunk(), 6);
  EXPECT_EQ(spec->prefix_latent_frames(), 0);
  EXPECT_EQ(spec->engine_frames(), 48);
  EXPECT_EQ(spec->encode().fps(), 24);
  EXPECT_EQ(spec->encode().threads(), 1);
  const VideoEncodeOptions o = EncodeOptions(*spec);
  EXPECT_EQ(o.fps, 24);
  EXPECT_EQ(o.preset, spec->encode().preset());
  EXPECT_TRUE(ValidateVideoEncodeOptions(o).ok());
}

TEST(JobSpecTest, ChunksFramesAndPrefixPerMode) {
  GenerateRequest r = Request();
  r.set_num_frames(52);
  r.set_fps(12);
  auto t2v = BuildJobSpec(r, Model());
  ASSERT_TRUE(t2v.ok()) << t2v.status();
  EXPECT_EQ(t2v->chunks_total(), 3);
  EXPECT_EQ(FrameBegin(*t2v, 2), 48);
  EXPECT_EQ(FrameEnd(*t2v, 1), 48);
  EXPECT_EQ(FrameEnd(*t2v, 2), 52);  // the last chunk is trimmed
  EXPECT_EQ(t2v->encode().fps(), 12);
  r.set_mode(::magi::v1::MODE_I2V);
  r.set_image("png bytes");
  auto i2v = BuildJobSpec(r, Model());
  ASSERT_TRUE(i2v.ok()) << i2v.status();
  EXPECT_EQ(i2v->prefix_latent_frames(), 1);
  EXPECT_EQ(i2v->engine_frames(), 48);  // the image is the first frame
  r.clear_image();
  r.set_mode(::magi::v1::MODE_V2V);
  r.set_prefix_video("mp4 bytes");
  auto v2v = BuildJobSpec(r, Model());
  ASSERT_TRUE(v2v.ok()) << v2v.status();
  EXPECT_EQ(v2v->engine_frames(), 52 + 24);
}

TEST(JobSpecTest, RefusesWhatTheModelCannotRunNamingFieldAndAllowedValues) {
  struct Case {
    const char* field;
    const char* allowed;
    void (*mutate)(GenerateRequest*);
  } cases[] = {
      {"num_frames", "a multiple of 4", [](GenerateRequest* r) { r->set_num_frames(50); }},
      {"num_frames", "[4, 960]", [](GenerateRequest* r) { r->set_num_frames(964); }},
      {"num_steps", "a multiple of 4 in [4, 64]", [](GenerateRequest* r) { r->set_num_steps(6); }},
      {"width", "a multiple of 16 in [32, 512]", [](GenerateRequest* r) { r->set_width(16); }},
      {"height", "a multiple of 16", [](GenerateRequest* r) { r->set_height(40); }},
      {"fps", "[1, 120]", [](GenerateRequest* r) { r->set_fps(121); }},
      {"guidance.cfg_number", "allowed 0 (default) or 1", [](GenerateRequest* r) {
         r->mutable_guidance()->set_cfg_number(3);
       }},
      {"guidance.prefix_scale", "[1, 20]", [](GenerateRequest* r) { r->mutable_guidance()->set_prefix_scale(0.5f); }},
      {"prompts[0].from_chunk", "chunk 0", [](GenerateRequest* r) { r->mutable_prompts(0)->set_from_chunk(1); }},
      {"image", "MODE_I2V", [](GenerateRequest* r) { r->set_mode(::magi::v1::MODE_I2V); }},
      {"mode", "MODE_T2V", [](GenerateRequest* r) { r->set_mode(static_cast<::magi::v1::Mode>(7)); }},
  };
  for (const Case& c : cases) {
    GenerateRequest r = Request();
    c.mutate(&r);
    auto spec = BuildJobSpec(r, Model());
    ASSERT_FALSE(spec.ok()) << c.field;
    EXPECT_TRUE(absl::IsInvalidArgument(spec.status())) << spec.status();
    EXPECT_EQ(spec.status().message().rfind(std::string(c.field) + ":", 0), 0u) << spec.status();
    EXPECT_NE(spec.status().message().find(c.allowed), std::string::npos) << spec.status();
  }
}

TEST(JobSpecTest, AModelWithoutConstraintsTakesAnySizeAndCfg) {
  ModelInfo m = Model();
  m.clear_frames_multiple();
  m.clear_latent_frames_per_chunk();
  m.clear_steps_multiple();
  m.clear_size_multiple();
  m.clear_min_size();
  m.clear_cfg_numbers();
  GenerateRequest r = Request();
  r.set_num_frames(50);
  r.set_num_steps(6);
  r.set_width(16);
  r.mutable_guidance()->set_cfg_number(3);
  auto spec = BuildJobSpec(r, m);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->chunks_total(), 3);
  EXPECT_EQ(spec->frames_per_latent(), 1);
  EXPECT_EQ(spec->latent_frames_per_chunk(), 24);
}

TEST(JobSpecTest, AnIncoherentModelDeclarationIsNotTheRequestsFault) {
  ModelInfo m = Model();
  m.set_latent_frames_per_chunk(5);  // 5 x 4 != 24
  auto spec = BuildJobSpec(Request(), m);
  EXPECT_TRUE(absl::IsFailedPrecondition(spec.status())) << spec.status();
}

// A live prompt change replaces the prompts from its chunk on and keeps the request valid;
// its text follows the rules of a submitted prompt.
TEST(JobSpecTest, PromptUpdateReplacesTheTailAndKeepsTheRequestValid) {
  GenerateRequest r = Request();
  r.set_num_frames(4 * Model().frames_per_chunk());
  r.mutable_prompts(0)->set_text("a");
  auto* p = r.add_prompts();
  p->set_from_chunk(2);
  p->set_text("c");
  ASSERT_TRUE(BuildJobSpec(r, Model()).ok());
  ASSERT_TRUE(ApplyPromptFrom(1, "b", &r).ok());
  ASSERT_EQ(r.prompts_size(), 2);
  EXPECT_EQ(r.prompts(1).from_chunk(), 1);
  EXPECT_EQ(r.prompts(1).text(), "b");
  EXPECT_TRUE(BuildJobSpec(r, Model()).ok());
  ASSERT_TRUE(ApplyPromptFrom(3, "d", &r).ok());
  ASSERT_EQ(r.prompts_size(), 3);
  EXPECT_TRUE(BuildJobSpec(r, Model()).ok());
  ASSERT_TRUE(ApplyPromptFrom(0, "e", &r).ok());
  ASSERT_EQ(r.prompts_size(), 1);
  EXPECT_EQ(r.prompts(0).text(), "e");
  EXPECT_FALSE(ApplyPromptFrom(-1, "f", &r).ok());

  JobLimits limits;
  limits.max_prompt_bytes = 8;
  limits.max_total_prompt_bytes = 10;
  EXPECT_TRUE(CheckPromptUpdate(r, "12345678", limits).ok());
  for (const std::string& bad : {std::string(), std::string(9, 'x')}) {
    absl::Status s = CheckPromptUpdate(r, bad, limits);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_EQ(s.message().substr(0, 5), "text:") << s;
  }
  r.mutable_prompts(0)->set_text("12345");  // 5 + 6 > 10
  EXPECT_TRUE(absl::IsInvalidArgument(CheckPromptUpdate(r, "123456", limits)));
}

}  // namespace
}  // namespace magi
