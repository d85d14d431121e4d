// Server metrics (issue 9): counters in memory shared by the master and its
// workers, and their Prometheus text exposition.
//
// The master maps the region before it forks anything. Each worker claims a
// slot of its own (a free one, or one whose owner has died) and is that
// slot's only writer: plain relaxed atomic adds, no locks on the request
// path. Counters are never reset, so a worker that replaces another carries
// on from its totals, and a sum over the slots counts every request ever
// served exactly once. The master only reads.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace fulmen {

class Metrics {
 public:
  // Status classes 1xx..5xx, and methods as Prometheus users group them.
  static constexpr int kStatusClasses = 5;
  static constexpr std::array<const char*, 8> kMethods = {"GET",    "HEAD",  "POST",    "PUT",
                                                          "DELETE", "PATCH", "OPTIONS", "other"};
  // Upper bounds (seconds) of the duration histogram's buckets; +Inf follows.
  static constexpr std::array<double, 11> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  // The statuses the server itself refuses requests with.
  static constexpr std::array<int, 6> kRefusals = {400, 408, 413, 414, 431, 501};
  // Why a worker ended, for fulmen_worker_restarts_total.
  // kStopped: a graceful stop (TERM, a reload, TTOU); kMaxRequests: retired
  // after max_requests; kTimeout: killed by the master for --timeout;
  // kCrashed: died without saying why.
  enum class Exit : int32_t { kNone = 0, kStopped, kMaxRequests, kTimeout, kCrashed };
  static constexpr std::array<const char*, 5> kExitNames = {"", "stopped", "max_requests", "timeout", "crashed"};

  // One worker's counters. Only its owner writes them.
  struct Slot {
    std::atomic<int32_t> owner{0};  // pid; 0: free
    std::atomic<int32_t> exit{0};   // Exit the owner recorded before leaving
    std::atomic<uint64_t> requests[kStatusClasses][kMethods.size()];
    std::atomic<uint64_t> duration_buckets[kBuckets.size() + 1];
    std::atomic<uint64_t> duration_sum_us{0};
    std::atomic<uint64_t> connections_accepted{0};
    std::atomic<int64_t> connections_open{0};
    std::atomic<int64_t> in_flight{0};
    std::atomic<uint64_t> refused[kRefusals.size()];
    std::atomic<uint64_t> bytes_sent{0};

    void add(std::atomic<uint64_t>& c, uint64_t n = 1) {
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void add(std::atomic<int64_t>& c, int64_t n) {
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    // A request ended with status after duration_us (from its head to its end).
    void request_done(int status, std::string_view method, uint64_t duration_us) {
      request_done(status, method_index(method), duration_us);
    }
    void request_done(int status, size_t method, uint64_t duration_us);
    void refused_request(int status);
  };

  // The index of method in kMethods ("other" for any method not listed).
  static size_t method_index(std::string_view method);

  // Maps a region of `slots` slots shared with every process forked after
  // it. nullptr (and errno) when the mapping fails.
  static std::unique_ptr<Metrics> create(size_t slots);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // In a worker: takes a free slot, or the slot of a worker that has died
  // (counting that worker's exit, when the master has not yet). nullptr when
  // every slot is held by a live process.
  Slot* claim(pid_t self);
  // In the master, when a worker was reaped: its slot is marked free (the
  // totals stay) and its exit is counted; a worker that recorded no reason
  // is counted as crashed, or as timeout when the master killed it so.
  void worker_exited(pid_t pid, bool timed_out);

  // The Prometheus text exposition (version 0.0.4) of every slot summed;
  // fulmen_workers counts the slots whose owner is alive.
  void render(std::string& out) const;

 private:
  // The region: this header, then count_ slots.
  struct Header {
    std::atomic<uint64_t> exits[kExitNames.size()];
  };
  Metrics(void* base, size_t count, size_t bytes) : base_(base), count_(count), bytes_(bytes) {}
  Header* header() const { return static_cast<Header*>(base_); }
  Slot* slot(size_t i) const;
  // Frees slot s of the dead worker pid and counts its exit, once (whoever
  // frees the slot counts it).
  void release(Slot* s, int32_t pid, bool timed_out);

  void* base_;
  size_t count_;
  size_t bytes_;
};

}  // namespace fulmen
