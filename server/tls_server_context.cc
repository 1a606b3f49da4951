#include "server/tls_server_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/job_store.h"

namespace magi {
namespace {

namespace ssl = boost::asio::ssl;

absl::Status Bad(const char* flag, const std::string& path, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", path, "': ", why));
}

// The file's bytes, or InvalidArgument naming the flag.
absl::StatusOr<std::string> ReadPemFile(const char* flag, const std::string& path) {
  auto pem = ReadWholeFile(path);
  if (!pem.ok()) return Bad(flag, path, std::string(pem.status().message()));
  if (pem->find("-----BEGIN ") == std::string::npos) return Bad(flag, path, "not a PEM file");
  return pem;
}

// OpenSSL's reason for the last failure (its error queue is per thread), then cleared.
std::string OpenSslReason(const boost::system::error_code& ec) {
  std::string why = ec ? ec.message() : std::string();
  if (unsigned long e = ERR_peek_last_error(); e != 0 && why.empty()) {
    const char* reason = ERR_reason_error_string(e);
    why = reason != nullptr ? reason : "unknown OpenSSL error";
  }
  ERR_clear_error();
  return why;
}

// The subject names of the CA bundle, offered to clients in the CertificateRequest (curl and
// browsers pick their certificate by them).
absl::Status SetClientCaNames(SSL_CTX* ctx, const std::string& pem, const std::string& path) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Bad("--tls_client_ca", path, "out of memory");
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_client_CA(ctx, cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop ends on "no start line"
  if (added == 0) return Bad("--tls_client_ca", path, "holds no PEM certificate");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsServerContext(const TlsServerFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (files.cert.empty()) {
    if (!files.client_ca.empty()) return absl::InvalidArgumentError("--tls_client_ca: needs --tls_cert and --tls_key");
    return std::unique_ptr<ssl::context>();
  }
  MAGI_ASSIGN_OR_RETURN(auto cert, ReadPemFile("--tls_cert", files.cert));
  MAGI_ASSIGN_OR_RETURN(auto key, ReadPemFile("--tls_key", files.key));

  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return absl::InternalError("TLS: cannot set the minimum protocol version to TLS 1.2");
  }
  boost::system::error_code ec;
  ctx->use_certificate_chain(boost::asio::buffer(cert), ec);
  if (ec) return Bad("--tls_cert", files.cert, absl::StrCat("not a usable PEM certificate chain (", OpenSslReason(ec), ")"));
  ctx->use_private_key(boost::asio::buffer(key), ssl::context::pem, ec);
  // OpenSSL compares the key with the certificate as it loads it, or in the check below.
  const bool mismatch = ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    return Bad("--tls_key", files.key, absl::StrCat("not a usable PEM private key (", OpenSslReason(ec), ")"));
  }
  if (mismatch || SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return Bad("--tls_key", files.key, absl::StrCat("does not match the certificate of --tls_cert '", files.cert, "'"));
  }
  if (!files.client_ca.empty()) {
    MAGI_ASSIGN_OR_RETURN(auto ca, ReadPemFile("--tls_client_ca", files.client_ca));
    ctx->add_certificate_authority(boost::asio::buffer(ca), ec);
    if (ec) {
      return Bad("--tls_client_ca", files.client_ca, absl::StrCat("not a usable PEM CA bundle (", OpenSslReason(ec), ")"));
    }
    MAGI_RETURN_IF_ERROR(SetClientCaNames(native, ca, files.client_ca));
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Verified clients may resume sessions; OpenSSL refuses resumption without a context id.
    static const unsigned char kSessionContext[] = "magi-api";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  }
  return ctx;
}

}  // namespace magi
