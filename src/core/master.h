// The master process (issue 8): forks the workers, keeps their number, and
// turns signals into orderly changes. It serves no requests itself.
//
// Signals, as gunicorn's arbiter:
//   TERM        graceful stop: workers stop accepting and finish what is in
//               flight within graceful_ms, then the master exits 0.
//   INT, QUIT   immediate stop.
//   HUP         reload: hooks.reload() re-reads the settings, new workers are
//               started, and each time one is ready an old one retires. When
//               the new workers cannot load the application, the old ones
//               keep serving.
//   TTIN, TTOU  one worker more, one fewer.
//   USR1        reopen the log file (master, then every worker).
//   USR2        hooks.event(kReexec): a new master from the new code.
//   WINCH       stop every worker, the master stays (after USR2 only).
//   CHLD        reap; a worker that died is replaced.
// Any other signal an operator may send is logged and ignored.
//
// Workers report on a pipe (WorkerLink): "ready" once they accept, "retire
// me" when they reached max_requests, and "reload" when a watched source
// file changed (--reload: as HUP). A worker whose heartbeat is
// older than timeout_ms gets SIGABRT (it dumps its stacks), then SIGKILL.
#pragma once

#include <cstdint>
#include <functional>

#include "core/worker_link.h"

namespace fulmen {

struct MasterConfig {
  int workers = 1;
  uint64_t graceful_ms = 30000;
  uint64_t timeout_ms = 30000;  // No loop turn for this long: killed. 0: never.
  bool daemon = false;          // WINCH applies without a USR2 first.
};

// What the master tells the embedding side. a and b depend on the event.
enum class MasterEvent {
  kPreFork,         // a = the new worker's age. Before fork().
  kWorkersReady,    // Every worker of the current settings is ready (first start, after a reload).
  kReloading,       // HUP received, before hooks.reload().
  kStopping,        // A stop began.
  kChildExit,       // a = pid, b = age. A worker was reaped.
  kWorkersChanged,  // a = new number, b = old number (TTIN, TTOU, reload).
  kReexec,          // USR2: start a new master. a = 1 when it did (hooks set it via reexec_pid).
};

struct MasterHooks {
  std::function<void()> before_fork;        // In the master, before each fork().
  std::function<void()> after_fork_parent;  // In the master, after each fork().
  std::function<void()> after_fork_child;   // In the new worker, first thing.
  // In the new worker: serve, return the exit status. The link is the
  // worker's end of its channel; it lives until the process exits.
  std::function<int(WorkerLink& link)> worker_main;
  // In the master on HUP: fills config from the re-read settings. Returns
  // false (having logged why) to keep the workers and settings as they are.
  std::function<bool(MasterConfig& config)> reload;
  // In the master: what happened. Returns the pid of a process the master
  // must not mistake for a worker (kReexec: the new master), else 0.
  std::function<int(MasterEvent event, int a, int b)> event;
};

struct MasterResult {
  bool is_worker;  // true in a worker process whose worker_main returned
  int status;      // exit status for this process
};

// Exit status of a worker that could not start serving; the master then
// stops everything and exits with it (gunicorn's WORKER_BOOT_ERROR).
inline constexpr int kWorkerBootError = 3;
// Exit status of a worker whose application failed to load (its traceback
// is already logged). Before any worker was ready the master stops and
// exits with it; after, the workers already running keep serving.
inline constexpr int kAppLoadError = 4;

// Runs the master loop. Returns in the master when it stops, and in each
// worker when its worker_main returns. Never throws.
MasterResult run_master(const MasterConfig& config, const MasterHooks& hooks);

}  // namespace fulmen
