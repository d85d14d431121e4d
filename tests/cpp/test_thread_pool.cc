// Tests for src/core/thread_pool.{h,cc} (issue 10): jobs run on the pool's
// threads at the same time, their news reaches the loop, in_flight() counts
// them until their thread is done, and stop() returns while a thread is still
// busy (it finishes later and touches nothing freed).
#include <sys/socket.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "check.h"
#include "core/thread_pool.h"

using fulmen::Job;
using fulmen::JobLimits;
using fulmen::MonotonicClock;
using fulmen::ThreadPool;

namespace {

// Answers each job with its request line; holds every thread until `open`.
class Handler final : public fulmen::Handler {
 public:
  std::unique_ptr<fulmen::ResponseStream> handle(fulmen::Connection&, const fulmen::RequestHead&) override {
    return nullptr;
  }
  void run_job(Job& job) override {
    {
      std::unique_lock lock(mu);
      ++running;
      max_running = std::max(max_running, running);
      cv.notify_all();
      cv.wait(lock, [&] { return open; });
      --running;
    }
    std::string_view line = job.request_line();
    job.start_response("200 OK", 200);
    job.end_headers(static_cast<int64_t>(line.size()));
    job.write_body(line.data(), line.size());
    job.finish_response();
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  bool wait_running(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return running >= n; });
  }
  // Runs the loop (the pool wakes more threads from it when the running
  // ones make no progress) until n jobs run at once.
  bool loop_until_running(uv_loop_t* loop, int n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (running >= n) return true;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int running = 0;
  int max_running = 0;
};

std::shared_ptr<Job> make_job(int i) {
  fulmen::Job::Origin origin;
  std::string head = "GET /" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
  return std::make_shared<Job>(head, "", true, origin, false, JobLimits(), MonotonicClock::system());
}

}  // namespace

TEST(jobs_run_on_all_threads_and_their_news_reaches_the_loop) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Handler handler;
  int done = 0, slots = 0;
  std::vector<std::string> bodies;
  {
    ThreadPool pool(
        &loop, 4, 2, handler, MonotonicClock::system(),
        [&](Job& job) {
          std::vector<Job::Op> ops;
          std::string data;
          if (!job.take(ops, data)) return;
          ++done;
          for (auto& op : ops)
            if (op.kind == Job::Op::kCopy) bodies.push_back(data.substr(op.off, op.len));
        },
        [&] { ++slots; });
    pool.start();
    for (int i = 0; i < 6; ++i) pool.submit(make_job(i));
    CHECK(pool.saturated()) << "4 threads + 2 pending";
    CHECK_EQ(pool.in_flight(), 6u);
    CHECK(handler.loop_until_running(&loop, 4)) << "all four threads run at once once the first ones wait";
    handler.release();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (done < 6 && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ(done, 6);
    CHECK_EQ(pool.in_flight(), 0u);
    CHECK(!pool.saturated());
    CHECK(slots >= 1);
    CHECK_EQ(handler.max_running, 4);
    CHECK_EQ(bodies.size(), 6u);
    pool.stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(pool.join(5000));
  }
  CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(stop_returns_while_a_thread_is_busy) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Handler handler;
  {
    ThreadPool pool(
        &loop, 2, 0, handler, MonotonicClock::system(), [](Job&) {}, [] {});
    pool.start();
    auto job = make_job(1);
    pool.submit(job);
    pool.submit(make_job(2));
    pool.submit(make_job(3));  // Queued behind the two busy threads: dropped at stop.
    CHECK(handler.loop_until_running(&loop, 2));
    pool.stop();
    uv_run(&loop, UV_RUN_DEFAULT);  // The async handle closes; the loop can end.
    CHECK(!pool.join(50)) << "the busy threads are still in the app";
    job->cancel();  // Its connection went away.
    handler.release();
    CHECK(pool.join(5000)) << "they leave once done, posting to a stopped pool";
    CHECK(job->thread_done());
  }
  CHECK_EQ(uv_loop_close(&loop), 0);
}

CHECK_MAIN()
