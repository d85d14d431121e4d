// The deadline rules of a connection, as one pure function of its phase, its
// timestamps and the time now (issue 13 items 1 and 8). No I/O and no clock
// reads here: the caller passes "now" from its MonotonicClock, so tests can
// move time by hand (tests/cpp/test_deadline.cc).
#pragma once

#include <cstdint>

namespace fulmen {

// Where a connection is in its request/response cycle.
enum class Phase : uint8_t {
  kIdle,       // Between requests (keep-alive): nothing parsed, maybe output still leaving.
  kHead,       // Part of a request head received.
  kBody,       // Head parsed; buffering the body before calling the app.
  kStreaming,  // A response is being produced (the app's stream waits for the socket).
  kApp,        // The request is on a pool thread (--threads > 1), or waits for one.
  kDiscard,    // Response done; dropping the rest of a body the app did not read.
  kClosing,    // Last response queued; close once it is sent.
  kLinger,     // Output sent, write side shut; draining input before close.
};

// The values come from WorkerConfig::timeouts(), where the defaults live.
struct Timeouts {
  uint64_t keepalive_ms = 0;  // Idle between requests.
  uint64_t header_ms = 0;     // A whole request head, from its first byte.
  uint64_t body_ms = 0;       // Between two pieces of request body.
  uint64_t send_ms = 0;       // Between two pieces of response progress.
  uint64_t linger_ms = 0;     // Draining input after our last response.
  uint64_t request_ms = 0;    // An app call on a pool thread (--request-timeout); 0: none.
};

struct DeadlineView {
  Phase phase = Phase::kIdle;
  uint64_t since_ms = 0;       // When the phase began.
  uint64_t progress_ms = 0;    // Last body byte read, or last response byte written.
  bool output_queued = false;  // Response bytes wait to be written.
  bool write_blocked = false;  // The last write met a full socket (EAGAIN).
  bool input_pending = false;  // Received bytes not yet parsed.
  bool app_started = false;    // kApp: a thread runs the app, since app_started_ms.
  uint64_t app_started_ms = 0;
};

enum class Expiry : uint8_t {
  kNone,
  kIdle,     // Keep-alive timeout: close, unless request bytes turn out to be waiting.
  kHead,     // 408: the head took too long.
  kBody,     // 408: the body stalled before the app was called.
  kSend,     // The client stopped reading: drop the connection.
  kDiscard,  // The unread rest of a body stalled: close.
  kLinger,   // Lingering is over: close.
  kRequest,  // 504: the app call on a thread outlived request_ms (issue 10).
};

// What, if anything, has expired at `now`. A connection is idle only when
// nothing is queued and nothing is being read: a slow reader of a large
// response is governed by send_ms (no progress for that long), never by the
// keep-alive timeout.
inline Expiry expired(const DeadlineView& v, const Timeouts& t, uint64_t now) {
  auto past = [now](uint64_t since, uint64_t limit) { return now >= since && now - since >= limit; };
  if (v.write_blocked && past(v.progress_ms, t.send_ms)) return Expiry::kSend;
  switch (v.phase) {
    case Phase::kIdle:
      if (v.output_queued || v.input_pending) return Expiry::kNone;
      return past(v.since_ms, t.keepalive_ms) ? Expiry::kIdle : Expiry::kNone;
    case Phase::kHead: return past(v.since_ms, t.header_ms) ? Expiry::kHead : Expiry::kNone;
    case Phase::kBody: return past(v.progress_ms, t.body_ms) ? Expiry::kBody : Expiry::kNone;
    case Phase::kDiscard: return past(v.progress_ms, t.body_ms) ? Expiry::kDiscard : Expiry::kNone;
    case Phase::kLinger: return past(v.since_ms, t.linger_ms) ? Expiry::kLinger : Expiry::kNone;
    case Phase::kApp:
      // Waiting for a thread is the worker's back-pressure, not the app's
      // time: the clock starts when a thread calls the app.
      return t.request_ms > 0 && v.app_started && past(v.app_started_ms, t.request_ms) ? Expiry::kRequest
                                                                                       : Expiry::kNone;
    case Phase::kClosing:
    case Phase::kStreaming: return Expiry::kNone;  // Covered by the send deadline above.
  }
  return Expiry::kNone;
}

}  // namespace fulmen
