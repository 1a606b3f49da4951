// ApiHttpServer over TLS (--tls_cert/--tls_key/--tls_client_ca on --api_listen): HTTPS and WSS
// for a client that trusts the CA, nothing for a plaintext client (and the server goes on
// serving), mTLS refusing clients without a certificate of the client CA, and start-up errors
// naming the flag and the file. Certificates are made at test time with the openssl CLI (as
// e2e_tls does); the client is Boost.Beast over asio::ssl with a deadline on every step.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include "server/api_http_server.h"
#include "server/job_manager.h"
#include "server/server_app.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto kStepTimeout = std::chrono::seconds(5);

// What one request got: the HTTP status and body, or the error that ended the exchange.
struct Exchange {
  int status = 0;
  std::string body;
  std::string error;  // empty when a response was read
  bool timed_out = false;
};

// An io_context run on its own thread, so that the test can wait on futures with deadlines.
class ClientLoop {
 public:
  ClientLoop() : guard_(net::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
  ~ClientLoop() {
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  net::io_context& ioc() { return ioc_; }

 private:
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> guard_;
  std::thread thread_;
};

template <class Stream>
void SendGet(Stream& stream, const std::string& target, Exchange* out) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  beast::get_lowest_layer(stream).expires_after(kStepTimeout);
  http::async_write(stream, req, net::use_future).get();
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::async_read(stream, buffer, res, net::use_future).get();
  out->status = res.result_int();
  out->body = res.body();
}

// GET `target` on 127.0.0.1:port; over TLS when `tls` is set (the handshake checks that the
// server's certificate is valid for 127.0.0.1).
Exchange Get(int port, ssl::context* tls, const std::string& target) {
  ClientLoop loop;
  Exchange out;
  try {
    beast::tcp_stream tcp(loop.ioc());
    tcp.expires_after(kStepTimeout);
    tcp.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                      net::use_future)
        .get();
    if (tls == nullptr) {
      SendGet(tcp, target, &out);
    } else {
      TlsStream stream(std::move(tcp), *tls);
      stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
      beast::get_lowest_layer(stream).expires_after(kStepTimeout);
      stream.async_handshake(ssl::stream_base::client, net::use_future).get();
      SendGet(stream, target, &out);
    }
  } catch (const boost::system::system_error& e) {
    out.error = e.code().message();
    out.timed_out = e.code() == beast::error::timeout;
  }
  return out;
}

void RunShell(const std::string& command) {
  ASSERT_EQ(std::system(("(" + command + ") >/dev/null 2>&1").c_str()), 0) << command;
}

class ApiHttpServerTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("magi-api-tls-" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    const std::string d = dir_->string();
    auto ca = [&](const std::string& name) {
      RunShell("cd " + d + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " + name +
          ".pem -days 2 -subj '/CN=magi " + name + "'");
    };
    auto signed_by = [&](const std::string& name, const std::string& issuer) {
      RunShell("cd " + d + " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " + name +
          ".csr -subj /CN=" + name + " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > " + name +
          ".ext && openssl x509 -req -in " + name + ".csr -CA " + issuer + ".pem -CAkey " + issuer +
          ".key -CAcreateserial -out " + name + ".pem -days 2 -extfile " + name + ".ext");
    };
    ca("ca");
    ca("other_ca");
    signed_by("server", "ca");
    signed_by("client", "ca");
    signed_by("stranger", "other_ca");  // a client certificate the server's client CA did not sign
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::string File(const std::string& name) { return (*dir_ / name).string(); }

  void SetUp() override {
    JobManagerOptions jo;
    state_ = *dir_ / ("state-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    jo.state_dir = state_.string();
    auto manager = JobManager::Create(jo, nullptr);
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = std::move(*manager);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    manager_.reset();
    fs::remove_all(state_);
  }

  // Starts the API with the server certificate (and `client_ca` when set); returns its port.
  int StartTls(const std::string& client_ca = "") {
    ApiServerOptions o;
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.tls = TlsServerFiles{File("server.pem"), File("server.key"), client_ca};
    server_ = std::make_unique<ApiHttpServer>(manager_.get(), nullptr);
    auto port = server_->Start(o);
    EXPECT_TRUE(port.ok()) << port.status();
    return port.ok() ? *port : 0;
  }

  // A client context that trusts `ca` and, when `cert` is set, presents <cert>.pem/<cert>.key.
  static std::unique_ptr<ssl::context> ClientContext(const std::string& ca, const std::string& cert = "") {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->load_verify_file(File(ca + ".pem"));
    ctx->set_verify_mode(ssl::verify_peer);
    if (!cert.empty()) {
      ctx->use_certificate_chain_file(File(cert + ".pem"));
      ctx->use_private_key_file(File(cert + ".key"), ssl::context::pem);
    }
    return ctx;
  }

  static fs::path* dir_;
  fs::path state_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<ApiHttpServer> server_;
};

fs::path* ApiHttpServerTlsTest::dir_ = nullptr;

TEST_F(ApiHttpServerTlsTest, HttpsServesAClientThatTrustsTheCa) {
  const int port = StartTls();
  auto client = ClientContext("ca");
  Exchange list = Get(port, client.get(), "/v1/videos");
  ASSERT_EQ(list.error, "");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(nlohmann::json::parse(list.body)["data"], nlohmann::json::array());
  Exchange unknown = Get(port, client.get(), "/no/such/route");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("unknown_url"), std::string::npos);

  // A client that does not trust the server's CA refuses the handshake.
  auto stranger = ClientContext("other_ca");
  Exchange refused = Get(port, stranger.get(), "/v1/videos");
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error, "");
}

TEST_F(ApiHttpServerTlsTest, PlaintextClientGetsNoHttpResponseAndTheServerGoesOn) {
  const int port = StartTls();
  // A connection that never says anything holds only itself (the handshake has a deadline).
  ClientLoop idle_loop;
  tcp::socket idle(idle_loop.ioc());
  idle.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));

  for (int i = 0; i < 3; ++i) {
    Exchange plain = Get(port, nullptr, "/v1/videos");
    EXPECT_EQ(plain.status, 0) << plain.body;
    EXPECT_NE(plain.error, "");
    EXPECT_FALSE(plain.timed_out) << "the server should close a failed handshake at once";
  }
  auto client = ClientContext("ca");
  Exchange after = Get(port, client.get(), "/v1/videos");
  EXPECT_EQ(after.error, "");
  EXPECT_EQ(after.status, 200);
}

TEST_F(ApiHttpServerTlsTest, ClientCaRequiresASignedClientCertificate) {
  const int port = StartTls(File("ca.pem"));
  auto no_cert = ClientContext("ca");
  Exchange refused = Get(port, no_cert.get(), "/v1/videos");
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error, "");

  auto wrong_ca = ClientContext("ca", "stranger");
  Exchange refused_too = Get(port, wrong_ca.get(), "/v1/videos");
  EXPECT_EQ(refused_too.status, 0);
  EXPECT_NE(refused_too.error, "");

  auto signed_cert = ClientContext("ca", "client");
  Exchange ok = Get(port, signed_cert.get(), "/v1/videos");
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.status, 200);
}

TEST_F(ApiHttpServerTlsTest, RealtimeWebSocketRunsOverTls) {
  const int port = StartTls();
  auto client = ClientContext("ca");
  ClientLoop loop;
  websocket::stream<TlsStream> ws(loop.ioc(), *client);
  auto& lowest = beast::get_lowest_layer(ws);
  lowest.expires_after(kStepTimeout);
  lowest.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                       net::use_future)
      .get();
  ws.next_layer().set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  ws.next_layer().async_handshake(ssl::stream_base::client, net::use_future).get();
  ws.async_handshake("127.0.0.1", "/v1/realtime/video", net::use_future).get();
  // A message the protocol does not know is answered with an error message, not a close.
  ws.async_write(net::buffer(std::string(R"({"type":"no.such.type"})")), net::use_future).get();
  beast::flat_buffer buffer;
  ws.async_read(buffer, net::use_future).get();
  auto reply = nlohmann::json::parse(beast::buffers_to_string(buffer.data()));
  EXPECT_EQ(reply["type"], "error") << reply.dump();
  lowest.expires_after(kStepTimeout);
  ws.async_close(websocket::close_code::normal, net::use_future).get();
}

TEST_F(ApiHttpServerTlsTest, UnusableFilesStopTheStartNamingFlagAndFile) {
  auto start = [&](TlsServerFiles files) {
    ApiServerOptions o;
    o.listen = "127.0.0.1:0";
    o.tls = std::move(files);
    ApiHttpServer server(manager_.get(), nullptr);
    return server.Start(o).status();
  };
  absl::Status missing = start({File("nope.pem"), File("server.key"), ""});
  EXPECT_TRUE(absl::IsInvalidArgument(missing)) << missing;
  EXPECT_NE(missing.message().find("--tls_cert '" + File("nope.pem") + "'"), std::string::npos) << missing;

  absl::Status mismatched = start({File("server.pem"), File("client.key"), ""});
  EXPECT_TRUE(absl::IsInvalidArgument(mismatched)) << mismatched;
  EXPECT_NE(mismatched.message().find("--tls_key '" + File("client.key") + "'"), std::string::npos) << mismatched;
  EXPECT_NE(mismatched.message().find("does not match"), std::string::npos) << mismatched;

  absl::Status key_as_cert = start({File("server.key"), File("server.key"), ""});
  EXPECT_TRUE(absl::IsInvalidArgument(key_as_cert)) << key_as_cert;
  EXPECT_NE(key_as_cert.message().find("--tls_cert"), std::string::npos) << key_as_cert;

  absl::Status bad_ca = start({File("server.pem"), File("server.key"), File("server.key")});
  EXPECT_TRUE(absl::IsInvalidArgument(bad_ca)) << bad_ca;
  EXPECT_NE(bad_ca.message().find("--tls_client_ca '" + File("server.key") + "'"), std::string::npos) << bad_ca;

  absl::Status half = start({File("server.pem"), "", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(half)) << half;
  EXPECT_NE(half.message().find("--tls_key"), std::string::npos) << half;
}

// magi-server's plumbing: ServerApp's --tls_* files serve the API too (one set of flags).
TEST_F(ApiHttpServerTlsTest, ServerAppServesTheApiWithItsTlsFiles) {
  ServerApp app;
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.http_listen = "";
  o.api.listen = "127.0.0.1:0";
  o.jobs.state_dir = (state_ / "app").string();
  o.tls_cert = File("server.pem");
  o.tls_key = File("server.key");
  o.tls_client_ca = File("ca.pem");
  ASSERT_TRUE(app.Start(o).ok());
  auto signed_cert = ClientContext("ca", "client");
  Exchange ok = Get(app.api_port(), signed_cert.get(), "/v1/videos");
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.status, 200);
  auto no_cert = ClientContext("ca");
  EXPECT_EQ(Get(app.api_port(), no_cert.get(), "/v1/videos").status, 0);
  EXPECT_EQ(Get(app.api_port(), nullptr, "/v1/videos").status, 0);
  app.Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace magi
