#include "worker/media/video_thumbnail.h"

#include <gtest/gtest.h>

#include "tests/media/media_test_util.h"
#include "worker/media/image_decoder.h"
#include "worker/media/mp4_writer.h"

namespace magi {
namespace {

using testing_media::MakeFrames;
using testing_media::MakeTempDir;
using testing_media::Probe;
using testing_media::Psnr;
using testing_media::WriteFile;

TEST(VideoThumbnailTest, IsAJpegOfTheFirstFrameAtTheVideoSize) {
  const std::vector<RgbFrame> frames = MakeFrames(64, 48, 24);
  const std::string dir = MakeTempDir();
  const std::string mp4 = dir + "/video.mp4";
  ASSERT_TRUE(WriteMp4File(mp4, frames).ok());

  absl::StatusOr<std::string> jpeg = VideoThumbnailJpeg(mp4);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  ASSERT_GT(jpeg->size(), 4u);
  EXPECT_EQ(static_cast<unsigned char>((*jpeg)[0]), 0xFF);  // SOI
  EXPECT_EQ(static_cast<unsigned char>((*jpeg)[1]), 0xD8);

  // ffprobe (an independent reader) sees one mjpeg picture of the video's size.
  const std::string jpg_path = dir + "/thumb.jpg";
  WriteFile(jpg_path, *jpeg);
  int rc = -1;
  nlohmann::json probe = Probe(jpg_path, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(probe["streams"][0]["codec_name"], "mjpeg");
  EXPECT_EQ(probe["streams"][0]["width"], 64);
  EXPECT_EQ(probe["streams"][0]["height"], 48);

  // It shows the first frame, not a later one (frames differ in blue by 9 per index).
  absl::StatusOr<RgbFrame> decoded = DecodeImage("thumb.jpg", *jpeg, 64, 48);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const double first = Psnr(*decoded, frames[0]);
  EXPECT_GT(first, 30.0);
  EXPECT_GT(first, Psnr(*decoded, frames[10]) + 5.0);
}

TEST(VideoThumbnailTest, MissingFileIsNotFound) {
  auto jpeg = VideoThumbnailJpeg(MakeTempDir() + "/absent.mp4");
  EXPECT_TRUE(absl::IsNotFound(jpeg.status())) << jpeg.status();
}

TEST(VideoThumbnailTest, NonVideoIsInvalidArgumentNamingThePath) {
  const std::string path = MakeTempDir() + "/not_a_video.mp4";
  WriteFile(path, std::string(4096, 'x'));
  auto jpeg = VideoThumbnailJpeg(path);
  ASSERT_FALSE(jpeg.ok());
  EXPECT_NE(jpeg.status().message().find(path), std::string::npos) << jpeg.status();
  auto bad_quality = VideoThumbnailJpeg(path, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(bad_quality.status()));
}

}  // namespace
}  // namespace magi
