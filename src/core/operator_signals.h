#pragma once

#include <signal.h>

namespace fulmen {

// The signals an operator sends the master that a worker must survive when
// they reach it too (`kill -HUP -PGID`, a terminal's hang-up, a mistaken
// pid): by default HUP, USR1 and USR2 end a process, TTIN and TTOU stop it.
// A new worker keeps them blocked from fork() until Worker::run() has its
// own handlers (HUP ignored, USR1 reopens the logs, the rest ignored), so
// one that arrives while the application is still importing stays pending
// rather than taking its default action.
inline constexpr int kOperatorSignals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH};

inline sigset_t operator_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kOperatorSignals) sigaddset(&set, s);
  return set;
}

}  // namespace fulmen
