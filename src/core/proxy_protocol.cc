#include "core/proxy_protocol.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace fulmen {
namespace {

constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr std::string_view kV1Prefix = "PROXY ";

// True when buf[0, len) could still become `whole` (it is a prefix of it, or
// starts with all of it).
bool starts_like(const char* buf, size_t len, std::string_view whole) {
  size_t n = std::min(len, whole.size());
  return std::memcmp(buf, whole.data(), n) == 0;
}

// Splits off the text before the next space; false if there is none.
bool next_field(std::string_view& rest, std::string_view& field) {
  size_t sp = rest.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  field = rest.substr(0, sp);
  rest.remove_prefix(sp + 1);
  return true;
}

// A v1 port: decimal 0-65535 without leading zeros.
bool parse_port(std::string_view text, uint16_t* out) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

// A v1 address in the family's canonical text form, copied into out.
bool parse_address(std::string_view text, int family, char (&out)[46]) {
  if (text.empty() || text.size() >= sizeof out) return false;
  char z[sizeof out];
  std::memcpy(z, text.data(), text.size());
  z[text.size()] = '\0';
  unsigned char bin[16];
  if (inet_pton(family, z, bin) != 1) return false;
  std::memcpy(out, z, text.size() + 1);
  return true;
}

ProxyParse parse_v1(const char* buf, size_t len, ProxyHeader* out) {
  size_t scan = std::min(len, kMaxProxyV1Line);
  const char* lf = static_cast<const char*>(std::memchr(buf, '\n', scan));
  if (lf == nullptr) return len >= kMaxProxyV1Line ? ProxyParse::kError : ProxyParse::kIncomplete;
  size_t line_len = static_cast<size_t>(lf - buf) + 1;
  if (line_len < kV1Prefix.size() + 2 || buf[line_len - 2] != '\r') return ProxyParse::kError;
  std::string_view line(buf + kV1Prefix.size(), line_len - kV1Prefix.size() - 2);
  if (line.find('\r') != std::string_view::npos) return ProxyParse::kError;

  ProxyHeader h;
  h.version = 1;
  h.length = line_len;
  if (line.substr(0, 7) == "UNKNOWN" && (line.size() == 7 || line[7] == ' ')) {
    h.local = true;  // The rest of the line is to be ignored (the specification says so).
    *out = h;
    return ProxyParse::kComplete;
  }
  std::string_view proto, src, dst, sport;
  std::string_view rest = line;
  if (!next_field(rest, proto) || !next_field(rest, src) || !next_field(rest, dst) || !next_field(rest, sport)) {
    return ProxyParse::kError;
  }
  std::string_view dport = rest;  // The last field runs to the CRLF.
  if (proto == "TCP4") {
    h.family = AF_INET;
  } else if (proto == "TCP6") {
    h.family = AF_INET6;
  } else {
    return ProxyParse::kError;
  }
  if (!parse_address(src, h.family, h.source) || !parse_address(dst, h.family, h.destination) ||
      !parse_port(sport, &h.source_port) || !parse_port(dport, &h.destination_port)) {
    return ProxyParse::kError;
  }
  *out = h;
  return ProxyParse::kComplete;
}

uint16_t be16(const unsigned char* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

ProxyParse parse_v2(const char* buf, size_t len, ProxyHeader* out) {
  if (len < 16) return ProxyParse::kIncomplete;
  auto* p = reinterpret_cast<const unsigned char*>(buf);
  unsigned version = p[12] >> 4, command = p[12] & 0x0f;
  unsigned family = p[13] >> 4, transport = p[13] & 0x0f;
  size_t body = be16(p + 14);
  if (version != 2 || command > 1 || family > 3 || transport > 2 || body > kMaxProxyV2Body) {
    return ProxyParse::kError;
  }
  if (len < 16 + body) return ProxyParse::kIncomplete;

  ProxyHeader h;
  h.version = 2;
  h.length = 16 + body;
  const unsigned char* a = p + 16;
  // LOCAL (health checks from the proxy itself), UNSPEC and unix sockets
  // carry no client address that means anything here: the connection's own
  // addresses stay. A datagram transport cannot be what reached a TCP server.
  if (command == 0 || family == 0 || family == 3) {
    if (command == 1 && family == 3 && body < 216) return ProxyParse::kError;
    h.local = true;
    *out = h;
    return ProxyParse::kComplete;
  }
  if (transport != 1) return ProxyParse::kError;
  if (family == 1) {
    if (body < 12) return ProxyParse::kError;
    h.family = AF_INET;
    inet_ntop(AF_INET, a, h.source, sizeof h.source);
    inet_ntop(AF_INET, a + 4, h.destination, sizeof h.destination);
    h.source_port = be16(a + 8);
    h.destination_port = be16(a + 10);
  } else {
    if (body < 36) return ProxyParse::kError;
    h.family = AF_INET6;
    inet_ntop(AF_INET6, a, h.source, sizeof h.source);
    inet_ntop(AF_INET6, a + 16, h.destination, sizeof h.destination);
    h.source_port = be16(a + 32);
    h.destination_port = be16(a + 34);
  }
  *out = h;
  return ProxyParse::kComplete;
}

}  // namespace

ProxyParse parse_proxy_header(const char* buf, size_t len, ProxyHeader* out) {
  if (len == 0) return ProxyParse::kIncomplete;
  if (buf[0] == 'P') {
    if (!starts_like(buf, len, kV1Prefix)) return ProxyParse::kError;
    return len < kV1Prefix.size() ? ProxyParse::kIncomplete : parse_v1(buf, len, out);
  }
  std::string_view sig(kV2Signature, sizeof kV2Signature);
  if (!starts_like(buf, len, sig)) return ProxyParse::kError;
  return len < sig.size() ? ProxyParse::kIncomplete : parse_v2(buf, len, out);
}

}  // namespace fulmen
