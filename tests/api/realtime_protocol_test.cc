#include "api/realtime_protocol.h"

#include "gtest/gtest.h"

namespace magi {
namespace {

using Type = RealtimeClientMessage::Type;

TEST(RealtimeProtocolTest, StartCarriesTheCreateFields) {
  auto m = ParseRealtimeClientMessage(
      R"({"type":"session.start","prompt":"a fox","seconds":"3","size":"64x64","seed":7,"fps":8})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type, Type::kStart);
  EXPECT_EQ(m->create.prompt, "a fox");
  EXPECT_EQ(m->create.width, 64);
  EXPECT_EQ(m->create.seed, 7);
  EXPECT_EQ(m->create.fps, 8);
}

TEST(RealtimeProtocolTest, StartIsJudgedLikeCreate) {
  auto no_prompt = ParseRealtimeClientMessage(R"({"type":"session.start","size":"64x64"})");
  ASSERT_FALSE(no_prompt.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(no_prompt.status()));
  EXPECT_NE(no_prompt.status().message().find("prompt"), std::string::npos) << no_prompt.status();
  auto bad_field = ParseRealtimeClientMessage(R"({"type":"session.start","prompt":"x","colour":1})");
  ASSERT_FALSE(bad_field.ok());
  EXPECT_NE(bad_field.status().message().find("colour"), std::string::npos) << bad_field.status();
}

TEST(RealtimeProtocolTest, ResumeNeedsAVideoIdAndANonNegativeChunk) {
  auto m = ParseRealtimeClientMessage(R"({"type":"session.resume","video_id":"job-1","from_chunk":2})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type, Type::kResume);
  EXPECT_EQ(m->video_id, "job-1");
  EXPECT_EQ(m->from_chunk, 2);
  EXPECT_FALSE(ParseRealtimeClientMessage(R"({"type":"session.resume"})").ok());
  EXPECT_FALSE(ParseRealtimeClientMessage(R"({"type":"session.resume","video_id":"a","from_chunk":-1})").ok());
  EXPECT_FALSE(ParseRealtimeClientMessage(R"({"type":"session.resume","video_id":"a","x":1})").ok());
}

TEST(RealtimeProtocolTest, ControlTypesAndGarbage) {
  auto update = ParseRealtimeClientMessage(R"({"type":"prompt.update","prompt":"b"})");
  ASSERT_TRUE(update.ok());
  EXPECT_EQ(update->type, Type::kPromptUpdate);
  EXPECT_EQ(update->prompt, "b");
  for (const char* bad : {R"({"type":"prompt.update"})", R"({"type":"prompt.update","prompt":""})",
                          R"({"type":"prompt.update","prompt":3})", R"({"type":"prompt.update","prompt":"a","x":1})"}) {
    auto m = ParseRealtimeClientMessage(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << bad;
  }
  EXPECT_NE(std::string(ParseRealtimeClientMessage(R"({"type":"prompt.update"})").status().message()).find("prompt"),
            std::string::npos);
  EXPECT_EQ(ParseRealtimeClientMessage(R"({"type":"session.stop"})")->type, Type::kStop);
  for (const char* bad : {"", "not json", "[1,2]", R"({"prompt":"x"})", R"({"type":7})", R"({"type":"session.fly"})"}) {
    auto m = ParseRealtimeClientMessage(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << bad;
  }
  auto unknown = ParseRealtimeClientMessage(R"({"type":"session.fly"})");
  EXPECT_NE(unknown.status().message().find("session.start"), std::string::npos);
}

TEST(RealtimeProtocolTest, ServerMessages) {
  ::magi::v1::VideoChunk c;
  c.set_index(3);
  c.set_frame_begin(72);
  c.set_frame_end(96);
  c.set_chunks_total(5);
  c.set_fragment(std::string(1234, 'f'));
  auto chunk = RealtimeChunkMessage(c);
  EXPECT_EQ(chunk["type"], "chunk");
  EXPECT_EQ(chunk["index"], 3);
  EXPECT_EQ(chunk["frame_end"], 96);
  EXPECT_EQ(chunk["bytes"], 1234);
  EXPECT_EQ(RealtimeInitSegmentMessage(99)["bytes"], 99);
  auto updated = RealtimePromptUpdatedMessage(2, "a wolf");
  EXPECT_EQ(updated["type"], "prompt.updated");
  EXPECT_EQ(updated["from_chunk"], 2);
  EXPECT_EQ(updated["prompt"], "a wolf");
  ApiError e{400, "invalid_request_error", "no_session", "prompt", "no"};
  auto err = RealtimeErrorMessage(e, false);
  EXPECT_EQ(err["type"], "error");
  EXPECT_EQ(err["fatal"], false);
  EXPECT_EQ(err["error"]["code"], "no_session");
  EXPECT_EQ(err["error"]["param"], "prompt");
}

}  // namespace
}  // namespace magi
