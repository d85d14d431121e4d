// The channel between the master and one worker process (issue 8): a
// heartbeat in shared memory that the worker's loop stamps each turn, and a
// pipe on which the worker tells the master that it is ready or that it
// wants to be replaced (max_requests).
//
// The master creates the link before fork(); the worker uses it and never
// frees it; the master unmaps it once the worker is reaped.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace fulmen {

// One message on the master's pipe. Eight bytes, under PIPE_BUF, so writes
// from several workers never interleave.
struct LinkMessage {
  // kReloadMe: a watched source file changed (--reload).
  enum Kind : int32_t { kReady = 1, kRetireMe = 2, kReloadMe = 3 };
  int32_t pid;
  int32_t kind;
};

class WorkerLink {
 public:
  // Maps the shared heartbeat (stamped with now_ms). notify_fd is the write
  // end of the master's pipe; the link does not own it. Aborts the process
  // (out_of_memory) when the mapping fails.
  WorkerLink(int notify_fd, int age, uint64_t now_ms);
  ~WorkerLink();
  WorkerLink(const WorkerLink&) = delete;
  WorkerLink& operator=(const WorkerLink&) = delete;

  // The worker's number, counted from 1 in the order the master forked them
  // (gunicorn's worker.age).
  int age() const { return age_; }

  // In the worker: stamps the heartbeat. One relaxed store; called once per
  // loop turn.
  void beat(uint64_t now_ms) { shared_->beat_ms.store(now_ms, std::memory_order_relaxed); }
  // In the master: the last stamp.
  uint64_t last_beat() const { return shared_->beat_ms.load(std::memory_order_relaxed); }

  // In the worker: writes one message for the master. Returns false when the
  // master's end is gone (the worker is then an orphan about to be killed).
  bool send(LinkMessage::Kind kind) const;

  // In the master: reads one message from the pipe's non-blocking read end.
  // Returns false when none is waiting.
  static bool receive(int read_fd, LinkMessage* out);

 private:
  struct Shared {
    std::atomic<uint64_t> beat_ms;
  };
  Shared* shared_;
  int notify_fd_;
  int age_;
};

}  // namespace fulmen
