#include "core/access_log_format.h"

#include <algorithm>
#include <cstdio>

#include "core/response.h"

namespace fulmen {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// How a value's bytes reach the line.
enum class Text : uint8_t {
  kLatin1,  // request text: each byte is a latin-1 character, written as UTF-8
  kUtf8,    // already UTF-8 (the user name, environ values)
};

// Appends value escaped for the line: for the text format `"` as `\\"`
// (gunicorn's SafeAtoms) and control characters as \\xHH (so a request cannot
// start a line of its own); for JSON what JSON requires. Latin-1 bytes above
// 0x7f are written as their UTF-8 encoding.
void append_escaped(std::string& out, std::string_view value, Text text, bool json) {
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || (json && c == '\\')) {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, json ? "\\u%04x" : "\\x%02x", c);
      out += hex;
    } else if (c >= 0x80 && text == Text::kLatin1) {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else {
      out.push_back(ch);
    }
  }
}

void append_value(std::string& out, std::string_view value, Text text) {
  append_escaped(out, value, text, false);
}

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

// The last value of a request header, as gunicorn's atoms dict keeps it.
const Header* last_header(std::span<const Header> headers, std::string_view name) {
  const Header* found = nullptr;
  for (const Header& h : headers) {
    if (iequals(h.name, name)) found = &h;
  }
  return found;
}

// The environ value of a header (HTTP_REFERER, HTTP_USER_AGENT): repeated
// fields joined with ",", as gunicorn builds its environ. Returns false when
// there is no such field.
bool environ_header(std::span<const Header> headers, std::string_view name, std::string& out, bool& any) {
  any = false;
  for (const Header& h : headers) {
    if (!iequals(h.name, name)) continue;
    if (any) out.push_back(',');
    append_value(out, h.value, Text::kLatin1);
    any = true;
  }
  return any;
}

// A response header's value from the head text ("Name: value\r\n" lines).
std::optional<std::string_view> response_header(std::string_view head, std::string_view name) {
  std::optional<std::string_view> found;
  while (!head.empty()) {
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !iequals(line.substr(0, colon), name)) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    found = value;  // The last one wins, as in gunicorn's atoms dict.
  }
  return found;
}

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// The user name of "Authorization: Basic <base64(user:password)>", as
// gunicorn's _get_user finds it; nullopt when there is none or it does not
// decode (Python's lenient b64decode: characters outside the alphabet are
// dropped, the padding must be right).
std::optional<std::string> basic_user(std::span<const Header> headers) {
  const Header* auth = last_header(headers, "authorization");
  if (auth == nullptr || auth->value.size() < 5 || !iequals(auth->value.substr(0, 5), "basic")) return std::nullopt;
  size_t sp = auth->value.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  std::string_view b64 = auth->value.substr(sp + 1);
  std::string decoded;
  uint32_t acc = 0;
  int bits = 0, quads = 0, pad = 0;
  for (char c : b64) {
    if (c == '=') {
      ++pad;
      continue;
    }
    int v = b64_value(c);
    if (v < 0) continue;
    if (pad > 0) return std::nullopt;  // Data after padding.
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    ++quads;
    if (bits >= 8) {
      bits -= 8;
      decoded.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  int rem = quads % 4;
  if (rem == 1 || (rem != 0 && pad < 4 - rem)) return std::nullopt;
  std::string user = decoded.substr(0, decoded.find(':'));
  // It must be UTF-8 (Python decodes it so).
  for (size_t i = 0; i < user.size();) {
    auto c = static_cast<unsigned char>(user[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > user.size()) return std::nullopt;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(user[i + k]) >> 6) != 2) return std::nullopt;
    }
    i += n;
  }
  return user;
}

constexpr std::string_view kAtoms = "hlutrmUqHsBbfaTDMLp";

// A JSON string.
void append_json(std::string& out, std::string_view value, Text text) {
  out.push_back('"');
  append_escaped(out, value, text, true);
  out.push_back('"');
}

}  // namespace

std::optional<AccessLogFormat> AccessLogFormat::compile(std::string_view spec, std::string* error) {
  AccessLogFormat f;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) f.pieces_.push_back({Kind::kLiteral, 0, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < spec.size(); ++i) {
    char c = spec[i];
    if (c != '%') {
      literal.push_back(c);
      continue;
    }
    if (i + 1 < spec.size() && spec[i + 1] == '%') {
      literal.push_back('%');
      ++i;
      continue;
    }
    size_t close = spec.find(')', i);
    if (i + 1 >= spec.size() || spec[i + 1] != '(' || close == std::string_view::npos || close + 1 >= spec.size() ||
        spec[close + 1] != 's') {
      *error = "a '%' at offset " + std::to_string(i) + " must start %(name)s or be written %%";
      return std::nullopt;
    }
    std::string_view name = spec.substr(i + 2, close - i - 2);
    i = close + 1;
    flush();
    Piece p{Kind::kUnknown, 0, {}};
    if (name.size() == 1 && kAtoms.find(name[0]) != std::string_view::npos) {
      p.kind = Kind::kAtom;
      p.atom = name[0];
    } else if (name.size() > 3 && name.front() == '{' && name[name.size() - 2] == '}') {
      std::string key = lowered(name.substr(1, name.size() - 3));
      char which = name.back();
      if (which == 'i' || which == 'I') {
        p.kind = Kind::kRequestHeader;
      } else if (which == 'o' || which == 'O') {
        p.kind = Kind::kResponseHeader;
        f.uses_response_headers_ = true;
      } else if (which == 'e' || which == 'E') {
        p.kind = Kind::kEnviron;
        auto it = std::find(f.environ_keys_.begin(), f.environ_keys_.end(), key);
        p.index = static_cast<size_t>(it - f.environ_keys_.begin());
        if (it == f.environ_keys_.end()) f.environ_keys_.push_back(key);
      }
      p.text = std::move(key);
    }
    f.pieces_.push_back(std::move(p));
  }
  flush();
  return f;
}

void AccessLogFormat::format_json(const AccessLogRecord& r, std::string& out) {
  struct tm tm;
  gmtime_r(&r.now, &tm);
  char when[40];
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%03dZ", r.now_ms);
  out += "{\"time\":\"";
  out += when;
  out += "\",\"remote\":";
  append_json(out, r.remote, Text::kLatin1);
  out += ",\"method\":";
  append_json(out, r.method, Text::kLatin1);
  out += ",\"path\":";
  append_json(out, r.path_info, Text::kLatin1);
  out += ",\"query\":";
  append_json(out, r.query, Text::kLatin1);
  out += ",\"protocol\":";
  append_json(out, r.protocol, Text::kLatin1);
  out += ",\"status\":";
  append_number(out, static_cast<uint64_t>(r.status));
  out += ",\"bytes\":";
  if (r.sent) {
    append_number(out, *r.sent);
  } else {
    out += "null";
  }
  char duration[48];
  std::snprintf(duration, sizeof duration, ",\"duration\":%llu.%06llu",
                static_cast<unsigned long long>(r.duration_us / 1000000),
                static_cast<unsigned long long>(r.duration_us % 1000000));
  out += duration;
  auto header = [&](const char* key, std::string_view name) {
    out += key;
    const Header* h = last_header(r.request_headers, name);
    if (h == nullptr) {
      out += "null";
    } else {
      append_json(out, h->value, Text::kLatin1);
    }
  };
  header(",\"request_id\":", "x-request-id");
  out += ",\"user\":";
  std::optional<std::string> user = basic_user(r.request_headers);
  if (user) {
    append_json(out, *user, Text::kUtf8);
  } else {
    out += "null";
  }
  header(",\"user_agent\":", "user-agent");
  header(",\"referer\":", "referer");
  out += "}\n";
}

void AccessLogFormat::format(const AccessLogRecord& r, std::string& out) const {
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Kind::kLiteral: out += p.text; break;
      case Kind::kUnknown: out.push_back('-'); break;
      case Kind::kRequestHeader: {
        const Header* h = last_header(r.request_headers, p.text);
        if (h == nullptr) {
          out.push_back('-');
        } else {
          append_value(out, h->value, Text::kLatin1);
        }
        break;
      }
      case Kind::kResponseHeader: {
        std::optional<std::string_view> v = response_header(r.response_head, p.text);
        if (v) {
          append_value(out, *v, Text::kLatin1);
        } else {
          out.push_back('-');
        }
        break;
      }
      case Kind::kEnviron: {
        if (p.index < r.environ.size() && r.environ[p.index]) {
          append_value(out, *r.environ[p.index], Text::kUtf8);
        } else {
          out.push_back('-');
        }
        break;
      }
      case Kind::kAtom: {
        switch (p.atom) {
          case 'h': r.remote.empty() ? out.push_back('-') : append_value(out, r.remote, Text::kLatin1); break;
          case 'l': out.push_back('-'); break;
          case 'u': {
            std::optional<std::string> user = basic_user(r.request_headers);
            if (user) {
              append_value(out, *user, Text::kUtf8);
            } else {
              out.push_back('-');
            }
            break;
          }
          case 't': {
            struct tm tm;
            localtime_r(&r.now, &tm);
            char buf[40];
            size_t n = strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
            out.append(buf, n);
            break;
          }
          case 'r':
            append_value(out, r.method, Text::kLatin1);
            out.push_back(' ');
            append_value(out, r.target, Text::kLatin1);
            out.push_back(' ');
            append_value(out, r.protocol, Text::kLatin1);
            break;
          case 'm': append_value(out, r.method, Text::kLatin1); break;
          case 'U': append_value(out, r.path_info, Text::kLatin1); break;
          case 'q': append_value(out, r.query, Text::kLatin1); break;
          case 'H': append_value(out, r.protocol, Text::kLatin1); break;
          case 's': append_number(out, static_cast<uint64_t>(r.status)); break;
          case 'B':
          case 'b':
            if (r.sent) {
              append_number(out, *r.sent);
            } else {
              out.push_back('-');
            }
            break;
          case 'f':
          case 'a': {
            bool any = false;
            environ_header(r.request_headers, p.atom == 'f' ? "referer" : "user-agent", out, any);
            if (!any) out.push_back('-');
            break;
          }
          case 'T': append_number(out, r.duration_us / 1000000); break;
          case 'D': append_number(out, r.duration_us); break;
          case 'M': append_number(out, r.duration_us / 1000); break;
          case 'L': {
            char buf[32];
            int n = std::snprintf(buf, sizeof buf, "%llu.%06llu",
                                  static_cast<unsigned long long>(r.duration_us / 1000000),
                                  static_cast<unsigned long long>(r.duration_us % 1000000));
            out.append(buf, static_cast<size_t>(n));
            break;
          }
          case 'p':
            out.push_back('<');
            append_number(out, static_cast<uint64_t>(r.pid));
            out.push_back('>');
            break;
          default: out.push_back('-'); break;
        }
        break;
      }
    }
  }
  out.push_back('\n');
}

}  // namespace fulmen
