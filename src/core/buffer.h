// Byte buffers for connection input and output.
//
// A Buffer is a growable, uninitialised byte array owned by one connection.
// Idle connections hold no buffer at all: they borrow one from the worker's
// BufferPool when bytes arrive and give it back when nothing is pending, so ten
// thousand idle keep-alive connections cost no buffer memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace fulmen {

[[noreturn]] void out_of_memory();

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~Buffer() { std::free(data_); }

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return size_ == 0; }
  bool allocated() const { return data_ != nullptr; }

  char* tail() { return data_ + size_; }
  size_t room() const { return cap_ - size_; }
  void commit(size_t n) { size_ += n; }
  void resize(size_t n) { size_ = n; }
  void clear() { size_ = 0; }

  // Ensures capacity >= n, growing to exactly n: a caller that bounds n
  // bounds the memory (no rounding up to a power of two, issue 13 item 7).
  // Out-of-memory is fatal (STYLE.md).
  void reserve(size_t n) {
    if (n <= cap_) return;
    void* p = std::realloc(data_, n);
    if (p == nullptr) out_of_memory();
    data_ = static_cast<char*>(p);
    cap_ = n;
  }

  // Appends, growing geometrically (at least doubling) so that a run of
  // appends costs amortised constant time.
  void append(const void* p, size_t n) {
    if (size_ + n > cap_) reserve(std::max(size_ + n, std::max<size_t>(cap_ * 2, 4096)));
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }

  // Drops the first n bytes, moving the rest to the front.
  void consume_front(size_t n) {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_, data_ + n, size_ - n);
    size_ -= n;
  }

  void swap(Buffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

// Recycles standard-size buffers within one worker (single-threaded).
class BufferPool {
 public:
  static constexpr size_t kBlock = 16384;
  static constexpr size_t kMaxPooled = 256;

  // Gives b a standard block if it has no memory yet.
  void acquire(Buffer& b) {
    if (b.allocated()) return;
    if (!free_.empty()) {
      b = std::move(free_.back());
      free_.pop_back();
      b.clear();
    } else {
      b.reserve(kBlock);
    }
  }

  // Takes b's memory back (b becomes empty and unallocated). Buffers that
  // grew past the standard size are freed instead of pooled.
  void release(Buffer& b) {
    if (!b.allocated()) return;
    Buffer taken(std::move(b));
    b = Buffer();
    if (taken.capacity() == kBlock && free_.size() < kMaxPooled) free_.push_back(std::move(taken));
  }

 private:
  std::vector<Buffer> free_;
};

}  // namespace fulmen
