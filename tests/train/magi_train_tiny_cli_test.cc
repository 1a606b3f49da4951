// The real magi-train-tiny binary: `vae` trains and writes a VAE folder the real loader reads;
// bad flags exit 2 naming the flag and write nothing to --out.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status = -1;
  std::string output;
};

CliRun Sh(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string(MAGI_TRAIN_TINY_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) r.output += buf.data();
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(MagiTrainTinyCli, VaeTrainsAndWritesAFolderTheLoaderReads) {
  const fs::path out = fs::temp_directory_path() / ("magi_train_cli_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const CliRun r = Sh("vae --out " + out.string() + " --steps 3 --batch 2 --frames 8 --size 32 --log_every 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/3: loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("held-out reconstruction MSE"), std::string::npos) << r.output;
  ViTVae::Options o;
  o.compute = VaeCompute::kFloat32;
  auto vae = ViTVae::LoadFolder(out.string(), o);
  EXPECT_TRUE(vae.ok()) << vae.status();
  fs::remove_all(out);
}

TEST(MagiTrainTinyCli, BadFlagsExit2NamingTheFlag) {
  const fs::path out = fs::temp_directory_path() / ("magi_train_cli_bad_" + std::to_string(::getpid()));
  fs::remove_all(out);
  CliRun r = Sh("vae");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--out: required"), std::string::npos) << r.output;
  r = Sh("vae --out " + out.string() + " --frames 10 --steps 1");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("frames must be a multiple"), std::string::npos) << r.output;
  r = Sh("vae --out " + out.string() + " --threads 0");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--threads: must be in [1, 256], got 0"), std::string::npos) << r.output;
  r = Sh("dit --out " + out.string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("usage: magi-train-tiny vae"), std::string::npos) << r.output;
  // Nothing was written: a run that fails leaves --out as it was.
  EXPECT_FALSE(fs::exists(out)) << out;
  fs::remove_all(out);
}

}  // namespace
}  // namespace magi
