// magi-server: the gRPC front-end. See server/server_app.h and docs/architecture.md.
//
//   magi-server --state-dir=DIR [--listen=127.0.0.1:50051] [--http-listen=127.0.0.1:9464]
//               [--worker-listen=ADDR:PORT] [--worker-token-file=FILE] [--api-listen=127.0.0.1:8000]
//               [--local-workers=N] [--max-queue=256] ...
//
// Worker groups must present a token of --worker-token-file (server/token_auth.h); without
// the flag a fresh token is written to <state-dir>/worker_token (0600) at every start and
// the local workers are given that file.
//
// Prints one line "magi-server: listening grpc=ADDR:PORT http=ADDR:PORT workers=ADDR:PORT api=ADDR:PORT|off"
// on stdout once it serves. SIGTERM / SIGINT: stop admission, drain running jobs up to --drain-timeout-seconds,
// then exit 0; unfinished jobs stay persisted for the next start.
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "base/dashed_flags.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/local_workers.h"
#include "server/server_app.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address (port 0 = pick one)");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:9464",
          "HTTP address for /healthz /readyz /metrics (port 0 = pick one; empty = off)");
ABSL_FLAG(std::string, api_listen, "127.0.0.1:8000",
          "HTTP address of the OpenAI-compatible API (/v1/videos; port 0 = pick one; empty = off)");
ABSL_FLAG(int64_t, api_max_body_bytes, 48 << 20,
          "largest request body the OpenAI-compatible API reads (uploads); larger -> HTTP 413");
ABSL_FLAG(int, api_threads, 4, "threads serving the OpenAI-compatible API");
ABSL_FLAG(int64_t, api_ws_max_message_bytes, 1 << 20,
          "largest client message on the realtime WebSocket (/v1/realtime/video); more closes it with 1009");
ABSL_FLAG(std::string, worker_listen, "",
          "gRPC address serving only the worker protocol (WorkerPool); empty = served on --listen "
          "(port 0 = pick one)");
ABSL_FLAG(std::string, worker_token_file, "",
          "file with the worker token(s) that worker groups must present (one per line, re-read "
          "when it changes); empty = generate <state_dir>/worker_token (0600) at every start");
ABSL_FLAG(std::string, client_tokens_file, "",
          "file of '<token> <tenant>' lines (re-read when it changes); set = every gRPC call and "
          "OpenAI API request needs 'authorization: Bearer <token>' and sees only its tenant's jobs; "
          "empty = no client authentication (one anonymous tenant)");
ABSL_FLAG(int, tenant_max_queued, 0,
          "queued jobs one tenant may have at once; more are refused with RESOURCE_EXHAUSTED (0 = no limit)");
ABSL_FLAG(int, tenant_submits_per_minute, 0,
          "jobs one tenant may submit per minute (a burst of this many, then one every 60/N s); more are "
          "refused with RESOURCE_EXHAUSTED (0 = no limit; idempotent retries do not count)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve --listen (gRPC) and --api_listen (HTTPS/WSS) over TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: clients of --listen and --api_listen must present a certificate it signed (mTLS)");
ABSL_FLAG(std::string, state_dir, "magi-state", "folder for the job database, chunks and videos");
ABSL_FLAG(int, max_queue, 256, "queued jobs at most; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, retention_jobs, 1000, "finished jobs kept (oldest deleted first)");
ABSL_FLAG(double, retention_hours, 0, "also delete finished jobs older than this (0 = never)");
ABSL_FLAG(double, worker_timeout_seconds, 15, "a worker group silent this long is considered gone");
ABSL_FLAG(int, max_attempts, 3,
          "a job whose worker group is lost this many times is FAILED with the last error "
          "instead of being re-queued again");
ABSL_FLAG(double, drain_timeout_seconds, 30, "on SIGTERM, wait this long for running jobs");
ABSL_FLAG(std::string, default_model, "tiny",
          "model used when a request names none ('synthetic' with --worker-args=--runner=synthetic: "
          "that runner serves a model of its own)");
ABSL_FLAG(int, local_workers, 0, "start this many local magi-worker groups (embedded default)");
ABSL_FLAG(std::string, worker_binary, "", "magi-worker path (default: next to magi-server)");
ABSL_FLAG(std::string, worker_args, "",
          "space-separated extra flags for local workers (default: the MAGI-1 model runner on "
          "<state-dir>/models/tiny, generated on first start), e.g. '--runner=synthetic' (with "
          "--default-model=synthetic)");

namespace {


std::string SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The flag named `name` (dashes or underscores) in `args`, as "--name=value" or
// "--name value"; nullopt when absent.
std::optional<std::string> FindFlag(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.rfind("--", 0) != 0) continue;
    size_t eq = a.find('=');
    std::string key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    for (char& c : key) {
      if (c == '-') c = '_';
    }
    if (key != name) continue;
    if (eq != std::string::npos) return a.substr(eq + 1);
    return i + 1 < args.size() ? args[i + 1] : std::string();
  }
  return std::nullopt;
}

// Worker flags for the embedded default: the model runner on <state_dir>/models/tiny,
// generated on first start, unless `args` choose another runner or model folder.
std::vector<std::string> DefaultModelWorkerArgs(const std::vector<std::string>& args, const std::string& state_dir) {
  std::vector<std::string> out;
  auto runner = FindFlag(args, "runner");
  if (!runner) out.push_back("--runner=model");
  if ((!runner || *runner == "model") && !FindFlag(args, "model_dir")) {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::absolute(std::filesystem::path(state_dir) / "models" / "tiny", ec);
    out.push_back("--model_dir=" + dir.lexically_normal().string());
    out.push_back("--create_tiny_model");
  }
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "magi-server: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("magi-server --state-dir=DIR [--local-workers=N] [flags]");
  magi::DashesToUnderscores(argc, argv);
  absl::ParseCommandLine(argc, argv);

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::GetFlag(FLAGS_max_queue) < 1) {
    return Fail(absl::StrCat("--max-queue: ", absl::GetFlag(FLAGS_max_queue), " must be >= 1"));
  }
  if (absl::GetFlag(FLAGS_local_workers) < 0 || absl::GetFlag(FLAGS_local_workers) > 64) {
    return Fail(absl::StrCat("--local-workers: ", absl::GetFlag(FLAGS_local_workers),
                             " is out of range; allowed [0, 64]"));
  }
  if (absl::GetFlag(FLAGS_max_attempts) < 1) {
    return Fail(absl::StrCat("--max-attempts: ", absl::GetFlag(FLAGS_max_attempts), " must be >= 1"));
  }
  if (absl::GetFlag(FLAGS_tenant_max_queued) < 0) {
    return Fail(absl::StrCat("--tenant-max-queued: ", absl::GetFlag(FLAGS_tenant_max_queued), " must be >= 0"));
  }
  if (absl::GetFlag(FLAGS_tenant_submits_per_minute) < 0 || absl::GetFlag(FLAGS_tenant_submits_per_minute) > 1000000) {
    return Fail(absl::StrCat("--tenant-submits-per-minute: ", absl::GetFlag(FLAGS_tenant_submits_per_minute),
                             " must be in [0, 1000000]"));
  }
  if (!absl::GetFlag(FLAGS_tls_cert).empty() && absl::GetFlag(FLAGS_local_workers) > 0 &&
      absl::GetFlag(FLAGS_worker_listen).empty()) {
    return Fail("--tls-cert with --local-workers: local workers connect in plaintext; give them "
                "their own --worker-listen (e.g. 127.0.0.1:0)");
  }
  if (absl::GetFlag(FLAGS_worker_timeout_seconds) <= 0) {
    return Fail("--worker-timeout-seconds: must be > 0");
  }

  magi::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.worker_listen = absl::GetFlag(FLAGS_worker_listen);
  options.api.listen = absl::GetFlag(FLAGS_api_listen);
  options.api.max_body_bytes = absl::GetFlag(FLAGS_api_max_body_bytes);
  options.api.threads = absl::GetFlag(FLAGS_api_threads);
  options.api.ws_max_message_bytes = absl::GetFlag(FLAGS_api_ws_max_message_bytes);
  options.worker_token_file = absl::GetFlag(FLAGS_worker_token_file);
  options.client_tokens_file = absl::GetFlag(FLAGS_client_tokens_file);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.jobs.tenant_max_queued = static_cast<size_t>(absl::GetFlag(FLAGS_tenant_max_queued));
  options.jobs.tenant_submits_per_minute = absl::GetFlag(FLAGS_tenant_submits_per_minute);
  options.jobs.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.jobs.max_queue = static_cast<size_t>(absl::GetFlag(FLAGS_max_queue));
  options.jobs.retention_jobs = absl::GetFlag(FLAGS_retention_jobs);
  options.jobs.retention_hours = absl::GetFlag(FLAGS_retention_hours);
  options.jobs.worker_timeout_seconds = absl::GetFlag(FLAGS_worker_timeout_seconds);
  options.jobs.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.jobs.default_model = absl::GetFlag(FLAGS_default_model);
  // The embedded default model: local workers run MAGI-1 (--runner=model) on the "tiny"
  // set in <state-dir>/models/tiny, which the worker generates there on first start (the
  // server itself knows nothing of tensors). --worker-args may pick another runner
  // (e.g. --runner=synthetic for tests, whose model is "synthetic") or another --model-dir.

  magi::ServerApp app;
  if (auto s = app.Start(options); !s.ok()) return Fail(std::string(s.message()));

  magi::LocalWorkers workers;
  if (absl::GetFlag(FLAGS_local_workers) > 0) {
    magi::LocalWorkerOptions lw;
    lw.count = absl::GetFlag(FLAGS_local_workers);
    lw.worker_binary = absl::GetFlag(FLAGS_worker_binary).empty()
                           ? magi::DefaultWorkerBinary(SelfExe())
                           : absl::GetFlag(FLAGS_worker_binary);
    lw.server_address = absl::StrCat("127.0.0.1:", app.worker_port());
    lw.worker_token_file = app.worker_token_file();
    for (absl::string_view a : absl::StrSplit(absl::GetFlag(FLAGS_worker_args), ' ', absl::SkipEmpty())) {
      lw.extra_args.emplace_back(a);
    }
    lw.extra_args = DefaultModelWorkerArgs(lw.extra_args, options.jobs.state_dir);
    if (auto s = workers.Start(lw); !s.ok()) {
      app.Shutdown();
      return Fail(std::string(s.message()));
    }
  }

  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::string http_host = options.http_listen.substr(0, options.http_listen.rfind(':'));
  std::string worker_host = options.worker_listen.empty()
                                ? host
                                : options.worker_listen.substr(0, options.worker_listen.rfind(':'));
  std::string api_host = options.api.listen.substr(0, options.api.listen.rfind(':'));
  std::printf("magi-server: listening grpc=%s:%d http=%s:%d workers=%s:%d api=%s\n", host.c_str(), app.grpc_port(),
              http_host.c_str(), app.http_port(), worker_host.c_str(), app.worker_port(),
              options.api.listen.empty() ? "off" : absl::StrCat(api_host, ":", app.api_port()).c_str());
  std::fprintf(stderr, "magi-server: worker groups authenticate with a token of %s%s\n",
               app.worker_token_file().c_str(),
               options.worker_token_file.empty() ? " (generated at this start)" : "");
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "magi-server: signal %d: draining (up to %.0f s)\n", sig,
               absl::GetFlag(FLAGS_drain_timeout_seconds));
  bool drained = app.Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_seconds)));
  std::fprintf(stderr, "magi-server: %s; shutting down\n",
               drained ? "all running jobs finished" : "drain timeout; unfinished jobs stay queued");
  workers.Stop();
  app.Shutdown();
  return 0;
}
