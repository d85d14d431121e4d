// The responses completed in one loop turn, written together.
//
// While the loop runs its poll callbacks, a connection that has a response
// ready hands itself to the batch instead of writing at once; right after
// the callbacks (the worker's check phase) the worker writes every held
// connection. A client or proxy asleep in epoll is then woken once per turn
// rather than once per response (docs/performance.md, "One write per turn":
// the wake-up cost ~7 µs of the server's kernel time per request on loopback,
// and the client's time per wake-up on top).
//
// A response never waits long for the others. Output is held only while the
// app's calls are short (their running average under kFastCallNs), and what
// is held is written before the next app call once the oldest of it has
// waited kMaxHoldNs. Outside the poll phase (timers, the sweep, a worker
// driven by hand in tests) nothing is held.
//
// Ownership: the batch stores connections it does not own. A held
// connection that closes takes itself out (forget(), from
// Connection::close()); the connection, not the batch, remembers that it is
// held, so it is held once however often its output grows in one turn.
#pragma once

#include <cstdint>
#include <vector>

namespace fulmen {

class Connection;

class SendBatch {
 public:
  static constexpr uint64_t kFastCallNs = 1'000'000;
  static constexpr uint64_t kMaxHoldNs = 1'000'000;

  // The poll phase begins: connections may be held until take().
  void open() { open_ = true; }
  // The poll phase is over: returns the held connections, in the order they
  // were held (null entries are ones that closed), and holds nothing more
  // until open(). The list stays valid until the next take().
  std::vector<Connection*>& take() {
    open_ = false;
    return take_due();
  }

  // Whether output may wait for the end of the turn now (what hold() answers).
  bool may_hold() const { return open_ && call_avg_ns_ < kFastCallNs; }
  // Returns true when c's output may wait for the end of the turn (c is then
  // held), false when c must write it now.
  bool hold(Connection* c, uint64_t now_ns) {
    if (!may_hold()) return false;
    if (held_.empty()) oldest_ns_ = now_ns;
    held_.push_back(c);
    return true;
  }
  // c is closing: it is left out of the writes (its entry becomes null, so
  // a list being written stays valid).
  void forget(Connection* c) {
    for (auto* list : {&held_, &taken_})
      for (auto& entry : *list)
        if (entry == c) entry = nullptr;
  }

  // Before an app call on the loop thread: true when what is held has waited
  // long enough and must be written first.
  bool due(uint64_t now_ns) const { return !held_.empty() && now_ns - oldest_ns_ >= kMaxHoldNs; }
  // What is held, as take() returns it, leaving the batch open.
  std::vector<Connection*>& take_due() {
    taken_.swap(held_);
    held_.clear();
    return taken_;
  }
  // An app call on the loop thread took this long (the running average).
  void app_call_took(uint64_t ns) { call_avg_ns_ = call_avg_ns_ - call_avg_ns_ / 8 + ns / 8; }

 private:
  bool open_ = false;
  uint64_t oldest_ns_ = 0;
  uint64_t call_avg_ns_ = 0;
  std::vector<Connection*> held_;
  std::vector<Connection*> taken_;  // Reused: the list being written.
};

}  // namespace fulmen
