#include "core/static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/connection.h"
#include "core/format.h"
#include "core/log.h"
#include "core/response.h"

namespace fulmen {
namespace {

constexpr std::string_view kSuffix[] = {"", ".br", ".gz"};
constexpr int64_t kYear = 31536000;

// The first value of header `lower_name`, or nullptr.
const std::string_view* find_header(const RequestHead& head, std::string_view lower_name) {
  for (size_t i = 0; i < head.num_headers; ++i)
    if (iequals(head.headers[i].name, lower_name)) return &head.headers[i].value;
  return nullptr;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Digits at s[at, at + n) as a number; false when any is not a digit.
bool digits(std::string_view s, size_t at, size_t n, int* out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// "hh:mm:ss" at s[at].
bool clock_time(std::string_view s, size_t at, int* h, int* m, int* sec) {
  return at + 8 <= s.size() && s[at + 2] == ':' && s[at + 5] == ':' && digits(s, at, 2, h) &&
         digits(s, at + 3, 2, m) && digits(s, at + 6, 2, sec);
}

int month_index(std::string_view name) {
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  size_t at = name.size() == 3 ? kMonths.find(name) : std::string_view::npos;
  return at == std::string_view::npos || at % 3 != 0 ? -1 : static_cast<int>(at / 3);
}

// An HTTP-date (RFC 9110 5.6.7) to seconds since the epoch, -1 when it is
// not one. All three forms are accepted, as recipients must:
// IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", rfc850-date
// "Sunday, 06-Nov-94 08:49:37 GMT" and asctime-date "Sun Nov  6 08:49:37 1994".
int64_t parse_http_date(std::string_view s) {
  s = trim(s);
  int day = 0, mon = -1, year = 0, hour = 0, minute = 0, second = 0;
  size_t comma = s.find(',');
  if (comma == 3 && s.size() == 29) {
    if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s.substr(25) != " GMT" ||
        !digits(s, 5, 2, &day) || !digits(s, 12, 4, &year) || !clock_time(s, 17, &hour, &minute, &second))
      return -1;
    mon = month_index(s.substr(8, 3));
  } else if (comma != std::string_view::npos && comma > 3) {
    std::string_view r = s.substr(comma + 1);  // " 06-Nov-94 08:49:37 GMT"
    if (r.size() != 23 || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || r.substr(19) != " GMT" ||
        !digits(r, 1, 2, &day) || !digits(r, 8, 2, &year) || !clock_time(r, 11, &hour, &minute, &second))
      return -1;
    mon = month_index(r.substr(4, 3));
    // Two-digit years: the closest century that is not far in the future (RFC 9110 5.6.7).
    year += year < 70 ? 2000 : 1900;
  } else if (comma == std::string_view::npos && s.size() == 24) {
    if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !clock_time(s, 11, &hour, &minute, &second) ||
        !digits(s, 20, 4, &year))
      return -1;
    if (!(s[8] == ' ' ? digits(s, 9, 1, &day) : digits(s, 8, 2, &day))) return -1;
    mon = month_index(s.substr(4, 3));
  } else {
    return -1;
  }
  if (mon < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || year < 1970) return -1;
  struct tm tm = {};
  tm.tm_mday = day;
  tm.tm_mon = mon;
  tm.tm_year = year - 1900;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm));
}

std::string format_http_date(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

// Whether the list of entity-tags in an If-Match / If-None-Match value
// holds `etag` ("*" holds every one). Weak comparison ignores "W/" (RFC
// 9110 8.8.3.2); strong comparison never matches a weak tag.
bool etag_listed(std::string_view list, std::string_view etag, bool weak) {
  list = trim(list);
  if (list == "*") return true;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    bool is_weak = item.size() >= 2 && item[0] == 'W' && item[1] == '/';
    if (is_weak) {
      if (!weak) continue;
      item.remove_prefix(2);
    }
    if (item == etag) return true;
  }
  return false;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  *out = v;
  return true;
}

// A Range header (RFC 9110 14.1.2) against a representation of `size`
// bytes. Returns 1 with [*first, *last] for one satisfiable range, -1 when
// unsatisfiable (416), 0 to send the whole file: no valid bytes range, or
// several ranges (the RFC allows answering those with 200).
int parse_range(std::string_view value, uint64_t size, uint64_t* first, uint64_t* last) {
  value = trim(value);
  if (value.size() < 6 || !iequals(value.substr(0, 6), "bytes=")) return 0;
  value = trim(value.substr(6));
  if (value.find(',') != std::string_view::npos) return 0;
  size_t dash = value.find('-');
  if (dash == std::string_view::npos) return 0;
  std::string_view a = trim(value.substr(0, dash)), b = trim(value.substr(dash + 1));
  uint64_t x = 0, y = 0;
  if (a.empty()) {  // Suffix range: the last y bytes.
    if (!parse_u64(b, &y)) return 0;
    if (y == 0 || size == 0) return -1;
    *first = size > y ? size - y : 0;
    *last = size - 1;
    return 1;
  }
  if (!parse_u64(a, &x)) return 0;
  if (b.empty()) {
    y = UINT64_MAX;
  } else if (!parse_u64(b, &y) || y < x) {
    return 0;  // Invalid: ignored (RFC 9110 14.1.1), the whole file is sent.
  }
  if (x >= size) return -1;
  *first = x;
  *last = std::min(y, size - 1);
  return 1;
}

// The q-value (0..1000) of `coding` in an Accept-Encoding value; -1 when
// not listed. "*" stands for any coding not listed by name (RFC 9110 12.5.3).
int accept_q(std::string_view value, std::string_view coding) {
  int star = -1;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view name = trim(item.substr(0, semi));
    int q = 1000;
    if (semi != std::string_view::npos) {
      std::string_view param = trim(item.substr(semi + 1));
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        std::string_view num = trim(param.substr(2));
        q = 0;
        if (!num.empty() && num[0] == '1') {
          q = 1000;
        } else if (!num.empty() && num[0] == '0') {
          int scale = 100;
          for (size_t i = 2; i < num.size() && i < 5 && num[1] == '.'; ++i) {
            if (num[i] < '0' || num[i] > '9') break;
            q += (num[i] - '0') * scale;
            scale /= 10;
          }
        }
      }
    }
    if (name == "*") {
      star = q;
    } else if (name.size() == coding.size() && iequals(name, coding)) {
      return q;
    }
  }
  return star;
}

// A plain-text answer of the core's own (404, 405...), keeping the connection.
void plain(Connection& c, int status, std::string_view reason, std::string_view extra = {}) {
  char text[64];
  int n = snprintf(text, sizeof text, "%d %.*s", status, static_cast<int>(reason.size()), reason.data());
  c.start_response(std::string_view(text, static_cast<size_t>(n)), status);
  c.add_header_lines("Content-Type: text/plain; charset=utf-8\r\n");
  if (!extra.empty()) c.add_header_lines(extra);
  text[n] = '\n';
  c.end_headers(n + 1);
  c.write_body(text, static_cast<size_t>(n) + 1);
  c.finish_response();
}

bool hex_run(std::string_view s) {
  if (s.size() < 8) return false;
  bool digit = false;
  for (char ch : s) {
    if (ch >= '0' && ch <= '9') {
      digit = true;
    } else if (!((ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
      return false;
    }
  }
  return digit;
}

}  // namespace

bool StaticFiles::same_file(const Entry& e, const struct stat& st) {
  return e.dev == st.st_dev && e.ino == st.st_ino && e.size == st.st_size && e.mtime.tv_sec == st.st_mtim.tv_sec &&
         e.mtime.tv_nsec == st.st_mtim.tv_nsec && e.ctime.tv_sec == st.st_ctim.tv_sec &&
         e.ctime.tv_nsec == st.st_ctim.tv_nsec;
}

bool is_hashed_name(std::string_view name) {
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  size_t ext = name.rfind('.');
  if (ext == std::string_view::npos || ext == 0) return false;
  std::string_view stem = name.substr(0, ext);
  // The hash is the stem's last '.'- or '-'-delimited part, and not all of it.
  size_t sep = stem.find_last_of(".-");
  if (sep == std::string_view::npos) return false;
  return hex_run(stem.substr(sep + 1));
}

StaticFiles::StaticFiles(const StaticConfig& config, const MonotonicClock& clock) : config_(config), clock_(clock) {
  rules_.dotfiles = config_.dotfiles;
  for (const auto& [ext, type] : config_.mime)
    if (!mime_.add(ext, type))
      log(LogLevel::kWarning, "static: ignoring MIME type %s for .%s", type.c_str(), ext.c_str());
  for (const auto& m : config_.mounts) {
    Mount mount;
    mount.prefix = m.prefix;
    mount.dir_fd = ::open(m.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (mount.dir_fd < 0)
      log(LogLevel::kError, "static: cannot open %s for %s: %s", m.dir.c_str(), m.prefix.c_str(), strerror(errno));
    mounts_.push_back(std::move(mount));
  }
  std::stable_sort(mounts_.begin(), mounts_.end(),
                   [](const Mount& a, const Mount& b) { return a.prefix.size() > b.prefix.size(); });
}

StaticFiles::~StaticFiles() {
  while (!entries_.empty()) drop(entries_.begin());
  for (auto& m : mounts_)
    if (m.dir_fd >= 0) ::close(m.dir_fd);
  // Handles still referenced by queued sends would be a bug of the owner:
  // the worker destroys its connections (and their queues) first.
  for (auto& h : handles_) ::close(h.fd);
}

// Compares the raw (percent-encoded) path with each prefix, decoding as it
// goes, so "/st%61tic/x" is under "/static" as the app would see it. An
// encoded '/' is never a separator. The rest starts at a literal '/' or is empty.
const StaticFiles::Mount* StaticFiles::match(std::string_view path, std::string_view* rest) const {
  for (const Mount& m : mounts_) {
    if (m.prefix == "/") {
      *rest = path;
      return &m;
    }
    size_t i = 0, j = 0;
    while (j < m.prefix.size() && i < path.size()) {
      char ch = path[i];
      if (ch == '%' && i + 2 < path.size()) {
        auto hex = [](char h) {
          return h >= '0' && h <= '9'   ? h - '0'
                 : h >= 'a' && h <= 'f' ? h - 'a' + 10
                 : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                        : -1;
        };
        int hi = hex(path[i + 1]), lo = hex(path[i + 2]);
        if (hi < 0 || lo < 0) break;
        ch = static_cast<char>(hi * 16 + lo);
        if (ch == '/') break;
        i += 3;
      } else {
        ++i;
      }
      if (ch != m.prefix[j]) break;
      ++j;
    }
    if (j == m.prefix.size() && (i == path.size() || path[i] == '/')) {
      *rest = path.substr(i);
      return &m;
    }
  }
  return nullptr;
}

bool StaticFiles::serve(Connection& c, const RequestHead& head) {
  if (mounts_.empty() || head.path.empty() || head.path[0] != '/') return false;
  std::string_view rest;
  const Mount* m = match(head.path, &rest);
  if (m == nullptr) return false;
  auto mi = static_cast<size_t>(m - mounts_.data());
  bool is_get = head.method == "GET";
  if (!is_get && head.method != "HEAD") {
    plain(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
    return true;
  }
  bool dir_form = false;
  int r = decode_static_path(rest, rules_, &scratch_, &dir_form);
  if (r != 0) {
    plain(c, r, r == 400 ? "Bad Request" : "Not Found");
    return true;
  }
  // "/static" itself names the folder without its '/': redirected like any directory.
  if (rest.empty()) dir_form = false;
  uint64_t now = clock_.now_ms();
  Entry* e = m->dir_fd >= 0 ? lookup(mi, scratch_, kIdentity, now) : nullptr;
  if (e != nullptr && e->directory) {
    if (config_.index.empty()) {
      e = nullptr;
    } else if (!dir_form) {
      // As nginx: the directory's URL ends with '/', so relative links in its index resolve.
      std::string location(head.path);
      location += '/';
      if (!head.query.empty()) {
        location += '?';
        location += head.query;
      }
      std::string extra = "Location: " + location + "\r\n";
      plain(c, 301, "Moved Permanently", extra);
      return true;
    } else {
      if (!scratch_.empty()) scratch_ += '/';
      scratch_ += config_.index;
      e = lookup(mi, scratch_, kIdentity, now);
      if (e != nullptr && e->directory) e = nullptr;
    }
  } else if (e != nullptr && dir_form) {
    e = nullptr;  // "/site.css/" names a directory that is not there.
  }
  if (e == nullptr) {
    plain(c, 404, "Not Found");
    return true;
  }
  if (e->has_br || e->has_gz) {
    // Precompressed siblings, chosen by q-value; br before gzip on a tie,
    // either before identity unless identity is preferred (RFC 9110 12.5.3).
    const std::string_view* ae = find_header(head, "accept-encoding");
    Coding pick = kIdentity;
    if (ae != nullptr) {
      int q_br = e->has_br ? accept_q(*ae, "br") : -1;
      int q_gz = e->has_gz ? accept_q(*ae, "gzip") : -1;
      int q_id = accept_q(*ae, "identity");
      if (q_id < 0) q_id = 1;  // Identity is acceptable unless excluded; a listed coding wins over it.
      int best = std::max(q_br, q_gz);
      if (best > 0 && best >= q_id) pick = q_br >= q_gz ? kBrotli : kGzip;
    }
    if (pick != kIdentity) {
      Entry* v = lookup(mi, scratch_, pick, now);
      // A sibling that vanished since the flag was set: the file itself.
      e = v != nullptr && !v->directory ? v : lookup(mi, scratch_, kIdentity, now);
      if (e == nullptr) {
        plain(c, 404, "Not Found");
        return true;
      }
    }
  }
  respond(c, head, *e);
  return true;
}

void StaticFiles::respond(Connection& c, const RequestHead& head, Entry& e) {
  const int64_t mtime = e.mtime.tv_sec;
  // Preconditions in the order of RFC 9110 13.2.2.
  if (const std::string_view* v = find_header(head, "if-match")) {
    if (!etag_listed(*v, e.etag, false)) {
      plain(c, 412, "Precondition Failed");
      return;
    }
  } else if (const std::string_view* ius = find_header(head, "if-unmodified-since")) {
    int64_t t = parse_http_date(*ius);
    if (t >= 0 && mtime > t) {
      plain(c, 412, "Precondition Failed");
      return;
    }
  }
  bool not_modified = false;
  bool has_inm = false;
  for (size_t i = 0; i < head.num_headers; ++i) {
    if (!iequals(head.headers[i].name, "if-none-match")) continue;
    has_inm = true;
    if (etag_listed(head.headers[i].value, e.etag, true)) not_modified = true;
  }
  if (!has_inm) {
    if (const std::string_view* ims = find_header(head, "if-modified-since")) {
      int64_t t = parse_http_date(*ims);
      not_modified = t >= 0 && mtime <= t;
    }
  }
  if (not_modified) {
    c.start_response("304 Not Modified", 304);
    c.add_header_lines(e.head_304);
    c.end_headers(-1);
    c.finish_response();
    return;
  }
  const auto size = static_cast<uint64_t>(e.size);
  uint64_t first = 0, last = size == 0 ? 0 : size - 1;
  int range = 0;
  const std::string_view* rv = head.method == "GET" ? find_header(head, "range") : nullptr;
  if (rv != nullptr) {
    range = parse_range(*rv, size, &first, &last);
    if (range != 0) {
      if (const std::string_view* ir = find_header(head, "if-range")) {
        // An entity-tag must match strongly; a date must be the exact
        // Last-Modified (RFC 9110 13.1.5). Otherwise: the whole file.
        std::string_view t = trim(*ir);
        bool valid = t.starts_with('"') || t.starts_with("W/") ? t == e.etag : parse_http_date(t) == mtime;
        if (!valid) range = 0;
      }
    }
  }
  if (range < 0) {
    char extra[64];
    int n = snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n", static_cast<unsigned long long>(size));
    plain(c, 416, "Range Not Satisfiable", std::string_view(extra, static_cast<size_t>(n)));
    return;
  }
  uint64_t len = size;
  if (range > 0) {
    len = last - first + 1;
    c.start_response("206 Partial Content", 206);
    c.add_header_lines(e.head);
    char line[96];
    int n =
        snprintf(line, sizeof line, "Content-Range: bytes %llu-%llu/%llu\r\n", static_cast<unsigned long long>(first),
                 static_cast<unsigned long long>(last), static_cast<unsigned long long>(size));
    c.add_header_lines(std::string_view(line, static_cast<size_t>(n)));
  } else {
    first = 0;
    c.start_response("200 OK", 200);
    c.add_header_lines(e.head);
  }
  c.end_headers(static_cast<int64_t>(len));
  if (len > 0 && !c.response_has_no_body()) {
    if (e.handle == nullptr) {
      c.write_body(e.body.data() + first, static_cast<size_t>(len));
    } else {
      ++e.handle->refs;  // The queued send's reference; on_sent lets go.
      c.write_body_file(e.handle->fd, static_cast<int64_t>(first), static_cast<int64_t>(len),
                        Releaser{on_sent, e.handle});
    }
  }
  c.finish_response();
}

// An entry sent with sendfile is checked against its descriptor on every
// use (one fstat): a file rewritten in place is seen at once, not after the
// revalidation period. (A file replaced by rename keeps the old inode
// behind this descriptor: the old content, whole, until the path is
// resolved again.)
bool StaticFiles::unchanged(const Entry& e) {
  if (e.handle == nullptr) return true;
  struct stat st;
  return ::fstat(e.handle->fd, &st) == 0 && same_file(e, st);
}

StaticFiles::Entry* StaticFiles::lookup(size_t mount, const std::string& rel, Coding coding, uint64_t now) {
  // The key: mount index, coding, path ("0:0:css/site.css").
  std::string key = std::to_string(mount);
  key += ':';
  key += static_cast<char>('0' + coding);
  key += ':';
  key += rel;
  auto it = entries_.find(key);
  if (it != entries_.end() && now - it->second->checked_ms < kRevalidateMs && unchanged(*it->second)) {
    it->second->used_ms = now;
    return it->second.get();
  }
  // Resolve the path (again): the file may have been replaced, removed, or
  // swapped for a symlink since it was cached.
  std::string path = rel;
  path += kSuffix[coding];
  int fd = open_beneath(mounts_[mount].dir_fd, path, config_.follow_symlinks);
  struct stat st;
  if (fd >= 0 && (::fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || (S_ISDIR(st.st_mode) && coding == kIdentity)))) {
    ::close(fd);
    fd = -1;
  }
  if (fd < 0) {
    if (it != entries_.end()) drop(it);
    return nullptr;
  }
  auto siblings = [&](Entry* e) {
    if (coding != kIdentity || e->directory) return;
    bool br = false, gz = false;
    for (Coding k : {kBrotli, kGzip}) {
      int sfd = open_beneath(mounts_[mount].dir_fd, rel + std::string(kSuffix[k]), config_.follow_symlinks);
      struct stat sst;
      bool ok = sfd >= 0 && ::fstat(sfd, &sst) == 0 && S_ISREG(sst.st_mode);
      if (sfd >= 0) ::close(sfd);
      (k == kBrotli ? br : gz) = ok;
    }
    bool changed = br != e->has_br || gz != e->has_gz;
    e->has_br = br;
    e->has_gz = gz;
    if (changed) format_heads(rel, coding, e);
  };
  if (it != entries_.end()) {
    Entry* e = it->second.get();
    if (same_file(*e, st)) {
      ::close(fd);
      e->checked_ms = e->used_ms = now;
      siblings(e);
      return e;
    }
    drop(it);
  }
  if (entries_.size() >= kMaxEntries) {
    auto oldest = entries_.begin();
    for (auto i = entries_.begin(); i != entries_.end(); ++i)
      if (i->second->used_ms < oldest->second->used_ms) oldest = i;
    drop(oldest);
  }
  auto e = std::make_unique<Entry>();
  if (!load(fd, st, e.get())) return nullptr;
  e->checked_ms = e->used_ms = now;
  siblings(e.get());
  if (!e->directory) format_heads(rel, coding, e.get());
  Entry* raw = e.get();
  entries_.emplace(std::move(key), std::move(e));
  return raw;
}

// Fills a new entry from an open descriptor (taking it over). Small files
// are read whole, and kept only if the file did not change while being
// read, so a response is the old or the new content, never a mix.
bool StaticFiles::load(int fd, const struct stat& st_in, Entry* e) {
  struct stat st = st_in;
  e->directory = S_ISDIR(st.st_mode);
  if (e->directory) {
    ::close(fd);
  } else if (st.st_size <= kInlineMax) {
    bool stable = false;
    for (int attempt = 0; attempt < 3 && !stable; ++attempt) {
      e->body.resize(static_cast<size_t>(st.st_size));
      size_t got = 0;
      while (got < e->body.size()) {
        ssize_t n = ::pread(fd, e->body.data() + got, e->body.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      struct stat after;
      if (::fstat(fd, &after) != 0) break;
      stable = got == e->body.size() && after.st_size == st.st_size && after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
               after.st_mtim.tv_nsec == st.st_mtim.tv_nsec && after.st_ctim.tv_sec == st.st_ctim.tv_sec &&
               after.st_ctim.tv_nsec == st.st_ctim.tv_nsec;
      st = after;
    }
    ::close(fd);
    if (!stable) return false;
  } else {
    e->handle = adopt_fd(fd);
  }
  e->dev = st.st_dev;
  e->ino = st.st_ino;
  e->size = st.st_size;
  e->mtime = st.st_mtim;
  e->ctime = st.st_ctim;
  // A strong validator from what changes when the content does (issue 11):
  // inode, size and modification time in nanoseconds.
  char tag[64];
  size_t n = 0;
  tag[n++] = '"';
  n += format_hex(static_cast<uint64_t>(st.st_ino), tag + n);
  tag[n++] = '-';
  n += format_hex(static_cast<uint64_t>(st.st_size), tag + n);
  tag[n++] = '-';
  n += format_hex(static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u + static_cast<uint64_t>(st.st_mtim.tv_nsec),
                  tag + n);
  tag[n++] = '"';
  e->etag.assign(tag, n);
  return true;
}

// The header lines that depend only on the file, formatted once per file
// (issue 11): each response adds its status line, Date, Content-Length and
// Content-Range to them.
void StaticFiles::format_heads(const std::string& rel, Coding coding, Entry* e) const {
  std::string last_modified = "Last-Modified: " + format_http_date(e->mtime.tv_sec) + "\r\n";
  std::string etag = "ETag: " + e->etag + "\r\n";
  std::string cache;
  if (config_.immutable && is_hashed_name(rel)) {
    cache = "Cache-Control: public, max-age=" + std::to_string(kYear) + ", immutable\r\n";
  } else if (config_.max_age >= 0) {
    cache = "Cache-Control: public, max-age=" + std::to_string(config_.max_age) + "\r\n";
  }
  std::string vary = coding != kIdentity || e->has_br || e->has_gz ? "Vary: Accept-Encoding\r\n" : "";
  e->head = "Content-Type: ";
  e->head += mime_.lookup(rel);
  e->head += "\r\n";
  if (coding == kBrotli) e->head += "Content-Encoding: br\r\n";
  if (coding == kGzip) e->head += "Content-Encoding: gzip\r\n";
  e->head += last_modified + etag + cache + "Accept-Ranges: bytes\r\n" + vary;
  e->head_304 = last_modified + etag + cache + vary;
}

StaticFiles::Handle* StaticFiles::adopt_fd(int fd) {
  handles_.emplace_back();
  Handle& h = handles_.back();
  h.fd = fd;
  h.refs = 1;  // The entry's.
  h.owner = this;
  h.self = std::prev(handles_.end());
  return &h;
}

void StaticFiles::unref(Handle* h) {
  if (--h->refs > 0) return;
  ::close(h->fd);
  handles_.erase(h->self);
}

void StaticFiles::on_sent(void* ctx) {
  auto* h = static_cast<Handle*>(ctx);
  h->owner->unref(h);
}

void StaticFiles::drop(std::unordered_map<std::string, std::unique_ptr<Entry>>::iterator it) {
  if (it->second->handle != nullptr) unref(it->second->handle);
  entries_.erase(it);
}

void StaticFiles::sweep() {
  uint64_t now = clock_.now_ms();
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    const Entry& e = *it->second;
    uint64_t idle = now - std::min(now, e.used_ms);
    if (idle >= (e.handle != nullptr ? kIdleFdMs : kIdleMemoryMs)) drop(it);
    it = next;
  }
}

}  // namespace fulmen
