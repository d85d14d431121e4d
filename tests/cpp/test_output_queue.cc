// Tests for src/core/output_queue.{h,cc}: order of mixed segments, partial
// writes against a small socket buffer, each Releaser called exactly once
// (written or dropped), bounded memory for a slow reader, files by sendfile
// and by the copy fallback.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "check.h"
#include "core/output_queue.h"

using fulmen::BufferPool;
using fulmen::OutputQueue;
using fulmen::Releaser;

namespace {

struct Pair {
  int w = -1, r = -1;
  explicit Pair(int sndbuf = 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    w = sv[0];
    r = sv[1];
    if (sndbuf > 0) setsockopt(w, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  ~Pair() {
    close(w);
    close(r);
  }
  std::string drain() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(r, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
};

void count(void* p) {
  ++*static_cast<int*>(p);
}

// A temporary file holding `content`; removed at once, the descriptor keeps it.
int temp_file(const std::string& content) {
  char path[] = "/tmp/fulmen-oq-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) std::abort();
  unlink(path);
  if (write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) std::abort();
  return fd;
}

}  // namespace

TEST(mixed_segments_leave_in_order) {
  BufferPool pool;
  Pair p;
  OutputQueue q(pool);
  int released = 0;
  static const char kRef[] = "REF";
  int fd = temp_file("0123456789");
  q.append_copy("head:", 5);
  q.append_ref(kRef, 3, Releaser{count, &released});
  q.append_copy(":", 1);
  q.append_file(fd, 2, 5, Releaser{count, &released});
  q.append_copy(":tail", 5);
  CHECK_EQ(q.size(), 19u);
  size_t written = 0;
  CHECK(q.write_to(p.w, &written) == OutputQueue::Result::kDone);
  CHECK_EQ(written, 19u);
  CHECK(q.empty());
  CHECK_EQ(p.drain(), "head:REF:23456:tail");
  CHECK_EQ(released, 2);
  close(fd);
}

TEST(partial_writes_resume_where_they_stopped) {
  BufferPool pool;
  Pair p(4096);
  OutputQueue q(pool);
  std::string expect;
  int released = 0;
  std::string big(300000, 'b');
  for (int i = 0; i < 50; ++i) {
    std::string piece = "piece " + std::to_string(i) + ";";
    q.append_copy(piece.data(), piece.size());
    expect += piece;
  }
  q.append_ref(big.data(), big.size(), Releaser{count, &released});
  expect += big;
  q.append_copy("end", 3);
  expect += "end";
  std::string got;
  int rounds = 0;
  for (;;) {
    size_t written = 0;
    auto r = q.write_to(p.w, &written);
    got += p.drain();
    ++rounds;
    if (r == OutputQueue::Result::kDone) break;
    CHECK(r == OutputQueue::Result::kAgain);
    if (rounds > 100000) break;
  }
  got += p.drain();
  CHECK(got == expect) << "got " << got.size() << " bytes, expected " << expect.size();
  CHECK(rounds > 1) << "the small socket buffer forced partial writes";
  CHECK_EQ(released, 1);
}

TEST(clear_releases_each_pending_segment_once) {
  BufferPool pool;
  int released = 0;
  {
    OutputQueue q(pool);
    static const char kA[] = "aaaa";
    q.append_ref(kA, 4, Releaser{count, &released});
    q.append_ref(kA, 4, Releaser{count, &released});
    q.append_copy("x", 1);
    q.clear();
    CHECK_EQ(released, 2);
    CHECK(q.empty());
    q.append_ref(kA, 4, Releaser{count, &released});
  }  // The destructor drops what is left.
  CHECK_EQ(released, 3);
}

TEST(empty_ranges_are_released_at_once) {
  BufferPool pool;
  OutputQueue q(pool);
  int released = 0;
  q.append_ref("", 0, Releaser{count, &released});
  q.append_file(-1, 0, 0, Releaser{count, &released});
  CHECK_EQ(released, 2);
  CHECK(q.empty());
}

TEST(a_slow_reader_keeps_the_copy_buffer_bounded) {
  BufferPool pool;
  Pair p(4096);
  OutputQueue q(pool);
  std::string chunk(8192, 'c');
  size_t total = 0, got = 0;
  // Queue 16 MiB in 8 KiB copies while the reader takes a little at a time:
  // the written prefix must be dropped as it goes.
  for (int i = 0; i < 2048; ++i) {
    q.append_copy(chunk.data(), chunk.size());
    total += chunk.size();
    size_t written = 0;
    q.write_to(p.w, &written);
    got += p.drain().size();
    CHECK(q.size() < 2u * 1024 * 1024) << "queued " << q.size();
  }
  for (int i = 0; i < 100000 && !q.empty(); ++i) {
    size_t written = 0;
    q.write_to(p.w, &written);
    got += p.drain().size();
  }
  CHECK_EQ(got, total);
}

TEST(a_file_shorter_than_queued_is_reported) {
  BufferPool pool;
  Pair p;
  OutputQueue q(pool);
  int released = 0;
  int fd = temp_file("short");
  q.append_file(fd, 0, 100, Releaser{count, &released});
  size_t written = 0;
  CHECK(q.write_to(p.w, &written) == OutputQueue::Result::kFileShort);
  CHECK_EQ(written, 5u);
  q.clear();
  CHECK_EQ(released, 1);
  close(fd);
}

TEST(a_file_that_cannot_be_spliced_is_copied) {
  // /proc files do not support sendfile on this kernel line (EINVAL); the
  // queue reads them with pread instead. If this kernel can splice it, the
  // test still checks that the bytes arrive.
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  if (fd < 0) return;
  char expect[256];
  ssize_t n = pread(fd, expect, sizeof expect, 0);
  CHECK(n > 0);
  if (n <= 0) return;
  BufferPool pool;
  Pair p;
  OutputQueue q(pool);
  q.append_file(fd, 0, static_cast<uint64_t>(n), Releaser{});
  size_t written = 0;
  CHECK(q.write_to(p.w, &written) == OutputQueue::Result::kDone);
  CHECK_EQ(p.drain(), std::string(expect, static_cast<size_t>(n)));
  close(fd);
}

TEST(a_failed_socket_is_an_error) {
  BufferPool pool;
  OutputQueue q(pool);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  close(sv[1]);
  q.append_copy("x", 1);
  size_t written = 0;
  CHECK(q.write_to(sv[0], &written) == OutputQueue::Result::kError);
  close(sv[0]);
}

CHECK_MAIN()
