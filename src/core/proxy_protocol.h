// The PROXY protocol header (HAProxy's "PROXY protocol" specification, versions
// 1 and 2) that a load balancer sends first on a connection to say whom the
// connection is really from.
//
// A pure function over the caller's buffer, like the HTTP parser: no I/O, no
// allocation, no state. It is only ever asked about the first bytes of a
// connection, never on the keep-alive path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fulmen {

// The longest header either version can have: a v1 line is at most 107 bytes
// (CRLF included); a v2 header is 16 bytes plus a 16-bit length, of which we
// accept at most kMaxProxyV2Body bytes (addresses plus TLVs).
inline constexpr size_t kMaxProxyV1Line = 107;
inline constexpr size_t kMaxProxyV2Body = 2048;

struct ProxyHeader {
  int version = 0;       // 1 or 2
  size_t length = 0;     // bytes the header takes at the start of the buffer
  bool local = false;    // v1 "UNKNOWN" or v2 LOCAL: keep the connection's own addresses
  int family = 0;        // AF_INET or AF_INET6 when !local, else 0 (AF_UNSPEC)
  char source[46] = {};  // the client's address as text (NUL-terminated), when !local
  uint16_t source_port = 0;
  char destination[46] = {};
  uint16_t destination_port = 0;
};

enum class ProxyParse : int {
  kComplete = 1,    // *out is filled; the request starts at out->length
  kIncomplete = 0,  // a valid prefix of a header: read more (bounded by the limits above)
  kError = -1,      // not a PROXY header, or a malformed one: close the connection
};

// Parses a PROXY header (v1 text or v2 binary, told apart by their first
// bytes) at the start of buf[0, len). v1: "PROXY TCP4|TCP6 src dst sport
// dport\r\n" with addresses in their canonical text form and ports 0-65535
// without leading zeros, or "PROXY UNKNOWN ...\r\n". v2: the 12-byte
// signature, version 2, command LOCAL or PROXY, and for PROXY the
// AF_INET/AF_INET6 stream families (UNSPEC and unix ones are taken as local);
// TLVs are skipped. Anything else, including a header longer than the limits,
// is kError.
ProxyParse parse_proxy_header(const char* buf, size_t len, ProxyHeader* out);

}  // namespace fulmen
