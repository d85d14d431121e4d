// One request/response exchange as the handler sees it: the request body to
// read and the response to write (issue 10).
//
// Two types implement it. A Connection serves the exchange in place, on the
// loop thread (--threads 1, the inline path). A Job serves it from a pool
// thread (--threads N > 1): it records the response as a list of operations
// the loop applies to the Connection, and feeds the body the loop reads for
// it, so no Connection state is ever touched off the loop thread.
//
// Every method is called by one thread at a time: the loop thread for a
// Connection, the thread that runs the job for a Job.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/handler.h"

namespace fulmen {

class Exchange {
 public:
  virtual ~Exchange() = default;

  // Which listener accepted the connection, and the client's address.
  virtual size_t listener() const = 0;
  virtual const sockaddr_storage& peer() const = 0;
  // The client the request is from: the peer, unless a trusted proxy said
  // otherwise (issue 9); and whether a trusted proxy said it came over https.
  virtual const sockaddr_storage& client() const = 0;
  virtual bool forwarded_https() const = 0;

  // ---- Request body, for wsgi.input.

  // Decoded body bytes received and not yet consumed. Valid until the next
  // body call.
  virtual std::string_view body_available() const = 0;
  virtual void body_consume(size_t n) = 0;
  virtual bool body_complete() const = 0;
  // The body could not be read: malformed chunk, timeout or disconnect.
  virtual bool body_failed() const = 0;
  // Blocks until more body bytes are decoded, at most until deadline_ms (a
  // MonotonicClock time from body_read_deadline()). Returns 1 when bytes
  // were added, 0 at the end of the body, -1 on timeout, disconnect, a
  // malformed chunk or a body over max_body_size.
  virtual int body_fill_blocking(uint64_t deadline_ms) = 0;
  // The deadline of one blocking body read that starts now: body_timeout
  // from now in total (issue 13 item 3).
  virtual uint64_t body_read_deadline() const = 0;

  // ---- Response. The head: start_response(), add_header()..., end_headers().

  // `status` is the status text as given by the app ("200 OK"), `code` its
  // numeric value; app_server / app_date: the app sent its own Server /
  // Date header, so ours is left out.
  virtual void start_response(std::string_view status, int code, bool app_server = false, bool app_date = false) = 0;
  // One validated header; a Content-Length given here is enforced.
  virtual void add_header(std::string_view name, std::string_view value) = 0;
  // Validated header lines, "Name: value\r\n" each, as add_header() would
  // have them one by one; content_length >= 0 when one of them is the
  // Content-Length (its value, digits only), which is then enforced.
  virtual void add_header_block(std::string_view lines, int64_t content_length) = 0;
  // known_length >= 0 when the whole body length is known and no
  // Content-Length header was given (one is then added).
  virtual void end_headers(int64_t known_length) = 0;
  virtual void write_body(const char* data, size_t len) = 0;  // Copies.
  // Queues data without copying; `release` is called once, when it is sent
  // or dropped, on the loop thread.
  virtual void write_body_ref(const char* data, size_t len, Releaser release) = 0;
  // Queues len bytes of file_fd from offset (sendfile); `release` as above.
  virtual void write_body_file(int file_fd, int64_t offset, int64_t len, Releaser release) = 0;
  // Ends the body (last-chunk when chunked). The exchange is over.
  virtual void finish_response() = 0;
  // The response cannot be completed: close once queued output is sent.
  virtual void abort_response() = 0;
  // A complete canned error response when the head has not left yet,
  // otherwise abort_response().
  virtual void send_error(int status) = 0;

  virtual bool head_started() const = 0;
  // Whether a response with this status carries no body for this request:
  // HEAD, 1xx, 204, 304 (RFC 9110 9.3.2, 15.3.5, 15.4.5).
  virtual bool status_has_no_body(int code) const = 0;
  // True after start_response() when the response has no body.
  virtual bool response_has_no_body() const = 0;
  // Sends what is queued now, without waiting (PEP 3333: a streamed block
  // is not delayed). Returns false when the client is gone.
  virtual bool push() = 0;
  // Asked instead of push() between a stream's blocks: true when this block
  // may wait for the end of the loop turn, to leave with other responses;
  // the producer then yields and is called again once it has left. False:
  // push() it now.
  virtual bool hold_block() { return false; }
  // True when the body queued so far reaches the response's Content-Length
  // and the response may wait for the end of the loop turn anyway: the
  // iterable's next item can only be its end, so the producer may ask for it
  // before the body leaves (one call instead of a yield and a resume).
  virtual bool may_end_before_write() const { return false; }
  // True once the app offered body past its Content-Length (the excess was
  // dropped and the connection ends after this response): a producer stops
  // asking for more, so an endless iterable does not spin the worker.
  virtual bool body_overrun() const { return false; }
  // True when enough output is queued that a producer should wait.
  virtual bool output_congested() const = 0;
  // Waits until the queued output has drained, up to send_timeout in total.
  // Returns false when the client is gone or too slow.
  virtual bool flush_blocking() = 0;
  virtual bool client_gone() const = 0;
};

}  // namespace fulmen
