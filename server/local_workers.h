// LocalWorkers: the embedded default. `magi-server --local-workers N` starts N magi-worker
// processes on this machine that dial back to the server, and restarts any that exits
// (with a short back-off) until Stop(). Each child dies with the server (PR_SET_PDEATHSIG),
// so a killed server never leaves orphans serving a stale address. Each is given the path of
// the server's worker token file, so it can authenticate (server/token_auth.h).
//
// Thread safety: Start/Stop from one thread; a supervisor thread reaps and restarts.
// Owns the child processes; not copyable.
#ifndef MAGI_SERVER_LOCAL_WORKERS_H_
#define MAGI_SERVER_LOCAL_WORKERS_H_

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace magi {

struct LocalWorkerOptions {
  int count = 0;
  std::string worker_binary;  // path of magi-worker
  std::string server_address; // what the workers dial
  std::string worker_token_file;  // passed as --worker_token_file (the path, never the token)
  std::vector<std::string> extra_args;  // passed to every worker (e.g. --runner=synthetic)
};

class LocalWorkers {
 public:
  LocalWorkers() = default;
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  // Starts the workers. InvalidArgument naming --worker-binary if it is not executable.
  absl::Status Start(const LocalWorkerOptions& options);
  // Sends SIGTERM to every worker, waits up to 5 s, then SIGKILL.
  void Stop();
  std::vector<pid_t> pids() const;

 private:
  pid_t Spawn(int index);
  void Supervise();

  LocalWorkerOptions options_;
  mutable std::mutex mu_;
  std::vector<pid_t> pids_;
  std::atomic<bool> stopping_{false};
  std::thread supervisor_;
};

// Where magi-worker probably is: next to `self_exe`, or in ../worker/main/ of a build tree.
std::string DefaultWorkerBinary(const std::string& self_exe);

}  // namespace magi

#endif  // MAGI_SERVER_LOCAL_WORKERS_H_
