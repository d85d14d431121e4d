#include "core/job.h"

#include <chrono>

#include "core/thread_pool.h"

namespace fulmen {

Job::Job(std::string_view head, std::string_view body, bool body_done, const Origin& origin, bool head_request,
         const JobLimits& limits, const MonotonicClock& clock)
    : head_(head),
      origin_(origin),
      head_request_(head_request),
      limits_(limits),
      clock_(clock),
      t_body_(body),
      t_body_done_(body_done),
      body_done_(body_done) {}

Job::~Job() {
  release_ops(ops_);
}

void Job::release_ops(std::vector<Op>& ops) {
  for (Op& op : ops) {
    op.release();
    op.release = Releaser{};
  }
  ops.clear();
}

bool Job::parse_head(RequestHead* out) const {
  return parse_request(head_.data(), head_.size(), out, limits_.limits) > 0;
}

std::string_view Job::request_line() const {
  std::string_view h = head_;
  size_t end = h.find_first_of("\r\n");
  return h.substr(0, end == std::string_view::npos ? h.size() : end);
}

// ---------------------------------------------------------------- the thread's side

void Job::record(Op op) {
  if (cancelled_.load(std::memory_order_acquire)) {
    op.release();
    return;
  }
  ops_.push_back(op);
}

void Job::post() {
  if (pool_) post_news(*pool_, shared_from_this());
}

std::string_view Job::body_available() const {
  return std::string_view(t_body_).substr(t_body_rd_);
}

void Job::body_consume(size_t n) {
  t_body_rd_ += std::min(n, t_body_.size() - t_body_rd_);
}

int Job::body_fill_blocking(uint64_t deadline_ms) {
  if (t_body_done_) return 0;
  if (t_body_error_) return -1;
  // The consumed bytes are not needed again: keep the buffer bounded.
  t_body_.erase(0, t_body_rd_);
  t_body_rd_ = 0;
  std::unique_lock lock(mu_);
  auto ready = [this] { return !incoming_.empty() || body_done_ || body_error_ || client_gone(); };
  if (!ready()) {
    // The loop reads more only when told (the window may have been full).
    lock.unlock();
    post();
    lock.lock();
    uint64_t now = clock_.now_ms();
    auto wait = std::chrono::milliseconds(deadline_ms > now ? deadline_ms - now : 0);
    if (!cv_.wait_for(lock, wait, ready)) {
      t_body_error_ = true;
      Op op{Op::kBodyFailed};
      op.code = 408;
      record(op);
      lock.unlock();
      post();
      return -1;
    }
  }
  if (client_gone() || (body_error_ && incoming_.empty())) {
    t_body_error_ = true;
    return -1;
  }
  size_t got = incoming_.size();
  t_body_.append(incoming_);
  incoming_.clear();
  t_body_done_ = body_done_;
  // The window has room again: the loop may read more of the body.
  bool wake = !t_body_done_ && !body_error_;
  lock.unlock();
  if (wake) post();
  return got > 0 ? 1 : 0;
}

void Job::start_response(std::string_view status, int code, bool app_server, bool app_date) {
  t_head_started_ = true;
  t_no_body_ = status_has_no_body(code);
  std::lock_guard lock(mu_);
  Op op{Op::kStart};
  op.code = code;
  op.app_server = app_server;
  op.app_date = app_date;
  op.off = data_.size();
  op.len = status.size();
  data_.append(status);
  record(op);
}

void Job::add_header(std::string_view name, std::string_view value) {
  std::lock_guard lock(mu_);
  Op op{Op::kHeader};
  op.off = data_.size();
  op.len = name.size();
  op.len2 = value.size();
  data_.append(name);
  data_.append(value);
  record(op);
}

void Job::add_header_block(std::string_view lines, int64_t content_length) {
  std::lock_guard lock(mu_);
  Op op{Op::kHeaderBlock};
  op.off = data_.size();
  op.len = lines.size();
  op.n = content_length;
  data_.append(lines);
  record(op);
}

void Job::end_headers(int64_t known_length) {
  std::lock_guard lock(mu_);
  Op op{Op::kEnd};
  op.n = known_length;
  record(op);
}

void Job::write_body(const char* data, size_t len) {
  std::lock_guard lock(mu_);
  Op op{Op::kCopy};
  op.off = data_.size();
  op.len = len;
  data_.append(data, len);
  pending_bytes_ += len;
  record(op);
}

void Job::write_body_ref(const char* data, size_t len, Releaser release) {
  std::lock_guard lock(mu_);
  Op op{Op::kRef};
  op.ptr = data;
  op.len = len;
  op.release = release;
  pending_bytes_ += len;
  record(op);
}

void Job::write_body_file(int file_fd, int64_t offset, int64_t len, Releaser release) {
  std::lock_guard lock(mu_);
  Op op{Op::kFile};
  op.fd = file_fd;
  op.n = offset;
  op.len = static_cast<size_t>(len);
  op.release = release;
  record(op);
}

void Job::finish_response() {
  std::lock_guard lock(mu_);
  record(Op{Op::kFinish});
}

void Job::abort_response() {
  std::lock_guard lock(mu_);
  record(Op{Op::kAbort});
}

void Job::send_error(int status) {
  t_head_started_ = true;
  std::lock_guard lock(mu_);
  Op op{Op::kError};
  op.code = status;
  record(op);
}

bool Job::push() {
  post();
  return !client_gone();
}

bool Job::output_congested() const {
  std::lock_guard lock(mu_);
  return pending_bytes_ + out_queued_ > limits_.high_water;
}

bool Job::wait_for_room() {
  std::unique_lock lock(mu_);
  auto room = [this] { return client_gone() || pending_bytes_ + out_queued_ <= limits_.high_water / 2; };
  if (cv_.wait_for(lock, std::chrono::milliseconds(limits_.send_ms), room)) return !client_gone();
  // The client stopped reading: the same end as a blocking write that
  // timed out on the loop (the connection is dropped).
  record(Op{Op::kFail});
  lock.unlock();
  post();
  return false;
}

// ---------------------------------------------------------------- the pool's side

void Job::mark_started(uint64_t now_ms, unsigned long thread_ident) {
  started_ms_.store(now_ms, std::memory_order_release);
  thread_ident_.store(thread_ident, std::memory_order_release);
  started_.store(true, std::memory_order_release);
}

void Job::mark_done() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  post();
}

// ---------------------------------------------------------------- the loop's side

bool Job::take(std::vector<Op>& ops, std::string& data) {
  ops.clear();
  data.clear();
  // What was taken counts as the connection's queued output (reported by
  // the next set_output_queued()), so a producer waiting for room is woken
  // there, once the loop knows how much of it the socket took.
  std::lock_guard lock(mu_);
  ops.swap(ops_);
  data.swap(data_);
  out_queued_ += pending_bytes_;
  pending_bytes_ = 0;
  return done_;
}

size_t Job::body_room() const {
  std::lock_guard lock(mu_);
  return incoming_.size() >= limits_.body_window ? 0 : limits_.body_window - incoming_.size();
}

void Job::feed_body(const char* data, size_t len) {
  if (len == 0) return;
  {
    std::lock_guard lock(mu_);
    incoming_.append(data, len);
  }
  cv_.notify_all();
}

void Job::end_body() {
  {
    std::lock_guard lock(mu_);
    body_done_ = true;
  }
  cv_.notify_all();
}

void Job::fail_body() {
  {
    std::lock_guard lock(mu_);
    body_error_ = true;
  }
  cv_.notify_all();
}

void Job::set_output_queued(size_t bytes) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    wake = out_queued_ != bytes;
    out_queued_ = bytes;
  }
  if (wake) cv_.notify_all();
}

void Job::cancel() {
  std::vector<Op> dropped;
  {
    std::lock_guard lock(mu_);
    cancelled_.store(true, std::memory_order_release);
    dropped.swap(ops_);
    data_.clear();
    pending_bytes_ = 0;
  }
  cv_.notify_all();
  owner = nullptr;
  release_ops(dropped);
}

}  // namespace fulmen
