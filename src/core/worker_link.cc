#include "core/worker_link.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>

#include "core/buffer.h"

namespace fulmen {

WorkerLink::WorkerLink(int notify_fd, int age, uint64_t now_ms) : notify_fd_(notify_fd), age_(age) {
  void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) out_of_memory();
  shared_ = new (p) Shared{};
  shared_->beat_ms.store(now_ms, std::memory_order_relaxed);
}

WorkerLink::~WorkerLink() {
  munmap(shared_, sizeof(Shared));
}

bool WorkerLink::send(LinkMessage::Kind kind) const {
  LinkMessage m{static_cast<int32_t>(getpid()), kind};
  for (;;) {
    ssize_t n = write(notify_fd_, &m, sizeof m);
    if (n == static_cast<ssize_t>(sizeof m)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool WorkerLink::receive(int read_fd, LinkMessage* out) {
  for (;;) {
    ssize_t n = read(read_fd, out, sizeof *out);
    if (n == static_cast<ssize_t>(sizeof *out)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

}  // namespace fulmen
