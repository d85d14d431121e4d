// Tests for src/core/deadline.h (the pure deadline rules) and for how a
// worker applies them, with a clock the test moves by hand (issue 13 items
// 1, 6 and 8): a request that arrived while the loop was busy is answered,
// not reset; a slow reader of a large response is not "idle".
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "check.h"
#include "core/connection.h"
#include "core/deadline.h"
#include "core/worker.h"

using fulmen::DeadlineView;
using fulmen::expired;
using fulmen::Expiry;
using fulmen::Phase;
using fulmen::Timeouts;

namespace {

class ManualClock final : public fulmen::MonotonicClock {
 public:
  uint64_t now_ms() const override { return now_; }
  void advance(uint64_t ms) { now_ += ms; }

 private:
  uint64_t now_ = 1000000;
};

Timeouts timeouts() {
  Timeouts t;
  t.keepalive_ms = 5000;
  t.header_ms = 10000;
  t.body_ms = 30000;
  t.send_ms = 30000;
  t.linger_ms = 2000;
  return t;
}

DeadlineView view(Phase phase, uint64_t since, uint64_t progress = 0) {
  DeadlineView v;
  v.phase = phase;
  v.since_ms = since;
  v.progress_ms = progress;
  return v;
}

}  // namespace

TEST(idle_expires_after_keepalive) {
  auto t = timeouts();
  CHECK(expired(view(Phase::kIdle, 0), t, 4999) == Expiry::kNone);
  CHECK(expired(view(Phase::kIdle, 0), t, 5000) == Expiry::kIdle);
}

TEST(idle_with_output_or_input_is_not_idle) {
  auto t = timeouts();
  auto v = view(Phase::kIdle, 0);
  v.output_queued = true;
  CHECK(expired(v, t, 60000) == Expiry::kNone) << "a response still leaving is governed by send_ms";
  v.output_queued = false;
  v.input_pending = true;
  CHECK(expired(v, t, 60000) == Expiry::kNone) << "unparsed request bytes are not idleness";
}

TEST(a_reader_that_stops_is_dropped_after_send_timeout_in_any_phase) {
  auto t = timeouts();
  for (Phase p : {Phase::kIdle, Phase::kStreaming, Phase::kClosing}) {
    auto v = view(p, 0, 1000);
    v.output_queued = true;
    v.write_blocked = true;
    CHECK(expired(v, t, 30999) == Expiry::kNone);
    CHECK(expired(v, t, 31000) == Expiry::kSend);
  }
}

TEST(head_body_discard_and_linger_deadlines) {
  auto t = timeouts();
  CHECK(expired(view(Phase::kHead, 0), t, 9999) == Expiry::kNone);
  CHECK(expired(view(Phase::kHead, 0), t, 10000) == Expiry::kHead);
  // The body deadline runs from the last progress, not from the phase start.
  CHECK(expired(view(Phase::kBody, 0, 20000), t, 49999) == Expiry::kNone);
  CHECK(expired(view(Phase::kBody, 0, 20000), t, 50000) == Expiry::kBody);
  CHECK(expired(view(Phase::kDiscard, 0, 0), t, 30000) == Expiry::kDiscard);
  CHECK(expired(view(Phase::kLinger, 0), t, 2000) == Expiry::kLinger);
  CHECK(expired(view(Phase::kStreaming, 0), t, 1u << 30) == Expiry::kNone);
}

TEST(a_clock_behind_the_timestamps_expires_nothing) {
  auto t = timeouts();
  CHECK(expired(view(Phase::kIdle, 10000), t, 100) == Expiry::kNone);
  CHECK(expired(view(Phase::kHead, 10000), t, 100) == Expiry::kNone);
}

// ---------------------------------------------------------------- a worker on a manual clock

namespace {

class Handler final : public fulmen::Handler {
 public:
  std::unique_ptr<fulmen::ResponseStream> handle(fulmen::Connection& c, const fulmen::RequestHead& head) override {
    std::string body = head.path == "/big" ? std::string(4 << 20, 'b') : std::string("ok");
    c.start_response("200 OK", 200);
    c.end_headers(static_cast<int64_t>(body.size()));
    c.write_body(body.data(), body.size());
    c.finish_response();
    return nullptr;
  }
};

struct Rig {
  ManualClock clock;
  Handler handler;
  fulmen::WorkerConfig config;
  std::unique_ptr<fulmen::Worker> worker;
  int client = -1;

  explicit Rig(uint64_t keepalive_ms) {
    config.keepalive_ms = keepalive_ms;
    worker = std::make_unique<fulmen::Worker>(config, std::vector<int>{}, handler, clock);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    int small = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_storage peer{};
    peer.ss_family = AF_UNIX;
    worker->adopt(sv[0], 0, peer);
    client = sv[1];
  }
  ~Rig() {
    worker->close_all();
    for (int i = 0; i < 10; ++i) uv_run(worker->loop(), UV_RUN_NOWAIT);
    close(client);
    // The loop's timers were never started (run() was not called), so the
    // worker closes cleanly here.
    worker.reset();
  }
  void send(const std::string& s) const {
    if (::send(client, s.data(), s.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(s.size())) std::abort();
  }
  void turn() const { uv_run(worker->loop(), UV_RUN_NOWAIT); }
  // Lets ms pass, then runs the deadline sweep and a loop turn.
  void pass(uint64_t ms) {
    clock.advance(ms);
    worker->sweep();
    turn();
  }
  // What the server has sent so far (reads until the socket is dry).
  std::string read_some() const {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(client, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  bool peer_closed() const {
    char c;
    return recv(client, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
  }
};

}  // namespace

TEST(a_request_on_a_thread_expires_only_after_request_ms_from_its_start) {
  auto t = timeouts();
  auto v = view(Phase::kApp, 0);
  CHECK(expired(v, t, 1000000) == Expiry::kNone) << "no request timeout set";
  t.request_ms = 2000;
  CHECK(expired(v, t, 1000000) == Expiry::kNone) << "waiting for a thread is not the app's time";
  v.app_started = true;
  v.app_started_ms = 5000;
  CHECK(expired(v, t, 6999) == Expiry::kNone);
  CHECK(expired(v, t, 7000) == Expiry::kRequest);
  v.write_blocked = true;
  v.progress_ms = 0;
  CHECK(expired(v, t, 40000) == Expiry::kSend) << "a client that stopped reading still goes first";
}

TEST(a_request_that_arrived_during_a_long_turn_is_answered_not_reset) {
  Rig rig(5000);
  rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  rig.turn();
  CHECK(rig.read_some().find("200 OK") != std::string::npos);
  // The loop is busy (an app call) for longer than the keep-alive timeout,
  // and the client sends its next request meanwhile: when the sweep runs
  // before the poll has reported it, the connection must not be closed.
  rig.clock.advance(7000);
  rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  rig.worker->sweep();
  rig.turn();
  std::string got = rig.read_some();
  CHECK(got.find("HTTP/1.1 200 OK") == 0) << check::escape(got);
  CHECK(!rig.peer_closed());
  CHECK_EQ(rig.worker->connections(), 1u);
}

TEST(an_idle_connection_is_closed_after_keepalive) {
  Rig rig(5000);
  rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  rig.turn();
  rig.read_some();
  rig.pass(4999);
  CHECK_EQ(rig.worker->connections(), 1u);
  rig.pass(1);
  CHECK_EQ(rig.worker->connections(), 0u);
  CHECK(rig.peer_closed());
}

TEST(a_slow_reader_of_a_large_response_is_not_idle) {
  Rig rig(1000);
  rig.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  rig.turn();
  std::string first = rig.read_some();
  size_t head_end = first.find("\r\n\r\n");
  CHECK(head_end != std::string::npos);
  if (head_end == std::string::npos) return;
  size_t want = head_end + 4 + (4u << 20);
  size_t got = first.size();
  // Read a little, let "time" pass well beyond the keep-alive timeout on
  // each step, sweep: the response must arrive whole.
  for (int i = 0; i < 100000 && got < want; ++i) {
    rig.pass(500);
    CHECK_EQ(rig.worker->connections(), 1u) << "after " << got << " bytes, step " << i;
    if (rig.worker->connections() == 0) break;
    got += rig.read_some().size();
  }
  CHECK_EQ(got, want);
  // Once it has all left, the keep-alive wait starts from then.
  rig.pass(999);
  CHECK_EQ(rig.worker->connections(), 1u);
  rig.pass(1);
  CHECK_EQ(rig.worker->connections(), 0u);
}

TEST(keepalive_zero_closes_after_each_response) {
  Rig rig(0);
  rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  rig.turn();
  rig.turn();
  std::string got = rig.read_some();
  CHECK(got.find("Connection: close\r\n") != std::string::npos) << check::escape(got);
  CHECK(rig.peer_closed());
}

CHECK_MAIN()
