#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace fulmen {
namespace {

bool g_capture_output = false;  // stdout follows the error log file too
LogLevel g_level = LogLevel::kInfo;
// Set before any fork and not changed after; read by master and workers.
std::string g_log_file;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kError: return "ERROR";
    case LogLevel::kCritical: return "CRITICAL";
  }
  return "INFO";
}

size_t format_prefix(char* out, size_t cap, LogLevel level) {
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  size_t n = strftime(out, cap, "[%Y-%m-%d %H:%M:%S +0000] ", &tm);
  int m = snprintf(out + n, cap - n, "[%d] [%s] ", static_cast<int>(getpid()), level_name(level));
  return n + static_cast<size_t>(m > 0 ? m : 0);
}

void write_all(const char* data, size_t len) {
  while (len > 0) {
    ssize_t w = write(2, data, len);
    if (w <= 0) return;  // Nothing sensible to do when stderr is gone.
    data += w;
    len -= static_cast<size_t>(w);
  }
}

}  // namespace

void set_log_level(LogLevel level) {
  g_level = level;
}
bool log_enabled(LogLevel level) {
  return level >= g_level;
}

void set_log_file(std::string_view path) {
  g_log_file = path == "-" ? std::string() : std::string(path);
}

void set_capture_output(bool on) {
  g_capture_output = on;
}

void reopen_log_file() {
  if (g_log_file.empty()) return;
  int fd = ::open(g_log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    log(LogLevel::kError, "cannot reopen the log file %s: %s", g_log_file.c_str(), strerror(errno));
    return;
  }
  if (g_capture_output) dup2(fd, 1);
  if (fd != 2) {
    dup2(fd, 2);
    ::close(fd);
  }
}

void log(LogLevel level, const char* fmt, ...) {
  if (!log_enabled(level)) return;
  char line[2048];
  size_t n = format_prefix(line, sizeof line, level);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += std::min(static_cast<size_t>(m), sizeof line - n - 2);
  line[n++] = '\n';
  write_all(line, n);
}

void log_text(LogLevel level, std::string_view text) {
  if (!log_enabled(level) || text.empty()) return;
  char prefix[128];
  size_t n = format_prefix(prefix, sizeof prefix, level);
  std::string line(prefix, n);
  line.append(text);
  if (line.back() != '\n') line.push_back('\n');
  write_all(line.data(), line.size());
}

void log_raw(LogLevel level, std::string_view text) {
  if (!log_enabled(level) || text.empty()) return;
  std::string line(text);
  if (line.back() != '\n') line.push_back('\n');
  write_all(line.data(), line.size());
}

}  // namespace fulmen

namespace fulmen {

[[noreturn]] void out_of_memory() {
  static constexpr char kMsg[] = "fulmen: out of memory\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  std::abort();
}

}  // namespace fulmen
