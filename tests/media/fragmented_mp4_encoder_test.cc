#include "worker/media/fragmented_mp4_encoder.h"

#include <gtest/gtest.h>

#include "tests/media/media_test_util.h"

namespace magi {
namespace {

using testing_media::DecodeWithCli;
using testing_media::MakeFrames;
using testing_media::MakeTempDir;
using testing_media::Probe;
using testing_media::ProbeKeyFrames;
using testing_media::Psnr;
using testing_media::TopLevelBoxes;
using testing_media::WriteFile;

// MAGI-1 emits 24-frame chunks (6 latent frames x 4); a v2v partial chunk gives 13 frames.
const std::vector<int> kChunkFrames = {24, 24, 13, 24};

TEST(FragmentedMp4EncoderTest, EveryPrefixOfFragmentsIsAPlayableFile) {
  const int w = 64, h = 48;
  auto enc = FragmentedMp4Encoder::Create(w, h);
  ASSERT_TRUE(enc.ok()) << enc.status();
  absl::StatusOr<std::string> init = (*enc)->Init();
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(TopLevelBoxes(*init), (std::vector<std::string>{"ftyp", "moov"}));

  std::vector<RgbFrame> all;
  std::string stream = *init;
  const std::string dir = MakeTempDir();
  int total = 0;
  for (size_t k = 0; k < kChunkFrames.size(); ++k) {
    std::vector<RgbFrame> chunk = MakeFrames(w, h, kChunkFrames[k], total);
    absl::StatusOr<std::string> frag = (*enc)->AddChunk(chunk);
    ASSERT_TRUE(frag.ok()) << frag.status();
    EXPECT_EQ(TopLevelBoxes(*frag), (std::vector<std::string>{"moof", "mdat"})) << "chunk " << k;
    stream += *frag;
    total += kChunkFrames[k];
    all.insert(all.end(), chunk.begin(), chunk.end());

    // init + fragments 0..k on their own: valid, all frames so far, right fps and duration.
    const std::string path = dir + "/prefix" + std::to_string(k) + ".mp4";
    WriteFile(path, stream);
    int rc = -1;
    nlohmann::json p = Probe(path, &rc);
    ASSERT_EQ(rc, 0) << "k=" << k;
    ASSERT_FALSE(p.is_discarded());
    const auto& s = p["streams"][0];
    EXPECT_EQ(s["codec_name"], "h264");
    EXPECT_EQ(s["pix_fmt"], "yuv420p");
    EXPECT_EQ(s["r_frame_rate"], "24/1");
    EXPECT_EQ(s["nb_read_frames"], std::to_string(total)) << "k=" << k;
    EXPECT_NEAR(std::stod(p["format"]["duration"].get<std::string>()), total / 24.0, 1e-3);

    // Each chunk starts with a key frame, so a client can join at any fragment.
    std::vector<int> keys = ProbeKeyFrames(path);
    ASSERT_EQ(keys.size(), static_cast<size_t>(total));
    int start = 0;
    for (size_t c = 0; c <= k; ++c) {
      EXPECT_EQ(keys[start], 1) << "chunk " << c << " does not start with a key frame";
      start += kChunkFrames[c];
    }
  }
  EXPECT_EQ((*enc)->frames_written(), total);
  EXPECT_EQ((*enc)->chunks_written(), static_cast<int64_t>(kChunkFrames.size()));

  absl::StatusOr<std::string> tail = (*enc)->Finish();
  ASSERT_TRUE(tail.ok()) << tail.status();
  stream += *tail;
  const std::string full = dir + "/full.mp4";
  WriteFile(full, stream);
  int rc = -1;
  nlohmann::json p = Probe(full, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(p["streams"][0]["nb_read_frames"], std::to_string(total));
  std::vector<RgbFrame> decoded = DecodeWithCli(full, w, h);
  ASSERT_EQ(decoded.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_GT(Psnr(decoded[i], all[i]), 30.0) << "frame " << i;
  }
}

// A resumed job re-encodes earlier chunks and must reproduce their bytes: the same frames
// give the same fragment whatever the heap held before and wherever the pixels live. (x264's
// AVX-512 kernels broke this on AVX-512 hosts: 1-5 of 59 fresh encoders differed at these
// sizes; the encoder caps x264 at AVX2 there. swscale's input path depends on the source's
// alignment and the encoder converts from an aligned copy; on the AMD EPYC measured, unaligned
// input gave the same bytes here, so that half guards the fix rather than reproducing it.)
TEST(FragmentedMp4EncoderTest, SameFramesGiveSameBytesWhateverTheHeapHeld) {
  VideoEncodeOptions o;
  o.preset = "veryfast";  // what served jobs use (jobspec)
  o.fps = 8;
  o.threads = 1;
  for (auto [w, h] : std::vector<std::pair<int, int>>{{32, 32}, {32, 64}, {48, 48}}) {
    const std::vector<RgbFrame> chunk = MakeFrames(w, h, 24, 48);
    std::string first;
    for (int run = 0; run < 40; ++run) {
      std::vector<std::string> junk;  // leaves different garbage in freed heap blocks
      for (int i = 0; i < run % 13; ++i) junk.emplace_back(1000 + 777 * i, static_cast<char>(37 * i + run));
      junk.clear();
      // The same pixels at other addresses (swscale picks its input path by alignment).
      std::vector<std::vector<char>> shift;
      std::vector<RgbFrame> copy;
      for (const RgbFrame& f : chunk) {
        shift.emplace_back(16 * ((run + copy.size()) % 4) + 8);
        copy.push_back(f);
      }
      auto enc = FragmentedMp4Encoder::Create(w, h, o);
      ASSERT_TRUE(enc.ok()) << enc.status();
      ASSERT_TRUE((*enc)->Init().ok());
      absl::StatusOr<std::string> frag = (*enc)->AddChunk(copy);
      ASSERT_TRUE(frag.ok()) << frag.status();
      if (run == 0) first = *frag;
      ASSERT_EQ(*frag, first) << w << "x" << h << " run " << run;
    }
  }
}

TEST(FragmentedMp4EncoderTest, FragmentDecodesAfterInitSegmentAlone) {
  // A client that joins late gets the init segment and a later fragment only.
  auto enc = FragmentedMp4Encoder::Create(32, 32);
  ASSERT_TRUE(enc.ok()) << enc.status();
  std::string init = *(*enc)->Init();
  ASSERT_TRUE((*enc)->AddChunk(MakeFrames(32, 32, 8)).ok());
  absl::StatusOr<std::string> second = (*enc)->AddChunk(MakeFrames(32, 32, 8, 8));
  ASSERT_TRUE(second.ok());
  const std::string path = MakeTempDir() + "/late.mp4";
  WriteFile(path, init + *second);
  std::vector<RgbFrame> decoded = DecodeWithCli(path, 32, 32);
  ASSERT_EQ(decoded.size(), 8u);
  EXPECT_GT(Psnr(decoded[0], testing_media::MakeFrame(32, 32, 8)), 30.0);
}

TEST(FragmentedMp4EncoderTest, EnforcesCallOrderAndValidatesChunks) {
  EXPECT_FALSE(FragmentedMp4Encoder::Create(33, 32).ok());
  VideoEncodeOptions bad;
  bad.fps = 1000;
  EXPECT_FALSE(FragmentedMp4Encoder::Create(32, 32, bad).ok());

  auto enc = FragmentedMp4Encoder::Create(32, 32);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ((*enc)->AddChunk(MakeFrames(32, 32, 2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*enc)->Finish().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*enc)->Init().ok());
  EXPECT_EQ((*enc)->Init().status().code(), absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<std::string> r = (*enc)->AddChunk({});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<RgbFrame> wrong = MakeFrames(32, 32, 3);
  wrong[2] = testing_media::MakeFrame(16, 32, 2);
  r = (*enc)->AddChunk(wrong);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("chunk 0 frame 2"), std::string::npos) << r.status();
  // A rejected chunk leaves the stream usable.
  ASSERT_TRUE((*enc)->AddChunk(MakeFrames(32, 32, 3)).ok());
  ASSERT_TRUE((*enc)->Finish().ok());
  EXPECT_EQ((*enc)->AddChunk(MakeFrames(32, 32, 3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*enc)->Finish().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace magi
