// start_response and write() (PEP 3333 "The start_response() Callable").
// One start_response object per worker serves every request: it acts on the
// response in progress (App::current()). What it accepts is copied into the
// Call (ResponseHead), so the head that is sent is the one validated here,
// whatever the app does to its list afterwards. The write callable it
// returns is bound to its own request.
#include <algorithm>
#include <cstring>
#include <limits>

#include "core/log.h"
#include "core/response.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

bool latin1_view(PyObject* s, std::string_view* out) {
  if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
  *out = std::string_view(reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s)),
                          static_cast<size_t>(PyUnicode_GET_LENGTH(s)));
  return true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// RFC 9110 8.6: Content-Length = 1*DIGIT. Optional whitespace around the
// value is not part of it (RFC 9110 5.5) and is trimmed; anything else
// (signs, inner spaces, lists, empty) is refused. 18 digits fit in int64_t.
bool parse_content_length(std::string_view v, std::string_view* digits, int64_t* out) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty() || v.size() > 18) return false;
  int64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return false;
    n = n * 10 + (c - '0');
  }
  *digits = v;
  *out = n;
  return true;
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
  Call* call = reinterpret_cast<Writer*>(self)->call;
  if (call == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "write() called after its request ended");
    return nullptr;
  }
  // The request's state belongs to the thread that serves it; another
  // thread would race it.
  if (call->thread != Gil::thread_token()) {
    PyErr_SetString(PyExc_RuntimeError, "write() called from a thread other than its request's; not supported");
    return nullptr;
  }
  if (call->done) {
    PyErr_SetString(PyExc_RuntimeError, "write() called after the response was completed");
    return nullptr;
  }
  PyObject* data = args[0];
  if (!PyBytes_Check(data)) {
    PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
    return nullptr;
  }
  if (!call->app->write_item(*call, data)) return nullptr;
  // PEP 3333: write() returns once the data is sent or buffered, and a
  // server must not delay the transmission of a block: send it now.
  Exchange& c = *call->conn;
  bool ok = c.push();
  if (ok && c.output_congested()) {
    // Keep the buffer bounded: wait for the socket when a lot is queued.
    Gil::Release nogil;
    ok = c.flush_blocking();
  }
  if (!ok) {
    PyErr_SetString(PyExc_OSError, "client disconnected");
    return nullptr;
  }
  Py_RETURN_NONE;
}

// ---------------------------------------------------------------- start_response

PyObject* start_response_impl(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  // start_response(status, response_headers, exc_info=None); exc_info may be
  // passed by name, as the PEP's signature names it.
  PyObject* exc_info = nargs == 3 ? args[2] : Py_None;
  Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  bool ok_args = nargs >= 2 && nargs <= 3;
  if (nkw > 0) {
    ok_args =
        nkw == 1 && nargs == 2 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "exc_info") == 0;
    exc_info = args[nargs];
  }
  if (!ok_args) {
    PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
    return nullptr;
  }
  // The calling thread's request: none outside of one, and none on a
  // thread other than the one that serves it.
  Call* call = App::current();
  if (call == nullptr) {
    PyErr_SetString(PyExc_RuntimeError,
                    "start_response() called outside of a request, or from a thread other than its request's");
    return nullptr;
  }
  if (exc_info != Py_None) {
    if (call->head_sent) {
      // Too late to change the response: re-raise the app's exception, with
      // its traceback (PEP 3333 "the start_response() Callable").
      PyObject* value =
          PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) == 3 ? PyTuple_GET_ITEM(exc_info, 1) : nullptr;
      if (value == nullptr || !PyExceptionInstance_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
        return nullptr;
      }
      PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
      PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(value))), Py_NewRef(value),
                    tb == Py_None ? nullptr : Py_NewRef(tb));
      return nullptr;
    }
  } else if (call->head.valid) {
    PyErr_SetString(PyExc_AssertionError, "start_response() called a second time without exc_info");
    return nullptr;
  }
  // Validated into the App's scratch head, then swapped in: a call that
  // fails leaves what an earlier one set.
  ResponseHead& scratch = call->scratch;
  if (!scratch.assign(args[0], args[1], call->app)) return nullptr;
  std::swap(call->head, scratch);
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
    "start_response", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(start_response_impl)),
    METH_FASTCALL | METH_KEYWORDS, "start_response(status, headers, exc_info=None) -> write: the PEP 3333 callable."};

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

bool ResponseHead::assign(PyObject* status, PyObject* headers, App* app) {
  clear();
  // Status: "NNN reason" (PEP 3333). RFC 9112 4 makes the reason phrase
  // optional but not the space before it, so a bare "200" is accepted and
  // sent as "200 ". 1xx codes are interim responses the server sends itself
  // (RFC 9110 15.2): an app's final status must be 200 or more.
  if (!PyUnicode_Check(status)) {
    PyErr_Format(PyExc_TypeError, "status must be str, not %.100s", Py_TYPE(status)->tp_name);
    return false;
  }
  std::string_view st;
  if (!latin1_view(status, &st)) {
    PyErr_SetString(PyExc_ValueError, "status must be latin-1 text");
    return false;
  }
  if (st.size() < 3 || st[0] < '1' || st[0] > '9' || !is_digit(st[1]) || !is_digit(st[2]) ||
      (st.size() > 3 && st[3] != ' ') || !valid_header_value(st)) {
    PyErr_Format(PyExc_ValueError, "invalid status %R: expected '200 OK' form", status);
    return false;
  }
  code = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
  if (code < 200) {
    PyErr_Format(PyExc_ValueError, "status %R is informational (1xx): a WSGI application's status must be final",
                 status);
    return false;
  }
  text.append(st);
  if (st.size() == 3) text.append(" ");
  status_len = static_cast<uint32_t>(text.size());

  // Headers: a list of (str, str) with valid names and values. No Python
  // code runs in this loop (until an error is formatted), so the list cannot
  // change under it; the size is read again on each turn all the same.
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
    // RFC 9110 5.1, 5.5: no CR, LF or other controls (no response splitting).
    if (!valid_header_name(name) || !valid_header_value(value)) {
      PyErr_Format(PyExc_ValueError, "response header %R has a forbidden character (CR, LF or control)", item);
      return false;
    }
    if (is_hop_by_hop(name)) {
      // PEP 3333 "Other HTTP Features" forbids them and RFC 9110 7.6.1 makes
      // them the server's: dropped, as peers (gunicorn) do, and the
      // connection's framing stays the server's own.
      if (app != nullptr) app->note_dropped_hop_by_hop(name);
      continue;
    }
    if (iequals(name, "content-length")) {
      std::string_view digits;
      int64_t n;
      if (!parse_content_length(value, &digits, &n)) {
        PyErr_Format(PyExc_ValueError, "invalid Content-Length %R: expected a decimal number of bytes", item);
        return false;
      }
      if (content_length >= 0) {
        // RFC 9110 8.6: repeats of one value may be sent as one; different
        // values leave the framing undefined.
        if (n != content_length) {
          PyErr_Format(PyExc_ValueError, "conflicting Content-Length headers (%lld and %lld)",
                       static_cast<long long>(content_length), static_cast<long long>(n));
          return false;
        }
        continue;
      }
      content_length = n;
      value = digits;
    } else if (iequals(name, "server")) {
      app_server = true;
    } else if (iequals(name, "date")) {
      app_date = true;
    }
    // "Name: value\r\n", written in one go.
    size_t need = name.size() + value.size() + 4;
    if (text.size() + need > std::numeric_limits<uint32_t>::max()) {
      PyErr_SetString(PyExc_ValueError, "response headers too large");
      return false;
    }
    text.reserve(text.size() + need);
    char* p = text.tail();
    memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
    text.commit(need);
  }
  valid = true;
  return true;
}

void App::note_dropped_hop_by_hop(std::string_view name) {
  if (hop_by_hop_logged_.exchange(true)) return;
  log(LogLevel::kDebug, "dropped the hop-by-hop header %.*s set by the application (logged once per worker)",
      static_cast<int>(std::min<size_t>(name.size(), 64)), name.data());
}

bool App::send_head(Call& call, int64_t known_length) {
  const ResponseHead* h = &call.head;
  if (!h->valid) {
    if (!call.lenient) {
      PyErr_SetString(PyExc_AssertionError, "the application returned without calling start_response()");
      return false;
    }
    h = &default_head_;
  }
  Exchange& c = *call.conn;
  c.start_response(h->status(), h->code, h->app_server, h->app_date);
  c.add_header_block(h->lines(), h->content_length);
  c.end_headers(known_length);
  call.head_sent = true;
  return true;
}

}  // namespace fulmen::wsgi
