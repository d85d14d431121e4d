// wsgi.input (PEP 3333): a file-like object over the request body. Reads
// serve decoded bytes already received; when more are needed the worker
// blocks on this connection's socket (GIL released), as a synchronous WSGI
// server must, bounded by body_timeout.
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

struct Input {
  PyObject_HEAD
  Connection* conn;  // nullptr once the request is over: reads see EOF.
};

// Ensures at least `want` bytes are available (or the body is complete).
// Returns false with OSError set when the body cannot be read.
bool fill_to(Input* self, size_t want) {
  Connection* c = self->conn;
  while (c->body_available().size() < want && !c->body_complete()) {
    int r;
    {
      Gil::Release nogil;
      r = c->body_fill_blocking();
    }
    if (r < 0) {
      PyErr_SetString(PyExc_OSError, "request body could not be read (client gone, too slow, or malformed)");
      return false;
    }
    if (r == 0) break;
  }
  return true;
}

PyObject* take(Input* self, size_t n) {
  std::string_view avail = self->conn->body_available();
  n = std::min(n, avail.size());
  PyObject* b = PyBytes_FromStringAndSize(avail.data(), static_cast<Py_ssize_t>(n));
  if (b) self->conn->body_consume(n);
  return b;
}

bool parse_size(PyObject* const* args, Py_ssize_t nargs, Py_ssize_t* size) {
  *size = -1;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "expected at most one argument");
    return false;
  }
  if (nargs == 1 && args[0] != Py_None) {
    *size = PyLong_AsSsize_t(args[0]);
    if (*size == -1 && PyErr_Occurred()) return false;
  }
  return true;
}

PyObject* input_read(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<Input*>(o);
  Py_ssize_t size;
  if (!parse_size(args, nargs, &size)) return nullptr;
  if (self->conn == nullptr || size == 0) return PyBytes_FromStringAndSize(nullptr, 0);
  if (size < 0) {
    // Everything to the end. Bodies larger than what was buffered before the
    // app was called arrive piecewise; collect them.
    std::string all;
    for (;;) {
      std::string_view avail = self->conn->body_available();
      all.append(avail);
      self->conn->body_consume(avail.size());
      if (self->conn->body_complete()) break;
      if (!fill_to(self, 1)) return nullptr;
    }
    return PyBytes_FromStringAndSize(all.data(), static_cast<Py_ssize_t>(all.size()));
  }
  if (!fill_to(self, static_cast<size_t>(size))) return nullptr;
  return take(self, static_cast<size_t>(size));
}

PyObject* readline_impl(Input* self, Py_ssize_t size) {
  if (self->conn == nullptr || size == 0) return PyBytes_FromStringAndSize(nullptr, 0);
  size_t limit = size < 0 ? SIZE_MAX : static_cast<size_t>(size);
  size_t scanned = 0;
  for (;;) {
    std::string_view avail = self->conn->body_available();
    size_t end = std::min(avail.size(), limit);
    for (size_t i = scanned; i < end; ++i)
      if (avail[i] == '\n') return take(self, i + 1);
    if (end == limit || self->conn->body_complete()) return take(self, end);
    scanned = end;
    if (!fill_to(self, avail.size() + 1)) return nullptr;
  }
}

PyObject* input_readline(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  Py_ssize_t size;
  if (!parse_size(args, nargs, &size)) return nullptr;
  return readline_impl(reinterpret_cast<Input*>(o), size);
}

PyObject* input_readlines(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  Py_ssize_t hint;
  if (!parse_size(args, nargs, &hint)) return nullptr;
  PyRef lines(PyList_New(0));
  if (!lines) return nullptr;
  Py_ssize_t total = 0;
  for (;;) {
    PyRef line(readline_impl(reinterpret_cast<Input*>(o), -1));
    if (!line) return nullptr;
    if (PyBytes_GET_SIZE(line.get()) == 0) break;
    total += PyBytes_GET_SIZE(line.get());
    if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
    if (hint > 0 && total >= hint) break;
  }
  return lines.release();
}

PyObject* input_iternext(PyObject* o) {
  PyObject* line = readline_impl(reinterpret_cast<Input*>(o), -1);
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

PyObject* input_new(Connection* conn) {
  Input* self = PyObject_New(Input, &InputType);
  if (self) self->conn = conn;
  return reinterpret_cast<PyObject*>(self);
}

void input_detach(PyObject* input) { reinterpret_cast<Input*>(input)->conn = nullptr; }

}  // namespace fulmen::wsgi
