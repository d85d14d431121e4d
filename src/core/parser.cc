// HTTP/1.1 request head parser and chunked body decoder (RFC 9112).
//
// Design notes
// ------------
// parse_request() is a single left-to-right pass over buf[0, len) in which
// every decision depends only on the bytes already scanned, never on what
// follows. That makes the result "prefix-monotonic": if some prefix of an input is
// already invalid, every longer input starting with it gets the same error,
// and an incomplete-but-valid prefix returns 0. Callers may therefore re-parse
// a growing buffer from scratch and reject a bad client as soon as the first
// offending byte arrives instead of waiting for the end of the head.
//
// The size limits are folded into the same scheme by bounding the bytes the
// scan may look at:
//   * the whole head must fit in max_head bytes, so the scan never looks past
//     buf[max_head - 1]; running out of bytes there means -431, running out
//     anywhere else (before len reaches max_head) means "need more" (0);
//   * the request line's CR must sit at most max_request_line bytes after the
//     start of the method, so running out of that window means -414.
// Because of this an over-long head gets the same answer whether it arrives in
// one piece or byte by byte, and the answer never depends on bytes beyond the
// limit.
//
// Policy decisions (all within what RFC 9112/9110 allow):
//   * At most kMaxLeadingEmptyLines CRLFs before the request line are skipped
//     (RFC 9112 2.2 asks for "at least one"); they count towards max_head and
//     the returned length but not towards max_request_line.
//   * Repeated Content-Length fields are accepted only if their values are
//     byte-for-byte identical (RFC 9110 8.6 / RFC 9112 6.3 allow rejecting or
//     merging; "5" and "05" are rejected).
//   * Connection is parsed leniently (unknown options and empty list elements
//     are ignored, RFC 9110 5.6.1); Transfer-Encoding strictly (any empty
//     element is -400) because it decides message framing.
//   * The Host value must match uri-host [ ":" port ] (RFC 9112 3.2 requires
//     400 for an invalid Host); an empty Host is valid (RFC 9112 3.2). With an
//     absolute-form target Host is still required (1.1) and checked, but the
//     reported host is the target's authority, which need not match it (RFC
//     9112 3.2.2 makes the origin server ignore Host).
//   * CONNECT requires authority-form with a port and "*" is only accepted for
//     OPTIONS (RFC 9112 3.2.3, 3.2.4); an http(s) URI with an empty host or
//     with userinfo is rejected (RFC 9110 4.2.1, 4.2.4).
//   * A CONNECT request has no content (RFC 9110 9.3.6): Transfer-Encoding or
//     a Content-Length other than 0 is -400, and keep_alive is false, since a
//     2xx answer would make the connection a tunnel (RFC 9112 6.3 (2)).
//
// On 0 or an error, *out holds whatever was filled in so far and must not be
// used.
//
// The chunked decoder is a byte-level state machine whose whole state lives in
// the object, so any split of the input across calls gives identical results.

#include "core/parser.h"

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cstring>

#if defined(__SSE2__) && !defined(FULMEN_NO_SIMD)
#include <emmintrin.h>
#define FULMEN_SSE2 1
#else
#define FULMEN_SSE2 0
#endif

namespace fulmen {
namespace {

// ---------------------------------------------------------------------------
// Character classes.

enum : uint8_t {
  kTchar = 1 << 0,       // token characters, RFC 9110 5.6.2
  kHexDig = 1 << 1,      // HEXDIG, RFC 5234 B.1 (case-insensitive)
  kRegName = 1 << 2,     // reg-name / IPv4address bytes: unreserved / sub-delims / "%" (RFC 3986 3.2.2)
  kQdText = 1 << 3,      // qdtext, RFC 9110 5.6.4: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
  kFieldByte = 1 << 4,   // bytes allowed in a field value: HTAB / SP / VCHAR / obs-text (RFC 9110 5.5)
  kQuotedPair = 1 << 5,  // second byte of a quoted-pair: HTAB / SP / VCHAR / obs-text (RFC 9110 5.6.4)
};

constexpr bool one_of(int c, const char* set) {
  for (; *set; ++set)
    if (c == static_cast<unsigned char>(*set)) return true;
  return false;
}

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (size_t i = 0; i < t.size(); ++i) {
    const int c = static_cast<int>(i);
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7E;
    const bool obs_text = c >= 0x80;
    uint8_t f = 0;
    if (alpha || digit || one_of(c, "!#$%&'*+-.^_`|~")) f |= kTchar;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) f |= kHexDig;
    if (alpha || digit || one_of(c, "-._~!$&'()*+,;=%")) f |= kRegName;
    if (c == '\t' || c == ' ' || obs_text || (vchar && c != '"' && c != '\\')) f |= kQdText;
    if (c == '\t' || c == ' ' || vchar || obs_text) f |= kFieldByte | kQuotedPair;
    t[i] = f;
  }
  return t;
}

constexpr std::array<uint8_t, 256> kClass = make_classes();

constexpr std::array<uint8_t, 256> make_lower() {
  std::array<uint8_t, 256> t{};
  for (size_t c = 0; c < t.size(); ++c) {
    t[c] = static_cast<uint8_t>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return t;
}

// ASCII-only lowercasing; <cctype> would consult the locale on every byte.
constexpr std::array<uint8_t, 256> kLower = make_lower();

inline bool is(unsigned char c, uint8_t cls) {
  return (kClass[c] & cls) != 0;
}
inline bool is_ows(int c) {
  return c == ' ' || c == '\t';
}  // OWS/BWS, RFC 9110 5.6.3

// Case-insensitive comparison against a lowercase literal.
inline bool iequals(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (kLower[static_cast<unsigned char>(s[i])] != static_cast<unsigned char>(lower[i])) return false;
  return true;
}

// Non-throwing substrings (std::string_view::substr has a throwing bounds
// check; these callers always stay in bounds).
inline std::string_view prefix(std::string_view s, size_t n) {
  return {s.data(), std::min(n, s.size())};
}
inline std::string_view suffix_from(std::string_view s, size_t pos) {
  return {s.data() + pos, s.size() - pos};  // pos <= s.size()
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each element of a comma-separated list (RFC 9110 5.6.1),
// with OWS around each element removed. Empty elements are passed through; the
// caller decides whether they are an error. Stops early if f returns false.
template <class F>
bool for_each_list_element(std::string_view list, F&& f) {
  for (;;) {
    const size_t comma = list.find(',');
    if (!f(trim_ows(prefix(list, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// ---------------------------------------------------------------------------
// Byte scanners for the two long runs of a request head. The SSE2 paths only
// load 16 bytes when at least 16 remain before `end` (never past the input),
// the scalar loop handles the tail and non-SSE2 builds.

// Returns the index of the first byte in s[p, end) outside %x21-7E (i.e. the
// SP that ends a request-target, or an invalid byte), or `end`.
inline size_t scan_target(const unsigned char* s, size_t p, size_t end) {
#if FULMEN_SSE2
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7F);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p));
    // Compared as signed bytes, %x80-FF are negative, so "v > 0x20" selects
    // exactly %x21-7F; DEL is then removed separately.
    const __m128i ok = _mm_andnot_si128(_mm_cmpeq_epi8(v, del), _mm_cmpgt_epi8(v, space));
    const unsigned bad = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & 0xFFFFu;
    if (bad != 0) return p + static_cast<size_t>(std::countr_zero(bad));
    p += 16;
  }
#endif
  while (p < end && static_cast<unsigned>(s[p]) - 0x21u < 0x5Eu) ++p;
  return p;
}

// Returns the index of the first byte in s[p, end) that may not appear in a
// field value -- a control byte other than HTAB, i.e. %x00-08 / %x0A-1F / %x7F
// (RFC 9110 5.5; obs-text is allowed) -- or `end`. In a valid head that byte
// is the CR ending the field line.
inline size_t scan_value(const unsigned char* s, size_t p, size_t end) {
#if FULMEN_SSE2
  const __m128i max_ctl = _mm_set1_epi8(0x1F);
  const __m128i htab = _mm_set1_epi8(0x09);
  const __m128i del = _mm_set1_epi8(0x7F);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p));
    // Unsigned "v <= 0x1F" is "min(v, 0x1F) == v".
    const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, max_ctl), v);
    const __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, htab), ctl), _mm_cmpeq_epi8(v, del));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(bad));
    if (mask != 0) return p + static_cast<size_t>(std::countr_zero(mask));
    p += 16;
  }
#endif
  while (p < end && is(s[p], kFieldByte)) ++p;
  return p;
}

// ---------------------------------------------------------------------------
// Request-target and Host validation.

inline bool is_digit(char ch) {
  return static_cast<unsigned>(static_cast<unsigned char>(ch)) - '0' <= 9u;
}
inline bool is_hex(char ch) {
  return is(static_cast<unsigned char>(ch), kHexDig);
}

// IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, where a
// dec-octet is 0-255 without leading zeros (RFC 3986 3.2.2).
bool valid_ipv4(std::string_view s) {
  size_t i = 0;
  for (int octet = 0;; ++octet) {
    const size_t start = i;
    unsigned v = 0;
    while (i < s.size() && i - start < 3 && is_digit(s[i])) v = v * 10 + static_cast<unsigned>(s[i++] - '0');
    if (i == start || v > 255 || (i - start > 1 && s[start] == '0')) return false;
    if (octet == 3) return i == s.size();
    if (i == s.size() || s[i] != '.') return false;
    ++i;
  }
}

// IPv6address (RFC 3986 3.2.2): eight h16 pieces (1-4 HEXDIG) separated by
// ":", the last two of which may be an IPv4address, with at most one "::"
// standing for one or more zero pieces. No zone identifier (RFC 6874 is not
// part of the http URI syntax, RFC 9110 4.2).
bool valid_ipv6(std::string_view s) {
  int pieces = 0;
  bool compressed = false;
  size_t i = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    compressed = true;
    i = 2;
  }
  while (i < s.size()) {
    const size_t start = i;
    while (i < s.size() && i - start < 4 && is_hex(s[i])) ++i;
    if (i < s.size() && s[i] == '.') {  // ls32 as an IPv4address: the rest of the address
      if (!valid_ipv4(suffix_from(s, start))) return false;
      pieces += 2;
      break;
    }
    if (i == start) return false;  // an empty piece: ":::", a leading or doubled ":"
    ++pieces;
    if (i == s.size()) break;
    if (s[i] != ':') return false;      // a fifth hex digit or another byte
    if (++i == s.size()) return false;  // a trailing single ":"
    if (s[i] == ':') {
      if (compressed) return false;  // a second "::"
      compressed = true;
      ++i;
    }
  }
  return compressed ? pieces <= 7 : pieces == 8;
}

// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) (RFC 3986 3.2.2).
bool valid_ipvfuture(std::string_view s) {
  if (s.size() < 4 || (s[0] | 0x20) != 'v') return false;
  size_t i = 1;
  while (i < s.size() && is_hex(s[i])) ++i;
  if (i == 1 || i + 1 >= s.size() || s[i] != '.') return false;
  for (++i; i < s.size(); ++i)
    if (s[i] == '%' || (!is(static_cast<unsigned char>(s[i]), kRegName) && s[i] != ':')) return false;
  return true;
}

// Validates `uri-host [ ":" port ]` (RFC 9112 3.2 / RFC 3986 3.2.2-3.2.3), the
// syntax of both the Host field value and the authority of an absolute-form or
// authority-form target; RFC 9112 3.2 makes an invalid Host a 400. It thereby
// rejects everything that could confuse a consumer of the value: whitespace,
// "/", "?", "#", "@" (userinfo), quotes, controls, bad pct-encodings.
// *has_port is set when a non-empty port is present.
bool valid_authority(std::string_view a, bool* has_port) {
  *has_port = false;
  size_t i = 0;
  if (!a.empty() && a[0] == '[') {
    // IP-literal = "[" ( IPv6address / IPvFuture ) "]".
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view literal(a.data() + 1, close - 1);
    if (!valid_ipv6(literal) && !valid_ipvfuture(literal)) return false;
    i = close + 1;
  } else {
    // reg-name = *( unreserved / pct-encoded / sub-delims ), which also
    // covers IPv4address; may be empty (RFC 3986 3.2.2).
    while (i < a.size() && is(static_cast<unsigned char>(a[i]), kRegName)) {
      if (a[i] == '%') {  // pct-encoded = "%" HEXDIG HEXDIG
        if (a.size() - i < 3 || !is_hex(a[i + 1]) || !is_hex(a[i + 2])) return false;
        i += 2;
      }
      ++i;
    }
  }
  if (i == a.size()) return true;
  if (a[i] != ':') return false;
  // port = *DIGIT
  for (++i; i < a.size(); ++i) {
    if (!is_digit(a[i])) return false;
    *has_port = true;
  }
  return true;
}

// Fills path and query from a target suffix that starts at the path (or at the
// '?' or '#' when the path is empty). A '#' fragment is not sent by conforming
// clients (RFC 9112 3.2.1) but is tolerated: it ends both path and query.
void split_path_query(std::string_view rest, RequestHead* out) {
  const size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = prefix(rest, hash);
  const size_t qmark = rest.find('?');
  if (qmark == std::string_view::npos) {
    out->path = rest;
  } else {
    out->path = prefix(rest, qmark);
    out->query = suffix_from(rest, qmark + 1);
  }
}

// Classifies the request-target (RFC 9112 3.2) and fills path/query.
// Returns false if the target is not valid for this method.
bool classify_target(RequestHead* out) {
  const std::string_view t = out->target;
  const std::string_view m = out->method;
  // Method names are case-sensitive (RFC 9110 9.1).
  if (m == "CONNECT") {
    // authority-form = uri-host ":" port, and only for CONNECT (3.2.3).
    bool has_port;
    if (!valid_authority(t, &has_port) || !has_port || t[0] == ':') return false;
    out->target_form = TargetForm::kAuthority;
    out->path = t;
    out->host = t;  // the target is the authority (RFC 9112 3.3)
    return true;
  }
  if (t[0] == '/') {  // origin-form (3.2.1)
    split_path_query(t, out);
    return true;
  }
  if (t == "*") {  // asterisk-form (3.2.4), only for a server-wide OPTIONS
    out->target_form = TargetForm::kAsterisk;
    out->path = t;
    return m == "OPTIONS";
  }
  // absolute-form (3.2.2). Only the schemes a server answers for are accepted.
  size_t scheme_len;
  if (iequals(prefix(t, 7), "http://")) {
    scheme_len = 7;
  } else if (iequals(prefix(t, 8), "https://")) {
    scheme_len = 8;
  } else {
    return false;
  }
  std::string_view rest = suffix_from(t, scheme_len);
  const size_t auth_end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = prefix(rest, auth_end);
  bool has_port;
  // An empty host is invalid for http(s) URIs (RFC 9110 4.2.1, 4.2.2) and
  // userinfo ("@") is treated as an error (RFC 9110 4.2.4).
  if (authority.empty() || authority[0] == ':' || !valid_authority(authority, &has_port)) return false;
  out->target_form = TargetForm::kAbsolute;
  // RFC 9112 3.2.2: the target's authority, not the Host field, names the host.
  out->host = authority;
  rest.remove_prefix(auth_end);
  split_path_query(rest, out);
  if (out->path.empty()) {
    // An empty path is "/", except for a server-wide OPTIONS in absolute
    // form, which means the same as "OPTIONS *" (RFC 9112 3.2.1, 3.2.4).
    out->path = (m == "OPTIONS" && out->query.empty() && rest.find('?') == std::string_view::npos) ? "*" : "/";
  }
  return true;
}

// ---------------------------------------------------------------------------
// Header field semantics.

constexpr uint64_t kMaxContentLength = static_cast<uint64_t>(INT64_MAX);

// Content-Length = 1*DIGIT (RFC 9110 8.6). No sign, no inner whitespace, no
// list: "5, 5" is rejected even though 8.6 would allow merging it.
bool parse_content_length(std::string_view v, uint64_t* out) {
  if (v.empty()) return false;
  uint64_t n = 0;
  for (const char ch : v) {
    const unsigned d = static_cast<unsigned>(static_cast<unsigned char>(ch)) - '0';
    if (d > 9u) return false;
    if (n > (kMaxContentLength - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

// Facts collected across header fields that are only judged at the end of the head.
struct FieldState {
  int host_count = 0;
  int content_type_count = 0;
  std::string_view content_length;  // first Content-Length value, for the duplicate check
  bool te_seen = false;
  bool te_chunked = false;  // "chunked" was seen; it must stay the last coding
  bool te_other = false;    // some other transfer coding was seen
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool expect_continue = false;
};

// Interprets one header field. Returns 0 or -400.
int on_field(std::string_view name, std::string_view value, RequestHead* out, FieldState* st) {
  switch (name.size()) {
    case 4:
      if (iequals(name, "host")) {
        // RFC 9112 3.2: 400 for more than one Host line or an invalid value.
        bool has_port;
        if (++st->host_count > 1 || !valid_authority(value, &has_port)) return -400;
        // With an absolute-form or authority-form target, host already holds
        // the target's authority and Host is ignored (RFC 9112 3.2.2, 3.3).
        if (out->target_form == TargetForm::kOrigin || out->target_form == TargetForm::kAsterisk) out->host = value;
      }
      break;
    case 12:
      // RFC 9110 5.3 / 8.3: Content-Type is a singleton; two of them leave the
      // body's media type ambiguous between us and the app's framework.
      if (iequals(name, "content-type") && ++st->content_type_count > 1) return -400;
      break;
    case 6:
      if (iequals(name, "expect")) {
        // RFC 9110 10.1.1: 100-continue is the only expectation; others are ignored.
        if (iequals(value, "100-continue")) st->expect_continue = true;
      }
      break;
    case 10:
      if (iequals(name, "connection")) {
        // RFC 9110 7.6.1: connection-option = token, case-insensitive.
        for_each_list_element(value, [st](std::string_view opt) {
          if (iequals(opt, "close"))
            st->conn_close = true;
          else if (iequals(opt, "keep-alive"))
            st->conn_keep_alive = true;
          return true;
        });
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        uint64_t n;
        if (!parse_content_length(value, &n)) return -400;
        // RFC 9112 6.1: Content-Length with Transfer-Encoding is a smuggling
        // vector; we reject instead of letting Transfer-Encoding win.
        if (st->te_seen) return -400;
        // RFC 9110 9.3.6: a CONNECT request has no content; what follows its
        // head belongs to the tunnel. A length other than 0 claims otherwise.
        if (n != 0 && out->target_form == TargetForm::kAuthority) return -400;
        if (out->has_content_length) {
          // RFC 9112 6.3 (5) / RFC 9110 8.6: differing values are an
          // unrecoverable error; identical ones may be merged. We merge only
          // byte-identical values.
          if (value != st->content_length) return -400;
        } else {
          out->has_content_length = true;
          out->content_length = n;
          st->content_length = value;
        }
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        // RFC 9112 6.1: Transfer-Encoding on 1.0 means faulty framing. A
        // CONNECT request has no content to encode (RFC 9110 9.3.6).
        if (out->version_minor == 0 || out->has_content_length || out->target_form == TargetForm::kAuthority)
          return -400;
        st->te_seen = true;
        // Multiple Transfer-Encoding lines form one list (RFC 9110 5.3), so
        // the state carries over between lines.
        const bool ok = for_each_list_element(value, [st](std::string_view coding) {
          // An empty element, or any coding after "chunked" (chunked repeated
          // or not last, RFC 9112 6.3 (4)), makes the length undeterminable.
          if (coding.empty() || st->te_chunked) return false;
          // transfer-coding = token *( OWS ";" OWS transfer-parameter )
          // (RFC 9112 7). The name must be a token; the parameters of a
          // coding we do not implement are not looked at.
          const std::string_view coding_name = trim_ows(prefix(coding, coding.find(';')));
          if (coding_name.empty()) return false;
          for (const char ch : coding_name)
            if (!is(static_cast<unsigned char>(ch), kTchar)) return false;
          if (iequals(coding_name, "chunked")) {
            // chunked has no parameters (RFC 9112 7.1): "chunked;x=y" is
            // malformed rather than some other, unsupported coding.
            if (coding_name.size() != coding.size()) return false;
            st->te_chunked = true;
          } else {
            st->te_other = true;
          }
          return true;
        });
        if (!ok) return -400;
      }
      break;
    default: break;
  }
  return 0;
}

// RFC 9112 2.2 asks servers to skip "at least one" empty line before the
// request line (robustness against clients that add a CRLF after a POST
// body). We skip a few more, but not an unbounded number.
constexpr int kMaxLeadingEmptyLines = 8;

}  // namespace

int parse_request(const char* buf, size_t len, RequestHead* out, const ParserLimits& limits) {
  out->method = out->target = out->path = out->query = out->host = {};
  out->target_form = TargetForm::kOrigin;
  out->version_minor = 1;
  out->num_headers = 0;
  out->has_content_length = false;
  out->content_length = 0;
  out->chunked = false;
  out->keep_alive = true;
  out->client_close = false;
  out->expect_continue = false;

  const auto* s = reinterpret_cast<const unsigned char*>(buf);
  // The head, including its final CRLFCRLF, must fit in head_cap bytes, so
  // bytes at or beyond head_cap are never examined (see the design notes).
  // The cap is also kept below INT_MAX so that the length fits the result.
  const size_t head_cap = std::min<size_t>(limits.max_head, INT_MAX);
  const size_t n = std::min(len, head_cap);
  // Running out of the n bytes: the head is either still incomplete or, if
  // len already reached head_cap, certainly too large.
  const auto need_more = [&] { return len >= head_cap ? -431 : 0; };

  size_t p = 0;

  // Leading empty lines (RFC 9112 2.2).
  for (int i = 0; i < kMaxLeadingEmptyLines && p < n && s[p] == '\r'; ++i) {
    if (p + 1 == n) return need_more();
    if (s[p + 1] != '\n') return -400;
    p += 2;
  }

  // ---- request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 3).
  // The CR must be within max_request_line bytes of the line start, so the
  // line is scanned only up to rl_end; running out there is -414.
  const size_t line_start = p;
  size_t rl_end = n;
  bool rl_limited = false;
  if (n - line_start > limits.max_request_line) {
    rl_end = line_start + limits.max_request_line + 1;
    rl_limited = true;
  }
  const auto rl_need_more = [&] { return rl_limited ? -414 : need_more(); };

  // method = token
  size_t q = p;
  while (q < rl_end && is(s[q], kTchar)) ++q;
  if (q == rl_end) return rl_need_more();
  if (s[q] != ' ' || q == p) return -400;
  out->method = std::string_view(buf + p, q - p);
  p = q + 1;

  // request-target: no whitespace, controls, DEL or non-ASCII bytes.
  q = scan_target(s, p, rl_end);
  if (q == rl_end) return rl_need_more();
  if (s[q] != ' ' || q == p) return -400;
  out->target = std::string_view(buf + p, q - p);
  if (!classify_target(out)) return -400;
  p = q + 1;

  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3).
  // Only major version 1 is served; minor versions above 1 are handled as 1.1
  // (RFC 9110 2.5: a recipient uses the highest minor version it supports).
  static constexpr char kVersionPrefix[] = "HTTP/1.";
  for (size_t i = 0; i + 1 < sizeof(kVersionPrefix); ++i, ++p) {
    if (p == rl_end) return rl_need_more();
    if (s[p] != static_cast<unsigned char>(kVersionPrefix[i])) return -400;
  }
  if (p == rl_end) return rl_need_more();
  const unsigned minor = static_cast<unsigned>(s[p]) - '0';
  if (minor > 9u) return -400;
  out->version_minor = minor == 0 ? 0 : 1;
  ++p;
  if (p == rl_end) return rl_need_more();
  if (s[p] != '\r') return -400;
  ++p;
  if (p == n) return need_more();
  if (s[p] != '\n') return -400;
  ++p;

  // ---- *( field-line CRLF ) CRLF (RFC 9112 5).
  const size_t max_fields = std::min(limits.max_headers, kMaxHeaders);
  FieldState st;
  for (;;) {
    if (p == n) return need_more();
    if (s[p] == '\r') {  // the empty line ending the head
      if (p + 1 == n) return need_more();
      if (s[p + 1] != '\n') return -400;
      p += 2;
      break;
    }
    if (out->num_headers == max_fields) return -431;

    // field-name = token, immediately followed by ':' (RFC 9112 5.1: no
    // whitespace before the colon). A line starting with SP/HTAB (obs-fold,
    // RFC 9112 5.2, or whitespace after the request line, RFC 9112 2.2), an
    // empty name or a bare LF all fail this test.
    q = p;
    while (q < n && is(s[q], kTchar)) ++q;
    if (q == n) return need_more();
    if (s[q] != ':' || q == p) return -400;
    const std::string_view name(buf + p, q - p);

    // field-value with surrounding OWS (RFC 9112 5, RFC 9110 5.5).
    ++q;
    while (q < n && is_ows(s[q])) ++q;
    const size_t value_start = q;
    q = scan_value(s, q, n);
    if (q == n) return need_more();
    if (s[q] != '\r') return -400;  // NUL, bare LF or another control byte
    if (q + 1 == n) return need_more();
    if (s[q + 1] != '\n') return -400;  // bare CR
    size_t value_end = q;
    while (value_end > value_start && is_ows(s[value_end - 1])) --value_end;
    const std::string_view value(buf + value_start, value_end - value_start);

    out->headers[out->num_headers++] = Header{name, value};
    if (const int rc = on_field(name, value, out, &st); rc != 0) return rc;
    p = q + 2;
  }

  // ---- Checks that need the whole head. All -400s come before the -501 so
  // that a malformed request is never reported as merely unsupported.
  // RFC 9112 3.2: a 1.1 request without Host is a 400.
  if (out->version_minor >= 1 && st.host_count == 0) return -400;
  if (st.te_seen) {
    // RFC 9112 6.3 (4): in a request whose final transfer coding is not
    // chunked the body length cannot be determined: 400, whatever the codings
    // are ("gzip", "identity", "foo"). te_chunked is set only while chunked
    // is the last coding seen (a coding after it fails in on_field).
    if (!st.te_chunked) return -400;
    // RFC 9112 6.1: chunked is last but another coding we do not implement
    // precedes it ("gzip, chunked"): 501. Only "chunked" alone is supported.
    if (st.te_other) return -501;
    out->chunked = true;
  }
  // RFC 9112 9.3: persistence defaults to on for 1.1 and off for 1.0;
  // "close" always wins. After a 2xx to CONNECT the connection is a tunnel
  // (RFC 9112 6.3 (2), RFC 9110 9.3.6), which this server does not provide:
  // whatever the answer, nothing after a CONNECT is read as HTTP.
  out->client_close = st.conn_close;
  if (st.conn_close || out->target_form == TargetForm::kAuthority) {
    out->keep_alive = false;
  } else {
    out->keep_alive = out->version_minor >= 1 || st.conn_keep_alive;
  }
  // RFC 9110 10.1.1: a 100-continue expectation in a 1.0 request is ignored.
  out->expect_continue = st.expect_continue && out->version_minor >= 1;
  return static_cast<int>(p);
}

// ---------------------------------------------------------------------------
// ChunkedDecoder (RFC 9112 7.1).
//
//   chunked-body   = *chunk last-chunk trailer-section CRLF
//   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size     = 1*HEXDIG
//   last-chunk     = 1*("0") [ chunk-ext ] CRLF
//   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-val  = token / quoted-string
//   trailer-section = *( field-line CRLF )
//
// `digits_` is nonzero once kSize has seen a hex digit. Once the size is complete it
// is no longer needed, so kExt and kTrailer reuse it for their sub-state (the
// layout of the class is fixed by the header).

namespace {

// A chunk-size may carry any number of leading zeros (1*HEXDIG); what must not
// happen is an overflow of its value (RFC 9112 7.1), i.e. a 17th significant
// hex digit. remaining_ > kMaxBeforeShift means the next digit would overflow.
constexpr uint64_t kMaxBeforeShift = UINT64_MAX >> 4;

// Sub-states of State::kExt, stored in digits_.
enum ExtState : int {
  kExtNeedSemi,     // after BWS following the size or a value: only BWS or ';' may follow
  kExtNameStart,    // after ';': BWS, then the first tchar of a name
  kExtName,         // inside a name
  kExtAfterName,    // BWS after a name: '=' or ';' must follow
  kExtValueStart,   // after '=': BWS, then a token or a quoted-string
  kExtToken,        // inside a token value
  kExtQuoted,       // inside a quoted-string
  kExtQuotedPair,   // after a backslash inside a quoted-string
  kExtAfterQuoted,  // right after the closing DQUOTE
};

// Sub-states of State::kTrailer, stored in digits_ (trailer_empty_ says
// whether the current line has no bytes yet).
enum TrailerState : int { kTrailerName, kTrailerValue };

// Returns the next ExtState for byte c in state st, or -1 if c is invalid
// there. CR is handled by the caller (see ext_may_end).
int next_ext_state(int st, unsigned char c) {
  const bool ows = is_ows(c);
  switch (st) {
    case kExtNeedSemi:
      if (ows) return kExtNeedSemi;
      return c == ';' ? kExtNameStart : -1;
    case kExtNameStart:
      if (ows) return kExtNameStart;
      return is(c, kTchar) ? kExtName : -1;
    case kExtName:
      if (is(c, kTchar)) return kExtName;
      if (ows) return kExtAfterName;
      if (c == '=') return kExtValueStart;
      return c == ';' ? kExtNameStart : -1;
    case kExtAfterName:
      if (ows) return kExtAfterName;
      if (c == '=') return kExtValueStart;
      return c == ';' ? kExtNameStart : -1;
    case kExtValueStart:
      if (ows) return kExtValueStart;
      if (c == '"') return kExtQuoted;
      return is(c, kTchar) ? kExtToken : -1;
    case kExtToken:
      if (is(c, kTchar)) return kExtToken;
      if (ows) return kExtNeedSemi;
      return c == ';' ? kExtNameStart : -1;
    case kExtQuoted:
      if (c == '"') return kExtAfterQuoted;
      if (c == '\\') return kExtQuotedPair;
      return is(c, kQdText) ? kExtQuoted : -1;
    case kExtQuotedPair: return is(c, kQuotedPair) ? kExtQuoted : -1;
    case kExtAfterQuoted:
      if (ows) return kExtNeedSemi;
      return c == ';' ? kExtNameStart : -1;
    default: return -1;
  }
}

// Whether the chunk-ext may end (CRLF) in state st: only right after a name or
// a value. Trailing BWS is not allowed ("5 \r\n", "5;a \r\n" are invalid).
bool ext_may_end(int st) {
  return st == kExtName || st == kExtToken || st == kExtAfterQuoted;
}

int hex_value(unsigned char c) {
  if (c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

}  // namespace

ChunkedDecoder::Result ChunkedDecoder::decode(char* dst, const char* src, size_t len) {
  const auto* s = reinterpret_cast<const unsigned char*>(src);
  size_t i = 0;         // input consumed
  size_t produced = 0;  // output written
  const auto fail = [&] { return Result{-400, i, produced}; };
  // Counts a byte of the current size/extension/trailer line (CRLF excluded).
  const auto line_byte = [&] { return ++line_len_ <= max_line; };

  while (i < len) {
    const unsigned char c = s[i];
    switch (state_) {
      case State::kData: {
        // Bulk copy. produced <= i always holds, so with dst <= src the write
        // never overtakes the read; memmove handles the overlap.
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, len - i));
        if (dst + produced != src + i) std::memmove(dst + produced, src + i, take);
        produced += take;
        i += take;
        remaining_ -= take;
        total_ += take;
        if (remaining_ == 0) state_ = State::kDataCr;
        continue;
      }
      case State::kDataCr:  // chunk-data must be followed by exactly CRLF
        if (c != '\r') return fail();
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail();
        state_ = State::kSize;
        digits_ = 0;
        line_len_ = 0;
        break;
      case State::kSize:
        if (is(c, kHexDig)) {
          if (remaining_ > kMaxBeforeShift || !line_byte()) return fail();
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(hex_value(c));
          digits_ = 1;  // at least one digit seen
        } else if (digits_ == 0) {
          return fail();  // empty size, or a sign/space/junk before it
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';' || is_ows(c)) {
          // Whitespace after the size is BWS, valid only before a ';'.
          if (!line_byte()) return fail();
          state_ = State::kExt;
          digits_ = c == ';' ? kExtNameStart : kExtNeedSemi;
        } else {
          return fail();  // "0x5", "5_0", bare LF, ...
        }
        break;
      case State::kExt:
        if (c == '\r') {
          if (!ext_may_end(digits_)) return fail();
          state_ = State::kSizeLf;
        } else {
          // Extensions are syntax-checked and then ignored (RFC 9112 7.1.1).
          const int next = next_ext_state(digits_, c);
          if (next < 0 || !line_byte()) return fail();
          digits_ = next;
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail();
        if (remaining_ == 0) {  // last-chunk: the trailer section follows
          state_ = State::kTrailer;
          trailer_empty_ = true;
          line_len_ = 0;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kTrailer:
        // Trailer fields use the field-line syntax (RFC 9112 7.1.2) and get
        // the same strict checks as header fields; they are then discarded.
        if (c == '\r') {
          if (!trailer_empty_ && digits_ != kTrailerValue) return fail();  // name without ':'
          state_ = State::kTrailerLf;
          break;
        }
        if (!line_byte()) return fail();
        if (trailer_empty_) {
          // First byte of a field line: a name. SP/HTAB here is obs-fold.
          if (!is(c, kTchar)) return fail();
          trailer_empty_ = false;
          digits_ = kTrailerName;
        } else if (digits_ == kTrailerName) {
          if (c == ':')
            digits_ = kTrailerValue;
          else if (!is(c, kTchar))
            return fail();  // whitespace before ':' included
        } else if (!is(c, kFieldByte)) {
          return fail();  // control byte in a value
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail();
        ++i;
        if (trailer_empty_) {  // the final CRLF of the body
          state_ = State::kDone;
          return Result{1, i, produced};
        }
        // Each trailer line is bounded, and so is their number: an endless
        // trailer section would otherwise keep a connection busy forever.
        if (++trailers_ > max_trailers) return fail();
        state_ = State::kTrailer;
        trailer_empty_ = true;
        line_len_ = 0;
        continue;
      case State::kDone: return Result{1, i, produced};
    }
    ++i;
  }
  return Result{state_ == State::kDone ? 1 : 0, i, produced};
}

}  // namespace fulmen
