// A worker's access log: one line per finished request, formatted in C++
// into a buffer and written when the buffer fills or once per loop turn, so
// the request path makes no syscall per line.
//
// Each worker opens the file itself (O_APPEND) after the fork; its writes
// end on line boundaries, and a write to a pipe (stdout to a collector) is at
// most PIPE_BUF bytes so that workers' lines never interleave.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/access_log_format.h"

namespace fulmen {

struct AccessLogConfig {
  std::string path;  // "-": stdout; empty: no access log
  std::string format{AccessLogFormat::kDefault};
  bool json = false;                 // --log-format json
  std::vector<std::string> exclude;  // request paths (as sent, without the query) not logged
};

class AccessLog {
 public:
  // Flush happens when this many bytes are buffered, or at flush().
  static constexpr size_t kFlushBytes = 64 * 1024;

  // Compiles the format; nullopt with *error set when it is not valid.
  static std::optional<AccessLog> create(const AccessLogConfig& config, std::string* error);

  AccessLog(AccessLog&& other) noexcept;
  AccessLog& operator=(AccessLog&&) = delete;
  AccessLog(const AccessLog&) = delete;
  ~AccessLog();

  // Opens the file (in the worker, after the fork). Returns 0 or -errno.
  int open();
  // Opens the file again (USR1, after logrotate moved it): buffered lines go
  // to the old file first.
  int reopen();

  bool excluded(std::string_view path) const;
  int pid() const { return pid_; }  // The worker's, read once at open().
  const AccessLogFormat& format() const { return format_; }
  // Formats record and buffers the line.
  void write(const AccessLogRecord& record);
  // Writes what is buffered; never blocks for long (a full pipe drops the
  // rest of this turn's lines rather than stall the worker).
  void flush();

 private:
  AccessLog(const AccessLogConfig& config, AccessLogFormat format) : config_(config), format_(std::move(format)) {}

  AccessLogConfig config_;
  AccessLogFormat format_;
  int fd_ = -1;
  int pid_ = 0;
  bool own_fd_ = false;
  bool pipe_ = false;  // fd_ is a pipe or socket: writes of at most PIPE_BUF
  std::string buf_;
};

}  // namespace fulmen
