#include "core/output_queue.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

namespace fulmen {
namespace {

constexpr size_t kMaxIov = 64;
// One sendfile call moves at most this much, so one large file cannot keep
// the loop from other connections for long.
constexpr uint64_t kFileChunk = 1 << 21;
// The copy fallback for files that cannot be spliced reads this much a turn.
constexpr size_t kCopyChunk = 65536;
// The written prefix of the queue is dropped past these sizes, so a long
// response to a slow reader stays bounded.
constexpr size_t kCompactSegments = 64;
constexpr size_t kCompactBytes = 256 * 1024;

}  // namespace

void OutputQueue::append_copy(const char* data, size_t len) {
  if (len == 0) return;
  if (!buf_.allocated()) pool_.acquire(buf_);
  size_t off = buf_.size();
  buf_.append(data, len);
  queued_ += len;
  if (head_ < segs_.size()) {
    Segment& last = segs_.back();
    if (last.kind == Segment::kCopy && last.off + last.len == off) {
      last.len += len;
      return;
    }
  }
  segs_.push_back({Segment::kCopy, -1, nullptr, off, len, {}});
}

void OutputQueue::append_ref(const char* data, size_t len, Releaser release) {
  if (len == 0) {
    release();
    return;
  }
  segs_.push_back({Segment::kRef, -1, data, 0, len, release});
  queued_ += len;
}

void OutputQueue::append_file(int file_fd, uint64_t offset, uint64_t len, Releaser release) {
  if (len == 0) {
    release();
    return;
  }
  segs_.push_back({Segment::kFile, file_fd, nullptr, offset, len, release});
  queued_ += len;
}

// sendfile(2), or where the file system cannot splice (EINVAL, ENOSYS: some
// FUSE and proc files) a pread into a bounce buffer and a send. Either way the
// bytes come from the file's offset, not its position, so a partial send is
// simply read again next time.
ssize_t OutputQueue::write_file(int fd, Segment& s) {
  if (!s.copy) {
    auto off = static_cast<off_t>(s.off);
    ssize_t n = ::sendfile(fd, s.file_fd, &off, static_cast<size_t>(std::min(s.len, kFileChunk)));
    if (n >= 0 || (errno != EINVAL && errno != ENOSYS)) return n;
    s.copy = true;  // The file will not splice later either.
  }
  char bounce[kCopyChunk];
  ssize_t got = ::pread(s.file_fd, bounce, static_cast<size_t>(std::min<uint64_t>(s.len, sizeof bounce)),
                        static_cast<off_t>(s.off));
  if (got <= 0) return got;
  return ::send(fd, bounce, static_cast<size_t>(got), MSG_NOSIGNAL);
}

OutputQueue::Result OutputQueue::write_to(int fd, size_t* written) {
  *written = 0;
  while (head_ < segs_.size()) {
    Segment& s = segs_[head_];
    ssize_t n;
    if (s.kind == Segment::kFile) {
      n = write_file(fd, s);
      if (n == 0) return Result::kFileShort;
    } else {
      struct iovec iov[kMaxIov];
      int cnt = 0;
      size_t i = head_;
      for (; i < segs_.size() && cnt < static_cast<int>(kMaxIov); ++i) {
        const Segment& t = segs_[i];
        if (t.kind == Segment::kFile) break;
        iov[cnt].iov_base = const_cast<char*>(t.kind == Segment::kCopy ? buf_.data() + t.off : t.ptr);
        iov[cnt].iov_len = t.len;
        ++cnt;
      }
      if (i < segs_.size() && segs_[i].kind == Segment::kFile) {
        // A file follows (a response head before its sendfile body): MSG_MORE
        // lets the kernel send them in the same segments, as nginx's
        // tcp_nopush does, instead of a small packet for the head alone.
        struct msghdr msg = {};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(cnt);
        n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_MORE);
      } else {
        n = cnt == 1 ? ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL) : ::writev(fd, iov, cnt);
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        compact();
        return Result::kAgain;
      }
      return Result::kError;
    }
    *written += static_cast<size_t>(n);
    advance(static_cast<size_t>(n));
  }
  segs_.clear();
  head_ = 0;
  queued_ = 0;
  buf_.clear();
  return Result::kDone;
}

void OutputQueue::advance(size_t n) {
  queued_ -= n;
  while (n > 0 && head_ < segs_.size()) {
    Segment& t = segs_[head_];
    if (n >= t.len) {
      n -= static_cast<size_t>(t.len);
      Releaser r = t.release;
      t.release = {};
      ++head_;
      r();
    } else {
      t.len -= n;
      t.off += n;
      if (t.kind == Segment::kRef) t.ptr += n;
      n = 0;
    }
  }
}

void OutputQueue::compact() {
  if (head_ < kCompactSegments && buf_.size() < kCompactBytes) return;
  size_t dead = buf_.size();
  for (size_t i = head_; i < segs_.size(); ++i)
    if (segs_[i].kind == Segment::kCopy) {
      dead = static_cast<size_t>(segs_[i].off);
      break;
    }
  if (dead > 0) {
    buf_.consume_front(dead);
    for (size_t i = head_; i < segs_.size(); ++i)
      if (segs_[i].kind == Segment::kCopy) segs_[i].off -= dead;
  }
  segs_.erase(segs_.begin(), segs_.begin() + static_cast<std::ptrdiff_t>(head_));
  head_ = 0;
}

void OutputQueue::clear() {
  // Releasers may run code that queues nothing here (they belong to the app
  // side), but take the list first so the queue is consistent meanwhile.
  std::vector<Segment> pending;
  pending.swap(segs_);
  size_t first = head_;
  head_ = 0;
  queued_ = 0;
  buf_.clear();
  for (size_t i = first; i < pending.size(); ++i) pending[i].release();
}

void OutputQueue::release_memory() {
  if (queued_ == 0) pool_.release(buf_);
}

}  // namespace fulmen
