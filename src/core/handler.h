// The boundary between the core and whatever answers requests (the WSGI bridge
// in src/wsgi, or a stub in tests and fuzz targets). The core calls a Handler
// once per request; the handler writes the response through Connection's
// response API and, when the body is not produced at once, hands back a
// ResponseStream the connection pumps whenever the socket has room.
#pragma once

#include <memory>

#include "core/parser.h"

namespace fulmen {

class Connection;

// Called when the object that backs zero-copy output is no longer needed: the
// kernel has the bytes, or the connection is gone. Called exactly once.
struct Releaser {
  void (*fn)(void* ctx) = nullptr;
  void* ctx = nullptr;
  void operator()() const {
    if (fn != nullptr) fn(ctx);
  }
};

class ResponseStream {
 public:
  virtual ~ResponseStream() = default;  // Releases the app's resources (WSGI close()).

  // Produces more of the body into c. Returns true once the response is over
  // (finish_response() or abort_response() was called), false to be called
  // again when the output has drained.
  virtual bool pump(Connection& c) = 0;
};

class Handler {
 public:
  virtual ~Handler() = default;

  // Bracket the requests answered from one read (a pipelined batch), so a
  // handler can take an expensive resource once per batch (the WSGI bridge
  // takes the GIL). Calls nest: batch_end() follows every batch_begin().
  virtual void batch_begin() {}
  virtual void batch_end() {}

  // Serves one request, synchronously. `head` views the connection's input
  // buffer and is valid only until the first body call on c. Returns nullptr
  // when the response is complete, or a stream to pump for the rest.
  virtual std::unique_ptr<ResponseStream> handle(Connection& c, const RequestHead& head) = 0;
};

}  // namespace fulmen
