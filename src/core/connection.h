// One client connection: reads and parses requests, hands each to the Handler,
// frames and writes the responses, enforces deadlines.
//
// Reading never waits for writing: the socket stays readable while responses
// are queued. A write is tried as soon as a batch of requests has been
// answered (so the responses of one pipelined batch leave in one writev); the
// writable watcher is armed only after a partial write.
//
// With --threads N > 1 (issue 10) a request is not served in place: the
// connection copies it into a Job for the worker's ThreadPool and applies
// the response the job records (on_job()). One request per connection is on
// a thread at a time, so pipelined requests stay in order; while it is
// there the connection keeps reading (the rest of the body is fed to the
// job), enforcing deadlines and writing. A connection that closes cancels
// its job, and the job (shared) outlives it.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/deadline.h"
#include "core/exchange.h"
#include "core/handler.h"
#include "core/job.h"
#include "core/output_queue.h"
#include "core/parser.h"

namespace fulmen {

class AccessLog;
class Worker;

class Connection final : public Exchange {
 public:
  Connection(Worker& worker, int fd, size_t listener, const sockaddr_storage& peer);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts watching the socket. Called once, right after construction.
  void start(std::list<Connection>::iterator self);

  int fd() const { return fd_; }
  size_t listener() const override { return listener_; }
  const sockaddr_storage& peer() const override { return peer_; }
  // The client the request is from: the peer, unless a trusted proxy said
  // otherwise (a PROXY header for the whole connection, X-Forwarded-For or
  // Forwarded for this request). A port of 0 means the proxy gave none.
  const sockaddr_storage& client() const override { return fwd_client_set_ ? fwd_client_ : client_; }
  // A trusted proxy said this request reached it over https.
  bool forwarded_https() const override { return fwd_https_; }

  // ---- Request body, for wsgi.input. Offsets are internal; callers see views.

  // Decoded body bytes received and not yet consumed. Valid until the next
  // body call.
  std::string_view body_available() const override;
  void body_consume(size_t n) override;
  bool body_complete() const override { return ex_.body_done; }
  // The body could not be read: malformed chunk, timeout or disconnect.
  bool body_failed() const override { return ex_.body_error; }

  // Blocks (poll + recv) until more body bytes are decoded, at most until
  // deadline_ms (a MonotonicClock time; see body_read_deadline()). Returns 1
  // when bytes were added, 0 at the end of the body, -1 on timeout,
  // disconnect, a malformed chunk or a body over max_body_size (the
  // connection then closes after the response, whose status send_error()
  // picks: 400, 408 or 413). Sends the interim "100 Continue" first when the
  // client asked and it has not been sent yet.
  int body_fill_blocking(uint64_t deadline_ms) override;
  // The deadline of one blocking body read that starts now: body_timeout
  // from now in total, however the bytes trickle in (issue 13 item 3).
  uint64_t body_read_deadline() const override;

  // ---- Response.

  // Starts the head: `status` is the status text as given by the app
  // ("200 OK"), `code` its numeric value. Must be followed by add_header()
  // calls and end_headers().
  // app_server / app_date: the app sent its own Server / Date header, so
  // ours is left out.
  void start_response(std::string_view status, int code, bool app_server = false, bool app_date = false) override;
  // Adds one header; the caller has validated name and value. Content-Length
  // given here is remembered and enforced.
  void add_header(std::string_view name, std::string_view value) override;
  // The app's whole validated header block in one copy (wsgi::App::send_head).
  void add_header_block(std::string_view lines, int64_t content_length) override;
  // Adds header lines the core formatted itself ("Name: value\r\n" each,
  // never Content-Length): the static file server's cached heads.
  void add_header_lines(std::string_view lines) {
    if (logging_) log_response_head_.append(lines);
    queue_copy(lines.data(), lines.size());
  }
  // Ends the head. known_length >= 0 when the whole body length is known and
  // no Content-Length header was given (one is then added).
  void end_headers(int64_t known_length) override;

  void write_body(const char* data, size_t len) override;  // Copies.
  // Queues data without copying; `release` is called once when it is sent or dropped.
  void write_body_ref(const char* data, size_t len, Releaser release) override;
  // Queues len bytes of file_fd from offset, sent with sendfile(2).
  void write_body_file(int file_fd, int64_t offset, int64_t len, Releaser release) override;
  // Ends the body (last-chunk when chunked). The exchange is over.
  void finish_response() override;
  // The response cannot be completed: close once queued output is sent.
  void abort_response() override;
  // A complete canned error response when the head has not left yet,
  // otherwise abort_response().
  void send_error(int status) override;

  bool head_started() const override { return ex_.head_started; }
  // Whether a response with this status carries no body for this request:
  // HEAD, 1xx, 204, 304 (RFC 9110 9.3.2, 15.3.5, 15.4.5). The handler may ask
  // before start_response(), to finish at once (issue 13 item 4).
  bool status_has_no_body(int code) const override {
    return ex_.head_request || code < 200 || code == 204 || code == 304;
  }
  // True after start_response() when the response has no body.
  bool response_has_no_body() const override { return ex_.no_body; }
  // Writes what is queued now, without waiting (PEP 3333: a streamed block
  // is not delayed). Returns false when the client is gone.
  bool push() override;
  // Instead of push() for a stream's block: true when the block may leave
  // at the end of the loop turn with the other connections' output (the
  // worker's SendBatch); the stream then yields, and is pumped again right
  // after the write. False: push() it now.
  bool hold_block() override;
  bool may_end_before_write() const override;
  bool body_overrun() const override { return ex_.overrun; }
  // True when enough output is queued that a stream should yield.
  bool output_congested() const override { return out_.size() > kHighWater; }
  // Writes all queued output, blocking up to send_timeout in total. For WSGI write().
  // Returns false when the client is gone or too slow.
  bool flush_blocking() override;
  bool client_gone() const override { return dead_; }

  // ---- For the worker.
  // The deadline sweep: acts on whatever expired at now_ms.
  void on_tick(uint64_t now_ms, const Timeouts& timeouts);
  void shutdown_gracefully();  // Closes now if idle, else after the current response.
  void close();                // Closes now.
  bool idle() const { return state_ == State::kIdle && pos_ == in_.size() && out_.empty(); }
  // The worker's input budget has room again: try reading (see recv_into_input).
  void on_budget();
  bool waiting_for_budget() const { return budget_wait_; }
  // Threaded mode: the job has news (ops recorded, body wanted, or done).
  void on_job();
  // Threaded mode: the pool has a slot again for the request that waits.
  void on_slot();
  // The loop turn that held this connection's output is over (the worker's
  // SendBatch): writes it, as process() would have. Returns true when a
  // stream yielded for the write (hold_block()) and, with resume, is to be
  // pumped now by resume_stream(); otherwise it is pumped on the next turn.
  bool write_held(bool resume);
  void resume_stream();

  static constexpr size_t kHighWater = 256 * 1024;

 private:
  using State = Phase;

  // State of the request/response in progress. Reset per request.
  struct ExchangeState {
    int version_minor = 1;
    bool head_request = false;
    bool connect = false;  // A CONNECT request.
    bool tunnel = false;   // A 2xx answer to CONNECT: no framing headers, close-delimited (RFC 9110 9.3.6).
    bool keep_alive = true;
    bool client_close = false;  // The client said "Connection: close".
    bool expect_continue = false;
    bool continue_sent = false;
    bool reparse = false;  // The head must be parsed again before dispatch.
    // Request body. Offsets into in_: decoded bytes are [body_rd, body_wr);
    // undecoded input starts at raw_rd (>= body_wr).
    bool chunked_in = false;
    bool body_done = true;
    bool body_error = false;
    bool body_handed = false;  // Threaded mode: the whole body went to the job.
    int body_status = 400;     // The answer when the body fails: 400, 408 or 413.
    uint64_t cl_remaining = 0;
    uint64_t body_total = 0;  // Decoded body bytes so far, against max_body_size.
    ChunkedDecoder decoder;
    size_t head_start = 0, head_len = 0;
    size_t body_rd = 0, body_wr = 0, raw_rd = 0;
    // Response.
    bool head_started = false;
    bool finished = false;
    bool no_body = false;  // HEAD, 1xx, 204, 304
    bool chunked_out = false;
    int status = 0;
    int64_t declared_length = -1;  // Content-Length from the app
    int64_t body_sent = 0;
    bool overrun = false;  // Body offered past declared_length (dropped).
    std::unique_ptr<ResponseStream> stream;
  };

  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_closed(uv_handle_t* handle);

  void on_readable();
  void on_writable();
  void process();
  void begin_batch(bool& batch);
  void fresh_exchange();
  bool begin_exchange(int head_len);
  bool serve_static();
  bool read_proxy_header();
  bool apply_forwarded();
  void log_begin(AccessLog& log);
  void log_end();
  void dispatch();
  void dispatch_job();
  void feed_job_body();
  void apply(const Job::Op& op, const std::string& data);
  void drop_job();
  void on_request_timeout();
  void end_exchange();
  bool advance_body(bool discard);
  void respond_error(int status);
  void queue_copy(const char* data, size_t len) { out_.append_copy(data, len); }
  void queue_body(const char* data, size_t len, const Releaser* ref, int file_fd, int64_t file_off);
  bool flush();  // Returns false when the connection died.
  void compact_input();
  void release_input();
  void update_poll();
  void on_idle_expired();
  void stop_budget_wait();  // No longer a budget waiter (the worker's count follows).
  void fail();              // Hard error on the socket: close without further I/O.
  int recv_into_input();
  void ensure_nodelay();
  size_t input_cap() const;
  bool input_full() const;

  Worker& worker_;
  int fd_;
  size_t listener_;
  sockaddr_storage peer_;
  sockaddr_storage client_;      // peer_, or the source a PROXY header gave
  sockaddr_storage fwd_client_;  // for this request, when fwd_client_set_
  bool fwd_client_set_ = false;
  bool fwd_https_ = false;
  bool proxy_pending_ = false;      // A PROXY header must come first (trusted source).
  bool proxy_refuse_ = false;       // A PROXY header here would be from a source not allowed.
  bool forwarded_trusted_ = false;  // The peer may send X-Forwarded-* / Forwarded.
  // The request of the exchange in progress, as the access log needs it
  // after the parser's scratch head is reused: a copy of the head's bytes
  // and views into the copy (the buffers keep their capacity across requests).
  bool logging_ = false;
  bool counted_ = false;  // The exchange is in the metrics' in-flight count.
  size_t metrics_method_ = 0;
  uint64_t log_start_us_ = 0;
  std::string log_head_;
  std::vector<Header> log_headers_;
  std::string_view log_method_, log_target_, log_path_, log_query_;
  int log_version_minor_ = 1;
  std::string log_response_head_;  // header lines, when the format shows {name}o
  uv_poll_t poll_;
  std::list<Connection>::iterator self_;
  int poll_events_ = 0;
  State state_ = State::kIdle;
  bool want_write_ = false;  // A write returned EAGAIN.
  bool peer_eof_ = false;
  bool dead_ = false;
  bool closing_ = false;     // close() called.
  bool stop_after_ = false;  // Graceful shutdown: close after this response.
  bool in_process_ = false;
  bool nodelay_ = false;
  bool budget_wait_ = false;   // Reading waits for the worker's input budget.
  bool pump_pending_ = false;  // The stream yielded its turn: pump again when writable.
  bool slot_wait_ = false;     // A request waits for the thread pool (max_pending reached).
  bool held_ = false;          // Output waits for the end of the loop turn (write_held()).
  bool resume_held_ = false;   // The stream yielded for that write (hold_block()).

  Buffer in_;
  size_t pos_ = 0;  // Start of the next unparsed request in in_.
  ExchangeState ex_;
  std::shared_ptr<Job> job_;  // The request on a pool thread, if any.

  size_t budget_held_ = 0;  // Bytes of in_ beyond a pool block, taken from the worker's budget.
  OutputQueue out_;

  uint64_t state_since_ = 0;  // When the current state began (ms).
  uint64_t progress_ = 0;     // Last read (body) or write progress (ms).
};

}  // namespace fulmen
