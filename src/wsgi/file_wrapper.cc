// wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling") and
// wsgi.errors. The server recognises a FileWrapper over a real file and sends
// it with sendfile(2); iterating it is the portable fallback.

#include <new>
#include <string>

#include "core/log.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

struct FileWrapper {
  PyObject_HEAD PyObject* filelike;
  Py_ssize_t blksize;
};

int fw_init(PyObject* o, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<FileWrapper*>(o);
  static const char* kw[] = {"filelike", "blksize", nullptr};
  PyObject* filelike;
  Py_ssize_t blksize = 8192;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:FileWrapper", const_cast<char**>(kw), &filelike, &blksize))
    return -1;
  Py_XSETREF(self->filelike, Py_NewRef(filelike));
  self->blksize = blksize > 0 ? blksize : 8192;
  return 0;
}

// The wrapped object as a new reference (a read() may run code that calls
// __init__ again and replaces it), or nullptr with ValueError when the
// wrapper was made with FileWrapper.__new__ and never initialised.
PyObject* filelike_ref(PyObject* o) {
  PyObject* f = reinterpret_cast<FileWrapper*>(o)->filelike;
  if (f == nullptr) {
    PyErr_SetString(PyExc_ValueError, "FileWrapper is not initialised (no file-like object)");
    return nullptr;
  }
  return Py_NewRef(f);
}

PyObject* fw_iternext(PyObject* o) {
  PyRef f(filelike_ref(o));
  if (!f) return nullptr;
  PyRef data(PyObject_CallMethod(f.get(), "read", "n", reinterpret_cast<FileWrapper*>(o)->blksize));
  if (!data) return nullptr;
  Py_ssize_t n = PyObject_Length(data.get());
  if (n < 0) return nullptr;  // Not sized: the TypeError stands.
  if (n == 0) return nullptr;
  return data.release();
}

PyObject* fw_close(PyObject* o, PyObject*) {
  PyRef f(filelike_ref(o));
  if (!f) return nullptr;
  if (PyObject_HasAttrString(f.get(), "close")) {
    PyRef r(PyObject_CallMethod(f.get(), "close", nullptr));
    if (!r) return nullptr;
  }
  Py_RETURN_NONE;
}

void fw_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<FileWrapper*>(o);
  PyObject_GC_UnTrack(o);
  Py_CLEAR(self->filelike);
  Py_TYPE(o)->tp_free(o);
}

int fw_traverse(PyObject* o, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<FileWrapper*>(o)->filelike);
  return 0;
}

int fw_clear(PyObject* o) {
  Py_CLEAR(reinterpret_cast<FileWrapper*>(o)->filelike);
  return 0;
}

PyMethodDef fw_methods[] = {{"close", fw_close, METH_NOARGS, "Closes the wrapped file."},
                            {nullptr, nullptr, 0, nullptr}};

PyMemberDef fw_members[] = {
    {"filelike", T_OBJECT_EX, offsetof(FileWrapper, filelike), READONLY, "The wrapped file-like object."},
    {"blksize", T_PYSSIZET, offsetof(FileWrapper, blksize), READONLY, "Block size used when iterating."},
    {nullptr, 0, 0, 0, nullptr}};

// ---------------------------------------------------------------- wsgi.errors

// print() writes its text and then "\n" in separate calls, so logging each
// write as it comes makes one line per piece (and an empty ERROR line for the
// newline). Text is held until its line is complete; all complete lines of a
// write go out as one log entry (one write(2): a traceback stays together).
// The lines are written as they are, without the log's prefix (log_raw()).
struct Errors {
  PyObject_HEAD std::string* pending;  // The start of a line not yet logged.
};

PyObject* errors_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* o = type->tp_alloc(type, 0);
  if (o == nullptr) return nullptr;
  auto* pending = new (std::nothrow) std::string();
  if (pending == nullptr) {
    Py_DECREF(o);  // errors_dealloc copes with a null pending.
    return PyErr_NoMemory();
  }
  reinterpret_cast<Errors*>(o)->pending = pending;
  return o;
}

void errors_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<Errors*>(o);
  if (self->pending != nullptr && !self->pending->empty()) log_raw(LogLevel::kError, *self->pending);
  delete self->pending;
  Py_TYPE(o)->tp_free(o);
}

PyObject* errors_write(PyObject* o, PyObject* arg) {
  Py_ssize_t len;
  const char* s = PyUnicode_AsUTF8AndSize(arg, &len);
  if (s == nullptr) return nullptr;
  std::string& pending = *reinterpret_cast<Errors*>(o)->pending;
  std::string_view text(s, static_cast<size_t>(len));
  size_t last_nl = text.rfind('\n');
  if (last_nl == std::string_view::npos) {
    pending.append(text);
  } else if (pending.empty()) {
    log_raw(LogLevel::kError, text.substr(0, last_nl));  // Empty (a lone "\n"): nothing is logged.
    pending.assign(text.substr(last_nl + 1));
  } else {
    pending.append(text.substr(0, last_nl));
    log_raw(LogLevel::kError, pending);
    pending.assign(text.substr(last_nl + 1));
  }
  return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

PyObject* errors_writelines(PyObject* self, PyObject* lines) {
  PyRef it(PyObject_GetIter(lines));
  if (!it) return nullptr;
  while (PyObject* line = PyIter_Next(it.get())) {
    PyRef l(line);
    PyRef r(errors_write(self, line));
    if (!r) return nullptr;
  }
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

PyObject* errors_flush(PyObject* self, PyObject*) {
  errors_flush_pending(self);
  Py_RETURN_NONE;
}

PyMethodDef errors_methods[] = {
    {"write", errors_write, METH_O, "Writes a string to the server's error log, a whole line at a time."},
    {"writelines", errors_writelines, METH_O, "Writes each string of an iterable to the error log."},
    {"flush", errors_flush, METH_NOARGS, "Logs a pending partial line."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

PyTypeObject FileWrapperType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "fulmen._core.FileWrapper";
  t.tp_basicsize = sizeof(FileWrapper);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc =
      "FileWrapper(filelike, blksize=8192): wsgi.file_wrapper. Returned from an app, a wrapper over a real file "
      "is sent with sendfile(2) from the file's current position.";
  t.tp_init = fw_init;
  t.tp_new = PyType_GenericNew;
  t.tp_dealloc = fw_dealloc;
  t.tp_traverse = fw_traverse;
  t.tp_clear = fw_clear;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = fw_iternext;
  t.tp_methods = fw_methods;
  t.tp_members = fw_members;
  return t;
}();

PyTypeObject ErrorsType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "fulmen._core.ErrorStream";
  t.tp_basicsize = sizeof(Errors);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "wsgi.errors: a text stream into the server's error log, logged a line at a time.";
  t.tp_new = errors_new;
  t.tp_dealloc = errors_dealloc;
  t.tp_methods = errors_methods;
  return t;
}();

PyObject* file_wrapper_filelike(PyObject* wrapper) {
  PyObject* f = reinterpret_cast<FileWrapper*>(wrapper)->filelike;
  if (f == nullptr) PyErr_SetString(PyExc_ValueError, "FileWrapper is not initialised (no file-like object)");
  return f;
}

void errors_flush_pending(PyObject* errors) {
  std::string* pending = reinterpret_cast<Errors*>(errors)->pending;
  if (pending->empty()) return;
  log_raw(LogLevel::kError, *pending);
  pending->clear();
}

}  // namespace fulmen::wsgi
