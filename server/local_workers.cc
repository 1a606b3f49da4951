#include "server/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace magi {

namespace fs = std::filesystem;

std::string DefaultWorkerBinary(const std::string& self_exe) {
  fs::path dir = fs::path(self_exe).parent_path();
  for (fs::path p : {dir / "magi-worker", dir / ".." / "worker" / "main" / "magi-worker"}) {
    if (::access(p.c_str(), X_OK) == 0) return fs::weakly_canonical(p).string();
  }
  return "magi-worker";
}

LocalWorkers::~LocalWorkers() { Stop(); }

absl::Status LocalWorkers::Start(const LocalWorkerOptions& options) {
  options_ = options;
  if (options.count <= 0) return absl::OkStatus();
  if (::access(options.worker_binary.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--worker-binary: '", options.worker_binary,
                                                   "' is not an executable magi-worker"));
  }
  if (options.worker_token_file.empty()) {
    return absl::InvalidArgumentError("local workers need the server's worker token file (none given)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < options.count; ++i) {
    pid_t pid = Spawn(i);
    if (pid <= 0) return absl::InternalError("fork of a local worker failed");
    pids_.push_back(pid);
  }
  supervisor_ = std::thread([this] { Supervise(); });
  return absl::OkStatus();
}

pid_t LocalWorkers::Spawn(int index) {
  std::vector<std::string> args = {options_.worker_binary, "--server=" + options_.server_address,
                                   absl::StrCat("--group-id=local-", index)};
  for (const auto& a : options_.extra_args) args.push_back(a);
  // Last, so that it wins over a stray --worker_token_file in --worker_args.
  if (!options_.worker_token_file.empty()) args.push_back("--worker_token_file=" + options_.worker_token_file);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);  // the server died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the server blocks SIGTERM for sigwait
    ::execv(argv[0], argv.data());
    static const char kMsg[] = "magi-server: cannot exec the local worker binary\n";
    ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);  // async-signal-safe
    (void)ignored;
    ::_exit(127);
  }
  return pid;
}

void LocalWorkers::Supervise() {
  while (!stopping_) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] != pid) continue;
      if (stopping_) break;
      std::fprintf(stderr, "magi-server: local worker %zu (pid %d) exited (%s %d); restarting\n", i,
                   pid, WIFSIGNALED(status) ? "signal" : "status",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      pids_[i] = Spawn(static_cast<int>(i));
    }
  }
}

void LocalWorkers::Stop() {
  if (stopping_.exchange(true)) return;
  if (supervisor_.joinable()) supervisor_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (pid_t pid : pids_) ::kill(pid, SIGTERM);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t pid : pids_) {
    for (;;) {
      int status;
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || r < 0) break;
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  pids_.clear();
}

std::vector<pid_t> LocalWorkers::pids() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pids_;
}

}  // namespace magi
