#include "api/video_request.h"

#include <string>

#include "gtest/gtest.h"
#include "jobspec/job_spec.h"
#include "tests/test_model_info.h"

namespace magi {
namespace {

// A model declared like the built-in "tiny" one (server/model_catalog.cc).
::magi::internal::v1::ModelInfo Tiny() { return testing_models::TinyLikeModelInfo("tiny"); }

absl::StatusOr<VideoCreateParams> Json(const std::string& body) {
  return ParseVideoCreate("application/json", body);
}

// The API error a JSON create body gets: from parsing, or from the JobSpec for Tiny().
ApiError ErrorFor(const std::string& body) {
  auto params = Json(body);
  if (!params.ok()) return ApiErrorFromStatus(params.status());
  const auto model = Tiny();
  ::magi::v1::GenerateRequest request = ToGenerateRequest(*params, &model);
  auto spec = BuildJobSpec(request, model);
  if (spec.ok()) return ApiError{200, "", "", "", "accepted"};
  return SubmitErrorToApi(spec.status(), *params, request, &model);
}

TEST(VideoRequestTest, JsonMapsOntoGenerateRequest) {
  auto p = Json(R"({"prompt": "a fox", "model": "tiny", "seconds": "4", "size": "64x48", "seed": 7,
                   "steps": 8, "priority": 3, "chunk_prompts": ["it jumps", {"from_chunk": 3, "text": "it sleeps"}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  const auto model = Tiny();
  auto r = ToGenerateRequest(*p, &model);
  EXPECT_EQ(r.model(), "tiny");
  EXPECT_EQ(r.mode(), ::magi::v1::MODE_T2V);
  EXPECT_EQ(r.num_frames(), 96);  // 4 s at the model's 24 fps
  EXPECT_EQ(r.fps(), 0);          // left to the model's default
  EXPECT_EQ(r.width(), 64);
  EXPECT_EQ(r.height(), 48);
  EXPECT_EQ(r.seed(), 7);
  EXPECT_EQ(r.num_steps(), 8);
  EXPECT_EQ(r.priority(), 3);
  ASSERT_EQ(r.prompts_size(), 3);
  EXPECT_EQ(r.prompts(0).from_chunk(), 0);
  EXPECT_EQ(r.prompts(0).text(), "a fox");
  EXPECT_EQ(r.prompts(1).from_chunk(), 1);
  EXPECT_EQ(r.prompts(1).text(), "it jumps");
  EXPECT_EQ(r.prompts(2).from_chunk(), 3);
  EXPECT_TRUE(BuildJobSpec(r, model).ok());
}

TEST(VideoRequestTest, ExplicitFpsAndNumericSeconds) {
  auto p = Json(R"({"prompt": "x", "seconds": 3, "fps": 8})");
  ASSERT_TRUE(p.ok()) << p.status();
  auto r = ToGenerateRequest(*p, nullptr);
  EXPECT_EQ(r.num_frames(), 24);
  EXPECT_EQ(r.fps(), 8);
}

TEST(VideoRequestTest, MultipartAsTheSdkSendsIt) {
  const std::string body =
      "--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nfox\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n3\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"fps\"\r\n\r\n8\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"chunk_prompts[]\"\r\n\r\nthen a hare\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"a.png\"\r\n"
      "Content-Type: image/png\r\n\r\nPNGBYTES\r\n--B--\r\n";
  auto p = ParseVideoCreate("multipart/form-data; boundary=B", body);
  ASSERT_TRUE(p.ok()) << p.status();
  auto r = ToGenerateRequest(*p, nullptr);
  EXPECT_EQ(r.mode(), ::magi::v1::MODE_I2V);
  EXPECT_EQ(r.image(), "PNGBYTES");
  EXPECT_EQ(r.num_frames(), 24);
  ASSERT_EQ(r.prompts_size(), 2);
  EXPECT_EQ(r.prompts(1).from_chunk(), 1);
  EXPECT_EQ(r.prompts(1).text(), "then a hare");
}

TEST(VideoRequestTest, DataUrlInputReference) {
  auto p = Json(R"({"prompt": "x", "input_reference": {"image_url": "data:image/png;base64,aGVsbG8="}})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->input_reference, "hello");
}

TEST(VideoRequestTest, FormErrorsNameTheField) {
  struct Case {
    std::string body, param, message;
  } cases[] = {
      {R"({"model": "tiny"})", "prompt", "prompt: is required"},
      {R"({"prompt": 5})", "prompt", "must be a string, got number"},
      {R"({"prompt": "x", "seconds": "four"})", "seconds", "'four' is not a number of seconds"},
      {R"({"prompt": "x", "seconds": "-4"})", "seconds", "must be > 0"},
      {R"({"prompt": "x", "size": "1280*720"})", "size", "is not WIDTHxHEIGHT"},
      {R"({"prompt": "x", "seed": "abc"})", "seed", "'abc' is not an integer"},
      {R"({"prompt": "x", "steps": 1.5})", "steps", "must be an integer"},
      {R"({"prompt": "x", "fps": 99999999999})", "fps", "does not fit a 32-bit integer"},
      {R"({"prompt": "x", "quality": "hd"})", "quality", "unknown parameter; allowed: prompt, model"},
      {R"({"prompt": "x", "chunk_prompts": "a"})", "chunk_prompts", "must be an array"},
      {R"({"prompt": "x", "chunk_prompts": [{"text": "a"}]})", "chunk_prompts", "needs from_chunk"},
      {R"({"prompt": "x", "input_reference": {"image_url": "https://example.com/a.png"}})", "input_reference",
       "only data: URLs"},
      {R"({"prompt": "x", "input_reference": {"file_id": "file_1"}})", "input_reference", "not supported"},
      {R"(["prompt"])", "body", "must be a JSON object"},
      {R"({"prompt": )", "body", "is not valid JSON"},
  };
  for (const Case& c : cases) {
    ApiError e = ErrorFor(c.body);
    EXPECT_EQ(e.http_status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << " -> " << e.message;
    EXPECT_NE(e.message.find(c.message), std::string::npos) << c.body << " -> " << e.message;
  }
}

TEST(VideoRequestTest, ModelRefusalsComeBackAsApiFields) {
  // The JobSpec owns these rules; the API only renames the field it names.
  struct Case {
    std::string body, param, message;
  } cases[] = {
      {R"({"prompt": "x", "seconds": "0.1"})", "seconds", "'0.1' at 24 fps is 2 frames; num_frames: 2"},
      {R"({"prompt": "x", "seconds": "1000"})", "seconds", "num_frames: 24000"},
      {R"({"prompt": "x", "size": "100x64"})", "size", "'100x64'; width: 100"},
      {R"({"prompt": "x", "size": "64x4096"})", "size", "height: 4096"},
      {R"({"prompt": "x", "steps": 6})", "steps", "num_steps: 6"},
      {R"({"prompt": "x", "fps": 1000})", "fps", "fps: 1000"},
      {R"({"prompt": "x", "chunk_prompts": [{"from_chunk": 0, "text": "y"}]})", "chunk_prompts[0]", "prompts[1]"},
  };
  for (const Case& c : cases) {
    ApiError e = ErrorFor(c.body);
    EXPECT_EQ(e.http_status, 400) << c.body << " -> " << e.message;
    EXPECT_EQ(e.param, c.param) << c.body << " -> " << e.message;
    EXPECT_NE(e.message.find(c.message), std::string::npos) << c.body << " -> " << e.message;
    EXPECT_EQ(e.message.rfind(c.param + ": ", 0), 0u) << e.message;  // starts with the API field
  }
  EXPECT_EQ(ErrorFor(R"({"prompt": "x", "seconds": "4", "size": "64x64"})").http_status, 200);
}

TEST(VideoRequestTest, ContentTypes) {
  auto p = ParseVideoCreate("text/plain", "prompt=x");
  ASSERT_FALSE(p.ok());
  ApiError e = ApiErrorFromStatus(p.status());
  EXPECT_EQ(e.param, "Content-Type");
  EXPECT_NE(e.message.find("allowed multipart/form-data or application/json"), std::string::npos);
  EXPECT_TRUE(ParseVideoCreate("application/json; charset=utf-8", R"({"prompt":"x"})").ok());
}

TEST(VideoRequestTest, Remix) {
  auto r = ParseVideoRemix("application/json", R"({"prompt": "now at night"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, "now at night");
  EXPECT_FALSE(ParseVideoRemix("application/json", R"({"seconds": "4", "prompt": "x"})").ok());
  EXPECT_FALSE(ParseVideoRemix("application/json", R"({})").ok());
}

TEST(VideoRequestTest, ExtensionByIdOrUpload) {
  // As the SDK sends videos.extend({video: {id}, ...}): multipart with video[id].
  const std::string by_id =
      "--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nit goes on\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n3\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"video[id]\"\r\n\r\nj-1\r\n--B--\r\n";
  auto e = ParseVideoExtend("multipart/form-data; boundary=B", by_id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->video_id, "j-1");
  EXPECT_TRUE(e->params.prefix_video.empty());
  EXPECT_EQ(e->params.prompt, "it goes on");
  // An uploaded file: the continuation is a v2v request carrying the bytes.
  const std::string upload =
      "--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nmore\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.mp4\"\r\n"
      "Content-Type: video/mp4\r\n\r\nMP4BYTES\r\n--B--\r\n";
  e = ParseVideoExtend("multipart/form-data; boundary=B", upload);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->video_id.empty());
  auto r = ToGenerateRequest(e->params, nullptr);
  EXPECT_EQ(r.mode(), ::magi::v1::MODE_V2V);
  EXPECT_EQ(r.prefix_video(), "MP4BYTES");
  EXPECT_TRUE(r.image().empty());
  // JSON: {"video": {"id": ...}}.
  e = ParseVideoExtend("application/json", R"({"prompt": "x", "video": {"id": "j-2"}, "seconds": 4})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->video_id, "j-2");

  struct Case {
    std::string content_type, body, param, message;
  } cases[] = {
      {"application/json", R"({"prompt": "x"})", "video", "video: is required"},
      {"application/json", R"({"prompt": "x", "video": "j-1"})", "video", "must be {\"id\""},
      {"application/json", R"({"prompt": "x", "video": {"id": ""}})", "video", "video.id: is empty"},
      {"application/json", R"({"video": {"id": "j-1"}})", "prompt", "is required"},
      {"application/json", R"({"prompt": "x", "video": {"id": "j-1"}, "input_reference": "data:,"})",
       "input_reference", "unknown parameter; allowed: prompt, video"},
      {"multipart/form-data; boundary=B",
       "--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n"
       "--B\r\nContent-Disposition: form-data; name=\"video\"\r\n\r\nj-1\r\n--B--\r\n",
       "video", "must be an uploaded file"},
      {"multipart/form-data; boundary=B",
       "--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n"
       "--B\r\nContent-Disposition: form-data; name=\"video[id]\"\r\n\r\nj-1\r\n"
       "--B\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.mp4\"\r\n\r\nX\r\n--B--\r\n",
       "video", "not both"},
  };
  for (const Case& c : cases) {
    auto got = ParseVideoExtend(c.content_type, c.body);
    ASSERT_FALSE(got.ok()) << c.body;
    ApiError err = ApiErrorFromStatus(got.status());
    EXPECT_EQ(err.param, c.param) << c.body << " -> " << err.message;
    EXPECT_NE(err.message.find(c.message), std::string::npos) << c.body << " -> " << err.message;
  }
  // A refusal of the prefix video by the JobSpec names the API's field, video.
  VideoCreateParams v2v;
  v2v.prompt = "x";
  v2v.prefix_video = "MP4";
  const auto model = Tiny();
  ::magi::v1::GenerateRequest req = ToGenerateRequest(v2v, &model);
  ApiError refused = SubmitErrorToApi(absl::InvalidArgumentError("prefix_video: too short"), v2v, req, &model);
  EXPECT_EQ(refused.param, "video");
  EXPECT_EQ(refused.message.rfind("video: ", 0), 0u) << refused.message;
}

TEST(VideoRequestTest, QueryString) {
  auto q = ParseQueryString("after=job%2D1&limit=5&x=a+b");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->at("after"), "job-1");
  EXPECT_EQ(q->at("x"), "a b");
  EXPECT_FALSE(ParseQueryString("a=%zz").ok());
  EXPECT_FALSE(ParseQueryString("a=%4").ok());
  EXPECT_FALSE(ParseQueryString("a=1&a=2").ok());
}

}  // namespace
}  // namespace magi
