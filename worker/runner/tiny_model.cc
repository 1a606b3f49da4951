#include "worker/runner/tiny_model.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "jobspec/builtin_models.h"
#include "worker/model/random_checkpoint.h"
#include "worker/model/safetensors.h"
#include "worker/model/special_tokens.h"
#include "worker/t5/random_t5_checkpoint.h"
#include "worker/t5/t5_tokenizer.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vae_config.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kManifest[] = "tiny_model.json";
constexpr int kT5DModel = 64;       // = DiT caption_channels
constexpr int kSpmVocab = 256;      // SentencePiece pieces asked of spm_train (soft limit)

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("tiny model: cannot write '", path.string(), "'"));
  return absl::OkStatus();
}

// A small English corpus of video-prompt-like sentences, deterministic in `seed`. It holds
// every word of the synthetic world's captions (physics/world.h: colours, shapes, motions,
// directions), so each is one piece: spelled out in letters, a three-object caption is about
// 100 tokens and caption_max_length cuts it to its first object.
std::string MakeCorpus(uint64_t seed) {
  static const char* kWords[] = {
      "ball", "box", "falls", "bounces", "rolls", "slides", "to", "left", "right", "yellow",
      "purple", "orange",
      "a", "the", "an", "of", "in", "on", "with", "and", "through", "over", "under", "near", "at",
      "red", "blue", "green", "golden", "dark", "bright", "small", "large", "old", "young", "quiet",
      "fox", "cat", "dog", "bird", "horse", "person", "woman", "man", "child", "car", "train", "boat",
      "snow", "rain", "forest", "river", "ocean", "beach", "mountain", "city", "street", "garden",
      "sky", "cloud", "sun", "sunset", "night", "light", "fire", "water", "tree", "flower", "house",
      "running", "walking", "flying", "swimming", "dancing", "falling", "moving", "standing", "looking",
      "camera", "pans", "zooms", "slowly", "quickly", "close", "up", "wide", "shot", "view", "motion",
      "cinematic", "realistic", "video", "scene", "frame", "color", "style", "high", "quality"};
  const size_t n = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937_64 rng(seed);
  std::string text;
  for (int line = 0; line < 600; ++line) {
    const int len = 4 + static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) {
      if (i) text += ' ';
      text += kWords[rng() % n];
    }
    text += line % 3 == 0 ? ".\n" : "\n";
  }
  return text;
}

// Runs spm_train in `dir` (relative file names, so the model bytes do not depend on the
// folder: spm stores its model_prefix and input names in the model).
absl::Status TrainSentencePiece(const fs::path& dir) {
  const std::string log = (dir / "spm_train.log").string();
  std::vector<std::string> args = {"spm_train",
                                   "--input=corpus.txt",
                                   "--model_prefix=spiece",
                                   absl::StrCat("--vocab_size=", kSpmVocab),
                                   "--model_type=unigram",
                                   "--pad_id=0",
                                   "--eos_id=1",
                                   "--unk_id=2",
                                   "--bos_id=-1",
                                   "--num_threads=1",
                                   "--hard_vocab_limit=false",
                                   "--character_coverage=1.0"};
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("tiny model: fork for spm_train: ", std::strerror(errno)));
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("spm_train", argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("tiny model: waitpid(spm_train): ", std::strerror(errno)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string tail = ss.str();
    if (tail.size() > 800) tail = tail.substr(tail.size() - 800);
    const bool missing = WIFEXITED(status) && WEXITSTATUS(status) == 127;
    return absl::FailedPreconditionError(absl::StrCat(
        "tiny model: spm_train ", missing ? "was not found on PATH (Debian package 'sentencepiece')" : "failed",
        " (exit status ", WIFEXITED(status) ? WEXITSTATUS(status) : -1, "); log ", log, ": ", tail));
  }
  fs::remove(dir / "spiece.vocab");
  fs::remove(dir / "corpus.txt");
  fs::remove(dir / "spm_train.log");
  return absl::OkStatus();
}

// HF T5EncoderModel (v1.1, gated-gelu): d_model = the DiT's caption_channels, `vocab` rows.
absl::Status WriteTinyT5(const fs::path& dir, int64_t vocab, uint64_t seed) {
  T5Config c;
  c.vocab_size = vocab;
  c.d_model = kT5DModel;
  c.d_kv = 16;
  c.d_ff = 128;
  c.num_layers = 2;
  c.num_heads = 4;
  return WriteRandomT5Folder(c, dir.string(), seed);
}

// special_tokens.npz as released (caption, logo, 100 other tokens, float64), random values of
// the released file's scale N(0, 0.125^2), `width` = caption_channels.
absl::Status WriteTinySpecialTokens(const fs::path& path, int64_t width, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    return at::normal(0.0, 0.125, shape, gen, at::TensorOptions().dtype(at::kDouble));
  };
  at::Tensor caption = normal({1, width}), logo = normal({1, width}), other = normal({100, width});
  return WriteSpecialTokens(path.string(), caption, logo, other);
}

// A complete set of an older format with this seed: generated by us, replaced on upgrade.
bool OlderTinySet(const fs::path& dir, uint64_t seed) {
  std::ifstream in(dir / kManifest);
  if (!in) return false;
  json m = json::parse(in, nullptr, false);
  return !m.is_discarded() && m.is_object() && m.value("name", "") == kTinyModelName &&
         m.value("seed", uint64_t{0}) == seed &&
         m.value("format", 0) < kTinyModelFormat;
}

std::string ManifestText(uint64_t seed) {
  json m = {{"name", kTinyModelName},
            {"seed", seed},
            {"format", kTinyModelFormat},
            {"note", "random weights generated by magi-worker (worker/runner/tiny_model.h); not a trained model"}};
  return m.dump(2) + "\n";
}

}  // namespace

// The released ViTVAE (its flags and patch geometry) at a tiny width.
// embed_dim must be a multiple of patch_size^2 * patch_length = 256 (the decoder unpatchify).
VaeConfig TinyVaeConfig() {
  VaeConfig v = ReleasedVaeConfig();
  v.video_length = 12;
  v.embed_dim = 256;
  v.depth = 2;
  v.num_heads = 4;
  v.mlp_ratio = 1.0;
  return v;
}

MagiConfig TinyModelSetConfig() {
  // The DiT of TinyMagiConfig with the T5 below; what the server declares for "tiny" before any
  // worker registers (jobspec/builtin_models.h) is the one source of the served defaults.
  const ::magi::internal::v1::ModelInfo tiny = TinyModelInfo();
  MagiConfig c = TinyMagiConfig();
  c.model.caption_channels = kT5DModel;
  c.model.caption_max_length = 32;
  RuntimeConfig& r = c.runtime;
  r.chunk_width = tiny.latent_frames_per_chunk();  // x temporal factor 4 = 24 frames, as MAGI-1
  r.window_size = 2;
  r.num_frames = tiny.default_frames();
  r.video_size_h = tiny.default_height();
  r.video_size_w = tiny.default_width();
  r.num_steps = tiny.default_steps();
  r.fps = tiny.default_fps();
  r.seed = tiny.default_seed();
  r.load = "dit";
  r.t5_pretrained = "t5";
  r.t5_device = "cpu";
  r.vae_pretrained = "vae";
  c.serving.name = tiny.name();  // served as "tiny" whatever the folder is called
  return c;
}

bool TinyModelSetComplete(const std::string& dir, uint64_t seed) {
  // The manifest's fields, not its text: the free-text note may change between releases
  // (it names the generator's source file) without the set changing.
  std::ifstream in(fs::path(dir) / kManifest);
  if (!in) return false;
  json m = json::parse(in, nullptr, false);
  return !m.is_discarded() && m.is_object() && m.value("name", "") == kTinyModelName &&
         m.value("seed", uint64_t{0}) == seed && m.value("format", 0) == kTinyModelFormat;
}

absl::Status WriteTinyModelSet(const std::string& dir, uint64_t seed) {
  if (dir.empty()) return absl::InvalidArgumentError("tiny model: the folder name is empty");
  if (TinyModelSetComplete(dir, seed)) return absl::OkStatus();
  const fs::path target = fs::absolute(dir).lexically_normal();
  std::error_code ec;
  const bool upgrade = OlderTinySet(target, seed);
  if (fs::exists(target, ec) && !upgrade) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tiny model: '", target.string(), "' exists but is not a complete tiny model set with seed ", seed,
        " (no matching ", kManifest, "); remove it or choose another --model-dir"));
  }
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("tiny model: cannot create '", target.parent_path().string(),
                                            "': ", ec.message()));
  }
  // Temp folders of generators that died mid-way (their pid is gone) are removed.
  const std::string tmp_prefix = absl::StrCat(".", target.filename().string(), ".tmp-");
  for (const auto& e : fs::directory_iterator(target.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(tmp_prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + tmp_prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove_all(e.path(), ignored);
    }
  }
  const fs::path tmp = target.parent_path() / absl::StrCat(tmp_prefix, ::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp / "dit", ec);
  fs::create_directories(tmp / "t5", ec);
  if (ec) return absl::InternalError(absl::StrCat("tiny model: cannot create '", tmp.string(), "': ", ec.message()));

  auto build = [&]() -> absl::Status {
    const MagiConfig config = TinyModelSetConfig();
    MAGI_RETURN_IF_ERROR(ValidateMagiConfig(config));
    RandomCheckpointOptions dit;
    dit.seed = seed;
    MAGI_RETURN_IF_ERROR(WriteRandomDitCheckpoint(config.model, (tmp / "dit" / "model.safetensors").string(), dit));
    MAGI_RETURN_IF_ERROR(WriteRandomVaeFolder(TinyVaeConfig(), (tmp / "vae").string(), seed + 1));
    MAGI_RETURN_IF_ERROR(WriteText(tmp / "t5" / "corpus.txt", MakeCorpus(seed + 2)));
    MAGI_RETURN_IF_ERROR(TrainSentencePiece(tmp / "t5"));
    // The T5 vocabulary is what the tokenizer can emit (pieces + 100 <extra_id_N>).
    MAGI_ASSIGN_OR_RETURN(auto tokenizer, T5Tokenizer::Load((tmp / "t5" / "spiece.model").string()));
    MAGI_RETURN_IF_ERROR(WriteTinyT5(tmp / "t5", tokenizer->vocab_size(), seed + 3));
    MAGI_RETURN_IF_ERROR(WriteTinySpecialTokens(tmp / "special_tokens.npz", config.model.caption_channels, seed + 4));
    MAGI_RETURN_IF_ERROR(WriteText(tmp / "config.json", MagiConfigToJson(config)));
    return WriteText(tmp / kManifest, ManifestText(seed));
  };
  absl::Status s = build();
  if (!s.ok()) {
    fs::remove_all(tmp, ec);
    return s;
  }
  if (upgrade) {
    // Move the older set aside first (rename cannot replace a non-empty folder).
    const fs::path old = target.parent_path() / absl::StrCat(tmp_prefix, ::getpid(), "-old");
    fs::rename(target, old, ec);
    if (!ec) fs::remove_all(old, ec);
    ec.clear();
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove_all(tmp);
    // Another process finished first: use its set.
    if (TinyModelSetComplete(dir, seed)) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("tiny model: cannot rename '", tmp.string(), "' to '", target.string(),
                                            "': ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace magi
