// RealtimeVideoSession: one WebSocket client of GET /v1/realtime/video (the protocol is
// api/realtime_protocol.h). Started by ApiHttpServer when a request to that path asks for
// an upgrade; it owns the connection from then on.
//
// The session submits a job (session.start) or attaches to one (session.resume) and relays
// the job's events from the JobManager's feed: progress and chunk metadata as JSON text
// messages, the init segment and each chunk's fMP4 fragment as binary messages. Bounded:
//   * server -> client: the session is a flow-controlled JobSubscriber (JobSubscriber::
//     EnableFlowControl); an event counts as written once its last WebSocket message is
//     written, so a client that does not read holds at most the feed's window plus one event;
//     replies to control messages are at most `max_pending_replies`, and no further client
//     message is read while that many are unsent (TCP pushes back on a flooding client);
//   * client -> server: a message over `max_message_bytes` closes the connection with
//     WebSocket close code 1009 (message too big); binary messages are refused (1003).
// Disconnecting does not cancel the video (session.stop does): it goes on, stays in
// GET /v1/videos, and a new connection can session.resume it from any chunk.
//
// Thread safety: each session runs on its own asio strand; feed callbacks only post to it.
#ifndef MAGI_SERVER_REALTIME_VIDEO_SESSION_H_
#define MAGI_SERVER_REALTIME_VIDEO_SESSION_H_

#include <cstdint>
#include <functional>
#include <string>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "absl/status/statusor.h"
#include "api/api_error.h"
#include "api/video_request.h"
#include "magi/v1/video_generation.pb.h"

namespace magi {

class JobManager;

struct RealtimeOptions {
  int64_t max_message_bytes = 1 << 20;  // a client message at most (session.start with an image)
  int max_pending_replies = 16;         // unsent replies to control messages before reads pause
};

// How the session submits a create: the POST /v1/videos path of the API server (so both
// routes judge and map a create identically). Returns the job or the API error to send.
using RealtimeSubmitFn =
    std::function<absl::StatusOr<::magi::v1::Job>(const VideoCreateParams& params, ApiError* error)>;

// Takes over `stream` (plain TCP, or TLS with its handshake done: WSS), whose HTTP `request`
// asked for the WebSocket upgrade, and serves it until either side closes. `tenant` is the caller's (authenticated at the upgrade): the
// session sees only that tenant's jobs. `manager` must outlive the connection (the API server stops its
// io_context, ending every session, before the manager goes).
void StartRealtimeVideoSession(boost::beast::tcp_stream stream,
                               boost::beast::http::request<boost::beast::http::string_body> request,
                               JobManager* manager, std::string tenant, RealtimeSubmitFn submit,
                               const RealtimeOptions& options);
void StartRealtimeVideoSession(boost::beast::ssl_stream<boost::beast::tcp_stream> stream,
                               boost::beast::http::request<boost::beast::http::string_body> request,
                               JobManager* manager, std::string tenant, RealtimeSubmitFn submit,
                               const RealtimeOptions& options);

}  // namespace magi

#endif  // MAGI_SERVER_REALTIME_VIDEO_SESSION_H_
