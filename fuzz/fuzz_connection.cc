// libFuzzer target: a whole connection (parser, body decoding, pipelining,
// response framing, output queue, error answers and lingering close) driven
// through a socketpair by a stub application. No Python.
//
// The input is the byte stream a client sends; it is written in pieces whose
// sizes come from the input itself, with the event loop run in between, then
// the client half-closes and the loop runs until the connection is gone.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "core/connection.h"
#include "core/worker.h"

namespace {

using fulmen::Connection;
using fulmen::RequestHead;
using fulmen::ResponseStream;

// Streams a few chunks, one per pump, to exercise the stream path.
class StubStream final : public ResponseStream {
 public:
  bool pump(fulmen::Exchange& c) override {
    if (left_-- > 0) {
      c.write_body("chunk-data", 10);
      return false;
    }
    c.finish_response();
    return true;
  }

 private:
  int left_ = 3;
};

class StubHandler final : public fulmen::Handler {
 public:
  std::unique_ptr<ResponseStream> handle(Connection& c, const RequestHead& head) override {
    bool stream = head.path.size() > 1 && head.path[1] == 's';
    bool head_only = head.path.size() > 1 && head.path[1] == 'h';
    // Read the whole body like an app calling wsgi.input.read().
    size_t body = 0;
    for (;;) {
      auto avail = c.body_available();
      body += avail.size();
      c.body_consume(avail.size());
      if (c.body_complete()) break;
      if (c.body_fill_blocking(c.body_read_deadline()) <= 0) break;
    }
    if (c.body_failed()) {
      c.send_error(400);
      return nullptr;
    }
    std::string text = "body=" + std::to_string(body);
    c.start_response("200 OK", 200);
    c.add_header("Content-Type", "text/plain");
    if (stream) {
      c.end_headers(-1);
      return std::make_unique<StubStream>();
    }
    c.end_headers(head_only ? -1 : static_cast<int64_t>(text.size()));
    c.write_body(text.data(), text.size());
    c.finish_response();
    return nullptr;
  }
};

fulmen::Worker& worker() {
  static StubHandler handler;
  static fulmen::WorkerConfig config = [] {
    fulmen::WorkerConfig c;
    c.body_ms = 50;  // A truncated body must not stall the fuzzer.
    c.max_body_buffer = 4096;
    return c;
  }();
  // Never destroyed: the loop's handles stay initialised for the process's life.
  static fulmen::Worker* w = new fulmen::Worker(config, {}, handler);  // NOLINT: process-lifetime singleton
  return *w;
}

void drain(int fd) {
  char buf[65536];
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fulmen::Worker& w = worker();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  sockaddr_storage peer{};
  peer.ss_family = AF_UNIX;
  w.adopt(sv[0], 0, peer);
  // The first byte picks the piece size, so splits are part of what is explored.
  size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
  size_t off = size > 0 ? 1 : 0;
  while (off < size) {
    size_t n = std::min(piece, size - off);
    ssize_t wr = send(sv[1], data + off, n, MSG_NOSIGNAL);
    if (wr > 0) off += static_cast<size_t>(wr);
    uv_run(w.loop(), UV_RUN_NOWAIT);
    drain(sv[1]);
    if (wr <= 0 && w.connections() == 0) break;
  }
  shutdown(sv[1], SHUT_WR);
  for (int i = 0; i < 1000 && w.connections() > 0; ++i) {
    uv_run(w.loop(), UV_RUN_NOWAIT);
    drain(sv[1]);
  }
  // A connection still open (waiting on a deadline) is closed now.
  if (w.connections() > 0) {
    w.close_all();
    uv_run(w.loop(), UV_RUN_NOWAIT);
  }
  close(sv[1]);
  return 0;
}
