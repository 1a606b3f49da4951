#include "base/http_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace magi {
namespace {

const char* Reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// `head`: a HEAD request gets the headers only. `extra` is more header lines ("Name: v\r\n").
void Respond(int fd, const HttpResponse& r, bool head, const std::string& extra = "") {
  std::string out = absl::StrCat("HTTP/1.1 ", r.code, " ", Reason(r.code), "\r\nContent-Type: ", r.content_type,
                                 "\r\nContent-Length: ", r.body.size(), "\r\n", extra, "Connection: close\r\n\r\n");
  if (!head) out += r.body;
  WriteAll(fd, out);
}

}  // namespace

HttpServer::HttpServer() = default;

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Add(std::string path, Handler handler) { routes_.emplace_back(std::move(path), std::move(handler)); }

absl::StatusOr<int> HttpServer::Start(const std::string& address, const std::string& flag) {
  // "HOST:PORT", "[V6]:PORT" or "PORT" (all interfaces).
  std::string host, port = address;
  if (size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", address, ": cannot listen: ", why));
  };
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    return bad("want HOST:PORT or PORT (\"0.0.0.0:8081\")");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return bad(::gai_strerror(rc));
  }
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  std::string err;
  if (fd < 0) {
    err = std::strerror(errno);
  } else if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
             ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    err = std::strerror(errno);
  }
  ::freeaddrinfo(res);
  if (!err.empty()) {
    if (fd >= 0) ::close(fd);
    return bad(err);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listen_fd_ = fd;
  stop_ = false;
  // One thread with the default stack (civetweb's fixed small thread stacks cannot hold the
  // static TLS of a process that links LibTorch: pthread_create fails with EINVAL).
  thread_ = std::thread([this] { Loop(); });
  return bound_port;
}

void HttpServer::Loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{2, 0};  // a slow or silent client cannot hold the probe port for long
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Serve(c);
    ::close(c);
  }
}

void HttpServer::Serve(int fd) {
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t sp1 = req.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    // Not an HTTP/1.x request line: answer in HTTP/1.0, which every client reads.
    WriteAll(fd, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
                 "Connection: close\r\n\r\nbad request\n");
    return;
  }
  const std::string method = req.substr(0, sp1);
  std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
  if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
  const Handler* fn = nullptr;
  for (const auto& [route, handler] : routes_) {
    if (route == path) fn = &handler;
  }
  const bool head = method == "HEAD";
  if (fn == nullptr) {
    std::string known;
    for (const auto& route : routes_) known += (known.empty() ? "" : ", ") + route.first;
    Respond(fd, {404, absl::StrCat("not found; this port serves ", known, "\n")}, head);
  } else if (method != "GET" && !head) {
    Respond(fd, {405, "method not allowed; use GET or HEAD\n"}, false, "Allow: GET, HEAD\r\n");
  } else {
    Respond(fd, (*fn)(), head);
  }
}

void HttpServer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

}  // namespace magi
