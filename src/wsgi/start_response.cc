// start_response and write() (PEP 3333 "The start_response() Callable").
// One start_response object per worker serves every request: it acts on the
// response in progress (App::current()). The write callable it returns is
// bound to its own request.
#include "core/response.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

// Status must be "NNN reason" (PEP 3333): three digits, a space, then text.
bool valid_status(PyObject* status) {
  if (!PyUnicode_Check(status)) {
    PyErr_Format(PyExc_TypeError, "status must be str, not %.100s", Py_TYPE(status)->tp_name);
    return false;
  }
  if (PyUnicode_KIND(status) != PyUnicode_1BYTE_KIND) {
    PyErr_SetString(PyExc_ValueError, "status must be latin-1 text");
    return false;
  }
  auto* s = reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(status));
  Py_ssize_t n = PyUnicode_GET_LENGTH(status);
  bool ok = n >= 4 && s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
            s[3] == ' ' && valid_header_value(std::string_view(s, static_cast<size_t>(n)));
  if (!ok) PyErr_Format(PyExc_ValueError, "invalid status %R: expected '200 OK' form", status);
  return ok;
}

bool latin1_view(PyObject* s, std::string_view* out) {
  if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
  *out = std::string_view(reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s)),
                          static_cast<size_t>(PyUnicode_GET_LENGTH(s)));
  return true;
}

// Headers must be a list of (str, str) with valid names and values and no
// hop-by-hop fields; checked here so the app sees the error where it called.
bool valid_headers(PyObject* headers) {
  if (!PyList_Check(headers)) {
    PyErr_Format(PyExc_TypeError, "response headers must be a list, not %.100s", Py_TYPE(headers)->tp_name);
    return false;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); ++i) {
    PyObject* item = PyList_GET_ITEM(headers, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      PyErr_Format(PyExc_TypeError, "response header %zd must be a (name, value) tuple", i);
      return false;
    }
    std::string_view name, value;
    if (!latin1_view(PyTuple_GET_ITEM(item, 0), &name) || !latin1_view(PyTuple_GET_ITEM(item, 1), &value)) {
      PyErr_Format(PyExc_TypeError, "response header %zd: name and value must be latin-1 str", i);
      return false;
    }
    if (!valid_header_name(name) || !valid_header_value(value)) {
      PyErr_Format(PyExc_ValueError, "response header %R has a forbidden character (CR, LF or control)", item);
      return false;
    }
    if (is_hop_by_hop(name)) {
      PyErr_Format(PyExc_ValueError, "hop-by-hop header %R is not allowed from a WSGI application", item);
      return false;
    }
  }
  return true;
}

// Refuses calls from any thread but the worker's loop thread: the request
// state is the loop's, and touching it elsewhere races it.
bool check_thread(const char* what) {
  if (Gil::on_loop_thread()) return true;
  PyErr_Format(PyExc_RuntimeError, "%s called from a thread other than the worker's; not supported", what);
  return false;
}

// ---------------------------------------------------------------- write()

struct Writer {
  PyObject_HEAD vectorcallfunc vectorcall;
  Call* call;  // nullptr once its request is over.
};

PyObject* writer_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0)) {
    PyErr_SetString(PyExc_TypeError, "write(data) takes exactly one positional argument");
    return nullptr;
  }
  if (!check_thread("write()")) return nullptr;
  Call* call = reinterpret_cast<Writer*>(self)->call;
  if (call == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "write() called after its request ended");
    return nullptr;
  }
  PyObject* data = args[0];
  if (!PyBytes_Check(data)) {
    PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
    return nullptr;
  }
  if (!call->app->write_item(*call, data)) return nullptr;
  // PEP 3333: write() returns once the data is sent or buffered. Keep the
  // buffer bounded: wait for the socket when a lot is queued.
  if (call->conn->output_congested()) {
    bool ok;
    {
      Gil::Release nogil;
      ok = call->conn->flush_blocking();
    }
    if (!ok) {
      PyErr_SetString(PyExc_OSError, "client disconnected");
      return nullptr;
    }
  }
  Py_RETURN_NONE;
}

PyObject* start_response_impl(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 2 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
    return nullptr;
  }
  if (!check_thread("start_response()")) return nullptr;
  Call* call = App::current();
  if (call == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "start_response() called outside of a request");
    return nullptr;
  }
  PyObject* exc_info = nargs == 3 ? args[2] : Py_None;
  if (exc_info != Py_None) {
    if (call->head_sent) {
      // Too late to change the response: re-raise the app's exception.
      if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple");
        return nullptr;
      }
      PyObject* value = PyTuple_GET_ITEM(exc_info, 1);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(value)), value);
      return nullptr;
    }
  } else if (call->status) {
    PyErr_SetString(PyExc_AssertionError, "start_response() called a second time without exc_info");
    return nullptr;
  }
  if (!valid_status(args[0]) || !valid_headers(args[1])) return nullptr;
  call->status.reset(Py_NewRef(args[0]));
  call->headers.reset(Py_NewRef(args[1]));
  if (!call->writer_attached) {
    // The write() object of an earlier request is reused unless somebody kept it.
    if (call->writer && Py_REFCNT(call->writer.get()) == 1) {
      writer_attach(call->writer.get(), call);
    } else {
      call->writer.reset(writer_new(call));
      if (!call->writer) return nullptr;
    }
    call->writer_attached = true;
  }
  return Py_NewRef(call->writer.get());
}

PyMethodDef start_response_def = {
    "start_response", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(start_response_impl)), METH_FASTCALL,
    "start_response(status, headers, exc_info=None) -> write: the PEP 3333 callable."};

}  // namespace

PyTypeObject WriterType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "fulmen._core.Write";
  t.tp_basicsize = sizeof(Writer);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL;
  t.tp_doc = "write(data: bytes): the PEP 3333 write() callable of one request.";
  t.tp_vectorcall_offset = offsetof(Writer, vectorcall);
  t.tp_call = PyVectorcall_Call;
  t.tp_dealloc = [](PyObject* o) { PyObject_Free(o); };
  return t;
}();

PyObject* writer_new(Call* call) {
  Writer* w = PyObject_New(Writer, &WriterType);
  if (w == nullptr) return nullptr;
  w->vectorcall = writer_vectorcall;
  w->call = call;
  return reinterpret_cast<PyObject*>(w);
}

void writer_attach(PyObject* writer, Call* call) {
  reinterpret_cast<Writer*>(writer)->call = call;
}

void writer_detach(PyObject* writer) {
  reinterpret_cast<Writer*>(writer)->call = nullptr;
}

PyObject* make_start_response() {
  return PyCFunction_New(&start_response_def, nullptr);
}

bool App::send_head(Call& call, int64_t known_length) {
  PyObject* status = call.status.get();
  PyObject* headers = call.headers.get();
  if (status == nullptr) {
    if (!call.lenient) {
      PyErr_SetString(PyExc_AssertionError, "the application returned without calling start_response()");
      return false;
    }
    status = default_status_.get();
    headers = default_headers_.get();
  }
  std::string_view st;
  latin1_view(status, &st);
  int code = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
  Py_ssize_t n = PyList_GET_SIZE(headers);
  bool app_server = false, app_date = false;
  for (Py_ssize_t i = 0; i < n; ++i) {
    std::string_view name;
    latin1_view(PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 0), &name);
    if (name.size() == 6 && iequals(name, "server")) app_server = true;
    if (name.size() == 4 && iequals(name, "date")) app_date = true;
  }
  Connection& c = *call.conn;
  c.start_response(st, code, app_server, app_date);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyList_GET_ITEM(headers, i);
    std::string_view name, value;
    latin1_view(PyTuple_GET_ITEM(item, 0), &name);
    latin1_view(PyTuple_GET_ITEM(item, 1), &value);
    c.add_header(name, value);
  }
  c.end_headers(known_length);
  call.head_sent = true;
  return true;
}

}  // namespace fulmen::wsgi
