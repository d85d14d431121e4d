// The request path on the Python side: route (script mode), build environ,
// call the app with vectorcall, turn what it returns into a response.
//
// What the app returns decides the path:
//   list/tuple of bytes  -> Content-Length known, written at once (large items by reference, no copy)
//   FileWrapper / file   -> sendfile(2) from the file's position
//   any other iterable   -> a Stream: each block is sent as it is produced (PEP 3333 "Buffering
//                           and Streaming"), chunked (1.1) or close-delimited (1.0); Content-Length
//                           only when the app sets it, or 0 when nothing at all is produced
// With no body to send (HEAD, 204, 304) an iterable is not consumed: the head goes out as soon as
// the status is known and the iterable is closed.
// Script mode also takes str (UTF-8), bytes, None, and makes start_response optional.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "core/log.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

// Streamed chunks at least this long are queued by reference instead of
// copied (smaller ones cost less to copy than to track).
constexpr size_t kRefThreshold = 16384;
// Blocks one pump of a stream produces at most before other connections get a turn.
constexpr size_t kBlocksPerPump = 64;

void decref_with_gil(void* o) {
  Gil::Acquire gil;
  Py_DECREF(static_cast<PyObject*>(o));
}

// Calls close() on a response iterable, as PEP 3333 requires in every case.
void call_close(PyObject* result, const std::string& path) {
  static PyObject* name = PyUnicode_InternFromString("close");  // Kept for the process's life.
  PyRef r;
  if (PyGen_CheckExact(result)) {
    // Generators (the common iterable) have close(): call it without
    // building a bound method.
    PyObject* args[1] = {result};
    r.reset(PyObject_VectorcallMethod(name, args, 1, nullptr));
  } else {
    PyRef close(PyObject_GetAttr(result, name));
    if (!close) {
      PyErr_Clear();  // No close(): nothing to call.
      return;
    }
    r.reset(PyObject_CallNoArgs(close.get()));
  }
  if (!r) log_exception(("Error closing the response of " + path).c_str());
}

// A file being sent: our own descriptor for it (a dup, so nothing the app
// does to its file object, closing it included, changes what is read), and
// the object whose close() ends the response.
struct SentFile {
  int fd;
  PyObject* owner;
  std::string path;
};

void close_sent_file(void* p) {
  std::unique_ptr<SentFile> f(static_cast<SentFile*>(p));
  ::close(f->fd);
  Gil::Acquire gil;
  call_close(f->owner, f->path);
  Py_DECREF(f->owner);
}

// Threaded mode (issue 10): the loop thread releases what it sent without
// the GIL, which the app's threads hold most of the time (waiting for it
// would stall every connection). References and sent files go on this list;
// a pool thread drops them with the GIL it takes for its next request, and
// after each one. A mutex, not the GIL, guards the list.
struct Garbage {
  std::mutex mu;
  std::vector<PyObject*> objects;
  std::vector<std::unique_ptr<SentFile>> files;
};

Garbage& garbage() {
  static Garbage g;  // Kept for the process's life (a worker _exit()s).
  return g;
}

void defer_decref(void* o) {
  Garbage& g = garbage();
  std::lock_guard lock(g.mu);
  g.objects.push_back(static_cast<PyObject*>(o));
}

void defer_close_file(void* p) {
  std::unique_ptr<SentFile> f(static_cast<SentFile*>(p));
  ::close(f->fd);  // The descriptor needs no GIL: closed at once.
  Garbage& g = garbage();
  std::lock_guard lock(g.mu);
  g.files.push_back(std::move(f));
}

// Drops what the loop handed back. The GIL must be held.
void collect_garbage() {
  Garbage& g = garbage();
  std::vector<PyObject*> objects;
  std::vector<std::unique_ptr<SentFile>> files;
  {
    std::lock_guard lock(g.mu);
    if (g.objects.empty() && g.files.empty()) return;
    objects.swap(g.objects);
    files.swap(g.files);
  }
  for (PyObject* o : objects) Py_DECREF(o);
  for (auto& f : files) {
    call_close(f->owner, f->path);
    Py_DECREF(f->owner);
  }
}

// Pumps a generic response iterable. A block goes out (Connection::push)
// before the iterator is asked for the next one: the next one may take long
// to come, and PEP 3333 "Buffering and Streaming" forbids delaying a block
// for it. The stream yields to the loop when the socket stops taking bytes.
class Stream final : public ResponseStream {
 public:
  Stream(App* app, CallPtr call, PyRef result, PyRef iter)
      : app_(app), call_(std::move(call)), result_(std::move(result)), iter_(std::move(iter)) {}

  ~Stream() override {
    Gil::Acquire gil;
    Call* prev = App::current();
    App::set_current(call_.get());
    call_close(result_.get(), call_->path);
    App::set_current(prev);
    iter_.reset();
    result_.reset();
    call_.reset();
  }

  bool pump(Exchange& c) override {
    Gil::Acquire gil;
    Call* prev = App::current();
    App::set_current(call_.get());
    bool done = pump_locked(c);
    App::set_current(prev);
    return done;
  }

 private:
  bool pump_locked(Exchange& c) {
    Call& call = *call_;
    // A stream to a client that reads as fast as it is fed never congests
    // the socket: after this many blocks the pump hands the loop back to
    // the worker's other connections and is called again on the next turn.
    size_t blocks = 0;
    for (;;) {
      if (ended_without_body(call)) return true;
      PyObject* item = PyIter_Next(iter_.get());
      advanced_ = true;
      if (item == nullptr) {
        if (PyErr_Occurred()) {
          app_->fail(call, "Error iterating the response of");
          return true;
        }
        // The end before any non-empty block: the length is known, 0.
        if (!call.head_sent && !app_->send_head(call, 0)) {
          app_->fail(call, "Error in the response head of");
          return true;
        }
        app_->finish(call);
        return true;
      }
      PyRef it(item);
      // PEP 3333 lets start_response come with the first item: the status
      // may only be known now.
      if (ended_without_body(call)) return true;
      if (!app_->write_item(call, item)) {
        app_->fail(call, "Error in the response body of");
        return true;
      }
      if (c.body_overrun()) {  // Past its Content-Length: the rest is not asked for.
        app_->finish(call);
        return true;
      }
      // An empty block sends nothing, not even the head (PEP 3333: headers
      // go with the first non-empty block), so the next one is asked for.
      if (!call.head_sent) continue;
      // All of a declared Content-Length is queued (Flask's and Django's
      // one-block bodies): the next item is the end, asked for now so the
      // response finishes in this call and leaves with the turn's others. Once
      // only: one that goes on past its length ends above (body_overrun), and
      // one that goes on with empty items is then served as any stream.
      if (!end_asked_ && c.may_end_before_write()) {
        end_asked_ = true;
        continue;
      }
      // The block may leave with the loop turn's other responses; the next
      // one is asked for once it has (PEP 3333: no block waits for the next).
      if (c.hold_block()) return false;
      if (!c.push() || c.output_congested() || ++blocks >= kBlocksPerPump) return false;
    }
  }

  // A response without a body (HEAD, 204, 304) does not consume its
  // iterable: an endless one would hold the worker forever. Once the status
  // is known the head goes out and the destructor closes the iterable.
  // Returns true when it ended the response.
  bool ended_without_body(Call& call) {
    if (call.head_sent) {
      if (!call.conn->response_has_no_body()) return false;
    } else {
      // Known once start_response was called; in script mode also once the
      // iterable moved without calling it (the default status applies).
      bool status_known = call.head.valid || (call.lenient && advanced_);
      if (!status_known || !app_->no_body(call)) return false;
      if (!app_->send_head(call, -1)) {
        app_->fail(call, "Error in the response head of");
        return true;
      }
    }
    app_->finish(call);
    return true;
  }

  App* app_;
  CallPtr call_;
  PyRef result_;
  PyRef iter_;
  bool advanced_ = false;   // The iterator was asked for an item.
  bool end_asked_ = false;  // The item after the declared length was asked for at once.
};

constexpr size_t kMaxFreeCalls = 16;

}  // namespace

Call::~Call() {
  if (input) input_detach(input.get());
  if (writer) writer_detach(writer.get());
}

void CallRecycler::operator()(Call* call) const {
  call->app->recycle(call);
}

void log_exception(const char* context) {
#if PY_VERSION_HEX >= 0x030C0000
  PyRef exc(PyErr_GetRaisedException());
#else
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  PyRef exc(value);
#endif
  std::string text = context;
  static PyObject* format = nullptr;  // traceback.format_exception, kept for the process's life.
  if (format == nullptr) {
    PyRef mod(PyImport_ImportModule("traceback"));
    if (mod) format = PyObject_GetAttrString(mod.get(), "format_exception");
  }
  PyRef lines(format && exc ? PyObject_CallOneArg(format, exc.get()) : nullptr);
  PyRef sep(PyUnicode_FromString(""));
  PyRef joined(lines && sep ? PyUnicode_Join(sep.get(), lines.get()) : nullptr);
  const char* tb_text = joined ? PyUnicode_AsUTF8(joined.get()) : nullptr;
  text.append("\n");
  if (tb_text != nullptr) {
    text.append(tb_text);
  } else {
    text.append("(traceback unavailable)");
  }
  PyErr_Clear();
  log_text(LogLevel::kError, text);
}

App::App(PyObject* target, const EnvironSettings& env, const AppSettings& settings)
    : target_(Py_NewRef(target)), env_settings_(env), settings_(settings) {}

App::~App() = default;

bool App::init() {
  if (PyList_Check(target_.get())) {
    // Script mode: (prefix, handler) pairs, validated by the Python loader.
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(target_.get()); ++i) {
      PyObject* pair = PyList_GET_ITEM(target_.get(), i);
      const char* prefix;
      PyObject* handler;
      if (!PyArg_ParseTuple(pair, "sO", &prefix, &handler)) return false;
      Route r;
      r.prefix = prefix;
      while (r.prefix.size() > 1 && r.prefix.back() == '/') r.prefix.pop_back();
      r.handler.reset(Py_NewRef(handler));
      routes_.push_back(std::move(r));
    }
    // Longest prefix first, so the first match is the longest one.
    std::stable_sort(routes_.begin(), routes_.end(),
                     [](const Route& a, const Route& b) { return a.prefix.size() > b.prefix.size(); });
  } else if (!PyCallable_Check(target_.get())) {
    PyErr_SetString(PyExc_TypeError, "the application is not callable");
    return false;
  }
  if (PyType_Ready(&InputType) < 0 || PyType_Ready(&ErrorsType) < 0 || PyType_Ready(&FileWrapperType) < 0 ||
      PyType_Ready(&WriterType) < 0)
    return false;
  start_response_.reset(make_start_response());
  PyRef status(PyUnicode_FromString("200 OK"));
  PyRef headers(Py_BuildValue("[(ss)]", "Content-Type", "text/html; charset=utf-8"));
  if (!start_response_ || !status || !headers || !default_head_.assign(status.get(), headers.get(), nullptr))
    return false;
  return env_.init(env_settings_);
}

// Calls come from a small pool: the request path, the head snapshot, the
// Input and the write() object keep their memory from one request to the next.
CallPtr App::new_call(Exchange& c) {
  std::unique_ptr<Call> owned;
  {
    // Uncontended on the inline path (one thread), so cheap there too.
    std::unique_lock lock(free_mu_, std::defer_lock);
    if (settings_.threaded) lock.lock();
    if (!free_calls_.empty()) {
      owned = std::move(free_calls_.back());
      free_calls_.pop_back();
    }
  }
  if (!owned) owned = std::make_unique<Call>();
  CallPtr call(owned.release());
  call->conn = &c;
  call->thread = Gil::thread_token();
  call->app = this;
  call->lenient = settings_.script_mode;
  return call;
}

void App::recycle(Call* call) {
  // Whatever the app kept of this request stops working now (RuntimeError).
  if (call->input) input_detach(call->input.get());
  if (call->writer_attached) writer_detach(call->writer.get());
  call->writer_attached = false;
  // A line the app left without its newline belongs to this request.
  errors_flush_pending(env_.errors());
  call->head.clear();
  call->head_sent = false;
  call->done = false;
  call->conn = nullptr;
  call->thread = nullptr;
  std::unique_ptr<Call> owned(call);
  std::unique_lock lock(free_mu_, std::defer_lock);
  if (settings_.threaded) lock.lock();
  if (free_calls_.size() < kMaxFreeCalls) free_calls_.push_back(std::move(owned));
}

bool App::no_body(const Call& call) const {
  return call.conn->status_has_no_body(call.head.valid ? call.head.code : default_head_.code);
}

void App::finish(Call& call) {
  call.conn->finish_response();
  call.done = true;
}

std::unique_ptr<ResponseStream> App::handle(Connection& c, const RequestHead& head) {
  Gil::Acquire gil;
  return serve(c, head);
}

void App::run_job(Job& job) {
  Gil::hold();  // Kept until the thread finds no more work (thread_idle()).
  Gil::Acquire gil;
  collect_garbage();
  // Its connection went away while it waited for a thread: nobody to answer.
  if (job.client_gone()) return;
  static thread_local RequestHead head;
  if (!job.parse_head(&head)) {
    job.send_error(400);  // It parsed on the loop, so this does not happen.
    return;
  }
  std::unique_ptr<ResponseStream> stream = serve(job, head);
  // A stream is pumped here, on this thread, to its end: the thread waits
  // (GIL released) while the client is slow, up to send_timeout.
  while (stream && !stream->pump(job)) {
    Gil::Release nogil;
    if (!job.wait_for_room()) break;
  }
  stream.reset();  // close() on the iterable, also when the client is gone.
  collect_garbage();
}

// On the loop thread, rarely (a request timeout): the only place where the
// loop waits for the GIL in threaded mode.
std::string App::describe_job(const Job& job) {
  Gil::Acquire gil;
  std::string out;
  PyRef sys(PyImport_ImportModule("sys"));
  PyRef frames(sys ? PyObject_CallMethod(sys.get(), "_current_frames", nullptr) : nullptr);
  PyRef key(PyLong_FromUnsignedLong(job.thread_ident()));
  PyObject* frame = frames && key ? PyDict_GetItemWithError(frames.get(), key.get()) : nullptr;  // Borrowed.
  PyRef tb(frame ? PyImport_ImportModule("traceback") : nullptr);
  PyRef lines(tb ? PyObject_CallMethod(tb.get(), "format_stack", "O", frame) : nullptr);
  PyRef sep(PyUnicode_FromString(""));
  PyRef joined(lines && sep ? PyUnicode_Join(sep.get(), lines.get()) : nullptr);
  const char* text = joined ? PyUnicode_AsUTF8(joined.get()) : nullptr;
  out = text != nullptr ? text : "(the thread's stack is unavailable: it has left the app)\n";
  PyErr_Clear();
  return out;
}

std::unique_ptr<ResponseStream> App::serve(Exchange& c, const RequestHead& head) {
  CallPtr call = new_call(c);

  // PATH_INFO is the percent-decoded path, without root_path (SCRIPT_NAME).
  std::string& path = call->path;
  if (head.path.find('%') != std::string_view::npos)
    percent_decode(head.path, path);
  else
    path.assign(head.path);
  std::string_view rest = path;
  const std::string& root = env_.root_path();
  if (!root.empty() && rest.starts_with(root) && (rest.size() == root.size() || rest[root.size()] == '/'))
    rest.remove_prefix(root.size());

  PyObject* callable = target_.get();
  std::string_view script_prefix;
  if (!routes_.empty()) {
    const Route* match = nullptr;
    for (const Route& r : routes_) {
      if (r.prefix == "/" ||
          (rest.starts_with(r.prefix) && (rest.size() == r.prefix.size() || rest[r.prefix.size()] == '/'))) {
        match = &r;
        break;
      }
    }
    if (match == nullptr) {
      static constexpr std::string_view kBody = "404 Not Found\n";
      c.start_response("404 Not Found", 404);
      c.add_header("Content-Type", "text/plain; charset=utf-8");
      c.end_headers(static_cast<int64_t>(kBody.size()));
      c.write_body(kBody.data(), kBody.size());
      c.finish_response();
      return nullptr;
    }
    callable = match->handler.get();
    if (match->prefix != "/") {
      script_prefix = match->prefix;
      rest.remove_prefix(match->prefix.size());
    }
  }

  // wsgi.input: the previous request's object when nobody else kept it.
  if (call->input && Py_REFCNT(call->input.get()) == 1)
    input_attach(call->input.get(), &c, call->thread);
  else
    call->input.reset(input_new(&c, call->thread));
  if (!call->input) {
    fail(*call, "Error preparing");
    return nullptr;
  }
  PyRef env(env_.build(c, head, call->input.get()));
  if (!env || !env_.set_script_path(env.get(), script_prefix, rest)) {
    fail(*call, "Error building the environ of");
    return nullptr;
  }

  Call* prev = current();
  set_current(call.get());
  PyObject* argv[2] = {env.get(), start_response_.get()};
  PyObject* result = PyObject_Vectorcall(callable, argv, 2, nullptr);
  std::unique_ptr<ResponseStream> stream;
  if (result == nullptr)
    fail(*call, "Error handling request");
  else
    stream = respond(std::move(call), result);
  set_current(prev);
  return stream;
}

std::unique_ptr<ResponseStream> App::respond(CallPtr call_owner, PyObject* result_raw) {
  PyRef result(result_raw);
  Call& call = *call_owner;
  Exchange& c = *call.conn;
  PyObject* res = result.get();

  // Whole bodies: a list or tuple (the common case), bytes, or in script mode str / None.
  PyObject* single = nullptr;
  PyRef encoded;
  if (PyBytes_Check(res)) {
    single = res;
  } else if (call.lenient && PyUnicode_Check(res)) {
    encoded.reset(PyUnicode_AsUTF8String(res));
    if (!encoded) {
      fail(call, "Error encoding the response of");
      return nullptr;
    }
    single = encoded.get();
  } else if (call.lenient && res == Py_None) {
    if (!send_head(call, 0)) {
      fail(call, "Error in the response head of");
      return nullptr;
    }
    finish(call);
    return nullptr;
  }
  if (single != nullptr || PyList_CheckExact(res) || PyTuple_CheckExact(res)) {
    // No Python code runs from here to the end of the writes (the head is a
    // snapshot, items are bytes or str), so the list cannot change under
    // these borrowed items.
    PyObject** items = single ? &single : PySequence_Fast_ITEMS(res);
    Py_ssize_t n = single ? 1 : PySequence_Fast_GET_SIZE(res);
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = items[i];
      if (PyBytes_Check(item)) {
        total += PyBytes_GET_SIZE(item);
      } else if (call.lenient && PyUnicode_Check(item)) {
        Py_ssize_t len;
        if (PyUnicode_AsUTF8AndSize(item, &len) == nullptr) {
          fail(call, "Error encoding the response of");
          return nullptr;
        }
        total += len;
      } else {
        PyErr_Format(PyExc_TypeError, "response body items must be bytes, not %.100s", Py_TYPE(item)->tp_name);
        fail(call, "Error in the response body of");
        return nullptr;
      }
    }
    // A head already sent by write() fixed the framing; otherwise the length is known.
    if (!call.head_sent && !send_head(call, total)) {
      fail(call, "Error in the response head of");
      return nullptr;
    }
    // Whole bodies go out by reference, without a copy: the references are
    // dropped as soon as the batch's write completes.
    for (Py_ssize_t i = 0; i < n; ++i) write_item(call, items[i], true);
    finish(call);
    return nullptr;
  }

  // Files: a FileWrapper, or in script mode any object with fileno() and read().
  if (Py_IS_TYPE(res, &FileWrapperType) ||
      (call.lenient && PyObject_HasAttrString(res, "fileno") && PyObject_HasAttrString(res, "read"))) {
    // A strong reference: fileno() and tell() run app code, which could
    // re-initialise the wrapper and drop the file it held.
    PyRef file(Py_IS_TYPE(res, &FileWrapperType) ? Py_XNewRef(file_wrapper_filelike(res)) : Py_NewRef(res));
    if (!file) {
      fail(call, "Error sending the file of");
      call_close(res, call.path);
      return nullptr;
    }
    if (try_sendfile(call, res, file.get())) return nullptr;
    if (PyErr_Occurred()) {
      fail(call, "Error sending the file of");
      call_close(res, call.path);
      return nullptr;
    }
    if (call.lenient && !Py_IS_TYPE(res, &FileWrapperType)) {
      // A file-like without a real descriptor: iterate it in blocks.
      PyObject* args[1] = {res};
      PyRef wrapped(PyObject_Vectorcall(reinterpret_cast<PyObject*>(&FileWrapperType), args, 1, nullptr));
      if (!wrapped) {
        fail(call, "Error wrapping the file of");
        return nullptr;
      }
      result = std::move(wrapped);
      res = result.get();
    }
  }

  PyRef iter(PyObject_GetIter(res));
  if (!iter) {
    fail(call, "Error iterating the response of");
    call_close(res, call.path);
    return nullptr;
  }
  auto stream = std::make_unique<Stream>(this, std::move(call_owner), std::move(result), std::move(iter));
  // Most iterables finish at once; only a long or slow one is kept.
  if (stream->pump(c)) return nullptr;
  return stream;
}

bool App::try_sendfile(Call& call, PyObject* owner, PyObject* file) {
  int app_fd = PyObject_AsFileDescriptor(file);
  if (app_fd < 0) {
    PyErr_Clear();
    return false;
  }
  // Taken before any more app code runs (tell() below): the app's
  // descriptor may be closed, even reused, before sendfile is done.
  int fd = fcntl(app_fd, F_DUPFD_CLOEXEC, 0);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    return false;
  }
  int64_t pos = -1;
  if (PyObject_HasAttrString(file, "tell")) {
    PyRef t(PyObject_CallMethod(file, "tell", nullptr));
    if (t) pos = PyLong_AsLongLong(t.get());
    if (pos < 0) PyErr_Clear();
  }
  if (pos < 0) pos = lseek(fd, 0, SEEK_CUR);
  if (pos < 0) pos = 0;
  int64_t len = std::max<int64_t>(0, static_cast<int64_t>(st.st_size) - pos);
  if (!send_head(call, len)) {
    ::close(fd);
    fail(call, "Error in the response head of");
    call_close(owner, call.path);
    return true;
  }
  // The file stays open until sendfile is done: closing it is the release.
  auto sent = std::make_unique<SentFile>(SentFile{fd, Py_NewRef(owner), call.path});
  call.conn->write_body_file(fd, pos, len,
                             Releaser{settings_.threaded ? defer_close_file : close_sent_file, sent.release()});
  finish(call);
  return true;
}

bool App::write_item(Call& call, PyObject* item, bool by_ref) {
  const char* data;
  Py_ssize_t len;
  if (PyBytes_Check(item)) {
    data = PyBytes_AS_STRING(item);
    len = PyBytes_GET_SIZE(item);
  } else if (call.lenient && PyUnicode_Check(item)) {
    data = PyUnicode_AsUTF8AndSize(item, &len);  // Cached in the str object.
    if (data == nullptr) return false;
  } else {
    PyErr_Format(PyExc_TypeError, "response body items must be bytes, not %.100s", Py_TYPE(item)->tp_name);
    return false;
  }
  if (len == 0) return true;
  if (!call.head_sent && !send_head(call, -1)) return false;
  if (by_ref || static_cast<size_t>(len) >= kRefThreshold)
    call.conn->write_body_ref(data, static_cast<size_t>(len),
                              Releaser{settings_.threaded ? defer_decref : decref_with_gil, Py_NewRef(item)});
  else
    call.conn->write_body(data, static_cast<size_t>(len));
  return true;
}

void App::fail(Call& call, const char* context) {
  std::string what = context;
  what.append(" ");
  what.append(call.path);
  log_exception(what.c_str());
  call.done = true;
  Exchange& c = *call.conn;
  if (!c.head_started())
    c.send_error(c.body_failed() ? 400 : 500);
  else
    c.abort_response();  // Too late for a 500: the client sees a cut response.
}

}  // namespace fulmen::wsgi
