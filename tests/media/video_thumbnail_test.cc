#include "worker/media/video_thumbnail.h"

#include <algorithm>

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

RgbFrame Crop(const RgbFrame& f, int x0, int y0, int w, int h) {
  RgbFrame out(w, h);
  for (int y = 0; y < h; ++y) {
    std::copy_n(f.rgb24.begin() + (static_cast<size_t>(y0 + y) * f.width + x0) * 3, static_cast<size_t>(w) * 3,
                out.rgb24.begin() + static_cast<size_t>(y) * w * 3);
  }
  return out;
}

TEST(VideoSpritesheetTest, IsAGridOfEvenlySpacedFrames) {
  const std::vector<RgbFrame> frames = MakeFrames(64, 48, 24);
  const std::string dir = MakeTempDir();
  const std::string mp4 = dir + "/video.mp4";
  ASSERT_TRUE(WriteMp4File(mp4, frames).ok());

  SpritesheetOptions o;
  o.max_tiles = 6;
  o.columns = 4;  // 6 tiles: 4 + 2, the last row's two empty cells black
  absl::StatusOr<std::string> jpeg = VideoSpritesheetJpeg(mp4, o);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  const std::string jpg_path = dir + "/sheet.jpg";
  WriteFile(jpg_path, *jpeg);
  int rc = -1;
  nlohmann::json probe = Probe(jpg_path, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(probe["streams"][0]["codec_name"], "mjpeg");
  EXPECT_EQ(probe["streams"][0]["width"], 4 * 64);
  EXPECT_EQ(probe["streams"][0]["height"], 2 * 48);

  absl::StatusOr<RgbFrame> sheet = DecodeImage("sheet.jpg", *jpeg, 4 * 64, 2 * 48);
  ASSERT_TRUE(sheet.ok()) << sheet.status();
  for (int k = 0; k < 6; ++k) {
    const RgbFrame tile = Crop(*sheet, (k % 4) * 64, (k / 4) * 48, 64, 48);
    const int want = k * 24 / 6;  // frames 0, 4, 8, 12, 16, 20
    const int other = (want + 2) % 24;
    EXPECT_GT(Psnr(tile, frames[want]), 28.0) << "tile " << k;
    EXPECT_GT(Psnr(tile, frames[want]), Psnr(tile, frames[other]) + 3.0) << "tile " << k << " shows frame " << want;
  }
  const RgbFrame empty = Crop(*sheet, 3 * 64, 48, 64, 48);
  EXPECT_LT(*std::max_element(empty.rgb24.begin(), empty.rgb24.end()), 24) << "empty cell not black";

  // Tiles are scaled down to max_tile_width, keeping the aspect; all 16 default tiles of a
  // 24-frame video.
  o = SpritesheetOptions();
  o.max_tile_width = 32;
  jpeg = VideoSpritesheetJpeg(mp4, o);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  WriteFile(jpg_path, *jpeg);
  probe = Probe(jpg_path, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(probe["streams"][0]["width"], 4 * 32);
  EXPECT_EQ(probe["streams"][0]["height"], 4 * 24);

  o.columns = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(VideoSpritesheetJpeg(mp4, o).status()));
  EXPECT_TRUE(absl::IsNotFound(VideoSpritesheetJpeg(dir + "/absent.mp4").status()));
}

}  // namespace
}  // namespace magi
