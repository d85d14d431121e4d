// A worker's pool of threads that run the app (--threads N > 1, issue 10).
//
// The loop thread submits jobs (submit()); N threads take them in order and
// run them through Handler::run_job(). Whatever a thread has for the loop
// (recorded response ops, a request for more body, the end of the job) is
// posted: the job goes on a ready list, and the loop is woken with one
// uv_async_send for however many jobs became ready meanwhile (libuv
// coalesces the sends; the list is swapped out whole under one lock). The
// loop then calls on_news for each ready job, and on_slots once after them.
//
// Waking threads: see submit() and dispatch() in thread_pool.cc (a thread is
// woken per job only while the running ones make no progress, and only at the
// end of the loop turn that queued the job).
//
// Back-pressure: in_flight() counts the jobs submitted whose thread has not
// finished (also those whose connection is gone: their thread is still
// busy); saturated() says the worker should stop starting requests.
//
// Lifetime: the threads are detached and share the queues with the pool
// (PoolState, reference-counted), so a thread stuck in the app never blocks
// the worker's exit. stop() closes the async handle (the loop may then end)
// and tells the threads to leave once their job is done; the Handler must
// outlive the threads (the worker process _exit()s, tests wait for them).
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>

#include "core/handler.h"
#include "core/job.h"
#include "core/monotonic_clock.h"

namespace fulmen {

struct PoolState;

// Puts job on the loop's ready list and wakes the loop; from any thread.
// Does nothing after the pool stopped.
void post_news(PoolState& pool, std::shared_ptr<Job> job);

class ThreadPool {
 public:
  using NewsFn = std::function<void(Job&)>;
  using SlotsFn = std::function<void()>;

  // max_pending: jobs that may wait for a thread beyond the N running.
  ThreadPool(uv_loop_t* loop, size_t threads, size_t max_pending, Handler& handler, const MonotonicClock& clock,
             NewsFn on_news, SlotsFn on_slots);
  // stop(), then waits briefly for idle threads to leave. The loop must have
  // run since stop() (the async handle's close).
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void start();  // Starts the threads; once.
  // Queues job for the next free thread. Loop thread only.
  void submit(std::shared_ptr<Job> job);
  size_t threads() const { return threads_; }
  size_t in_flight() const { return in_flight_; }
  bool saturated() const { return in_flight_ >= threads_ + max_pending_; }
  // Closes the async handle and releases the threads; queued jobs that no
  // thread took are dropped. Loop thread only; idempotent.
  void stop();
  // Waits up to ms for every thread to leave (tests). Returns true if they did.
  bool join(uint64_t ms);

 private:
  static void on_async(uv_async_t* handle);
  void drain();
  void dispatch();  // Wakes threads for jobs the running ones leave waiting.

  static constexpr uint64_t kRecheckMs = 1;

  uv_loop_t* loop_;
  size_t threads_;
  size_t max_pending_;
  Handler& handler_;
  const MonotonicClock& clock_;
  NewsFn on_news_;
  SlotsFn on_slots_;
  std::shared_ptr<PoolState> state_;
  // Closed by stop(); the loop runs their close before the pool is destroyed.
  uv_async_t async_;
  uv_check_t check_;    // dispatch() after every poll.
  uv_timer_t recheck_;  // dispatch() again while jobs wait.
  uv_idle_t kick_;      // Active while a wake waits for dispatch(): the poll then does not block.
  uint64_t last_taken_ = 0;
  uint64_t last_progress_ms_ = 0;  // When a thread last took a job (or none waited).
  size_t in_flight_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace fulmen
