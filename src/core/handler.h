// The boundary between the core and whatever answers requests (the WSGI bridge
// in src/wsgi, or a stub in tests and fuzz targets). The core calls a Handler
// once per request; the handler writes the response through Connection's
// response API and, when the body is not produced at once, hands back a
// ResponseStream the connection pumps whenever the socket has room.
#pragma once

#include <memory>
#include <string>

#include "core/parser.h"

namespace fulmen {

class Connection;
class Exchange;
class Job;

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

  // Produces more of the body into x. Returns true once the response is over
  // (finish_response() or abort_response() was called), false to be called
  // again when the output has drained.
  virtual bool pump(Exchange& x) = 0;
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

  // ---- Threaded mode (WorkerConfig::threads > 1, issue 10).

  // Bracket the life of one pool thread, on that thread (the WSGI bridge
  // gives it a Python thread state).
  virtual void thread_begin() {}
  virtual void thread_end() {}
  // The thread found no job queued and is about to wait for one. A handler
  // may keep a resource from one job to the next while jobs keep coming
  // (the bridge keeps the GIL, saving a hand-off per request) and let it go
  // here.
  virtual void thread_idle() {}
  // Serves one request on a pool thread, to its end: the response is
  // written through the job (an Exchange), never through the Connection.
  // The job may be cancelled meanwhile (Job::client_gone()). A job left
  // without a response (the default) is answered 500 by the connection.
  virtual void run_job(Job& /*job*/) {}
  // On the loop thread, when a job outlived --request-timeout: what its
  // thread is doing (the Python stack), for the log.
  virtual std::string describe_job(const Job& /*job*/) { return {}; }
};

}  // namespace fulmen
