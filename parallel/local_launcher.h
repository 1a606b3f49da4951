// Starts a local group of rank processes, torchrun-style: the same program N times with
// MASTER_ADDR=127.0.0.1, MASTER_PORT (a free port), RANK, LOCAL_RANK and WORLD_SIZE set.
// If any rank fails (non-zero exit or a signal), the others are stopped (SIGTERM, then
// SIGKILL after a grace period) and the error names the rank that failed first. Ranks get
// SIGTERM when the launcher itself dies, so stopping the launcher stops the group.
#ifndef MAGI_PARALLEL_LOCAL_LAUNCHER_H_
#define MAGI_PARALLEL_LOCAL_LAUNCHER_H_

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace magi {

struct LaunchOptions {
  int world_size = 1;
  // Ranks started here: [first_rank, first_rank + local_ranks); 0 = all of world_size (one
  // node). Multi-node groups start one launcher per node with its own first_rank.
  int local_ranks = 0;
  int first_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: pick a free port (single node only)
  // Extra environment for every rank ("NAME=value").
  std::vector<std::string> env;
  // Ranks other than 0 write their stdout to /dev/null (their stderr is kept).
  bool quiet_followers = true;
  std::chrono::milliseconds grace = std::chrono::seconds(5);
};

// Runs `argv` (argv[0] is the executable path) as every rank and waits for all of them.
// OK when all exit 0; otherwise an error such as "rank 1 exited with code 3" or
// "rank 2 was killed by signal 9".
absl::Status RunLocalGroup(const std::vector<std::string>& argv, const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago.
int PickFreePort();

}  // namespace magi

#endif  // MAGI_PARALLEL_LOCAL_LAUNCHER_H_
