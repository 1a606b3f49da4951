#include "client/local_model_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "jobspec/job_spec.h"
#include "worker/media/fmp4_chunk_writer.h"
#include "worker/runner/job_runner.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/tiny_model.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "magi generate: %s\n", why.c_str());
  std::fprintf(stderr,
               "usage: magi generate --model_dir DIR --prompt TEXT --output FILE.mp4\n"
               "  [--chunk_prompt K=TEXT]... [--mode t2v|i2v|v2v] [--image FILE] [--prefix_video FILE]\n"
               "  [--frames N] [--width W] [--height H] [--fps F] [--seed S] [--steps N]\n"
               "  [--fragments_dir DIR] [--create_tiny] [--quiet] [--schedule stream_first|reference]\n"
               "  [--overlap_decode true|false] [--elide_self_only_copy true|false]\n"
               "  [--lead_kv_budget_mb N]  (stream_first: MiB for recording the first chunk's K/V; default 0,\n"
               "                           recompute it; -1 records all: faster, more memory)\n");
  return 2;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Writes the MP4 as it grows and, optionally, each piece as its own file. The pieces come
// from the worker's own chunk writer with the JobSpec's encoding, so they are a served run's.
class Mp4FileSink : public FrameSink {
 public:
  Mp4FileSink(std::string output, std::string fragments_dir, bool quiet)
      : output_(std::move(output)), fragments_dir_(std::move(fragments_dir)), quiet_(quiet),
        start_(std::chrono::steady_clock::now()) {}

  absl::Status Start(const JobSpec& spec) {
    MAGI_ASSIGN_OR_RETURN(auto writer,
                          Fmp4ChunkWriter::Create(spec.request().width(), spec.request().height(), EncodeOptions(spec)));
    writer_ = std::move(writer);
    return absl::OkStatus();
  }

  absl::Status OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) override {
    return writer_->ReplayChunk(index, frames);
  }

  absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) override {
    MAGI_ASSIGN_OR_RETURN(auto piece, writer_->WriteChunk(index, frames));
    if (!piece.init_segment.empty()) {
      MAGI_RETURN_IF_ERROR(Append(piece.init_segment, "init.mp4"));
    }
    char name[32];
    std::snprintf(name, sizeof(name), "chunk_%03d.m4s", index);
    MAGI_RETURN_IF_ERROR(Append(piece.fragment, name));
    frames_ += piece.frames;
    if (!quiet_) {
      std::fprintf(stderr, "chunk %d: %d frames, %zu bytes, %.2f s since start\n", index, piece.frames,
                   piece.fragment.size(), Seconds());
    }
    return absl::OkStatus();
  }

  void OnProgress(const StepProgress& p) override {
    if (quiet_ || !isatty(STDERR_FILENO)) return;
    std::fprintf(stderr, "\rchunk %d, step %d/%d, ETA %.1f s   ", p.chunk, p.step, p.total_steps, p.eta_seconds);
    std::fflush(stderr);
  }
  bool Cancelled() const override { return false; }

  absl::Status Finish() {
    MAGI_ASSIGN_OR_RETURN(auto tail, writer_->Finish());
    return Append(tail, "");
  }
  int frames() const { return frames_; }
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  absl::Status Append(const std::string& bytes, const std::string& piece_name) {
    std::ofstream out(output_, std::ios::binary | (wrote_ ? std::ios::app : std::ios::trunc));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", output_, "'"));
    wrote_ = true;
    if (!fragments_dir_.empty() && !piece_name.empty() && !bytes.empty()) {
      std::ofstream piece((fs::path(fragments_dir_) / piece_name).string(), std::ios::binary | std::ios::trunc);
      piece.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!piece) return absl::InternalError(absl::StrCat("cannot write '", piece_name, "' in '", fragments_dir_, "'"));
    }
    return absl::OkStatus();
  }

  std::string output_, fragments_dir_;
  bool quiet_;
  bool wrote_ = false;
  std::unique_ptr<Fmp4ChunkWriter> writer_;
  int frames_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

bool IsLocalModelGenerate(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--model_dir", 11) || !std::strncmp(argv[i], "--model-dir", 11)) return true;
  }
  return false;
}

int RunLocalModelGenerate(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  std::vector<std::pair<int, std::string>> prompts;
  bool create_tiny = false, quiet = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) return Usage(absl::StrCat("unexpected argument '", a, "'"));
    std::string name = a.substr(2), value;
    for (char& c : name) c = c == '-' ? '_' : c;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "create_tiny") { create_tiny = true; continue; }
    if (name == "quiet") { quiet = true; continue; }
    if (eq == std::string::npos) {
      if (i + 1 >= argc) return Usage(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (name == "prompt") {
      prompts.emplace_back(0, value);
    } else if (name == "chunk_prompt") {
      const size_t e = value.find('=');
      int k = 0;
      if (e == std::string::npos || !absl::SimpleAtoi(value.substr(0, e), &k) || k < 0) {
        return Usage(absl::StrCat("--chunk_prompt must be K=TEXT with K >= 0, got '", value, "'"));
      }
      prompts.emplace_back(k, value.substr(e + 1));
    } else if (name == "model_dir" || name == "output" || name == "fragments_dir" || name == "mode" ||
               name == "image" || name == "prefix_video" || name == "frames" || name == "width" ||
               name == "height" || name == "fps" || name == "seed" || name == "steps" || name == "schedule" ||
               name == "overlap_decode" || name == "elide_self_only_copy" || name == "lead_kv_budget_mb") {
      flags[name] = value;
    } else {
      return Usage(absl::StrCat("unknown option --", name));
    }
  }
  if (flags["model_dir"].empty()) return Usage("--model_dir is required");
  if (flags["output"].empty()) return Usage("--output is required");
  if (prompts.empty()) return Usage("--prompt is required");
  auto int_flag = [&](const char* name, int lo, int hi, int64_t* out) -> bool {
    auto it = flags.find(name);
    if (it == flags.end()) return true;
    if (!absl::SimpleAtoi(it->second, out) || *out < lo || *out > hi) {
      Usage(absl::StrCat("--", name, " must be an integer in [", lo, ", ", hi, "], got '", it->second, "'"));
      return false;
    }
    return true;
  };
  int64_t frames = 0, width = 0, height = 0, fps = 0, seed = 0, steps = 0;
  if (!int_flag("frames", 1, 100000, &frames) || !int_flag("width", 16, 8192, &width) ||
      !int_flag("height", 16, 8192, &height) || !int_flag("fps", 1, 240, &fps) ||
      !int_flag("seed", 0, 2147483647, &seed) || !int_flag("steps", 1, 10000, &steps)) {
    return 2;
  }
  ModelRunnerOptions runner_options;
  if (flags.count("schedule")) {
    auto schedule = ParseSchedule("--schedule", flags["schedule"]);
    if (!schedule.ok()) return Usage(std::string(schedule.status().message()));
    runner_options.schedule = *schedule;
  }
  if (flags.count("overlap_decode")) {
    const std::string& v = flags["overlap_decode"];
    if (v != "true" && v != "false") return Usage(absl::StrCat("--overlap_decode must be true or false, got '", v, "'"));
    runner_options.overlap_decode = v == "true";
  }
  if (flags.count("elide_self_only_copy")) {
    const std::string& v = flags["elide_self_only_copy"];
    if (v != "true" && v != "false") {
      return Usage(absl::StrCat("--elide_self_only_copy must be true or false, got '", v, "'"));
    }
    runner_options.elide_self_only_copy = v == "true";
  }
  if (flags.count("lead_kv_budget_mb")) {
    auto bytes = ParseLeadKvBudgetMb("--lead_kv_budget_mb", flags["lead_kv_budget_mb"]);
    if (!bytes.ok()) return Usage(std::string(bytes.status().message()));
    runner_options.lead_kv_budget_bytes = *bytes;
  }
  const std::string model_dir = flags["model_dir"];
  if (create_tiny && !TinyModelSetComplete(model_dir)) {
    if (auto s = WriteTinyModelSet(model_dir); !s.ok()) {
      std::fprintf(stderr, "magi generate: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  auto runner = ModelJobRunner::Load(model_dir, runner_options);
  if (!runner.ok()) {
    std::fprintf(stderr, "magi generate: %s\n", std::string(runner.status().message()).c_str());
    return 1;
  }
  if (!quiet) std::fprintf(stderr, "model %s: %s\n", model_dir.c_str(), (*runner)->conditioning().c_str());
  const auto models = (*runner)->Models();
  const auto& info = models.front();
  ::magi::v1::GenerateRequest r;
  r.set_model(info.name());
  const std::string mode = flags.count("mode") ? flags["mode"] : "t2v";
  if (mode == "t2v") {
    r.set_mode(::magi::v1::MODE_T2V);
  } else if (mode == "i2v" || mode == "v2v") {
    const char* file_flag = mode == "i2v" ? "image" : "prefix_video";
    std::string bytes;
    if (!flags.count(file_flag) || !ReadFile(flags[file_flag], &bytes)) {
      return Usage(absl::StrCat("--mode ", mode, " needs a readable --", file_flag));
    }
    if (mode == "i2v") {
      r.set_mode(::magi::v1::MODE_I2V);
      r.set_image(bytes);
    } else {
      r.set_mode(::magi::v1::MODE_V2V);
      r.set_prefix_video(bytes);
    }
  } else {
    return Usage(absl::StrCat("--mode must be t2v, i2v or v2v, got '", mode, "'"));
  }
  for (const auto& [k, text] : prompts) {
    auto* p = r.add_prompts();
    p->set_from_chunk(k);
    p->set_text(text);
  }
  // 0 = the model's default, as for a served request.
  r.set_num_frames(static_cast<int>(frames));
  r.set_width(static_cast<int>(width));
  r.set_height(static_cast<int>(height));
  r.set_fps(static_cast<int>(fps));
  r.set_seed(seed);
  r.set_num_steps(static_cast<int>(steps));
  // The JobSpec the server's edge would build from this model's declaration: a request the
  // model cannot run is refused here, naming the flag's field, before anything runs.
  RunnerJob job;
  job.job_id = "local";
  auto spec = BuildJobSpec(r, info);
  if (!spec.ok()) {
    std::fprintf(stderr, "magi generate: %s\n", std::string(spec.status().message()).c_str());
    return spec.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  job.spec = *std::move(spec);
  if (!flags["fragments_dir"].empty()) fs::create_directories(flags["fragments_dir"]);
  Mp4FileSink sink(flags["output"], flags["fragments_dir"], quiet);
  absl::Status st = sink.Start(job.spec);
  if (st.ok()) st = (*runner)->Run(job, sink);
  if (st.ok()) st = sink.Finish();
  if (!st.ok()) {
    std::fprintf(stderr, "%smagi generate: %s\n", quiet ? "" : "\n", std::string(st.message()).c_str());
    return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!quiet) {
    std::fprintf(stderr, "\nwrote %s: %d frames %dx%d at %d fps in %d chunks, %.2f s\n", flags["output"].c_str(),
                 sink.frames(), job.request().width(), job.request().height(), job.spec.encode().fps(),
                 job.chunks_total(), sink.Seconds());
  }
  return 0;
}

}  // namespace magi
