#include "worker/media/mp4_writer.h"

#include <gtest/gtest.h>

#include "tests/media/media_test_util.h"

namespace magi {
namespace {

using testing_media::DecodeWithCli;
using testing_media::MakeFrames;
using testing_media::MakeTempDir;
using testing_media::Probe;
using testing_media::Psnr;
using testing_media::ReadFile;
using testing_media::WriteFile;

TEST(Mp4WriterTest, EncodesH264WithRequestedFpsFrameCountAndDuration) {
  const std::vector<RgbFrame> frames = MakeFrames(64, 48, 48);
  absl::StatusOr<std::string> mp4 = EncodeMp4(frames);  // reference defaults, 24 fps
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const std::string path = MakeTempDir() + "/out.mp4";
  WriteFile(path, *mp4);
  int rc = -1;
  nlohmann::json probe = Probe(path, &rc);
  ASSERT_EQ(rc, 0);
  ASSERT_FALSE(probe.is_discarded());
  const auto& s = probe["streams"][0];
  EXPECT_EQ(s["codec_name"], "h264");
  EXPECT_EQ(s["pix_fmt"], "yuv420p");
  EXPECT_EQ(s["width"], 64);
  EXPECT_EQ(s["height"], 48);
  EXPECT_EQ(s["r_frame_rate"], "24/1");
  EXPECT_EQ(s["avg_frame_rate"], "24/1");
  EXPECT_EQ(s["nb_read_frames"], "48");
  EXPECT_NEAR(std::stod(s["duration"].get<std::string>()), 2.0, 1e-6);
  EXPECT_NEAR(std::stod(probe["format"]["duration"].get<std::string>()), 2.0, 1e-6);
  EXPECT_NE(probe["format"]["format_name"].get<std::string>().find("mp4"), std::string::npos);

  // Content survives: every frame decodes close to its source (smooth content, CRF 23).
  std::vector<RgbFrame> decoded = DecodeWithCli(path, 64, 48);
  ASSERT_EQ(decoded.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_GT(Psnr(decoded[i], frames[i]), 30.0) << "frame " << i;
  }
}

TEST(Mp4WriterTest, OtherFpsAndSingleFrame) {
  VideoEncodeOptions opt;
  opt.fps = 30;
  absl::StatusOr<std::string> mp4 = EncodeMp4(MakeFrames(32, 32, 10), opt);
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/a.mp4", *mp4);
  int rc = -1;
  nlohmann::json p = Probe(dir + "/a.mp4", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(p["streams"][0]["r_frame_rate"], "30/1");
  EXPECT_EQ(p["streams"][0]["nb_read_frames"], "10");
  EXPECT_NEAR(std::stod(p["format"]["duration"].get<std::string>()), 10.0 / 30, 1e-3);

  mp4 = EncodeMp4(MakeFrames(16, 16, 1));
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  WriteFile(dir + "/b.mp4", *mp4);
  p = Probe(dir + "/b.mp4", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(p["streams"][0]["nb_read_frames"], "1");
}

TEST(Mp4WriterTest, WritesFileAtomically) {
  const std::string path = MakeTempDir() + "/video.mp4";
  ASSERT_TRUE(WriteMp4File(path, MakeFrames(32, 16, 5)).ok());
  int rc = -1;
  nlohmann::json p = Probe(path, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(p["streams"][0]["nb_read_frames"], "5");
  EXPECT_TRUE(ReadFile(path + ".partial").empty());

  absl::Status st = WriteMp4File("/nonexistent_dir_magi/x.mp4", MakeFrames(16, 16, 1));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent_dir_magi/x.mp4"), std::string::npos) << st;
}

TEST(Mp4WriterTest, RejectsBadInputWithClearErrors) {
  auto expect_error = [](const absl::StatusOr<std::string>& r, const std::string& needle) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status();
  };
  expect_error(EncodeMp4({}), "no frames");
  expect_error(EncodeMp4(MakeFrames(15, 16, 2)), "15x16");
  expect_error(EncodeMp4(MakeFrames(0, 16, 1)), "0x16");
  std::vector<RgbFrame> mixed = MakeFrames(16, 16, 2);
  mixed.push_back(testing_media::MakeFrame(32, 16, 3));
  expect_error(EncodeMp4(mixed), "frame 2");
  std::vector<RgbFrame> short_buffer = MakeFrames(16, 16, 1);
  short_buffer[0].rgb24.resize(10);
  expect_error(EncodeMp4(short_buffer), "10 bytes");
  VideoEncodeOptions o;
  o.fps = 0;
  expect_error(EncodeMp4(MakeFrames(16, 16, 1), o), "fps");
  o = {};
  o.crf = 60;
  expect_error(EncodeMp4(MakeFrames(16, 16, 1), o), "crf");
  o = {};
  o.preset = "warp";
  expect_error(EncodeMp4(MakeFrames(16, 16, 1), o), "preset 'warp'");
  o = {};
  o.tune = "x";
  expect_error(EncodeMp4(MakeFrames(16, 16, 1), o), "tune 'x'");
}

}  // namespace
}  // namespace magi
