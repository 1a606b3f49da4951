#include "api/video_object.h"

#include "api/api_error.h"
#include "api/byte_range.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace magi {
namespace {

::magi::v1::Job MakeJob(const std::string& id, ::magi::v1::JobState state, int done = 0, int total = 4) {
  ::magi::v1::Job j;
  j.set_job_id(id);
  j.set_state(state);
  j.set_chunks_done(done);
  j.set_chunks_total(total);
  j.set_created_unix_ms(1700000000123);
  j.set_finished_unix_ms(1700000009999);
  auto* r = j.mutable_request();
  r->set_model("tiny");
  r->set_num_frames(84);
  r->set_fps(24);
  r->set_width(64);
  r->set_height(48);
  r->add_prompts()->set_text("a fox");
  return j;
}

TEST(VideoObjectTest, Shape) {
  auto v = VideoObject(MakeJob("j1", ::magi::v1::JOB_STATE_RUNNING, 1, 4));
  EXPECT_EQ(v["id"], "j1");
  EXPECT_EQ(v["object"], "video");
  EXPECT_EQ(v["status"], "in_progress");
  EXPECT_EQ(v["progress"], 25);
  EXPECT_EQ(v["created_at"], 1700000000);
  EXPECT_TRUE(v["completed_at"].is_null());
  EXPECT_EQ(v["seconds"], "3.5");
  EXPECT_EQ(v["size"], "64x48");
  EXPECT_EQ(v["model"], "tiny");
  EXPECT_EQ(v["prompt"], "a fox");
  EXPECT_TRUE(v["error"].is_null());

  auto done = VideoObject(MakeJob("j2", ::magi::v1::JOB_STATE_SUCCEEDED, 4, 4));
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["progress"], 100);
  EXPECT_EQ(done["completed_at"], 1700000009);

  auto cancelled = VideoObject(MakeJob("j3", ::magi::v1::JOB_STATE_CANCELLED));
  EXPECT_EQ(cancelled["status"], "failed");
  EXPECT_EQ(cancelled["error"]["code"], "cancelled");
  EXPECT_EQ(VideoObject(MakeJob("j4", ::magi::v1::JOB_STATE_QUEUED))["status"], "queued");
  EXPECT_EQ(VideoObject(MakeJob("j5", ::magi::v1::JOB_STATE_FAILED))["error"]["code"], "generation_failed");
  EXPECT_EQ(VideoSecondsText(96, 24), "4");
}

TEST(VideoObjectTest, ListPages) {
  std::vector<::magi::v1::Job> jobs;  // newest first
  for (const char* id : {"e", "d", "c", "b", "a"}) jobs.push_back(MakeJob(id, ::magi::v1::JOB_STATE_QUEUED));
  auto page = VideoListPage(jobs, {"", 2, false});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["object"], "list");
  EXPECT_EQ((*page)["first_id"], "e");
  EXPECT_EQ((*page)["last_id"], "d");
  EXPECT_EQ((*page)["has_more"], true);
  page = VideoListPage(jobs, {"d", 2, false});
  EXPECT_EQ((*page)["first_id"], "c");
  page = VideoListPage(jobs, {"b", 20, false});
  EXPECT_EQ((*page)["data"].size(), 1u);
  EXPECT_EQ((*page)["has_more"], false);
  page = VideoListPage(jobs, {"", 3, true});
  EXPECT_EQ((*page)["first_id"], "a");
  EXPECT_EQ((*page)["last_id"], "c");
  auto bad = VideoListPage(jobs, {"zz", 2, false});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(ApiErrorFromStatus(bad.status()).param, "after");
}

TEST(VideoObjectTest, ListQuery) {
  auto q = ParseVideoListQuery({{"limit", "5"}, {"order", "asc"}, {"after", "x"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->limit, 5);
  EXPECT_TRUE(q->ascending);
  for (auto bad : std::vector<std::map<std::string, std::string>>{
           {{"limit", "0"}}, {{"limit", "101"}}, {{"limit", "1000000"}}, {{"limit", "x"}}, {{"order", "up"}}, {{"page", "2"}}}) {
    auto r = ParseVideoListQuery(bad);
    ASSERT_FALSE(r.ok());
    ApiError e = ApiErrorFromStatus(r.status());
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.param, bad.begin()->first) << e.message;
  }
}

TEST(ApiErrorTest, JsonAndStatusMapping) {
  auto j = nlohmann::json::parse(ApiErrorJson(ApiErrorFromStatus(absl::InvalidArgumentError("size: bad"))));
  EXPECT_EQ(j["error"]["message"], "size: bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "size");
  EXPECT_EQ(j["error"]["code"], "invalid_value");
  auto n = nlohmann::json::parse(ApiErrorJson(ApiErrorFromStatus(absl::NotFoundError("no"))));
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_EQ(ApiErrorFromStatus(absl::NotFoundError("x")).http_status, 404);
  EXPECT_EQ(ApiErrorFromStatus(absl::ResourceExhaustedError("x")).http_status, 429);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnavailableError("x")).http_status, 503);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnauthenticatedError("x")).http_status, 401);
  EXPECT_EQ(ApiErrorFromStatus(absl::InternalError("x")).http_status, 500);
  EXPECT_EQ(LeadingField("prompts[2].text: too long"), "prompts");
  EXPECT_EQ(LeadingField("no field here"), "");
}

TEST(ByteRangeTest, Ranges) {
  auto r = ParseByteRange("bytes=0-99", 1000);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->first, 0);
  EXPECT_EQ((*r)->last, 99);
  r = ParseByteRange("bytes=900-", 1000);
  EXPECT_EQ((*r)->length(), 100);
  r = ParseByteRange("bytes=-10", 1000);
  EXPECT_EQ((*r)->first, 990);
  r = ParseByteRange("bytes=500-5000", 1000);
  EXPECT_EQ((*r)->last, 999);
  EXPECT_FALSE(ParseByteRange("", 1000)->has_value());
  EXPECT_FALSE(ParseByteRange("bytes=0-1,5-6", 1000)->has_value());
  EXPECT_FALSE(ParseByteRange("items=0-1", 1000)->has_value());
  EXPECT_FALSE(ParseByteRange("bytes=5-1", 1000)->has_value());
  EXPECT_EQ(ParseByteRange("bytes=1000-", 1000).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseByteRange("bytes=-0", 1000).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace magi
