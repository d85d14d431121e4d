// Tests for src/core/buffer.h: growth is exact where asked (a bounded
// reserve bounds the memory), geometric for appends, and the pool recycles
// only standard blocks.
#include <string>

#include "check.h"
#include "core/buffer.h"

using fulmen::Buffer;
using fulmen::BufferPool;

TEST(reserve_grows_to_exactly_what_is_asked) {
  Buffer b;
  b.reserve(16384);
  CHECK_EQ(b.capacity(), 16384u);
  // The input cap of a connection (head + body buffer + read slack) is no
  // power of two; it must not be rounded up to the next one (issue 13 item 7).
  size_t cap = 65536 + (1u << 20) + 2 * 16384;
  b.reserve(cap);
  CHECK_EQ(b.capacity(), cap);
  b.reserve(100);  // Never shrinks.
  CHECK_EQ(b.capacity(), cap);
}

TEST(append_grows_geometrically_and_keeps_bytes) {
  Buffer b;
  std::string expect;
  size_t grows = 0, last_cap = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string piece = std::to_string(i) + ",";
    b.append(piece);
    expect += piece;
    if (b.capacity() != last_cap) {
      ++grows;
      last_cap = b.capacity();
    }
  }
  CHECK_EQ(std::string(b.data(), b.size()), expect);
  CHECK(grows <= 8) << "reallocations: " << grows;
  CHECK(b.capacity() < 2 * expect.size() + 4096) << b.capacity();
}

TEST(consume_front_moves_the_rest) {
  Buffer b;
  b.append("hello world");
  b.consume_front(6);
  CHECK_EQ(std::string(b.data(), b.size()), "world");
  b.consume_front(100);
  CHECK(b.empty());
}

TEST(move_and_swap_transfer_ownership) {
  Buffer a;
  a.append("abc");
  Buffer b(std::move(a));
  CHECK(!a.allocated());
  CHECK_EQ(std::string(b.data(), b.size()), "abc");
  Buffer c;
  c = std::move(b);
  CHECK_EQ(c.size(), 3u);
}

TEST(pool_recycles_standard_blocks_only) {
  BufferPool pool;
  Buffer b;
  pool.acquire(b);
  CHECK_EQ(b.capacity(), BufferPool::kBlock);
  const char* block = b.data();
  b.append("x");
  pool.release(b);
  CHECK(!b.allocated());
  Buffer again;
  pool.acquire(again);
  CHECK(again.data() == block) << "a released block is reused";
  CHECK(again.empty());
  // A grown buffer is freed, not pooled: the pool holds only blocks.
  again.reserve(BufferPool::kBlock * 4);
  pool.release(again);
  Buffer third;
  pool.acquire(third);
  CHECK_EQ(third.capacity(), BufferPool::kBlock);
}

CHECK_MAIN()
