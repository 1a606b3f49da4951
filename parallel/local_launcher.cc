#include "parallel/local_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace magi {

int PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 29500;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

absl::Status RunLocalGroup(const std::vector<std::string>& argv, const LaunchOptions& o) {
  if (argv.empty()) return absl::InvalidArgumentError("launcher: empty command");
  if (o.world_size < 1 || o.world_size > 256) {
    return absl::InvalidArgumentError(absl::StrCat("launcher: world size ", o.world_size, " must be in [1, 256]"));
  }
  const int local = o.local_ranks > 0 ? o.local_ranks : o.world_size;
  if (o.first_rank < 0 || o.first_rank + local > o.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("launcher: ranks [", o.first_rank, ", ", o.first_rank + local,
                                                   ") do not fit a world of ", o.world_size));
  }
  if (o.master_port <= 0 && local != o.world_size) {
    return absl::InvalidArgumentError("launcher: a group spanning several nodes needs an explicit master port");
  }
  const int port = o.master_port > 0 ? o.master_port : PickFreePort();
  std::vector<pid_t> pids;
  const pid_t launcher = ::getpid();
  for (int local_rank = 0; local_rank < local; ++local_rank) {
    const int rank = o.first_rank + local_rank;
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      bool ours = false;
      for (const char* k : {"MASTER_ADDR=", "MASTER_PORT=", "RANK=", "LOCAL_RANK=", "WORLD_SIZE="}) {
        if (kv.rfind(k, 0) == 0) ours = true;
      }
      if (!ours) env.push_back(kv);
    }
    env.push_back("MASTER_ADDR=" + o.master_addr);
    env.push_back(absl::StrCat("MASTER_PORT=", port));
    env.push_back(absl::StrCat("RANK=", rank));
    env.push_back(absl::StrCat("LOCAL_RANK=", local_rank));
    env.push_back(absl::StrCat("WORLD_SIZE=", o.world_size));
    for (const auto& e : o.env) env.push_back(e);
    pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids) ::kill(p, SIGKILL);
      return absl::InternalError(absl::StrCat("launcher: fork failed: ", std::strerror(errno)));
    }
    if (pid == 0) {
      // A rank never outlives its launcher (killed, or stopped by a supervisor).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) std::_Exit(1);
      if (rank > 0 && o.quiet_followers) {
        int devnull = ::open("/dev/null", O_WRONLY);
        if (devnull >= 0) ::dup2(devnull, STDOUT_FILENO);
      }
      std::vector<char*> cargv, cenv;
      for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
      cargv.push_back(nullptr);
      for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
      cenv.push_back(nullptr);
      ::execve(cargv[0], cargv.data(), cenv.data());
      std::fprintf(stderr, "launcher: cannot exec %s: %s\n", cargv[0], std::strerror(errno));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  absl::Status first_error;
  int running = local;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::now();
  std::vector<bool> done(local, false);
  while (running > 0) {
    int wstatus = 0;
    pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid > 0) {
      int idx = -1;
      for (int r = 0; r < local; ++r) {
        if (pids[r] == pid) idx = r;
      }
      if (idx < 0) continue;
      done[idx] = true;
      const int rank = o.first_rank + idx;
      --running;
      std::string why;
      if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) why = absl::StrCat("exited with code ", WEXITSTATUS(wstatus));
      if (WIFSIGNALED(wstatus)) why = absl::StrCat("was killed by signal ", WTERMSIG(wstatus));
      if (!why.empty() && first_error.ok() && !stopping) {
        first_error = absl::AbortedError(absl::StrCat("rank ", rank, " ", why));
        stopping = true;
        stop_deadline = std::chrono::steady_clock::now() + o.grace;
        for (int r = 0; r < local; ++r) {
          if (!done[r]) ::kill(pids[r], SIGTERM);
        }
      }
      continue;
    }
    if (stopping && std::chrono::steady_clock::now() > stop_deadline) {
      for (int r = 0; r < local; ++r) {
        if (!done[r]) ::kill(pids[r], SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first_error;
}

}  // namespace magi
