// Tests for src/core/worker_link.h: the heartbeat is shared across fork()
// and messages cross the pipe whole, from several processes at once.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "check.h"
#include "core/worker_link.h"

using fulmen::LinkMessage;
using fulmen::WorkerLink;

TEST(heartbeat_starts_at_creation_and_is_seen_across_fork) {
  int p[2];
  CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  WorkerLink link(p[1], 7, 1000);
  CHECK_EQ(link.age(), 7);
  CHECK_EQ(link.last_beat(), 1000u);
  pid_t pid = fork();
  if (pid == 0) {
    link.beat(5000);
    _exit(link.send(LinkMessage::kReady) ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_EQ(link.last_beat(), 5000u) << "the child's stamp is visible in the parent";
  LinkMessage m{};
  CHECK(WorkerLink::receive(p[0], &m));
  CHECK_EQ(m.pid, pid);
  CHECK_EQ(m.kind, LinkMessage::kReady);
  CHECK(!WorkerLink::receive(p[0], &m)) << "nothing more is waiting";
  close(p[0]);
  close(p[1]);
}

TEST(messages_from_many_processes_arrive_whole) {
  int p[2];
  CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
  std::set<int> pids;
  for (int i = 0; i < 8; ++i) {
    WorkerLink link(p[1], i + 1, 0);
    pid_t pid = fork();
    if (pid == 0) {
      bool ok = true;
      for (int j = 0; j < 100; ++j) ok = link.send(j % 2 ? LinkMessage::kReady : LinkMessage::kRetireMe) && ok;
      _exit(ok ? 0 : 1);
    }
    pids.insert(pid);
    // Drain as we go so the pipe never fills (the writers would block).
    LinkMessage m{};
    for (int j = 0; j < 100; ++j) {
      CHECK(WorkerLink::receive(p[0], &m));
      CHECK(pids.count(m.pid) == 1);
      CHECK(m.kind == LinkMessage::kReady || m.kind == LinkMessage::kRetireMe);
    }
  }
  for (int pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  close(p[0]);
  close(p[1]);
}

TEST(send_fails_when_the_master_is_gone) {
  int p[2];
  CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
  signal(SIGPIPE, SIG_IGN);
  close(p[0]);
  WorkerLink link(p[1], 1, 0);
  CHECK(!link.send(LinkMessage::kReady));
  close(p[1]);
}

CHECK_MAIN()
