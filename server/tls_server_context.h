// TLS for the OpenAI-compatible HTTP/WebSocket API (--api_listen): the OpenSSL server context
// built from the files of --tls_cert / --tls_key / --tls_client_ca, the same files (and the
// same meaning) as for the public gRPC port (server/server_app.h). ServerApp also builds one
// at start to check the files, so a bad file stops the server naming its flag whether or not
// the API listener is on.
//
// Thread safety: MakeTlsServerContext is reentrant. A built context is shared, read-only, by
// every connection of the listener that owns it.
#ifndef MAGI_SERVER_TLS_SERVER_CONTEXT_H_
#define MAGI_SERVER_TLS_SERVER_CONTEXT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace boost::asio::ssl {
class context;
}

namespace magi {

// Paths of PEM files; all empty = no TLS.
struct TlsServerFiles {
  std::string cert;       // --tls_cert: the server's certificate chain, leaf first
  std::string key;        // --tls_key: the private key of the leaf certificate
  std::string client_ca;  // --tls_client_ca: set = clients must present a certificate it signed (mTLS)

  bool enabled() const { return !cert.empty() || !key.empty(); }
};

// A TLS server context: TLS 1.2 or later, the certificate chain and key of `files` (checked to
// belong together) and, with files.client_ca, a verified client certificate required of every
// client (its CA names are offered to clients that ask which certificate to send).
// Returns null when `files` has no cert and no key (plaintext). InvalidArgument naming the flag
// and the file when a file cannot be read, holds no usable PEM certificate/key, the key does not
// match the certificate, only one of cert/key is given, or client_ca is given without them.
// The caller owns the context; it must outlive every stream made from it.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsServerContext(const TlsServerFiles& files);

}  // namespace magi

#endif  // MAGI_SERVER_TLS_SERVER_CONTEXT_H_
