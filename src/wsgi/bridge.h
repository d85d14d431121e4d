// Shared declarations of the CPython bridge. src/wsgi is the only place that
// includes Python.h; Python exceptions never leave it (they become 500s and
// log lines at the boundary).
//
// Threading: a worker runs its libuv loop on the main thread with the GIL
// released. With --threads 1 the loop takes the GIL around calls into Python;
// with --threads N > 1 (issue 10) it never does (but to log a stack at a
// request timeout): pool threads take it to run one request each, through
// a Job (core/job.h), and what must be released with the GIL after the loop
// sent it (body references, sent files) is handed back to them (the
// "garbage" list in app.cc). All GIL moves go through Gil::Acquire /
// Gil::Release so nested paths (a flush that drops a body reference while
// wsgi.input is blocked in recv) never deadlock.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>  // PyMemberDef and T_* on Python < 3.12

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/connection.h"
#include "core/exchange.h"
#include "core/handler.h"
#include "core/job.h"

namespace fulmen::wsgi {

// ---------------------------------------------------------------- GIL

// Per thread: the depth and the saved thread state belong to the thread that
// took them (a Python thread that calls into the bridge must never see, or
// change, the loop thread's count).
struct Call;
struct GilState {
  int depth = 0;
  PyThreadState* saved = nullptr;
  bool loop_thread = false;
  Call* current = nullptr;                        // The request this thread serves (what start_response acts on).
  PyGILState_STATE gstate = PyGILState_UNLOCKED;  // A pool thread's, from PyGILState_Ensure.
};

class Gil {
  using State = GilState;
  static inline thread_local State state_;

 public:
  // RAII: holds the GIL for the scope (re-entrant). The thread's state is
  // looked up once (a thread_local costs a call in a shared object).
  class Acquire {
   public:
    Acquire() : s_(&state_) {
      if (s_->depth++ == 0) PyEval_RestoreThread(s_->saved);
    }
    ~Acquire() {
      if (--s_->depth == 0) s_->saved = PyEval_SaveThread();
    }
    Acquire(const Acquire&) = delete;
    Acquire& operator=(const Acquire&) = delete;

   private:
    State* s_;
  };
  // RAII: lets other Python threads run for the scope (blocking I/O, the loop).
  class Release {
   public:
    Release() : s_(&state_), depth_before_(s_->depth) {
      s_->depth = 0;
      s_->saved = PyEval_SaveThread();
    }
    ~Release() {
      PyEval_RestoreThread(s_->saved);
      s_->depth = depth_before_;
    }
    Release(const Release&) = delete;
    Release& operator=(const Release&) = delete;

   private:
    State* s_;
    int depth_before_;
  };
  // Called with the GIL held when a Python caller enters the core (serve()).
  // That thread runs the master and, after fork, the worker's loop.
  static void entered_from_python() {
    state_.depth = 1;
    state_.loop_thread = true;
  }
  // True on the thread that runs the worker's loop.
  static bool on_loop_thread() { return state_.loop_thread; }
  // Identifies the calling thread. The per-request objects (write(),
  // wsgi.input, start_response) act only for the thread that serves their
  // request (the loop's, or a pool thread's); any other is refused.
  static const void* thread_token() { return &state_; }
  static Call*& current() { return state_.current; }
  // A pool thread made by the core (unknown to Python) gets a thread state,
  // then lets the GIL go; thread_end() gives the thread state back.
  static void thread_begin() {
    state_.gstate = PyGILState_Ensure();
    state_.depth = 0;
    state_.saved = PyEval_SaveThread();
  }
  static void thread_end() {
    PyEval_RestoreThread(state_.saved);
    state_.saved = nullptr;
    PyGILState_Release(state_.gstate);
  }
  // A pool thread keeps the GIL from one request to the next while requests
  // are queued (hold(): taken unless held), and lets it go when it runs out
  // of work (let_go()): one GIL hand-off per burst, not per request.
  static void hold() {
    if (state_.depth == 0) {
      PyEval_RestoreThread(state_.saved);
      state_.depth = 1;
    }
  }
  static void let_go() {
    if (state_.depth == 1) {
      state_.depth = 0;
      state_.saved = PyEval_SaveThread();
    }
  }
};

// Owning reference, released with the GIL held by the owner's caller.
struct PyRef {
  PyObject* p = nullptr;
  PyRef() = default;
  explicit PyRef(PyObject* o) : p(o) {}
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  PyRef(PyRef&& o) noexcept : p(o.p) { o.p = nullptr; }
  PyRef& operator=(PyRef&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  ~PyRef() { Py_XDECREF(p); }
  PyObject* get() const { return p; }
  PyObject* release() {
    PyObject* r = p;
    p = nullptr;
    return r;
  }
  void reset(PyObject* o = nullptr) {
    PyObject* old = p;
    p = o;
    Py_XDECREF(old);
  }
  explicit operator bool() const { return p != nullptr; }
};

// The str last made from some request text, handed out again while the next
// text is the same bytes: most requests repeat the previous one's Host,
// User-Agent, path or client address, and a reused str is a compare instead
// of an allocation and a free. strs are immutable, so sharing one between
// environs is invisible to apps. Used with the GIL held; a miss may run
// Python (a collection during the allocation), so nothing borrowed from the
// slot is kept across it.
struct RecentStr {
  PyRef last;

  // A new reference to a latin-1 str of `s`, or nullptr with an exception.
  PyObject* get(std::string_view s) {
    PyObject* l = last.get();
    if (l != nullptr && static_cast<size_t>(PyUnicode_GET_LENGTH(l)) == s.size() &&
        PyUnicode_KIND(l) == PyUnicode_1BYTE_KIND && memcmp(PyUnicode_1BYTE_DATA(l), s.data(), s.size()) == 0)
      return Py_NewRef(l);
    PyObject* v = PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
    if (v != nullptr) last.reset(Py_NewRef(v));
    return v;
  }
};

// Logs the current Python exception with its traceback and clears it.
void log_exception(const char* context);

// ---------------------------------------------------------------- wsgi.input

// One Input serves one request at a time. A detached Input (its request
// ended) raises RuntimeError; so does a read from a thread other than the one
// serving the request (thread: Gil::thread_token()). An Input nobody else
// holds (refcount 1) is attached again to the next request instead of
// allocating a new one.
extern PyTypeObject InputType;
PyObject* input_new(Exchange* conn, const void* thread);  // New reference, attached to conn.
void input_attach(PyObject* input, Exchange* conn, const void* thread);
void input_detach(PyObject* input);

// ---------------------------------------------------------------- write()

// The write callable start_response returns (PEP 3333 "The write()
// Callable"), bound to one request; reused like an Input.
struct Call;
extern PyTypeObject WriterType;
PyObject* writer_new(Call* call);  // New reference, attached to call.
void writer_attach(PyObject* writer, Call* call);
void writer_detach(PyObject* writer);

// ---------------------------------------------------------------- wsgi.file_wrapper

extern PyTypeObject FileWrapperType;
// Borrowed; nullptr with a Python exception when the wrapper was never
// initialised (FileWrapper.__new__ without __init__).
PyObject* file_wrapper_filelike(PyObject* wrapper);

// ---------------------------------------------------------------- wsgi.errors

// wsgi.errors: text is logged a whole line at a time; a partial line waits in
// the stream until its newline, flush(), or the end of the request.
extern PyTypeObject ErrorsType;
void errors_flush_pending(PyObject* errors);

// ---------------------------------------------------------------- environ

struct ListenerInfo {
  std::string server_name;
  std::string server_port;
};

struct EnvironSettings {
  std::vector<ListenerInfo> listeners;
  std::string root_path;  // SCRIPT_NAME prefix ("" or "/x")
  bool multiprocess = false;
  bool multithread = false;  // --threads > 1
};

class EnvironBuilder {
 public:
  // Builds keys and per-listener prototype dicts. Returns false with a
  // Python exception set on failure.
  bool init(const EnvironSettings& settings);

  // Returns a new environ dict for the request, or nullptr with an exception.
  // `path` is the percent-decoded path; SCRIPT_NAME and PATH_INFO are set by
  // the caller through set_script_path().
  PyObject* build(Exchange& c, const RequestHead& head, PyObject* input);

  // Sets SCRIPT_NAME and PATH_INFO. script_prefix is added after root_path.
  bool set_script_path(PyObject* env, std::string_view script_prefix, std::string_view path_info);

  const std::string& root_path() const { return settings_.root_path; }
  PyObject* errors() const { return errors_.get(); }  // The worker's wsgi.errors.

 private:
  struct KnownHeader {
    std::string lower;
    PyObject* key;     // interned "HTTP_..." (or CONTENT_TYPE / CONTENT_LENGTH)
    RecentStr recent;  // This field's last value.
  };
  // The known header of that name (any case), or nullptr.
  KnownHeader* known_for(std::string_view name);
  // The environ key of an unknown header: a new reference, or nullptr (with
  // an exception, or none when the name cannot be a key).
  static PyObject* unknown_key(std::string_view name);

  EnvironSettings settings_;
  std::vector<PyRef> protos_;
  std::vector<KnownHeader> known_;
  std::vector<int16_t> table_;  // open addressing over known_
  PyRef k_method_, k_path_, k_query_, k_protocol_, k_remote_addr_, k_remote_port_, k_raw_uri_, k_request_uri_,
      k_input_, k_script_name_, k_http10_, k_http11_, k_empty_, errors_;
  PyRef k_url_scheme_, k_https_;  // wsgi.url_scheme = "https" when a trusted proxy says so (issue 9)
  std::vector<std::pair<std::string, PyRef>> methods_;
  RecentStr recent_target_, recent_path_, recent_query_, recent_addr_, recent_port_;
};

// Percent-decodes a path (RFC 3986 2.1). Invalid escapes are kept as-is.
void percent_decode(std::string_view in, std::string& out);

// ---------------------------------------------------------------- app

struct Route {
  std::string prefix;  // "/" or "/x" (no trailing slash)
  PyRef handler;
};

struct AppSettings {
  bool script_mode = false;
  bool threaded = false;  // --threads > 1: requests are served by run_job() on pool threads.
};

class App;

// The response status and headers as validated by start_response: a copy,
// so an app that changes its header list afterwards changes nothing that is
// sent (PEP 3333 leaves the list to the app; the server must not read it
// again). The text is laid out as it goes on the wire, "Name: value\r\n" per
// field after the status, so the head is written without another walk over
// Python objects.
struct ResponseHead {
  Buffer text;  // The status ("200 OK"), then the fields.
  uint32_t status_len = 0;
  int code = 0;
  int64_t content_length = -1;  // From the app's Content-Length, if any.
  bool app_server = false;      // The app sent its own Server / Date.
  bool app_date = false;
  bool valid = false;

  std::string_view status() const { return {text.data(), status_len}; }
  // Every field as it goes on the wire: "Name: value\r\n" each.
  std::string_view lines() const { return {text.data() + status_len, text.size() - status_len}; }
  void clear() {
    text.clear();
    status_len = 0;
    code = 0;
    content_length = -1;
    app_server = app_date = false;
    valid = false;
  }
  // Validates status and headers (PEP 3333, RFC 9110) and copies them in;
  // hop-by-hop fields are dropped (reported to app, when given). Returns
  // false with a Python exception; *this is then unspecified.
  bool assign(PyObject* status, PyObject* headers, App* app);
};

// The per-request state, shared by start_response, write() and wsgi.input.
// Calls are pooled by the App: the buffers, the Input and the write callable
// are reused from one request to the next.
struct Call {
  Exchange* conn = nullptr;      // The Connection (inline) or the Job (threaded).
  const void* thread = nullptr;  // Gil::thread_token() of the thread that serves it.
  App* app = nullptr;
  ResponseHead head;     // Valid once start_response succeeded.
  ResponseHead scratch;  // Where start_response validates a head before swapping it in.
  PyRef input;           // wsgi.input, attached to conn while the request lasts.
  PyRef writer;          // write(), attached once start_response returned it.
  bool writer_attached = false;
  bool head_sent = false;
  bool done = false;     // finish_response / abort: nothing more may be written.
  bool lenient = false;  // Script mode: str bodies, optional start_response.
  std::string path;      // Request path, for log lines.
  ~Call();
};

// Returns a Call to its App's pool (the GIL must be held).
struct CallRecycler {
  void operator()(Call* call) const;
};
using CallPtr = std::unique_ptr<Call, CallRecycler>;

class App final : public Handler {
 public:
  App(PyObject* target, const EnvironSettings& env, const AppSettings& settings);
  ~App() override;
  bool init();  // Python exception on failure.

  std::unique_ptr<ResponseStream> handle(Connection& c, const RequestHead& head) override;
  // Threaded mode: one request, to its end, on a pool thread.
  void run_job(Job& job) override;
  std::string describe_job(const Job& job) override;
  void thread_begin() override { Gil::thread_begin(); }
  void thread_end() override { Gil::thread_end(); }
  void thread_idle() override { Gil::let_go(); }
  // The GIL is held across a pipelined batch instead of per request.
  void batch_begin() override {
    if (batch_depth_++ == 0) batch_gil_.emplace();
  }
  void batch_end() override {
    if (--batch_depth_ == 0) batch_gil_.reset();
  }

  // Writes the response head from call's status and headers (or the script
  // mode default). Returns false with a Python exception when the app never
  // called start_response.
  bool send_head(Call& call, int64_t known_length);
  // Produces one body piece (bytes, or str in lenient mode), by reference
  // when by_ref or when large, else copied. Returns false with a Python
  // exception when the item is of the wrong type.
  bool write_item(Call& call, PyObject* item, bool by_ref = false);
  // Ends the response normally.
  void finish(Call& call);
  // Handles an exception from the app: log, 500 or abort.
  void fail(Call& call, const char* context);
  // The status is known (start_response was called, or the script-mode
  // default applies) and it says the response has no body: HEAD, 204, 304
  // (RFC 9110 9.3.2, 15.3.5, 15.4.5).
  bool no_body(const Call& call) const;

  // The request the calling thread serves.
  static Call* current() { return Gil::current(); }
  static void set_current(Call* c) { Gil::current() = c; }
  PyObject* start_response() const { return start_response_.get(); }
  bool threaded() const { return settings_.threaded; }

  // A hop-by-hop field from the app is dropped; say so once per worker.
  void note_dropped_hop_by_hop(std::string_view name);

  void recycle(Call* call);

 private:
  CallPtr new_call(Exchange& c);
  // The request path shared by both modes: route, environ, app call, response.
  std::unique_ptr<ResponseStream> serve(Exchange& c, const RequestHead& head);
  std::unique_ptr<ResponseStream> respond(CallPtr call, PyObject* result);
  bool try_sendfile(Call& call, PyObject* result, PyObject* file);

  PyRef target_;
  std::vector<Route> routes_;
  EnvironBuilder env_;
  EnvironSettings env_settings_;
  AppSettings settings_;
  PyRef start_response_;
  ResponseHead default_head_;  // Script mode without start_response.
  // Pooled Calls; pool threads share them (the mutex, not the GIL, guards
  // the vector, so a free-threaded build needs nothing more).
  std::mutex free_mu_;
  std::vector<std::unique_ptr<Call>> free_calls_;
  std::optional<Gil::Acquire> batch_gil_;
  int batch_depth_ = 0;  // batch_begin() calls not yet ended (they nest).
  std::atomic<bool> hop_by_hop_logged_{false};
};

PyObject* make_start_response();  // The reusable start_response callable.

}  // namespace fulmen::wsgi
