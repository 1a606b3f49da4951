#include "worker/media/image_decoder.h"

#include <gtest/gtest.h>

#include "tests/media/media_test_util.h"
#include "worker/media/media_file.h"

namespace magi {
namespace {

using testing_media::MakeTempDir;
using testing_media::ReadFile;
using testing_media::RunCommand;

// The reference's i2v preprocessing command (pipeline spec §1.2), run on the same FFmpeg.
std::string ReferenceImageRgb(const std::string& path, int w, int h) {
  return RunCommand("ffmpeg -v error -nostdin -f image2pipe -i pipe:0 -filter_complex "
                    "\"[0]scale=" + std::to_string(w) + ":" + std::to_string(h) +
                    "[s0]\" -map \"[s0]\" -f rawvideo -pix_fmt rgb24 -vframes 1 pipe: < '" +
                    path + "' 2>/dev/null");
}

// Writes a test picture with the ffmpeg CLI; `extra` selects codec / pixel format.
std::string MakeImage(const std::string& dir, const std::string& file, const std::string& size,
                      const std::string& extra) {
  const std::string path = dir + "/" + file;
  int rc = -1;
  RunCommand("ffmpeg -v error -nostdin -y -f lavfi -i testsrc2=size=" + size +
                 " -frames:v 1 " + extra + " '" + path + "' 2>&1",
             &rc);
  EXPECT_EQ(rc, 0) << "could not generate " << path;
  return path;
}

struct Case {
  const char* file;
  const char* extra;
};

TEST(ImageDecoderTest, MatchesReferenceFfmpegCommandBitExactly) {
  const std::string dir = MakeTempDir();
  const Case cases[] = {
      {"a.jpg", ""},                        // yuvj420p, full range
      {"b.jpg", "-pix_fmt yuvj444p"},       // no chroma subsampling
      {"c.png", ""},                        // rgb24
      {"d.png", "-pix_fmt rgba"},           // alpha is dropped, as by ffmpeg
      {"e.png", "-pix_fmt gray16be"},       // 16-bit grey
      {"f.webp", "-c:v libwebp"},           // lossy WebP (yuv420p)
      {"g.webp", "-c:v libwebp -lossless 1"},
  };
  // Down- and up-scaling, aspect change (a stretch, no crop), odd sizes.
  const std::pair<int, int> sizes[] = {{64, 48}, {160, 96}, {33, 77}};
  for (const Case& c : cases) {
    const std::string path = MakeImage(dir, c.file, "97x61", c.extra);
    absl::StatusOr<std::string> bytes = ReadMediaFile(path);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    for (auto [w, h] : sizes) {
      absl::StatusOr<RgbFrame> img = DecodeImage(c.file, *bytes, w, h);
      ASSERT_TRUE(img.ok()) << c.file << ": " << img.status();
      EXPECT_EQ(img->width, w);
      EXPECT_EQ(img->height, h);
      const std::string ref = ReferenceImageRgb(path, w, h);
      ASSERT_EQ(ref.size(), static_cast<size_t>(w) * h * 3) << c.file;
      EXPECT_TRUE(testing_media::SameBytes(ref, img->rgb24))
          << c.file << " " << w << "x" << h << " differs from the reference ffmpeg command";
    }
  }
}

TEST(ImageDecoderTest, KeepsSizeWhenAlreadyRight) {
  const std::string dir = MakeTempDir();
  const std::string path = MakeImage(dir, "p.png", "40x30", "");
  absl::StatusOr<RgbFrame> img = DecodeImage("p.png", ReadFile(path), 40, 30);
  ASSERT_TRUE(img.ok()) << img.status();
  // Lossless PNG at the same size: the exact source pixels come back.
  const std::string raw = RunCommand("ffmpeg -v error -nostdin -i '" + path +
                                     "' -f rawvideo -pix_fmt rgb24 pipe: 2>/dev/null");
  ASSERT_EQ(raw.size(), img->rgb24.size());
  EXPECT_TRUE(testing_media::SameBytes(raw, img->rgb24));
}

}  // namespace
}  // namespace magi
