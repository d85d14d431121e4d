// A connection's queued response bytes, in order: copies (in one owned
// buffer), references to memory owned by someone else (zero-copy bodies), and
// file ranges (sendfile).
//
// Ownership: copied bytes live in the queue's buffer, borrowed from the
// worker's BufferPool and given back when the queue is empty. A referenced
// range or a file belongs to its Releaser, which the queue calls exactly once:
// when the kernel has taken the last byte of it, or when the queue is cleared
// (the connection went away). The queue never closes a file descriptor itself.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "core/handler.h"

namespace fulmen {

class OutputQueue {
 public:
  explicit OutputQueue(BufferPool& pool) : pool_(pool) {}
  ~OutputQueue() { clear(); }
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Bytes queued and not yet written.
  size_t size() const { return queued_; }
  bool empty() const { return queued_ == 0; }

  // Copies len bytes in; adjacent copies merge into one segment.
  void append_copy(const char* data, size_t len);
  // Queues len bytes at data without copying; `release` is called once they
  // are written or dropped.
  void append_ref(const char* data, size_t len, Releaser release);
  // Queues len bytes of file_fd from offset, written with sendfile(2) (or
  // pread+send where the file cannot be spliced); `release` as above.
  void append_file(int file_fd, uint64_t offset, uint64_t len, Releaser release);

  enum class Result : uint8_t {
    kDone,       // Everything queued is written; the queue is empty.
    kAgain,      // The socket takes no more for now (EAGAIN).
    kError,      // The socket failed (errno is set); the caller closes it.
    kFileShort,  // A file ended before the length queued for it.
  };
  // Writes as much as the socket takes: a run of memory segments in one
  // writev, files by sendfile. *written gets the number of bytes written.
  Result write_to(int fd, size_t* written);

  // Drops everything queued, calling each pending Releaser.
  void clear();
  // Gives the copy buffer back to the pool; only when empty().
  void release_memory();

 private:
  struct Segment {
    enum Kind : uint8_t { kCopy, kRef, kFile } kind;
    int file_fd;
    const char* ptr;  // kRef
    uint64_t off;     // kCopy: offset into buf_; kFile: file offset
    uint64_t len;
    Releaser release;
    bool copy = false;  // kFile: sendfile refused this file; pread+send from now on.
  };

  ssize_t write_file(int fd, Segment& s);
  void advance(size_t n);
  void compact();

  BufferPool& pool_;
  Buffer buf_;
  std::vector<Segment> segs_;
  size_t head_ = 0;  // First segment not yet fully written.
  size_t queued_ = 0;
};

}  // namespace fulmen
