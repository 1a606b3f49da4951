#include "server/server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <boost/asio/ssl/context.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/http_endpoints.h"
#include "server/server_metrics.h"
#include "server/video_generation_service.h"
#include "server/tls_server_context.h"
#include "server/token_auth.h"
#include "server/worker_pool_service.h"

namespace magi {

ServerApp::ServerApp() = default;

ServerApp::~ServerApp() { Shutdown(absl::ZeroDuration()); }

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  auto pem = ReadWholeFile(path);
  if (!pem.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, " '", path, "': ", pem.status().message()));
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " '", path, "': not a PEM file"));
  }
  return pem;
}

TlsServerFiles TlsFiles(const ServerOptions& options) {
  return TlsServerFiles{options.tls_cert, options.tls_key, options.tls_client_ca};
}

// Insecure without --tls_cert/--tls_key; TLS (mTLS with --tls_client_ca) with them.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> PublicCredentials(const ServerOptions& options) {
  // OpenSSL checks the files first (PEM, key matches certificate): a bad one stops the start
  // naming its flag, where gRPC would only fail to listen.
  MAGI_ASSIGN_OR_RETURN(auto checked, MakeTlsServerContext(TlsFiles(options)));
  if (checked == nullptr) return grpc::InsecureServerCredentials();
  MAGI_ASSIGN_OR_RETURN(auto cert, ReadPem(options.tls_cert, "--tls_cert"));
  MAGI_ASSIGN_OR_RETURN(auto key, ReadPem(options.tls_key, "--tls_key"));
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!options.tls_client_ca.empty()) {
    MAGI_ASSIGN_OR_RETURN(auto ca, ReadPem(options.tls_client_ca, "--tls_client_ca"));
    ssl.pem_root_certs = ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::Status ServerApp::Start(const ServerOptions& options) {
  metrics_ = std::make_unique<ServerMetrics>();
  MAGI_ASSIGN_OR_RETURN(auto manager, JobManager::Create(options.jobs, metrics_.get()));
  manager_ = std::move(manager);
  if (!options.client_tokens_file.empty()) {
    MAGI_ASSIGN_OR_RETURN(auto client_auth, TokenAuthenticator::FromFile(options.client_tokens_file,
                                                                           TokenRole::kClient, metrics_.get()));
    client_auth_ = std::move(client_auth);
  }
  public_service_ = std::make_unique<VideoGenerationService>(manager_.get(), client_auth_.get());
  MAGI_ASSIGN_OR_RETURN(auto public_credentials, PublicCredentials(options));
  worker_token_file_ = options.worker_token_file;
  if (worker_token_file_.empty()) {
    MAGI_ASSIGN_OR_RETURN(auto generated, WriteGeneratedWorkerToken(options.jobs.state_dir));
    worker_token_file_ = generated;
  }
  MAGI_ASSIGN_OR_RETURN(auto auth,
                        TokenAuthenticator::FromFile(worker_token_file_, TokenRole::kWorker, metrics_.get()));
  worker_auth_ = std::move(auth);
  worker_service_ = std::make_unique<WorkerPoolService>(manager_.get(), worker_auth_.get());
  const bool own_worker_listener = !options.worker_listen.empty();
  if (own_worker_listener && options.worker_listen == options.listen && !absl::EndsWith(options.listen, ":0")) {
    return absl::InvalidArgumentError(absl::StrCat("--worker_listen ", options.worker_listen,
                                                   " is --listen; leave it empty to serve WorkerPool on --listen"));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto configure = [&](grpc::ServerBuilder& builder) {
    builder.SetMaxReceiveMessageSize(options.max_message_bytes);
    builder.SetMaxSendMessageSize(options.max_message_bytes);
    // Workers and clients keep long streams open; keepalive notices dead peers.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // gRPC sets SO_REUSEPORT by default: a second server on a port in use would share it
    // silently (each taking some of the connections). A port in use is an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  };
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, public_credentials, &grpc_port_);
  configure(builder);
  builder.RegisterService(public_service_.get());
  if (!own_worker_listener) builder.RegisterService(worker_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", options.listen,
                                                   ": cannot listen (address in use or invalid)"));
  }
  worker_port_ = grpc_port_;
  if (own_worker_listener) {
    grpc::ServerBuilder worker_builder;
    worker_builder.AddListeningPort(options.worker_listen, grpc::InsecureServerCredentials(), &worker_port_);
    configure(worker_builder);
    worker_builder.RegisterService(worker_service_.get());
    worker_server_ = worker_builder.BuildAndStart();
    if (!worker_server_ || worker_port_ == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--worker_listen ", options.worker_listen,
                                                     ": cannot listen (address in use or invalid)"));
    }
  }
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
  }
  if (!options.http_listen.empty()) {
    http_ = std::make_unique<HttpEndpoints>(metrics_.get(), [m = manager_.get()] { return !m->draining(); });
    MAGI_ASSIGN_OR_RETURN(auto port, http_->Start(options.http_listen));
    http_port_ = port;
  }
  if (!options.api.listen.empty()) {
    ApiServerOptions api = options.api;
    api.tls = TlsFiles(options);  // the public listeners share one certificate
    api_ = std::make_unique<ApiHttpServer>(manager_.get(), client_auth_.get());
    MAGI_ASSIGN_OR_RETURN(auto port, api_->Start(api));
    api_port_ = port;
  }
  return absl::OkStatus();
}

bool ServerApp::Drain(absl::Duration timeout) {
  if (!manager_) return true;
  manager_->StartDraining();
  if (server_ && server_->GetHealthCheckService()) {
    server_->GetHealthCheckService()->SetServingStatus(false);
  }
  return manager_->WaitForNoRunningJobs(timeout);
}

void ServerApp::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (manager_) {
    manager_->StartDraining();
    manager_->CloseAllStreams(absl::UnavailableError("server shutting down; Watch again later"));
  }
  for (grpc::Server* s : {server_.get(), worker_server_.get()}) {
    if (s == nullptr) continue;
    s->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    s->Wait();
  }
  if (http_) http_->Stop();
  if (api_) api_->Stop();
  server_.reset();
  worker_server_.reset();
  api_.reset();
  manager_.reset();
}

}  // namespace magi
