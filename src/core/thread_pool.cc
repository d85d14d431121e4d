#include "core/thread_pool.h"

#include <pthread.h>

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
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(s->mu);
      s->work.wait(lock, [&] { return s->stopping || !s->queue.empty(); });
      if (s->stopping) break;
      job = std::move(s->queue.front());
      s->queue.pop_front();
    }
    job->mark_started(clock->now_ms(), static_cast<unsigned long>(pthread_self()));
    handler->run_job(*job);
    job->mark_done();
  }
  handler->thread_end();
  std::lock_guard lock(s->mu);
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
  async_.data = this;
  state_->async = &async_;
}

ThreadPool::~ThreadPool() {
  stop();
  join(100);
}

void ThreadPool::start() {
  if (started_ || stopped_) return;
  started_ = true;
  std::lock_guard lock(state_->mu);
  for (size_t i = 0; i < threads_; ++i) {
    std::thread(thread_main, state_, &handler_, &clock_).detach();
    ++state_->alive;
  }
}

void ThreadPool::submit(std::shared_ptr<Job> job) {
  job->attach(state_);
  ++in_flight_;
  {
    std::lock_guard lock(state_->mu);
    state_->queue.push_back(std::move(job));
  }
  state_->work.notify_one();
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
}

bool ThreadPool::join(uint64_t ms) {
  std::unique_lock lock(state_->mu);
  return state_->left.wait_for(lock, std::chrono::milliseconds(ms), [&] { return state_->alive == 0; });
}

}  // namespace fulmen
