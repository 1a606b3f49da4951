#include "worker/model/config.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/golden_required.h"
#include <nlohmann/json.hpp>

namespace magi {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ShippedConfig(const std::string& name) {
  return ReadFile(std::string(MAGI_SOURCE_DIR) + "/configs/" + name);
}

TEST(ConfigTest, ParsesEveryShippedReleaseConfig) {
  for (const char* name : {"magi_4.5B_base.json", "magi_4.5B_distill.json", "magi_4.5B_distill_quant.json",
                           "magi_24B_base.json", "magi_24B_distill.json", "magi_24B_distill_quant.json"}) {
    auto c = ParseMagiConfig(ShippedConfig(name), name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->model.params_dtype, ParamsDtype::kBFloat16);
  }
  auto c45 = ParseMagiConfig(ShippedConfig("magi_4.5B_base.json"), "4.5B");
  EXPECT_FALSE(c45->model.gated_linear_unit);  // 4.5B is the GELU model
  EXPECT_EQ(c45->model.cond_dim(), 768);
  auto c24 = ParseMagiConfig(ShippedConfig("magi_24B_distill_quant.json"), "24B");
  EXPECT_TRUE(c24->model.gated_linear_unit);
  EXPECT_TRUE(c24->engine.fp8_quant);
  EXPECT_TRUE(c24->engine.distill);
  EXPECT_EQ(c24->runtime.num_steps, 16);
}

// The writer reproduces every field of a shipped config with its value (the parser is strict,
// so every field of these files is one it reads): a field the writer drops, renames or
// mangles fails here; re-parsing the output gives the same output again.
TEST(ConfigTest, RoundTripsThroughJson) {
  for (const char* name : {"magi_4.5B_base.json", "magi_4.5B_distill.json", "magi_4.5B_distill_quant.json",
                           "magi_24B_base.json", "magi_24B_distill.json", "magi_24B_distill_quant.json"}) {
    const nlohmann::json original = nlohmann::json::parse(ShippedConfig(name));
    auto c = ParseMagiConfig(original.dump(), name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    const std::string text = MagiConfigToJson(*c);
    const nlohmann::json written = nlohmann::json::parse(text);
    int fields = 0;
    for (const auto& [section, body] : original.items()) {
      ASSERT_TRUE(written.contains(section)) << name << ": section " << section << " not written";
      if (!body.is_object()) {
        EXPECT_EQ(written[section], body) << name << ": " << section;
        continue;
      }
      for (const auto& [key, value] : body.items()) {
        ++fields;
        ASSERT_TRUE(written[section].contains(key)) << name << ": " << section << "." << key << " not written";
        const nlohmann::json& got = written[section][key];
        if (value.is_number() && got.is_number()) {
          EXPECT_DOUBLE_EQ(got.get<double>(), value.get<double>()) << name << ": " << section << "." << key;
        } else {
          EXPECT_EQ(got, value) << name << ": " << section << "." << key;
        }
      }
    }
    EXPECT_GT(fields, 40) << name;
    auto again = ParseMagiConfig(text, "roundtrip");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(MagiConfigToJson(*again), text) << name;
  }
}

// Applies `edit` to the 4.5B base config and expects an error mentioning `field`.
void ExpectError(const std::function<void(nlohmann::json&)>& edit, const std::string& field) {
  nlohmann::json j = nlohmann::json::parse(ShippedConfig("magi_4.5B_base.json"));
  edit(j);
  auto c = ParseMagiConfig(j.dump(), "edited.json");
  ASSERT_FALSE(c.ok()) << "expected an error about " << field;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(c.status().message()).find(field), std::string::npos) << c.status();
  EXPECT_NE(std::string(c.status().message()).find("edited.json"), std::string::npos) << c.status();
}

TEST(ConfigTest, NamesTheFieldOfEveryError) {
  ExpectError([](auto& j) { j["model_config"].erase("hidden_size"); }, "missing field model_config.hidden_size");
  ExpectError([](auto& j) { j["runtime_config"]["colour"] = 1; }, "unknown field runtime_config.colour");
  ExpectError([](auto& j) { j["model_config"]["num_layers"] = "34"; }, "model_config.num_layers");
  ExpectError([](auto& j) { j["model_config"]["num_layers"] = 0; }, "must be in [1, 1024]");
  // Found by the config fuzzer: an integral float beyond int64 (4e96) was converted before the
  // range check (undefined behaviour); a huge unsigned wrapped. Both are range errors now.
  ExpectError([](auto& j) { j["model_config"]["num_layers"] = 4e96; }, "must be in [1, 1024], got 4e+96");
  ExpectError([](auto& j) { j["model_config"]["num_layers"] = 18446744073709551615ull; },
              "must be in [1, 1024], got 18446744073709551615");
  ExpectError([](auto& j) { j["model_config"]["params_dtype"] = "torch.float16"; }, "params_dtype");
  ExpectError([](auto& j) { j["model_config"]["num_query_groups"] = 7; }, "divisible by num_query_groups");
  ExpectError([](auto& j) { j["model_config"]["kv_channels"] = 64; }, "kv_channels");
  ExpectError([](auto& j) { j["runtime_config"]["cfg_number"] = 2; }, "cfg_number");
  ExpectError([](auto& j) { j["runtime_config"]["num_steps"] = 30; }, "window_size");
  ExpectError([](auto& j) { j["runtime_config"]["text_scales"] = {7.5}; }, "equal lengths");
  ExpectError([](auto& j) { j["runtime_config"]["video_size_h"] = 100; }, "video_size_h");
  ExpectError([](auto& j) { j["engine_config"]["shortcut_mode"] = "4,4"; }, "engine_config.shortcut_mode");
  ExpectError([](auto& j) { j.erase("engine_config"); }, "engine_config");
  ExpectError([](auto& j) { j["extra"] = {}; }, "unknown top-level field extra");
  EXPECT_FALSE(ParseMagiConfig("{", "broken.json").ok());
  EXPECT_EQ(LoadMagiConfig("/nonexistent/config.json").status().code(), absl::StatusCode::kNotFound);
}

TEST(ConfigTest, ServingConfigDefaultsToTheRunScriptsAndIsStrict) {
  // Released configs have no serving_config: PAD_HQ and PAD_DURATION on, as the run scripts.
  auto released = ParseMagiConfig(ShippedConfig("magi_4.5B_base.json"), "4.5B");
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->serving.special_tokens.EnabledNames(), (std::vector<std::string>{"PAD_HQ", "PAD_DURATION"}));
  EXPECT_EQ(released->serving.prev_chunks_scale, 0.7);
  // Each key is optional; the others keep their defaults.
  nlohmann::json j = nlohmann::json::parse(ShippedConfig("magi_4.5B_base.json"));
  j["serving_config"] = {{"pad_duration", false}, {"neg_prompt", true}, {"prev_chunks_scale", 0.5}};
  auto c = ParseMagiConfig(j.dump(), "serving.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->serving.special_tokens.EnabledNames(), (std::vector<std::string>{"PAD_HQ", "NEG_PROMPT"}));
  EXPECT_EQ(c->serving.prev_chunks_scale, 0.5);
  // Round trip keeps it.
  auto again = ParseMagiConfig(MagiConfigToJson(*c), "roundtrip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->serving.special_tokens, c->serving.special_tokens);
  EXPECT_EQ(again->serving.prev_chunks_scale, 0.5);
  EXPECT_EQ(again->serving.name, "");  // not written when unset
  // serving_config.name: the served model name, round-tripped, validated.
  j["serving_config"] = {{"name", "magi-1-24b_v1.0"}};
  auto named = ParseMagiConfig(j.dump(), "named.json");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->serving.name, "magi-1-24b_v1.0");
  auto named_again = ParseMagiConfig(MagiConfigToJson(*named), "roundtrip");
  ASSERT_TRUE(named_again.ok()) << named_again.status();
  EXPECT_EQ(named_again->serving.name, "magi-1-24b_v1.0");
  ExpectError([](auto& j) { j["serving_config"] = {{"name", "a b"}}; }, "serving_config.name: model name 'a b' is invalid");
  ExpectError([](auto& j) { j["serving_config"] = {{"name", ""}}; }, "allowed: 1-64 characters of [A-Za-z0-9._-]");
  ExpectError([](auto& j) { j["serving_config"] = {{"name", std::string(65, 'x')}}; }, "serving_config.name");
  ExpectError([](auto& j) { j["serving_config"] = {{"name", 7}}; }, "serving_config.name must be a string");
  EXPECT_TRUE(CheckModelName("4.5b-distill", "x").ok());
  EXPECT_NE(CheckModelName("a/b", "--model_name").message().find("--model_name"), std::string::npos);
  // Strict: unknown keys (listing the allowed ones), wrong types, ranges.
  ExpectError([](auto& j) { j["serving_config"] = {{"pad_hd", true}}; }, "unknown field serving_config.pad_hd");
  ExpectError([](auto& j) { j["serving_config"] = {{"pad_hd", true}}; }, "allowed: pad_static, pad_dynamic");
  ExpectError([](auto& j) { j["serving_config"] = {{"pad_hq", "1"}}; }, "serving_config.pad_hq must be true or false");
  ExpectError([](auto& j) { j["serving_config"] = {{"prev_chunks_scale", 2}}; }, "serving_config.prev_chunks_scale");
  ExpectError([](auto& j) { j["serving_config"] = true; }, "serving_config must be an object");
}

TEST(ConfigTest, AcceptsTheGoldenConfig) {
  auto j = nlohmann::json::parse(ReadFile(std::string(MAGI_GOLDEN_DIR) + "/golden.json"), nullptr, false);
  if (j.is_discarded()) MAGI_SKIP_WITHOUT_GOLDEN("no golden folder at " << MAGI_GOLDEN_DIR);
  auto c = ParseMagiConfig(j["config"].dump(), "golden.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.params_dtype, ParamsDtype::kFloat32);
  EXPECT_TRUE(c->model.half_channel_vae);
}

}  // namespace
}  // namespace magi
