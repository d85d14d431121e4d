// Tests for src/core/metrics.h: workers in forked processes count into their
// own slots, the master's sum is exact, a replacement carries on from the
// totals, and the page is the Prometheus text format.
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "check.h"
#include "core/metrics.h"

using fulmen::Metrics;

namespace {

bool has_line(const std::string& page, const std::string& line) {
  return page.find("\n" + line + "\n") != std::string::npos;
}

// Forks a "worker" that claims a slot, serves n requests and exits as told.
pid_t worker(Metrics& m, int n, Metrics::Exit exit) {
  pid_t pid = fork();
  if (pid == 0) {
    Metrics::Slot* s = m.claim(getpid());
    if (s == nullptr) _exit(3);
    for (int i = 0; i < n; ++i) s->request_done(i % 2 ? 200 : 404, i % 3 ? "GET" : "BREW", 1500);
    s->add(s->connections_accepted, 2);
    s->refused_request(431);
    s->exit.store(static_cast<int32_t>(exit));
    _exit(0);
  }
  return pid;
}

void reap(Metrics& m, pid_t pid, bool timed_out = false) {
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  m.worker_exited(pid, timed_out);
}

}  // namespace

TEST(sums_are_exact_across_workers_and_replacements) {
  auto m = Metrics::create(4);
  CHECK(m != nullptr);
  pid_t a = worker(*m, 30, Metrics::Exit::kMaxRequests);
  pid_t b = worker(*m, 12, Metrics::Exit::kNone);
  reap(*m, a);
  reap(*m, b);
  pid_t c = worker(*m, 6, Metrics::Exit::kStopped);  // takes a freed slot: the totals stay
  reap(*m, c, true);
  std::string page;
  m->render(page);
  // 48 requests: odd ones 200, even 404; every third BREW ("other").
  CHECK(has_line(page, "fulmen_request_duration_seconds_count 48")) << page;
  CHECK(has_line(page, "fulmen_connections_accepted_total 6")) << page;
  CHECK(has_line(page, "fulmen_bad_requests_total{status=\"431\"} 3")) << page;
  CHECK(has_line(page, "fulmen_worker_restarts_total{reason=\"max_requests\"} 1")) << page;
  CHECK(has_line(page, "fulmen_worker_restarts_total{reason=\"crashed\"} 1")) << page;
  CHECK(has_line(page, "fulmen_worker_restarts_total{reason=\"timeout\"} 1")) << page;
  CHECK(has_line(page, "fulmen_workers 0")) << page;  // all three were reaped
  CHECK(has_line(page, "fulmen_request_duration_seconds_bucket{le=\"0.001\"} 0") ||
        page.find("le=\"0.001\"") == std::string::npos);
  CHECK(has_line(page, "fulmen_request_duration_seconds_bucket{le=\"0.005\"} 48")) << page;
  CHECK(has_line(page, "fulmen_request_duration_seconds_sum 0.072000")) << page;
  unsigned long long total = 0;
  for (const char* cls : {"2xx", "4xx"}) {
    for (const char* method : {"GET", "other"}) {
      std::string key = std::string("fulmen_requests_total{status=\"") + cls + "\",method=\"" + method + "\"} ";
      size_t at = page.find(key);
      CHECK(at != std::string::npos) << key;
      total += std::stoull(page.substr(at + key.size()));
    }
  }
  CHECK_EQ(total, 48u);
  CHECK(page.find("# TYPE fulmen_request_duration_seconds histogram\n") != std::string::npos);
}

TEST(claims_are_exclusive_until_freed) {
  auto m = Metrics::create(2);
  CHECK(m != nullptr);
  pid_t self = getpid(), parent = getppid();  // two live processes
  CHECK(m->claim(self) != nullptr);
  CHECK(m->claim(parent) != nullptr);
  CHECK(m->claim(1234567) == nullptr);  // full: both owners are alive
  m->worker_exited(self, false);
  CHECK(m->claim(1234568) != nullptr);
  // A slot whose owner died unreaped is taken over, and its exit counted once.
  pid_t child = fork();
  if (child == 0) {
    Metrics::Slot* s = m->claim(getpid());
    _exit(s == nullptr ? 1 : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  std::string page;
  m->render(page);
  // self's exit (no reason recorded) and the dead 1234568's, taken over by the child.
  CHECK(has_line(page, "fulmen_worker_restarts_total{reason=\"crashed\"} 2")) << page;
  CHECK(has_line(page, "fulmen_workers 1")) << page;  // the parent; the child is gone
}

CHECK_MAIN()
