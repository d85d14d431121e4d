// The WSGI environ (PEP 3333): keys are created once at start, every request
// copies a per-listener prototype dict and adds what varies.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstdio>

#include "core/format.h"
#include "wsgi/bridge.h"

namespace fulmen::wsgi {
namespace {

// Request headers common enough to deserve a prebuilt environ key.
constexpr const char* kKnownHeaders[] = {"host",
                                         "user-agent",
                                         "accept",
                                         "accept-encoding",
                                         "accept-language",
                                         "accept-charset",
                                         "connection",
                                         "cookie",
                                         "referer",
                                         "origin",
                                         "cache-control",
                                         "pragma",
                                         "authorization",
                                         "if-modified-since",
                                         "if-none-match",
                                         "if-match",
                                         "if-unmodified-since",
                                         "if-range",
                                         "range",
                                         "upgrade",
                                         "upgrade-insecure-requests",
                                         "dnt",
                                         "te",
                                         "expect",
                                         "x-forwarded-for",
                                         "x-forwarded-proto",
                                         "x-forwarded-host",
                                         "x-forwarded-port",
                                         "x-real-ip",
                                         "x-requested-with",
                                         "x-request-id",
                                         "forwarded",
                                         "via",
                                         "sec-fetch-site",
                                         "sec-fetch-mode",
                                         "sec-fetch-dest",
                                         "sec-fetch-user",
                                         "sec-ch-ua",
                                         "sec-ch-ua-mobile",
                                         "sec-ch-ua-platform",
                                         "keep-alive",
                                         "content-encoding",
                                         "content-md5",
                                         "priority",
                                         "purpose",
                                         "x-csrftoken",
                                         "x-csrf-token",
                                         "access-control-request-method",
                                         "access-control-request-headers"};

constexpr size_t kTableSize = 256;  // Power of two, > 3x the known headers.

inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// FNV-1a over the lower-cased name.
inline uint32_t name_hash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<uint8_t>(lower(c))) * 16777619u;
  return h;
}

PyObject* intern(const char* s) {
  return PyUnicode_InternFromString(s);
}

PyObject* latin1(std::string_view s) {
  return PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
}

}  // namespace

void percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
}

bool EnvironBuilder::init(const EnvironSettings& settings) {
  settings_ = settings;
  k_method_.reset(intern("REQUEST_METHOD"));
  k_path_.reset(intern("PATH_INFO"));
  k_query_.reset(intern("QUERY_STRING"));
  k_protocol_.reset(intern("SERVER_PROTOCOL"));
  k_remote_addr_.reset(intern("REMOTE_ADDR"));
  k_remote_port_.reset(intern("REMOTE_PORT"));
  k_raw_uri_.reset(intern("RAW_URI"));
  k_request_uri_.reset(intern("REQUEST_URI"));
  k_input_.reset(intern("wsgi.input"));
  k_script_name_.reset(intern("SCRIPT_NAME"));
  k_http10_.reset(intern("HTTP/1.0"));
  k_http11_.reset(intern("HTTP/1.1"));
  k_empty_.reset(intern(""));
  k_url_scheme_.reset(intern("wsgi.url_scheme"));
  k_https_.reset(intern("https"));
  if (!k_url_scheme_ || !k_https_) return false;
  for (const char* m : {"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
    methods_.emplace_back(m, PyRef(intern(m)));

  table_.assign(kTableSize, -1);
  for (const char* h : kKnownHeaders) {
    std::string key = "HTTP_";
    for (const char* p = h; *p; ++p) key.push_back(*p == '-' ? '_' : static_cast<char>(*p >= 'a' ? *p - 32 : *p));
    known_.push_back({h, intern(key.c_str())});
  }
  known_.push_back({"content-type", intern("CONTENT_TYPE")});
  known_.push_back({"content-length", intern("CONTENT_LENGTH")});
  for (size_t i = 0; i < known_.size(); ++i) {
    uint32_t slot = name_hash(known_[i].lower) & (kTableSize - 1);
    while (table_[slot] >= 0) slot = (slot + 1) & (kTableSize - 1);
    table_[slot] = static_cast<int16_t>(i);
  }

  PyRef version(Py_BuildValue("(ii)", 1, 0));
  // One wsgi.errors per worker, kept so the end of each request can log a
  // line the app left without its newline.
  errors_.reset(PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&ErrorsType)));
  if (!version || !errors_) return false;
  for (const auto& l : settings_.listeners) {
    // Presized for a whole environ: PyDict_Copy clones the key table with its
    // capacity, so per-request inserts never grow (rehash) the copy.
    PyRef d(_PyDict_NewPresized(40));
    if (!d) return false;
    struct Item {
      const char* key;
      PyObject* value;  // borrowed or new (new ones owned below)
    };
    PyRef name(latin1(l.server_name)), port(latin1(l.server_port)), root(latin1(settings_.root_path)),
        scheme(intern("http")), software(PyUnicode_FromString("fulmen/" FULMEN_VERSION));
    if (!name || !port || !root || !scheme || !software) return false;
    Item items[] = {{"wsgi.version", version.get()},
                    {"wsgi.url_scheme", scheme.get()},
                    {"wsgi.errors", errors_.get()},
                    {"wsgi.multithread", settings_.multithread ? Py_True : Py_False},
                    {"wsgi.multiprocess", settings_.multiprocess ? Py_True : Py_False},
                    {"wsgi.run_once", Py_False},
                    {"wsgi.input_terminated", Py_True},
                    {"wsgi.file_wrapper", reinterpret_cast<PyObject*>(&FileWrapperType)},
                    {"SERVER_NAME", name.get()},
                    {"SERVER_PORT", port.get()},
                    {"SERVER_SOFTWARE", software.get()},
                    {"SCRIPT_NAME", root.get()},
                    // Set by every build() and set_script_path() before the
                    // app sees the dict: present in the prototype (as None),
                    // the copy has them in its key table already and each
                    // request only replaces the values, with no insertion.
                    {"REQUEST_METHOD", Py_None},
                    {"QUERY_STRING", Py_None},
                    {"RAW_URI", Py_None},
                    {"REQUEST_URI", Py_None},
                    {"SERVER_PROTOCOL", Py_None},
                    {"wsgi.input", Py_None},
                    {"REMOTE_ADDR", Py_None},
                    {"REMOTE_PORT", Py_None},
                    {"PATH_INFO", Py_None}};
    for (const auto& it : items) {
      PyRef k(intern(it.key));
      if (!k || PyDict_SetItem(d.get(), k.get(), it.value) < 0) return false;
    }
    protos_.push_back(std::move(d));
  }
  return true;
}

EnvironBuilder::KnownHeader* EnvironBuilder::known_for(std::string_view name) {
  uint32_t slot = name_hash(name) & (kTableSize - 1);
  while (table_[slot] >= 0) {
    KnownHeader& k = known_[static_cast<size_t>(table_[slot])];
    if (k.lower.size() == name.size()) {
      size_t i = 0;
      while (i < name.size() && lower(name[i]) == k.lower[i]) ++i;
      if (i == name.size()) return &k;
    }
    slot = (slot + 1) & (kTableSize - 1);
  }
  return nullptr;
}

PyObject* EnvironBuilder::unknown_key(std::string_view name) {
  // HTTP_ + upper-cased name with '-' as '_'. A name that already holds '_'
  // is dropped, so "X_Forwarded_For" can never pose as X-Forwarded-For (both
  // would map to HTTP_X_FORWARDED_FOR).
  char buf[256];
  if (name.size() + 5 > sizeof buf) return nullptr;
  memcpy(buf, "HTTP_", 5);
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '_') return nullptr;
    buf[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  }
  return PyUnicode_FromStringAndSize(buf, static_cast<Py_ssize_t>(name.size() + 5));
}

PyObject* EnvironBuilder::build(Exchange& c, const RequestHead& head, PyObject* input) {
  PyRef env(PyDict_Copy(protos_[c.listener()].get()));
  if (!env) return nullptr;
  PyObject* d = env.get();

  PyRef method;
  for (auto& [name, obj] : methods_) {
    if (head.method == name) {
      method.reset(Py_NewRef(obj.get()));
      break;
    }
  }
  if (!method) method.reset(latin1(head.method));
  PyRef query(head.query.empty() ? Py_NewRef(k_empty_.get()) : recent_query_.get(head.query));
  PyRef raw(recent_target_.get(head.target));
  if (!method || !query || !raw) return nullptr;
  if (PyDict_SetItem(d, k_method_.get(), method.get()) < 0 || PyDict_SetItem(d, k_query_.get(), query.get()) < 0 ||
      PyDict_SetItem(d, k_raw_uri_.get(), raw.get()) < 0 || PyDict_SetItem(d, k_request_uri_.get(), raw.get()) < 0 ||
      PyDict_SetItem(d, k_protocol_.get(), head.version_minor == 0 ? k_http10_.get() : k_http11_.get()) < 0 ||
      PyDict_SetItem(d, k_input_.get(), input) < 0)
    return nullptr;

  // REMOTE_ADDR / REMOTE_PORT: the client (the peer, or what a trusted proxy said).
  const sockaddr_storage& peer = c.client();
  char addr[INET6_ADDRSTRLEN] = "";
  size_t addr_len = 0;
  char port_s[8];
  size_t port_len = 0;
  if (peer.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&peer);
    addr_len = format_ipv4(reinterpret_cast<const unsigned char*>(&sin->sin_addr), addr);
    port_len = format_decimal(ntohs(sin->sin_port), port_s);
  } else if (peer.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
    addr_len = strlen(addr);
    port_len = format_decimal(ntohs(sin6->sin6_port), port_s);
  }
  PyRef ra(recent_addr_.get({addr, addr_len})), rp(recent_port_.get({port_s, port_len}));
  if (!ra || !rp || PyDict_SetItem(d, k_remote_addr_.get(), ra.get()) < 0 ||
      PyDict_SetItem(d, k_remote_port_.get(), rp.get()) < 0)
    return nullptr;
  if (c.forwarded_https() && PyDict_SetItem(d, k_url_scheme_.get(), k_https_.get()) < 0) return nullptr;

  for (size_t i = 0; i < head.num_headers; ++i) {
    const Header& h = head.headers[i];
    KnownHeader* known = known_for(h.name);
    PyRef key_ref;
    PyObject* key;
    PyRef value;
    if (known != nullptr) {
      key = known->key;
      value.reset(known->recent.get(h.value));
    } else {
      key_ref.reset(unknown_key(h.name));
      key = key_ref.get();
      if (key == nullptr) {
        if (PyErr_Occurred()) return nullptr;
        continue;
      }
      value.reset(latin1(h.value));
    }
    if (!value) return nullptr;
    Py_ssize_t before = PyDict_GET_SIZE(d);
    PyObject* existing = PyDict_SetDefault(d, key, value.get());
    if (existing == nullptr) return nullptr;
    if (PyDict_GET_SIZE(d) == before) {
      // A repeated field: join the values (RFC 9110 5.3); cookies with "; "
      // (RFC 6265 5.4).
      bool cookie = h.name.size() == 6 && (h.name[0] | 0x20) == 'c' && (h.name[1] | 0x20) == 'o';
      PyRef joined(PyUnicode_FromFormat(cookie ? "%U; %U" : "%U, %U", existing, value.get()));
      if (!joined || PyDict_SetItem(d, key, joined.get()) < 0) return nullptr;
    }
  }
  // With an absolute-form (or CONNECT's authority-form) target, the target
  // names the host and the Host field is ignored (RFC 9112 3.2.2).
  if (head.target_form == TargetForm::kAbsolute || head.target_form == TargetForm::kAuthority) {
    KnownHeader* known = known_for("host");  // Always known.
    PyRef host(latin1(head.host));
    if (known == nullptr || !host || PyDict_SetItem(d, known->key, host.get()) < 0) return nullptr;
  }
  return env.release();
}

bool EnvironBuilder::set_script_path(PyObject* env, std::string_view script_prefix, std::string_view path_info) {
  PyRef path(recent_path_.get(path_info));
  if (!path || PyDict_SetItem(env, k_path_.get(), path.get()) < 0) return false;
  if (script_prefix.empty()) return true;  // SCRIPT_NAME is root_path, from the prototype.
  std::string script = settings_.root_path;
  script.append(script_prefix);
  PyRef s(latin1(script));
  return s && PyDict_SetItem(env, k_script_name_.get(), s.get()) == 0;
}

}  // namespace fulmen::wsgi
