// The time base of every deadline in the core (issue 13 item 1).
//
// Deadlines are read from a MonotonicClock the worker is handed, never from
// libuv's cached loop time: after a long app call uv_now() is seconds stale,
// and a stale "now" decides wrongly what is idle. Tests hand the worker a
// clock they move by hand (tests/cpp).
#pragma once

#include <time.h>

#include <cstdint>

namespace fulmen {

class MonotonicClock {
 public:
  virtual ~MonotonicClock() = default;

  // Milliseconds on CLOCK_MONOTONIC_COARSE: never goes back, unrelated to
  // the wall clock, and as exact as the kernel's tick (1-4 ms), which every
  // deadline here (seconds, or hundreds of ms) can spare. Read through the
  // vDSO: 5 ns a call against 25 ns for CLOCK_MONOTONIC on the development
  // VM, where a keep-alive request stamped it about four times (issue 12).
  // Every user of this clock reads the same one, so deadlines compare alike.
  virtual uint64_t now_ms() const {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  }

  // The process's one real clock, for code that has no worker at hand.
  static const MonotonicClock& system() {
    static const MonotonicClock clock;
    return clock;
  }
};

}  // namespace fulmen
