#include "core/connection.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/access_log.h"
#include "core/format.h"
#include "core/forwarded.h"
#include "core/log.h"
#include "core/proxy_protocol.h"
#include "core/response.h"
#include "core/static_files.h"
#include "core/worker.h"

namespace fulmen {
namespace {

uint64_t monotonic_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// What one recv asks for at least; the buffer grows when less room is left.
constexpr size_t kReadChunk = 16384;

uint64_t now_ms(const Worker& w) {
  return w.clock().now_ms();
}

}  // namespace

Connection::Connection(Worker& worker, int fd, size_t listener, const sockaddr_storage& peer)
    : worker_(worker), fd_(fd), listener_(listener), peer_(peer), client_(peer), out_(worker.pool()) {
  poll_.data = this;
  if (Metrics::Slot* m = worker.metrics()) {
    m->add(m->connections_accepted);
    m->add(m->connections_open, 1);
  }
  // Who may speak for the client (issue 9): a peer over a unix socket is a
  // local process, trusted as gunicorn trusts it; a TCP peer only when listed.
  const WorkerConfig& config = worker.config();
  std::optional<IpAddress> ip = IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer_));
  bool local = peer_.ss_family == AF_UNIX;
  forwarded_trusted_ = local || (ip && config.forwarded_allow_ips.contains(*ip));
  if (config.proxy_versions != 0) {
    proxy_pending_ = local || (ip && config.proxy_allow_from.contains(*ip));
    proxy_refuse_ = !proxy_pending_;
  }
}

Connection::~Connection() {
  if (Metrics::Slot* m = worker_.metrics()) m->add(m->connections_open, -1);
  drop_job();
  out_.clear();
  // Destroying the stream releases the app's iterable (WSGI close()).
  ex_.stream.reset();
  release_input();
  out_.release_memory();
  stop_budget_wait();
}

void Connection::stop_budget_wait() {
  if (!budget_wait_) return;
  budget_wait_ = false;
  worker_.budget_waiter_gone();
}

void Connection::release_input() {
  worker_.pool().release(in_);
  if (budget_held_ > 0) {
    worker_.give_input_budget(budget_held_);
    budget_held_ = 0;
  }
}

void Connection::start(std::list<Connection>::iterator self) {
  self_ = self;
  uv_poll_init_socket(worker_.loop(), &poll_, fd_);
  state_since_ = progress_ = now_ms(worker_);
  // With deferred accept the request is usually here already: read it now
  // rather than after a round through epoll. (EAGAIN just arms the watcher.)
  on_readable();
}

// Nagle's algorithm only delays a connection's second small write, so it is
// switched off when a connection is about to have one: keep-alive, streams,
// interim responses.
void Connection::ensure_nodelay() {
  if (nodelay_) return;
  nodelay_ = true;
  if (peer_.ss_family == AF_INET || peer_.ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

// ---------------------------------------------------------------- events

void Connection::on_poll(uv_poll_t* handle, int status, int events) {
  auto* c = static_cast<Connection*>(handle->data);
  if (status < 0) {
    c->fail();
    return;
  }
  if (events & UV_WRITABLE) c->on_writable();
  if (!c->closing_ && (events & (UV_READABLE | UV_DISCONNECT))) c->on_readable();
}

// Reads what the socket has into in_. The buffer starts as a pool block and
// grows (doubling, up to input_cap()) only with room taken from the worker's
// input budget; without room it stops reading (back-pressure, never a reset)
// until the budget frees or the app consumes what is there (issue 13 item 7).
int Connection::recv_into_input() {
  worker_.pool().acquire(in_);
  if (in_.room() < kReadChunk / 4 && in_.capacity() < input_cap()) {
    size_t want = std::min(input_cap(), in_.capacity() * 2);
    size_t extra = want - in_.capacity();
    if (worker_.take_input_budget(extra)) {
      budget_held_ += extra;
      in_.reserve(want);
    } else if (in_.room() == 0 && !budget_wait_) {
      budget_wait_ = true;
      worker_.budget_waiter_added();
    }
  }
  if (in_.room() == 0) return -ENOBUFS;
  ssize_t n;
  do {
    n = ::recv(fd_, in_.tail(), in_.room(), 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    in_.commit(static_cast<size_t>(n));
    return static_cast<int>(n);
  }
  if (n == 0) return 0;
  return -errno;
}

// What one request may legitimately need buffered: a head, the body read
// before the app is called, and some of the next pipelined request.
size_t Connection::input_cap() const {
  const auto& cfg = worker_.config();
  return cfg.limits.max_head + cfg.max_body_buffer + 2 * kReadChunk;
}

bool Connection::input_full() const {
  return in_.allocated() && in_.room() == 0 && in_.capacity() >= input_cap();
}

void Connection::on_budget() {
  stop_budget_wait();
  if (closing_) return;
  on_readable();
}

void Connection::on_readable() {
  if (state_ == State::kLinger) {
    char sink[4096];
    ssize_t n = ::recv(fd_, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close();
    return;
  }
  int n = recv_into_input();
  if ((proxy_pending_ || proxy_refuse_) && n != -EAGAIN && n != -EWOULDBLOCK) {
    if (n <= 0 && n != -ENOBUFS) {
      close();  // Gone before its PROXY header: nothing to answer.
      return;
    }
    if (!read_proxy_header()) return;
  }
  if (n == -ENOBUFS && budget_wait_ && state_ == State::kBody) {
    process();  // Hands the partly buffered body to the app (see kBody there).
    return;
  }
  if (n == -EAGAIN || n == -EWOULDBLOCK || n == -ENOBUFS) {
    update_poll();
    return;
  }
  if (n < 0) {
    fail();
    return;
  }
  if (n == 0) {
    peer_eof_ = true;
    // A client that half-closes after its request still gets its answers;
    // an idle one is simply closed.
    if (state_ == State::kIdle && pos_ == in_.size() && out_.empty()) {
      close();
      return;
    }
    if (state_ == State::kHead || state_ == State::kBody) {
      // The request can never complete (RFC 9112 8): say so before closing;
      // a half-closed client can still read the answer.
      process();  // Whatever did arrive in full is answered first.
      if (!closing_ && (state_ == State::kHead || state_ == State::kBody)) {
        if (state_ == State::kHead) fresh_exchange();
        respond_error(ex_.body_status);
        flush();
      }
      return;
    }
  } else if (state_ == State::kBody || state_ == State::kDiscard) {
    progress_ = now_ms(worker_);
  }
  process();
}

void Connection::on_writable() {
  if (!flush()) return;
  if (state_ == State::kClosing || state_ == State::kLinger) {
    update_poll();
    return;
  }
  process();
}

// ---------------------------------------------------------------- request path

// Takes the handler's per-batch resource (the GIL) once per pass of process().
void Connection::begin_batch(bool& batch) {
  if (!batch) {
    worker_.handler().batch_begin();
    batch = true;
  }
}

void Connection::process() {
  if (in_process_ || closing_) return;
  in_process_ = true;
  bool stop = false;
  bool batch = false;  // handler.batch_begin() was called
  // A stream that yielded for the loop turn's write (hold_block()) is
  // pumped again only once its block has left (write_held()).
  while (!stop && !closing_ && !resume_held_) {
    if (output_congested() && (!flush() || output_congested())) {
      // The socket takes no more for now: no new work until it drains.
      break;
    }
    switch (state_) {
      case State::kIdle:
      case State::kHead: {
        // A stopping worker still answers the next request of a kept-alive
        // connection, with "Connection: close" (issue 8): the client sent it
        // trusting the keep-alive of the previous response.
        if (pos_ == in_.size()) {
          stop = true;
          break;
        }
        if (worker_.threads() != nullptr && worker_.threads()->saturated()) {
          // Every thread is busy and max_pending requests wait for one: no
          // new request is started (nor read) until a thread frees up.
          if (!slot_wait_) {
            slot_wait_ = true;
            worker_.add_slot_waiter(this);
          }
          stop = true;
          break;
        }
        int r = parse_request(in_.data() + pos_, in_.size() - pos_, &worker_.scratch_head(), worker_.config().limits);
        if (r == 0) {
          if (state_ == State::kIdle) {
            state_ = State::kHead;
            state_since_ = now_ms(worker_);
          }
          stop = true;
          break;
        }
        if (r < 0) {
          fresh_exchange();  // The error answers this request, not the previous one.
          respond_error(-r);
          break;
        }
        if (!begin_exchange(r)) break;
        if (serve_static()) break;  // Under a --static mount: answered by the core (issue 11).
        if (ex_.body_done) {
          if (worker_.threads() != nullptr) {
            dispatch_job();
          } else {
            begin_batch(batch);
            dispatch();
          }
        } else {
          if (ex_.expect_continue) {
            // The client waits for this before sending its body (RFC 9110
            // 10.1.1). The body is then buffered here in the loop like any
            // other, so a client that trickles it stalls nobody else (issue
            // 13 item 3). A client that already started sending needs no 100.
            if (ex_.body_wr == ex_.body_rd && ex_.raw_rd == in_.size()) {
              static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
              queue_copy(k100.data(), k100.size());
              ensure_nodelay();
            }
            ex_.continue_sent = true;
          }
          // The head lives in the worker's scratch space, which other
          // connections reuse while this body arrives: parse it again later.
          ex_.reparse = true;
          state_ = State::kBody;
          state_since_ = progress_ = now_ms(worker_);
        }
        break;
      }
      case State::kBody: {
        if (!advance_body(false)) {
          respond_error(ex_.body_status);
          break;
        }
        if (!ex_.body_done && ex_.body_wr - ex_.body_rd < worker_.config().max_body_buffer && !budget_wait_) {
          stop = true;  // Wait for more of the body.
          break;
        }
        // When the worker's input budget is spent, rather than wait for room
        // that other waiting bodies hold too (each would wait for the
        // others), the app is called now; it reads the rest of the body itself.
        stop_budget_wait();
        if (worker_.threads() != nullptr) {
          dispatch_job();  // The thread parses its own copy of the head.
          break;
        }
        if (ex_.reparse) {
          // Parse the head again in place (its views may also have moved with the buffer).
          parse_request(in_.data() + ex_.head_start, ex_.head_len, &worker_.scratch_head(), worker_.config().limits);
          ex_.reparse = false;
        }
        begin_batch(batch);
        dispatch();
        break;
      }
      case State::kStreaming: {
        begin_batch(batch);
        pump_pending_ = false;
        bool done = ex_.stream->pump(*this);
        if (closing_) break;
        if (done || ex_.finished || state_ == State::kClosing) {
          end_exchange();
        } else if (!output_congested()) {
          // The stream yielded with room to spare (a fair share of blocks):
          // other connections run first, and the next loop turn pumps again.
          pump_pending_ = true;
          stop = true;
        }
        break;
      }
      case State::kDiscard: {
        if (!advance_body(true)) {
          ex_.keep_alive = false;
          state_ = State::kClosing;
          break;
        }
        if (!ex_.body_done) {
          stop = true;
          break;
        }
        pos_ = ex_.raw_rd;
        state_ = State::kIdle;
        state_since_ = now_ms(worker_);
        break;
      }
      case State::kApp: {
        // The request is on a thread: only its body moves here.
        feed_job_body();
        stop = true;
        break;
      }
      case State::kClosing:
      case State::kLinger: stop = true; break;
    }
  }
  in_process_ = false;
  // A response may wait for the end of the loop turn, to leave with the
  // others' (core/send_batch.h). Otherwise the batch ends after the write,
  // so what backed zero-copy output is released while the handler still
  // holds its resource (the GIL).
  if (!closing_ && !held_ && !out_.empty() && worker_.hold_output(this)) held_ = true;
  if (!closing_ && !held_ && flush()) {
    compact_input();
    update_poll();
  }
  // The client went away during the batch (a blocking body read or write()
  // met a reset): nothing can be sent, and nothing watches the socket.
  if (dead_ && !closing_) close();
  if (batch) worker_.handler().batch_end();
}

bool Connection::write_held(bool resume) {
  held_ = false;
  bool yielded = resume_held_ && state_ == State::kStreaming;
  resume_held_ = false;
  if (yielded) pump_pending_ = true;          // Unless resumed below, writable pumps it.
  if (closing_ || in_process_) return false;  // A process() under way ends with its own write.
  if (!flush()) {
    if (dead_ && !closing_) close();
    return false;
  }
  if (yielded && resume && out_.empty()) return true;  // resume_stream() pumps it now.
  compact_input();
  update_poll();
  return false;
}

void Connection::resume_stream() {
  if (closing_) return;
  pump_pending_ = false;
  process();
}

bool Connection::hold_block() {
  if (!held_) {
    if (!worker_.hold_output(this)) return false;
    held_ = true;
  }
  resume_held_ = true;
  return true;
}

bool Connection::may_end_before_write() const {
  if (ex_.no_body || ex_.declared_length < 0 || ex_.body_sent < ex_.declared_length) return false;
  return held_ || worker_.may_hold_output();
}

void Connection::fresh_exchange() {
  ex_.stream.reset();
  ex_ = ExchangeState();
}

bool Connection::begin_exchange(int head_len) {
  fresh_exchange();
  if (AccessLog* al = worker_.access_log()) log_begin(*al);
  if (Metrics::Slot* m = worker_.metrics()) {
    counted_ = true;
    metrics_method_ = Metrics::method_index(worker_.scratch_head().method);
    if (!logging_) log_start_us_ = monotonic_us();
    m->add(m->in_flight, 1);
  }
  const RequestHead& head_ = worker_.scratch_head();
  ex_.version_minor = head_.version_minor;
  ex_.head_request = head_.method == "HEAD";
  ex_.connect = head_.target_form == TargetForm::kAuthority;
  // --keepalive-timeout 0 turns keep-alive off: every response says
  // "Connection: close" and the connection ends after it (issue 13 item 6).
  ex_.keep_alive = head_.keep_alive && worker_.config().keepalive_ms > 0;
  ex_.client_close = head_.client_close;
  ex_.head_start = pos_;
  ex_.head_len = static_cast<size_t>(head_len);
  ex_.body_rd = ex_.body_wr = ex_.raw_rd = pos_ + ex_.head_len;
  if (head_.chunked) {
    ex_.chunked_in = true;
    ex_.body_done = false;
  } else if (head_.has_content_length && head_.content_length > 0) {
    ex_.cl_remaining = head_.content_length;
    ex_.body_done = false;
  }
  ex_.expect_continue = head_.expect_continue && !ex_.body_done && ex_.version_minor >= 1;
  uint64_t max_body = worker_.config().max_body_size;
  if (max_body > 0 && head_.has_content_length && head_.content_length > max_body) {
    // Refused before a byte of it is read (RFC 9110 15.5.14); no 100 Continue.
    ex_.expect_continue = false;
    respond_error(413);
    return false;
  }
  if (!advance_body(false)) {
    respond_error(ex_.body_status);
    return false;
  }
  return apply_forwarded();
}

namespace {

// A client address a proxy gave, as the socket address the environ and the
// access log read.
void store_address(const IpAddress& ip, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (ip.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, ip.bytes, 4);
    sin->sin_port = htons(port);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, ip.bytes, 16);
    sin6->sin6_port = htons(port);
  }
}

}  // namespace

// The PROXY header (issue 9), only ever at the start of a connection. From
// a trusted source it is required and its source becomes the client; from
// any other, a connection that begins with one is closed without an answer
// (it is never believed, and the bytes are not HTTP). Returns true when the
// request bytes may be parsed now.
bool Connection::read_proxy_header() {
  const char* data = in_.data() + pos_;
  size_t len = in_.size() - pos_;
  char shown[INET6_ADDRSTRLEN] = "?";
  if (auto ip = IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer_))) {
    inet_ntop(ip->family, ip->bytes, shown, sizeof shown);
  }
  ProxyHeader h;
  ProxyParse r = parse_proxy_header(data, len, &h);
  if (proxy_refuse_) {
    if (r == ProxyParse::kIncomplete && len < 16) {
      update_poll();  // Too few bytes yet to tell a PROXY header from a request.
      return false;
    }
    proxy_refuse_ = false;
    if (r != ProxyParse::kError) {
      log(LogLevel::kWarning, "PROXY header from %s, which is not in proxy_allow_from: connection closed", shown);
      close();
      return false;
    }
    return true;
  }
  if (r == ProxyParse::kIncomplete) {
    if (state_ == State::kIdle) {
      state_ = State::kHead;  // The header deadline bounds a trickled PROXY header.
      state_since_ = now_ms(worker_);
    }
    update_poll();
    return false;
  }
  if (r == ProxyParse::kComplete && (worker_.config().proxy_versions & (1u << (h.version - 1))) == 0) {
    log(LogLevel::kWarning,
        "PROXY header of version %d from %s, which proxy_protocol does not accept: connection closed", h.version,
        shown);
    close();
    return false;
  }
  if (r == ProxyParse::kError) {
    log(LogLevel::kWarning, "malformed or missing PROXY header from %s: connection closed", shown);
    close();
    return false;
  }
  if (!h.local) {
    if (std::optional<IpAddress> ip = IpAddress::parse(h.source)) store_address(*ip, h.source_port, &client_);
  }
  pos_ += h.length;
  proxy_pending_ = false;
  state_ = State::kIdle;
  state_since_ = now_ms(worker_);
  return true;
}

// X-Forwarded-* and Forwarded from a trusted peer (issue 9). Returns false
// when the request was answered instead (contradictory scheme headers: 400).
bool Connection::apply_forwarded() {
  fwd_client_set_ = false;
  fwd_https_ = false;
  if (!forwarded_trusted_) return true;
  const RequestHead& head = worker_.scratch_head();
  // Only names starting with "x-" or "f" can matter: skip the rest cheaply.
  bool any = false;
  for (size_t i = 0; i < head.num_headers && !any; ++i) {
    char c = head.headers[i].name[0];
    any = c == 'x' || c == 'X' || c == 'f' || c == 'F';
  }
  if (!any) return true;
  Forwarded f = Forwarded::resolve({head.headers, head.num_headers}, worker_.config().forwarded_allow_ips);
  if (f.conflict) {
    respond_error(400);
    return false;
  }
  fwd_https_ = f.https.value_or(false);
  if (f.remote.empty()) return true;
  std::optional<IpAddress> ip = IpAddress::parse(f.remote);
  if (!ip) return true;
  store_address(*ip, f.remote_port.value_or(0), &fwd_client_);
  fwd_client_set_ = true;
  return true;
}

// ---------------------------------------------------------------- access log

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// PATH_INFO as the access log's %(U)s shows it: percent-decoded.
void decode_path(std::string_view in, std::string& out) {
  for (size_t i = 0; i < in.size(); ++i) {
    int hi = 0, lo = 0;
    if (in[i] == '%' && i + 2 < in.size() + 0 && (hi = hex_value(in[i + 1])) >= 0 &&
        (lo = hex_value(in[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
}

}  // namespace

// Keeps what the access log line needs of the request just parsed: the
// scratch head is reused by the next parse, possibly before this exchange
// ends (bodies, streams). One copy of the head's bytes, no allocation once
// the buffers have grown.
void Connection::log_begin(AccessLog& log) {
  const RequestHead& head = worker_.scratch_head();
  if (log.excluded(head.path)) return;
  logging_ = true;
  log_start_us_ = monotonic_us();
  const char* base = head.method.data();
  const char* end = head.method.data();
  for (size_t i = 0; i < head.num_headers; ++i)
    end = std::max(end, head.headers[i].value.data() + head.headers[i].value.size());
  end = std::max({end, head.target.data() + head.target.size()});
  log_head_.assign(base, static_cast<size_t>(end - base));
  auto rebase = [&](std::string_view v) {
    return v.empty() ? std::string_view() : std::string_view(log_head_.data() + (v.data() - base), v.size());
  };
  log_method_ = rebase(head.method);
  log_target_ = rebase(head.target);
  log_path_ = rebase(head.path);
  log_query_ = rebase(head.query);
  log_version_minor_ = head.version_minor;
  log_headers_.clear();
  for (size_t i = 0; i < head.num_headers; ++i) {
    log_headers_.push_back({rebase(head.headers[i].name), rebase(head.headers[i].value)});
  }
  log_response_head_.clear();
}

// Writes the exchange's line, once: at its end, at an error answer, or when
// the connection closes under it.
void Connection::log_end() {
  if (counted_) {
    counted_ = false;
    Metrics::Slot* m = worker_.metrics();
    m->request_done(ex_.status, metrics_method_, monotonic_us() - log_start_us_);
    m->add(m->in_flight, -1);
  }
  if (!logging_) return;
  logging_ = false;
  AccessLog* log = worker_.access_log();
  if (log == nullptr) return;
  AccessLogRecord r;
  char remote[INET6_ADDRSTRLEN] = "";
  const sockaddr_storage& c = client();
  if (c.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&c)->sin_addr, remote, sizeof remote);
  } else if (c.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&c)->sin6_addr, remote, sizeof remote);
  }
  std::string path_info;
  decode_path(log_path_, path_info);
  r.remote = remote;
  r.method = log_method_;
  r.target = log_target_;
  r.path_info = path_info;
  r.query = log_query_;
  r.protocol = log_version_minor_ == 0 ? "HTTP/1.0" : "HTTP/1.1";
  r.status = ex_.status;
  if (ex_.head_started) r.sent = static_cast<uint64_t>(ex_.body_sent);
  r.request_headers = log_headers_;
  r.response_head = log_response_head_;
  r.duration_us = monotonic_us() - log_start_us_;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  r.now = now.tv_sec;
  r.now_ms = static_cast<int>(now.tv_nsec / 1000000);
  r.pid = log->pid();
  // {key}e atoms: the environ keys the core can tell (the request's own).
  const std::vector<std::string>& keys = log->format().environ_keys();
  std::optional<std::string_view> env[16];
  std::string env_store[16];
  size_t n_env = std::min(keys.size(), std::size(env));
  for (size_t i = 0; i < n_env; ++i) {
    const std::string& k = keys[i];
    std::optional<std::string_view>& v = env[i];
    if (k == "remote_addr") {
      v = r.remote;
    } else if (k == "request_method") {
      v = r.method;
    } else if (k == "path_info") {
      v = r.path_info;
    } else if (k == "query_string") {
      v = r.query;
    } else if (k == "server_protocol") {
      v = r.protocol;
    } else if (k == "raw_uri" || k == "request_uri") {
      v = r.target;
    } else if (k == "wsgi.url_scheme") {
      v = forwarded_https() ? "https" : "http";
    } else if (k.starts_with("http_") || k == "content_type" || k == "content_length") {
      // HTTP_X_Y is the header x-y; repeated fields are joined with "," as in the environ.
      std::string_view name = k.starts_with("http_") ? std::string_view(k).substr(5) : std::string_view(k);
      bool any = false;
      for (const Header& h : log_headers_) {
        bool same = h.name.size() == name.size();
        for (size_t j = 0; same && j < name.size(); ++j) {
          char a = h.name[j] == '-' ? '_' : static_cast<char>(h.name[j] | 0x20);
          same = a == name[j];
        }
        if (!same) continue;
        if (any) env_store[i].push_back(',');
        env_store[i].append(h.value);
        any = true;
      }
      if (any) v = env_store[i];
    }
  }
  r.environ = std::span<const std::optional<std::string_view>>(env, n_env);
  log->write(r);
}

// Static files (issue 11): a request whose path falls under a --static
// mount is answered here by the core, before its body is read and without
// the handler (no GIL); an unread body is discarded as after any answer.
bool Connection::serve_static() {
  StaticFiles* files = worker_.static_files();
  if (files == nullptr || !files->serve(*this, worker_.scratch_head())) return false;
  end_exchange();
  return true;
}

// Moves undecoded input into the decoded body region. With discard, decoded
// bytes are dropped at once and the buffer is reset when fully consumed, so
// an unread body of any size needs no memory.
bool Connection::advance_body(bool discard) {
  if (ex_.body_done) return true;
  size_t avail = in_.size() - ex_.raw_rd;
  if (ex_.chunked_in) {
    auto r = ex_.decoder.decode(in_.data() + ex_.body_wr, in_.data() + ex_.raw_rd, avail);
    ex_.body_wr += r.produced;
    ex_.raw_rd += r.consumed;
    ex_.body_total += r.produced;
    if (r.status < 0) {
      ex_.body_error = true;
      return false;
    }
    uint64_t max_body = worker_.config().max_body_size;
    if (max_body > 0 && ex_.body_total > max_body) {
      ex_.body_error = true;
      ex_.body_status = 413;
      return false;
    }
    if (r.status == 1) ex_.body_done = true;
  } else {
    size_t n = static_cast<size_t>(std::min<uint64_t>(ex_.cl_remaining, avail));
    ex_.body_wr += n;
    ex_.raw_rd += n;
    ex_.cl_remaining -= n;
    if (ex_.cl_remaining == 0) ex_.body_done = true;
  }
  if (discard) {
    ex_.body_rd = ex_.body_wr;
    if (!ex_.body_done && ex_.raw_rd == in_.size()) {
      in_.clear();
      pos_ = ex_.body_rd = ex_.body_wr = ex_.raw_rd = 0;
    }
  }
  return true;
}

void Connection::dispatch() {
  state_ = State::kStreaming;  // "Responding" until the handler says otherwise.
  uint64_t start = worker_.before_app_call();
  std::unique_ptr<ResponseStream> stream = worker_.handler().handle(*this, worker_.scratch_head());
  worker_.after_app_call(start);
  if (closing_) return;
  if (state_ == State::kClosing || ex_.finished) {
    // The response is over (finished, or failed and aborted): a stream the
    // handler returned anyway is released now.
    stream.reset();
    end_exchange();
    return;
  }
  if (stream) {
    ex_.stream = std::move(stream);
    ensure_nodelay();
    state_since_ = progress_ = now_ms(worker_);
    return;  // process() pumps it.
  }
  // Neither finished nor streaming: a bug in the handler, not the client.
  log(LogLevel::kError, "handler returned without completing the response");
  send_error(500);
  end_exchange();
}

// ---------------------------------------------------------------- threaded mode

// The request goes to the pool as a copy: the head bytes (the thread parses
// them again, into views of its own) and the body read so far. The rest of
// the body is fed to the job as it arrives (feed_job_body()).
void Connection::dispatch_job() {
  state_ = State::kApp;
  state_since_ = progress_ = now_ms(worker_);
  std::string_view body = body_available();
  Job::Origin origin;
  origin.listener = listener_;
  origin.peer = peer_;
  origin.client = client();
  origin.forwarded_https = forwarded_https();
  job_ = std::make_shared<Job>(std::string_view(in_.data() + ex_.head_start, ex_.head_len), body, ex_.body_done,
                               origin, ex_.head_request, worker_.job_limits(), worker_.clock());
  body_consume(body.size());
  ex_.body_handed = ex_.body_done;
  job_->owner = this;
  worker_.threads()->submit(job_);
}

// Decodes what arrived of the body and hands the job as much as its window
// takes; what does not fit stays in in_, which then fills and stops the
// reads (back-pressure) until the thread has read on.
void Connection::feed_job_body() {
  if (!job_ || ex_.body_handed || ex_.body_error) return;
  if (!advance_body(false)) {
    job_->fail_body();
    return;
  }
  std::string_view avail = body_available();
  size_t n = std::min(job_->body_room(), avail.size());
  if (n > 0) {
    job_->feed_body(avail.data(), n);
    body_consume(n);
    progress_ = now_ms(worker_);
  }
  if (ex_.body_done && ex_.body_rd == ex_.body_wr) {
    job_->end_body();
    ex_.body_handed = true;
  } else if (peer_eof_ && !ex_.body_done && ex_.raw_rd == in_.size()) {
    ex_.body_error = true;  // The body can never complete (RFC 9112 8).
    job_->fail_body();
  }
  // The head and the bytes handed over are not needed again.
  if (ex_.body_rd > 0 && in_.room() < kReadChunk) {
    size_t shift = ex_.body_rd;
    in_.consume_front(shift);
    ex_.body_rd = 0;
    ex_.body_wr -= shift;
    ex_.raw_rd -= shift;
    ex_.head_start = pos_ = 0;
  }
  if (n > 0) stop_budget_wait();
}

void Connection::apply(const Job::Op& op, const std::string& data) {
  const char* text = data.data() + op.off;
  switch (op.kind) {
    case Job::Op::kStart: start_response({text, op.len}, op.code, op.app_server, op.app_date); break;
    case Job::Op::kHeader: add_header({text, op.len}, {text + op.len, op.len2}); break;
    case Job::Op::kHeaderBlock: add_header_block({text, op.len}, op.n); break;
    case Job::Op::kEnd: end_headers(op.n); break;
    case Job::Op::kCopy: write_body(text, op.len); break;
    case Job::Op::kRef: write_body_ref(op.ptr, op.len, op.release); break;
    case Job::Op::kFile: write_body_file(op.fd, op.n, static_cast<int64_t>(op.len), op.release); break;
    case Job::Op::kFinish: finish_response(); break;
    case Job::Op::kAbort: abort_response(); break;
    case Job::Op::kError: send_error(op.code); break;
    case Job::Op::kFail:
      log(LogLevel::kDebug, "client too slow to read the response; closing");
      fail();
      break;
    case Job::Op::kBodyFailed:
      ex_.body_error = true;
      ex_.body_status = op.code;
      break;
  }
}

void Connection::on_job() {
  if (!job_ || closing_) return;
  std::shared_ptr<Job> job = job_;  // apply() may close us, which drops job_.
  std::vector<Job::Op>& ops = worker_.job_ops();
  bool done = job->take(ops, worker_.job_data());
  size_t applied = 0;
  for (; applied < ops.size() && !closing_; ++applied) {
    apply(ops[applied], worker_.job_data());
    ops[applied].release = Releaser{};  // The output queue owns it now.
  }
  Job::release_ops(ops);  // What a close left unapplied.
  if (closing_) return;
  feed_job_body();  // The thread may have read on: room in its window.
  if (!done) {
    if (flush()) update_poll();
    return;
  }
  job->owner = nullptr;
  job_.reset();
  if (state_ == State::kApp && !ex_.finished) {
    log(LogLevel::kError, "handler returned without completing the response");
    send_error(500);
  }
  end_exchange();
  process();  // The next pipelined request, the write, the poll.
}

void Connection::on_slot() {
  slot_wait_ = false;
  if (closing_) return;
  if (stop_after_) {
    close();  // Shutting down: a request that never started is not started now.
    return;
  }
  process();
}

void Connection::drop_job() {
  if (!job_) return;
  job_->cancel();
  job_.reset();
}

// The app call outlived --request-timeout: the client gets 504 now (or a cut
// response when its head already left), the connection closes after it, and
// the thread's result is dropped when it comes (issue 10).
void Connection::on_request_timeout() {
  std::string where = worker_.handler().describe_job(*job_);
  std::string_view line = job_->request_line();
  char head[512];
  int n = snprintf(head, sizeof head, "request timed out after %.3f s (--request-timeout): %.*s",
                   static_cast<double>(worker_.config().request_ms) / 1000.0,
                   static_cast<int>(std::min<size_t>(line.size(), 400)), line.data());
  std::string text(head, static_cast<size_t>(std::max(n, 0)));
  if (!where.empty()) {
    text.append("\nThe app's thread was at (most recent call last):\n");
    text.append(where);
  }
  log_text(LogLevel::kError, text);
  drop_job();
  if (!ex_.head_started)
    respond_error(504);
  else
    abort_response();
  ex_.keep_alive = false;
  flush();
}

void Connection::end_exchange() {
  log_end();
  ex_.stream.reset();
  worker_.request_done();
  if (state_ == State::kClosing || closing_) return;
  bool drained_eof = peer_eof_ && ex_.body_done && ex_.raw_rd == in_.size();
  // A response that left before a graceful stop began promised keep-alive:
  // the connection stays, and the client's next request is answered with
  // "Connection: close" instead of being reset (issue 8).
  if (!ex_.keep_alive || ex_.body_error || drained_eof) {
    // A client that said "Connection: close" sends nothing after this
    // request (RFC 9112 9.6): once it is consumed, only input already here
    // makes the close linger (flush()). Any other close lingers, since more
    // may be in flight (an HTTP/1.0 client that pipelines, a server-side
    // close), and a close over unread input would reset the answer.
    if (ex_.client_close && ex_.body_done && !ex_.body_error) pos_ = ex_.raw_rd;
    state_ = State::kClosing;
    return;
  }
  if (!ex_.body_done) {
    if (ex_.expect_continue && !ex_.continue_sent) {
      // The client may still be waiting for 100 before sending the body
      // (RFC 9110 10.1.1): we cannot tell, so the connection ends here.
      state_ = State::kClosing;
      return;
    }
    state_ = State::kDiscard;
    ex_.body_rd = ex_.body_wr;
    state_since_ = progress_ = now_ms(worker_);
    return;
  }
  pos_ = ex_.raw_rd;
  state_ = State::kIdle;
  state_since_ = now_ms(worker_);
  ensure_nodelay();
}

void Connection::respond_error(int status) {
  if (ex_.head_started) {
    abort_response();
    return;
  }
  ex_.keep_alive = false;
  ex_.head_request = false;
  if (status == 400 || status == 408 || status == 413 || status == 414 || status == 431 || status == 501) {
    worker_.note_refused(client(), status);
    if (Metrics::Slot* m = worker_.metrics()) m->refused_request(status);
  }
  auto reason = reason_phrase(status);
  char body[96];
  int blen = snprintf(body, sizeof body, "%d %.*s\n", status, static_cast<int>(reason.size()), reason.data());
  char head[256];
  int hlen =
      snprintf(head, sizeof head, "HTTP/1.1 %d %.*s\r\n", status, static_cast<int>(reason.size()), reason.data());
  queue_copy(head, static_cast<size_t>(hlen));
  auto common = worker_.common_headers();
  queue_copy(common.data(), common.size());
  hlen = snprintf(head, sizeof head,
                  "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", blen);
  queue_copy(head, static_cast<size_t>(hlen));
  queue_copy(body, static_cast<size_t>(blen));
  ex_.head_started = true;
  ex_.status = status;
  ex_.body_sent = blen;
  state_ = State::kClosing;
  state_since_ = now_ms(worker_);
  log_end();
}

// ---------------------------------------------------------------- body for the app

std::string_view Connection::body_available() const {
  return {in_.data() + ex_.body_rd, ex_.body_wr - ex_.body_rd};
}

void Connection::body_consume(size_t n) {
  ex_.body_rd += std::min(n, ex_.body_wr - ex_.body_rd);
}

uint64_t Connection::body_read_deadline() const {
  return now_ms(worker_) + worker_.config().body_ms;
}

bool Connection::push() {
  // Another small write follows (the next block, the last chunk): without
  // this, Nagle would hold it until the client acknowledges the first.
  ensure_nodelay();
  return flush();
}

int Connection::body_fill_blocking(uint64_t deadline_ms) {
  if (ex_.body_done) return 0;
  if (ex_.body_error || dead_) return -1;
  // What is queued (earlier pipelined answers, the interim 100 the client
  // may be waiting for) leaves before we wait for the client.
  if (!out_.empty() && !flush_blocking()) return -1;
  // Reclaim the head and consumed body bytes (environ was built, nothing
  // needs them) so a long body streams through a bounded buffer.
  if (ex_.body_rd > 0 && in_.room() < kReadChunk) {
    size_t shift = ex_.body_rd;
    in_.consume_front(shift);
    ex_.body_rd = 0;
    ex_.body_wr -= shift;
    ex_.raw_rd -= shift;
    ex_.head_start = pos_ = 0;
  }
  size_t before = ex_.body_wr;
  while (ex_.body_wr == before && !ex_.body_done) {
    uint64_t now = now_ms(worker_);
    uint64_t timeout = deadline_ms > now ? deadline_ms - now : 0;
    int n = recv_into_input();
    if (n == -ENOBUFS) {
      stop_budget_wait();
      // Only a reader that never consumes can fill the buffer; waiting for the
      // socket would spin, so this is an error rather than a stall.
      ex_.body_error = true;
      return -1;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      struct pollfd p = {fd_, POLLIN, 0};
      int pr = timeout == 0 ? 0 : ::poll(&p, 1, static_cast<int>(std::min<uint64_t>(timeout, INT32_MAX)));
      if (pr == 0) {
        ex_.body_error = true;
        ex_.body_status = 408;
        log(LogLevel::kDebug, "request body timed out");
        return -1;
      }
      continue;
    }
    if (n <= 0) {
      ex_.body_error = true;
      dead_ = n < 0;
      peer_eof_ = true;
      return -1;
    }
    if (!advance_body(false)) return -1;
  }
  progress_ = now_ms(worker_);
  return ex_.body_wr > before ? 1 : 0;
}

// ---------------------------------------------------------------- response

void Connection::start_response(std::string_view status, int code, bool app_server, bool app_date) {
  ex_.head_started = true;
  ex_.status = code;
  ex_.no_body = status_has_no_body(code);
  // A 2xx to CONNECT has no framing headers (RFC 9110 9.3.6): a WSGI server
  // provides no tunnel, so what the app sends goes out close-delimited and
  // the connection ends (the parser never keeps a CONNECT connection alive).
  ex_.tunnel = ex_.connect && code >= 200 && code < 300;
  auto common = worker_.common_headers();
  char line[256];
  if (!app_server && !app_date && status.size() + common.size() + 11 <= sizeof line) {
    // The usual case in one copy: "HTTP/1.1 <status>\r\n" and Server, Date.
    memcpy(line, "HTTP/1.1 ", 9);
    memcpy(line + 9, status.data(), status.size());
    memcpy(line + 9 + status.size(), "\r\n", 2);
    memcpy(line + 11 + status.size(), common.data(), common.size());
    queue_copy(line, status.size() + common.size() + 11);
    return;
  }
  queue_copy("HTTP/1.1 ", 9);
  queue_copy(status.data(), status.size());
  queue_copy("\r\n", 2);
  if (!app_server && !app_date) {
    queue_copy(common.data(), common.size());
    return;
  }
  // Split the prebuilt "Server: ...\r\nDate: ...\r\n" and keep what the app did not set.
  size_t date_at = common.find("Date: ");
  if (!app_server) queue_copy(common.data(), date_at);
  if (!app_date) queue_copy(common.data() + date_at, common.size() - date_at);
}

void Connection::add_header(std::string_view name, std::string_view value) {
  if (logging_ && worker_.access_log()->format().uses_response_headers()) {
    log_response_head_.append(name).append(": ").append(value).append("\r\n");
  }
  if (name.size() == 14 && iequals(name, "content-length")) {
    if (ex_.tunnel) return;  // RFC 9110 9.3.6
    int64_t v = 0;
    bool ok = !value.empty() && value.size() <= 18;
    for (char ch : value) {
      if (ch < '0' || ch > '9') {
        ok = false;
        break;
      }
      v = v * 10 + (ch - '0');
    }
    if (!ok) return;  // The caller validates; a malformed one is dropped.
    ex_.declared_length = v;
  }
  queue_copy(name.data(), name.size());
  queue_copy(": ", 2);
  queue_copy(value.data(), value.size());
  queue_copy("\r\n", 2);
}

void Connection::add_header_block(std::string_view lines, int64_t content_length) {
  if (logging_ && worker_.access_log()->format().uses_response_headers()) log_response_head_.append(lines);
  if (content_length < 0) {
    queue_copy(lines.data(), lines.size());
    return;
  }
  if (!ex_.tunnel) {
    ex_.declared_length = content_length;
    queue_copy(lines.data(), lines.size());
    return;
  }
  // A 2xx to CONNECT has no Content-Length (RFC 9110 9.3.6): every line but that one.
  for (size_t at = 0; at < lines.size();) {
    size_t eol = lines.find("\r\n", at);
    size_t end = eol == std::string_view::npos ? lines.size() : eol + 2;
    std::string_view line = lines.substr(at, end - at);
    if (!(line.size() >= 15 && iequals(line.substr(0, 15), "content-length:"))) queue_copy(line.data(), line.size());
    at = end;
  }
}

void Connection::end_headers(int64_t known_length) {
  char line[64];
  if (ex_.tunnel) ex_.keep_alive = false;
  if (ex_.status >= 200 && ex_.status != 204 && ex_.status != 304 && !ex_.tunnel && ex_.declared_length < 0) {
    if (known_length >= 0) {
      memcpy(line, "Content-Length: ", 16);
      size_t n = 16 + format_decimal(static_cast<uint64_t>(known_length), line + 16);
      line[n++] = '\r';
      line[n++] = '\n';
      queue_copy(line, n);
      ex_.declared_length = known_length;
    } else if (ex_.version_minor >= 1) {
      queue_copy("Transfer-Encoding: chunked\r\n", 28);
      ex_.chunked_out = !ex_.no_body;
    } else if (!ex_.no_body) {
      ex_.keep_alive = false;  // Close-delimited (RFC 9112 6.3 point 8); a HEAD answer has no body to delimit.
    }
  }
  if (stop_after_ || worker_.stop_requested()) ex_.keep_alive = false;
  // Answered before asking for the body: the client may or may not send it
  // now (RFC 9110 10.1.1), so this connection cannot carry another request.
  if (ex_.expect_continue && !ex_.continue_sent && !ex_.body_done) ex_.keep_alive = false;
  if (!ex_.keep_alive) {
    queue_copy("Connection: close\r\n\r\n", 21);
  } else if (ex_.version_minor == 0) {
    queue_copy("Connection: keep-alive\r\n\r\n", 26);
  } else {
    queue_copy("\r\n", 2);
  }
}

void Connection::queue_body(const char* data, size_t len, const Releaser* ref, int file_fd, int64_t file_off) {
  if (ex_.no_body || len == 0 || closing_) {
    if (ref) (*ref)();
    return;
  }
  if (ex_.declared_length >= 0) {
    int64_t left = ex_.declared_length - ex_.body_sent;
    if (static_cast<int64_t>(len) > left) {
      // More than the declared Content-Length: the excess would be read as
      // the next response. Send what was declared and close.
      log(LogLevel::kWarning, "response body longer than its Content-Length; truncated");
      len = static_cast<size_t>(std::max<int64_t>(left, 0));
      ex_.keep_alive = false;
      ex_.overrun = true;
      if (len == 0) {
        if (ref) (*ref)();
        return;
      }
    }
  }
  ex_.body_sent += static_cast<int64_t>(len);
  char hex[24];
  if (ex_.chunked_out) {
    size_t n = format_hex(len, hex);
    hex[n++] = '\r';
    hex[n++] = '\n';
    queue_copy(hex, n);
  }
  if (file_fd >= 0) {
    out_.append_file(file_fd, static_cast<uint64_t>(file_off), len, ref ? *ref : Releaser{});
  } else if (ref) {
    out_.append_ref(data, len, *ref);
  } else {
    queue_copy(data, len);
  }
  if (ex_.chunked_out) queue_copy("\r\n", 2);
}

void Connection::write_body(const char* data, size_t len) {
  queue_body(data, len, nullptr, -1, 0);
}

void Connection::write_body_ref(const char* data, size_t len, Releaser release) {
  queue_body(data, len, &release, -1, 0);
}

void Connection::write_body_file(int file_fd, int64_t offset, int64_t len, Releaser release) {
  queue_body(nullptr, static_cast<size_t>(len), &release, file_fd, offset);
}

void Connection::finish_response() {
  if (ex_.chunked_out) queue_copy("0\r\n\r\n", 5);
  if (!ex_.no_body && ex_.declared_length >= 0 && ex_.body_sent < ex_.declared_length) {
    // Shorter than declared: the client would wait for the rest forever.
    log(LogLevel::kWarning, "response body shorter than its Content-Length; closing");
    ex_.keep_alive = false;
  }
  ex_.finished = true;
}

void Connection::abort_response() {
  ex_.keep_alive = false;
  state_ = State::kClosing;
  state_since_ = now_ms(worker_);
}

void Connection::send_error(int status) {
  if (ex_.head_started) {
    abort_response();
    return;
  }
  if (ex_.body_error) {
    respond_error(ex_.body_status);  // The body cannot be skipped: the connection ends.
    return;
  }
  // The request itself was fine (the app failed): answer and keep the connection.
  auto reason = reason_phrase(status);
  char text[96];
  int n = snprintf(text, sizeof text, "%d %.*s", status, static_cast<int>(reason.size()), reason.data());
  start_response(std::string_view(text, static_cast<size_t>(n)), status);
  add_header("Content-Type", "text/plain; charset=utf-8");
  end_headers(n + 1);
  text[n] = '\n';
  write_body(text, static_cast<size_t>(n) + 1);
  finish_response();
}

// ---------------------------------------------------------------- output

bool Connection::flush() {
  if (dead_) return false;
  if (!out_.empty()) {
    size_t written = 0;
    OutputQueue::Result r = out_.write_to(fd_, &written);
    if (Metrics::Slot* m = worker_.metrics(); m != nullptr && written > 0) m->add(m->bytes_sent, written);
    // Progress is a write that moved bytes, or the first that found the socket full.
    if (written > 0 || (r == OutputQueue::Result::kAgain && !want_write_)) progress_ = now_ms(worker_);
    switch (r) {
      case OutputQueue::Result::kDone: break;
      case OutputQueue::Result::kAgain:
        want_write_ = true;
        update_poll();
        if (job_) job_->set_output_queued(out_.size());
        return true;
      case OutputQueue::Result::kFileShort:
        // The file is shorter than promised: the response cannot complete.
        log(LogLevel::kError, "file ended before its announced length");
        fail();
        return false;
      case OutputQueue::Result::kError: fail(); return false;
    }
    // The keep-alive wait starts once the last response has left, not when
    // it was queued (issue 13 item 8).
    if (state_ == State::kIdle) state_since_ = progress_;
  }
  if (job_) job_->set_output_queued(out_.size());  // A producer waiting for room may go on.
  // Everything is out.
  want_write_ = false;
  if (state_ == State::kClosing && !in_process_) {
    if (ex_.body_error || pos_ < in_.size() || !ex_.body_done) {
      // Unread input may still be in flight: closing now could turn our
      // answer into a reset. Shut our side and drain for a moment.
      ::shutdown(fd_, SHUT_WR);
      state_ = State::kLinger;
      state_since_ = now_ms(worker_);
      in_.clear();
      pos_ = 0;
      update_poll();
    } else {
      close();
      return false;
    }
  }
  return true;
}

// The loop thread waits here for one client, so the wait is bounded in
// total (send_timeout for the whole call), not per byte of progress: a
// client that reads a byte a second cannot hold the worker for longer.
bool Connection::flush_blocking() {
  ensure_nodelay();
  uint64_t deadline = now_ms(worker_) + worker_.config().send_ms;
  while (!dead_ && !out_.empty()) {
    if (!flush()) return false;
    if (out_.empty()) break;
    uint64_t now = now_ms(worker_);
    int wait = now >= deadline ? 0 : static_cast<int>(std::min<uint64_t>(deadline - now, INT32_MAX));
    struct pollfd p = {fd_, POLLOUT, 0};
    if (wait == 0 || ::poll(&p, 1, wait) == 0) {
      log(LogLevel::kDebug, "client too slow to read the response; closing");
      fail();
      return false;
    }
  }
  return !dead_;
}

void Connection::compact_input() {
  if (state_ != State::kIdle && state_ != State::kHead) return;
  if (pos_ == in_.size()) {
    in_.clear();
    pos_ = 0;
    if (out_.empty()) {
      release_input();
      out_.release_memory();
    }
  } else if (pos_ > 0) {
    in_.consume_front(pos_);
    pos_ = 0;
  }
}

void Connection::update_poll() {
  if (closing_) return;
  int events = 0;
  if (!peer_eof_ && !input_full() && !budget_wait_ && !slot_wait_ && state_ != State::kClosing) events |= UV_READABLE;
  if (state_ == State::kLinger) events = UV_READABLE;
  if (want_write_ || pump_pending_) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0)
    uv_poll_stop(&poll_);
  else
    uv_poll_start(&poll_, events, on_poll);
}

// ---------------------------------------------------------------- lifecycle

void Connection::on_tick(uint64_t now, const Timeouts& timeouts) {
  if (closing_) return;
  DeadlineView v;
  v.phase = slot_wait_ ? State::kApp : state_;  // Waiting for a thread is the worker's doing.
  if (job_ && job_->started()) {
    v.app_started = true;
    v.app_started_ms = job_->started_ms();
  }
  v.since_ms = state_since_;
  v.progress_ms = progress_;
  v.output_queued = !out_.empty();
  v.write_blocked = want_write_;
  v.input_pending = pos_ < in_.size() && state_ == State::kIdle;
  switch (expired(v, timeouts, now)) {
    case Expiry::kNone: break;
    case Expiry::kIdle: on_idle_expired(); break;
    case Expiry::kHead:
      fresh_exchange();
      respond_error(408);
      flush();
      break;
    case Expiry::kBody:
      respond_error(408);
      flush();
      break;
    case Expiry::kSend:
      log(LogLevel::kDebug, "client stopped reading; closing");
      fail();
      break;
    case Expiry::kDiscard:
    case Expiry::kLinger: close(); break;
    case Expiry::kRequest: on_request_timeout(); break;
  }
}

// The keep-alive wait is over, but a request may have arrived that the loop
// has not read yet (the sweep can run before the poll that reports it):
// such a connection is not idle and is read now instead of reset (issue 13
// item 1). A client's EOF is not a request: that connection closes.
void Connection::on_idle_expired() {
  int pending = 0;
  if (!peer_eof_ && ioctl(fd_, FIONREAD, &pending) == 0 && pending > 0) {
    state_since_ = now_ms(worker_);
    on_readable();
    return;
  }
  // Likewise, a response the kernel has not finished sending is still being
  // read: its client is not idle yet (issue 13 item 8).
  int unsent = 0;
  if (!peer_eof_ && ioctl(fd_, SIOCOUTQ, &unsent) == 0 && unsent > 0) {
    state_since_ = now_ms(worker_);
    return;
  }
  close();
}

void Connection::shutdown_gracefully() {
  stop_after_ = true;
  // An idle connection closes now only if its client has been quiet for a
  // while and sent nothing (on_idle_expired reads a request that is
  // waiting); otherwise the stopping worker's sweep closes it later.
  if (idle() && now_ms(worker_) - state_since_ >= WorkerConfig::kRetireIdleMs) on_idle_expired();
}

void Connection::fail() {
  dead_ = true;
  close();
}

void Connection::close() {
  if (closing_) return;
  log_end();  // A request cut short (the client left, a deadline) is logged too.
  closing_ = true;
  dead_ = true;
  if (held_) {
    held_ = resume_held_ = false;
    worker_.forget_held(this);
  }
  // The thread serving our request finds its job cancelled; its result is
  // dropped (the job, shared, lives until the thread is done with it).
  drop_job();
  if (slot_wait_) {
    slot_wait_ = false;
    worker_.remove_slot_waiter(this);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), on_closed);
}

void Connection::on_closed(uv_handle_t* handle) {
  auto* c = static_cast<Connection*>(handle->data);
  ::close(c->fd_);
  c->worker_.remove(c->self_);  // Destroys c.
}

}  // namespace fulmen
