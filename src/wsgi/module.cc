// fulmen._core: the extension module. serve() turns the settings the Python
// side validated into core configuration, then runs the master; each forked
// worker runs its event loop with the GIL released.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/master.h"
#include "core/metrics_server.h"
#include "core/worker.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

// Metrics slots: one per worker alive at once (TTIN, reloads and restarts
// reuse the slots of workers that ended).
constexpr size_t kMetricsSlots = 1024;

// Reads options[name]; returns false with an exception when of the wrong type.
bool opt_int(PyObject* options, const char* name, long long* out) {
  PyObject* v = PyDict_GetItemString(options, name);  // Borrowed.
  if (v == nullptr || v == Py_None) return true;
  long long x = PyLong_AsLongLong(v);
  if (x == -1 && PyErr_Occurred()) return false;
  if (x < 0) {
    PyErr_Format(PyExc_ValueError, "option %s must not be negative", name);
    return false;
  }
  *out = x;
  return true;
}

bool opt_ms(PyObject* options, const char* name, uint64_t* out) {
  PyObject* v = PyDict_GetItemString(options, name);
  if (v == nullptr || v == Py_None) return true;
  double x = PyFloat_AsDouble(v);
  if (x == -1.0 && PyErr_Occurred()) return false;
  if (!(x >= 0) || !std::isfinite(x)) {
    PyErr_Format(PyExc_ValueError, "option %s must be a non-negative number of seconds", name);
    return false;
  }
  *out = static_cast<uint64_t>(x * 1000.0);
  return true;
}

bool opt_str(PyObject* options, const char* name, std::string* out) {
  PyObject* v = PyDict_GetItemString(options, name);
  if (v == nullptr || v == Py_None) return true;
  const char* s = PyUnicode_AsUTF8(v);
  if (s == nullptr) return false;
  *out = s;
  return true;
}

bool opt_bool(PyObject* options, const char* name, bool* out) {
  PyObject* v = PyDict_GetItemString(options, name);
  if (v == nullptr || v == Py_None) return true;
  int b = PyObject_IsTrue(v);
  if (b < 0) return false;
  *out = b != 0;
  return true;
}

// The proxy settings (issue 9): address lists the settings table validated.
bool proxy_options(PyObject* options, WorkerConfig* wc) {
  auto set = [options](const char* name, AddressSet* out) {
    std::string list;
    if (!opt_str(options, name, &list)) return false;
    std::string error;
    std::optional<AddressSet> parsed = AddressSet::parse(list, &error);
    if (!parsed) {
      PyErr_Format(PyExc_ValueError, "option %s: %s", name, error.c_str());
      return false;
    }
    *out = std::move(*parsed);
    return true;
  };
  std::string mode = "off";
  if (!opt_str(options, "proxy_protocol", &mode)) return false;
  wc->proxy_versions = mode == "v1" ? 1u : mode == "v2" ? 2u : mode == "auto" ? 3u : 0u;
  return set("proxy_allow_from", &wc->proxy_allow_from) && set("forwarded_allow_ips", &wc->forwarded_allow_ips);
}

// The listening socket of --metrics-bind ("HOST:PORT", validated by the
// settings table). Returns the fd, or -1 with an OSError set.
int open_metrics_socket(const std::string& spec, std::string* shown) {
  size_t colon = spec.rfind(':');
  std::string host = spec.substr(0, colon), port = spec.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int err = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); err != 0) {
    PyErr_Format(PyExc_OSError, "--metrics-bind %s: %s", spec.c_str(), gai_strerror(err));
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
    PyErr_Format(PyExc_OSError, "--metrics-bind %s: %s", spec.c_str(), strerror(errno));
    if (fd >= 0) ::close(fd);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char addr[INET6_ADDRSTRLEN] = "";
  int real_port = 0;
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
    real_port = ntohs(sin6->sin6_port);
    *shown = std::string("[") + addr + "]:" + std::to_string(real_port);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
    real_port = ntohs(sin->sin_port);
    *shown = std::string(addr) + ":" + std::to_string(real_port);
  }
  return fd;
}

// The access log settings (issue 9).
bool access_log_options(PyObject* options, AccessLogConfig* out) {
  std::string log_format = "text";
  if (!opt_str(options, "access_logfile", &out->path) || !opt_str(options, "access_logformat", &out->format) ||
      !opt_str(options, "log_format", &log_format))
    return false;
  out->json = log_format == "json";
  PyObject* v = PyDict_GetItemString(options, "access_log_exclude");  // Borrowed.
  if (v != nullptr && PyList_Check(v)) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); ++i) {
      const char* s = PyUnicode_AsUTF8(PyList_GET_ITEM(v, i));
      if (s == nullptr) return false;
      out->exclude.emplace_back(s);
    }
  }
  std::string error;
  if (!out->path.empty() && !AccessLog::create(*out, &error)) {
    PyErr_Format(PyExc_ValueError, "option access_logformat: %s", error.c_str());
    return false;
  }
  return true;
}

// The static file settings (issue 11): "static" and "static_mime" are lists
// of "KEY=VALUE" strings the settings table validated.
bool static_options(PyObject* options, StaticConfig* out) {
  auto pairs = [options](const char* name, std::vector<std::pair<std::string, std::string>>* into) {
    PyObject* v = PyDict_GetItemString(options, name);  // Borrowed.
    if (v == nullptr || v == Py_None) return true;
    if (!PyList_Check(v)) {
      PyErr_Format(PyExc_TypeError, "option %s must be a list of str", name);
      return false;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); ++i) {
      const char* s = PyUnicode_AsUTF8(PyList_GET_ITEM(v, i));
      if (s == nullptr) return false;
      std::string_view item(s);
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        PyErr_Format(PyExc_ValueError, "option %s: expected KEY=VALUE, got %s", name, s);
        return false;
      }
      into->emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    }
    return true;
  };
  std::vector<std::pair<std::string, std::string>> mounts;
  if (!pairs("static", &mounts) || !pairs("static_mime", &out->mime)) return false;
  for (auto& [prefix, dir] : mounts) out->mounts.push_back({std::move(prefix), std::move(dir)});
  PyObject* age = PyDict_GetItemString(options, "static_max_age");
  if (age != nullptr && age != Py_None) {
    out->max_age = PyLong_AsLongLong(age);
    if (out->max_age == -1 && PyErr_Occurred()) return false;
  }
  return opt_bool(options, "static_immutable", &out->immutable) &&
         opt_bool(options, "static_follow_symlinks", &out->follow_symlinks) &&
         opt_bool(options, "static_dotfiles", &out->dotfiles) && opt_str(options, "static_index", &out->index);
}

LogLevel parse_level(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warning") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  if (s == "critical") return LogLevel::kCritical;
  return LogLevel::kInfo;
}

// The core configuration for one set of settings: at start, and again for
// each reload (HUP) from the settings the Python side re-read.
struct Config {
  WorkerConfig wc;
  MasterConfig mc;
  EnvironSettings es;
  AppSettings as;
  uint64_t max_requests = 0, max_requests_jitter = 0;
  bool reload = false;
};

// Fills c from options. Returns false with a Python exception.
bool parse_options(PyObject* options, Config& c) {
  WorkerConfig& wc = c.wc;
  long long workers = 1, max_line = 8190, max_head = 65536, max_headers = 100, max_conns = 16384, max_body = 1 << 20;
  std::string level = "info", log_file;
  if (!opt_int(options, "workers", &workers) || !opt_int(options, "max_request_line", &max_line) ||
      !opt_int(options, "max_header_size", &max_head) || !opt_int(options, "max_headers", &max_headers) ||
      !opt_int(options, "max_connections", &max_conns) || !opt_int(options, "max_body_buffer", &max_body) ||
      !opt_ms(options, "keepalive_timeout", &wc.keepalive_ms) || !opt_ms(options, "header_timeout", &wc.header_ms) ||
      !opt_ms(options, "body_timeout", &wc.body_ms) || !opt_ms(options, "send_timeout", &wc.send_ms) ||
      !opt_ms(options, "graceful_timeout", &wc.graceful_ms) ||
      !opt_str(options, "server_header", &wc.server_header) || !opt_str(options, "root_path", &c.es.root_path) ||
      !opt_str(options, "log_level", &level) || !opt_bool(options, "script_mode", &c.as.script_mode) ||
      !opt_bool(options, "reuse_port", &wc.reuse_port))
    return false;
  long long max_body_size = 0, max_input_memory = static_cast<long long>(wc.max_input_memory);
  if (!opt_int(options, "max_body_size", &max_body_size) || !opt_int(options, "max_input_memory", &max_input_memory))
    return false;
  long long threads = 1, max_pending = 0;
  if (!opt_int(options, "threads", &threads) || !opt_int(options, "max_pending", &max_pending) ||
      !opt_ms(options, "request_timeout", &wc.request_ms))
    return false;
  if (threads < 1) {
    PyErr_SetString(PyExc_ValueError, "threads must be >= 1");
    return false;
  }
  wc.threads = static_cast<size_t>(threads);
  wc.max_pending = static_cast<size_t>(max_pending);
  c.es.multithread = c.as.threaded = threads > 1;
  long long max_requests = 0, jitter = 0;
  if (!opt_int(options, "max_requests", &max_requests) || !opt_int(options, "max_requests_jitter", &jitter) ||
      !opt_ms(options, "timeout", &c.mc.timeout_ms) || !opt_bool(options, "daemon", &c.mc.daemon) ||
      !opt_str(options, "error_logfile", &log_file))
    return false;
  if (!opt_bool(options, "reload", &c.reload)) return false;
  bool capture = false, syslog = false;
  std::string syslog_to, log_format;
  if (!opt_bool(options, "capture_output", &capture) || !opt_bool(options, "log_syslog", &syslog) ||
      !opt_str(options, "log_syslog_to", &syslog_to) || !opt_str(options, "log_format", &log_format))
    return false;
  set_capture_output(capture);
  set_log_json(log_format == "json");
  if (int err = set_log_syslog(syslog ? syslog_to : std::string()); err < 0) {
    PyErr_Format(PyExc_OSError, "--log-syslog-to %s: %s", syslog_to.c_str(), strerror(-err));
    return false;
  }
  c.max_requests = static_cast<uint64_t>(max_requests);
  c.max_requests_jitter = static_cast<uint64_t>(jitter);
  wc.max_body_size = static_cast<uint64_t>(max_body_size);
  wc.max_input_memory = static_cast<size_t>(max_input_memory);
  if (workers < 1 || max_headers < 1 || max_headers > static_cast<long long>(kMaxHeaders) || max_conns < 1) {
    PyErr_SetString(PyExc_ValueError, "workers, max_headers (<= 128) and max_connections must be >= 1");
    return false;
  }
  long long backlog = 4096;
  if (!opt_int(options, "backlog", &backlog)) return false;
  if (!static_options(options, &wc.static_files)) return false;
  if (!proxy_options(options, &wc)) return false;
  if (!access_log_options(options, &wc.access_log)) return false;
  wc.backlog = static_cast<int>(std::min(backlog, 65535LL));
  wc.limits.max_request_line = static_cast<size_t>(max_line);
  wc.limits.max_head = static_cast<size_t>(max_head);
  wc.limits.max_headers = static_cast<size_t>(max_headers);
  wc.max_connections = static_cast<size_t>(max_conns);
  wc.max_body_buffer = static_cast<size_t>(max_body);
  c.mc.workers = static_cast<int>(workers);
  c.mc.graceful_ms = wc.graceful_ms;
  c.es.multiprocess = workers > 1;
  set_log_level(parse_level(level));
  set_log_file(log_file);
  return true;
}

// Calls lifecycle.<method>(*args) with the GIL held; logs a Python error
// (a hook that raised) and returns nullptr.
PyRef call_lifecycle(PyObject* lifecycle, const char* method, const char* fmt, int a = 0, int b = 0) {
  Gil::Acquire gil;
  PyRef r(fmt[0] == '\0' ? PyObject_CallMethod(lifecycle, method, nullptr)
                         : PyObject_CallMethod(lifecycle, method, fmt, a, b));
  if (r.get() == nullptr) PyErr_Print();
  return r;
}

const char* event_name(MasterEvent e) {
  switch (e) {
    case MasterEvent::kPreFork: return "pre_fork";
    case MasterEvent::kWorkersReady: return "workers_ready";
    case MasterEvent::kReloading: return "reloading";
    case MasterEvent::kStopping: return "stopping";
    case MasterEvent::kChildExit: return "child_exit";
    case MasterEvent::kWorkersChanged: return "nworkers_changed";
    case MasterEvent::kReexec: return "reexec";
  }
  return "unknown";
}

PyObject* serve(PyObject*, PyObject* args) {
  PyObject *lifecycle, *listeners, *options;
  if (!PyArg_ParseTuple(args, "OO!O!:serve", &lifecycle, &PyList_Type, &listeners, &PyDict_Type, &options))
    return nullptr;

  Config config;
  if (!parse_options(options, config)) return nullptr;

  std::vector<int> fds;
  std::vector<ListenerInfo> names;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(listeners); ++i) {
    int fd;
    const char *name, *port;
    if (!PyArg_ParseTuple(PyList_GET_ITEM(listeners, i), "iss", &fd, &name, &port)) return nullptr;
    fds.push_back(fd);
    names.push_back({name, port});
  }
  if (fds.empty()) {
    PyErr_SetString(PyExc_ValueError, "serve() needs at least one listener");
    return nullptr;
  }

  // Metrics (issue 9): the region is mapped before any fork so every worker
  // shares it; the master's thread serves it. A reload keeps both.
  std::string metrics_bind;
  if (!opt_str(options, "metrics_bind", &metrics_bind)) return nullptr;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (!metrics_bind.empty()) {
    std::string shown;
    int mfd = open_metrics_socket(metrics_bind, &shown);
    if (mfd < 0) return nullptr;
    metrics = Metrics::create(kMetricsSlots);
    if (!metrics) {
      ::close(mfd);
      return PyErr_SetFromErrno(PyExc_OSError);
    }
    metrics_server = std::make_unique<MetricsServer>(*metrics, mfd);
    metrics_server->start();
    log(LogLevel::kInfo, "Metrics at: http://%s/metrics", shown.c_str());
  }
  Metrics* shared_metrics = metrics.get();

  MasterHooks hooks;
  hooks.before_fork = [] { PyOS_BeforeFork(); };
  hooks.after_fork_parent = [] { PyOS_AfterFork_Parent(); };
  hooks.after_fork_child = [] {
    PyOS_AfterFork_Child();
    Worker::catch_stop_signals();
  };
  hooks.event = [lifecycle, shared_metrics](MasterEvent e, int a, int b) -> int {
    if (e == MasterEvent::kChildExit && shared_metrics != nullptr) shared_metrics->worker_exited(a, false);
    Gil::Acquire gil;
    PyRef r(PyObject_CallMethod(lifecycle, "event", "sii", event_name(e), a, b));
    if (r.get() == nullptr) {
      PyErr_Print();
      return 0;
    }
    long v = PyLong_Check(r.get()) ? PyLong_AsLong(r.get()) : 0;
    PyErr_Clear();
    return static_cast<int>(v);
  };
  hooks.reload = [lifecycle, &config](MasterConfig& mc) -> bool {
    Gil::Acquire gil;
    PyRef fresh(PyObject_CallMethod(lifecycle, "reload", nullptr));
    if (fresh.get() == nullptr) {
      PyErr_Print();
      return false;
    }
    if (!PyDict_Check(fresh.get())) return false;  // The Python side logged why.
    Config next;
    if (!parse_options(fresh.get(), next)) {
      PyErr_Print();
      return false;
    }
    config = next;
    mc = config.mc;
    return true;
  };
  hooks.worker_main = [&](WorkerLink& link) -> int {
    Config& c = config;
    PyRef target = call_lifecycle(lifecycle, "worker_load", "(i)", link.age());
    if (target.get() == nullptr) return kWorkerBootError;
    if (PyLong_Check(target.get())) return static_cast<int>(PyLong_AsLong(target.get()));
    EnvironSettings es = c.es;
    es.listeners = names;
    WorkerConfig wc = c.wc;
    wc.metrics = shared_metrics;
    if (c.reload) {
      PyRef files = call_lifecycle(lifecycle, "watch_files", "");
      Gil::Acquire gil;
      if (files.get() != nullptr && PyList_Check(files.get())) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(files.get()); ++i) {
          const char* path = PyUnicode_AsUTF8(PyList_GET_ITEM(files.get(), i));
          if (path == nullptr) {
            PyErr_Clear();
            continue;
          }
          wc.watch_files.emplace_back(path);
        }
      }
    }
    if (c.max_requests > 0) {
      std::random_device rd;
      wc.max_requests = c.max_requests + (c.max_requests_jitter > 0 ? rd() % (c.max_requests_jitter + 1) : 0);
    }
    int status;
    {
      App app(target.get(), es, c.as);
      if (!app.init()) {
        PyErr_Print();
        return kWorkerBootError;
      }
      Worker worker(wc, fds, app);
      worker.set_link(&link);
      worker.set_on_interrupt([lifecycle] { call_lifecycle(lifecycle, "worker_int", ""); });
      {
        Gil::Release nogil;
        status = worker.run();
      }
    }
    call_lifecycle(lifecycle, "worker_exit", "");
    return status;
  };

  Gil::entered_from_python();
  MasterResult r = run_master(config.mc, hooks);
  if (r.is_worker) {
    // A worker never returns into the CLI: that code (and its cleanup of
    // unix sockets, say) belongs to the master. Flush Python's streams and leave.
    PyRef out(PySys_GetObject("stdout") ? PyObject_CallMethod(PySys_GetObject("stdout"), "flush", nullptr) : nullptr);
    PyRef err(PySys_GetObject("stderr") ? PyObject_CallMethod(PySys_GetObject("stderr"), "flush", nullptr) : nullptr);
    PyErr_Clear();
    _exit(r.status);
  }
  return PyLong_FromLong(r.status);
}

PyObject* py_log(PyObject*, PyObject* args) {
  int level;
  const char* msg;
  if (!PyArg_ParseTuple(args, "is:log", &level, &msg)) return nullptr;
  log_text(static_cast<LogLevel>(level), msg);
  Py_RETURN_NONE;
}

PyMethodDef module_methods[] = {
    {"serve", serve, METH_VARARGS,
     "serve(lifecycle, listeners, options) -> int\n\nRuns the master and its workers until stopped; returns the exit "
     "status.\nlifecycle: the fulmen.lifecycle.Lifecycle the core calls (worker_load, event, reload, "
     "worker_int, worker_exit).\nlisteners: list of "
     "(fd, server_name, server_port) for bound, listening, non-blocking sockets.\noptions: settings by name."},
    {"log", py_log, METH_VARARGS, "log(level: int, message: str): writes one line to the error log."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "fulmen._core", "fulmen's C++ server core (private).", -1,
                          module_methods};

}  // namespace
}  // namespace fulmen::wsgi

PyMODINIT_FUNC PyInit__core() {
  using namespace fulmen::wsgi;
  if (PyType_Ready(&InputType) < 0 || PyType_Ready(&ErrorsType) < 0 || PyType_Ready(&FileWrapperType) < 0)
    return nullptr;
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
#ifdef Py_GIL_DISABLED
  // Free-threaded CPython (3.13t+): the bridge still counts on the GIL for
  // the Python objects it shares between threads (the wsgi.errors line
  // buffer, the environ prototypes, lazily created caches), so it says so and
  // the interpreter keeps the GIL on while it is loaded. The core's own
  // shared data (ThreadPool, Job, the Call pool, the garbage list) uses
  // mutexes and atomics, not the GIL. See docs/design.md.
  if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_USED) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
#endif
  if (PyModule_AddObject(m, "FileWrapper", Py_NewRef(reinterpret_cast<PyObject*>(&FileWrapperType))) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
