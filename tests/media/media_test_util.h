// Helpers shared by the media tests: synthetic frames, temp files, and running the ffmpeg /
// ffprobe command-line tools (the independent judges of what our code writes and reads).
#ifndef MAGI_TESTS_MEDIA_MEDIA_TEST_UTIL_H_
#define MAGI_TESTS_MEDIA_MEDIA_TEST_UTIL_H_

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/media/rgb_frame.h"

namespace magi {
namespace testing_media {

// A smooth moving pattern (compresses well, so CRF 23 reproduces it closely) with a frame
// index dependent colour so frames are distinguishable after decoding.
inline RgbFrame MakeFrame(int w, int h, int index) {
  RgbFrame f(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = f.Pixel(x, y);
      p[0] = static_cast<uint8_t>((x * 255) / (w > 1 ? w - 1 : 1));
      p[1] = static_cast<uint8_t>((y * 255) / (h > 1 ? h - 1 : 1));
      p[2] = static_cast<uint8_t>((index * 9) % 256);
    }
  }
  return f;
}

inline std::vector<RgbFrame> MakeFrames(int w, int h, int n, int first_index = 0) {
  std::vector<RgbFrame> frames;
  for (int i = 0; i < n; ++i) frames.push_back(MakeFrame(w, h, first_index + i));
  return frames;
}

// A fresh directory under TMPDIR (or /tmp), removed by the test only on success paths;
// leftovers are harmless.
inline std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/magi_media_test_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  return dir ? std::string(dir) : std::string("/tmp");
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command, returns its stdout; *exit_code gets the exit status.
inline std::string RunCommand(const std::string& cmd, int* exit_code = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    if (exit_code) *exit_code = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (exit_code) *exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

// ffprobe's view of the first video stream and the container (frames counted by decoding).
inline nlohmann::json Probe(const std::string& path, int* exit_code) {
  const std::string out = RunCommand(
      "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
      "stream=codec_name,pix_fmt,width,height,r_frame_rate,avg_frame_rate,nb_read_frames,"
      "duration:format=duration,format_name -of json '" + path + "' 2>/dev/null",
      exit_code);
  return nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
}

// Per-frame key flags as ffprobe decodes them ("1" for key frames).
inline std::vector<int> ProbeKeyFrames(const std::string& path) {
  const std::string out = RunCommand(
      "ffprobe -v error -select_streams v:0 -show_entries frame=key_frame -of csv=p=0 '" +
      path + "' 2>/dev/null");
  std::vector<int> keys;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) keys.push_back(std::atoi(line.c_str()));
  }
  return keys;
}

// Decodes a video file with the ffmpeg CLI to raw RGB24 frames of its own size.
inline std::vector<RgbFrame> DecodeWithCli(const std::string& path, int w, int h) {
  const std::string raw = RunCommand("ffmpeg -v error -nostdin -i '" + path +
                                     "' -f rawvideo -pix_fmt rgb24 pipe: 2>/dev/null");
  std::vector<RgbFrame> frames;
  const size_t frame_bytes = static_cast<size_t>(w) * h * 3;
  for (size_t off = 0; off + frame_bytes <= raw.size(); off += frame_bytes) {
    RgbFrame f(w, h);
    std::copy(raw.begin() + off, raw.begin() + off + frame_bytes, f.rgb24.begin());
    frames.push_back(std::move(f));
  }
  return frames;
}

// Byte equality of CLI output (std::string) and a frame buffer (uint8_t; char may be signed).
inline bool SameBytes(const std::string& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// Peak signal-to-noise ratio in dB over all channels.
inline double Psnr(const RgbFrame& a, const RgbFrame& b) {
  double se = 0;
  for (size_t i = 0; i < a.rgb24.size(); ++i) {
    const double d = static_cast<double>(a.rgb24[i]) - b.rgb24[i];
    se += d * d;
  }
  const double mse = se / static_cast<double>(a.rgb24.size());
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

// Four-character box types at the top level of an MP4 byte string.
inline std::vector<std::string> TopLevelBoxes(const std::string& bytes) {
  std::vector<std::string> boxes;
  size_t off = 0;
  while (off + 8 <= bytes.size()) {
    uint64_t size = (static_cast<uint64_t>(static_cast<uint8_t>(bytes[off])) << 24) |
                    (static_cast<uint64_t>(static_cast<uint8_t>(bytes[off + 1])) << 16) |
                    (static_cast<uint64_t>(static_cast<uint8_t>(bytes[off + 2])) << 8) |
                    static_cast<uint64_t>(static_cast<uint8_t>(bytes[off + 3]));
    boxes.push_back(bytes.substr(off + 4, 4));
    if (size < 8) break;
    off += size;
  }
  if (off != bytes.size()) boxes.push_back("<trailing garbage>");
  return boxes;
}

}  // namespace testing_media
}  // namespace magi

#endif  // MAGI_TESTS_MEDIA_MEDIA_TEST_UTIL_H_
