// Tests for src/core/parser.{h,cc}: the request head parser and the chunked
// body decoder.
//
// Every input is copied so that it ends exactly at a PROT_NONE page, so any
// read past the end of the input crashes the test. Valid requests are also fed
// at every split point (every prefix must be "incomplete"), and invalid ones
// must never produce a different error for a prefix than for the whole input.
//
// Build and run (see also the fuzz corpus replay in replay_fuzz_corpus.cc):
//   g++ -std=c++20 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Isrc
//       tests/cpp/test_parser.cc src/core/parser.cc -o /tmp/test_parser && /tmp/test_parser
// Add -DFULMEN_NO_SIMD to test the scalar scanners on an SSE2 machine.

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "check.h"
#include "core/parser.h"

using fulmen::ChunkedDecoder;
using fulmen::ParserLimits;
using fulmen::RequestHead;
using fulmen::TargetForm;
using namespace std::string_literals;

namespace {

// ---------------------------------------------------------------------------
// Guard page.

// A buffer whose usable bytes are immediately followed by a PROT_NONE page.
class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { unmap(); }

  // Copies `in` so that it ends exactly at the guard page; returns its start.
  // The bytes before the returned pointer and the copy itself are writable.
  char* place(std::string_view in) {
    reserve(in.size());
    char* start = guard_ - in.size();
    if (!in.empty()) std::memcpy(start, in.data(), in.size());
    return start;
  }

 private:
  void reserve(size_t n) {
    if (n <= usable_) return;
    unmap();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    usable_ = (n + page - 1) / page * page;
    if (usable_ == 0) usable_ = page;
    map_size_ = usable_ + page;
    void* m = mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<char*>(m);
    guard_ = base_ + usable_;
    if (mprotect(guard_, page, PROT_NONE) != 0) std::abort();
  }
  void unmap() {
    if (base_ != nullptr) munmap(base_, map_size_);
    base_ = guard_ = nullptr;
    usable_ = map_size_ = 0;
  }

  char* base_ = nullptr;
  char* guard_ = nullptr;
  size_t usable_ = 0;
  size_t map_size_ = 0;
};

GuardedBuffer& guard() {
  static GuardedBuffer g;
  return g;
}

// Parses `in` placed against the guard page. Views in *h point into the guard
// buffer and stay valid until the next call.
int parse(std::string_view in, RequestHead* h, const ParserLimits& lim = {}) {
  return fulmen::parse_request(guard().place(in), in.size(), h, lim);
}

// Helpers take the caller's line as `int line = __builtin_LINE()` (works with
// GCC and clang alike; std::source_location needs clang >= 15).
std::string where(int line) {
  return " (called from line " + std::to_string(line) + ")";
}

// ---------------------------------------------------------------------------
// Request expectations.

using Hdr = std::pair<std::string_view, std::string_view>;

// Fields to check; unset optionals are not checked. (Designated initializers
// must follow this order.)
struct Want {
  std::optional<size_t> length = std::nullopt;  // default: the whole input
  std::optional<std::string_view> method = std::nullopt;
  std::optional<std::string_view> target = std::nullopt;
  std::optional<std::string_view> path = std::nullopt;
  std::optional<std::string_view> query = std::nullopt;
  std::optional<fulmen::TargetForm> form = std::nullopt;
  std::optional<int> minor = std::nullopt;
  std::optional<std::string_view> host = std::nullopt;
  std::optional<bool> has_cl = std::nullopt;
  std::optional<uint64_t> cl = std::nullopt;
  std::optional<bool> chunked = std::nullopt;
  std::optional<bool> keep_alive = std::nullopt;
  std::optional<bool> client_close = std::nullopt;
  std::optional<bool> expect = std::nullopt;
  std::optional<std::vector<Hdr>> headers = std::nullopt;
};

// For big inputs only a sample of prefixes is checked to keep the run fast.
bool check_prefix(size_t k, size_t full) {
  return full <= 2048 || k < 64 || full - k < 64 || k % 61 == 0;
}

// A valid head: every prefix shorter than the head is incomplete (0), the
// input and every prefix at least as long as the head return the head length,
// and the fields are as expected.
void expect_ok(std::string_view in, const Want& w = {}, const ParserLimits& lim = {}, int line = __builtin_LINE()) {
  const size_t full = w.length.value_or(in.size());
  RequestHead h;
  for (size_t k = 0; k < full; ++k) {
    if (!check_prefix(k, full)) continue;
    const int r = parse(in.substr(0, k), &h, lim);
    CHECK_EQ(r, 0) << "prefix " << k << " of \"" << check::escape(in) << "\"" << where(line);
    if (r != 0) break;
  }
  for (size_t k = full + 1; k < in.size(); ++k) {
    const int r = parse(in.substr(0, k), &h, lim);
    CHECK_EQ(static_cast<size_t>(r), full) << "prefix " << k << " of \"" << check::escape(in) << "\"" << where(line);
  }
  const int r = parse(in, &h, lim);
  const std::string ctx = " for \"" + check::escape(in) + "\"" + where(line);
  CHECK_EQ(r, static_cast<int>(full)) << ctx;
  if (r <= 0) return;
  CHECK(!h.method.empty()) << ctx;
  if (w.method) CHECK_EQ(h.method, *w.method) << ctx;
  if (w.target) CHECK_EQ(h.target, *w.target) << ctx;
  if (w.path) CHECK_EQ(h.path, *w.path) << ctx;
  if (w.query) CHECK_EQ(h.query, *w.query) << ctx;
  if (w.form) CHECK(h.target_form == *w.form) << "target form " << static_cast<int>(h.target_form) << ctx;
  if (w.minor) CHECK_EQ(h.version_minor, *w.minor) << ctx;
  if (w.host) CHECK_EQ(h.host, *w.host) << ctx;
  if (w.has_cl) CHECK_EQ(h.has_content_length, *w.has_cl) << ctx;
  if (w.cl) CHECK_EQ(h.content_length, *w.cl) << ctx;
  if (w.chunked) CHECK_EQ(h.chunked, *w.chunked) << ctx;
  if (w.keep_alive) CHECK_EQ(h.keep_alive, *w.keep_alive) << ctx;
  if (w.client_close) CHECK_EQ(h.client_close, *w.client_close) << ctx;
  if (w.expect) CHECK_EQ(h.expect_continue, *w.expect) << ctx;
  if (w.headers) {
    CHECK_EQ(h.num_headers, w.headers->size()) << ctx;
    for (size_t i = 0; i < std::min(h.num_headers, w.headers->size()); ++i) {
      CHECK_EQ(h.headers[i].name, (*w.headers)[i].first) << "header " << i << ctx;
      CHECK_EQ(h.headers[i].value, (*w.headers)[i].second) << "header " << i << ctx;
    }
  }
}

// An invalid input: the whole input gives `code`, and along the prefixes the
// result goes 0...0 then code...code (a prefix never gives another error, and
// once an error is certain it stays).
void expect_err(std::string_view in, int code, const ParserLimits& lim = {}, int line = __builtin_LINE()) {
  RequestHead h;
  bool seen = false;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!check_prefix(k, in.size())) continue;
    const int r = parse(in.substr(0, k), &h, lim);
    const bool ok = seen ? r == code : (r == 0 || r == code);
    CHECK(ok) << "prefix " << k << " gave " << r << ", want " << (seen ? "" : "0 or ") << code << " for \""
              << check::escape(in) << "\"" << where(line);
    if (!ok) return;
    seen = r == code;
  }
  CHECK_EQ(parse(in, &h, lim), code) << "for \"" << check::escape(in) << "\"" << where(line);
}

const std::string kGet11 = "GET / HTTP/1.1\r\n";
const std::string kHost = "Host: a\r\n";

std::string with_headers(std::string_view fields) {
  return kGet11 + kHost + std::string(fields) + "\r\n";
}

// ---------------------------------------------------------------------------
// Request line.

TEST(simple_requests) {
  expect_ok("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", {.method = "GET",
                                                            .target = "/",
                                                            .path = "/",
                                                            .query = "",
                                                            .minor = 1,
                                                            .host = "example.com",
                                                            .has_cl = false,
                                                            .cl = 0,
                                                            .chunked = false,
                                                            .keep_alive = true,
                                                            .expect = false,
                                                            .headers = std::vector<Hdr>{{"Host", "example.com"}}});
  expect_ok("GET /index.html HTTP/1.0\r\n\r\n", {.method = "GET",
                                                 .target = "/index.html",
                                                 .path = "/index.html",
                                                 .query = "",
                                                 .minor = 0,
                                                 .host = "",
                                                 .keep_alive = false,
                                                 .headers = std::vector<Hdr>{}});
  expect_ok("POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            {.method = "POST", .path = "/submit", .has_cl = true, .cl = 3});
}

TEST(methods_are_tokens) {
  for (const char* m : {"M-SEARCH", "PATCH", "FOO_BAR!", "get", "X~|`^.+*'&%$#!9"}) {
    expect_ok(std::string(m) + " / HTTP/1.1\r\nHost: a\r\n\r\n", {.method = m});
  }
  expect_err("G(ET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err(" / HTTP/1.1\r\nHost: a\r\n\r\n", -400);  // empty method
  expect_err("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

TEST(request_line_spacing) {
  expect_err("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\t\r\nHost: a\r\n\r\n", -400);
  expect_err(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("GET /\r\nHost: a\r\n\r\n", -400);   // missing version
  expect_err("GET / \r\nHost: a\r\n\r\n", -400);  // empty version
  expect_err("GET\r\n\r\n", -400);
  expect_err("GET HTTP/1.1\r\nHost: a\r\n\r\n", -400);  // target "HTTP/1.1", then no version
}

TEST(versions) {
  expect_ok("GET / HTTP/1.0\r\n\r\n", {.minor = 0, .keep_alive = false});
  expect_ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n", {.minor = 1});
  for (char d = '2'; d <= '9'; ++d) {
    expect_ok("GET / HTTP/1."s + d + "\r\nHost: a\r\n\r\n", {.minor = 1, .keep_alive = true});
    // Treated as 1.1, so Host is required.
    expect_err("GET / HTTP/1."s + d + "\r\n\r\n", -400);
  }
  for (const char* v : {"HTTP/2.0", "HTTP/0.9", "http/1.1", "Http/1.1", "HTTP/1.10", "HTTP/1.", "HTTP/1.x", "HTTP/11",
                        "HTTP/1", "HTTP 1.1", "HTTP/1.1.1", "HTTPS/1.1", "HTTP/3"}) {
    expect_err("GET / "s + v + "\r\nHost: a\r\n\r\n", -400);
  }
}

TEST(missing_host_on_1_0_is_fine) {
  expect_ok("GET / HTTP/1.0\r\n\r\n", {.host = ""});
}

// ---------------------------------------------------------------------------
// Request target.

TEST(origin_form_path_and_query) {
  struct Case {
    const char* target;
    const char* path;
    const char* query;
  };
  const Case cases[] = {
      {"/", "/", ""},
      {"/a/b", "/a/b", ""},
      {"/a/b?x=1&y=2", "/a/b", "x=1&y=2"},
      {"/a?", "/a", ""},
      {"/?x", "/", "x"},
      {"/a?b?c", "/a", "b?c"},
      {"/a#frag", "/a", ""},
      {"/a?q#f", "/a", "q"},
      {"/a#f?q", "/a", ""},
      {"/%20%zz!$&'()*+,;=:@-._~\"<>\\^`{|}", "/%20%zz!$&'()*+,;=:@-._~\"<>\\^`{|}", ""},
      {"/very/long/path/that/crosses/several/sixteen/byte/blocks/0123456789abcdef?and=a&long=query",
       "/very/long/path/that/crosses/several/sixteen/byte/blocks/0123456789abcdef", "and=a&long=query"},
  };
  for (const auto& c : cases) {
    expect_ok("GET "s + c.target + " HTTP/1.1\r\nHost: a\r\n\r\n",
              {.target = c.target, .path = c.path, .query = c.query, .form = TargetForm::kOrigin, .host = "a"});
  }
}

TEST(absolute_form) {
  expect_ok("GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
            {.target = "http://example.com/p?q=1",
             .path = "/p",
             .query = "q=1",
             .form = TargetForm::kAbsolute,
             .host = "example.com"});
  // The host is the target's authority, whatever Host says (RFC 9112 3.2.2).
  expect_ok("GET HTTPS://Example.COM:8443 HTTP/1.1\r\nHost: a\r\n\r\n",
            {.path = "/", .query = "", .form = TargetForm::kAbsolute, .host = "Example.COM:8443"});
  expect_ok("GET hTtP://example.com?x HTTP/1.1\r\nHost: a\r\n\r\n",
            {.path = "/", .query = "x", .host = "example.com"});
  expect_ok("GET http://[::1]:8080/a#f HTTP/1.1\r\nHost: a\r\n\r\n",
            {.path = "/a", .query = "", .host = "[::1]:8080"});
  expect_ok("GET http://h#f HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "/", .query = "", .host = "h"});
  expect_ok("GET http://h:/ HTTP/1.1\r\nHost:\r\n\r\n", {.path = "/", .host = "h:"});
  expect_ok("GET http://127.0.0.1:80/x/y HTTP/1.0\r\n\r\n", {.path = "/x/y", .host = "127.0.0.1:80"});
  expect_ok("GET http://a.example/ HTTP/1.0\r\nHost: b.example\r\n\r\n", {.host = "a.example"});
  // A server-wide OPTIONS in absolute form: an empty path means "*" (RFC 9112 3.2.4).
  expect_ok("OPTIONS http://example.com HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "*", .host = "example.com"});
  expect_ok("OPTIONS http://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "/", .host = "example.com"});
  expect_ok("OPTIONS http://example.com?q HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "/", .query = "q"});
  // Host is ignored but still required on 1.1, once, and valid (RFC 9112 3.2).
  expect_err("GET http://example.com/ HTTP/1.1\r\n\r\n", -400);
  expect_err("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nHost: example.com\r\n\r\n", -400);
  expect_err("GET http://example.com/ HTTP/1.1\r\nHost: a b\r\n\r\n", -400);
  for (const char* t : {"ftp://a/", "http:/a", "http:", "http://", "https://", "http:///p", "http://?q",
                        "http://u@h/", "http://u:p@h/", "http://:80/", "http://h:x/", "http://h h/", "http://[::1/",
                        "http://[]/", "http://h\"/", "htt://h/", "example.com:80", "example.com", "a/b"}) {
    expect_err("GET "s + t + " HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  }
}

TEST(asterisk_form_only_for_options) {
  expect_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            {.target = "*", .path = "*", .query = "", .form = TargetForm::kAsterisk, .host = "a"});
  expect_ok("OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "/", .form = TargetForm::kOrigin});
  expect_err("GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("options * HTTP/1.1\r\nHost: a\r\n\r\n", -400);  // methods are case-sensitive
  expect_err("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("OPTIONS ** HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

TEST(authority_form_only_for_connect) {
  expect_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", {.method = "CONNECT",
                                                                                  .target = "example.com:443",
                                                                                  .path = "example.com:443",
                                                                                  .query = "",
                                                                                  .form = TargetForm::kAuthority,
                                                                                  .host = "example.com:443"});
  // The target is the authority (RFC 9112 3.3).
  expect_ok("CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "[::1]:443", .host = "[::1]:443"});
  expect_ok("CONNECT 10.0.0.1:8080 HTTP/1.1\r\nHost: a\r\n\r\n", {.path = "10.0.0.1:8080", .host = "10.0.0.1:8080"});
  expect_err("CONNECT a:1 HTTP/1.1\r\n\r\n", -400);  // Host is still required
  for (const char* t : {"/", "/x", "*", "example.com", "example.com:", ":443", "a:b", "http://a:1/", "u@a:1", "a:1/",
                        "[::1]", "[::1]443"}) {
    expect_err("CONNECT "s + t + " HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  }
  expect_err("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

// RFC 9110 9.3.6: a CONNECT request has no content, and after a 2xx the
// connection is a tunnel (RFC 9112 6.3 (2)), which is not served: never kept.
TEST(connect_has_no_content_and_is_not_kept_alive) {
  const std::string connect = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n";
  expect_ok(connect + "\r\n", {.has_cl = false, .chunked = false, .keep_alive = false});
  expect_ok(connect + "Connection: keep-alive\r\n\r\n", {.keep_alive = false});
  expect_ok(connect + "Content-Length: 0\r\n\r\n", {.has_cl = true, .cl = 0, .keep_alive = false});
  expect_ok("CONNECT a.example:443 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {.keep_alive = false});
  expect_err(connect + "Content-Length: 5\r\n\r\nhello", -400);
  expect_err(connect + "Content-Length: 0\r\nContent-Length: 00\r\n\r\n", -400);
  expect_err(connect + "Content-Length: 000001\r\n\r\n", -400);
  expect_err(connect + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", -400);
  expect_err(connect + "Transfer-Encoding: gzip, chunked\r\n\r\n", -400);
  RequestHead h;
  CHECK_EQ(parse(connect + "Content-Length: 5\r\n", &h), -400);  // known before the end of the head
  // Other methods keep their bodies and persistence.
  expect_ok("POST http://a.example/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", {.cl = 5, .keep_alive = true});
}

TEST(target_bytes) {
  for (const char* bad : {"\x7f", "\x80", "\xff", "\x01", "\x1f", "\t", "\x0b", "\x0c"}) {
    expect_err("GET /a"s + bad + "b HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  }
  expect_err("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, -400);
  expect_err("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

// The SIMD scanners work on 16-byte blocks; put a bad byte at every position
// of targets and values of every length around the block size, with every
// prefix ending at the guard page.
TEST(scanner_block_boundaries) {
  const char bads[] = {'\x01', '\x7f', '\0', '\n', '\x1f', '\x0b'};
  for (size_t len = 1; len <= 40; ++len) {
    std::string target(len, 'x');
    target[0] = '/';
    expect_ok("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", {.path = target});
    std::string value(len, 'v');  // interior HTAB and obs-text are fine in a value
    if (len >= 4) value[len / 2] = '\t';
    if (len >= 3) value[len - 2] = '\xe9';
    expect_ok(with_headers("X: " + value + "\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", value}}});
    for (size_t pos = 0; pos < len; ++pos) {
      for (char bad : bads) {
        if (pos > 0) {
          std::string t = target;
          t[pos] = bad;
          expect_err("GET " + t + " HTTP/1.1\r\nHost: a\r\n\r\n", -400);
          expect_err("GET " + t, -400);  // rejected without waiting for more
        }
        std::string v = value;
        v[pos] = bad;
        expect_err(with_headers("X: " + v + "\r\n"), -400);
      }
      // A DEL or a high byte ends a target too, but is fine in a value.
      if (pos > 0) {
        std::string t = target;
        t[pos] = '\x80';
        expect_err("GET " + t + " HTTP/1.1\r\nHost: a\r\n\r\n", -400);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Line endings and field syntax.

TEST(bare_lf_and_bare_cr) {
  for (const char* in : {
           "GET / HTTP/1.1\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\n\n",
           "GET / HTTP/1.1\r\nHost: a\n\n",
           "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
           "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\rHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\n\rX",
           "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\nX: a\nb\r\nHost: a\r\n\r\n",
           "GET / HTTP/1.1\r\nX\n: a\r\nHost: a\r\n\r\n",
       }) {
    expect_err(in, -400);
  }
}

TEST(obs_fold_and_leading_whitespace) {
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400);  // whitespace after the request line
  expect_err("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n", -400);
}

TEST(field_names) {
  expect_ok(with_headers("X-!#$%&'*+-.^_`|~09aZ: v\r\n"),
            {.headers = std::vector<Hdr>{{"Host", "a"}, {"X-!#$%&'*+-.^_`|~09aZ", "v"}}});
  expect_ok(with_headers("x-MiXeD-CaSe: v\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"x-MiXeD-CaSe", "v"}}});
  for (const char* line :
       {"Host : a\r\n", "X : a\r\n",   "X\t: a\r\n",  ": a\r\n",          ":\r\n",        "Ho(st: a\r\n",
        "X@: a\r\n",    "X/Y: a\r\n",  "X\"Y: a\r\n", "H\xc3\xb6: a\r\n", "X\x01: a\r\n", "X\x7f: a\r\n",
        "X[]: a\r\n",   "X{}: a\r\n",  "X=Y: a\r\n",  "X,Y: a\r\n",       "X;Y: a\r\n",   "X?: a\r\n",
        "X\\: a\r\n",   "NoColon\r\n", "X Y: a\r\n"}) {
    expect_err(with_headers(line), -400);
  }
  expect_err("GET / HTTP/1.1\r\nX\0: a\r\nHost: a\r\n\r\n"s, -400);
}

TEST(field_values) {
  expect_ok(with_headers("X: \t a b \t\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", "a b"}}});
  expect_ok(with_headers("X:\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", ""}}});
  expect_ok(with_headers("X: \t \r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", ""}}});
  expect_ok(with_headers("X:v\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", "v"}}});
  expect_ok(with_headers("X: a\tb\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", "a\tb"}}});
  expect_ok(with_headers("X: caf\xc3\xa9 \x80\xff\r\n"),
            {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", "caf\xc3\xa9 \x80\xff"}}});
  const std::string vchars = "!\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~";
  expect_ok(with_headers("X: " + vchars + "\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"X", vchars}}});
  expect_ok("GET / HTTP/1.1\r\nHost:\t  spaced.example  \t\r\n\r\n", {.host = "spaced.example"});
  for (const char* v : {"a\x01", "a\x7f", "\x1f", "a\x0b", "a\x0c", "a\x1b[0m"}) {
    expect_err(with_headers("X: "s + v + "\r\n"), -400);
  }
  expect_err(with_headers("X: a\0b\r\n"s), -400);
}

TEST(immediate_rejection_of_bad_prefixes) {
  RequestHead h;
  for (const std::string& in :
       {"GET /\x01"s, "GET /\0"s, "G\x01"s, "G("s, "\x16\x03\x01"s, "GET / HTTP/2"s, "GET / http"s,
        "GET / HTTP/1.1\n"s, "GET  "s, "\r\x00"s, "\n"s, "GET / HTTP/1.1\r\nHost : "s,
        "GET / HTTP/1.1\r\nHost: a\r\nX: \x00"s, "GET / HTTP/1.1\r\n "s, "GET / HTTP/1.1\r\nHost: a\r\r"s,
        "GET * HTTP/1.1"s, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n"s,
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n"s, "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"s}) {
    CHECK_EQ(parse(in, &h), -400) << "for \"" << check::escape(in) << "\"";
    expect_err(in, -400);
  }
}

TEST(leading_empty_lines) {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string crlfs;
  for (int i = 1; i <= 8; ++i) {
    crlfs += "\r\n";
    expect_ok(crlfs + req, {.method = "GET", .path = "/"});
  }
  expect_err(crlfs + "\r\n" + req, -400);  // a ninth one is not skipped
  expect_err("\r\r\n" + req, -400);
  // They do not count towards the request-line limit...
  ParserLimits lim;
  lim.max_request_line = 14;  // exactly "GET / HTTP/1.1"
  expect_ok("\r\n\r\n" + req, {}, lim);
  // ...but do towards the head limit.
  lim = {};
  lim.max_head = req.size() + 4;
  expect_ok("\r\n\r\n" + req, {}, lim);
  expect_err("\r\n\r\n\r\n" + req, -431, lim);
}

TEST(pipelined_requests) {
  const std::string a = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string b = "POST /second?x HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n";
  const std::string both = a + b;
  expect_ok(both, {.length = a.size(), .path = "/first"});
  RequestHead h;
  CHECK_EQ(parse(both, &h), static_cast<int>(a.size()));
  CHECK_EQ(h.path, "/first");
  const std::string rest = both.substr(a.size());
  expect_ok(rest, {.method = "POST", .path = "/second", .query = "x", .host = "b", .cl = 0});
  // A body after the head is not looked at, even if it looks invalid.
  expect_ok(a + "\x01\x02\r\n\n garbage", {.length = a.size()});
  // And the second head is parsed in place from the middle of the buffer.
  const char* base = guard().place(both);
  CHECK_EQ(fulmen::parse_request(base + a.size(), b.size(), &h), static_cast<int>(b.size()));
  CHECK_EQ(h.path, "/second");
}

// ---------------------------------------------------------------------------
// Host.

TEST(host_field) {
  for (const char* v : {"localhost", "localhost:8000", "127.0.0.1", "[::1]", "[::1]:8080", "a_b.example",
                        "xn--bcher-kva.example", "EXAMPLE.com:", "a-b~c!$&'()*+,;=%41"}) {
    expect_ok("GET / HTTP/1.1\r\nHost: "s + v + "\r\n\r\n", {.host = v});
  }
  expect_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n", {.host = ""});  // empty Host is valid (RFC 9112 3.2)
  expect_ok("GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", {.host = "a"});
  for (const char* v : {"a b", "a/b", "a@b", "user:pw@a", "[::1", "[::1]x", "[]", "a:8x", "a:b:c", "\"a\"",
                        "caf\xc3\xa9", "a?b", "a#b", "a\\b", "a b:80", "a:80 x"}) {
    expect_err("GET / HTTP/1.1\r\nHost: "s + v + "\r\n\r\n", -400);
  }
  expect_ok("GET / HTTP/1.1\r\nHost: a:80 \t\r\n\r\n", {.host = "a:80"});  // OWS is not part of the value
}

// RFC 9112 3.2: an invalid Host value is a 400, so uri-host is checked in
// full (RFC 3986 3.2.2): pct-encodings, IPv6address and IPvFuture.
TEST(host_syntax) {
  for (const char* v : {"%41",
                        "a%2Fb",
                        "%aF%Af",
                        "0.0.0.0",
                        "255.255.255.255",
                        "999.1.1.1",
                        "01.2.3.4",
                        "[::]",
                        "[::1]",
                        "[1::]",
                        "[1:2:3:4:5:6:7:8]",
                        "[1:2:3:4:5:6:7::]",
                        "[::2:3:4:5:6:7:8]",
                        "[1::2:3:4:5:6:7]",
                        "[ABCD:ef01::1]:8080",
                        "[::ffff:192.0.2.1]",
                        "[::192.0.2.1]",
                        "[1:2:3:4:5:6:1.2.3.4]",
                        "[v1.x]",
                        "[V1F.a:b!$]",
                        "[v7.1]:80"}) {
    expect_ok("GET / HTTP/1.1\r\nHost: "s + v + "\r\n\r\n", {.host = v});
  }
  for (const char* v : {"%",
                        "%4",
                        "%zz",
                        "a%4g",
                        "a%",
                        "[",
                        "[]",
                        "[:]",
                        "[:1]",
                        "[1:]",
                        "[1::2::3]",
                        "[:::]",
                        "[1:::2]",
                        "[12345::]",
                        "[g::]",
                        "[1:2:3:4:5:6:7]",
                        "[1:2:3:4:5:6:7:8:9]",
                        "[1:2:3:4:5:6:7:8::]",
                        "[::1:2:3:4:5:6:7:8]",
                        "[1.2.3.4]",
                        "[::1.2.3]",
                        "[::1.2.3.4.5]",
                        "[::1.2.3.256]",
                        "[::01.2.3.4]",
                        "[::1.2.3.4:1]",
                        "[1.2.3.4::]",
                        "[::1%25eth0]",
                        "[::1%eth0]",
                        "[v.x]",
                        "[v1.]",
                        "[v1x]",
                        "[vx.1]",
                        "[v1.%41]",
                        "[v1./]",
                        "[::1]]",
                        "[::1]:8x"}) {
    expect_err("GET / HTTP/1.1\r\nHost: "s + v + "\r\n\r\n", -400);
  }
  // The same syntax applies to the authority of absolute-form and
  // authority-form targets.
  expect_ok("GET http://[::ffff:10.0.0.1]:81/ HTTP/1.1\r\nHost: a\r\n\r\n", {.host = "[::ffff:10.0.0.1]:81"});
  expect_ok("CONNECT [2001:db8::7]:443 HTTP/1.1\r\nHost: a\r\n\r\n", {.host = "[2001:db8::7]:443"});
  for (const char* t : {"http://%zz/", "http://[::1%25lo]/", "http://[1:2]/", "https://[v1.x/"}) {
    expect_err("GET "s + t + " HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  }
  expect_err("CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
  expect_err("CONNECT [1:2:3]:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

TEST(host_required_once) {
  expect_err("GET / HTTP/1.1\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", -400);
  expect_err("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", -400);
  expect_err("GET / HTTP/1.0\r\nHost:\r\nHost:\r\n\r\n", -400);
}

// ---------------------------------------------------------------------------
// Content-Length and Transfer-Encoding.

TEST(content_length) {
  expect_ok(with_headers("Content-Length: 0\r\n"), {.has_cl = true, .cl = 0, .chunked = false});
  expect_ok(with_headers("Content-Length: 42\r\n"), {.has_cl = true, .cl = 42});
  expect_ok(with_headers("content-length: 007\r\n"), {.has_cl = true, .cl = 7});
  expect_ok(with_headers("Content-Length:  12 \t\r\n"), {.has_cl = true, .cl = 12});
  expect_ok(with_headers("Content-Length: 9223372036854775807\r\n"), {.has_cl = true, .cl = 9223372036854775807ull});
  expect_ok(with_headers("Content-Length: 000000000000000000000000000000000001\r\n"), {.cl = 1});
  // Identical duplicates are merged (RFC 9110 8.6).
  expect_ok(with_headers("Content-Length: 5\r\nContent-Length: 5\r\n"), {.has_cl = true, .cl = 5});
  expect_ok(with_headers("Content-Length: 5\r\nX: y\r\nCONTENT-LENGTH:5 \r\n"), {.cl = 5});
  for (const char* v :
       {"", "+5", "-5", "5 5", "5, 5", "5,5", ",5", "0x5", "5a", "a", "5.0", "1e3",
        "\xd9\xa5",  // ARABIC-INDIC DIGIT FIVE
        "9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999999999"}) {
    expect_err(with_headers("Content-Length: "s + v + "\r\n"), -400);
  }
  expect_err(with_headers("Content-Length: 5\r\nContent-Length: 6\r\n"), -400);
  // Policy: duplicates must be byte-identical.
  expect_err(with_headers("Content-Length: 5\r\nContent-Length: 05\r\n"), -400);
  expect_err(with_headers("Content-Length: 5\r\nContent-Length:\r\n"), -400);
  expect_err(with_headers("Content-Length: 5\r\nContent-Length: x\r\n"), -400);
}

TEST(transfer_encoding_chunked) {
  for (const char* v : {"chunked", "Chunked", "CHUNKED", "  chunked \t"}) {
    expect_ok(with_headers("Transfer-Encoding: "s + v + "\r\n"), {.has_cl = false, .chunked = true});
  }
  expect_ok(with_headers("transfer-encoding: chunked\r\n"), {.chunked = true, .keep_alive = true});
}

TEST(transfer_encoding_errors) {
  for (const char* fields : {
           "Transfer-Encoding: chunked, chunked\r\n",
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: chunked, gzip\r\n",
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
           "Transfer-Encoding: gzip, chunked, gzip\r\n",
           "Transfer-Encoding:\r\n",
           "Transfer-Encoding:  \r\n",
           "Transfer-Encoding: ,\r\n",
           "Transfer-Encoding: gzip,,chunked\r\n",
           "Transfer-Encoding: chunked,\r\n",
           "Transfer-Encoding: , chunked\r\n",
           "Transfer-Encoding: gzip\r\nTransfer-Encoding:\r\n",
           // Content-Length with Transfer-Encoding, either order, even if TE is unsupported.
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
           "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
           "Content-Length: 0\r\nTransfer-Encoding: identity\r\n",
           // chunked takes no parameters, and a coding name is a token.
           "Transfer-Encoding: chunked;q=1\r\n",
           "Transfer-Encoding: chunked ; q=1\r\n",
           "Transfer-Encoding: gzip, chunked;x\r\n",
           "Transfer-Encoding: chunked gzip, chunked\r\n",
           "Transfer-Encoding: g(zip, chunked\r\n",
           "Transfer-Encoding: ;q=1, chunked\r\n",
       }) {
    expect_err(with_headers(fields), -400);
  }
  // RFC 9112 6.3 (4): a request whose final coding is not chunked has no
  // determinable length: 400, known coding or not.
  for (const char* fields : {
           "Transfer-Encoding: gzip\r\n",
           "Transfer-Encoding: identity\r\n",
           "Transfer-Encoding: foo\r\n",
           "Transfer-Encoding: GZIP ,\tdeflate\r\n",
           "Transfer-Encoding: gzip;level=9\r\n",
           "Transfer-Encoding: chunkedx\r\n",
           "Transfer-Encoding: xchunked\r\n",
           "Transfer-Encoding: chunked gzip\r\n",
       }) {
    expect_err(with_headers(fields), -400);
  }
  expect_err("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nHost: a\r\nX: y\r\n\r\n", -400);
  // Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1).
  expect_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
  expect_err("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", -400);
  // A 400 condition wins over an unsupported coding.
  expect_err("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", -400);  // no Host
}

// Only "chunked" alone is implemented: another coding before a final chunked
// is 501 (RFC 9112 6.1).
TEST(transfer_encoding_unsupported) {
  for (const char* fields : {
           "Transfer-Encoding: gzip, chunked\r\n",
           "Transfer-Encoding: identity, chunked\r\n",
           "Transfer-Encoding: foo,chunked\r\n",
           "Transfer-Encoding: GZIP ,\tChunked\r\n",
           "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: deflate, gzip, chunked\r\n",
           "Transfer-Encoding: gzip;level=9, chunked\r\n",
           "Transfer-Encoding: gzip ; level=\"9\", chunked\r\n",
           "Transfer-Encoding: chunkedx, chunked\r\n",
       }) {
    expect_err(with_headers(fields), -501);
  }
}

// ---------------------------------------------------------------------------
// Connection and Expect.

TEST(connection) {
  const auto v11 = [](const std::string& f) { return "GET / HTTP/1.1\r\nHost: a\r\n" + f + "\r\n"; };
  const auto v10 = [](const std::string& f) { return "GET / HTTP/1.0\r\n" + f + "\r\n"; };
  // client_close: the client itself said "close" (an HTTP/1.0 default or CONNECT is not that).
  expect_ok(v11(""), {.keep_alive = true, .client_close = false});
  expect_ok(v10(""), {.keep_alive = false, .client_close = false});
  expect_ok(v11("Connection: close\r\n"), {.keep_alive = false, .client_close = true});
  expect_ok(v11("Connection: CLOSE\r\n"), {.keep_alive = false, .client_close = true});
  expect_ok(v11("Connection: keep-alive, close\r\n"), {.keep_alive = false, .client_close = true});
  expect_ok(v10("Connection: close\r\n"), {.keep_alive = false, .client_close = true});
  expect_ok("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
            {.keep_alive = false, .client_close = false});
  expect_ok(v11("Connection: keep-alive\r\n"), {.keep_alive = true});
  expect_ok(v11("Connection: upgrade\r\n"), {.keep_alive = true});
  expect_ok(v11("Connection: closed\r\n"), {.keep_alive = true, .client_close = false});
  expect_ok(v11("Connection: \r\n"), {.keep_alive = true});
  expect_ok(v10("Connection: keep-alive\r\n"), {.keep_alive = true});
  expect_ok(v10("connection: Keep-Alive\r\n"), {.keep_alive = true});
  expect_ok(v10("Connection: , foo ,keep-alive,\r\n"), {.keep_alive = true});
  expect_ok(v10("Connection: close, keep-alive\r\n"), {.keep_alive = false});
  expect_ok(v10("Connection: keep-alive\r\nConnection: close\r\n"), {.keep_alive = false});
  expect_ok(v10("Connection: keep-alive-ish\r\n"), {.keep_alive = false});
}

TEST(expect_continue) {
  expect_ok(with_headers("Expect: 100-continue\r\n"), {.expect = true});
  expect_ok(with_headers("expect: 100-Continue \r\n"), {.expect = true});
  expect_ok(with_headers("Expect: 100-continued\r\n"), {.expect = false});
  expect_ok(with_headers("Expect: foo\r\n"), {.expect = false});
  expect_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", {.expect = false});
}

// ---------------------------------------------------------------------------
// Limits.

TEST(request_line_limit) {
  const std::string line = "GET /abcdefghij HTTP/1.1";  // 24 bytes
  const std::string rest = "\r\nHost: a\r\n\r\n";
  ParserLimits lim;
  lim.max_request_line = line.size();
  expect_ok(line + rest, {.path = "/abcdefghij"}, lim);
  lim.max_request_line = line.size() - 1;
  expect_err(line + rest, -414, lim);
  // Certain before the CRLF arrives: the line is already too long.
  RequestHead h;
  CHECK_EQ(parse(line, &h, lim), -414);
  CHECK_EQ(parse(line.substr(0, line.size() - 1), &h, lim), 0);
  // Only the first max_request_line bytes are looked at: a bad byte beyond
  // them does not turn the 414 into a 400, one within them does.
  lim.max_request_line = 10;
  expect_err("GET /aaaaaaaaaaaa\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -414, lim);
  expect_err(
      "GET /\x01"
      "aaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
      -400, lim);
  // The default limit (8190) with an exact and an oversized line.
  const std::string exact = "GET /" + std::string(8190 - 14, 'x') + " HTTP/1.1";
  CHECK_EQ(exact.size(), 8190u);
  expect_ok(exact + rest);
  expect_err("GET /" + std::string(8190 - 13, 'x') + " HTTP/1.1" + rest, -414);
  CHECK_EQ(parse("GET /" + std::string(8186, 'x'), &h), -414);  // 8191 bytes without CRLF
  CHECK_EQ(parse("GET /" + std::string(8185, 'x'), &h), 0);
}

TEST(head_size_limit) {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
  ParserLimits lim;
  lim.max_head = req.size();
  expect_ok(req, {}, lim);
  lim.max_head = req.size() - 1;
  expect_err(req, -431, lim);
  // Incomplete but already too large: 431 without waiting.
  RequestHead h;
  CHECK_EQ(parse(req.substr(0, req.size() - 1), &h, lim), -431);
  CHECK_EQ(parse(req.substr(0, req.size() - 2), &h, lim), 0);
  // Bytes beyond max_head are not examined.
  lim.max_head = 30;
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaa\x01\r\n\r\n", -431, lim);
  expect_err("GET / HTTP/1.1\r\nHost: a\r\nX\x01 aaaaaaaaaaa\r\n\r\n", -400, lim);
  // Request line longer than the whole head limit: 431 (the 414 window is larger).
  lim.max_head = 10;
  expect_err("GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n", -431, lim);
  // Default: 64 KiB.
  const std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(65536, 'v') + "\r\n\r\n";
  expect_err(big, -431);
  const std::string fits = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(65536 - 32, 'v') + "\r\n\r\n";
  CHECK_EQ(fits.size(), 65536u);
  expect_ok(fits);
  lim = {};
  lim.max_head = 0;
  CHECK_EQ(parse("", &h, lim), -431);
}

TEST(header_count_limit) {
  ParserLimits lim;
  lim.max_headers = 3;
  expect_ok(with_headers("A: 1\r\nB: 2\r\n"), {.headers = std::vector<Hdr>{{"Host", "a"}, {"A", "1"}, {"B", "2"}}},
            lim);
  expect_err(with_headers("A: 1\r\nB: 2\r\nC: 3\r\n"), -431, lim);
  RequestHead h;
  CHECK_EQ(parse(kGet11 + kHost + "A: 1\r\nB: 2\r\nC", &h, lim), -431);
  // Never more than kMaxHeaders, whatever the limits say.
  lim.max_headers = 100000;
  std::string fields;
  for (size_t i = 1; i < fulmen::kMaxHeaders; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  expect_ok(with_headers(fields), {}, lim);
  CHECK_EQ(parse(with_headers(fields), &h, lim), static_cast<int>(with_headers(fields).size()));
  CHECK_EQ(h.num_headers, fulmen::kMaxHeaders);
  expect_err(with_headers(fields + "Y: v\r\n"), -431, lim);
  // The default is 100.
  fields.clear();
  for (int i = 1; i < 100; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  expect_ok(with_headers(fields));
  expect_err(with_headers(fields + "Y: v\r\n"), -431);
}

TEST(zero_length_and_tiny_inputs) {
  RequestHead h;
  CHECK_EQ(parse("", &h), 0);
  CHECK_EQ(parse("G", &h), 0);
  CHECK_EQ(parse("\r", &h), 0);
  CHECK_EQ(parse("\r\n", &h), 0);
  CHECK_EQ(parse("\r\n\r\n", &h), 0);
  CHECK_EQ(parse("\r\n\r", &h), 0);
}

// ---------------------------------------------------------------------------
// Random mutations: no crash, no read past the end, results within the
// contract and consistent between an input and its prefixes.

bool ok_status(int r, size_t len) {
  if (r > 0) return static_cast<size_t>(r) <= len;
  return r == 0 || r == -400 || r == -414 || r == -431 || r == -501;
}

bool inside(std::string_view v, const char* base, size_t len) {
  return v.empty() || (v.data() >= base && v.data() + v.size() <= base + len);
}

TEST(random_mutations) {
  const std::vector<std::string> seeds = {
      "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
      "POST /submit?x=1 HTTP/1.1\r\nHost: a:80\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      "PUT http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
      "\r\nOPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\nX: caf\xc3\xa9\t\r\n\r\n",
      "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 0\r\n\r\n",
      "PATCH /a HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "GET /a/b/c/d/e/f/g?h=i#j HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: fuzz/1.0\r\nAccept: */*\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: b\r\n\r\n",
  };
  const char interesting[] = {'\r', '\n', ' ', '\t', ':', ',', ';', '\0', '\x7f', '\x80', '\xff',
                              '/',  '?',  '#', '0',  '9', 'a', 'H', '*',  '"',    '@',    '['};
  std::mt19937_64 rng(12345);
  ParserLimits small;
  small.max_request_line = 24;
  small.max_head = 96;
  small.max_headers = 3;
  RequestHead h;
  int counts[6] = {};
  for (int iter = 0; iter < 300000; ++iter) {
    std::string in = seeds[rng() % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = in.empty() ? 0 : rng() % in.size();
      switch (rng() % 6) {
        case 0:
          if (!in.empty()) in[pos] = static_cast<char>(rng());
          break;
        case 1:
          if (!in.empty()) in[pos] = interesting[rng() % sizeof interesting];
          break;
        case 2: in.insert(pos, 1, interesting[rng() % sizeof interesting]); break;
        case 3:
          if (!in.empty()) in.erase(pos, 1 + rng() % 3);
          break;
        case 4: in.insert(pos, in.substr(rng() % (in.size() + 1), rng() % 12)); break;
        case 5: in.resize(rng() % (in.size() + 1)); break;
      }
    }
    const ParserLimits& lim = (iter & 1) ? small : ParserLimits{};
    const char* base = guard().place(in);
    const int r = fulmen::parse_request(base, in.size(), &h, lim);
    if (!ok_status(r, in.size())) {
      CHECK(false) << "result " << r << " for \"" << check::escape(in) << "\"";
      continue;
    }
    counts[r > 0 ? 0 : r == 0 ? 1 : r == -400 ? 2 : r == -414 ? 3 : r == -431 ? 4 : 5]++;
    if (r > 0) {
      const size_t n = static_cast<size_t>(r);
      bool ok = inside(h.method, base, n) && inside(h.target, base, n) && inside(h.query, base, n) &&
                inside(h.host, base, n) && (inside(h.path, base, n) || h.path == "/" || h.path == "*") &&
                !h.method.empty() && h.num_headers <= std::min(lim.max_headers, fulmen::kMaxHeaders) &&
                (h.version_minor == 0 || h.version_minor == 1) && !(h.chunked && h.has_content_length) &&
                !(h.chunked && h.version_minor == 0) && n <= lim.max_head &&
                (h.target_form != TargetForm::kAuthority || (!h.chunked && h.content_length == 0 && !h.keep_alive)) &&
                (h.target_form != TargetForm::kAsterisk || h.method == "OPTIONS");
      for (size_t i = 0; i < h.num_headers; ++i) {
        const auto& f = h.headers[i];
        ok = ok && !f.name.empty() && inside(f.name, base, n) && inside(f.value, base, n) &&
             f.value.find_first_of("\r\n") == std::string::npos;
      }
      CHECK(ok) << "invariants for \"" << check::escape(in) << "\"";
      // The head alone parses the same; one byte less is incomplete.
      CHECK_EQ(fulmen::parse_request(guard().place(in.substr(0, n)), n, &h, lim), r)
          << "for \"" << check::escape(in) << "\"";
      CHECK_EQ(fulmen::parse_request(guard().place(in.substr(0, n - 1)), n - 1, &h, lim), 0)
          << "for \"" << check::escape(in) << "\"";
    } else if (!in.empty()) {
      // A prefix is incomplete or fails the same way.
      const size_t k = rng() % in.size();
      const int rp = fulmen::parse_request(guard().place(in.substr(0, k)), k, &h, lim);
      CHECK(rp == 0 || rp == r) << "prefix " << k << " gave " << rp << " vs " << r << " for \"" << check::escape(in)
                                << "\"";
    }
  }
  // Make sure the mutations actually reach every outcome.
  for (int i = 0; i < 6; ++i) CHECK(counts[i] > 0) << "outcome " << i << " never seen";
}

// ---------------------------------------------------------------------------
// Chunked decoder.

struct DecodeResult {
  int status = 0;
  size_t consumed = 0;
  std::string data;
  uint64_t total = 0;
  bool operator==(const DecodeResult&) const = default;
};

std::ostream& operator<<(std::ostream& os, const DecodeResult& r) {
  return os << "{status " << r.status << ", consumed " << r.consumed << ", data \"" << check::escape(r.data)
            << "\", total " << r.total << "}";
}

GuardedBuffer& inplace_guard() {
  static GuardedBuffer g;
  return g;
}

// Feeds `in` to a fresh decoder in pieces that end at the given cut points.
// Each call gets only the new bytes. In separate mode every piece is copied
// against the guard page and decoded into its own buffer; in in-place mode the
// whole input sits in one buffer and is decoded onto itself (dst <= src).
DecodeResult decode_pieces(std::string_view in, const std::vector<size_t>& cuts, bool in_place,
                           size_t max_line = 4096) {
  ChunkedDecoder d;
  d.max_line = max_line;
  DecodeResult out;
  char* buf = in_place ? inplace_guard().place(in) : nullptr;
  size_t produced = 0;
  size_t start = 0;
  for (size_t ci = 0; ci <= cuts.size(); ++ci) {
    const size_t end = ci < cuts.size() ? cuts[ci] : in.size();
    const size_t len = end - start;
    ChunkedDecoder::Result r;
    if (in_place) {
      r = d.decode(buf + produced, buf + out.consumed, len);
      produced += r.produced;
    } else {
      const char* src = guard().place(in.substr(start, len));
      std::string dst(len, '\0');
      r = d.decode(dst.data(), src, len);
      out.data.append(dst.data(), r.produced);
    }
    CHECK(r.consumed <= len && r.produced <= r.consumed) << "bad counts";
    CHECK(r.status == 0 || r.status == 1 || r.status == -400) << "status " << r.status;
    if (r.status == 0) CHECK_EQ(r.consumed, len) << "need-more must consume everything";
    out.consumed += r.consumed;
    out.status = r.status;
    if (r.status != 0) break;
    start = end;
  }
  if (in_place) out.data.assign(buf, produced);
  out.total = d.total();
  CHECK_EQ(out.total, out.data.size());
  CHECK_EQ(d.done(), out.status == 1);
  return out;
}

// Decodes in one call, at every two-way split, byte by byte and in place;
// all must agree. Returns the one-call result.
DecodeResult decode_all_ways(std::string_view in, size_t max_line = 4096, int line = __builtin_LINE()) {
  const DecodeResult whole = decode_pieces(in, {}, false, max_line);
  const std::string ctx = " for \"" + check::escape(in) + "\"" + where(line);
  CHECK_EQ(decode_pieces(in, {}, true, max_line), whole) << "in place" << ctx;
  for (size_t k = 0; k <= in.size(); ++k) {
    CHECK_EQ(decode_pieces(in, {k}, false, max_line), whole) << "split at " << k << ctx;
    CHECK_EQ(decode_pieces(in, {k}, true, max_line), whole) << "in place, split at " << k << ctx;
  }
  std::vector<size_t> every;
  for (size_t k = 1; k < in.size(); ++k) every.push_back(k);
  CHECK_EQ(decode_pieces(in, every, false, max_line), whole) << "byte by byte" << ctx;
  CHECK_EQ(decode_pieces(in, every, true, max_line), whole) << "in place, byte by byte" << ctx;
  return whole;
}

void expect_body(std::string_view in, std::string_view data, std::optional<size_t> consumed = {},
                 size_t max_line = 4096, int line = __builtin_LINE()) {
  const DecodeResult r = decode_all_ways(in, max_line, line);
  const std::string ctx = " for \"" + check::escape(in) + "\"" + where(line);
  CHECK_EQ(r.status, 1) << ctx;
  CHECK_EQ(r.data, data) << ctx;
  CHECK_EQ(r.consumed, consumed.value_or(in.size())) << ctx;
}

void expect_bad_body(std::string_view in, size_t max_line = 4096, int line = __builtin_LINE()) {
  const DecodeResult r = decode_all_ways(in, max_line, line);
  CHECK_EQ(r.status, -400) << " for \"" << check::escape(in) << "\"" << where(line);
}

void expect_incomplete_body(std::string_view in, std::string_view data, int line = __builtin_LINE()) {
  const DecodeResult r = decode_all_ways(in, 4096, line);
  const std::string ctx = " for \"" + check::escape(in) + "\"" + where(line);
  CHECK_EQ(r.status, 0) << ctx;
  CHECK_EQ(r.consumed, in.size()) << ctx;
  CHECK_EQ(r.data, data) << ctx;
}

TEST(chunked_valid) {
  expect_body("0\r\n\r\n", "");
  expect_body("5\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
  expect_body("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
  expect_body("0005\r\nhello\r\n000\r\n\r\n", "hello");
  expect_body("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", "hello");
  // Leading zeros are not significant digits (chunk-size = 1*HEXDIG; only
  // an overflowing value is refused, RFC 9112 7.1).
  expect_body("00000000000000005\r\nhello\r\n" + std::string(40, '0') + "\r\n\r\n", "hello");
  expect_body("3\r\n\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n\r\n");  // CR/LF inside data are data
  expect_body("1\r\n\0\r\n0\r\n\r\n"s, "\0"s);
  const std::string big(300, 'z');
  expect_body("12c\r\n" + big + "\r\n0\r\n\r\n", big);
}

TEST(chunked_extensions) {
  expect_body("5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello");
  expect_body("5 ; foo = bar\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a;b=c;d=\"q \\\" x\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a=\"\xc3\xa9\t;=\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a=b ;c\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a=\"x\" ;c\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;a ;b\r\nhello\r\n0\r\n\r\n", "hello");
  expect_body("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", "hello");
}

TEST(chunked_trailers) {
  expect_body("0\r\nX-T: v\r\n\r\n", "");
  expect_body("5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\nZ: a\tb \xff\r\n\r\n", "hello");
  expect_body("0\r\nX:v\r\n\r\n", "");
}

TEST(chunked_stops_after_body) {
  expect_body("0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "", 5);
  expect_body("2\r\nab\r\n0\r\n\r\n\r\n\r\n", "ab", 12);
  expect_body("0\r\nT: 1\r\n\r\nX", "", 11);
  // After completion the decoder consumes nothing more.
  ChunkedDecoder d;
  char out[16];
  const auto r1 = d.decode(out, "0\r\n\r\nabc", 8);
  CHECK_EQ(r1.status, 1);
  CHECK_EQ(r1.consumed, 5u);
  const auto r2 = d.decode(out, "abc", 3);
  CHECK_EQ(r2.status, 1);
  CHECK_EQ(r2.consumed, 0u);
  CHECK_EQ(r2.produced, 0u);
  CHECK(d.done());
  const auto r3 = d.decode(out, "", 0);
  CHECK_EQ(r3.status, 1);
}

TEST(chunked_size_errors) {
  for (const char* in : {"+5\r\nhello\r\n0\r\n\r\n",
                         "-5\r\nhello\r\n0\r\n\r\n",
                         "0x5\r\nhello\r\n0\r\n\r\n",
                         "5_0\r\nhello\r\n0\r\n\r\n",
                         " 5\r\nhello\r\n0\r\n\r\n",
                         "5 \r\nhello\r\n0\r\n\r\n",
                         "5\t\r\nhello\r\n0\r\n\r\n",
                         "\r\nhello\r\n0\r\n\r\n",
                         ";a\r\n",
                         "g\r\n",
                         "5g\r\n",
                         "10000000000000000\r\n",
                         "0010000000000000000\r\n",
                         "ffffffffffffffff0\r\n",
                         "5 x\r\nhello\r\n0\r\n\r\n",
                         "5\nhello\r\n0\r\n\r\n",
                         "5\rhello\r\n0\r\n\r\n",
                         "5\r\r\nhello\r\n0\r\n\r\n",
                         "\n",
                         "\r\r",
                         "0\n\r\n",
                         "0 \r\n\r\n",
                         "0.5\r\n"}) {
    expect_bad_body(in);
  }
}

TEST(chunked_data_terminator_errors) {
  for (const char* in : {"5\r\nhelloX\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r0\r\n\r\n",
                         "5\r\nhello\r\r\n0\r\n\r\n", "5\r\nhello world\r\n0\r\n\r\n", "5\r\nhell\r\n0\r\n\r\n"}) {
    expect_bad_body(in);
  }
}

TEST(chunked_extension_errors) {
  for (const char* in : {"5;\r\n",
                         "5;=x\r\n",
                         "5;a=\r\n",
                         "5;a= \r\n",
                         "5;a \r\n",
                         "5;a=b \r\n",
                         "5;a b\r\n",
                         "5;a=\"x\r\n",
                         "5;a=\"x\"y\r\n",
                         "5;\x01\r\n",
                         "5;a=\x7f\r\n",
                         "5;a=\"\x01\"\r\n",
                         "5;a=\"x\\\x01\"\r\n",
                         "5;a=b=c\r\n",
                         "5;a=\"x\" \r\n",
                         "5;;a\r\n",
                         "5 ;\r\n",
                         "5;a\nhello\r\n",
                         "5;a=b\rhello",
                         "5;a=(b)\r\n",
                         "5;a@b\r\n"}) {
    expect_bad_body(in);
  }
}

TEST(chunked_trailer_errors) {
  for (const char* in :
       {"0\r\n X: v\r\n\r\n", "0\r\n\tX: v\r\n\r\n", "0\r\nX : v\r\n\r\n", "0\r\n: v\r\n\r\n", "0\r\nX\r\n\r\n",
        "0\r\nX: a\x01\r\n\r\n", "0\r\nX: a\x7f\r\n\r\n", "0\r\nX: a\n\r\n", "0\r\nX: a\r\r\n", "0\r\n\n",
        "0\r\n\r\r", "0\r\nX: a\r\n b\r\n\r\n", "0\r\nX(: a\r\n\r\n", "0\r\nX: a\r\n\n"}) {
    expect_bad_body(in);
  }
  expect_bad_body("0\r\nX: a\0\r\n\r\n"s);
}

TEST(chunked_incomplete) {
  expect_incomplete_body("", "");
  expect_incomplete_body("5", "");
  expect_incomplete_body("5\r\nhel", "hel");
  expect_incomplete_body("5\r\nhello\r", "hello");
  expect_incomplete_body("0\r\n\r", "");
  expect_incomplete_body("0\r\nX: v\r\n", "");
  expect_incomplete_body("ffffffffffffffff\r\nabc", "abc");
  expect_incomplete_body("0000FFFFFFFFFFFFFFFF\r\nabc", "abc");
  expect_incomplete_body("5;a=\"x", "");
}

TEST(chunked_line_limits) {
  // Size line: "5;a=" + value, counted without the CRLF.
  const auto size_line = [](size_t n) { return "5;a=" + std::string(n - 4, 'v'); };
  expect_body(size_line(32) + "\r\nhello\r\n0\r\n\r\n", "hello", {}, 32);
  expect_bad_body(size_line(33) + "\r\nhello\r\n0\r\n\r\n", 32);
  // Leading zeros of a chunk-size count towards the line too.
  expect_body(std::string(31, '0') + "5\r\nhello\r\n0\r\n\r\n", "hello", {}, 32);
  expect_bad_body(std::string(32, '0') + "5\r\nhello\r\n0\r\n\r\n", 32);
  // Too long is certain before the CRLF arrives.
  ChunkedDecoder d;
  d.max_line = 32;
  std::string line = size_line(33);
  std::string dst(line.size(), '\0');
  CHECK_EQ(d.decode(dst.data(), line.data(), line.size()).status, -400);
  // Trailer lines.
  expect_body("0\r\nX: " + std::string(29, 't') + "\r\n\r\n", "", {}, 32);
  expect_bad_body("0\r\nX: " + std::string(30, 't') + "\r\n\r\n", 32);
  // Default limit is 4096.
  expect_body("0\r\nX: " + std::string(4093, 't') + "\r\n\r\n", "");
}

TEST(chunked_error_position_is_stable) {
  // consumed on error is the offset of the offending byte, however the input was split.
  const DecodeResult r = decode_all_ways("5\r\nhelloX\r\n");
  CHECK_EQ(r.status, -400);
  CHECK_EQ(r.consumed, 8u);
  CHECK_EQ(r.data, "hello");
}

// Random valid encodings, checked against the data, then mutated and checked
// for consistency between one call, random splits and byte-by-byte decoding.
TEST(chunked_random) {
  std::mt19937_64 rng(777);
  const char* exts[] = {"", ";a", ";a=b", " ; x = \"y\\\"z\"", ";n=1;m"};
  const char* trailers[] = {"", "X: 1\r\n", "A: b\r\nC-D:\te\r\n"};
  for (int iter = 0; iter < 4000; ++iter) {
    std::string data, enc;
    const int chunks = static_cast<int>(rng() % 4);
    for (int c = 0; c < chunks; ++c) {
      const size_t n = 1 + rng() % 40;
      std::string piece;
      for (size_t i = 0; i < n; ++i) piece += static_cast<char>(rng());
      char size[32];
      std::snprintf(size, sizeof size, (rng() & 1) ? "%zx" : "%zX", n);
      enc += size;
      enc += exts[rng() % 5];
      enc += "\r\n" + piece + "\r\n";
      data += piece;
    }
    enc += "0";
    enc += exts[rng() % 5];
    enc += "\r\n";
    enc += trailers[rng() % 3];
    enc += "\r\n";
    const DecodeResult whole = decode_pieces(enc, {}, false);
    CHECK_EQ(whole.status, 1);
    CHECK_EQ(whole.data, data);
    CHECK_EQ(whole.consumed, enc.size());

    std::string mutated = enc;
    for (int m = 0; m < 2; ++m) {
      const size_t pos = rng() % mutated.size();
      switch (rng() % 3) {
        case 0: mutated[pos] = "\r\n ;=\"\\0aF:\x01"[rng() % 13]; break;  // index 12 is the NUL
        case 1: mutated.erase(pos, 1); break;
        default: mutated.insert(pos, 1, "\r\n ;0"[rng() % 5]); break;
      }
      if (mutated.empty()) mutated = "0";
    }
    const DecodeResult ref = decode_pieces(mutated, {}, false);
    std::vector<size_t> cuts;
    for (size_t k = 1; k < mutated.size(); ++k)
      if (rng() % 4 == 0) cuts.push_back(k);
    CHECK_EQ(decode_pieces(mutated, cuts, false), ref) << "for \"" << check::escape(mutated) << "\"";
    CHECK_EQ(decode_pieces(mutated, cuts, true), ref) << "in place for \"" << check::escape(mutated) << "\"";
    if (iter % 8 == 0) {
      std::vector<size_t> every;
      for (size_t k = 1; k < mutated.size(); ++k) every.push_back(k);
      CHECK_EQ(decode_pieces(mutated, every, false), ref) << "bytewise for \"" << check::escape(mutated) << "\"";
    }
  }
}

}  // namespace

CHECK_MAIN()
