#include "core/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>

#include "core/log.h"
#include "core/operator_signals.h"

namespace fulmen {
namespace {

// The workers' clock (MonotonicClock, CLOCK_MONOTONIC_COARSE): their
// heartbeats are compared with it.
uint64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// A worker that stopped within this long of its start, before it was ready,
// is not replaced at once: dying again and again must not become a fork storm.
constexpr uint64_t kRespawnPauseMs = 1000;
// After SIGABRT (timeout) a worker has this long to dump its stacks and exit.
constexpr uint64_t kAbortGraceMs = 2000;
// A retiring worker closes everything itself at graceful_ms; the master's
// SIGKILL comes this much later, for one stuck in the application.
constexpr uint64_t kKillMarginMs = 1000;

struct Child {
  pid_t pid;
  std::unique_ptr<WorkerLink> link;
  uint64_t started_ms;
  bool ready = false;
  bool old = false;       // Of the settings before a reload, or asked to be replaced: retires once replaced.
  bool retiring = false;  // Sent TERM (or QUIT); not replaced when it exits.
  bool aborted = false;   // Sent SIGABRT for a timeout.
  uint64_t kill_at = UINT64_MAX;
};

// Signals the master handles. Everything an operator may send is here, so
// that none takes its default action (stop, suspend, terminate).
constexpr int kHandled[] = {SIGCHLD,  SIGINT,  SIGTERM, SIGQUIT,   SIGHUP,  SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
                            SIGWINCH, SIGALRM, SIGPIPE, SIGVTALRM, SIGPROF, SIGPWR,  SIGIO,   SIGURG};

class Master {
 public:
  Master(const MasterConfig& config, const MasterHooks& hooks) : config_(config), hooks_(hooks) {}

  MasterResult run() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kHandled) sigaddset(&set, s);
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) sigaddset(&set, s);
    // Blocked and read from a signalfd: no handler ever runs in the middle
    // of a fork, and the loop waits on signals and worker messages at once.
    pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int pipe_fds[2];
    if (sfd < 0 || pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      log(LogLevel::kCritical, "master: cannot set up signals: %s", strerror(errno));
      pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
      return {false, 1};
    }
    read_fd_ = pipe_fds[0];
    write_fd_ = pipe_fds[1];
    master_pid_ = getpid();
    target_ = config_.workers;
    log(LogLevel::kInfo, "Master %d starting %d worker%s", static_cast<int>(master_pid_), target_,
        target_ == 1 ? "" : "s");

    for (;;) {
      uint64_t now = monotonic_ms();
      if (manage(now)) return child_result();
      if (stopping_ && children_.empty()) break;
      struct pollfd fds[2] = {{sfd, POLLIN, 0}, {read_fd_, POLLIN, 0}};
      int wait = static_cast<int>(std::min<uint64_t>(next_deadline(now) - now, 1000));
      int n = poll(fds, 2, wait);
      if (n < 0 && errno != EINTR) {
        log(LogLevel::kCritical, "master: poll: %s", strerror(errno));
        break;
      }
      now = monotonic_ms();
      LinkMessage m;
      while (WorkerLink::receive(read_fd_, &m)) on_message(m);
      signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        on_signal(static_cast<int>(si.ssi_signo), now);
      reap(now);
      check_deadlines(now);
    }
    ::close(sfd);
    ::close(read_fd_);
    ::close(write_fd_);
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    log(LogLevel::kInfo, "Shutting down: master");
    return {false, exit_status_};
  }

 private:
  MasterResult child_result() const { return {true, child_status_}; }

  int event(MasterEvent e, int a = 0, int b = 0) { return hooks_.event ? hooks_.event(e, a, b) : 0; }

  void on_signal(int sig, uint64_t now) {
    switch (sig) {
      case SIGCHLD: return;  // reap() runs after every wake.
      case SIGTERM: stop(SIGTERM, now + config_.graceful_ms + kKillMarginMs); return;
      case SIGINT:
      case SIGQUIT: stop(SIGQUIT, now + 2000); return;
      case SIGHUP: reload(); return;
      case SIGTTIN: set_target(target_ + 1, "TTIN"); return;
      case SIGTTOU:
        if (target_ > 1) set_target(target_ - 1, "TTOU");
        return;
      case SIGUSR1:
        log(LogLevel::kInfo, "USR1: reopening the log file");
        reopen_log_file();
        for (auto& c : children_) kill(c.pid, SIGUSR1);
        return;
      case SIGUSR2:
        if (stopping_) return;
        log(LogLevel::kInfo, "USR2: starting a new master on the same sockets");
        if (int pid = event(MasterEvent::kReexec); pid > 0) new_master_ = pid;
        return;
      case SIGWINCH:
        if (new_master_ == 0 && !config_.daemon) {
          log(LogLevel::kInfo, "WINCH ignored: not daemonized and no new master (USR2) running");
          return;
        }
        log(LogLevel::kInfo, "WINCH: stopping the workers gracefully; the master stays");
        target_ = 0;
        return;
      default: log(LogLevel::kWarning, "Ignoring signal %d (%s)", sig, strsignal(sig)); return;
    }
  }

  void set_target(int n, const char* why) {
    if (stopping_) return;
    int old = target_;
    target_ = n;
    log(LogLevel::kInfo, "%s: %d worker%s", why, n, n == 1 ? "" : "s");
    event(MasterEvent::kWorkersChanged, n, old);
  }

  void reload() {
    if (stopping_) return;
    log(LogLevel::kInfo, "Hang-up: reloading");
    event(MasterEvent::kReloading);
    MasterConfig next = config_;
    if (hooks_.reload && !hooks_.reload(next)) {
      log(LogLevel::kError, "Reload abandoned: the workers keep running with the settings they have");
      event(MasterEvent::kWorkersReady);
      return;
    }
    int before = target_;
    config_ = next;
    target_ = config_.workers;
    if (target_ != before) event(MasterEvent::kWorkersChanged, target_, before);
    for (auto& c : children_)
      if (!c.retiring) c.old = true;
    announce_ready_ = true;
  }

  void stop(int sig, uint64_t deadline) {
    if (!stopping_) {
      log(LogLevel::kInfo, "Stopping (%s)", sig == SIGTERM ? "graceful" : "immediate");
      event(MasterEvent::kStopping);
    }
    stopping_ = true;
    for (auto& c : children_) {
      if (!c.retiring || sig != SIGTERM) kill(c.pid, sig);
      c.retiring = true;
      c.kill_at = std::min(c.kill_at, deadline);
    }
  }

  void retire(Child& c, uint64_t now) {
    c.retiring = true;
    c.kill_at = now + config_.graceful_ms + kKillMarginMs;
    kill(c.pid, SIGTERM);
  }

  // Brings the workers to the target: starts new ones (one alone while none
  // of the current settings is ready, so a broken application fails once),
  // and retires old ones as new ones become ready. Returns true in a child.
  bool manage(uint64_t now) {
    if (stopping_) return false;
    int current = 0, ready = 0, booting = 0, old = 0;
    for (auto& c : children_) {
      if (c.retiring) continue;
      if (c.old) {
        ++old;
      } else {
        ++current;
        c.ready ? ++ready : ++booting;
      }
    }
    int allowed_booting = ready == 0 ? 1 : target_;
    while (current < target_ && booting < allowed_booting && now >= respawn_at_) {
      if (spawn(now)) return true;
      ++current;
      ++booting;
    }
    // Retire the oldest first: children_ is in fork order.
    for (auto& c : children_) {
      if (old == 0 || ready + old <= target_) break;
      if (c.retiring || !c.old) continue;
      retire(c, now);
      --old;
    }
    for (auto& c : children_) {
      if (old > 0 || current <= target_) break;
      if (c.retiring) continue;
      retire(c, now);
      --current;
      if (c.ready) --ready;
    }
    if (announce_ready_ && old == 0 && current == target_ && ready == target_) {
      announce_ready_ = false;
      log(LogLevel::kInfo, "Serving: %d worker%s up", ready, ready == 1 ? "" : "s");
      event(MasterEvent::kWorkersReady);
    }
    return false;
  }

  void on_message(const LinkMessage& m) {
    for (auto& c : children_) {
      if (c.pid != m.pid) continue;
      if (m.kind == LinkMessage::kReady) {
        c.ready = true;
        ever_ready_ = true;
      } else if (m.kind == LinkMessage::kRetireMe && !c.retiring && !c.old) {
        log(LogLevel::kInfo, "Worker %d reached max_requests; replacing it", static_cast<int>(c.pid));
        c.old = true;
      } else if (m.kind == LinkMessage::kReloadMe && !c.retiring && !c.old) {
        // The first current worker to see a change reloads; the others'
        // reports of the same change find themselves old already.
        reload();
      }
      return;
    }
  }

  uint64_t next_deadline(uint64_t now) const {
    uint64_t next = now + 1000;
    if (respawn_at_ > now) next = std::min(next, respawn_at_);
    for (auto& c : children_)
      if (c.kill_at != UINT64_MAX) next = std::min(next, std::max(c.kill_at, now));
    return next;
  }

  void check_deadlines(uint64_t now) {
    for (auto& c : children_) {
      if (now >= c.kill_at) {
        kill(c.pid, SIGKILL);
        c.kill_at = UINT64_MAX;
        continue;
      }
      if (config_.timeout_ms == 0 || c.aborted || c.retiring) continue;
      uint64_t beat = c.link->last_beat();
      if (now > beat && now - beat > config_.timeout_ms) {
        // The worker's SIGABRT handler writes the stack of every thread to
        // the log; the master's notice follows when the worker is reaped.
        c.aborted = true;
        c.kill_at = now + kAbortGraceMs;
        kill(c.pid, SIGABRT);
      }
    }
  }

  // Forks one worker. Returns true in the child, after worker_main returned.
  bool spawn(uint64_t now) {
    int age = ++age_;
    event(MasterEvent::kPreFork, age);
    auto link = std::make_unique<WorkerLink>(write_fd_, age, now);
    if (hooks_.before_fork) hooks_.before_fork();
    pid_t pid = fork();
    if (pid == 0) {
      // Die with the master: a worker whose master is gone would serve on
      // with nobody to restart or stop it. SIGKILL, not TERM: the master only
      // vanishes on a hard kill, and a worker stuck in the app would never
      // get to a TERM handler.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != master_pid_) _exit(0);
      ::close(read_fd_);
      // The master's mask again, but an operator's signal waits until the
      // worker can act on it (core/operator_signals.h; Worker::run unblocks).
      sigset_t boot = old_mask_;
      for (int s : kOperatorSignals) sigaddset(&boot, s);
      pthread_sigmask(SIG_SETMASK, &boot, nullptr);
      // The other workers' links were inherited; only this one is ours.
      WorkerLink* mine = link.release();
      for (auto& c : children_) c.link.reset();
      children_.clear();
      if (hooks_.after_fork_child) hooks_.after_fork_child();
      child_status_ = hooks_.worker_main(*mine);
      return true;
    }
    if (hooks_.after_fork_parent) hooks_.after_fork_parent();
    if (pid < 0) {
      log(LogLevel::kError, "fork failed: %s", strerror(errno));
      respawn_at_ = now + kRespawnPauseMs;
      return false;
    }
    Child c;
    c.pid = pid;
    c.link = std::move(link);
    c.started_ms = now;
    children_.push_back(std::move(c));
    log(LogLevel::kInfo, "Booting worker with pid: %d", static_cast<int>(pid));
    return false;
  }

  // Collects dead workers; manage() replaces them.
  void reap(uint64_t now) {
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == new_master_) {
        log(LogLevel::kWarning, "The new master %d exited; this master keeps serving", static_cast<int>(pid));
        new_master_ = 0;
        if (target_ == 0) target_ = config_.workers;
        continue;
      }
      auto it = std::find_if(children_.begin(), children_.end(), [pid](const Child& c) { return c.pid == pid; });
      if (it == children_.end()) continue;
      Child dead = std::move(*it);
      children_.erase(it);
      event(MasterEvent::kChildExit, pid, dead.link->age());
      on_exit(dead, status, now);
    }
  }

  void on_exit(const Child& dead, int status, uint64_t now) {
    int pid = static_cast<int>(dead.pid);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (dead.aborted) {
      log(LogLevel::kCritical,
          "WORKER TIMEOUT: worker %d did not come back from the application for %llu s "
          "(its threads' stacks are above); replacing it",
          pid, static_cast<unsigned long long>(config_.timeout_ms / 1000));
      return;
    }
    if (code == kWorkerBootError && !dead.retiring) {
      log(LogLevel::kCritical, "Worker %d failed to boot", pid);
      exit_status_ = kWorkerBootError;
      stop(SIGTERM, now + config_.graceful_ms + kKillMarginMs);
      return;
    }
    if (code == kAppLoadError && !dead.retiring) {
      if (!ever_ready_) {
        log(LogLevel::kCritical, "Worker %d failed to load the application; stopping", pid);
        exit_status_ = kAppLoadError;
        stop(SIGTERM, now + config_.graceful_ms + kKillMarginMs);
        return;
      }
      // A reload whose code does not load: the workers that serve now keep
      // serving (gunicorn's master would exit here).
      log(LogLevel::kError, "Worker %d failed to load the application; the running workers keep serving", pid);
      bool kept = false;
      for (auto& c : children_) {
        if (c.old && !c.retiring) {
          c.old = false;
          kept = true;
        }
      }
      if (kept && announce_ready_) {
        announce_ready_ = false;
        event(MasterEvent::kWorkersReady);
      }
      respawn_at_ = now + kRespawnPauseMs;
      return;
    }
    if (stopping_ || dead.retiring) {
      if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGQUIT &&
          WTERMSIG(status) != SIGKILL)
        log(LogLevel::kWarning, "Worker %d was killed by signal %d", pid, WTERMSIG(status));
      else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        log(LogLevel::kWarning, "Worker %d was still busy after the graceful timeout; killed", pid);
      return;
    }
    if (WIFSIGNALED(status))
      log(LogLevel::kError, "Worker %d was killed by signal %d (%s); restarting", pid, WTERMSIG(status),
          strsignal(WTERMSIG(status)));
    else
      log(LogLevel::kError, "Worker %d exited with status %d; restarting", pid, code);
    if (!dead.ready) respawn_at_ = now + kRespawnPauseMs;
  }

  MasterConfig config_;
  const MasterHooks& hooks_;
  std::list<Child> children_;
  sigset_t old_mask_{};
  pid_t master_pid_ = 0;
  int read_fd_ = -1, write_fd_ = -1;
  int target_ = 1;
  int age_ = 0;
  pid_t new_master_ = 0;
  bool stopping_ = false;
  bool ever_ready_ = false;
  bool announce_ready_ = true;
  uint64_t respawn_at_ = 0;
  int exit_status_ = 0;
  int child_status_ = 0;
};

}  // namespace

MasterResult run_master(const MasterConfig& config, const MasterHooks& hooks) {
  Master m(config, hooks);
  return m.run();
}

}  // namespace fulmen
