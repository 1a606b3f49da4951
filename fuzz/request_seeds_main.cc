// fuzz_request_seeds OUT_DIR [MEDIA_SEEDS_DIR]: writes serialized GenerateRequests as seeds
// for fuzz_request_validator_libfuzzer: t2v with defaults, chunk prompts with sizes and
// frames, cfg 3 on the "big" model, and i2v / v2v with a small image / video from the media
// seeds (fuzz/make_seeds.sh) when given.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "magi/v1/video_generation.pb.h"

namespace {

void Write(const std::filesystem::path& dir, const std::string& name, const ::magi::v1::GenerateRequest& r) {
  std::ofstream(dir / (name + ".pb"), std::ios::binary) << r.SerializeAsString();
}

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: fuzz_request_seeds OUT_DIR [MEDIA_SEEDS_DIR]\n";
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out);
  ::magi::v1::GenerateRequest t2v;
  t2v.set_mode(::magi::v1::MODE_T2V);
  auto* p = t2v.add_prompts();
  p->set_text("a red fox running through snow");
  Write(out, "t2v_defaults", t2v);

  ::magi::v1::GenerateRequest chunks = t2v;
  chunks.set_num_frames(96);
  chunks.set_width(64);
  chunks.set_height(48);
  chunks.set_fps(12);
  chunks.set_num_steps(16);
  chunks.set_seed(7);
  chunks.set_priority(3);
  chunks.set_idempotency_key("key-1");
  auto* p2 = chunks.add_prompts();
  p2->set_from_chunk(2);
  p2->set_text("then it jumps");
  Write(out, "t2v_chunk_prompts", chunks);

  ::magi::v1::GenerateRequest cfg = chunks;
  cfg.set_model("big");
  cfg.mutable_guidance()->set_cfg_number(3);
  cfg.mutable_guidance()->set_text_scale(7.5f);
  Write(out, "big_cfg3", cfg);

  if (argc >= 3) {
    const std::filesystem::path media = argv[2];
    for (const auto& e : std::filesystem::directory_iterator(media)) {
      const std::string ext = e.path().extension().string();
      const std::string bytes = Slurp(e.path());
      if (bytes.empty() || bytes.size() > (256 << 10)) continue;
      ::magi::v1::GenerateRequest r = t2v;
      r.set_width(64);
      r.set_height(64);
      if (ext == ".png" || ext == ".jpg" || ext == ".webp") {
        r.set_mode(::magi::v1::MODE_I2V);
        r.set_image(bytes);
        Write(out, "i2v_" + e.path().stem().string(), r);
      } else if (ext == ".mp4" || ext == ".webm" || ext == ".mov") {
        r.set_mode(::magi::v1::MODE_V2V);
        r.set_prefix_video(bytes);
        Write(out, "v2v_" + e.path().stem().string(), r);
      }
    }
  }
  return 0;
}
