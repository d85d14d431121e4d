#include "core/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace fulmen {

// What the pool shares with its threads and its jobs. It outlives the pool
// when a thread is still busy in the app at stop().
struct PoolState {
  std::mutex mu;
  std::condition_variable work;  // A job was queued, or the pool stops.
  std::condition_variable left;  // A thread left.
  std::deque<std::shared_ptr<Job>> queue;
  std::vector<std::shared_ptr<Job>> ready;
  uv_async_t* async = nullptr;  // nullptr once stopped: nothing wakes the loop any more.
  bool stopping = false;
  size_t alive = 0;
  size_t idle = 0;     // Threads waiting for a job.
  size_t running = 0;  // Threads in a job.
  uint64_t taken = 0;  // Jobs taken by threads so far.
};

void post_news(PoolState& pool, std::shared_ptr<Job> job) {
  std::lock_guard lock(pool.mu);
  if (pool.async == nullptr || job->scheduled) return;
  job->scheduled = true;
  pool.ready.push_back(std::move(job));
  // One wake-up for a whole list: the loop swaps it out at once, and libuv
  // itself skips the eventfd write while a send is pending.
  if (pool.ready.size() == 1) uv_async_send(pool.async);
}

namespace {

void thread_main(std::shared_ptr<PoolState> s, Handler* handler, const MonotonicClock* clock) {
  handler->thread_begin();
  std::unique_lock lock(s->mu);
  for (;;) {
    if (s->queue.empty() && !s->stopping) {
      // Out of work: let go of what the handler kept between jobs (the GIL).
      lock.unlock();
      handler->thread_idle();
      lock.lock();
    }
    ++s->idle;
    s->work.wait(lock, [&] { return s->stopping || !s->queue.empty(); });
    --s->idle;
    if (s->stopping) break;
    std::shared_ptr<Job> job = std::move(s->queue.front());
    s->queue.pop_front();
    ++s->running;
    ++s->taken;
    lock.unlock();
    job->mark_started(clock->now_ms(), static_cast<unsigned long>(pthread_self()));
    handler->run_job(*job);
    job->mark_done();
    job.reset();
    lock.lock();
    --s->running;
  }
  lock.unlock();
  handler->thread_idle();
  handler->thread_end();
  lock.lock();
  --s->alive;
  s->left.notify_all();
}

}  // namespace

ThreadPool::ThreadPool(uv_loop_t* loop, size_t threads, size_t max_pending, Handler& handler,
                       const MonotonicClock& clock, NewsFn on_news, SlotsFn on_slots)
    : loop_(loop),
      threads_(threads),
      max_pending_(max_pending),
      handler_(handler),
      clock_(clock),
      on_news_(std::move(on_news)),
      on_slots_(std::move(on_slots)),
      state_(std::make_shared<PoolState>()) {
  uv_async_init(loop_, &async_, on_async);
  uv_check_init(loop_, &check_);
  uv_timer_init(loop_, &recheck_);
  uv_idle_init(loop_, &kick_);
  async_.data = check_.data = recheck_.data = kick_.data = this;
  state_->async = &async_;
}

ThreadPool::~ThreadPool() {
  stop();
  join(100);
}

void ThreadPool::start() {
  if (started_ || stopped_) return;
  started_ = true;
  uv_check_start(&check_, [](uv_check_t* h) { static_cast<ThreadPool*>(h->data)->dispatch(); });
  std::lock_guard lock(state_->mu);
  for (size_t i = 0; i < threads_; ++i) {
    std::thread(thread_main, state_, &handler_, &clock_).detach();
    ++state_->alive;
  }
}

// A thread is woken for a job only when none is running, and not here but in
// dispatch(), at the end of the loop turn: woken here, on a shared core it
// would preempt the loop at once, run this one job, find no other and sleep,
// a switch each way per request (perf: half the worker's CPU in
// finish_task_switch under hello load with --threads 4); woken after the
// turn, it finds every job the turn queued. Otherwise the job
// waits for a running thread to finish (with the GIL, one thread that goes
// from job to job serves an app that does not wait fastest: no wake-up and
// no GIL hand-off per request), and dispatch() wakes more threads on the
// loop turn after the running ones made no progress for kRecheckMs (they
// wait: a database, a sleep); a timer looks again while jobs wait.
void ThreadPool::submit(std::shared_ptr<Job> job) {
  job->attach(state_);
  ++in_flight_;
  bool wake;
  {
    std::lock_guard lock(state_->mu);
    state_->queue.push_back(std::move(job));
    wake = state_->running == 0;
  }
  // The check phase of this turn wakes it; the idle handle keeps a submit
  // from a timer callback from waiting in the poll until then.
  if (wake) uv_idle_start(&kick_, [](uv_idle_t*) {});  // No-op when already active.

  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&recheck_))) {
    // The loop may have nothing else to wake it: dispatch() looks soon.
    uv_timer_start(
        &recheck_, [](uv_timer_t* t) { static_cast<ThreadPool*>(t->data)->dispatch(); }, kRecheckMs, 0);
  }
}

void ThreadPool::dispatch() {
  uv_idle_stop(&kick_);  // No-op when inactive.
  size_t wake = 0;
  bool waiting;
  uint64_t now = clock_.now_ms();
  {
    std::lock_guard lock(state_->mu);
    waiting = !state_->queue.empty();
    if (state_->taken != last_taken_ || !waiting) {
      last_taken_ = state_->taken;
      last_progress_ms_ = now;
    }
    // Jobs wait and no thread has taken one for kRecheckMs: the running
    // threads wait on something, so idle ones take over. (Sooner would wake
    // threads to fight over the GIL while one goes from job to job.)
    if (waiting) {
      bool stuck = now - last_progress_ms_ >= kRecheckMs;
      wake = stuck ? std::min(state_->queue.size(), state_->idle) : (state_->running == 0 ? 1 : 0);
      if (stuck) last_progress_ms_ = now;
    }
  }
  for (size_t i = 0; i < wake; ++i) state_->work.notify_one();
  // Look again soon even if nothing else wakes the loop.
  if (waiting && !uv_is_active(reinterpret_cast<uv_handle_t*>(&recheck_)))
    uv_timer_start(
        &recheck_, [](uv_timer_t* t) { static_cast<ThreadPool*>(t->data)->dispatch(); }, kRecheckMs, 0);
}

void ThreadPool::on_async(uv_async_t* handle) {
  static_cast<ThreadPool*>(handle->data)->drain();
}

void ThreadPool::drain() {
  std::vector<std::shared_ptr<Job>> ready;
  {
    std::lock_guard lock(state_->mu);
    ready.swap(state_->ready);
    for (auto& job : ready) job->scheduled = false;
  }
  bool freed = false;
  for (auto& job : ready) {
    on_news_(*job);
    // take() inside on_news saw the end when the thread had finished; a job
    // whose connection is gone is counted here all the same.
    if (!job->counted && job->thread_done()) {
      job->counted = true;
      --in_flight_;
      freed = true;
    }
  }
  if (freed) on_slots_();
}

void ThreadPool::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
    state_->async = nullptr;
    dropped.swap(state_->queue);
    state_->ready.clear();
  }
  state_->work.notify_all();
  for (auto& job : dropped) job->cancel();
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&recheck_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&kick_), nullptr);
}

bool ThreadPool::join(uint64_t ms) {
  std::unique_lock lock(state_->mu);
  return state_->left.wait_for(lock, std::chrono::milliseconds(ms), [&] { return state_->alive == 0; });
}

}  // namespace fulmen
