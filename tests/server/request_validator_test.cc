#include "server/request_validator.h"

#include <gtest/gtest.h>

#include "jobspec/builtin_models.h"

namespace magi {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

::magi::v1::GenerateRequest Good() {
  ::magi::v1::GenerateRequest r;
  r.add_prompts()->set_text("a cat");
  r.set_num_frames(48);
  r.set_width(64);
  r.set_height(64);
  return r;
}

TEST(RequestValidatorTest, FillsDefaultsAndCountsChunks) {
  ModelCatalog catalog;
  auto good = Good();
  good.set_num_frames(52);
  auto v = ValidateGenerateRequest(good, catalog, kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->request().model(), "tiny");
  EXPECT_EQ(v->request().mode(), ::magi::v1::MODE_T2V);
  EXPECT_EQ(v->request().fps(), 24);
  EXPECT_EQ(v->request().num_steps(), 8);
  EXPECT_EQ(v->request().seed(), 1234);
  EXPECT_EQ(v->chunks_total(), 3);  // 52 frames in chunks of 24
  EXPECT_EQ(v->spec.frames_per_chunk(), 24);
}

struct BadCase {
  const char* field;
  void (*mutate)(::magi::v1::GenerateRequest*);
};

TEST(RequestValidatorTest, EveryBadFieldIsNamed) {
  ModelCatalog catalog;
  const BadCase cases[] = {
      {"model", [](auto* r) { r->set_model("huge"); }},
      {"mode", [](auto* r) { r->set_mode(static_cast<::magi::v1::Mode>(9)); }},
      {"num_frames", [](auto* r) { r->set_num_frames(-3); }},
      {"num_frames", [](auto* r) { r->set_num_frames(961); }},
      {"width", [](auto* r) { r->set_width(100); }},
      {"height", [](auto* r) { r->set_height(4096); }},
      {"fps", [](auto* r) { r->set_fps(121); }},
      {"num_steps", [](auto* r) { r->set_num_steps(65); }},
      {"seed", [](auto* r) { r->set_seed(-1); }},
      {"guidance.text_scale", [](auto* r) { r->mutable_guidance()->set_text_scale(0.5f); }},
      {"guidance.cfg_number", [](auto* r) { r->mutable_guidance()->set_cfg_number(2); }},
      // What the tiny model cannot run is refused here, not after the job was queued.
      {"num_frames", [](auto* r) { r->set_num_frames(50); }},
      {"num_steps", [](auto* r) { r->set_num_steps(6); }},
      {"width", [](auto* r) { r->set_width(16); }},
      {"guidance.cfg_number", [](auto* r) { r->mutable_guidance()->set_cfg_number(3); }},
      {"priority", [](auto* r) { r->set_priority(-1); }},
      {"deadline_unix_ms", [](auto* r) { r->set_deadline_unix_ms(-5); }},
      {"idempotency_key", [](auto* r) { r->set_idempotency_key(std::string(200, 'k')); }},
      {"prompts", [](auto* r) { r->clear_prompts(); }},
      {"prompts[0].text", [](auto* r) { r->mutable_prompts(0)->set_text(std::string(20000, 'x')); }},
      {"prompts[1].from_chunk", [](auto* r) { r->add_prompts()->set_from_chunk(0); }},
      {"prompts[1].from_chunk", [](auto* r) { r->add_prompts()->set_from_chunk(3); }},
      {"image", [](auto* r) { r->set_mode(::magi::v1::MODE_I2V); }},
      {"image", [](auto* r) { r->set_mode(::magi::v1::MODE_I2V); r->set_image("garbage"); }},
      {"image", [](auto* r) { r->set_image("\xff\xd8"); }},
      {"prefix_video", [](auto* r) { r->set_mode(::magi::v1::MODE_V2V); }},
      {"prefix_video", [](auto* r) { r->set_mode(::magi::v1::MODE_V2V); r->set_prefix_video("junk"); }},
  };
  for (const BadCase& c : cases) {
    auto r = Good();
    c.mutate(&r);
    auto v = ValidateGenerateRequest(r, catalog, kNow);
    ASSERT_FALSE(v.ok()) << c.field;
    EXPECT_TRUE(absl::IsInvalidArgument(v.status())) << v.status();
    EXPECT_EQ(v.status().message().substr(0, std::string(c.field).size() + 1), std::string(c.field) + ":")
        << v.status();
  }
}

TEST(RequestValidatorTest, PastDeadlineIsDeadlineExceeded) {
  ModelCatalog catalog;
  auto r = Good();
  r.set_deadline_unix_ms(kNow - 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(ValidateGenerateRequest(r, catalog, kNow).status()));
  r.set_deadline_unix_ms(kNow + 60000);
  EXPECT_TRUE(ValidateGenerateRequest(r, catalog, kNow).ok());
}

TEST(RequestValidatorTest, RegisteredModelsExtendTheCatalog) {
  ModelCatalog catalog;
  ModelInfo big = TinyModelInfo();
  big.set_name("big");
  big.set_frames_per_chunk(10);
  big.set_latent_frames_per_chunk(5);
  big.set_frames_multiple(2);
  catalog.Register("group#1", big);
  auto r = Good();
  r.set_model("big");
  r.set_num_frames(50);
  auto v = ValidateGenerateRequest(r, catalog, kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->chunks_total(), 5);
  r.set_model("other");
  auto bad = ValidateGenerateRequest(r, catalog, kNow);
  EXPECT_NE(bad.status().message().find("known models: big, tiny"), std::string::npos) << bad.status();
  // Limits are the most permissive over the groups serving a model; the built-in entry
  // returns when they leave.
  ModelInfo wide = big;
  wide.set_max_width(1024);
  big.set_max_width(64);
  catalog.Register("group#1", big);
  catalog.Register("group#2", wide);
  EXPECT_EQ(catalog.Find("big")->max_width(), 1024);
  catalog.Unregister("group#2");
  EXPECT_EQ(catalog.Find("big")->max_width(), 64);
  catalog.Unregister("group#1");
  EXPECT_FALSE(catalog.Find("big").has_value());
  ModelInfo tiny_small = TinyModelInfo();
  tiny_small.set_max_width(32);
  catalog.Register("group#3", tiny_small);
  EXPECT_EQ(catalog.Find("")->max_width(), 32);
  catalog.Unregister("group#3");
  EXPECT_EQ(catalog.Find("")->max_width(), TinyModelInfo().max_width());
}

}  // namespace
}  // namespace magi
