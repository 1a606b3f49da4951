#include "server/api_http_server.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/api_error.h"
#include "api/byte_range.h"
#include "api/video_object.h"
#include "api/video_request.h"
#include "base/status_macros.h"
#include "server/job_manager.h"
#include "server/realtime_video_session.h"
#include "server/viewer_page.h"
#include "worker/media/video_thumbnail.h"
#include "server/token_auth.h"

namespace magi {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr char kServerName[] = "magi-server";
// A TLS client has this long to complete its handshake (a silent or plaintext client holds
// a connection no longer than that).
constexpr auto kTlsHandshakeTimeout = std::chrono::seconds(10);
// The TLS close_notify exchange at the end of a connection is given this long.
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(5);

// Failed TLS handshakes, logged at most once a second with a count of those not logged
// (a port scanner or a plaintext client in a loop must not flood the log).
class HandshakeFailureLog {
 public:
  void Failed(const std::string& peer, const beast::error_code& ec) {
    const std::time_t now = std::time(nullptr);
    long suppressed = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (now != last_log_) {
        last_log_ = now;
        suppressed = suppressed_;
        suppressed_ = 0;
      } else {
        ++suppressed_;
      }
    }
    if (suppressed < 0) return;
    std::fprintf(stderr, "magi-server: API TLS handshake with %s failed: %s%s\n", peer.c_str(), ec.message().c_str(),
                 suppressed > 0 ? absl::StrCat(" (", suppressed, " more not logged)").c_str() : "");
  }

 private:
  std::mutex mu_;
  std::time_t last_log_ = 0;
  long suppressed_ = 0;
};

// One answer: a body in memory, or a whole file streamed from disk (file_path set).
struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<http::field, std::string>> headers;
  std::string file_path;
};

Reply JsonReply(const json& value, http::status status = http::status::ok) {
  Reply r;
  r.status = status;
  r.body = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Reply ErrorReply(const ApiError& error) {
  Reply r;
  r.status = static_cast<http::status>(error.http_status);
  r.body = ApiErrorJson(error);
  return r;
}

Reply ErrorReply(int status, std::string type, std::string code, std::string param, std::string message) {
  return ErrorReply(ApiError{status, std::move(type), std::move(code), std::move(param), std::move(message)});
}

std::string Header(const http::request<http::string_body>& req, http::field f) {
  auto it = req.find(f);
  return it == req.end() ? std::string() : std::string(it->value());
}

std::string Header(const http::request<http::string_body>& req, beast::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

// The routes, over the job manager. Stateless apart from the manager.
class Router {
 public:
  Router(JobManager* manager, TokenAuthenticator* client_auth, ApiServerOptions options)
      : manager_(manager), client_auth_(client_auth), options_(std::move(options)) {}

  JobManager* manager() const { return manager_; }

  // The caller's tenant from its Authorization header (the anonymous tenant when client
  // authentication is off), or the 401 reply to send.
  absl::StatusOr<std::string> Authenticate(const http::request<http::string_body>& req, const std::string& peer,
                                           Reply* refusal) {
    if (client_auth_ == nullptr) return std::string(kAnonymousTenant);
    auto authenticated = client_auth_->Authenticate(Header(req, http::field::authorization), peer);
    if (!authenticated.ok()) {
      *refusal = ErrorReply(401, "invalid_request_error", "invalid_api_key", "",
                            std::string(authenticated.status().message()));
      refusal->headers.emplace_back(http::field::www_authenticate, "Bearer");
      return authenticated.status();
    }
    return std::move(*authenticated);
  }

  // The create route's submission (also the realtime stream's session.start): the job, or
  // an error with `error` set to the API error a create answers.
  absl::StatusOr<::magi::v1::Job> SubmitVideo(const std::string& tenant, const VideoCreateParams& params,
                                              const std::string& idempotency_key, ApiError* error) {
    std::optional<ModelInfo> model = manager_->catalog().Find(params.model);
    ::magi::v1::GenerateRequest request = ToGenerateRequest(params, model ? &*model : nullptr);
    if (request.model().empty() && model) request.set_model(model->name());
    if (!idempotency_key.empty()) request.set_idempotency_key(idempotency_key);
    auto job = manager_->Submit(tenant, request);
    if (!job.ok()) {
      *error = SubmitErrorToApi(job.status(), params, request, model ? &*model : nullptr);
      if (error->param == "idempotency_key") error->param = "Idempotency-Key";
    }
    return job;
  }

  // `peer` names the client in refusal logs.
  Reply Handle(const http::request<http::string_body>& req, const std::string& peer) {
    // Authentication comes first: without a valid token nothing of the request is looked at,
    // and a job id tells nothing (401 for every route).
    Reply refusal;
    auto tenant = Authenticate(req, peer, &refusal);
    if (!tenant.ok()) return refusal;
    return Route(req, *tenant);
  }

 private:
  Reply Route(const http::request<http::string_body>& req, const std::string& tenant) {
    absl::string_view target(req.target().data(), req.target().size());
    size_t q = target.find('?');
    absl::string_view path = target.substr(0, q);
    auto query = ParseQueryString(q == absl::string_view::npos ? absl::string_view() : target.substr(q + 1));
    if (!query.ok()) return ErrorReply(ApiErrorFromStatus(query.status()));
    const http::verb method = req.method();
    const bool read = method == http::verb::get || method == http::verb::head;

    if (path == "/v1/videos") {
      if (method == http::verb::post) return Create(tenant, req);
      if (read) return List(tenant, *query);
      return MethodNotAllowed(path, "GET, POST");
    }
    if (path == "/" || path == "/viewer") {
      if (!read) return MethodNotAllowed(path, "GET");
      Reply r;
      r.content_type = "text/html; charset=utf-8";
      r.body = std::string(ViewerPageHtml());
      r.headers.emplace_back(http::field::cache_control, "no-store");
      return r;
    }
    if (path == "/v1/realtime/video") {
      Reply r = ErrorReply(426, "invalid_request_error", "upgrade_required", "",
                           "/v1/realtime/video is a WebSocket: send GET with Upgrade: websocket");
      r.headers.emplace_back(http::field::upgrade, "websocket");
      return r;
    }
    if (path == "/v1/videos/extensions") {
      if (method == http::verb::post) return Extend(tenant, req);
      return MethodNotAllowed(path, "POST");
    }
    if (absl::StartsWith(path, "/v1/videos/")) {
      std::vector<std::string> rest = absl::StrSplit(path.substr(11), '/');
      if (rest.size() == 1 && !rest[0].empty()) {
        if (read) return Retrieve(tenant, rest[0]);
        if (method == http::verb::delete_) return Delete(tenant, rest[0]);
        return MethodNotAllowed(path, "GET, DELETE");
      }
      if (rest.size() == 2 && !rest[0].empty() && rest[1] == "content") {
        if (read) return Content(tenant, rest[0], *query, Header(req, http::field::range));
        return MethodNotAllowed(path, "GET");
      }
      if (rest.size() == 2 && !rest[0].empty() && rest[1] == "remix") {
        if (method == http::verb::post) return Remix(tenant, rest[0], req);
        return MethodNotAllowed(path, "POST");
      }
    }
    return ErrorReply(404, "invalid_request_error", "unknown_url", "",
                      absl::StrCat("Unknown request URL: ", req.method_string().to_string(), " ", path,
                                   ". Served: POST/GET /v1/videos, GET/DELETE /v1/videos/{id}, "
                                   "GET /v1/videos/{id}/content, POST /v1/videos/{id}/remix, "
                                   "POST /v1/videos/extensions, "
                                   "GET /v1/realtime/video (WebSocket), GET / (viewer)"));
  }

  Reply MethodNotAllowed(absl::string_view path, const std::string& allow) {
    Reply r = ErrorReply(405, "invalid_request_error", "method_not_allowed", "",
                         absl::StrCat(path, " allows ", allow));
    r.headers.emplace_back(http::field::allow, allow);
    return r;
  }

  Reply Submit(const std::string& tenant, const VideoCreateParams& params, const std::string& idempotency_key) {
    ApiError error;
    auto job = SubmitVideo(tenant, params, idempotency_key, &error);
    if (!job.ok()) return ErrorReply(error);
    return JsonReply(VideoObject(*job));
  }

  Reply Create(const std::string& tenant, const http::request<http::string_body>& req) {
    auto params = ParseVideoCreate(Header(req, http::field::content_type), req.body(), options_.max_multipart_parts);
    if (!params.ok()) return ErrorReply(ApiErrorFromStatus(params.status()));
    return Submit(tenant, *params, Header(req, "Idempotency-Key"));
  }

  Reply Remix(const std::string& tenant, const std::string& id, const http::request<http::string_body>& req) {
    auto params = ParseVideoRemix(Header(req, http::field::content_type), req.body(), options_.max_multipart_parts);
    if (!params.ok()) return ErrorReply(ApiErrorFromStatus(params.status()));
    // The source's request as stored (media bytes included), so an i2v remix keeps its image.
    auto source = manager_->store().Get(id);
    if (!source.ok()) return ErrorReply(ApiErrorFromStatus(source.status()));
    if (!source->has_value() || (*source)->tenant != tenant) return NoVideo(id);
    ::magi::v1::GenerateRequest request = (*source)->request;
    request.clear_prompts();
    auto* p = request.add_prompts();
    p->set_from_chunk(0);
    p->set_text(params->prompt);
    request.clear_idempotency_key();
    request.clear_deadline_unix_ms();
    const std::string key = Header(req, "Idempotency-Key");
    if (!key.empty()) request.set_idempotency_key(key);
    auto job = manager_->Submit(tenant, request);
    if (!job.ok()) {
      ApiError e = ApiErrorFromStatus(job.status());
      if (e.param == "prompts") e.param = "prompt";
      return ErrorReply(e);
    }
    json v = VideoObject(*job);
    v["remixed_from_video_id"] = id;
    return JsonReply(v);
  }

  // MAGI-1's video continuation: the new video continues `video` (a completed video of this
  // tenant, or an upload) with `prompt` for `seconds` more. A source given by id lends its
  // model, size and fps unless the request sets them.
  Reply Extend(const std::string& tenant, const http::request<http::string_body>& req) {
    auto parsed = ParseVideoExtend(Header(req, http::field::content_type), req.body(), options_.max_multipart_parts);
    if (!parsed.ok()) return ErrorReply(ApiErrorFromStatus(parsed.status()));
    VideoCreateParams& params = parsed->params;
    const std::string& id = parsed->video_id;
    if (!id.empty()) {
      auto source = manager_->GetJob(tenant, id);
      if (absl::IsNotFound(source.status())) {
        return ErrorReply(404, "invalid_request_error", "not_found", "video",
                          absl::StrCat("video: no video with id '", id.substr(0, 64), "'"));
      }
      if (!source.ok()) return ErrorReply(ApiErrorFromStatus(source.status()));
      auto path = manager_->FinalVideoPath(tenant, id);
      if (absl::IsFailedPrecondition(path.status())) {
        return ErrorReply(400, "invalid_request_error", "video_not_ready", "video",
                          absl::StrCat("video: '", id.substr(0, 64), "' is ", VideoStatus(source->state()),
                                       "; only a completed video can be extended"));
      }
      if (!path.ok()) return ErrorReply(ApiErrorFromStatus(path.status()));
      std::ifstream in(*path, std::ios::binary);
      params.prefix_video.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        return ErrorReply(500, "server_error", "content_missing", "", absl::StrCat("the video file of '", id, "' is missing"));
      }
      const ::magi::v1::GenerateRequest& was = source->request();
      if (params.model.empty()) params.model = was.model();
      if (!params.width && was.width() > 0) params.width = was.width();
      if (!params.height && was.height() > 0) params.height = was.height();
      if (!params.fps && was.fps() > 0) params.fps = was.fps();
    }
    ApiError error;
    auto job = SubmitVideo(tenant, params, Header(req, "Idempotency-Key"), &error);
    if (!job.ok()) return ErrorReply(error);
    json v = VideoObject(*job);
    if (!id.empty()) v["extended_from_video_id"] = id;
    return JsonReply(v);
  }

  Reply NoVideo(const std::string& id) {
    return ErrorReply(404, "invalid_request_error", "not_found", "video_id",
                      absl::StrCat("No video with id '", id.substr(0, 64), "'"));
  }

  Reply Retrieve(const std::string& tenant, const std::string& id) {
    auto job = manager_->GetJob(tenant, id);
    if (absl::IsNotFound(job.status())) return NoVideo(id);
    if (!job.ok()) return ErrorReply(ApiErrorFromStatus(job.status()));
    return JsonReply(VideoObject(*job));
  }

  Reply List(const std::string& tenant, const std::map<std::string, std::string>& query) {
    auto q = ParseVideoListQuery(query);
    if (!q.ok()) return ErrorReply(ApiErrorFromStatus(q.status()));
    // Every job the store keeps (retention bounds them), newest first, in pages of 1000.
    std::vector<::magi::v1::Job> jobs;
    ::magi::v1::ListJobsRequest page;
    page.set_page_size(1000);
    while (true) {
      auto got = manager_->ListJobs(tenant, page);
      if (!got.ok()) return ErrorReply(ApiErrorFromStatus(got.status()));
      for (auto& j : *got->mutable_jobs()) jobs.push_back(std::move(j));
      if (got->next_page_token().empty()) break;
      page.set_page_token(got->next_page_token());
    }
    auto out = VideoListPage(jobs, *q);
    if (!out.ok()) return ErrorReply(ApiErrorFromStatus(out.status()));
    return JsonReply(*out);
  }

  Reply Delete(const std::string& tenant, const std::string& id) {
    absl::Status s = manager_->DeleteJob(tenant, id);
    if (absl::IsNotFound(s)) return NoVideo(id);
    if (!s.ok()) return ErrorReply(ApiErrorFromStatus(s));
    return JsonReply(VideoDeletedObject(id));
  }

  Reply Content(const std::string& tenant, const std::string& id, const std::map<std::string, std::string>& query, const std::string& range) {
    std::string variant = "video";
    for (const auto& [k, v] : query) {
      if (k != "variant") {
        return ErrorReply(400, "invalid_request_error", "unknown_parameter", k.substr(0, 64),
                          absl::StrCat(k.substr(0, 64), ": unknown parameter; allowed variant"));
      }
      variant = v;
    }
    if (variant != "video" && variant != "thumbnail" && variant != "spritesheet") {
      return ErrorReply(400, "invalid_request_error", "invalid_value", "variant",
                        absl::StrCat("variant: '", variant.substr(0, 32),
                                     "' is not available; allowed video, thumbnail, spritesheet"));
    }
    auto path = manager_->FinalVideoPath(tenant, id);
    if (absl::IsNotFound(path.status())) return NoVideo(id);
    if (absl::IsFailedPrecondition(path.status())) {
      auto job = manager_->GetJob(tenant, id);
      const char* status = job.ok() ? VideoStatus(job->state()) : "unknown";
      return ErrorReply(400, "invalid_request_error", "video_not_ready", "video_id",
                        absl::StrCat("Video '", id.substr(0, 64), "' is ", status,
                                     "; its content is available once its status is completed"));
    }
    if (!path.ok()) return ErrorReply(ApiErrorFromStatus(path.status()));
    if (variant == "thumbnail" || variant == "spritesheet") return Picture(id, *path, variant);
    std::FILE* f = std::fopen(path->c_str(), "rb");
    if (f == nullptr) {
      return ErrorReply(500, "server_error", "content_missing", "", absl::StrCat("the video file of '", id, "' is missing"));
    }
    std::fseek(f, 0, SEEK_END);
    const int64_t size = std::ftell(f);
    auto r = ParseByteRange(range, size);
    Reply reply;
    reply.content_type = "video/mp4";
    reply.headers.emplace_back(http::field::accept_ranges, "bytes");
    if (!r.ok()) {
      std::fclose(f);
      reply = ErrorReply(416, "invalid_request_error", "range_not_satisfiable", "Range", std::string(r.status().message()));
      reply.headers.emplace_back(http::field::content_range, absl::StrCat("bytes */", size));
      return reply;
    }
    if (!r->has_value()) {
      std::fclose(f);
      reply.file_path = *path;
      return reply;
    }
    const ByteRange br = **r;
    reply.status = http::status::partial_content;
    reply.body.resize(static_cast<size_t>(br.length()));
    std::fseek(f, static_cast<long>(br.first), SEEK_SET);
    const size_t n = std::fread(reply.body.data(), 1, reply.body.size(), f);
    std::fclose(f);
    if (n != reply.body.size()) {
      return ErrorReply(500, "server_error", "content_missing", "", "the video file shrank while reading");
    }
    reply.headers.emplace_back(http::field::content_range, absl::StrCat("bytes ", br.first, "-", br.last, "/", size));
    return reply;
  }

  // The first frame (thumbnail) or a 4-column grid of up to 16 evenly spaced frames
  // (spritesheet) as a JPEG, made from the stored MP4 on each request (no second copy of the
  // video on disk to keep consistent).
  Reply Picture(const std::string& id, const std::string& path, const std::string& variant) {
    auto jpeg = variant == "thumbnail" ? VideoThumbnailJpeg(path) : VideoSpritesheetJpeg(path);
    if (!jpeg.ok()) {
      return ErrorReply(500, "server_error", absl::StrCat(variant, "_failed"), "",
                        absl::StrCat("cannot make the ", variant, " of '", id, "': ", jpeg.status().message()));
    }
    Reply reply;
    reply.content_type = "image/jpeg";
    reply.body = std::move(*jpeg);
    return reply;
  }

  JobManager* manager_;
  TokenAuthenticator* client_auth_;  // null: no client authentication
  const ApiServerOptions options_;
};

// One connection: (over TLS, the handshake first) read a request (header first: a declared
// body over the limit is refused before it is read; Expect: 100-continue is answered), answer
// it, repeat while keep-alive. `Stream` is PlainStream or TlsStream; the rest is one path.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(Stream&& stream, Router* router, const ApiServerOptions* options, HandshakeFailureLog* handshake_log)
      : stream_(std::move(stream)), router_(router), options_(options), handshake_log_(handshake_log) {}

  void Run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::Start, this->shared_from_this())); }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  tcp::socket& Socket() { return beast::get_lowest_layer(stream_).socket(); }

  std::string Peer() {
    beast::error_code ec;
    auto remote = Socket().remote_endpoint(ec);
    return ec ? std::string("unknown") : absl::StrCat(remote.address().to_string(), ":", remote.port());
  }

  void Start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(kTlsHandshakeTimeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
        // A failed handshake ends this connection only: the session (and its socket) goes.
        if (ec) return self->handshake_log_->Failed(self->Peer(), ec);
        self->ReadHeader();
      });
    } else {
      ReadHeader();
    }
  }

  // Ends the connection after the last response: TLS sends its close_notify (waiting a
  // bounded time for the client's), plain TCP half-closes. The socket closes with the session.
  void Close() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(kTlsShutdownTimeout);
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ignored;
      Socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(64 * 1024);
    parser_->body_limit(static_cast<std::uint64_t>(options_->max_body_bytes));
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(120));
    http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    // A declared Content-Length over the limit fails the header read itself.
    if (ec == http::error::body_limit) return Send(TooLarge(), false);
    if (ec) return Fail(ec);
    auto& req = parser_->get();
    if (auto len = parser_->content_length(); len && *len > static_cast<std::uint64_t>(options_->max_body_bytes)) {
      return Send(TooLarge(), /*keep_alive=*/false);
    }
    if (absl::EqualsIgnoreCase(std::string(req[http::field::expect]), "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec2, std::size_t) {
        if (ec2) return;
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) return Send(TooLarge(), false);
    if (ec) return Fail(ec);
    http::request<http::string_body> req = parser_->release();
    const std::string peer = Peer();
    if (beast::websocket::is_upgrade(req) &&
        absl::string_view(req.target().data(), req.target().size()).substr(0, req.target().find('?')) ==
            "/v1/realtime/video") {
      Router* router = router_;
      Reply refusal;
      auto tenant = router->Authenticate(req, peer, &refusal);
      if (tenant.ok()) {
        RealtimeOptions realtime;
        realtime.max_message_bytes = options_->ws_max_message_bytes;
        const std::string t = *tenant;
        StartRealtimeVideoSession(
            std::move(stream_), std::move(req), router->manager(), t,
            [router, t](const VideoCreateParams& p, ApiError* e) { return router->SubmitVideo(t, p, "", e); },
            realtime);
        return;
      }
      // No upgrade without a valid token: the 401 goes back as a plain HTTP reply below.
    }
    Reply reply = router_->Handle(req, peer);
    const bool keep_alive = req.keep_alive();
    head_ = req.method() == http::verb::head;
    version_ = req.version();
    Send(std::move(reply), keep_alive);
  }

  Reply TooLarge() {
    return ErrorReply(413, "invalid_request_error", "request_too_large", "",
                      absl::StrCat("The request body is larger than ", options_->max_body_bytes,
                                   " bytes (--api_max_body_bytes)"));
  }

  template <class Body>
  void Finish(http::response<Body>& res, const Reply& reply, bool keep_alive) {
    res.version(version_);
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [k, v] : reply.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.prepare_payload();
  }

  void Send(Reply reply, bool keep_alive) {
    if (!reply.file_path.empty()) {
      auto res = std::make_shared<http::response<http::file_body>>();
      beast::error_code ec;
      res->body().open(reply.file_path.c_str(), beast::file_mode::scan, ec);
      if (!ec) {
        res->result(reply.status);
        Finish(*res, reply, keep_alive);
        Write(res, keep_alive);
        return;
      }
      reply = ErrorReply(500, "server_error", "content_missing", "", "the video file cannot be opened");
    }
    auto res = std::make_shared<http::response<http::string_body>>(reply.status, version_);
    const size_t length = reply.body.size();
    res->body() = head_ ? std::string() : std::move(reply.body);
    Finish(*res, reply, keep_alive);
    if (head_) res->content_length(length);
    Write(res, keep_alive);
  }

  template <class Response>
  void Write(std::shared_ptr<Response> res, bool keep_alive) {
    if (head_) {
      auto sr = std::make_shared<http::response_serializer<typename Response::body_type>>(*res);
      http::async_write_header(stream_, *sr, [self = shared_from_this(), res, sr, keep_alive](beast::error_code ec, std::size_t) {
        self->OnWrite(keep_alive, ec);
      });
      return;
    }
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
      self->OnWrite(keep_alive, ec);
    });
  }

  void OnWrite(bool keep_alive, beast::error_code ec) {
    if (ec) return Fail(ec);
    if (!keep_alive) return Close();
    head_ = false;
    ReadHeader();
  }

  void Fail(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return Close();
    // Timed out (the stream closed the socket), stopped, or over TLS, the client closed TCP
    // without a close_notify: nothing more can be sent.
    if (ec == net::error::operation_aborted || ec == beast::error::timeout || ec == net::ssl::error::stream_truncated) {
      return;
    }
    // A request that is not HTTP/1.1 as we read it: answer 400 once and close.
    if (ec.category() == http::make_error_code(http::error::bad_target).category() && !answered_bad_) {
      answered_bad_ = true;
      Send(ErrorReply(400, "invalid_request_error", "bad_http", "", absl::StrCat("Malformed HTTP request: ", ec.message())),
           false);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Router* router_;
  const ApiServerOptions* options_;
  HandshakeFailureLog* handshake_log_;
  unsigned version_ = 11;
  bool head_ = false;
  bool answered_bad_ = false;
};

}  // namespace

struct ApiHttpServer::Impl {
  Impl(JobManager* manager, TokenAuthenticator* client_auth, const ApiServerOptions& o,
       std::unique_ptr<net::ssl::context> tls)
      : options(o),
        router(manager, client_auth, o),
        tls_context(std::move(tls)),
        ioc(o.threads),
        acceptor(net::make_strand(ioc)) {}

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        if (tls_context) {
          std::make_shared<Session<TlsStream>>(TlsStream(std::move(socket), *tls_context), &router, &options,
                                               &handshake_log)
              ->Run();
        } else {
          std::make_shared<Session<PlainStream>>(PlainStream(std::move(socket)), &router, &options, &handshake_log)
              ->Run();
        }
      }
      Accept();
    });
  }

  ApiServerOptions options;
  Router router;
  HandshakeFailureLog handshake_log;
  // Before ioc: connections (destroyed with ioc's pending handlers) use it to the end.
  std::unique_ptr<net::ssl::context> tls_context;  // null: plain HTTP
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
};

ApiHttpServer::ApiHttpServer(JobManager* manager, TokenAuthenticator* client_auth)
    : manager_(manager), client_auth_(client_auth) {}

ApiHttpServer::~ApiHttpServer() { Stop(); }

absl::StatusOr<int> ApiHttpServer::Start(const ApiServerOptions& options) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--api_listen ", options.listen, ": ", why));
  };
  if (options.threads < 1 || options.threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat("--api_threads: ", options.threads, " is out of range; allowed [1, 256]"));
  }
  if (options.max_body_bytes < 1024) {
    return absl::InvalidArgumentError(absl::StrCat("--api_max_body_bytes: ", options.max_body_bytes, " is below 1024"));
  }
  if (options.ws_max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api_ws_max_message_bytes: ", options.ws_max_message_bytes, " is below 1024"));
  }
  size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT");
  std::string host = options.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  if (!absl::SimpleAtoi(options.listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return bad("the port is not a number in [0, 65535]");
  }
  beast::error_code ec;
  auto address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return bad(absl::StrCat("'", host, "' is not an IP address"));
  MAGI_ASSIGN_OR_RETURN(auto tls, MakeTlsServerContext(options.tls));
  impl_ = std::make_unique<Impl>(manager_, client_auth_, options, std::move(tls));
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    impl_.reset();
    return bad(absl::StrCat("cannot listen (", ec.message(), ")"));
  }
  const int bound = impl_->acceptor.local_endpoint().port();
  impl_->Accept();
  for (int i = 0; i < options.threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  return bound;
}

void ApiHttpServer::Stop() {
  if (!impl_) return;
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_.reset();
}

}  // namespace magi
