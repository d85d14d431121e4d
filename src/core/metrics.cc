#include "core/metrics.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>

#include <cstdio>
#include <new>

namespace fulmen {
namespace {

size_t slot_offset() {
  // Slots start on a cache line of their own, so two workers never share one.
  return 64 * ((sizeof(std::atomic<uint64_t>) * Metrics::kExitNames.size() + 63) / 64);
}

size_t slot_stride() {
  return 64 * ((sizeof(Metrics::Slot) + 63) / 64);
}

void append_counter(std::string& out, const char* name, const char* help, const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_value(std::string& out, const char* series, unsigned long long v) {
  char line[256];
  int n = std::snprintf(line, sizeof line, "%s %llu\n", series, v);
  out.append(line, static_cast<size_t>(n));
}

}  // namespace

size_t Metrics::method_index(std::string_view method) {
  for (size_t i = 0; i + 1 < kMethods.size(); ++i) {
    if (method == kMethods[i]) return i;
  }
  return kMethods.size() - 1;
}

void Metrics::Slot::request_done(int status, size_t method, uint64_t duration_us) {
  int cls = status / 100 - 1;
  if (cls < 0 || cls >= kStatusClasses) cls = kStatusClasses - 1;
  add(requests[cls][method]);
  double seconds = static_cast<double>(duration_us) / 1e6;
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  add(duration_buckets[b]);  // Cumulated over the buckets when rendered.
  add(duration_sum_us, duration_us);
}

void Metrics::Slot::refused_request(int status) {
  for (size_t i = 0; i < kRefusals.size(); ++i) {
    if (kRefusals[i] == status) add(refused[i]);
  }
}

std::unique_ptr<Metrics> Metrics::create(size_t slots) {
  size_t bytes = slot_offset() + slots * slot_stride();
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  new (base) Header();
  std::unique_ptr<Metrics> m(new (std::nothrow) Metrics(base, slots, bytes));
  if (!m) {
    munmap(base, bytes);
    return nullptr;
  }
  for (size_t i = 0; i < slots; ++i) new (m->slot(i)) Slot();
  return m;
}

Metrics::~Metrics() {
  munmap(base_, bytes_);
}

Metrics::Slot* Metrics::slot(size_t i) const {
  return reinterpret_cast<Slot*>(static_cast<char*>(base_) + slot_offset() + i * slot_stride());
}

Metrics::Slot* Metrics::claim(pid_t self) {
  for (size_t i = 0; i < count_; ++i) {
    Slot* s = slot(i);
    int32_t owner = s->owner.load(std::memory_order_acquire);
    if (owner != 0 && kill(owner, 0) == -1 && errno == ESRCH) {
      release(s, owner, false);
      owner = 0;
    }
    if (owner != 0) continue;
    if (s->owner.compare_exchange_strong(owner, self, std::memory_order_acq_rel)) {
      s->exit.store(0, std::memory_order_relaxed);
      // What a dead predecessor left in flight or open is not this worker's.
      s->in_flight.store(0, std::memory_order_relaxed);
      s->connections_open.store(0, std::memory_order_relaxed);
      return s;
    }
  }
  return nullptr;
}

void Metrics::release(Slot* s, int32_t pid, bool timed_out) {
  auto exit = static_cast<Exit>(s->exit.load(std::memory_order_relaxed));
  if (timed_out) exit = Exit::kTimeout;
  if (exit == Exit::kNone) exit = Exit::kCrashed;
  s->in_flight.store(0, std::memory_order_relaxed);
  s->connections_open.store(0, std::memory_order_relaxed);
  int32_t expected = pid;
  // Free: a later worker carries on from its totals.
  if (s->owner.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) {
    header()->exits[static_cast<size_t>(exit)].fetch_add(1, std::memory_order_relaxed);
  }
}

void Metrics::worker_exited(pid_t pid, bool timed_out) {
  for (size_t i = 0; i < count_; ++i) {
    Slot* s = slot(i);
    if (s->owner.load(std::memory_order_acquire) == pid) {
      release(s, pid, timed_out);
      return;
    }
  }
}

void Metrics::render(std::string& out) const {
  auto sum = [this](auto field) {
    unsigned long long total = 0;
    for (size_t i = 0; i < count_; ++i) total += static_cast<unsigned long long>(field(*slot(i)));
    return total;
  };
  char series[160];

  append_counter(out, "fulmen_requests_total", "Requests whose response ended, by status class and method.",
                 "counter");
  for (int c = 0; c < kStatusClasses; ++c) {
    for (size_t m = 0; m < kMethods.size(); ++m) {
      unsigned long long v = sum([&](const Slot& s) { return s.requests[c][m].load(std::memory_order_relaxed); });
      std::snprintf(series, sizeof series, "fulmen_requests_total{status=\"%dxx\",method=\"%s\"}", c + 1,
                    kMethods[m]);
      append_value(out, series, v);
    }
  }

  append_counter(out, "fulmen_request_duration_seconds",
                 "Time from a request's complete head to the end of its response (the application's time).",
                 "histogram");
  unsigned long long cumulative = 0;
  for (size_t b = 0; b <= kBuckets.size(); ++b) {
    cumulative += sum([&](const Slot& s) { return s.duration_buckets[b].load(std::memory_order_relaxed); });
    if (b < kBuckets.size()) {
      std::snprintf(series, sizeof series, "fulmen_request_duration_seconds_bucket{le=\"%g\"}", kBuckets[b]);
    } else {
      std::snprintf(series, sizeof series, "fulmen_request_duration_seconds_bucket{le=\"+Inf\"}");
    }
    append_value(out, series, cumulative);
  }
  unsigned long long sum_us = sum([](const Slot& s) { return s.duration_sum_us.load(std::memory_order_relaxed); });
  char line[128];
  int n = std::snprintf(line, sizeof line, "fulmen_request_duration_seconds_sum %llu.%06llu\n", sum_us / 1000000,
                        sum_us % 1000000);
  out.append(line, static_cast<size_t>(n));
  append_value(out, "fulmen_request_duration_seconds_count", cumulative);

  append_counter(out, "fulmen_requests_in_flight", "Requests being answered now.", "gauge");
  append_value(out, "fulmen_requests_in_flight",
               sum([](const Slot& s) { return s.in_flight.load(std::memory_order_relaxed); }));
  append_counter(out, "fulmen_connections_open", "Client connections open now.", "gauge");
  append_value(out, "fulmen_connections_open",
               sum([](const Slot& s) { return s.connections_open.load(std::memory_order_relaxed); }));
  append_counter(out, "fulmen_connections_accepted_total", "Client connections accepted.", "counter");
  append_value(out, "fulmen_connections_accepted_total",
               sum([](const Slot& s) { return s.connections_accepted.load(std::memory_order_relaxed); }));

  append_counter(out, "fulmen_bad_requests_total", "Requests the server refused itself, by status.", "counter");
  for (size_t i = 0; i < kRefusals.size(); ++i) {
    std::snprintf(series, sizeof series, "fulmen_bad_requests_total{status=\"%d\"}", kRefusals[i]);
    append_value(out, series, sum([&](const Slot& s) { return s.refused[i].load(std::memory_order_relaxed); }));
  }
  append_counter(out, "fulmen_bytes_sent_total", "Response bytes written to client sockets.", "counter");
  append_value(out, "fulmen_bytes_sent_total",
               sum([](const Slot& s) { return s.bytes_sent.load(std::memory_order_relaxed); }));

  append_counter(out, "fulmen_worker_restarts_total",
                 "Workers that ended, by reason (the master replaces each unless it is stopping or shrinking).",
                 "counter");
  for (size_t e = 1; e < kExitNames.size(); ++e) {
    std::snprintf(series, sizeof series, "fulmen_worker_restarts_total{reason=\"%s\"}", kExitNames[e]);
    append_value(out, series, header()->exits[e].load(std::memory_order_relaxed));
  }
  append_counter(out, "fulmen_workers", "Worker processes running.", "gauge");
  unsigned long long workers = 0;
  for (size_t i = 0; i < count_; ++i) {
    int32_t owner = slot(i)->owner.load(std::memory_order_acquire);
    if (owner != 0 && (kill(owner, 0) == 0 || errno != ESRCH)) ++workers;
  }
  append_value(out, "fulmen_workers", workers);
}

}  // namespace fulmen
