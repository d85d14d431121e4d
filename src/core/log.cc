#include "core/log.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
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
bool g_json = false;            // --log-format json
int g_syslog_fd = -1;           // connected datagram socket, or -1
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

namespace {

int syslog_severity(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 7;
    case LogLevel::kInfo: return 6;
    case LogLevel::kWarning: return 4;
    case LogLevel::kError: return 3;
    case LogLevel::kCritical: return 2;
  }
  return 6;
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

// One event: message (without its final newline) written as the log's
// format wants it, in one write(2), and to syslog. raw: wsgi.errors text,
// which carries its own prefix in the text format.
void emit(LogLevel level, std::string_view message, bool raw) {
  while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  if (message.empty()) return;
  std::string line;
  if (g_json) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[48];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    char head[128];
    snprintf(head, sizeof head, "{\"time\":\"%s\",\"pid\":%d,\"level\":\"%s\",\"message\":", when,
             static_cast<int>(getpid()), level_name(level));
    line = head;
    append_json_string(line, message);
    line += "}\n";
  } else if (raw) {
    line.assign(message);
    line.push_back('\n');
  } else {
    char prefix[128];
    size_t n = format_prefix(prefix, sizeof prefix, level);
    line.assign(prefix, n);
    line.append(message);
    line.push_back('\n');
  }
  write_all(line.data(), line.size());
  if (g_syslog_fd >= 0) {
    char head[64];
    int n = snprintf(head, sizeof head, "<%d>fulmen: [%d] [%s] ", 8 + syslog_severity(level),
                     static_cast<int>(getpid()), level_name(level));
    std::string datagram(head, static_cast<size_t>(n));
    datagram.append(message.substr(0, 8000));
    (void)!send(g_syslog_fd, datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

}  // namespace

void set_log_json(bool on) {
  g_json = on;
}

int set_log_syslog(std::string_view address) {
  if (g_syslog_fd >= 0) {
    ::close(g_syslog_fd);
    g_syslog_fd = -1;
  }
  if (address.empty()) return 0;
  int fd = -1;
  if (address.starts_with("unix:")) {
    std::string_view path = address.substr(address.starts_with("unix://") ? 7 : 5);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof un.sun_path) return -EINVAL;
    std::memcpy(un.sun_path, path.data(), path.size());
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) < 0) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      return -err;
    }
  } else {
    std::string_view rest = address.starts_with("udp://") ? address.substr(6) : address;
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return -EINVAL;
    std::string host(rest.substr(0, colon)), port(rest.substr(colon + 1));
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return -EHOSTUNREACH;
    fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int err = 0;
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) err = errno;
    freeaddrinfo(res);
    if (err != 0) {
      if (fd >= 0) ::close(fd);
      return -err;
    }
  }
  g_syslog_fd = fd;
  return 0;
}

void log(LogLevel level, const char* fmt, ...) {
  if (!log_enabled(level)) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  emit(level, std::string_view(line, std::min(static_cast<size_t>(m), sizeof line - 1)), false);
}

void log_text(LogLevel level, std::string_view text) {
  if (!log_enabled(level)) return;
  emit(level, text, false);
}

void log_raw(LogLevel level, std::string_view text) {
  if (!log_enabled(level)) return;
  emit(level, text, true);
}

}  // namespace fulmen

namespace fulmen {

[[noreturn]] void out_of_memory() {
  static constexpr char kMsg[] = "fulmen: out of memory\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  std::abort();
}

}  // namespace fulmen
