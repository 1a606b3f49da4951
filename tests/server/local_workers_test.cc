// LocalWorkers (magi-server --local_workers N) with a stand-in worker binary, a shell script
// that records its arguments: what each child is given (its group id, the extra flags, the
// token file's path last), that an exited child is restarted in its slot, that Stop() ends
// them all, and what Start() refuses.
#include "server/local_workers.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace magi {
namespace {

namespace fs = std::filesystem;

class LocalWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi-local-workers-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // The stand-in: records its arguments (one per line) in args.<group id>.<n>; exits 3 on
    // its first start in a slot when `flaky` exists, else waits to be signalled.
    script_ = (dir_ / "fake-worker").string();
    std::ofstream(script_) << "#!/bin/sh\n"
                              "dir=$(dirname \"$0\")\n"
                              "for a in \"$@\"; do case $a in --group-id=*) g=${a#--group-id=};; esac; done\n"
                              "n=$(ls \"$dir\" | grep -c \"^args.$g.\")\n"
                              "printf '%s\\n' \"$@\" > \"$dir/args.$g.$n.tmp\" && mv \"$dir/args.$g.$n.tmp\" \"$dir/args.$g.$n\"\n"
                              "if [ -e \"$dir/flaky\" ] && [ \"$n\" = 0 ]; then exit 3; fi\n"
                              "exec sleep 60\n";
    ::chmod(script_.c_str(), 0755);
  }
  void TearDown() override { fs::remove_all(dir_); }

  LocalWorkerOptions Options(int count) const {
    LocalWorkerOptions o;
    o.count = count;
    o.worker_binary = script_;
    o.server_address = "127.0.0.1:5";
    o.worker_token_file = (dir_ / "worker_token").string();
    o.extra_args = {"--runner=synthetic", "--worker_token_file=/stray"};
    return o;
  }
  // Waits (up to 10 s) for the file to appear; its lines.
  std::vector<std::string> WaitArgs(const std::string& name) const {
    const fs::path p = dir_ / name;
    for (int i = 0; i < 1000 && !fs::exists(p); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  static bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }

  fs::path dir_;
  std::string script_;
};

TEST_F(LocalWorkersTest, EachChildGetsItsGroupTheExtraFlagsAndTheTokenFileLast) {
  LocalWorkers w;
  ASSERT_TRUE(w.Start(Options(2)).ok());
  ASSERT_EQ(w.pids().size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const std::string group = "local-" + std::to_string(i);
    const auto args = WaitArgs("args." + group + ".0");
    const std::vector<std::string> want = {"--server=127.0.0.1:5", "--group-id=" + group, "--runner=synthetic",
                                           "--worker_token_file=/stray",
                                           "--worker_token_file=" + (dir_ / "worker_token").string()};
    EXPECT_EQ(args, want) << group;
  }
  const auto pids = w.pids();
  w.Stop();
  EXPECT_TRUE(w.pids().empty());
  for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << pid;  // reaped: no such process any more
}

TEST_F(LocalWorkersTest, AnExitedChildIsRestartedInItsSlot) {
  std::ofstream(dir_ / "flaky") << "";
  LocalWorkers w;
  ASSERT_TRUE(w.Start(Options(1)).ok());
  const pid_t first = w.pids().at(0);
  // The first start exits 3; the supervisor starts the slot again with the same arguments.
  const auto again = WaitArgs("args.local-0.1");
  ASSERT_FALSE(again.empty()) << "the exited worker was not restarted";
  EXPECT_EQ(again, WaitArgs("args.local-0.0"));
  pid_t now = first;
  for (int i = 0; i < 500 && now == first; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now = w.pids().at(0);
  }
  EXPECT_NE(now, first);
  EXPECT_TRUE(Alive(now));
  w.Stop();
  EXPECT_FALSE(Alive(now));
  EXPECT_FALSE(fs::exists(dir_ / "args.local-0.2")) << "restarted after Stop()";
}

TEST_F(LocalWorkersTest, StartRefusesAMissingBinaryAndAMissingTokenFile) {
  LocalWorkers none;
  EXPECT_TRUE(none.Start(Options(0)).ok());  // nothing to start, nothing checked
  EXPECT_TRUE(none.pids().empty());

  LocalWorkerOptions o = Options(1);
  o.worker_binary = (dir_ / "no-such-worker").string();
  LocalWorkers missing;
  absl::Status s = missing.Start(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--worker-binary"), std::string::npos) << s;

  o = Options(1);
  o.worker_token_file.clear();
  LocalWorkers no_token;
  s = no_token.Start(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token file"), std::string::npos) << s;
  EXPECT_TRUE(no_token.pids().empty());
}

TEST_F(LocalWorkersTest, DefaultWorkerBinaryLooksNextToTheServerThenInTheBuildTree) {
  const fs::path build = dir_ / "build";
  fs::create_directories(build / "server");
  fs::create_directories(build / "worker" / "main");
  const std::string self = (build / "server" / "magi-server").string();
  EXPECT_EQ(DefaultWorkerBinary(self), "magi-worker");  // none there: left to PATH
  fs::copy_file(script_, build / "worker" / "main" / "magi-worker");
  EXPECT_EQ(DefaultWorkerBinary(self), fs::weakly_canonical(build / "worker" / "main" / "magi-worker").string());
  fs::copy_file(script_, build / "server" / "magi-worker");
  EXPECT_EQ(DefaultWorkerBinary(self), fs::weakly_canonical(build / "server" / "magi-worker").string());
}

}  // namespace
}  // namespace magi
