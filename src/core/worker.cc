#include "core/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <new>

#include "core/log.h"
#include "core/operator_signals.h"
#include "core/response.h"

namespace fulmen {
namespace {

constexpr uint64_t kTickMs = 1000;
constexpr uint64_t kAcceptRetryMs = 100;

}  // namespace

Worker::Worker(const WorkerConfig& config, std::vector<int> listen_fds, Handler& handler, const MonotonicClock& clock)
    : config_(config), handler_(handler), clock_ms_(clock) {
  uv_loop_init(&loop_);
  loop_.data = this;
  if (!config_.static_files.mounts.empty()) static_ = std::make_unique<StaticFiles>(config_.static_files, clock_ms_);
  if (!config_.access_log.path.empty()) {
    std::string error;
    std::optional<AccessLog> al = AccessLog::create(config_.access_log, &error);
    if (al) {
      access_log_ = std::make_unique<AccessLog>(std::move(*al));
    } else {
      log(LogLevel::kError, "access log format: %s", error.c_str());  // The settings table checked it first.
    }
  }
  for (size_t i = 0; i < listen_fds.size(); ++i) {
    add_listener(listen_fds[i], i, false);
    if (config_.reuse_port) {
      int twin = open_reuseport_twin(listen_fds[i]);
      if (twin >= 0) add_listener(twin, i, true);
    }
  }
  uv_timer_init(&loop_, &tick_);
  uv_timer_init(&loop_, &resume_);
  uv_timer_init(&loop_, &grace_);
  uv_timer_init(&loop_, &wake_);
  uv_check_init(&loop_, &check_);
  uv_prepare_init(&loop_, &prepare_);
  tick_.data = resume_.data = grace_.data = wake_.data = this;
  check_.data = prepare_.data = this;
  uv_async_init(&loop_, &stop_async_, on_stop);
  uv_signal_init(&loop_, &sig_usr1_);
  stop_async_.data = sig_usr1_.data = this;
  for (auto& s : sig_ignored_) {
    uv_signal_init(&loop_, &s);
    s.data = this;
  }
  if (config_.threads > 1) {
    job_limits_.limits = config_.limits;
    job_limits_.body_ms = config_.body_ms;
    job_limits_.send_ms = config_.send_ms;
    job_limits_.body_window = std::max<size_t>(config_.max_body_buffer, 64 * 1024);
    job_limits_.high_water = Connection::kHighWater;
    size_t pending = config_.max_pending > 0 ? config_.max_pending : 8 * config_.threads;
    threads_ = std::make_unique<ThreadPool>(
        &loop_, config_.threads, pending, handler_, clock_ms_,
        [](Job& job) {
          if (job.owner != nullptr) job.owner->on_job();
        },
        [this] { on_slots(); });
  }
}

Worker::~Worker() {
  // After run() every handle is closed. A worker whose loop was driven from
  // outside (tests, fuzz targets) is stopped here: its connections and
  // handles close, and the loop runs until their close callbacks are done.
  if (!finished_) {
    if (!stopping_) begin_stop(false);
    for (auto& c : conns_) c.close();
    maybe_finish();
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  // uv_loop_close only fails if a handle is left, which would be a bug worth hearing about.
  if (uv_loop_close(&loop_) != 0) log(LogLevel::kWarning, "event loop closed with open handles");
}

int Worker::run() {
  if (config_.metrics != nullptr) {
    metrics_ = config_.metrics->claim(getpid());
    if (metrics_ == nullptr) log(LogLevel::kWarning, "no free metrics slot: this worker is not counted");
  }
  // A client that disconnects mid-write must not kill the worker.
  signal(SIGPIPE, SIG_IGN);
  // The master alone acts on a hang-up; one sent to the whole process group
  // (a terminal closing, `kill -HUP -pgid`) must not end requests in flight.
  signal(SIGHUP, SIG_IGN);
  // An allocation that fails in a libuv callback ends the worker with the
  // out-of-memory message, not an exception nothing can catch.
  std::set_new_handler([] { out_of_memory(); });
  signalled_ = this;
  catch_stop_signals();
  // A stop signal that came while the application loaded is acted on now.
  if (stop_signal_.load() != 0) uv_async_send(&stop_async_);
  uv_signal_start(&sig_usr1_, on_usr1, SIGUSR1);
  const int ignored[] = {SIGTTIN, SIGTTOU, SIGWINCH, SIGUSR2};
  for (size_t i = 0; i < std::size(ignored); ++i)
    uv_signal_start(
        &sig_ignored_[i], [](uv_signal_t*, int) {}, ignored[i]);
  // Every operator signal has its handler now: the ones that came while the
  // application imported are delivered here (core/operator_signals.h).
  sigset_t deferred = operator_signal_set();
  pthread_sigmask(SIG_UNBLOCK, &deferred, nullptr);
  // The timer only wakes the loop once a second; the sweep itself runs in
  // the check phase, after the poll, so that a request that arrived while
  // the app ran is read before anything decides that its connection is idle
  // (issue 13 item 1).
  uv_timer_start(&tick_, on_tick, kTickMs, kTickMs);
  uv_check_start(&check_, on_check);
  uv_prepare_start(&prepare_, on_prepare);
  next_sweep_ = clock_ms_.now_ms() + kTickMs;
  if (threads_) threads_->start();
  if (access_log_) {
    if (int err = access_log_->open(); err < 0) {
      log(LogLevel::kError, "cannot open the access log %s: %s", config_.access_log.path.c_str(), strerror(-err));
      access_log_.reset();
    }
  }
  resume_accepting();
  start_watching();
  log(LogLevel::kInfo, "Worker %d ready", static_cast<int>(getpid()));
  if (link_ != nullptr) {
    link_->beat(clock_ms_.now_ms());
    link_->send(LinkMessage::kReady);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (access_log_) access_log_->flush();
  if (metrics_ && metrics_->exit.load(std::memory_order_relaxed) == 0) {
    metrics_->exit.store(static_cast<int32_t>(Metrics::Exit::kStopped), std::memory_order_relaxed);
  }
  log(LogLevel::kInfo, "Worker %d stopped", static_cast<int>(getpid()));
  return 0;
}

std::string_view Worker::common_headers() {
  std::string_view date = clock_.date_header();
  if (clock_.second() != common_second_) {
    common_.clear();
    if (!config_.server_header.empty()) {
      common_.append("Server: ");
      common_.append(config_.server_header);
      common_.append("\r\n");
    }
    common_.append(date);
    common_second_ = clock_.second();
  }
  return common_;
}

void Worker::add_listener(int fd, size_t index, bool owned) {
  auto l = std::make_unique<Listener>();
  l->fd = fd;
  l->index = index;
  l->worker = this;
  l->active = false;
  l->owned = owned;
  uv_poll_init_socket(&loop_, &l->poll, l->fd);
  l->poll.data = l.get();
  // Deferred accept (as nginx's "deferred"): the kernel hands over a TCP
  // connection once its first bytes are in, so the connection reads its
  // request at once instead of waiting for another readiness event. A
  // client that never sends is accepted after the defer period anyway and
  // then meets the keep-alive deadline.
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
      (local.ss_family == AF_INET || local.ss_family == AF_INET6)) {
    int defer_s = 5;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
  }
  listeners_.push_back(std::move(l));
}

// Opens this worker's own socket bound to the same TCP address as fd, in the
// same SO_REUSEPORT group. The shared socket stays watched too: connections
// the kernel queued there (it is one more member of the group) are accepted
// by whichever worker is first. Returns -1 (and logs) when it cannot.
int Worker::open_reuseport_twin(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
    return -1;
  int s = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (addr.ss_family == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(s, config_.backlog) != 0) {
    log(LogLevel::kWarning, "reuse-port: cannot open a socket of this worker's own: %s", strerror(errno));
    ::close(s);
    return -1;
  }
  return s;
}

// ---------------------------------------------------------------- accepting

void Worker::on_accept(uv_poll_t* handle, int status, int /*events*/) {
  auto* l = static_cast<Listener*>(handle->data);
  if (status < 0) return;
  l->worker->accept_from(*l);
}

void Worker::accept_from(Listener& l) {
  // Accept until the kernel queue is empty (EAGAIN), or until the cap; after
  // the cap, connections wait in the kernel's backlog (never reset) until a
  // slot frees.
  while (!stopping_) {
    if (conns_.size() >= config_.max_connections) {
      pause_accepting();
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
          return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // Out of descriptors or memory: polling again at once would spin
          // on the same readable listener. Pause, retry shortly.
          log(LogLevel::kWarning, "accept: %s; pausing for %llu ms", strerror(errno),
              static_cast<unsigned long long>(kAcceptRetryMs));
          pause_accepting();
          uv_timer_start(&resume_, on_resume, kAcceptRetryMs, 0);
          return;
        default:
          // Any other failure leaves the listener readable: retrying at once
          // would spin, so pause as for EMFILE.
          log(LogLevel::kError, "accept: %s; pausing for %llu ms", strerror(errno),
              static_cast<unsigned long long>(kAcceptRetryMs));
          pause_accepting();
          uv_timer_start(&resume_, on_resume, kAcceptRetryMs, 0);
          return;
      }
    }
    // TCP_NODELAY is set by the connection once it has a second response
    // to send (keep-alive, streaming): a one-shot connection never needs it.
    adopt(fd, l.index, peer);
  }
}

Connection& Worker::adopt(int fd, size_t listener, const sockaddr_storage& peer) {
  conns_.emplace_front(*this, fd, listener, peer);
  conns_.front().start(conns_.begin());
  return conns_.front();
}

void Worker::pause_accepting() {
  if (accept_paused_) return;
  accept_paused_ = true;
  for (auto& l : listeners_) {
    if (l->active) uv_poll_stop(&l->poll);
    l->active = false;
  }
}

void Worker::resume_accepting() {
  if (stopping_) return;
  accept_paused_ = false;
  for (auto& l : listeners_) {
    if (!l->active) uv_poll_start(&l->poll, UV_READABLE, on_accept);
    l->active = true;
  }
}

void Worker::on_resume(uv_timer_t* timer) {
  auto* w = static_cast<Worker*>(timer->data);
  if (w->conns_.size() < w->config_.max_connections) w->resume_accepting();
}

void Worker::remove(std::list<Connection>::iterator it) {
  conns_.erase(it);
  if (stopping_) {
    maybe_finish();
  } else if (accept_paused_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&resume_)) &&
             conns_.size() < config_.max_connections) {
    resume_accepting();
  }
}

// ---------------------------------------------------------------- time and signals

void Worker::note_refused(const sockaddr_storage& client, int status) {
  if (!log_enabled(LogLevel::kWarning)) return;
  uint64_t second = clock_ms_.now_ms() / 1000;
  if (second != refusal_window_) {
    refusal_window_ = second;
    refusals_logged_ = 0;
  }
  if (refusals_logged_ >= kRefusalLinesPerSecond) {
    ++refusals_unlogged_;
    return;
  }
  ++refusals_logged_;
  char addr[INET6_ADDRSTRLEN] = "a unix socket peer";
  if (client.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&client)->sin_addr, addr, sizeof addr);
  } else if (client.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&client)->sin6_addr, addr, sizeof addr);
  }
  std::string_view reason = reason_phrase(status);
  if (refusals_unlogged_ > 0) {
    log(LogLevel::kWarning, "refused a request from %s: %d %.*s (%llu more refused before it, not logged)", addr,
        status, static_cast<int>(reason.size()), reason.data(), static_cast<unsigned long long>(refusals_unlogged_));
    refusals_unlogged_ = 0;
  } else {
    log(LogLevel::kWarning, "refused a request from %s: %d %.*s", addr, status, static_cast<int>(reason.size()),
        reason.data());
  }
}

void Worker::on_tick(uv_timer_t* /*timer*/) {
  // Nothing to do: waking the loop is the point (see run()).
}

void Worker::on_prepare(uv_prepare_t* prepare) {
  auto* w = static_cast<Worker*>(prepare->data);
  w->batch_.open();
  w->call_end_ns_ = 0;  // The poll comes next: the last call's end is no longer "now".
}

bool Worker::hold_output(Connection* c) {
  return batch_.hold(c, call_end_ns_ != 0 ? call_end_ns_ : uv_hrtime());
}

uint64_t Worker::before_app_call() {
  uint64_t now = call_end_ns_ != 0 ? call_end_ns_ : uv_hrtime();
  if (batch_.due(now)) write_held(batch_.take_due(), false);
  return now;
}

void Worker::after_app_call(uint64_t start_ns) {
  call_end_ns_ = uv_hrtime();
  batch_.app_call_took(call_end_ns_ - start_ns);
}

void Worker::write_held(std::vector<Connection*>& held, bool resume) {
  // Every write first, then the streams that wait for theirs: a stream's
  // next block runs app code, which the other writes need not wait for.
  for (Connection*& c : held)
    if (c != nullptr && !c->write_held(resume)) c = nullptr;
  for (Connection* c : held)
    if (c != nullptr) c->resume_stream();
  held.clear();
}

void Worker::on_check(uv_check_t* check) {
  auto* w = static_cast<Worker*>(check->data);
  // The responses of this turn leave now, together (core/send_batch.h). On
  // the loop thread's app, the handler's resource (the GIL) is taken once
  // for all of them: what backed zero-copy bodies is released meanwhile.
  std::vector<Connection*>& held = w->batch_.take();
  if (!held.empty()) {
    bool batch = w->threads_ == nullptr;
    if (batch) w->handler_.batch_begin();
    w->write_held(held, true);
    if (batch) w->handler_.batch_end();
  }
  uint64_t now = w->clock_ms_.now_ms();
  // The heartbeat: the loop came back. The tick wakes an idle loop once a
  // second, so no extra wake-up is needed for it.
  if (w->link_ != nullptr) w->link_->beat(now);
  // The access log's lines of this loop turn leave in one write.
  if (w->access_log_) w->access_log_->flush();
  if (now >= w->next_sweep_) w->sweep();
}

void Worker::request_done() {
  if (config_.max_requests == 0 || ++served_ != config_.max_requests) return;
  log(LogLevel::kInfo, "Worker %d served %llu requests (max_requests)", static_cast<int>(getpid()),
      static_cast<unsigned long long>(served_));
  if (metrics_) metrics_->exit.store(static_cast<int32_t>(Metrics::Exit::kMaxRequests), std::memory_order_relaxed);
  if (link_ == nullptr || !link_->send(LinkMessage::kRetireMe)) begin_stop(true);
}

void Worker::sweep() {
  uint64_t now = clock_ms_.now_ms();
  next_sweep_ = now + sweep_every_ms_;
  if (static_) static_->sweep();
  Timeouts timeouts = config_.timeouts();
  if (stopping_) timeouts.keepalive_ms = std::min(timeouts.keepalive_ms, WorkerConfig::kRetireIdleMs);
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto next = std::next(it);  // on_tick may close (not erase) the connection.
    it->on_tick(now, timeouts);
    it = next;
  }
}

void Worker::add_slot_waiter(Connection* c) {
  if (slot_waiters_.empty())
    log(LogLevel::kDebug, "all %zu threads busy and %zu requests in flight (--max-pending): new requests wait",
        threads_->threads(), threads_->in_flight());
  slot_waiters_.push_back(c);
}

void Worker::remove_slot_waiter(Connection* c) {
  auto it = std::find(slot_waiters_.begin(), slot_waiters_.end(), c);
  if (it != slot_waiters_.end()) slot_waiters_.erase(it);
}

// Threads finished jobs: requests that waited start, oldest first, while
// there is room.
void Worker::on_slots() {
  while (!slot_waiters_.empty() && !threads_->saturated()) {
    Connection* c = slot_waiters_.front();
    slot_waiters_.pop_front();
    c->on_slot();
  }
}

bool Worker::take_input_budget(size_t n) {
  if (n > config_.max_input_memory - std::min(budget_used_, config_.max_input_memory)) return false;
  budget_used_ += n;
  return true;
}

void Worker::give_input_budget(size_t n) {
  budget_used_ -= std::min(n, budget_used_);
  if (budget_waiters_ > 0 && !finished_) uv_timer_start(&wake_, on_wake, 0, 0);
}

// Wakes the connections that found the budget spent, on a fresh loop turn
// (give_input_budget runs inside other connections' callbacks).
void Worker::on_wake(uv_timer_t* timer) {
  auto* w = static_cast<Worker*>(timer->data);
  for (auto it = w->conns_.begin(); it != w->conns_.end() && w->budget_waiters_ > 0;) {
    auto next = std::next(it);
    if (it->waiting_for_budget()) it->on_budget();
    it = next;
  }
}

void Worker::catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGQUIT}) sigaction(sig, &sa, nullptr);
}

void Worker::on_stop_signal(int signum) {
  // An immediate stop wins over a graceful one; uv_async_send is
  // async-signal-safe.
  int expected = 0;
  if (!stop_signal_.compare_exchange_strong(expected, signum) && signum != SIGTERM) stop_signal_.store(signum);
  if (signalled_ != nullptr) uv_async_send(&signalled_->stop_async_);
}

void Worker::on_stop(uv_async_t* async) {
  auto* w = static_cast<Worker*>(async->data);
  int signum = stop_signal_.load();
  if (signum == 0) return;
  if (signum != SIGTERM && w->on_interrupt_) w->on_interrupt_();
  w->begin_stop(signum == SIGTERM);
}

void Worker::start_watching() {
  for (const std::string& path : config_.watch_files) {
    auto w = std::make_unique<uv_fs_event_t>();
    uv_fs_event_init(&loop_, w.get());
    w->data = this;
    int rc = uv_fs_event_start(w.get(), on_file_changed, path.c_str(), 0);
    if (rc != 0) {
      log(LogLevel::kWarning, "reload: cannot watch %s: %s", path.c_str(), uv_strerror(rc));
      uv_close(reinterpret_cast<uv_handle_t*>(w.get()), nullptr);
    }
    watches_.push_back(std::move(w));
  }
}

// An editor may write in place (UV_CHANGE) or replace the file (UV_RENAME);
// either way the code changed. One request per worker: the master's reload
// retires this worker, and the new ones watch the files anew.
void Worker::on_file_changed(uv_fs_event_t* handle, const char* /*filename*/, int /*events*/, int status) {
  auto* w = static_cast<Worker*>(handle->data);
  if (status < 0 || w->reload_asked_ || w->stopping_ || w->link_ == nullptr) return;
  w->reload_asked_ = true;
  char path[4096];
  size_t len = sizeof path;
  if (uv_fs_event_getpath(handle, path, &len) != 0) len = 0;
  log(LogLevel::kInfo, "reload: %.*s changed", static_cast<int>(len), path);
  w->link_->send(LinkMessage::kReloadMe);
}

void Worker::on_usr1(uv_signal_t* handle, int /*signum*/) {
  reopen_log_file();
  auto* w = static_cast<Worker*>(handle->data);
  if (w->access_log_) {
    if (int err = w->access_log_->reopen(); err < 0) {
      log(LogLevel::kError, "cannot reopen the access log %s: %s", w->config_.access_log.path.c_str(),
          strerror(-err));
    }
  }
  log(LogLevel::kInfo, "Worker %d reopened the log file", static_cast<int>(getpid()));
}

void Worker::begin_stop(bool graceful) {
  if (!stopping_) {
    // A worker's own SO_REUSEPORT socket holds connections only this worker
    // can accept: take them before closing it, or the kernel resets them.
    for (auto& l : listeners_)
      if (l->owned) accept_from(*l);
    stopping_ = true;
    for (auto& l : listeners_) {
      uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), nullptr);
      // A worker's own SO_REUSEPORT socket closes now, so the kernel stops
      // queueing connections on it; the shared ones belong to the master.
      if (l->owned) ::close(l->fd);
    }
    uv_timer_stop(&resume_);
    if (graceful) {
      // Idle keep-alive connections close once idle for kRetireIdleMs;
      // sweep often enough that this is not rounded up to a second.
      sweep_every_ms_ = 100;
      next_sweep_ = std::min(next_sweep_, clock_ms_.now_ms() + sweep_every_ms_);
      uv_timer_start(&tick_, on_tick, sweep_every_ms_, sweep_every_ms_);
      uv_timer_start(
          &grace_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->begin_stop(false); }, config_.graceful_ms, 0);
      for (auto it = conns_.begin(); it != conns_.end();) {
        auto next = std::next(it);
        it->shutdown_gracefully();
        it = next;
      }
      maybe_finish();
      return;
    }
  }
  // Immediate: close everything now.
  for (auto& c : conns_) c.close();
  maybe_finish();
}

void Worker::maybe_finish() {
  if (finished_ || !conns_.empty()) return;
  finished_ = true;
  if (threads_) threads_->stop();  // Its async handle closes with the others.
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&tick_), reinterpret_cast<uv_handle_t*>(&resume_),
                         reinterpret_cast<uv_handle_t*>(&wake_), reinterpret_cast<uv_handle_t*>(&check_),
                         reinterpret_cast<uv_handle_t*>(&prepare_), reinterpret_cast<uv_handle_t*>(&grace_),
                         reinterpret_cast<uv_handle_t*>(&sig_usr1_)})
    uv_close(h, nullptr);
  for (auto& w : watches_)
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(w.get())))
      uv_close(reinterpret_cast<uv_handle_t*>(w.get()), nullptr);
  if (signalled_ == this) {
    // Past this point a stop signal has nothing left to stop: the default
    // action (the process is on its way out anyway).
    for (int sig : {SIGTERM, SIGINT, SIGQUIT}) signal(sig, SIG_DFL);
    signalled_ = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  for (auto& s : sig_ignored_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
}

}  // namespace fulmen
