// HTTP/1.1 request head parser and chunked body decoder (RFC 9112).
//
// Both are pure functions over the caller's buffer: no I/O, no allocation, no
// hidden state beyond what the caller passes in. Results are views into the
// caller's buffer and stay valid as long as that buffer does not move.
//
// Error results are negative HTTP status codes so a caller can answer with
// them directly: -400 (malformed), -414 (request line too long), -431 (header
// section too large or too many fields), -501 (unsupported transfer coding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fulmen {

struct Header {
  std::string_view name;   // as received (case preserved), never empty
  std::string_view value;  // leading/trailing OWS stripped
};

struct ParserLimits {
  size_t max_request_line = 8190;  // bytes before the CRLF of the request line -> 414
  size_t max_head = 65536;         // whole head including the final CRLFCRLF -> 431
  size_t max_headers = 100;        // number of header fields -> 431 (<= kMaxHeaders)
};

inline constexpr size_t kMaxHeaders = 128;

// The four forms of request-target (RFC 9112 3.2).
enum class TargetForm : uint8_t {
  kOrigin,     // "/path?query" (3.2.1)
  kAbsolute,   // "http://authority/path?query", http and https only (3.2.2)
  kAuthority,  // "host:port", CONNECT only (3.2.3)
  kAsterisk,   // "*", OPTIONS only (3.2.4)
};

struct RequestHead {
  std::string_view method;  // a token (RFC 9110 5.6.2)
  std::string_view target;  // request-target as received
  std::string_view path;    // origin-form path (absolute-form: the path part; authority-form: the whole target;
                            // "*" for asterisk-form)
  std::string_view query;   // after the first '?', without it, up to '#'/end; empty if none
  TargetForm target_form = TargetForm::kOrigin;
  int version_minor = 1;  // 0 or 1 (HTTP/1.2..1.9 are reported as 1)
  Header headers[kMaxHeaders];
  size_t num_headers = 0;

  // Framing and connection semantics, derived while parsing.
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;          // Transfer-Encoding ends with chunked
  bool keep_alive = true;        // after Connection tokens and version defaults; false for CONNECT
  bool client_close = false;     // "Connection: close" was sent: no request follows (RFC 9112 9.6)
  bool expect_continue = false;  // Expect: 100-continue
  // The request's authority (RFC 9112 3.3): for absolute-form and
  // authority-form the target's authority (userinfo is refused), whatever the
  // Host field says (3.2.2: an origin server MUST ignore Host then; it is
  // still required on 1.1 and must still be valid); otherwise the value of
  // the single Host field, empty if there is none.
  std::string_view host;
};

// Parses a request head from buf[0, len).
// Returns the head's length in bytes (> 0, including the blank line) when a
// complete, valid head was found; 0 when more bytes are needed; or a negative
// HTTP status on error. Leading empty lines (CRLF) before the request line are
// skipped (RFC 9112 2.2) and counted in the returned length.
//
// Strictness (RFC 9112): bare CR or LF, obs-fold, whitespace before a colon,
// empty field names, control bytes in names or values, non-token methods,
// versions other than HTTP/1.x, a missing Host on 1.1, more than one Host,
// malformed or conflicting Content-Length, Content-Length with
// Transfer-Encoding, Transfer-Encoding on 1.0 or on CONNECT, a Content-Length
// other than 0 on CONNECT (RFC 9110 9.3.6), a Transfer-Encoding whose
// final coding is not chunked (RFC 9112 6.3), chunked repeated or with
// parameters are all -400; another coding before a final chunked ("gzip,
// chunked") is -501.
int parse_request(const char* buf, size_t len, RequestHead* out, const ParserLimits& limits = {});

// Decodes a chunked body (RFC 9112 7.1) in place, incrementally.
class ChunkedDecoder {
 public:
  struct Result {
    int status;       // 1: body complete (last chunk and trailers consumed), 0: need more, <0: -400
    size_t consumed;  // input bytes consumed
    size_t produced;  // decoded data bytes written to dst
  };

  // Consumes input src[0, len) and writes decoded data to dst. dst may equal or
  // precede src inside the same buffer (the decoded body is never longer than
  // its encoding, and bytes are moved with memmove semantics).
  // After status 1, `consumed` stops right after the body's final CRLF.
  Result decode(char* dst, const char* src, size_t len);

  bool done() const { return state_ == State::kDone; }
  uint64_t total() const { return total_; }

  size_t max_line = 4096;     // chunk-size line incl. extensions, or one trailer line
  size_t max_trailers = 100;  // trailer field lines (each bounded by max_line)

 private:
  enum class State : uint8_t { kSize, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailer, kTrailerLf, kDone };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;  // bytes left in the current chunk
  uint64_t total_ = 0;      // decoded bytes so far
  size_t line_len_ = 0;     // bytes in the current size/ext/trailer line
  int digits_ = 0;          // kSize: nonzero once a hex digit was seen; kExt/kTrailer: sub-state
  size_t trailers_ = 0;     // trailer field lines so far
  bool trailer_empty_ = true;
};

}  // namespace fulmen
