#include "core/master.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/log.h"

namespace fulmen {
namespace {

uint64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

struct Child {
  pid_t pid;
  uint64_t started_ms;
  bool retiring;  // Sent TERM as part of a restart; not replaced when it exits.
};

class Master {
 public:
  Master(const MasterConfig& config, const MasterHooks& hooks) : config_(config), hooks_(hooks) {}

  MasterResult run() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGQUIT, SIGHUP}) sigaddset(&set, s);
    sigset_t old;
    // The master handles these signals synchronously with sigtimedwait, so
    // no handler ever runs in the middle of a fork.
    pthread_sigmask(SIG_BLOCK, &set, &old);
    old_mask_ = old;
    master_pid_ = getpid();
    log(LogLevel::kInfo, "Master %d starting %d worker%s", static_cast<int>(master_pid_), config_.workers,
        config_.workers == 1 ? "" : "s");

    for (int i = 0; i < config_.workers; ++i)
      if (spawn()) return {true, child_status_};

    for (;;) {
      struct timespec timeout = {1, 0};
      siginfo_t info;
      int sig = sigtimedwait(&set, &info, &timeout);
      uint64_t now = monotonic_ms();
      if (sig == SIGCHLD || sig < 0) {
        if (reap(now)) return {true, child_status_};
      } else if (sig == SIGTERM) {
        stop(SIGTERM, now + config_.graceful_ms);
      } else if (sig == SIGINT || sig == SIGQUIT) {
        stop(SIGQUIT, now + 2000);
      } else if (sig == SIGHUP && !stopping_) {
        log(LogLevel::kInfo, "Hang-up: restarting workers");
        for (auto& c : children_) {
          c.retiring = true;
          kill(c.pid, SIGTERM);
        }
        for (int i = 0; i < config_.workers; ++i)
          if (spawn()) return {true, child_status_};
      }
      if (stopping_) {
        if (live() == 0) break;
        if (now >= kill_at_) {
          for (auto& c : children_) kill(c.pid, SIGKILL);
          kill_at_ = UINT64_MAX;
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    log(LogLevel::kInfo, "Shutting down: master");
    return {false, exit_status_};
  }

 private:
  size_t live() const { return children_.size(); }

  void stop(int sig, uint64_t deadline) {
    if (!stopping_) log(LogLevel::kInfo, "Stopping (%s)", sig == SIGTERM ? "graceful" : "immediate");
    stopping_ = true;
    kill_at_ = std::min(kill_at_, deadline);
    for (auto& c : children_) kill(c.pid, sig);
  }

  // Forks one worker. Returns true in the child, after worker_main returned.
  bool spawn() {
    if (hooks_.before_fork) hooks_.before_fork();
    pid_t pid = fork();
    if (pid == 0) {
      // Die with the master: a worker whose master is gone would serve on
      // with nobody to restart or stop it. SIGKILL, not TERM: the master only
      // vanishes on a hard kill, and a worker stuck in the app would never
      // get to a TERM handler.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != master_pid_) _exit(0);
      pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
      if (hooks_.after_fork_child) hooks_.after_fork_child();
      child_status_ = hooks_.worker_main();
      return true;
    }
    if (hooks_.after_fork_parent) hooks_.after_fork_parent();
    if (pid < 0) {
      log(LogLevel::kError, "fork failed: %s", strerror(errno));
      return false;
    }
    children_.push_back({pid, monotonic_ms(), false});
    log(LogLevel::kInfo, "Booting worker with pid: %d", static_cast<int>(pid));
    return false;
  }

  // Collects dead workers and replaces them. Returns true in a new child.
  bool reap(uint64_t now) {
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      Child dead{};
      bool known = false;
      for (auto it = children_.begin(); it != children_.end(); ++it) {
        if (it->pid == pid) {
          dead = *it;
          known = true;
          children_.erase(it);
          break;
        }
      }
      if (!known) continue;
      if (WIFEXITED(status) && WEXITSTATUS(status) == kWorkerBootError) {
        log(LogLevel::kCritical, "Worker %d failed to boot", static_cast<int>(pid));
        exit_status_ = kWorkerBootError;
        stop(SIGTERM, now + config_.graceful_ms);
        continue;
      }
      if (stopping_ || dead.retiring) {
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGQUIT &&
            WTERMSIG(status) != SIGKILL)
          log(LogLevel::kWarning, "Worker %d was killed by signal %d", static_cast<int>(pid), WTERMSIG(status));
        continue;
      }
      if (WIFSIGNALED(status))
        log(LogLevel::kError, "Worker %d was killed by signal %d (%s); restarting", static_cast<int>(pid),
            WTERMSIG(status), strsignal(WTERMSIG(status)));
      else
        log(LogLevel::kError, "Worker %d exited with status %d; restarting", static_cast<int>(pid),
            WEXITSTATUS(status));
      if (now - dead.started_ms < 1000) {
        // Dying at once, again and again, must not become a fork storm.
        struct timespec pause = {1, 0};
        nanosleep(&pause, nullptr);
      }
      if (spawn()) return true;
    }
    return false;
  }

  MasterConfig config_;
  const MasterHooks& hooks_;
  std::vector<Child> children_;
  sigset_t old_mask_{};
  pid_t master_pid_ = 0;
  bool stopping_ = false;
  uint64_t kill_at_ = UINT64_MAX;
  int exit_status_ = 0;
  int child_status_ = 0;
};

}  // namespace

MasterResult run_master(const MasterConfig& config, const MasterHooks& hooks) {
  Master m(config, hooks);
  return m.run();
}

}  // namespace fulmen
