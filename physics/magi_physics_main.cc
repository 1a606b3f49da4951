// magi-physics: the synthetic physics world and the Physics-IQ-style continuation benchmark
// on the command line (docs/physics.md).
//
//   magi-physics scene --seed S [--size 64] [--frames 96] --out DIR
//   magi-physics eval --scenes N --seed S --context_frames K [--frames 96] [--size 64]
//                     [--generated DIR] [--export_context DIR]
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "physics/continuation_eval.h"
#include "physics/ppm.h"
#include "physics/world.h"
#include "worker/media/mp4_writer.h"
#include "worker/media/prefix_video_decoder.h"

namespace magi {
namespace physics {
namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  magi-physics scene --seed S [--size 64] [--frames 96] --out DIR\n"
    "      writes DIR/frame_0000.ppm ..., DIR/video.mp4, DIR/labels_0000.pgm ... and "
    "DIR/caption.txt\n"
    "  magi-physics eval --scenes N --seed S --context_frames K [--frames 96] [--size 64]\n"
    "                    [--generated DIR] [--export_context DIR]\n"
    "      scores continuations of N held-out scenes; --generated DIR adds a row for a model's\n"
    "      videos DIR/scene_<i>.mp4 or DIR/scene_<i>/frame_0000.ppm ... (the continuation, or the\n"
    "      whole video whose first K frames are dropped); --export_context DIR writes each "
    "scene's\n"
    "      context as DIR/scene_<i>_context.mp4, its caption as DIR/scene_<i>.txt and its\n"
    "      world seed as DIR/scene_<i>.seed\n";

struct Args {
  std::string command;
  std::map<std::string, std::string> flags;
};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      if (!a.command.empty())
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", s, "'"));
      a.command = s;
      continue;
    }
    std::string name = s.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    absl::StrReplaceAll({{"-", "_"}}, &name);
    a.flags[name] = value;
  }
  return a;
}

absl::Status CheckKnown(const Args& a, const std::vector<std::string>& known) {
  for (const auto& [name, value] : a.flags) {
    bool ok = false;
    for (const std::string& k : known) ok = ok || k == name;
    if (!ok)
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for '", a.command, "'"));
  }
  return absl::OkStatus();
}

absl::Status GetInt(const Args& a, const std::string& name, int& out) {
  auto it = a.flags.find(name);
  if (it == a.flags.end()) return absl::OkStatus();
  if (!absl::SimpleAtoi(it->second, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " is '", it->second, "'; need an integer"));
  }
  return absl::OkStatus();
}

absl::Status GetSeed(const Args& a, uint64_t& out, bool required) {
  auto it = a.flags.find("seed");
  if (it == a.flags.end()) {
    return required ? absl::InvalidArgumentError("--seed is required (an integer in [0, 2^64))")
                    : absl::OkStatus();
  }
  if (!absl::SimpleAtoi(it->second, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seed is '", it->second, "'; need an integer in [0, 2^64)"));
  }
  return absl::OkStatus();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& dir, const char* flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("--", flag, " ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status RunScene(const Args& a) {
  if (absl::Status s = CheckKnown(a, {"seed", "size", "frames", "out"}); !s.ok()) return s;
  uint64_t seed = 0;
  int size = kDefaultSize, frames = kDefaultFrames;
  if (absl::Status s = GetSeed(a, seed, /*required=*/true); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "size", size); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "frames", frames); !s.ok()) return s;
  if (absl::Status s = CheckRenderArgs(size, frames); !s.ok()) return s;
  auto out_it = a.flags.find("out");
  if (out_it == a.flags.end() || out_it->second.empty())
    return absl::InvalidArgumentError("--out DIR is required");
  const std::string dir = out_it->second;
  if (absl::Status s = MakeDir(dir, "out"); !s.ok()) return s;

  const Scene scene = MakeScene(seed);
  absl::StatusOr<std::vector<RenderedFrame>> rendered = RenderScene(scene, size, frames);
  if (!rendered.ok()) return rendered.status();
  std::vector<RgbFrame> rgb;
  for (size_t i = 0; i < rendered->size(); ++i) {
    const RenderedFrame& f = (*rendered)[i];
    rgb.push_back(f.rgb);
    // Labels as 8-bit PGM: 0 background, i + 1 object i.
    std::ofstream pgm(absl::StrFormat("%s/labels_%04d.pgm", dir, i),
                      std::ios::binary | std::ios::trunc);
    pgm << "P5\n" << size << " " << size << "\n255\n";
    pgm.write(reinterpret_cast<const char*>(f.label.data()),
              static_cast<std::streamsize>(f.label.size()));
    if (!pgm) return absl::UnavailableError(absl::StrCat(dir, ": writing labels failed"));
  }
  if (absl::Status s = WriteFrameFolder(dir, rgb); !s.ok()) return s;
  VideoEncodeOptions enc;
  enc.fps = kFps;
  enc.crf = 12;
  enc.threads = 1;
  if (absl::Status s = WriteMp4File(dir + "/video.mp4", rgb, enc); !s.ok()) return s;
  const std::string caption = Caption(scene);
  if (absl::Status s = WriteText(dir + "/caption.txt", caption + "\n"); !s.ok()) return s;
  std::printf("seed %llu: %d frames %dx%d at %d fps -> %s\n  caption: %s\n",
              static_cast<unsigned long long>(seed), frames, size, size, kFps, dir.c_str(),
              caption.c_str());
  return absl::OkStatus();
}

// A model's continuation of scene i from --generated DIR.
absl::StatusOr<std::vector<RgbFrame>> LoadGenerated(const std::string& dir, int index,
                                                    const EvalOptions& o) {
  const int continuation = o.frames - o.context_frames;
  const std::string mp4 = absl::StrCat(dir, "/scene_", index, ".mp4");
  const std::string folder = absl::StrCat(dir, "/scene_", index);
  std::vector<RgbFrame> frames;
  if (std::filesystem::is_regular_file(mp4)) {
    std::ifstream in(mp4, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    absl::StatusOr<std::vector<RgbFrame>> decoded =
        DecodePrefixVideo(mp4, bytes, o.size, o.size, kFps, o.frames);
    if (!decoded.ok()) return decoded.status();
    frames = std::move(*decoded);
  } else if (std::filesystem::is_directory(folder)) {
    absl::StatusOr<std::vector<RgbFrame>> read = ReadFrameFolder(folder, o.frames);
    if (!read.ok()) return read.status();
    frames = std::move(*read);
    for (size_t t = 0; t < frames.size(); ++t) {
      if (frames[t].width != o.size || frames[t].height != o.size) {
        return absl::InvalidArgumentError(
            absl::StrCat(folder, "/", FrameFileName(static_cast<int>(t)), " is ", frames[t].width,
                         "x", frames[t].height, "; need ", o.size, "x", o.size, " (--size)"));
      }
    }
  } else {
    return absl::NotFoundError(
        absl::StrCat("--generated: neither ", mp4, " nor ", folder, "/ exists"));
  }
  if (static_cast<int>(frames.size()) == o.frames) {
    frames.erase(frames.begin(), frames.begin() + o.context_frames);
  }
  if (static_cast<int>(frames.size()) != continuation) {
    return absl::InvalidArgumentError(
        absl::StrCat("--generated scene ", index, " has ", frames.size(), " frames; need ",
                     continuation, " (the continuation) or ", o.frames, " (the whole video)"));
  }
  return frames;
}

absl::Status RunEvalCommand(const Args& a) {
  if (absl::Status s = CheckKnown(
          a, {"scenes", "seed", "context_frames", "frames", "size", "generated", "export_context"});
      !s.ok()) {
    return s;
  }
  EvalOptions o;
  if (absl::Status s = GetSeed(a, o.seed, /*required=*/false); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "scenes", o.scenes); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "context_frames", o.context_frames); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "frames", o.frames); !s.ok()) return s;
  if (absl::Status s = GetInt(a, "size", o.size); !s.ok()) return s;
  if (absl::Status s = CheckEvalOptions(o); !s.ok()) return s;

  if (auto it = a.flags.find("export_context"); it != a.flags.end()) {
    if (absl::Status s = MakeDir(it->second, "export_context"); !s.ok()) return s;
    VideoEncodeOptions enc;
    enc.fps = kFps;
    enc.crf = 12;
    enc.threads = 1;
    for (int i = 0; i < o.scenes; ++i) {
      const Scene scene = MakeScene(EvalSceneSeed(o.seed, i));
      absl::StatusOr<std::vector<RgbFrame>> ctx = RenderSceneRgb(scene, o.size, o.context_frames);
      if (!ctx.ok()) return ctx.status();
      const std::string base = absl::StrCat(it->second, "/scene_", i);
      if (absl::Status s = WriteMp4File(base + "_context.mp4", *ctx, enc); !s.ok()) return s;
      // The caption of the scene as the context ends: its directions the ways the objects move
      // in the last context frame (what the context shows), not where they set off.
      if (absl::Status s = WriteText(base + ".txt", CaptionAtFrame(scene, o.context_frames - 1) + "\n"); !s.ok())
        return s;
      // The scene's own seed: `magi-physics scene --seed N` renders the whole scene.
      if (absl::Status s = WriteText(base + ".seed", absl::StrCat(scene.seed, "\n")); !s.ok())
        return s;
    }
  }

  std::vector<std::pair<std::string, ContinuationSource>> extra;
  if (auto it = a.flags.find("generated"); it != a.flags.end()) {
    const std::string dir = it->second;
    if (!std::filesystem::is_directory(dir)) {
      return absl::NotFoundError(absl::StrCat("--generated ", dir, ": not a directory"));
    }
    extra.emplace_back(
        absl::StrCat("generated (", std::filesystem::path(dir).filename().string(), ")"),
        [dir, o](int index, const Scene&, const std::vector<RgbFrame>&) {
          return LoadGenerated(dir, index, o);
        });
  }
  absl::StatusOr<std::vector<MethodRow>> rows = RunEval(o, extra);
  if (!rows.ok()) return rows.status();
  std::printf(
      "Physics-IQ-style continuation, %d held-out scenes (seed %llu), %dx%d, %d context + %d "
      "continuation frames at %d fps\n",
      o.scenes, static_cast<unsigned long long>(o.seed), o.size, o.size, o.context_frames,
      o.frames - o.context_frames, kFps);
  std::fputs(FormatTable(*rows).c_str(), stdout);
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  absl::Status s;
  if (!args.ok()) {
    s = args.status();
  } else if (args->command == "scene") {
    s = RunScene(*args);
  } else if (args->command == "eval") {
    s = RunEvalCommand(*args);
  } else if (args->command.empty() || args->command == "help") {
    std::fputs(kUsage, args->command == "help" ? stdout : stderr);
    return args->command == "help" ? 0 : 2;
  } else {
    s = absl::InvalidArgumentError(
        absl::StrCat("unknown command '", args->command, "'; allowed: scene, eval"));
  }
  if (!s.ok()) {
    std::fprintf(stderr, "magi-physics: %s\n%s", std::string(s.message()).c_str(), kUsage);
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  return 0;
}

}  // namespace
}  // namespace physics
}  // namespace magi

int main(int argc, char** argv) { return magi::physics::Main(argc, argv); }
