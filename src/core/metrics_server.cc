#include "core/metrics_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "core/log.h"

namespace fulmen {
namespace {

// The listening socket of the process's metrics server, closed in forked
// children (a worker must not hold the master's metrics port).
std::atomic<int> g_listen_fd{-1};

void close_in_child() {
  int fd = g_listen_fd.load();
  if (fd >= 0) ::close(fd);
}

constexpr int kReadTimeoutMs = 2000;

}  // namespace

MetricsServer::MetricsServer(Metrics& metrics, int listen_fd) : metrics_(metrics), listen_fd_(listen_fd) {
  static const bool registered = [] { return pthread_atfork(nullptr, nullptr, close_in_child) == 0; }();
  (void)registered;
  g_listen_fd.store(listen_fd_);
}

MetricsServer::~MetricsServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  g_listen_fd.store(-1);
  ::close(listen_fd_);
}

void MetricsServer::start() {
  thread_ = std::thread([this] { run(); });
  // The master forks workers next: the thread must be done starting by then
  // (a fork while a thread is being set up may copy the runtime's locks held).
  while (!running_.load()) sched_yield();
}

void MetricsServer::run() {
  // This thread takes no signal: the master's loop handles them all.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  running_.store(true);
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    int r = poll(&p, 1, 200);  // Wakes to see stop_.
    if (r <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    answer(fd);
    ::close(fd);
  }
}

// One request a connection, as a scraper sends it: read the head (bounded
// in size and time), answer, close.
void MetricsServer::answer(int fd) {
  char buf[4096];
  size_t len = 0;
  while (len < sizeof buf) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kReadTimeoutMs) <= 0) return;
    ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
    if (n <= 0) return;
    len += static_cast<size_t>(n);
    if (std::string_view(buf, len).find("\r\n\r\n") != std::string_view::npos) break;
  }
  std::string_view head(buf, len);
  std::string body, response;
  const char* status = "200 OK";
  const char* type = "text/plain; version=0.0.4; charset=utf-8";
  bool get = head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?");
  bool head_only = head.starts_with("HEAD /metrics ") || head.starts_with("HEAD /metrics?");
  if (get || head_only) {
    metrics_.render(body);
  } else if (head.starts_with("GET ") || head.starts_with("HEAD ")) {
    status = "404 Not Found";
    type = "text/plain; charset=utf-8";
    body = "only /metrics is here\n";
  } else {
    status = "405 Method Not Allowed";
    type = "text/plain; charset=utf-8";
    body = "GET /metrics\n";
  }
  char line[256];
  int n = std::snprintf(line, sizeof line,
                        "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                        type, body.size());
  response.assign(line, static_cast<size_t>(n));
  if (!head_only) response += body;
  size_t off = 0;
  while (off < response.size()) {
    ssize_t w = send(fd, response.data() + off, response.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += static_cast<size_t>(w);
  }
}

}  // namespace fulmen
