#include "worker/media/prefix_video_decoder.h"

#include <gtest/gtest.h>

#include "tests/media/media_test_util.h"

namespace magi {
namespace {

using testing_media::MakeTempDir;
using testing_media::ReadFile;
using testing_media::RunCommand;

// The reference's v2v preprocessing command (pipeline spec §1.3); `demuxer` is "mp4" as in
// the reference, or empty to let ffmpeg detect (WebM, which the reference cannot read).
std::vector<std::string> ReferenceFrames(const std::string& path, int w, int h, int fps,
                                         const std::string& demuxer = "mp4") {
  const std::string raw = RunCommand(
      "ffmpeg -v error " + (demuxer.empty() ? std::string() : "-f " + demuxer) + " -ss 0 -i '" +
      path + "' -filter_complex \"[0]fps=fps=" + std::to_string(fps) + "[s0];[s0]scale=" +
      std::to_string(w) + ":" + std::to_string(h) +
      "[s1]\" -map \"[s1]\" -f rawvideo -nostdin -pix_fmt rgb24 pipe: 2>/dev/null");
  std::vector<std::string> frames;
  const size_t n = static_cast<size_t>(w) * h * 3;
  for (size_t off = 0; off + n <= raw.size(); off += n) frames.push_back(raw.substr(off, n));
  return frames;
}

std::string MakeVideo(const std::string& path, const std::string& src, const std::string& enc) {
  int rc = -1;
  RunCommand("ffmpeg -v error -nostdin -y -f lavfi -i " + src + " " + enc + " '" + path +
                 "' 2>&1",
             &rc);
  EXPECT_EQ(rc, 0) << "could not generate " << path;
  return path;
}

// Our frames equal the first min(32, N) frames of the reference command.
void ExpectMatchesReference(const std::string& path, int w, int h, int fps,
                            const std::string& demuxer = "mp4",
                            int max_frames = kPrefixVideoFrames) {
  absl::StatusOr<std::vector<RgbFrame>> ours =
      DecodePrefixVideo(path, ReadFile(path), w, h, fps, max_frames);
  ASSERT_TRUE(ours.ok()) << ours.status();
  std::vector<std::string> ref = ReferenceFrames(path, w, h, fps, demuxer);
  ASSERT_FALSE(ref.empty());
  const size_t expect = std::min(ref.size(), static_cast<size_t>(max_frames));
  ASSERT_EQ(ours->size(), expect) << path << ": reference gives " << ref.size() << " frames";
  for (size_t i = 0; i < expect; ++i) {
    const RgbFrame& f = (*ours)[i];
    ASSERT_EQ(f.width, w);
    ASSERT_EQ(f.height, h);
    EXPECT_TRUE(testing_media::SameBytes(ref[i], f.rgb24))
        << path << " frame " << i << " differs from the reference ffmpeg command";
  }
}

class PrefixVideoDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  std::string dir_;
};

TEST_F(PrefixVideoDecoderTest, H264Mp4Downsampled30To24FpsTakesFirst32Frames) {
  // 2 s at 30 fps with B-frames (x264 defaults): 48 frames at 24 fps, the first 32 kept.
  const std::string p = MakeVideo(dir_ + "/a.mp4", "testsrc2=size=96x64:rate=30", "-t 2 -c:v libx264");
  ExpectMatchesReference(p, 64, 48, 24);
  absl::StatusOr<std::vector<RgbFrame>> f = DecodePrefixVideo("a.mp4", ReadFile(p), 64, 48, 24);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->size(), 32u);
}

TEST_F(PrefixVideoDecoderTest, ShortClipsGiveFewerFramesExactlyAsReference) {
  // 15 frames at 30 fps (0.5 s) -> the fps filter's end-of-stream rounding decides the count.
  ExpectMatchesReference(
      MakeVideo(dir_ + "/s.mp4", "testsrc2=size=64x48:rate=30", "-frames:v 15 -c:v libx264"), 32,
      32, 24);
  // 10 fps upsampled to 24: frames are repeated.
  ExpectMatchesReference(
      MakeVideo(dir_ + "/u.mp4", "testsrc2=size=64x48:rate=10", "-frames:v 7 -c:v libx264"), 48,
      32, 24);
  // A single frame.
  ExpectMatchesReference(
      MakeVideo(dir_ + "/one.mp4", "testsrc2=size=64x48:rate=24", "-frames:v 1 -c:v libx264"),
      32, 32, 24);
}

TEST_F(PrefixVideoDecoderTest, OtherFpsAndFrameCounts) {
  const std::string p = MakeVideo(dir_ + "/b.mp4", "testsrc2=size=80x48:rate=25", "-t 2 -c:v libx264");
  ExpectMatchesReference(p, 48, 32, 12);
  ExpectMatchesReference(p, 48, 32, 24, "mp4", /*max_frames=*/5);
}

TEST_F(PrefixVideoDecoderTest, MovAndWebmContainers) {
  ExpectMatchesReference(
      MakeVideo(dir_ + "/c.mov", "testsrc2=size=64x48:rate=24", "-t 1 -c:v libx264"), 32, 32, 24);
  ExpectMatchesReference(
      MakeVideo(dir_ + "/d.mov", "testsrc2=size=64x48:rate=24", "-t 1 -c:v prores"), 32, 32, 24);
  ExpectMatchesReference(
      MakeVideo(dir_ + "/e.webm", "testsrc2=size=64x48:rate=30",
                "-t 1 -c:v libvpx-vp9 -deadline realtime -cpu-used 8"),
      32, 32, 24, /*demuxer=*/"");
  // A container that starts at 1.5 s: the CLI's -ss 0 shifts it to 0 before the fps filter.
  ExpectMatchesReference(
      MakeVideo(dir_ + "/f.mkv", "testsrc2=size=64x48:rate=30",
                "-t 1 -c:v libx264 -output_ts_offset 1.5"),
      32, 32, 24, /*demuxer=*/"");
}

TEST_F(PrefixVideoDecoderTest, AppliesDisplayMatrixRotationLikeFfmpeg) {
  const std::string plain =
      MakeVideo(dir_ + "/r0.mp4", "testsrc2=size=96x64:rate=24", "-t 1 -c:v libx264");
  for (int deg : {90, 180, 270}) {
    const std::string rot = dir_ + "/r" + std::to_string(deg) + ".mp4";
    int rc = -1;
    RunCommand("ffmpeg -v error -nostdin -y -i '" + plain + "' -c copy -metadata:s:v:0 rotate=" +
                   std::to_string(deg) + " '" + rot + "' 2>&1",
               &rc);
    ASSERT_EQ(rc, 0);
    ExpectMatchesReference(rot, 48, 64, 24);
    // And the rotation really changed the picture.
    auto a = DecodePrefixVideo("r0", ReadFile(plain), 48, 64, 24, 1);
    auto b = DecodePrefixVideo("rot", ReadFile(rot), 48, 64, 24, 1);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE((*a)[0].rgb24, (*b)[0].rgb24) << deg;
  }
}

}  // namespace
}  // namespace magi
