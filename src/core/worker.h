// A worker process's event loop: accepts on the shared listening sockets,
// owns the connections, runs the deadline sweep and handles shutdown signals.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/access_log.h"
#include "core/address_set.h"
#include "core/buffer.h"
#include "core/clock.h"
#include "core/connection.h"
#include "core/handler.h"
#include "core/job.h"
#include "core/metrics.h"
#include "core/monotonic_clock.h"
#include "core/parser.h"
#include "core/send_batch.h"
#include "core/static_files.h"
#include "core/thread_pool.h"
#include "core/worker_link.h"

namespace fulmen {

struct WorkerConfig {
  ParserLimits limits;
  uint64_t keepalive_ms = 5000;  // Idle keep-alive connection.
  uint64_t header_ms = 10000;    // Whole request head, from its first byte.
  uint64_t body_ms = 30000;      // Between two pieces of request body.
  uint64_t send_ms = 30000;      // Between two pieces of response progress.
  uint64_t graceful_ms = 30000;  // In-flight responses after SIGTERM.
  size_t max_connections = 16384;
  size_t max_body_buffer = 1 << 20;  // Body bytes read before calling the app.
  uint64_t max_body_size = 0;        // A larger request body gets 413; 0: no limit.
  // Request bytes this worker may buffer beyond each connection's first
  // 16 KiB block, over all its connections (issue 13 item 7).
  size_t max_input_memory = 64u << 20;
  std::string server_header = "fulmen";  // Empty: no Server header.
  // Each worker also opens its own SO_REUSEPORT socket per TCP listener, so
  // the kernel spreads new connections evenly over the workers instead of
  // waking them all for each one.
  bool reuse_port = false;
  int backlog = 4096;
  // --threads: the app runs on this many threads per worker; 1 calls it on
  // the loop thread (issue 10). max_pending: parsed requests that may wait
  // for a thread (0: 8 per thread). request_ms: --request-timeout, 0 = off.
  size_t threads = 1;
  size_t max_pending = 0;
  uint64_t request_ms = 0;
  StaticConfig static_files;  // --static mounts and their settings (issue 11).
  // Proxies in front (issue 9). With proxy_versions, a connection from
  // proxy_allow_from (or over a unix socket) must begin with a PROXY header,
  // whose source becomes the client; one from elsewhere that begins with a
  // PROXY header is closed (never believed). X-Forwarded-* and Forwarded are
  // believed only from forwarded_allow_ips (or over a unix socket).
  unsigned proxy_versions = 0;  // PROXY header versions accepted: bit 0 v1, bit 1 v2; 0 = off.
  AddressSet proxy_allow_from;
  AddressSet forwarded_allow_ips;
  AccessLogConfig access_log;  // --access-logfile and friends (issue 9); path empty: none.
  // The shared metrics region (mapped by the master before any fork; not
  // owned). nullptr: no metrics. Each worker claims a slot of it in run().
  Metrics* metrics = nullptr;

  // Requests after which the worker asks the master to replace it (the
  // caller adds max_requests_jitter); 0: never (issue 8).
  uint64_t max_requests = 0;
  // Files whose change makes the master reload, as on SIGHUP (--reload,
  // development): watched with inotify through uv_fs_event, no polling.
  std::vector<std::string> watch_files;

  // After our last response (an error), input is drained this long before
  // the close, so the client reads the answer instead of a reset.
  static constexpr uint64_t kLingerMs = 2000;
  // A stopping worker closes a keep-alive connection once it has been idle
  // this long with no request bytes pending; until then the next request on
  // it is answered (with "Connection: close"), not reset (issue 8).
  static constexpr uint64_t kRetireIdleMs = 1000;

  Timeouts timeouts() const {
    Timeouts t;
    t.keepalive_ms = keepalive_ms;
    t.header_ms = header_ms;
    t.body_ms = body_ms;
    t.send_ms = send_ms;
    t.linger_ms = kLingerMs;
    t.request_ms = request_ms;
    return t;
  }
};

class Worker {
 public:
  // listen_fds are non-blocking listening sockets, indexed as "listener".
  // clock: the time base of every deadline; it must outlive the worker.
  Worker(const WorkerConfig& config, std::vector<int> listen_fds, Handler& handler,
         const MonotonicClock& clock = MonotonicClock::system());
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until SIGTERM (graceful), SIGINT or SIGQUIT (immediate). Returns the
  // process exit status. Must be called once.
  int run();

  // Installs the process's TERM/INT/QUIT handler before any Worker runs (a
  // new worker process calls it first thing, before it loads the app): a
  // signal that arrives meanwhile is remembered, and run() acts on it.
  static void catch_stop_signals();

  // The channel to the master (not owned; it outlives the worker). With a
  // link, run() reports "ready", each loop turn stamps the heartbeat, and
  // max_requests asks the master for a replacement. Without one (tests),
  // max_requests stops the worker gracefully.
  void set_link(WorkerLink* link) { link_ = link; }
  // Called on SIGINT or SIGQUIT before the immediate stop (gunicorn's
  // worker_int hook); may be empty.
  void set_on_interrupt(std::function<void()> fn) { on_interrupt_ = std::move(fn); }
  // A response is over: counts it against max_requests.
  void request_done();

  uv_loop_t* loop() { return &loop_; }
  const WorkerConfig& config() const { return config_; }
  const MonotonicClock& clock() const { return clock_ms_; }
  Handler& handler() { return handler_; }
  // The static file server; nullptr when no --static mount is configured.
  StaticFiles* static_files() { return static_.get(); }
  // Logs a request the server refused (400, 408, 413, 414, 431, 501) as a
  // warning naming the client, at most kRefusalLinesPerSecond a second; the
  // next line logged says how many were left out.
  void note_refused(const sockaddr_storage& client, int status);
  static constexpr int kRefusalLinesPerSecond = 10;
  // This worker's metrics slot; nullptr without --metrics-bind.
  Metrics::Slot* metrics() { return metrics_; }
  // The access log; nullptr when there is none.
  AccessLog* access_log() { return access_log_.get(); }
  BufferPool& pool() { return pool_; }
  bool stopping() const { return stopping_; }
  // True once TERM, INT or QUIT arrived, even before the loop handled it.
  bool stop_requested() const { return stopping_ || stop_signal_.load(std::memory_order_relaxed) != 0; }

  // Parse output shared by all connections: a head is only needed from its
  // parse to its dispatch, so keeping ~4 KiB of views per connection would
  // be waste (an idle connection costs a few hundred bytes).
  RequestHead& scratch_head() { return scratch_head_; }

  // "Server: ...\r\nDate: ...\r\n", refreshed once a second.
  std::string_view common_headers();

  // Takes over an already connected socket as if accepted on `listener`
  // (tests and fuzz targets drive connections through socketpairs).
  Connection& adopt(int fd, size_t listener, const sockaddr_storage& peer);
  size_t connections() const { return conns_.size(); }
  void close_all() {
    for (auto& c : conns_) c.close();
  }

  // Called by a connection whose handle has closed; destroys it.
  void remove(std::list<Connection>::iterator it);

  // The input budget (WorkerConfig::max_input_memory). take_ returns false,
  // taking nothing, when n bytes would exceed it. A connection that found no
  // room registers as a waiter; waiters are woken (Connection::on_budget) on
  // the next loop turn after bytes are given back.
  bool take_input_budget(size_t n);
  void give_input_budget(size_t n);
  size_t input_budget_used() const { return budget_used_; }
  void budget_waiter_added() { ++budget_waiters_; }
  void budget_waiter_gone() { --budget_waiters_; }

  // Runs the deadline sweep now (it also runs once a second, after the poll).
  void sweep();

  // ---- One write per loop turn (core/send_batch.h).
  // True: c's response waits for the end of this loop turn (the worker then
  // calls c.write_held()); false: c writes it now.
  bool hold_output(Connection* c);
  bool may_hold_output() const { return batch_.may_hold(); }  // What hold_output() would answer.
  void forget_held(Connection* c) { batch_.forget(c); }
  // Around each app call on the loop thread: writes what waited too long
  // before, and feeds the call's duration to the batch's average after.
  // before_app_call returns the time it read, to pass to after_app_call.
  // Within one loop turn, the end of the previous app call stands for "now"
  // (for the next call's start and for holding its response): the C++ work
  // between two calls is microseconds against the batch's 1 ms rule, and
  // each clock read skipped is ~25 ns of a ~1.5 us pipelined request.
  uint64_t before_app_call();
  void after_app_call(uint64_t start_ns);

  // ---- Threaded mode (config().threads > 1, issue 10).
  // The pool, or nullptr when the app runs on the loop thread.
  ThreadPool* threads() { return threads_.get(); }
  const JobLimits& job_limits() const { return job_limits_; }
  // Scratch space for Connection::on_job() (one connection at a time).
  std::vector<Job::Op>& job_ops() { return job_ops_; }
  std::string& job_data() { return job_data_; }
  // Connections with a request that waits for the pool (ThreadPool::saturated());
  // woken in order (Connection::on_slot) as threads free up.
  void add_slot_waiter(Connection* c);
  void remove_slot_waiter(Connection* c);

 private:
  struct Listener {
    uv_poll_t poll;
    int fd;
    size_t index;
    Worker* worker;
    bool active;
    bool owned;  // This worker opened it (SO_REUSEPORT twin) and closes it.
  };

  static void on_accept(uv_poll_t* handle, int status, int events);
  static void on_tick(uv_timer_t* timer);
  static void on_check(uv_check_t* check);
  static void on_prepare(uv_prepare_t* prepare);
  // Writes the held connections' output; with resume, then pumps the
  // streams that yielded for it (Connection::hold_block()).
  void write_held(std::vector<Connection*>& held, bool resume);
  static void on_wake(uv_timer_t* timer);
  static void on_resume(uv_timer_t* timer);
  static void on_stop_signal(int signum);  // A raw signal handler: async-signal-safe only.
  static void on_stop(uv_async_t* async);
  static void on_usr1(uv_signal_t* handle, int signum);
  static void on_file_changed(uv_fs_event_t* handle, const char* filename, int events, int status);
  void start_watching();

  void accept_from(Listener& l);
  void add_listener(int fd, size_t index, bool owned);
  int open_reuseport_twin(int fd);
  void pause_accepting();
  void resume_accepting();
  void begin_stop(bool graceful);
  void maybe_finish();
  void on_slots();

  WorkerConfig config_;
  Handler& handler_;
  const MonotonicClock& clock_ms_;
  uv_loop_t loop_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Before conns_, so it outlives the connections whose queued sends hold its files.
  std::unique_ptr<StaticFiles> static_;
  std::unique_ptr<AccessLog> access_log_;
  Metrics::Slot* metrics_ = nullptr;
  uint64_t refusal_window_ = 0;  // The second (ms / 1000) the count below is for.
  int refusals_logged_ = 0;      // Lines logged in that second.
  uint64_t refusals_unlogged_ = 0;
  std::list<Connection> conns_;
  BufferPool pool_;
  HttpClock clock_;
  RequestHead scratch_head_;
  std::string common_;
  int64_t common_second_ = -1;  // The second common_ was built for.
  uv_timer_t tick_;
  uv_check_t check_;
  uv_prepare_t prepare_;
  SendBatch batch_;
  uint64_t call_end_ns_ = 0;  // uv_hrtime() after this turn's last app call; 0 before one.
  uv_timer_t wake_;
  uint64_t next_sweep_ = 0;
  size_t budget_used_ = 0;
  size_t budget_waiters_ = 0;
  uv_timer_t resume_;
  uv_timer_t grace_;
  // TERM, INT and QUIT are caught by a plain handler that records the signal
  // (stop_requested()) and wakes the loop through this async handle: a
  // response completed while the application ran after the signal already
  // says "Connection: close" (issue 8).
  uv_async_t stop_async_;
  uv_signal_t sig_usr1_;
  // Signals meant for the master that reach a worker too (a whole process
  // group signalled): handled as no-ops, so none takes its default action.
  uv_signal_t sig_ignored_[4];
  WorkerLink* link_ = nullptr;
  // The worker whose run() installed the stop handler, and the signal seen.
  static inline Worker* signalled_ = nullptr;
  static inline std::atomic<int> stop_signal_{0};
  std::function<void()> on_interrupt_;
  uint64_t served_ = 0;
  std::vector<std::unique_ptr<uv_fs_event_t>> watches_;
  bool reload_asked_ = false;
  uint64_t sweep_every_ms_ = 1000;
  bool stopping_ = false;
  bool finished_ = false;
  bool accept_paused_ = false;
  JobLimits job_limits_;
  std::unique_ptr<ThreadPool> threads_;
  std::vector<Job::Op> job_ops_;
  std::string job_data_;
  std::deque<Connection*> slot_waiters_;
};

}  // namespace fulmen
