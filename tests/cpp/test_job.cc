// Tests for src/core/job.{h,cc}: the hand-off between a pool thread and the
// loop (issue 10). Ops come out in order with their text; a cancelled job
// releases every reference exactly once; body bytes fed by one thread wake a
// reader on another; a producer waits for room, bounded by send_ms.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "core/job.h"

using fulmen::Job;
using fulmen::JobLimits;
using fulmen::MonotonicClock;
using fulmen::Releaser;

namespace {

void count(void* p) {
  ++*static_cast<int*>(p);
}

std::shared_ptr<Job> make_job(std::string_view body = "", bool body_done = true, JobLimits limits = JobLimits()) {
  fulmen::Job::Origin origin;
  return std::make_shared<Job>("GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n", body, body_done, origin, false, limits,
                               MonotonicClock::system());
}

}  // namespace

TEST(ops_come_out_in_order_with_their_text) {
  auto job = make_job();
  fulmen::RequestHead head;
  CHECK(job->parse_head(&head));
  CHECK(head.path == "/x");
  CHECK(job->request_line() == "GET /x?y HTTP/1.1");
  job->start_response("200 OK", 200);
  job->add_header("Content-Type", "text/plain");
  job->end_headers(5);
  job->write_body("hello", 5);
  job->finish_response();
  CHECK(job->head_started());
  std::vector<Job::Op> ops;
  std::string data;
  CHECK(!job->take(ops, data)) << "not done before mark_done()";
  CHECK_EQ(ops.size(), 5u);
  if (ops.size() != 5) return;
  CHECK(ops[0].kind == Job::Op::kStart && data.substr(ops[0].off, ops[0].len) == "200 OK" && ops[0].code == 200);
  CHECK(ops[1].kind == Job::Op::kHeader && data.substr(ops[1].off, ops[1].len) == "Content-Type" &&
        data.substr(ops[1].off + ops[1].len, ops[1].len2) == "text/plain");
  CHECK(ops[2].kind == Job::Op::kEnd && ops[2].n == 5);
  CHECK(ops[3].kind == Job::Op::kCopy && data.substr(ops[3].off, ops[3].len) == "hello");
  CHECK(ops[4].kind == Job::Op::kFinish);
  job->mark_done();
  CHECK(job->take(ops, data)) << "done once the thread is";
  CHECK(ops.empty());
}

TEST(a_cancelled_job_releases_each_reference_once) {
  int released = 0;
  {
    auto job = make_job();
    job->write_body_ref("abc", 3, Releaser{count, &released});
    job->cancel();
    CHECK_EQ(released, 1) << "pending ops are dropped at cancel";
    CHECK(job->client_gone());
    CHECK(!job->push());
    job->write_body_ref("def", 3, Releaser{count, &released});
    CHECK_EQ(released, 2) << "ops recorded after cancel are released at once";
    job->write_body_ref("ghi", 3, Releaser{count, &released});
  }
  CHECK_EQ(released, 3);
  {
    auto job = make_job();
    job->write_body_ref("abc", 3, Releaser{count, &released});
  }
  CHECK_EQ(released, 4) << "a job destroyed with untaken ops releases them";
}

TEST(body_fed_by_the_loop_wakes_the_reader) {
  auto job = make_job("first-", false);
  CHECK(job->body_available() == "first-");
  job->body_consume(6);
  std::thread loop([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    job->feed_body("second", 6);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    job->end_body();
  });
  CHECK_EQ(job->body_fill_blocking(job->body_read_deadline()), 1);
  CHECK(job->body_available() == "second");
  job->body_consume(6);
  CHECK_EQ(job->body_fill_blocking(job->body_read_deadline()), 0);
  CHECK(job->body_complete());
  loop.join();
}

TEST(a_stalled_body_times_out_with_408) {
  JobLimits limits;
  limits.body_ms = 50;
  auto job = make_job("", false, limits);
  auto t0 = std::chrono::steady_clock::now();
  CHECK_EQ(job->body_fill_blocking(job->body_read_deadline()), -1);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(40));
  CHECK(job->body_failed());
  std::vector<Job::Op> ops;
  std::string data;
  job->take(ops, data);
  CHECK(ops.size() == 1 && ops[0].kind == Job::Op::kBodyFailed && ops[0].code == 408);
}

TEST(a_body_that_failed_on_the_loop_fails_the_read) {
  auto job = make_job("", false);
  job->fail_body();
  CHECK_EQ(job->body_fill_blocking(job->body_read_deadline()), -1);
  CHECK(job->body_failed());
}

TEST(a_producer_waits_for_room_until_the_loop_drains) {
  JobLimits limits;
  limits.high_water = 1000;
  limits.send_ms = 5000;
  auto job = make_job("", true, limits);
  std::string block(800, 'x');
  job->write_body(block.data(), block.size());
  job->write_body(block.data(), block.size());
  CHECK(job->output_congested());
  std::atomic<bool> drained{false};
  std::thread loop([&] {
    std::vector<Job::Op> ops;
    std::string data;
    job->take(ops, data);
    job->set_output_queued(1600);  // Taken, but the socket has not taken it yet.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    drained = true;
    job->set_output_queued(0);
  });
  CHECK(job->wait_for_room());
  CHECK(drained.load()) << "woken only once the output drained";
  loop.join();
}

TEST(a_producer_whose_client_never_reads_gives_up_after_send_ms) {
  JobLimits limits;
  limits.high_water = 100;
  limits.send_ms = 50;
  auto job = make_job("", true, limits);
  std::string block(200, 'x');
  job->write_body(block.data(), block.size());
  CHECK(!job->wait_for_room());
  std::vector<Job::Op> ops;
  std::string data;
  job->take(ops, data);
  CHECK(ops.size() == 2 && ops[1].kind == Job::Op::kFail) << "the connection is told to drop the client";
}

CHECK_MAIN()
