#include "server/realtime_video_session.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>  // teardown of the TLS stream under WSS

#include "absl/strings/str_cat.h"
#include "api/realtime_protocol.h"
#include "api/video_object.h"
#include "server/job_feed.h"
#include "server/job_manager.h"

namespace magi {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using json = nlohmann::json;
using ::magi::v1::GenerateEvent;


template <class Stream>
class Session;

// The JobSubscriber the feed holds: it only posts to the session's strand (it is called with
// the feed's lock held). Holds the session weakly: a closed session does not stay alive for
// the feed's sake; its destructor detaches the relay.
template <class Stream>
class Relay final : public JobSubscriber {
 public:
  Relay(std::weak_ptr<Session<Stream>> session, net::any_io_executor executor)
      : session_(std::move(session)), executor_(std::move(executor)) {}
  void OnEvent(const GenerateEvent& event) override;
  void OnClose(const absl::Status& status) override;
  bool EnableFlowControl(std::function<void()> written) override {
    written_ = std::move(written);
    return true;
  }
  // One call per event, in order, once its last message is written (or dropped).
  void Written() {
    if (written_) written_();
  }

 private:
  std::weak_ptr<Session<Stream>> session_;
  net::any_io_executor executor_;
  std::function<void()> written_;  // set before the first event, then only read
};

// `Stream` is the connection under the WebSocket: beast::tcp_stream or, for WSS,
// beast::ssl_stream<beast::tcp_stream>.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  using std::enable_shared_from_this<Session<Stream>>::weak_from_this;

 public:
  Session(Stream stream, http::request<http::string_body> request, JobManager* manager,
          std::string tenant, RealtimeSubmitFn submit, RealtimeOptions options)
      : ws_(std::move(stream)),
        request_(std::move(request)),
        manager_(manager),
        tenant_(std::move(tenant)),
        submit_(std::move(submit)),
        options_(options) {}

  ~Session() {
    if (relay_) manager_->Unwatch(relay_.get());
  }

  void Run() {
    relay_ = std::make_shared<Relay<Stream>>(weak_from_this(), ws_.get_executor());
    beast::get_lowest_layer(ws_).expires_never();  // the websocket's own timeouts from here
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "magi-server"); }));
    ws_.read_message_max(static_cast<std::uint64_t>(options_.max_message_bytes));
    ws_.async_accept(request_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->ReadNext();
    });
  }

  // --- from the feed, on the strand ---
  void OnJobEvent(const GenerateEvent& event) {
    if (dead_) return relay_->Written();
    switch (event.event_case()) {
      case GenerateEvent::kProgress:
        Push(RealtimeProgressMessage(event.progress()).dump(), Out::kText, /*ends_event=*/true);
        break;
      case GenerateEvent::kChunk: {
        const auto& chunk = event.chunk();
        if (!chunk.init_segment().empty()) {
          Push(RealtimeInitSegmentMessage(chunk.init_segment().size()).dump(), Out::kText, false);
          Push(chunk.init_segment(), Out::kBinary, false);
        }
        Push(RealtimeChunkMessage(chunk).dump(), Out::kText, false);
        Push(chunk.fragment(), Out::kBinary, true);
        break;
      }
      case GenerateEvent::kCompleted: {
        json done{{"type", "done"}};
        auto job = manager_->GetJob(tenant_, job_id_);
        if (job.ok()) done["video"] = VideoObject(*job);
        Push(done.dump(-1, ' ', false, json::error_handler_t::replace), Out::kText, true);
        final_sent_ = true;
        break;
      }
      case GenerateEvent::kFailed: {
        const auto& f = event.failed();
        const bool cancelled = f.code() == static_cast<int>(absl::StatusCode::kCancelled);
        ApiError e{500, cancelled ? "invalid_request_error" : "server_error",
                   cancelled ? "video_cancelled" : "video_failed", "",
                   absl::StrCat("video '", job_id_, "' ", cancelled ? "was cancelled" : "failed", ": ", f.message())};
        Push(RealtimeErrorMessage(e, /*fatal=*/true).dump(-1, ' ', false, json::error_handler_t::replace), Out::kText,
             true);
        final_sent_ = true;
        break;
      }
      default:  // accepted: nothing to forward
        relay_->Written();
        return;
    }
  }

  void OnJobClose(const absl::Status& status) {
    if (dead_) return;
    if (!final_sent_ && !status.ok()) {
      PushError(ApiErrorFromStatus(status), /*fatal=*/true, /*reply=*/false);
    }
    PushClose(websocket::close_code::normal, "");
  }

 private:
  struct Out {
    enum Kind { kText, kBinary, kClose } kind;
    std::string data;
    bool ends_event = false;  // the last message of a feed event: tell the feed when written
    bool reply = false;       // a reply to a client message (counts against max_pending_replies)
    websocket::close_code code = websocket::close_code::normal;
  };

  void Push(std::string data, typename Out::Kind kind, bool ends_event, bool reply = false) {
    if (closing_) {
      if (ends_event) relay_->Written();
      return;
    }
    Out out;
    out.kind = kind;
    out.data = std::move(data);
    out.ends_event = ends_event;
    out.reply = reply;
    if (reply) ++pending_replies_;
    queue_.push_back(std::move(out));
    WriteNext();
  }

  void PushError(const ApiError& error, bool fatal, bool reply) {
    Push(RealtimeErrorMessage(error, fatal).dump(-1, ' ', false, json::error_handler_t::replace), Out::kText, false,
         reply);
  }

  void PushClose(websocket::close_code code, std::string reason) {
    if (closing_) return;
    Out out;
    out.kind = Out::kClose;
    out.code = code;
    out.data = std::move(reason);
    queue_.push_back(std::move(out));
    closing_ = true;
    WriteNext();
  }

  void WriteNext() {
    if (writing_ || queue_.empty() || dead_) return;
    writing_ = true;
    Out& out = queue_.front();
    if (out.kind == Out::kClose) {
      websocket::close_reason reason(out.code, out.data);
      ws_.async_close(reason, [self = shared_from_this()](beast::error_code) {
        self->writing_ = false;
        self->Die();
      });
      return;
    }
    ws_.binary(out.kind == Out::kBinary);
    ws_.async_write(net::buffer(out.data), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnWritten(ec);
    });
  }

  void OnWritten(beast::error_code ec) {
    writing_ = false;
    Out out = std::move(queue_.front());
    queue_.pop_front();
    if (out.ends_event) relay_->Written();
    if (out.reply) {
      --pending_replies_;
      if (read_paused_ && pending_replies_ < options_.max_pending_replies) {
        read_paused_ = false;
        ReadNext();
      }
    }
    if (ec) return Die();
    WriteNext();
  }

  // The connection is gone: release the feed's window for everything still queued.
  void Die() {
    if (dead_) return;
    dead_ = true;
    closing_ = true;
    for (const Out& out : queue_) {
      if (out.ends_event) relay_->Written();
    }
    queue_.clear();
    manager_->Unwatch(relay_.get());
  }

  void ReadNext() {
    if (dead_ || closing_ || reading_) return;
    if (pending_replies_ >= options_.max_pending_replies) {
      read_paused_ = true;  // the client is not reading our replies: stop reading its messages
      return;
    }
    reading_ = true;
    ws_.async_read(read_buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->reading_ = false;
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      // websocket::error::closed (the client closed), message_too_big (Beast has sent close
      // code 1009), a timeout or a reset: the connection is over either way.
      return Die();
    }
    const std::string text = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    if (!ws_.got_text()) {
      PushError(ApiError{400, "invalid_request_error", "binary_not_accepted", "",
                         "the client sends JSON text messages only"},
                /*fatal=*/true, /*reply=*/true);
      return PushClose(websocket::close_code::unknown_data, "text messages only");
    }
    Handle(text);
    ReadNext();
  }

  void Handle(const std::string& text) {
    auto msg = ParseRealtimeClientMessage(text);
    if (!msg.ok()) return PushError(ApiErrorFromStatus(msg.status()), false, true);
    switch (msg->type) {
      case RealtimeClientMessage::Type::kStart:
      case RealtimeClientMessage::Type::kResume:
        return Start(*msg);
      case RealtimeClientMessage::Type::kPromptUpdate:
        return UpdatePrompt(msg->prompt);
      case RealtimeClientMessage::Type::kStop:
        if (job_id_.empty()) return PushClose(websocket::close_code::normal, "stopped");
        if (auto job = manager_->Cancel(tenant_, job_id_); !job.ok()) {
          return PushError(ApiErrorFromStatus(job.status()), false, true);
        }
        return;  // the job's failed (cancelled) event follows, then the close
    }
  }

  // Answers on the strand once the job's group uses the prompt (JobManager::UpdatePrompt).
  void UpdatePrompt(const std::string& prompt) {
    if (job_id_.empty()) {
      return PushError(ApiError{400, "invalid_request_error", "no_session", "type",
                                "prompt.update needs a video: send session.start or session.resume first"},
                       false, true);
    }
    ++pending_replies_;  // the answer comes later; it counts as a reply from now
    std::weak_ptr<Session> weak = shared_from_this();
    auto executor = ws_.get_executor();
    manager_->UpdatePrompt(tenant_, job_id_, prompt,
                           [weak, executor, prompt](absl::StatusOr<JobManager::PromptUpdateResult> r) {
                             net::post(executor, [weak, prompt, r = std::move(r)] {
                               auto self = weak.lock();
                               if (!self) return;
                               --self->pending_replies_;
                               if (self->dead_) return;
                               if (!r.ok()) return self->PushError(ApiErrorFromStatus(r.status(), "prompt"), false, true);
                               self->Push(RealtimePromptUpdatedMessage(r->from_chunk, prompt)
                                              .dump(-1, ' ', false, json::error_handler_t::replace),
                                          Out::kText, false, true);
                             });
                           });
  }

  void Start(const RealtimeClientMessage& msg) {
    if (!job_id_.empty()) {
      return PushError(ApiError{400, "invalid_request_error", "session_active", "type",
                                absl::StrCat("this session already streams video '", job_id_,
                                             "'; open another connection for another video")},
                       false, true);
    }
    ::magi::v1::Job job;
    if (msg.type == RealtimeClientMessage::Type::kStart) {
      ApiError error;
      auto submitted = submit_(msg.create, &error);
      if (!submitted.ok()) return PushError(error, false, true);
      job = std::move(*submitted);
    } else {
      auto found = manager_->GetJob(tenant_, msg.video_id);
      if (!found.ok()) {
        ApiError e = ApiErrorFromStatus(found.status(), "video_id");
        if (absl::IsNotFound(found.status())) {
          e = ApiError{404, "invalid_request_error", "not_found", "video_id",
                       absl::StrCat("No video with id '", msg.video_id.substr(0, 64), "'")};
        }
        return PushError(e, false, true);
      }
      job = std::move(*found);
    }
    job_id_ = job.job_id();
    Push(json{{"type", "session.started"}, {"video", VideoObject(job)}}.dump(-1, ' ', false,
                                                                            json::error_handler_t::replace),
         Out::kText, false, true);
    const int from = msg.type == RealtimeClientMessage::Type::kResume ? msg.from_chunk : 0;
    if (auto s = manager_->Watch(tenant_, job_id_, from, relay_, /*accepted_first=*/false); !s.ok()) {
      PushError(ApiErrorFromStatus(s), true, false);
      PushClose(websocket::close_code::internal_error, "watch failed");
    }
  }

  websocket::stream<Stream> ws_;
  http::request<http::string_body> request_;
  JobManager* manager_;
  const std::string tenant_;
  RealtimeSubmitFn submit_;
  const RealtimeOptions options_;
  std::shared_ptr<Relay<Stream>> relay_;

  // Strand-only state.
  beast::flat_buffer read_buffer_;
  std::deque<Out> queue_;
  std::string job_id_;
  int pending_replies_ = 0;
  bool writing_ = false, reading_ = false, read_paused_ = false;
  bool closing_ = false, dead_ = false, final_sent_ = false;
};

template <class Stream>
void Relay<Stream>::OnEvent(const GenerateEvent& event) {
  auto session = session_.lock();
  if (!session) return Written();
  net::post(executor_, [session, event] { session->OnJobEvent(event); });
}

template <class Stream>
void Relay<Stream>::OnClose(const absl::Status& status) {
  auto session = session_.lock();
  if (!session) return;
  net::post(executor_, [session, status] { session->OnJobClose(status); });
}

template <class Stream>
void RunSession(Stream stream, http::request<http::string_body> request, JobManager* manager, std::string tenant,
           RealtimeSubmitFn submit, const RealtimeOptions& options) {
  std::make_shared<Session<Stream>>(std::move(stream), std::move(request), manager, std::move(tenant),
                                    std::move(submit), options)
      ->Run();
}

}  // namespace

void StartRealtimeVideoSession(beast::tcp_stream stream, http::request<http::string_body> request,
                               JobManager* manager, std::string tenant, RealtimeSubmitFn submit,
                               const RealtimeOptions& options) {
  RunSession(std::move(stream), std::move(request), manager, std::move(tenant), std::move(submit), options);
}

void StartRealtimeVideoSession(beast::ssl_stream<beast::tcp_stream> stream, http::request<http::string_body> request,
                               JobManager* manager, std::string tenant, RealtimeSubmitFn submit,
                               const RealtimeOptions& options) {
  RunSession(std::move(stream), std::move(request), manager, std::move(tenant), std::move(submit), options);
}

}  // namespace magi
