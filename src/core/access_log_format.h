// The access log's line format: gunicorn's `access_log_format` language,
// compiled once at start and then applied to each finished request.
//
// The language is Python's %-formatting with named atoms, as gunicorn has it:
// `%(name)s` where name is one of gunicorn's atoms (h l u t r m U q H s B b f
// a T D M L p), `{header}i` (a request header), `{header}o` (a response
// header) or `{key}e` (a WSGI environ key); `%%` is a literal percent. Every
// atom's value is written exactly as gunicorn writes it, so that a line is
// byte for byte what gunicorn logs for the same request: an absent value is
// "-", a double quote in a value is written `\"`. Two deliberate differences:
// control characters (a percent-decoded "%0a" in a path, say) are written as
// `\xHH` so that a request cannot forge log lines, and bytes above 0x7f in
// request text are written as gunicorn's logging writes its latin-1 strings
// (each byte as the UTF-8 encoding of that latin-1 character).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/parser.h"

namespace fulmen {

// The facts about one finished request that a line can show. Views are
// borrowed for the duration of AccessLogFormat::format() only.
struct AccessLogRecord {
  std::string_view remote;       // h: the client address (REMOTE_ADDR)
  std::string_view method;       // m
  std::string_view target;       // the request-target as received (gunicorn's RAW_URI, in r)
  std::string_view path_info;    // U: PATH_INFO (percent-decoded, after SCRIPT_NAME)
  std::string_view query;        // q: QUERY_STRING
  std::string_view protocol;     // H: "HTTP/1.1"
  int status = 0;                // s
  std::optional<uint64_t> sent;  // B and b: response body bytes sent, when a response was started
  std::span<const Header> request_headers;
  std::string_view response_head;  // the response's header lines ("Name: value\r\n" each) for {x}o
  // {key}e values, in the order of AccessLogFormat::environ_keys(); a
  // missing key is std::nullopt.
  std::span<const std::optional<std::string_view>> environ;
  uint64_t duration_us = 0;  // T D M L: from the request's head to its end
  time_t now = 0;            // t: the time of logging (local time, as gunicorn)
  int now_ms = 0;            // milliseconds past `now`, for the JSON time
  int pid = 0;               // p
};

class AccessLogFormat {
 public:
  // gunicorn's default: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'.
  static constexpr std::string_view kDefault = "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"";

  // Compiles spec. Returns nullopt and sets *error to one sentence naming the
  // problem when spec is not a valid format (a "%" not followed by "(name)s"
  // or "%"). Unknown atom names are valid and print "-", as in gunicorn.
  static std::optional<AccessLogFormat> compile(std::string_view spec, std::string* error);

  // Appends one line (with its "\n") for record to out.
  void format(const AccessLogRecord& record, std::string& out) const;
  // Appends one JSON object (and "\n") with the record's fields by name:
  // time (UTC, ISO 8601 with milliseconds), remote, method, path, query,
  // protocol, status, bytes, duration (seconds), request_id (X-Request-ID),
  // user, user_agent, referer; an absent value is null. The format string
  // plays no part (--log-format json).
  static void format_json(const AccessLogRecord& record, std::string& out);

  // The environ keys that {key}e atoms ask for, lower-case, each once; the
  // caller gives their values in AccessLogRecord::environ in this order.
  const std::vector<std::string>& environ_keys() const { return environ_keys_; }
  // True when some atom shows a response header ({x}o): the caller must keep
  // the response head text until the line is written.
  bool uses_response_headers() const { return uses_response_headers_; }

 private:
  enum class Kind : uint8_t { kLiteral, kAtom, kRequestHeader, kResponseHeader, kEnviron, kUnknown };
  struct Piece {
    Kind kind;
    char atom;         // for kAtom: the atom letter
    std::string text;  // kLiteral: the text; headers: the lower-case name
    size_t index = 0;  // kEnviron: index into environ_keys_
  };
  std::vector<Piece> pieces_;
  std::vector<std::string> environ_keys_;
  bool uses_response_headers_ = false;
};

}  // namespace fulmen
