// One request served on a pool thread (--threads N > 1, issue 10).
//
// The loop thread copies what the thread needs out of the connection (the
// request head bytes, the body buffered so far) into a Job and submits it to
// the ThreadPool. The thread serves the request through the Job's Exchange
// interface: every response call is recorded as an Op, in order; the loop
// takes the ops (take()) and applies them to the real Connection, so bytes
// leave from the loop thread only. The rest of a large body is fed the other
// way (feed_body()), through a bounded window.
//
// Ownership and threads: a Job is shared (std::shared_ptr) by its Connection,
// the pool's queues and the thread serving it, so a connection that closes
// while its request is on a thread frees nothing under that thread: it
// cancels the job (cancel()), and from then on whatever the thread records is
// released at once. Shared state is guarded by the job's mutex; the thread's
// own view of the body (body_available()) is touched only by that thread.
// Releasers of recorded ops are called exactly once: after the loop applied
// them (by the output queue), when the job is cancelled, or when it is
// destroyed, on whichever thread that happens.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/exchange.h"
#include "core/monotonic_clock.h"
#include "core/parser.h"

namespace fulmen {

class Connection;
struct PoolState;

struct JobLimits {
  ParserLimits limits;
  uint64_t body_ms = 30000;        // One wsgi.input read waits this long in total.
  uint64_t send_ms = 30000;        // A producer waits this long for the client to read.
  size_t body_window = 1 << 20;    // Body bytes fed ahead of the thread's reads.
  size_t high_water = 256 * 1024;  // Queued output past which a producer waits.
};

class Job final : public Exchange, public std::enable_shared_from_this<Job> {
 public:
  // A recorded response call. Text (status, header fields, copied body
  // bytes) lives in the data string handed out with the ops.
  struct Op {
    enum Kind : uint8_t {
      kStart,        // start_response(data[off, off+len), code, app_server, app_date)
      kHeader,       // add_header(data[off, off+len), data[off+len, off+len+len2))
      kHeaderBlock,  // add_header_block(data[off, off+len), n)
      kEnd,          // end_headers(n)
      kCopy,         // write_body(data[off, off+len))
      kRef,          // write_body_ref(ptr, len, release)
      kFile,         // write_body_file(fd, n, len, release)
      kFinish,       // finish_response()
      kAbort,        // abort_response()
      kError,        // send_error(code)
      kFail,         // The client was too slow (send timeout): close at once.
      kBodyFailed,   // A body read failed with status `code` (408): the connection ends after the answer.
    } kind;
    int code = 0;
    bool app_server = false;
    bool app_date = false;
    size_t off = 0;
    size_t len = 0;
    size_t len2 = 0;
    int64_t n = 0;
    const char* ptr = nullptr;
    int fd = -1;
    Releaser release;
  };

  // Where the request came from, as the connection knows it when it hands
  // the request over.
  struct Origin {
    size_t listener = 0;
    sockaddr_storage peer{};
    sockaddr_storage client{};  // The peer, or what a trusted proxy said (issue 9).
    bool forwarded_https = false;
  };

  // head: the request head as received (parsed again on the thread); body:
  // the decoded body bytes buffered so far, body_done when that is all.
  Job(std::string_view head, std::string_view body, bool body_done, const Origin& origin, bool head_request,
      const JobLimits& limits, const MonotonicClock& clock);
  ~Job() override;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  // ---- On the thread that runs the job.

  // Parses the head into *out (views into this job, valid for its life).
  // Returns false when it does not parse (it did on the loop, so never).
  bool parse_head(RequestHead* out) const;
  std::string_view head_text() const { return head_; }
  // The request line, for log lines.
  std::string_view request_line() const;

  // Waits, up to send_ms, until the output the thread produced is below the
  // high-water mark (a stream or write() whose client reads slowly).
  // Returns false when the client is gone or too slow (the connection then
  // closes).
  bool wait_for_room();

  // Exchange: the thread's side. listener()/peer() are copies.
  size_t listener() const override { return origin_.listener; }
  const sockaddr_storage& peer() const override { return origin_.peer; }
  const sockaddr_storage& client() const override { return origin_.client; }
  bool forwarded_https() const override { return origin_.forwarded_https; }
  std::string_view body_available() const override;
  void body_consume(size_t n) override;
  bool body_complete() const override { return t_body_done_; }
  bool body_failed() const override { return t_body_error_; }
  int body_fill_blocking(uint64_t deadline_ms) override;
  uint64_t body_read_deadline() const override { return clock_.now_ms() + limits_.body_ms; }
  void start_response(std::string_view status, int code, bool app_server = false, bool app_date = false) override;
  void add_header(std::string_view name, std::string_view value) override;
  void add_header_block(std::string_view lines, int64_t content_length) override;
  void end_headers(int64_t known_length) override;
  void write_body(const char* data, size_t len) override;
  void write_body_ref(const char* data, size_t len, Releaser release) override;
  void write_body_file(int file_fd, int64_t offset, int64_t len, Releaser release) override;
  void finish_response() override;
  void abort_response() override;
  void send_error(int status) override;
  bool head_started() const override { return t_head_started_; }
  bool status_has_no_body(int code) const override {
    return head_request_ || code < 200 || code == 204 || code == 304;
  }
  bool response_has_no_body() const override { return t_no_body_; }
  // Hands what was recorded to the loop now (one wake-up, coalesced).
  bool push() override;
  bool output_congested() const override;
  bool flush_blocking() override { return push() && wait_for_room(); }
  bool client_gone() const override { return cancelled_.load(std::memory_order_acquire); }

  // ---- For the pool.

  void attach(std::shared_ptr<PoolState> pool) { pool_ = std::move(pool); }
  // The thread starts the job: when (MonotonicClock ms) and which thread
  // (pthread id, as Python's threading.get_ident()).
  void mark_started(uint64_t now_ms, unsigned long thread_ident);
  // The thread is done with the job: nothing more will be recorded.
  void mark_done();
  bool started() const { return started_.load(std::memory_order_acquire); }
  uint64_t started_ms() const { return started_ms_.load(std::memory_order_acquire); }
  unsigned long thread_ident() const { return thread_ident_.load(std::memory_order_acquire); }
  bool thread_done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  bool scheduled = false;  // In the pool's ready list (guarded by the pool's mutex).
  bool counted = false;    // The loop has seen the thread finish (loop thread only).

  // ---- On the loop thread.

  Connection* owner = nullptr;  // The connection it serves; nullptr once cancelled.

  // Moves the recorded ops and their text into ops / data (replacing what
  // they held). Returns true when the thread is done with the job: then
  // these were the last ops.
  bool take(std::vector<Op>& ops, std::string& data);
  // The body: bytes decoded after the job was made. body_room() is how many
  // more the window takes now; end_body() marks the end; fail_body() a body
  // that cannot complete (the connection answers it with its own status).
  size_t body_room() const;
  void feed_body(const char* data, size_t len);
  void end_body();
  void fail_body();
  // The connection's queued output, after each write (wakes a waiting producer).
  void set_output_queued(size_t bytes);
  // The connection is gone (closed, or answered by a timeout): the thread's
  // reads fail, its writes are dropped. Drops the ops not yet taken.
  void cancel();
  // Calls the releasers of ops that will never be applied.
  static void release_ops(std::vector<Op>& ops);

 private:
  void record(Op op);  // Under mu_; releases op at once when cancelled.
  void post();         // Tells the loop there is news.

  const std::string head_;
  const Origin origin_;
  const bool head_request_;
  const JobLimits limits_;
  const MonotonicClock& clock_;

  // The thread's own state (no lock).
  std::string t_body_;
  size_t t_body_rd_ = 0;
  bool t_body_done_;
  bool t_body_error_ = false;
  bool t_head_started_ = false;
  bool t_no_body_ = false;

  // Shared, under mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Op> ops_;
  std::string data_;
  size_t pending_bytes_ = 0;  // Body bytes recorded and not yet taken.
  size_t out_queued_ = 0;     // The connection's queued output.
  std::string incoming_;      // Body bytes fed and not yet moved to t_body_.
  bool body_done_;
  bool body_error_ = false;
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> started_{false};
  std::atomic<uint64_t> started_ms_{0};
  std::atomic<unsigned long> thread_ident_{0};
  std::shared_ptr<PoolState> pool_;
};

}  // namespace fulmen
