// Hostile and broken inputs: every one must give a clear error naming the input (and, for
// limits, the limit), never a crash or an unbounded allocation. The bad files are generated
// here from small valid ones.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "tests/media/media_test_util.h"
#include "worker/media/image_decoder.h"
#include "worker/media/media_file.h"
#include "worker/media/prefix_video_decoder.h"

namespace magi {
namespace {

using testing_media::MakeTempDir;
using testing_media::ReadFile;
using testing_media::RunCommand;

std::string Generate(const std::string& dir, const std::string& file, const std::string& args) {
  const std::string path = dir + "/" + file;
  int rc = -1;
  RunCommand("ffmpeg -v error -nostdin -y " + args + " '" + path + "' 2>&1", &rc);
  EXPECT_EQ(rc, 0) << "could not generate " << path;
  return ReadFile(path);
}

// Error of the right code whose message contains every needle.
template <typename T>
void ExpectError(const absl::StatusOr<T>& r, absl::StatusCode code,
                 std::initializer_list<std::string> needles) {
  ASSERT_FALSE(r.ok()) << "accepted bad input";
  EXPECT_EQ(r.status().code(), code) << r.status();
  for (const std::string& n : needles) {
    EXPECT_NE(r.status().message().find(n), std::string::npos)
        << "'" << n << "' missing from: " << r.status();
  }
}

uint32_t Crc32(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string PngChunk(const std::string& type, const std::string& payload) {
  return Be32(static_cast<uint32_t>(payload.size())) + type + payload +
         Be32(Crc32(type + payload));
}

// A well-formed PNG header declaring w x h RGB pixels, followed by a tiny valid zlib stream
// (far too little data for that size).
std::string PngDeclaring(uint32_t w, uint32_t h) {
  std::string ihdr = Be32(w) + Be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string zlib_empty("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) +
         PngChunk("IDAT", zlib_empty) + PngChunk("IEND", "");
}

class BadMediaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    const std::string src = "-f lavfi -i testsrc2=size=97x61";
    jpg_ = new std::string(Generate(*dir_, "ok.jpg", src + " -frames:v 1"));
    png_ = new std::string(Generate(*dir_, "ok.png", src + " -frames:v 1"));
    webp_ = new std::string(Generate(*dir_, "ok.webp", src + " -frames:v 1 -c:v libwebp"));
    mp4_ = new std::string(Generate(
        *dir_, "ok.mp4", "-f lavfi -i testsrc2=size=64x48:rate=24 -t 1 -c:v libx264"));
    mp4_faststart_ = new std::string(
        Generate(*dir_, "fs.mp4",
                 "-f lavfi -i testsrc2=size=64x48:rate=24 -t 1 -c:v libx264 -movflags +faststart"));
  }
  static std::string* dir_;
  static std::string* jpg_;
  static std::string* png_;
  static std::string* webp_;
  static std::string* mp4_;
  static std::string* mp4_faststart_;
};
std::string* BadMediaTest::dir_;
std::string* BadMediaTest::jpg_;
std::string* BadMediaTest::png_;
std::string* BadMediaTest::webp_;
std::string* BadMediaTest::mp4_;
std::string* BadMediaTest::mp4_faststart_;

constexpr auto kBad = absl::StatusCode::kInvalidArgument;

TEST_F(BadMediaTest, ValidSeedsDecode) {
  EXPECT_TRUE(DecodeImage("jpg", *jpg_, 32, 32).ok());
  EXPECT_TRUE(DecodeImage("png", *png_, 32, 32).ok());
  EXPECT_TRUE(DecodeImage("webp", *webp_, 32, 32).ok());
  EXPECT_TRUE(DecodePrefixVideo("mp4", *mp4_, 32, 32, 24).ok());
  EXPECT_TRUE(DecodePrefixVideo("mp4", *mp4_faststart_, 32, 32, 24).ok());
}

// Found by the media fuzzer (CI, 2026-12-04): a 1.3 kB WebM whose last frame lasts for hours.
// Closing the filter graph with a push ran the fps filter to the end at once: millions of
// duplicated frames queued, >2 GB, before max_output_frames could stop it. The frames are
// now pulled one at a time.
TEST_F(BadMediaTest, ALastFrameLastingHoursIsNotExpandedInMemory) {
  static const char kWebm[] =
    "\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84"
    "\x77\x65\x62\x6d\x42\x87\x81\x02\x42\x85\x81\x02\x18\x53\x80\x67\x01\x00\x00\x00\x00\x00\x05\xa5"
    "\x11\x4d\x9b\x74\xba\x4d\xbb\x8b\x53\xab\x84\x15\x49\xa9\x66\x53\xac\x81\xa1\x4d\xbb\x8b\x53\xab"
    "\x84\x16\x54\xae\x6b\x53\xac\x81\xd8\x4d\xbb\x8c\x53\xab\x84\x12\x54\xc3\x67\x53\xac\x82\x01\x1e"
    "\x4d\xbb\x8c\x53\xab\x84\x00\x00\x00\xfb\x53\xac\x82\x05\x8f\xec\x01\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x15\x49\xa9\x66\xb2\x2a\xd7\xb1\x83\x0f\x42\x40\x4d\x80\x8d\x4c\x61\x76\x66\x32\x39\x2e\x32"
    "\x37\x2e\x31\x30\x30\x57\x41\x8d\x4c\x61\x76\x66\x35\x39\x2e\x32\x37\x2e\x31\x30\x30\x44\x89\x88"
    "\x40\x6f\x40\x00\x00\x00\x00\x00\x16\x54\xae\x6b\xc1\xae\x01\x00\x00\x00\x00\x00\x00\x38\xd7\x81"
    "\x01\x73\xc5\x88\x81\x7e\x5e\xc9\xb4\x3a\xaa\x52\x9c\x81\x00\x22\xb5\x9c\x83\x75\x6e\x64\x88\x81"
    "\x00\x86\x85\x56\x5f\x56\x50\x39\x83\x81\x01\x23\xe3\x83\x01\x00\x00\x00\x00\x00\x00\x08\x84\x02"
    "\x7b\xc8\x6a\xe0\x89\xb0\x81\x30\xba\x81\x20\x9a\x81\x02\x12\x54\xc3\x67\x40\x81\x73\x73\xa0\x63"
    "\xc0\x80\x67\xc8\xdb\x63\xc0\x8b\x63\xc5\x88\x81\x7e\x5e\xc9\xb4\x3a\xaa\x52\x67\xc8\xc8\xa2\x45"
    "\xa3\x88\x44\x55\x52\x41\x54\x49\x4f\x4e\x44\x87\x94\x30\x30\x3a\x30\x30\x3a\x30\x30\x2e\x32\x35"
    "\x30\x30\x30\x30\x30\x30\x30\x00\x00\x1f\x43\xb6\x75\x43\xe4\xe7\x81\x00\xa3\x43\x08\x81\x00\x00"
    "\x80\x82\x49\x83\x42\x00\x02\xf0\x01\xf6\x06\x38\x24\x1c\x18\x4a\x00\x03\x50\x5f\x63\xf7\xd8\xfb"
    "\xd2\xfb\xfc\xfd\x7e\x4e\xfd\xfd\x7f\x7f\xa3\xf3\xbd\xf8\xfe\x3f\xa7\xfb\x07\xa8\xd1\x3d\x13\x44"
    "\xfa\xe2\x32\xbf\xab\xf3\xf3\xf5\xaf\xfe\x07\x0f\x66\x39\x30\x26\x70\xfe\x25\x75\xfc\x34\x00\x00"
    "\x7e\xc5\x41\x48\x5d\xa9\xaa\x63\xb7\xb5\xd1\x24\x74\x39\x33\x26\xfe\x46\x80\xe8\x94\x55\x28\xc8"
    "\x17\x74\xf5\x59\x52\xca\xe9\xcd\x03\xa1\x52\x95\x49\x6a\x9b\x33\xf6\xbd\x0c\x4e\x49\xf3\xad\x8b"
    "\x65\x7b\x5e\x17\x59\xe8\x2d\x21\x06\x1d\xd2\xa9\x29\x65\x7a\x23\xb4\x20\xa3\x94\x81\x00\x2a\x00"
    "\x86\x00\x40\x92\x9c\x48\x50\x00\x00\x03\x70\x00\x00\x4f\x00\x80\xa3\x94\x81\x00\x53\x00\x86\x00"
    "\x40\x92\x9c\x40\x4e\xe0\x00\x03\x70\x00\x00\x57\x23\x80\xa3\x94\x81\x00\x7d\x00\x86\x00\x40\x92"
    "\x9c\x48\x50\x00\x00\x03\x70\x00\x00\x57\x23\x80\xa3\xd0\x81\x00\xa7\x00\x86\x00\x40\x92\x9c\x38"
    "\x4d\x40\x00\x03\x70\x00\x00\x1c\x62\x27\xb0\x1d\x14\x64\x22\x0e\xc3\x61\x7f\xfc\x24\xfd\xbf\x18"
    "\x46\xe5\x2b\xe2\xe1\x0b\x92\xcc\x23\xca\xf6\xc1\x9f\xbd\x36\x45\x52\x5a\x16\x1d\x4d\xf8\xe1\x7f"
    "\xee\xa7\x87\xb3\xa0\x52\x2d\x5e\x08\xda\x24\xe8\x31\x1e\x38\xc9\x8e\x20\x5e\x59\xf3\x09\xba\x47"
    "\x6b\x59\x74\x37\x12\xcd\x14\x39\x17\xe6\xb0\x40\xa3\xc0\x81\x00\xa5\x45\xa3\x87\x45\x4e\x43\x4f"
    "\x44\x45\x52\x44\x87\x98\x4c\x61\x76\x63\x35\x39\x2e\x33\x37\x2e\x31\x30\x30\x20\x6c\x69\x62\x76"
    "\x70\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x78\x2d\x76\x70\x39\x67\xc8\xa2\x45\xa3\x88\x44\x55\x52\x41"
    "\x54\x49\x4f\x4e\x44\x87\x94\x30\x30\x3a\x30\x30\x3a\x30\x30\x2e\x32\x35\x30\x30\x30\x30\x30\x30"
    "\x30\x00\x00\x1f\x43\xb6\x75\x43\xe4\xe7\x81\x00\xa3\x43\x08\x81\x00\x00\x80\x82\x49\x83\x42\x00"
    "\x02\xf0\x01\xf6\x06\x38\x24\x1c\x18\x4a\x00\x03\x50\x5f\x63\xf7\xd8\xfb\xd2\xfb\xfc\xfd\x7e\x4e"
    "\xfd\xfd\x7f\x7f\xa3\xf3\xbd\xf8\xfe\x3f\xa7\xfb\x07\xa8\xd1\x3d\x13\x44\xfa\xe2\x32\xbf\xab\xf3"
    "\xf3\xf5\xaf\xfe\x07\x0f\x66\x39\x30\x26\x70\xfe\x25\x75\xfc\x34\x00\x00\x7e\xc5\x41\x48\x5d\xa9"
    "\xaa\x63\xb7\xb5\xd1\x24\x74\x39\x33\x26\xfe\x46\x80\xe8\x94\x55\x28\xc8\x17\x74\xf5\x59\x52\xca"
    "\xe9\xcd\x03\xa1\x52\x95\x49\x6a\x9b\x33\xf6\xbd\x0c\x4e\x49\xf3\xad\x8b\x65\x7b\x5e\x17\x59\xe8"
    "\x2d\x21\x06\x1d\xd2\xa9\x29\x65\x7a\x23\xb4\x20\xa3\x94\x81\x00\x2a\x00\x86\x00\x40\x92\x9c\x48"
    "\x50\x00\x00\x03\x70\x00\x00\x4f\x00\x80\xa3\x94\x81\x00\x53\x00\x86\x00\x40\x92\x9c\x40\x4e\xe0"
    "\x00\x03\x70\x00\x00\x57\x23\x80\xa3\x94\x81\x00\x7d\x00\x86\x00\x40\x92\x9c\x48\x50\x00\x00\x03"
    "\x70\x00\x00\x57\x23\x80\xa3\xd0\x81\x00\xa7\x00\x86\x00\x40\x92\x9c\x38\x4d\x40\x00\x03\x70\x00"
    "\x00\x1c\x62\x27\xb0\x1d\x14\x64\x22\x0e\xc3\x61\x7f\xfc\x24\xfd\xbf\x18\x46\xe5\x2b\xe2\xe1\x0b"
    "\x92\xcc\x23\xca\xf6\xc1\x9f\xbd\x36\x45\x52\x5a\x16\x1d\x4d\xf8\xe1\x7f\xee\xa7\x87\xb3\xa0\x52"
    "\x2d\x5e\x08\xda\x24\xe8\x31\x1e\x38\xc9\x8e\x20\x5e\x71\x59\xf3\x09\xba\x47\x6b\x59\x74\x37\x12"
    "\xcd\x14\x39\x17\xe6\xb0\x40\xa3\xc0\x81\x00\xd0\x00\x86\x00\x40\x92\x9c\x48\x50\x00\x00\x03\x70"
    "\x00\x00\x1c\x33\xd1\xd0\x80\x58\xff\xe3\x80\x87\x0f\x9f\x68\x12\x20\x5e\x59\xf3\x09\xba\x47\x6b"
    "\x59\x74\x37\x12\xcd\x14\x4f\xf5\xaf\x38\xde\x26\x80\x4e\xf4\xa3\xed\x40\xfb\xdf\x97\x52\x5b\xfa"
    "\x00\x1c\x53\xbb\x6b\x91\xbb\x8f\xb3\x81\x00\xb7\x8a\xf7\x81\x01\xf1\x82\x01\xa5\xf0\x81\x03";
  const std::string bytes(kWebm, sizeof(kWebm) - 1);
  ASSERT_EQ(bytes.size(), 1295u);
  MediaLimits limits;
  limits.max_pixels = 1 << 21;
  const auto start = std::chrono::steady_clock::now();
  auto video = DecodePrefixVideo("video 'long.webm'", bytes, 32, 8, 24, 4, limits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (video.ok()) {
    EXPECT_LE(video->size(), 4u);
  } else {
    EXPECT_EQ(video.status().code(), kBad) << video.status();
  }
  struct rusage usage;
  ASSERT_EQ(getrusage(RUSAGE_SELF, &usage), 0);
  EXPECT_LT(usage.ru_maxrss, 1024L * 1024) << "peak RSS " << usage.ru_maxrss / 1024 << " MiB";  // KiB
  EXPECT_LT(seconds, 10.0);
}

TEST_F(BadMediaTest, ZeroBytes) {
  ExpectError(DecodeImage("image 'empty.jpg'", "", 32, 32), kBad,
              {"image 'empty.jpg'", "0 bytes", "JPEG, PNG or WebP"});
  ExpectError(DecodePrefixVideo("video 'empty.mp4'", "", 32, 32, 24), kBad,
              {"video 'empty.mp4'", "0 bytes", "MP4"});
}

TEST_F(BadMediaTest, WrongType) {
  ExpectError(DecodeImage("image 'notes.txt'", "hello, this is plain text\n", 32, 32), kBad,
              {"image 'notes.txt'", "JPEG, PNG or WebP"});
  ExpectError(DecodeImage("image 'clip.mp4'", *mp4_, 32, 32), kBad,
              {"image 'clip.mp4'", "mp4", "expected a JPEG, PNG or WebP image"});
  ExpectError(DecodePrefixVideo("video 'pic.png'", *png_, 32, 32, 24), kBad,
              {"video 'pic.png'", "png_pipe", "expected an MP4, MOV or WebM video"});
  const std::string gif =
      Generate(*dir_, "a.gif", "-f lavfi -i testsrc2=size=32x32 -frames:v 1");
  ExpectError(DecodeImage("image 'a.gif'", gif, 32, 32), kBad, {"image 'a.gif'", "gif"});
  const std::string audio =
      Generate(*dir_, "audio.mp4", "-f lavfi -i sine=duration=0.3 -c:a aac");
  ExpectError(DecodePrefixVideo("video 'audio.mp4'", audio, 32, 32, 24), kBad,
              {"video 'audio.mp4'", "no video stream"});
  const std::string mpeg2 = Generate(
      *dir_, "m2.mp4", "-f lavfi -i testsrc2=size=32x32:rate=24 -t 0.2 -c:v mpeg2video");
  ExpectError(DecodePrefixVideo("video 'm2.mp4'", mpeg2, 32, 32, 24), kBad,
              {"video 'm2.mp4'", "mpeg2video", "not supported"});
  // Only a valid signature, then garbage.
  ExpectError(DecodeImage("image 'sig.png'", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage!",
                          32, 32),
              kBad, {"image 'sig.png'"});
}

TEST_F(BadMediaTest, TruncatedImages) {
  for (const auto& [name, bytes] : {std::pair<std::string, std::string*>{"cut.jpg", jpg_},
                                    {"cut.png", png_},
                                    {"cut.webp", webp_}}) {
    for (double frac : {0.1, 0.5, 0.9}) {
      const std::string cut = bytes->substr(0, static_cast<size_t>(bytes->size() * frac));
      ExpectError(DecodeImage(name, cut, 32, 32), kBad, {name});
    }
  }
  ExpectError(DecodeImage("cut.jpg", jpg_->substr(0, jpg_->size() / 2), 32, 32), kBad,
              {"corrupt or truncated"});
}

TEST_F(BadMediaTest, TruncatedVideos) {
  for (double frac : {0.05, 0.3, 0.6, 0.95}) {
    // moov at the end: the index is gone.
    ExpectError(DecodePrefixVideo("video 'cut.mp4'",
                                  mp4_->substr(0, static_cast<size_t>(mp4_->size() * frac)),
                                  32, 32, 24),
                kBad, {"video 'cut.mp4'"});
    // moov first: the index promises packets that are missing (at 5 % the index itself is
    // cut).
    if (frac < 0.1) continue;
    ExpectError(DecodePrefixVideo("video 'cutfs.mp4'",
                                  mp4_faststart_->substr(
                                      0, static_cast<size_t>(mp4_faststart_->size() * frac)),
                                  32, 32, 24),
                kBad, {"video 'cutfs.mp4'", "truncated"});
  }
}

TEST_F(BadMediaTest, AbsurdDeclaredDimensions) {
  ExpectError(DecodeImage("image 'huge.png'", PngDeclaring(100000, 100000), 32, 32), kBad,
              {"image 'huge.png'", "100000x100000", "8192"});
  ExpectError(DecodeImage("image 'wide.png'", PngDeclaring(1u << 31, 1), 32, 32), kBad,
              {"image 'wide.png'", "2147483648x1"});
  // A real JPEG whose frame header is patched to 60000x60000.
  std::string jpg = *jpg_;
  const size_t sof = jpg.find("\xFF\xC0", 2);
  ASSERT_NE(sof, std::string::npos);
  jpg[sof + 5] = '\xEA';  // height 0xEA60 = 60000
  jpg[sof + 6] = '\x60';
  jpg[sof + 7] = '\xEA';
  jpg[sof + 8] = '\x60';
  ExpectError(DecodeImage("image 'big.jpg'", jpg, 32, 32), kBad, {"image 'big.jpg'", "60000x60000"});
  // Zero size.
  ExpectError(DecodeImage("image 'zero.png'", PngDeclaring(0, 10), 32, 32), kBad,
              {"image 'zero.png'"});
}

TEST_F(BadMediaTest, DecompressionBombsHitThePixelLimit) {
  // 2000x2000 black compresses to a few KB but expands to 12 MB: a bomb for a 1 Mpx limit.
  const std::string bomb =
      Generate(*dir_, "bomb.png", "-f lavfi -i color=black:s=2000x2000 -frames:v 1");
  ASSERT_LT(bomb.size(), 100000u);
  MediaLimits tight;
  tight.max_pixels = 1000 * 1000;
  ExpectError(DecodeImage("image 'bomb.png'", bomb, 32, 32, tight), kBad,
              {"image 'bomb.png'", "2000x2000", "1000000 pixels"});
  // Video: the container declares the size; the limit is checked before decoding.
  tight = MediaLimits();
  tight.max_width = 48;
  ExpectError(DecodePrefixVideo("video 'ok.mp4'", *mp4_, 32, 32, 24, 32, tight), kBad,
              {"video 'ok.mp4'", "64x48", "48 wide"});
}

TEST_F(BadMediaTest, FrameAndPacketFloods) {
  // 240 fps input resampled to 1 fps: 32 output frames would need 7680 decoded frames.
  const std::string flood = Generate(
      *dir_, "flood.mp4",
      "-f lavfi -i testsrc2=size=16x16:rate=240 -t 2 -c:v libx264 -preset ultrafast");
  MediaLimits l;
  l.max_decoded_frames = 100;
  ExpectError(DecodePrefixVideo("video 'flood.mp4'", flood, 16, 16, 1, 32, l), kBad,
              {"video 'flood.mp4'", "100 frames decoded"});
  l = MediaLimits();
  l.max_packets = 50;
  ExpectError(DecodePrefixVideo("video 'flood.mp4'", flood, 16, 16, 1, 32, l), kBad,
              {"video 'flood.mp4'", "50 packets"});
}

TEST_F(BadMediaTest, InputSizeAndRequestLimits) {
  MediaLimits l;
  l.max_input_bytes = 100;
  ExpectError(DecodeImage("image 'ok.jpg'", *jpg_, 32, 32, l), kBad,
              {"image 'ok.jpg'", "limit of 100 bytes"});
  ExpectError(DecodeImage("img", *jpg_, 0, 32), kBad, {"img", "0x32"});
  ExpectError(DecodeImage("img", *jpg_, 32, 5000), kBad, {"img", "32x5000", "4096"});
  ExpectError(DecodePrefixVideo("vid", *mp4_, 32, 32, 0), kBad, {"vid", "fps = 0"});
  ExpectError(DecodePrefixVideo("vid", *mp4_, 32, 32, 24, 0), kBad, {"vid", "frame count 0"});
  ExpectError(DecodePrefixVideo("vid", *mp4_, 32, 32, 24, 100000), kBad,
              {"vid", "frame count 100000"});
  l = MediaLimits();
  l.max_decode_seconds = -1;  // already expired
  ExpectError(DecodePrefixVideo("video 'slow.mp4'", *mp4_, 32, 32, 24, 32, l),
              absl::StatusCode::kDeadlineExceeded, {"video 'slow.mp4'", "-1 s"});
}

TEST_F(BadMediaTest, ReadMediaFileErrorsNameThePath) {
  ExpectError(ReadMediaFile("/nonexistent/magi.png"), absl::StatusCode::kNotFound,
              {"/nonexistent/magi.png"});
  ExpectError(ReadMediaFile(*dir_), kBad, {*dir_, "not a regular file"});
  MediaLimits l;
  l.max_input_bytes = 10;
  ExpectError(ReadMediaFile(*dir_ + "/ok.jpg", l), kBad, {"ok.jpg", "limit of 10 bytes"});
  absl::StatusOr<std::string> ok = ReadMediaFile(*dir_ + "/ok.jpg");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, *jpg_);
}

// Deterministic bit flips and cuts of every seed: an error is fine if it is a clear one (a
// client-input code whose message names the upload), a decode is fine if it has the asked
// size; anything else (a crash, an internal error, a wrong-size frame) fails. The fuzz target
// in fuzz/ does this at scale under ASan/UBSan (scripts/fuzz.sh); this keeps a small dose in
// every test run.
TEST_F(BadMediaTest, MutatedInputsNeverCrash) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int decoded = 0, refused = 0;
  for (const std::string* seed : {jpg_, png_, webp_, mp4_faststart_}) {
    for (int i = 0; i < 60; ++i) {
      std::string m = *seed;
      const int flips = 1 + static_cast<int>(next() % 8);
      for (int k = 0; k < flips; ++k) m[next() % m.size()] ^= static_cast<char>(1u << (next() % 8));
      if (next() % 4 == 0) m.resize(next() % m.size());
      absl::Status st;
      if (seed == mp4_faststart_) {
        auto v = DecodePrefixVideo("mutant", m, 16, 16, 24, 4);
        st = v.status();
        if (v.ok()) {
          ASSERT_GE(v->size(), 1u);
          ASSERT_LE(v->size(), 4u);
          for (const RgbFrame& f : *v) ASSERT_TRUE(f.width == 16 && f.height == 16 && f.rgb24.size() == 16u * 16 * 3);
        }
      } else {
        auto f = DecodeImage("mutant", m, 16, 16);
        st = f.status();
        if (f.ok()) ASSERT_TRUE(f->width == 16 && f->height == 16 && f->rgb24.size() == 16u * 16 * 3);
      }
      if (st.ok()) {
        ++decoded;
        continue;
      }
      ++refused;
      EXPECT_TRUE(st.code() == absl::StatusCode::kInvalidArgument || st.code() == absl::StatusCode::kOutOfRange ||
                  st.code() == absl::StatusCode::kResourceExhausted)
          << "seed " << seed->size() << " bytes, mutant " << i << ": " << st;
      EXPECT_NE(st.message().find("mutant"), absl::string_view::npos) << st;
    }
  }
  RecordProperty("decoded", decoded);
  // Both outcomes happen (a mutator that broke nothing, or everything, tests nothing).
  EXPECT_GT(decoded, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace magi
