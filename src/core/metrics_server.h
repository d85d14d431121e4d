// Serves GET /metrics (the Prometheus text format) from the master, on a
// thread of its own that never touches Python or the master's loop: it reads
// the shared Metrics region and answers one short request per connection.
#pragma once

#include <atomic>
#include <thread>

#include "core/metrics.h"

namespace fulmen {

class MetricsServer {
 public:
  // listen_fd: a listening socket the server takes ownership of.
  MetricsServer(Metrics& metrics, int listen_fd);
  ~MetricsServer();  // Stops the thread and closes the socket.
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Starts the thread. Call in the master, after the workers' first fork is
  // possible: forked children close the socket (pthread_atfork).
  void start();

 private:
  void run();
  void answer(int fd);

  Metrics& metrics_;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};  // The thread has started and waits in its loop.
  std::thread thread_;
};

}  // namespace fulmen
