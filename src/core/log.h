// The error log: one line per event on stderr, in the format the Python side
// (fulmen/_log.py) also uses, so master, workers and CLI read as one stream:
//   [2026-11-27 04:00:00 +0000] [1234] [INFO] message
#pragma once

#include <string_view>

namespace fulmen {

enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40, kCritical = 50 };

// Messages below this level are dropped. Set once at start, before any fork.
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// The error log file (error_logfile), or "" / "-" for stderr as inherited.
// The caller has already opened it onto descriptor 2; reopen_log_file()
// opens the path again (after logrotate moved it, on USR1) and puts the new
// file on descriptor 2, so C++ and Python lines both follow. A failure is
// logged and leaves descriptor 2 as it was.
void set_log_file(std::string_view path);
// capture_output: reopen_log_file() puts the file on descriptor 1 as well.
void set_capture_output(bool on);
// --log-format json: each line is {"time", "pid", "level", "message"}.
void set_log_json(bool on);
// --log-syslog-to: every line also goes, as one datagram, to a syslog
// daemon at "udp://HOST:PORT" or "unix:PATH" (facility user, RFC 3164
// framing, "fulmen: [pid] [LEVEL] message"). Set before any fork; the
// connected socket is shared. Returns 0 or -errno (the address did not
// resolve or connect).
int set_log_syslog(std::string_view address);
void reopen_log_file();

// Formats and writes one line with a single write(2), so lines from several
// processes never interleave. Never throws; a failed write is ignored.
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Writes text as-is (it may hold several lines, e.g. a traceback), prefixed
// once like log(). Used for tracebacks.
void log_text(LogLevel level, std::string_view text);

// Writes text as-is with no prefix (a newline is added if it lacks one), in
// one write(2), when level is enabled. Used for wsgi.errors: what apps and
// frameworks write there is already formatted (Flask's and Django's handlers
// add their own time and level), so a second prefix would only repeat it, and
// gunicorn writes it unprefixed too.
void log_raw(LogLevel level, std::string_view text);

}  // namespace fulmen
