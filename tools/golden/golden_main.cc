// magi-golden DIR [--only forward|ar|vae|t5] [--device cpu|cuda[:N]] [--tp N] [--cp M] [--no_onednn]
//             [--verbose] [--schedule reference|stream_first]
//
// Checks this build of magi-serve against the reference's golden tensors in DIR (laid out
// like shared/golden/A: golden.json, weights.safetensors, forward_*.safetensors, ...).
// Prints one line per case and closes with "N passed, M failed, K skipped"; exits 1 if
// any case failed or was skipped or if no case ran, 2 on bad usage. The first line names the host: CPU model, the ISA ATen
// dispatches to, the core OpenBLAS picked and whether oneDNN is on, so a failure seen on one
// kind of host is diagnosable from its log. --no_onednn runs LibTorch's CPU kernels without
// oneDNN (what a host without AVX-512 gets for bf16 GEMM/conv). --device runs the DiT (forward
// and ar cases) and the VAE on that device (scripts/gpu_check.sh: cuda); T5 stays on the CPU.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <dlfcn.h>

#include <fstream>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include "parallel/local_launcher.h"
#include "parallel/rank_group.h"
#include "tools/golden/golden_report.h"
#include "worker/model/device.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: magi-golden DIR [--only forward|ar|vae|t5] [--device cpu|cuda[:N]] [--tp N] [--cp M]\n"
               "                   [--no_onednn] [--verbose] [--schedule reference|stream_first]\n"
               "                   [--elide_self_only_copy]\n"
               "       magi-golden --host   (prints the host line and exits)\n"
               "  Runs every golden case of DIR against this build.\n"
               "  --device     where the DiT and the VAE run (default cpu); outputs are compared on the CPU\n"
               "  --no_onednn  LibTorch's CPU kernels without oneDNN (as on a host without AVX-512)\n"
               "  --schedule reference|stream_first  engine order of the 'ar' cases (default reference;\n"
               "               stream_first compares emitted chunks, final latents and KV cache only)\n"
               "  --elide_self_only_copy  'ar' cases skip the nearly-clean copy of a chunk that attends only\n"
               "               to itself (as served); compares emitted chunks, final latents and KV cache only\n");
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

// ATen's own report of the kernel set it dispatches to ("CPU capability usage: AVX2").
std::string AtenCapability() {
  const std::string config = at::show_config();
  const std::string key = "CPU capability usage: ";
  const size_t at = config.find(key);
  if (at == std::string::npos) return "unknown";
  const size_t end = config.find('\n', at);
  return config.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
}

// OpenBLAS names the kernel set it chose at load time; LibTorch reaches it through libblas.
std::string OpenBlasCore() {
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn != nullptr ? std::string(fn()) : std::string("not OpenBLAS");
}

std::string HostLine() {
  return "host: " + CpuModel() + "; ATen CPU kernels " + AtenCapability() + "; OpenBLAS core " + OpenBlasCore() +
         "; oneDNN " + (at::globalContext().userEnabledMkldnn() ? "on" : "off");
}

}  // namespace

int main(int argc, char** argv) {
  magi::GoldenContext ctx;
  std::string only;
  bool host_only = false;
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
#ifndef MAGI_GOLDEN_WITH_T5
      if (only == "t5") {
        std::fprintf(stderr, "magi-golden: --only t5: this build has no text encoder (a core-only build "
                             "configured without sentencepiece/ICU)\n");
        return 2;
      }
#endif
    } else if (a == "--device") {
      absl::StatusOr<c10::Device> device = magi::ParseDevice("--device", value("--device"));
      if (!device.ok()) {
        std::fprintf(stderr, "magi-golden: %s\n", std::string(device.status().message()).c_str());
        return 2;
      }
      ctx.device = *device;
    } else if (a == "--tp") {
      ctx.tp = positive("--tp");
    } else if (a == "--cp") {
      ctx.cp = positive("--cp");
    } else if (a == "--schedule" || a.rfind("--schedule=", 0) == 0) {
      const std::string v = a == "--schedule" ? value("--schedule") : a.substr(11);
      auto schedule = magi::ParseSchedule("--schedule", v);
      if (!schedule.ok()) {
        std::fprintf(stderr, "magi-golden: %s\n", std::string(schedule.status().message()).c_str());
        return 2;
      }
      ctx.schedule = *schedule;
    } else if (a == "--elide_self_only_copy") {
      ctx.elide_self_only_copy = true;
    } else if (a == "--host") {
      host_only = true;
    } else if (a == "--no_onednn") {
      at::globalContext().setUserEnabledMkldnn(false);
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
  if (host_only) {
    std::printf("%s\n", HostLine().c_str());
    return 0;
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
    if (ctx.device.is_cuda()) {
      // One GPU per rank (cuda:LOCAL_RANK), TP and CP collectives over NCCL, as magi-worker does.
      if (rdv->local_rank >= static_cast<int>(at::getNumGPUs())) {
        std::fprintf(stderr, "magi-golden: --device cuda with %d ranks needs a GPU per rank; %d visible\n", world,
                     static_cast<int>(at::getNumGPUs()));
        return 2;
      }
      rdv->backend = magi::CollectiveBackend::kNccl;
      rdv->cuda_device = rdv->local_rank;
      ctx.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(rdv->local_rank));
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
  std::fprintf(out, "%s\n", HostLine().c_str());
  if (!ctx.device.is_cpu()) std::fprintf(out, "device: %s (DiT and VAE)\n", ctx.device.str().c_str());
  magi::GoldenReport report(out);
  if (only.empty() || only == "forward") magi::RunForwardCases(ctx, report);
  if (only.empty() || only == "ar") magi::RunArCases(ctx, report);
  if (only.empty() || only == "vae") magi::RunVaeCases(ctx, report);
#ifdef MAGI_GOLDEN_WITH_T5
  if (only.empty() || only == "t5") magi::RunT5Cases(ctx, report);
#else
  if (only.empty()) {
    std::fprintf(out, "magi-golden: t5 cases not checked: this build has no text encoder (core-only, no "
                      "sentencepiece)\n");
  }
#endif
  std::fprintf(out, "%s\n", report.Summary().c_str());
  // A skip is a check that did not run, and a folder with no case checked nothing: both fail.
  if (report.skipped() > 0) std::fprintf(out, "magi-golden: %d case(s) skipped; a skip fails the run\n", report.skipped());
  if (report.passed() + report.failed() == 0) std::fprintf(out, "magi-golden: no case ran in %s\n", ctx.dir.c_str());
  return report.failed() > 0 || report.skipped() > 0 || report.passed() == 0 ? 1 : 0;
}
