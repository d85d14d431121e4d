// wsgi.input (PEP 3333): a file-like object over the request body. Reads
// serve decoded bytes already received; when more are needed the worker
// blocks on this connection's socket (GIL released), as a synchronous WSGI
// server must, bounded by body_timeout. Every read consumes what it copies as
// it goes, so a read of any size streams through a bounded input buffer.
//
// An Input belongs to one request: once that request is over it is detached
// and every read raises RuntimeError (a kept wsgi.input must not read the
// body of whatever request the connection carries next). Reads from a thread
// other than the one serving the request are refused too: they would race it
// on the body's state. With --threads the body source is a Job, and a read
// that waits blocks only the reading thread (issue 10).
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

struct Input {
  PyObject_HEAD Exchange* conn;  // nullptr once the request is over.
  const void* thread;            // The thread serving the request (Gil::thread_token()).
};

// The body to read from, or nullptr with RuntimeError set.
Exchange* usable(Input* self) {
  if (self->conn == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "wsgi.input read after its request ended");
    return nullptr;
  }
  if (self->thread != Gil::thread_token()) {
    PyErr_SetString(PyExc_RuntimeError, "wsgi.input read from a thread other than its request's; not supported");
    return nullptr;
  }
  return self->conn;
}

// Waits for more body bytes, until deadline_ms at the latest. Returns 1
// (more), 0 (end of body), or -1 with OSError set.
int fill(Exchange* c, uint64_t deadline_ms) {
  int r;
  {
    Gil::Release nogil;
    r = c->body_fill_blocking(deadline_ms);
  }
  if (r < 0) PyErr_SetString(PyExc_OSError, "request body could not be read (client gone, too slow, or malformed)");
  return r;
}

// Reads up to `limit` bytes (SIZE_MAX: to the end), stopping after a newline
// when `line` is set. Returns a new bytes object or nullptr with an exception.
PyObject* read_impl(Input* self, size_t limit, bool line) {
  Exchange* c = usable(self);
  if (c == nullptr) return nullptr;
  if (limit == 0) return PyBytes_FromStringAndSize(nullptr, 0);
  // The common case: everything asked for is already here, one copy.
  std::string_view avail = c->body_available();
  size_t n = std::min(limit, avail.size());
  if (line) {
    size_t nl = avail.substr(0, n).find('\n');
    if (nl != std::string_view::npos) n = nl + 1;
  }
  if (n == limit || c->body_complete() || (line && n > 0 && avail[n - 1] == '\n')) {
    PyObject* b = PyBytes_FromStringAndSize(avail.data(), static_cast<Py_ssize_t>(n));
    if (b) c->body_consume(n);
    return b;
  }
  // One read call waits body_timeout in total, however the bytes trickle
  // in: the loop thread is blocked meanwhile (issue 13 item 3).
  uint64_t deadline = c->body_read_deadline();
  std::string out;
  for (;;) {
    avail = c->body_available();
    n = std::min(limit - out.size(), avail.size());
    bool found = false;
    if (line) {
      size_t nl = avail.substr(0, n).find('\n');
      if (nl != std::string_view::npos) {
        n = nl + 1;
        found = true;
      }
    }
    out.append(avail.data(), n);
    c->body_consume(n);
    if (found || out.size() == limit || c->body_complete()) break;
    int r = fill(c, deadline);
    if (r < 0) return nullptr;
    if (r == 0) break;
  }
  return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

bool parse_size(PyObject* const* args, Py_ssize_t nargs, size_t* size) {
  *size = SIZE_MAX;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "expected at most one argument");
    return false;
  }
  if (nargs == 1 && args[0] != Py_None) {
    Py_ssize_t n = PyLong_AsSsize_t(args[0]);
    if (n == -1 && PyErr_Occurred()) return false;
    if (n >= 0) *size = static_cast<size_t>(n);
  }
  return true;
}

PyObject* input_read(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  size_t size;
  if (!parse_size(args, nargs, &size)) return nullptr;
  return read_impl(reinterpret_cast<Input*>(o), size, false);
}

PyObject* input_readline(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  size_t size;
  if (!parse_size(args, nargs, &size)) return nullptr;
  return read_impl(reinterpret_cast<Input*>(o), size, true);
}

PyObject* input_readlines(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  size_t hint;
  if (!parse_size(args, nargs, &hint)) return nullptr;
  PyRef lines(PyList_New(0));
  if (!lines) return nullptr;
  size_t total = 0;
  for (;;) {
    PyRef line(read_impl(reinterpret_cast<Input*>(o), SIZE_MAX, true));
    if (!line) return nullptr;
    if (PyBytes_GET_SIZE(line.get()) == 0) break;
    total += static_cast<size_t>(PyBytes_GET_SIZE(line.get()));
    if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
    if (hint != SIZE_MAX && hint > 0 && total >= hint) break;
  }
  return lines.release();
}

PyObject* input_iternext(PyObject* o) {
  PyObject* line = read_impl(reinterpret_cast<Input*>(o), SIZE_MAX, true);
  if (line && PyBytes_GET_SIZE(line) == 0) {
    Py_DECREF(line);
    return nullptr;  // StopIteration
  }
  return line;
}

PyMethodDef input_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read)), METH_FASTCALL,
     "read(size=-1) -> bytes: up to size bytes of the body, or all of the rest."},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readline)), METH_FASTCALL,
     "readline(size=-1) -> bytes: one line including its newline, at most size bytes."},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readlines)), METH_FASTCALL,
     "readlines(hint=-1) -> list of lines."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

PyTypeObject InputType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "fulmen._core.Input";
  t.tp_basicsize = sizeof(Input);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "wsgi.input: the request body as a binary file-like object (PEP 3333).";
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = input_iternext;
  t.tp_methods = input_methods;
  t.tp_dealloc = [](PyObject* o) { PyObject_Free(o); };
  return t;
}();

PyObject* input_new(Exchange* conn, const void* thread) {
  Input* self = PyObject_New(Input, &InputType);
  if (self) {
    self->conn = conn;
    self->thread = thread;
  }
  return reinterpret_cast<PyObject*>(self);
}

void input_attach(PyObject* input, Exchange* conn, const void* thread) {
  reinterpret_cast<Input*>(input)->conn = conn;
  reinterpret_cast<Input*>(input)->thread = thread;
}

void input_detach(PyObject* input) {
  reinterpret_cast<Input*>(input)->conn = nullptr;
}

}  // namespace fulmen::wsgi
