// Fuzz target for the media decoders (DecodeImage, DecodePrefixVideo): any byte string must
// produce frames or an error status, never a crash, a sanitizer report, a hang or unbounded
// memory.
//
// Two ways to run it (exact commands in fuzz/README.md):
// * libFuzzer (clang, -DMAGI_LIBFUZZER): coverage-guided, with AddressSanitizer + UBSan on
//   our code. FFmpeg comes from the system and is not instrumented, so guidance is limited
//   to magi_media's own branches; crashes inside FFmpeg are still caught.
// * Standalone driver (any compiler, built by default as `fuzz_media_decode`): loads seed
//   files, applies deterministic mutations (seeded xorshift: bit flips, interesting
//   integers, cuts, splices) for a bounded time, and calls the same entry point. Before each
//   input it writes the input to the artifact file, so after a crash that file reproduces
//   it (`fuzz_media_decode --repro FILE`).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "absl/strings/string_view.h"
#include "worker/media/image_decoder.h"
#include "worker/media/prefix_video_decoder.h"

namespace {

// Tight limits keep every iteration fast; the logic under test is the same.
magi::MediaLimits FuzzLimits() {
  magi::MediaLimits l;
  l.max_input_bytes = 4 << 20;
  l.max_width = 4096;
  l.max_height = 4096;
  l.max_pixels = 1 << 21;
  l.max_decoded_frames = 300;
  l.max_packets = 3000;
  l.max_decode_seconds = 10;
  return l;
}

int RunOne(const uint8_t* data, size_t size) {
  static const magi::MediaLimits limits = FuzzLimits();
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The low bits of the last byte pick the output size, so resizing paths vary too.
  const int w = size > 0 ? 8 + 8 * (data[size - 1] & 3) : 16;
  const int h = size > 0 ? 8 + 8 * ((data[size - 1] >> 2) & 3) : 16;
  auto image = magi::DecodeImage("fuzz image", bytes, w, h, limits);
  if (image.ok() && (image->width != w || image->height != h ||
                     image->rgb24.size() != image->ExpectedBytes())) {
    std::abort();  // a success must honour the contract
  }
  auto video = magi::DecodePrefixVideo("fuzz video", bytes, w, h, 24, 4, limits);
  if (video.ok()) {
    if (video->empty() || video->size() > 4) std::abort();
    for (const magi::RgbFrame& f : *video) {
      if (f.width != w || f.height != h || f.rgb24.size() != f.ExpectedBytes()) std::abort();
    }
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return RunOne(data, size);
}

#ifndef MAGI_LIBFUZZER
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void CollectSeeds(const std::string& path, std::vector<std::string>* seeds) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz: cannot stat seed path '%s'\n", path.c_str());
    std::exit(2);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());  // deterministic order
    for (const std::string& n : names) CollectSeeds(n, seeds);
  } else if (S_ISREG(st.st_mode)) {
    seeds->push_back(ReadAll(path));
  }
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 1) {}
  uint64_t Next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }

 private:
  uint64_t s_;
};

void Mutate(std::string* m, const std::vector<std::string>& seeds, Rng* rng) {
  static const uint32_t kInteresting[] = {0,      1,          0x7F,       0x80,      0xFF,
                                          0x100,  0x7FFF,     0xFFFF,     0x10000,   0x7FFFFFFF,
                                          0x80000000u, 0xFFFFFFFFu, 0xFFFFFFFEu, 64, 4096};
  const int rounds = 1 + static_cast<int>(rng->Below(6));
  for (int r = 0; r < rounds; ++r) {
    if (m->empty()) {
      m->push_back(static_cast<char>(rng->Next()));
      continue;
    }
    switch (rng->Below(8)) {
      case 0:  // bit flip
        (*m)[rng->Below(m->size())] ^= static_cast<char>(1u << rng->Below(8));
        break;
      case 1:  // random byte
        (*m)[rng->Below(m->size())] = static_cast<char>(rng->Next());
        break;
      case 2: {  // interesting big-endian 32-bit value (box sizes, dimensions, counts)
        if (m->size() < 4) break;
        const uint32_t v = kInteresting[rng->Below(sizeof(kInteresting) / 4)];
        const size_t at = rng->Below(m->size() - 3);
        for (int k = 0; k < 4; ++k) (*m)[at + k] = static_cast<char>(v >> (24 - 8 * k));
        break;
      }
      case 3:  // truncate
        m->resize(rng->Below(m->size()));
        break;
      case 4: {  // delete a range
        const size_t at = rng->Below(m->size());
        m->erase(at, 1 + rng->Below(std::min<size_t>(64, m->size() - at)));
        break;
      }
      case 5: {  // duplicate a range in place
        const size_t at = rng->Below(m->size());
        const size_t len = 1 + rng->Below(std::min<size_t>(256, m->size() - at));
        m->insert(rng->Below(m->size()), m->substr(at, len));
        break;
      }
      case 6: {  // splice the tail of another seed
        const std::string& o = seeds[rng->Below(seeds.size())];
        if (o.empty()) break;
        m->resize(rng->Below(m->size()));
        m->append(o.substr(rng->Below(o.size())));
        break;
      }
      default: {  // insert random bytes
        std::string junk(1 + rng->Below(16), '\0');
        for (char& c : junk) c = static_cast<char>(rng->Next());
        m->insert(rng->Below(m->size() + 1), junk);
        break;
      }
    }
  }
  if (m->size() > (4u << 20)) m->resize(4u << 20);
}

int Usage() {
  std::fprintf(stderr,
               "usage: fuzz_media_decode [--seconds N] [--seed S] [--artifact FILE] "
               "SEED_FILE_OR_DIR...\n"
               "       fuzz_media_decode --repro FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 60;
  uint64_t seed = 1;
  std::string artifact = "fuzz-media-last-input.bin";
  std::vector<std::string> seed_paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--artifact" && i + 1 < argc) {
      artifact = argv[++i];
    } else if (a == "--repro" && i + 1 < argc) {
      const std::string in = ReadAll(argv[++i]);
      RunOne(reinterpret_cast<const uint8_t*>(in.data()), in.size());
      std::printf("fuzz: input ran without crashing\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      return Usage();
    } else {
      seed_paths.push_back(a);
    }
  }
  std::vector<std::string> seeds;
  for (const std::string& p : seed_paths) CollectSeeds(p, &seeds);
  if (seeds.empty()) {
    std::fprintf(stderr, "fuzz: no seed files (run fuzz/make_seeds.sh DIR first)\n");
    return Usage();
  }
  Rng rng(seed);
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  // Seeds first, unmutated, then mutants.
  std::vector<std::string> queue = seeds;
  while (std::chrono::steady_clock::now() < end) {
    std::string input;
    if (runs < queue.size()) {
      input = queue[runs];
    } else {
      input = seeds[rng.Below(seeds.size())];
      Mutate(&input, seeds, &rng);
    }
    {
      std::ofstream out(artifact, std::ios::binary | std::ios::trunc);
      out.write(input.data(), static_cast<std::streamsize>(input.size()));
    }
    RunOne(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    ++runs;
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::remove(artifact.c_str());
  std::printf("fuzz: %llu inputs (%zu seeds, rng seed %llu) in %.1f s, %.0f/s, no crash\n",
              static_cast<unsigned long long>(runs), seeds.size(),
              static_cast<unsigned long long>(seed), took, runs / took);
  return 0;
}
#endif  // MAGI_LIBFUZZER
