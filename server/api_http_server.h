// ApiHttpServer: the OpenAI-compatible HTTP API of magi-server (--api_listen), a second
// front-end over the same JobManager as the gRPC services (one job model, two front-ends;
// a video's id is its job id). Routes (OpenAI's Videos API; the request/response shapes are
// api/):
//
//   POST   /v1/videos                 create (multipart/form-data or JSON)
//   GET    /v1/videos                 list (after, limit, order)
//   GET    /v1/videos/{id}            retrieve
//   DELETE /v1/videos/{id}            cancel if unfinished, then delete its record and files
//   GET    /v1/videos/{id}/content    the MP4 (variant=video), with HTTP Range requests
//   POST   /v1/videos/{id}/remix      same settings, new prompt
//   GET    /v1/realtime/video         WebSocket: a video streamed as fMP4 chunks while it is
//                                     made (server/realtime_video_session.h)
//   GET    /, /viewer                 the browser viewer (server/viewer_page.h)
//
// With a client authenticator (--client_tokens_file) every request needs
// `Authorization: Bearer <client token>` (else 401 with OpenAI's error JSON, code
// invalid_api_key) and sees only its tenant's videos, as over gRPC; another tenant's video
// id is a 404 like an unknown one.
//
// Errors are OpenAI's error JSON (api/api_error.h). Built on Boost.Beast (asio): Debian
// ships it header-only in libboost-dev, it does HTTP/1.1 and WebSocket on one listener
// (the realtime stream needs both), and body limits are enforced while reading.
//
// TLS: with options.tls set (magi-server's --tls_cert/--tls_key/--tls_client_ca, the files of
// the gRPC port) the listener serves HTTPS and WSS only (OpenSSL through asio::ssl; TLS 1.2 or
// later; with a client CA, mTLS). A connection that does not complete the TLS handshake within
// 10 s, or fails it (a plaintext client, an untrusted client certificate), is closed without
// an HTTP answer; the failure is logged at most once a second.
//
// Thread safety: Start/Stop from one controlling thread. Requests are served by
// `threads` asio threads; each request's JobManager call blocks its thread (SQLite).
#ifndef MAGI_SERVER_API_HTTP_SERVER_H_
#define MAGI_SERVER_API_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/tls_server_context.h"

namespace magi {

class JobManager;
class TokenAuthenticator;

struct ApiServerOptions {
  std::string listen;                     // host:port; port 0 picks a free port; empty = off
  int64_t max_body_bytes = 48 << 20;      // a request body (an upload) at most; more -> 413
  int max_multipart_parts = 64;
  int threads = 4;
  // GET /v1/realtime/video (server/realtime_video_session.h): a client message at most;
  // more closes the WebSocket with code 1009.
  int64_t ws_max_message_bytes = 1 << 20;
  // TLS (HTTPS/WSS); empty = plain HTTP. ServerApp sets it from ServerOptions' tls_cert,
  // tls_key and tls_client_ca, so one set of flags serves both public listeners.
  TlsServerFiles tls;
};

class ApiHttpServer {
 public:
  // `manager` and `client_auth` (null: no client authentication) must outlive the server.
  ApiHttpServer(JobManager* manager, TokenAuthenticator* client_auth);
  ~ApiHttpServer();  // Stop()
  ApiHttpServer(const ApiHttpServer&) = delete;
  ApiHttpServer& operator=(const ApiHttpServer&) = delete;

  // Listens and serves; returns the bound port. InvalidArgument naming --api_listen when
  // the address is malformed or taken, or naming the TLS flag and file when options.tls
  // cannot be used (server/tls_server_context.h); nothing is served then.
  absl::StatusOr<int> Start(const ApiServerOptions& options);
  // Closes the listener and every connection; waits for the serving threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  JobManager* manager_;
  TokenAuthenticator* client_auth_;
};

}  // namespace magi

#endif  // MAGI_SERVER_API_HTTP_SERVER_H_
