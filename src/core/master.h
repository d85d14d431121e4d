// The master process: forks the workers, restarts any that dies, and turns
// signals into orderly shutdowns. It serves no requests itself.
//
// Signals (as gunicorn): TERM graceful stop (workers finish in-flight
// responses, up to graceful_ms), INT and QUIT immediate stop, HUP graceful
// restart of every worker, CHLD reap and respawn.
#pragma once

#include <cstdint>
#include <functional>

namespace fulmen {

struct MasterConfig {
  int workers = 1;
  uint64_t graceful_ms = 30000;
};

struct MasterHooks {
  std::function<void()> before_fork;        // In the master, before each fork().
  std::function<void()> after_fork_parent;  // In the master, after each fork().
  std::function<void()> after_fork_child;   // In the new worker, first thing.
  std::function<int()> worker_main;         // In the new worker: serve, return exit status.
};

struct MasterResult {
  bool is_worker;  // true in a worker process whose worker_main returned
  int status;      // exit status for this process
};

// Exit status of a worker that could not start serving; the master then
// stops everything and exits with it (gunicorn's WORKER_BOOT_ERROR).
inline constexpr int kWorkerBootError = 3;

// Runs the master loop. Returns in the master when it stops, and in each
// worker when its worker_main returns. Never throws.
MasterResult run_master(const MasterConfig& config, const MasterHooks& hooks);

}  // namespace fulmen
