// Backpressure end to end (issue 15 item 3): many Watch streams of a finished job whose
// clients do not read hold one window each in the server, not the video; a slow reader
// still receives every byte; cancelling the streams releases what they held.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "jobspec/builtin_models.h"
#include "magi/v1/video_generation.grpc.pb.h"
#include "server/server_app.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;

class NullLink final : public WorkerGroupLink {
 public:
  void Send(const ServerMessage&) override {}
  void Close(const absl::Status&) override {}
};

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

template <typename Pred>
bool WaitFor(Pred pred, int ms = 10000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TEST(WatchBackpressureTest, UnreadWatchStreamsHoldAWindowEachAndASlowReaderGetsEveryByte) {
  const fs::path dir = fs::temp_directory_path() / ("magi-bp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.http_listen = "";
  o.jobs.state_dir = dir.string();
  o.jobs.feed.window_bytes = 128 << 10;
  ServerApp app;
  ASSERT_TRUE(app.Start(o).ok());
  JobManager& m = app.manager();

  // A finished job of 8 chunks x 256 KiB (a 2 MiB video), produced through a fake group.
  const int kChunks = 8;
  const size_t kFragment = 256 << 10;
  ::magi::internal::v1::Register reg;
  reg.set_group_id("fake");
  reg.set_slots(1);
  *reg.add_models() = TinyModelInfo();
  auto key = m.RegisterGroup(reg, std::make_shared<NullLink>());
  ASSERT_TRUE(key.ok()) << key.status();
  ::magi::v1::GenerateRequest req;
  req.add_prompts()->set_text("x");
  req.set_num_frames(kChunks * 24);
  req.set_width(64);
  req.set_height(64);
  auto job = m.Submit(kAnonymousTenant, req);
  ASSERT_TRUE(job.ok()) << job.status();
  for (int i = 0; i < kChunks; ++i) {
    WorkerMessage w;
    auto* c = w.mutable_chunk();
    c->set_job_id(job->job_id());
    c->set_attempt(1);
    c->set_index(i);
    c->set_frame_begin(i * 24);
    c->set_frame_end(i * 24 + 24);
    if (i == 0) c->set_init_segment("INIT");
    c->set_fragment(std::string(kFragment, static_cast<char>('a' + i)));
    m.OnWorkerMessage(*key, w);
  }
  WorkerMessage done;
  done.mutable_done()->set_job_id(job->job_id());
  done.mutable_done()->set_attempt(1);
  m.OnWorkerMessage(*key, done);
  ASSERT_EQ(m.GetJob(kAnonymousTenant, job->job_id())->state(), ::magi::v1::JOB_STATE_SUCCEEDED);
  const int64_t video = static_cast<int64_t>(kChunks * kFragment + 4);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // A client that does not read: without BDP probing its receive window stays at the HTTP/2
  // default (64 KiB), as for a client that stopped reading (and the client's own buffers,
  // in this process too, stay small).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(app.grpc_port()),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = ::magi::v1::VideoGeneration::NewStub(channel);
  ::magi::v1::WatchRequest wr;
  wr.set_job_id(job->job_id());

  const long rss_before = RssKiB();
  const int kUnread = 150;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<::magi::v1::GenerateEvent>>> readers;
  for (int i = 0; i < kUnread; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub->Watch(contexts.back().get(), wr));
  }
  ASSERT_TRUE(WaitFor([&] { return m.feed_watchers() == kUnread; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the streams fill up
  const int64_t held = m.feed_bytes_held();
  const long rss_unread = RssKiB();
  std::printf("%d unread Watch streams of a %lld-byte video: feed holds %lld bytes "
              "(%.1f%% of the %lld it would hold with every video queued); process RSS %ld -> %ld KiB\n",
              kUnread, static_cast<long long>(video), static_cast<long long>(held),
              100.0 * held / (kUnread * video), static_cast<long long>(kUnread * video), rss_before, rss_unread);
  // At most a window plus one event per stream.
  EXPECT_LE(held, kUnread * (o.jobs.feed.window_bytes + static_cast<int64_t>(kFragment) + 1024));
  EXPECT_LT(held, kUnread * video / 4);

  // A slow reader gets every byte of the video, in order, then the completed event.
  {
    grpc::ClientContext ctx;
    auto reader = stub->Watch(&ctx, wr);
    ::magi::v1::GenerateEvent e;
    std::string bytes;
    bool completed = false;
    while (reader->Read(&e)) {
      if (e.has_chunk()) bytes += e.chunk().init_segment() + e.chunk().fragment();
      completed = completed || e.has_completed();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_TRUE(completed);
    auto path = m.FinalVideoPath(kAnonymousTenant, job->job_id());
    ASSERT_TRUE(path.ok());
    std::ifstream in(*path, std::ios::binary);
    std::string expected((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.size(), expected.size());
    EXPECT_TRUE(bytes == expected);
  }

  // Cancelling the unread streams releases what they held, promptly.
  for (auto& c : contexts) c->TryCancel();
  EXPECT_TRUE(WaitFor([&] { return m.feed_watchers() == 0 && m.feed_bytes_held() == 0; }, 5000))
      << m.feed_watchers() << " watchers, " << m.feed_bytes_held() << " bytes";
  for (auto& r : readers) r->Finish();
  readers.clear();
  app.Shutdown();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace magi
