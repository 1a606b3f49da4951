// magi-golden DIR [--only forward|ar|vae|t5] [--tp N] [--cp M] [--verbose]
//
// Checks this build of magi-serve against the reference's golden tensors in DIR (laid out
// like shared/golden/A: golden.json, weights.safetensors, forward_*.safetensors, ...).
// Prints one line per case and closes with "N passed, M failed, K skipped"; exits 1 if
// any case failed, 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "parallel/local_launcher.h"
#include "parallel/rank_group.h"
#include "tools/golden/golden_report.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: magi-golden DIR [--only forward|ar|vae|t5] [--tp N] [--cp M] [--verbose]\n"
               "  Runs every golden case of DIR against this build.\n");
}

}  // namespace

int main(int argc, char** argv) {
  magi::GoldenContext ctx;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "magi-golden: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    auto positive = [&](const char* flag) {
      std::string v = value(flag);
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "magi-golden: %s must be an integer in [1, 64], got '%s'\n", flag, v.c_str());
        std::exit(2);
      }
      return static_cast<int>(n);
    };
    if (a == "--only") {
      only = value("--only");
      if (only != "forward" && only != "ar" && only != "vae" && only != "t5") {
        std::fprintf(stderr, "magi-golden: --only must be one of forward, ar, vae, t5; got '%s'\n", only.c_str());
        return 2;
      }
    } else if (a == "--tp") {
      ctx.tp = positive("--tp");
    } else if (a == "--cp") {
      ctx.cp = positive("--cp");
    } else if (a == "--verbose" || a == "-v") {
      ctx.verbose = true;
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "magi-golden: unknown option '%s'\n", a.c_str());
      Usage();
      return 2;
    } else if (ctx.dir.empty()) {
      ctx.dir = a;
    } else {
      std::fprintf(stderr, "magi-golden: more than one folder given ('%s', '%s')\n", ctx.dir.c_str(), a.c_str());
      return 2;
    }
  }
  if (ctx.dir.empty()) {
    Usage();
    return 2;
  }
  if (!std::filesystem::is_directory(ctx.dir)) {
    std::fprintf(stderr, "magi-golden: '%s' is not a folder\n", ctx.dir.c_str());
    return 2;
  }
  const int world = ctx.tp * ctx.cp;
  std::unique_ptr<magi::RankGroup> group;
  FILE* out = stdout;
  if (world > 1) {
    if (std::getenv("WORLD_SIZE") == nullptr) {
      // Launcher: the same command as every rank of a local group; rank 0 prints.
      std::vector<std::string> args;
      args.push_back(std::filesystem::canonical("/proc/self/exe").string());
      for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
      magi::LaunchOptions lo;
      lo.world_size = world;
      auto st = magi::RunLocalGroup(args, lo);
      if (!st.ok()) {
        std::fprintf(stderr, "magi-golden: %s\n", std::string(st.message()).c_str());
        return 1;
      }
      return 0;
    }
    auto rdv = magi::RendezvousFromEnv();
    if (!rdv.ok()) {
      std::fprintf(stderr, "magi-golden: %s\n", std::string(rdv.status().message()).c_str());
      return 2;
    }
    auto joined = magi::RankGroup::Join(*rdv, ctx.tp, ctx.cp);
    if (!joined.ok()) {
      std::fprintf(stderr, "magi-golden: %s\n", std::string(joined.status().message()).c_str());
      return 2;
    }
    group = std::move(*joined);
    group->StartPeerMonitor();
    ctx.layout = group->layout();
    ctx.tp_comm = &group->tp();
    ctx.cp_comm = &group->cp();
    if (group->rank() != 0) out = std::fopen("/dev/null", "w");
  }
  at::set_num_threads(1);
  magi::GoldenReport report(out);
  if (only.empty() || only == "forward") magi::RunForwardCases(ctx, report);
  if (only.empty() || only == "ar") magi::RunArCases(ctx, report);
  if (only.empty() || only == "vae") magi::RunVaeCases(ctx, report);
  if (only.empty() || only == "t5") magi::RunT5Cases(ctx, report);
  std::fprintf(out, "%s\n", report.Summary().c_str());
  return report.failed() > 0 ? 1 : 0;
}
