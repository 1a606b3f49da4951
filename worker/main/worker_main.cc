// magi-worker: one worker group's leader process. Dials magi-server, registers, runs the
// jobs it is assigned and streams their chunks back. See worker/main/worker_link.h.
//
//   magi-worker --server=127.0.0.1:50051 [--group-id=gpu0] [--runner=synthetic]
//   magi-worker --server=... --runner=model --model-dir=DIR [--create-tiny-model]
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "worker/main/runner_factory.h"
#include "worker/main/worker_link.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "magi-server address to dial");
ABSL_FLAG(std::string, group_id, "worker", "name of this worker group (logs, metrics)");
ABSL_FLAG(std::string, runner, "synthetic",
          "synthetic (test patterns, for tests and development) or model (MAGI-1)");
ABSL_FLAG(int, synthetic_step_ms, 5, "synthetic runner: milliseconds per simulated step");
ABSL_FLAG(std::string, model_dir, "", "model runner: folder with the model's config and weights");
ABSL_FLAG(bool, create_tiny_model, false,
          "model runner: generate the embedded 'tiny' model set in --model_dir if it is missing");
ABSL_FLAG(bool, reconnect, true, "reconnect when the stream to the server ends");

namespace {

// absl flags are spelled with underscores; accept the documented dashed spelling too
// (--state-dir=DIR is --state_dir=DIR).
void DashesToUnderscores(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (a[0] != '-' || a[1] != '-') continue;
    if (a[2] == '\0') break;  // "--" ends the flags
    for (char* c = a + 2; *c && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("magi-worker --server=ADDR [--runner=synthetic|model]");
  DashesToUnderscores(argc, argv);
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_synthetic_step_ms) < 0 || absl::GetFlag(FLAGS_synthetic_step_ms) > 60000) {
    std::fprintf(stderr, "magi-worker: --synthetic-step-ms: %d is out of range; allowed [0, 60000]\n",
                 absl::GetFlag(FLAGS_synthetic_step_ms));
    return 2;
  }
  magi::RunnerOptions ro;
  ro.runner = absl::GetFlag(FLAGS_runner);
  ro.synthetic_step_delay = absl::Milliseconds(absl::GetFlag(FLAGS_synthetic_step_ms));
  ro.model_dir = absl::GetFlag(FLAGS_model_dir);
  ro.create_tiny_model = absl::GetFlag(FLAGS_create_tiny_model);
  auto runner = magi::CreateJobRunner(ro);
  if (!runner.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(runner.status().message()).c_str());
    return 2;
  }
  magi::WorkerLinkOptions lo;
  lo.server = absl::GetFlag(FLAGS_server);
  lo.group_id = absl::GetFlag(FLAGS_group_id);
  lo.reconnect = absl::GetFlag(FLAGS_reconnect);
  magi::WorkerLink link(lo, runner->get());
  absl::Status s = link.Run();
  if (!s.ok()) std::fprintf(stderr, "magi-worker: %s\n", s.ToString().c_str());
  return s.ok() ? 0 : 1;
}
