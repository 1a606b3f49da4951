#include "client/remote_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "magi/v1/video_generation.grpc.pb.h"

namespace magi {
namespace {

using ::magi::v1::GenerateEvent;
using ::magi::v1::GenerateRequest;
using ::magi::v1::Job;
using ::magi::v1::VideoGeneration;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// Parsed "--name value" / "--name=value" options plus positional arguments.
struct Args {
  std::multimap<std::string, std::string> opts;
  std::vector<std::string> positional;
  std::string error;

  bool Has(const std::string& k) const { return opts.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& dflt = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? dflt : it->second;
  }
  std::vector<std::string> All(const std::string& k) const {
    std::vector<std::string> out;
    auto range = opts.equal_range(k);
    for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
    return out;
  }
};

const std::vector<std::string> kBoolFlags = {"json", "help"};

Args Parse(int argc, char** argv, const std::vector<std::string>& known) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    std::string name = s.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    bool is_bool = std::find(kBoolFlags.begin(), kBoolFlags.end(), name) != kBoolFlags.end();
    if (!is_bool && std::find(known.begin(), known.end(), name) == known.end()) {
      a.error = absl::StrCat("unknown flag --", name);
      return a;
    }
    if (!is_bool && !has_value) {
      if (i + 1 >= argc) {
        a.error = absl::StrCat("--", name, " needs a value");
        return a;
      }
      value = argv[++i];
    }
    a.opts.emplace(name, is_bool && !has_value ? "true" : value);
  }
  return a;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "magi: %s (see magi <command> --help)\n", message.c_str());
  return kExitUsage;
}

int RpcError(const grpc::Status& s) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int code = s.error_code();
  std::fprintf(stderr, "magi: %s: %s\n", code >= 0 && code <= 16 ? kNames[code] : "ERROR",
               s.error_message().c_str());
  return kExitFailed;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::unique_ptr<VideoGeneration::Stub> Connect(const Args& a) {
  std::string server = a.Get("server");
  if (server.empty()) {
    const char* env = std::getenv("MAGI_SERVER");
    server = env && *env ? env : "127.0.0.1:50051";
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  return VideoGeneration::NewStub(
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
}

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = absl::StrCat("cannot read '", path, "'");
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

const std::vector<std::string> kRequestFlags = {
    "server", "prompt", "chunk-prompt", "mode", "image", "prefix-video", "frames", "width",
    "height", "fps", "seed", "steps", "text-scale", "prefix-scale", "cfg-number", "priority",
    "deadline-seconds", "idempotency-key", "model", "output"};

// Fills a GenerateRequest from the flags; "" on success, else the message.
std::string BuildRequest(const Args& a, GenerateRequest* r) {
  auto int_flag = [&](const char* name, auto setter) -> std::string {
    if (!a.Has(name)) return "";
    int64_t v;
    if (!absl::SimpleAtoi(a.Get(name), &v)) return absl::StrCat("--", name, ": '", a.Get(name), "' is not an integer");
    setter(v);
    return "";
  };
  auto float_flag = [&](const char* name, auto setter) -> std::string {
    if (!a.Has(name)) return "";
    double v;
    if (!absl::SimpleAtod(a.Get(name), &v)) return absl::StrCat("--", name, ": '", a.Get(name), "' is not a number");
    setter(v);
    return "";
  };
  std::vector<std::string> prompts = a.All("prompt");
  if (prompts.size() > 1) return "--prompt: give it once (use --chunk-prompt K=TEXT for later chunks)";
  if (!prompts.empty()) {
    auto* p = r->add_prompts();
    p->set_from_chunk(0);
    p->set_text(prompts[0]);
  }
  for (const std::string& cp : a.All("chunk-prompt")) {
    auto eq = cp.find('=');
    int k;
    if (eq == std::string::npos || !absl::SimpleAtoi(cp.substr(0, eq), &k)) {
      return absl::StrCat("--chunk-prompt: '", cp, "' is not K=TEXT");
    }
    auto* p = r->add_prompts();
    p->set_from_chunk(k);
    p->set_text(cp.substr(eq + 1));
  }
  std::string mode = a.Get("mode", "t2v");
  if (mode == "t2v") r->set_mode(::magi::v1::MODE_T2V);
  else if (mode == "i2v") r->set_mode(::magi::v1::MODE_I2V);
  else if (mode == "v2v") r->set_mode(::magi::v1::MODE_V2V);
  else return absl::StrCat("--mode: '", mode, "' is not one of t2v, i2v, v2v");
  std::string err;
  if (a.Has("image") && !ReadFile(a.Get("image"), r->mutable_image(), &err)) return "--image: " + err;
  if (a.Has("prefix-video") && !ReadFile(a.Get("prefix-video"), r->mutable_prefix_video(), &err)) {
    return "--prefix-video: " + err;
  }
  for (std::string e : {
           int_flag("frames", [&](int64_t v) { r->set_num_frames(static_cast<int>(v)); }),
           int_flag("width", [&](int64_t v) { r->set_width(static_cast<int>(v)); }),
           int_flag("height", [&](int64_t v) { r->set_height(static_cast<int>(v)); }),
           int_flag("fps", [&](int64_t v) { r->set_fps(static_cast<int>(v)); }),
           int_flag("seed", [&](int64_t v) { r->set_seed(v); }),
           int_flag("steps", [&](int64_t v) { r->set_num_steps(static_cast<int>(v)); }),
           int_flag("cfg-number", [&](int64_t v) { r->mutable_guidance()->set_cfg_number(static_cast<int>(v)); }),
           int_flag("priority", [&](int64_t v) { r->set_priority(static_cast<int>(v)); }),
           float_flag("text-scale", [&](double v) { r->mutable_guidance()->set_text_scale(static_cast<float>(v)); }),
           float_flag("prefix-scale", [&](double v) { r->mutable_guidance()->set_prefix_scale(static_cast<float>(v)); }),
           float_flag("deadline-seconds", [&](double v) {
             r->set_deadline_unix_ms(absl::ToUnixMillis(absl::Now()) + static_cast<int64_t>(v * 1000));
           }),
       }) {
    if (!e.empty()) return e;
  }
  r->set_idempotency_key(a.Get("idempotency-key"));
  r->set_model(a.Get("model"));
  return "";
}

// Progress display: a bar on a terminal, plain lines otherwise, JSON lines with --json.
class EventPrinter {
 public:
  explicit EventPrinter(bool json) : json_(json), tty_(::isatty(STDERR_FILENO)) {}
  ~EventPrinter() { EndBar(); }

  void Print(const GenerateEvent& e) {
    if (json_) {
      GenerateEvent copy = e;
      if (copy.has_chunk()) {  // summarise bytes
        auto* c = copy.mutable_chunk();
        int64_t n = c->fragment().size(), init = c->init_segment().size();
        c->clear_fragment();
        c->clear_init_segment();
        std::string j = ToJson(copy);
        j.insert(j.size() - 2, absl::StrCat(",\"fragment_bytes\":", n, ",\"init_segment_bytes\":", init));
        std::printf("%s\n", j.c_str());
      } else {
        std::printf("%s\n", ToJson(copy).c_str());
      }
      std::fflush(stdout);
      return;
    }
    switch (e.event_case()) {
      case GenerateEvent::kAccepted:
        std::fprintf(stderr, "job %s accepted (queue position %d)\n", e.accepted().job_id().c_str(),
                     e.accepted().queue_position());
        break;
      case GenerateEvent::kProgress: {
        const auto& p = e.progress();
        if (p.chunks_total() > 0) total_ = p.chunks_total();
        if (!tty_) break;
        int width = 30, filled = total_ > 0 ? width * p.chunks_done() / total_ : 0;
        std::string bar(filled, '#');
        bar.append(width - filled, '.');
        std::fprintf(stderr, "\r[%s] chunk %d/%d step %d/%d ETA %.0fs %s   ", bar.c_str(),
                     p.chunks_done(), total_, p.step(), p.total_steps(), p.eta_seconds(),
                     p.state() == ::magi::v1::JOB_STATE_QUEUED ? "(queued)" : "");
        bar_ = true;
        break;
      }
      case GenerateEvent::kChunk:
        EndBar();
        std::fprintf(stderr, "chunk %d/%d: frames [%d, %d), %zu bytes\n", e.chunk().index() + 1,
                     e.chunk().chunks_total(), e.chunk().frame_begin(), e.chunk().frame_end(),
                     e.chunk().fragment().size());
        break;
      case GenerateEvent::kCompleted:
        EndBar();
        std::fprintf(stderr, "job %s completed: %d chunks, %d frames in %.2f s (first chunk after %.2f s)\n",
                     e.completed().job_id().c_str(), e.completed().stats().chunks(),
                     e.completed().stats().frames(), e.completed().stats().total_seconds(),
                     e.completed().stats().time_to_first_chunk_seconds());
        break;
      case GenerateEvent::kFailed:
        EndBar();
        std::fprintf(stderr, "job %s failed (code %d): %s\n", e.failed().job_id().c_str(),
                     e.failed().code(), e.failed().message().c_str());
        break;
      case GenerateEvent::EVENT_NOT_SET:
        break;
    }
  }

 private:
  void EndBar() {
    if (bar_) std::fprintf(stderr, "\n");
    bar_ = false;
  }
  bool json_;
  bool tty_;
  bool bar_ = false;
  int total_ = 0;
};

// Reads an event stream, appending chunks to `output` (if set) as they arrive.
int ConsumeEvents(grpc::ClientReaderInterface<GenerateEvent>* reader, const std::string& output,
                  bool json, bool append) {
  EventPrinter printer(json);
  std::FILE* out = nullptr;
  if (!output.empty()) {
    out = std::fopen(output.c_str(), append ? "ab" : "wb");
    if (!out) {
      std::fprintf(stderr, "magi: --output: cannot write '%s'\n", output.c_str());
      return kExitUsage;
    }
  }
  bool failed = false;
  GenerateEvent e;
  while (reader->Read(&e)) {
    if (e.has_chunk() && out) {
      std::fwrite(e.chunk().init_segment().data(), 1, e.chunk().init_segment().size(), out);
      std::fwrite(e.chunk().fragment().data(), 1, e.chunk().fragment().size(), out);
      std::fflush(out);  // playable up to this chunk right now
    }
    if (e.has_failed()) failed = true;
    printer.Print(e);
  }
  if (out) std::fclose(out);
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(s);
  return failed ? kExitFailed : 0;
}

void PrintJob(const Job& job, bool json) {
  if (json) {
    std::printf("%s\n", ToJson(job).c_str());
    return;
  }
  std::printf("%s  %-20s  chunks %d/%d", job.job_id().c_str(),
              ::magi::v1::JobState_Name(job.state()).c_str(), job.chunks_done(), job.chunks_total());
  if (job.queue_position() >= 0) std::printf("  queue position %d", job.queue_position());
  if (job.error_code() != 0) std::printf("  error %d: %s", job.error_code(), job.error_message().c_str());
  std::printf("\n");
}

int Help(const std::string& cmd) {
  std::printf(
      "usage: magi %s [--server ADDR] ...\n"
      "request flags (submit, generate): --prompt TEXT [--chunk-prompt K=TEXT]... [--mode t2v|i2v|v2v]\n"
      "  [--image FILE] [--prefix-video FILE] [--frames N] [--width W] [--height H] [--fps F]\n"
      "  [--seed S] [--steps N] [--text-scale X] [--prefix-scale X] [--cfg-number 1|3]\n"
      "  [--priority 0..9] [--deadline-seconds S] [--idempotency-key K] [--model NAME]\n"
      "watch JOB_ID [--from-chunk K] [--output FILE]; get JOB_ID [--output FILE];\n"
      "cancel JOB_ID; prompt JOB_ID --text TEXT (a live prompt for the chunks not started yet);\n"
      "list [--state queued|running|succeeded|failed|cancelled] [--page-size N]\n"
      "  [--page-token T]; generate ... --output FILE.  --json: JSON lines on stdout.\n",
      cmd.c_str());
  return 0;
}

int NeedJobId(const Args& a, const std::string& cmd) {
  if (a.positional.size() != 1) return Usage(absl::StrCat(cmd, ": give exactly one JOB_ID"));
  return 0;
}

}  // namespace

bool IsRemoteCommand(int argc, char** argv) {
  if (argc < 2) return false;
  std::string cmd = argv[1];
  if (cmd == "submit" || cmd == "watch" || cmd == "get" || cmd == "cancel" || cmd == "prompt" || cmd == "list") {
    return true;
  }
  if (cmd != "generate") return false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--server") || !std::strncmp(argv[i], "--server=", 9)) return true;
  }
  return false;
}

int RunRemoteCommand(int argc, char** argv) {
  if (argc < 2) return Usage("missing command");
  const std::string cmd = argv[1];
  std::vector<std::string> known = {"server"};
  if (cmd == "submit" || cmd == "generate") known = kRequestFlags;
  if (cmd == "watch") known = {"server", "from-chunk", "output"};
  if (cmd == "get") known = {"server", "output"};
  if (cmd == "prompt") known = {"server", "text"};
  if (cmd == "list") known = {"server", "state", "page-size", "page-token"};
  Args a = Parse(argc - 2, argv + 2, known);
  if (!a.error.empty()) return Usage(absl::StrCat(cmd, ": ", a.error));
  if (a.Has("help")) return Help(cmd);
  const bool json = a.Has("json");
  auto stub = Connect(a);

  if (cmd == "submit" || cmd == "generate") {
    if (!a.positional.empty()) return Usage(absl::StrCat(cmd, ": unexpected argument '", a.positional[0], "'"));
    GenerateRequest r;
    if (std::string e = BuildRequest(a, &r); !e.empty()) return Usage(e);
    if (cmd == "submit") {
      grpc::ClientContext ctx;
      ::magi::v1::SubmitResponse resp;
      grpc::Status s = stub->Submit(&ctx, r, &resp);
      if (!s.ok()) return RpcError(s);
      if (json) PrintJob(resp.job(), true);
      else std::printf("%s\n", resp.job().job_id().c_str());
      return 0;
    }
    if (!a.Has("output")) return Usage("generate --server: --output FILE is required");
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, r);
    return ConsumeEvents(reader.get(), a.Get("output"), json, /*append=*/false);
  }
  if (cmd == "watch") {
    if (int rc = NeedJobId(a, cmd)) return rc;
    ::magi::v1::WatchRequest w;
    w.set_job_id(a.positional[0]);
    int from = 0;
    if (a.Has("from-chunk") && !absl::SimpleAtoi(a.Get("from-chunk"), &from)) {
      return Usage("--from-chunk: not an integer");
    }
    w.set_from_chunk(from);
    grpc::ClientContext ctx;
    auto reader = stub->Watch(&ctx, w);
    return ConsumeEvents(reader.get(), a.Get("output"), json, /*append=*/from > 0);
  }
  if (cmd == "get") {
    if (int rc = NeedJobId(a, cmd)) return rc;
    grpc::ClientContext ctx;
    ::magi::v1::GetJobRequest g;
    g.set_job_id(a.positional[0]);
    Job job;
    grpc::Status s = stub->GetJob(&ctx, g, &job);
    if (!s.ok()) return RpcError(s);
    if (!a.Has("output")) {
      PrintJob(job, json);
      return 0;
    }
    grpc::ClientContext vctx;
    ::magi::v1::GetVideoRequest v;
    v.set_job_id(a.positional[0]);
    auto reader = stub->GetVideo(&vctx, v);
    std::string path = a.Get("output");
    std::FILE* out = std::fopen(path.c_str(), "wb");
    if (!out) return Usage(absl::StrCat("--output: cannot write '", path, "'"));
    ::magi::v1::VideoData data;
    int64_t bytes = 0;
    while (reader->Read(&data)) {
      std::fwrite(data.data().data(), 1, data.data().size(), out);
      bytes += data.data().size();
    }
    std::fclose(out);
    s = reader->Finish();
    if (!s.ok()) {
      std::remove(path.c_str());
      return RpcError(s);
    }
    if (json) {
      std::printf("{\"job_id\":\"%s\",\"output\":\"%s\",\"bytes\":%lld}\n", job.job_id().c_str(),
                  path.c_str(), static_cast<long long>(bytes));
    } else {
      std::fprintf(stderr, "wrote %s (%lld bytes)\n", path.c_str(), static_cast<long long>(bytes));
    }
    return 0;
  }
  if (cmd == "cancel") {
    if (int rc = NeedJobId(a, cmd)) return rc;
    grpc::ClientContext ctx;
    ::magi::v1::CancelRequest c;
    c.set_job_id(a.positional[0]);
    Job job;
    grpc::Status s = stub->Cancel(&ctx, c, &job);
    if (!s.ok()) return RpcError(s);
    PrintJob(job, json);
    return 0;
  }
  if (cmd == "prompt") {
    if (int rc = NeedJobId(a, cmd)) return rc;
    if (!a.Has("text") || a.Get("text").empty()) return Usage("prompt: --text TEXT is required");
    grpc::ClientContext ctx;
    ::magi::v1::UpdatePromptRequest u;
    u.set_job_id(a.positional[0]);
    u.set_text(a.Get("text"));
    ::magi::v1::UpdatePromptResponse resp;
    grpc::Status s = stub->UpdatePrompt(&ctx, u, &resp);
    if (!s.ok()) return RpcError(s);
    if (json) {
      std::printf("{\"job_id\":\"%s\",\"from_chunk\":%d}\n", resp.job().job_id().c_str(), resp.from_chunk());
    } else {
      std::printf("job %s uses the new prompt from chunk %d\n", resp.job().job_id().c_str(), resp.from_chunk());
    }
    return 0;
  }
  if (cmd == "list") {
    ::magi::v1::ListJobsRequest l;
    if (a.Has("state")) {
      std::string st = a.Get("state");
      ::magi::v1::JobState state;
      std::string upper;
      for (char c : st) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!::magi::v1::JobState_Parse("JOB_STATE_" + upper, &state)) {
        return Usage(absl::StrCat("--state: '", st, "' is not one of queued, running, succeeded, failed, cancelled"));
      }
      l.set_state(state);
    }
    int n = 0;
    if (a.Has("page-size") && !absl::SimpleAtoi(a.Get("page-size"), &n)) return Usage("--page-size: not an integer");
    l.set_page_size(n);
    l.set_page_token(a.Get("page-token"));
    grpc::ClientContext ctx;
    ::magi::v1::ListJobsResponse resp;
    grpc::Status s = stub->ListJobs(&ctx, l, &resp);
    if (!s.ok()) return RpcError(s);
    if (json) {
      std::printf("%s\n", ToJson(resp).c_str());
      return 0;
    }
    for (const Job& job : resp.jobs()) PrintJob(job, false);
    if (!resp.next_page_token().empty()) std::printf("next page: --page-token %s\n", resp.next_page_token().c_str());
    return 0;
  }
  return Usage(absl::StrCat("unknown command '", cmd, "'"));
}

}  // namespace magi
