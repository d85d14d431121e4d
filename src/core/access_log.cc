#include "core/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace fulmen {

std::optional<AccessLog> AccessLog::create(const AccessLogConfig& config, std::string* error) {
  std::optional<AccessLogFormat> format = AccessLogFormat::compile(config.format, error);
  if (!format) return std::nullopt;
  return AccessLog(config, std::move(*format));
}

AccessLog::AccessLog(AccessLog&& other) noexcept
    : config_(std::move(other.config_)),
      format_(std::move(other.format_)),
      fd_(other.fd_),
      pid_(other.pid_),
      own_fd_(other.own_fd_),
      pipe_(other.pipe_),
      buf_(std::move(other.buf_)) {
  other.fd_ = -1;
  other.own_fd_ = false;
}

AccessLog::~AccessLog() {
  flush();
  if (own_fd_) ::close(fd_);
}

int AccessLog::open() {
  pid_ = static_cast<int>(getpid());
  int fd = 1;
  bool own = false;
  if (config_.path != "-") {
    fd = ::open(config_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    own = true;
  }
  if (own_fd_) ::close(fd_);
  fd_ = fd;
  own_fd_ = own;
  struct stat st;
  pipe_ = fstat(fd_, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
  return 0;
}

int AccessLog::reopen() {
  flush();
  return open();
}

bool AccessLog::excluded(std::string_view path) const {
  return std::any_of(config_.exclude.begin(), config_.exclude.end(),
                     [path](const std::string& p) { return p == path; });
}

void AccessLog::write(const AccessLogRecord& record) {
  if (config_.json) {
    AccessLogFormat::format_json(record, buf_);
  } else {
    format_.format(record, buf_);
  }
  if (buf_.size() >= kFlushBytes) flush();
}

void AccessLog::flush() {
  if (buf_.empty() || fd_ < 0) {
    buf_.clear();
    return;
  }
  size_t done = 0;
  while (done < buf_.size()) {
    size_t len = buf_.size() - done;
    if (pipe_ && len > PIPE_BUF) {
      // Whole lines only, so another worker's write cannot land inside one.
      size_t cut = buf_.rfind('\n', done + PIPE_BUF - 1);
      len = (cut == std::string::npos || cut < done) ? PIPE_BUF : cut + 1 - done;
    }
    ssize_t n = ::write(fd_, buf_.data() + done, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // A full non-blocking pipe or a failed disk: the rest of this turn's lines are lost.
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

}  // namespace fulmen
