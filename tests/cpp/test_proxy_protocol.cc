// Tests for src/core/proxy_protocol.h: both versions parse to the same
// addresses, every prefix of a valid header is "incomplete" (never an error,
// never complete), and each malformation is refused.
#include <sys/socket.h>

#include <string>

#include "check.h"
#include "core/proxy_protocol.h"

using fulmen::parse_proxy_header;
using fulmen::ProxyHeader;
using fulmen::ProxyParse;

namespace {

ProxyParse parse(const std::string& s, ProxyHeader* h) {
  return parse_proxy_header(s.data(), s.size(), h);
}

// Every strict prefix of a complete header must ask for more bytes.
void check_prefixes_incomplete(const std::string& header) {
  for (size_t n = 0; n < header.size(); ++n) {
    ProxyHeader h;
    CHECK_EQ(static_cast<int>(parse_proxy_header(header.data(), n, &h)), static_cast<int>(ProxyParse::kIncomplete))
        << "prefix of " << n << " bytes";
  }
}

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& body) {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s.push_back(static_cast<char>(ver_cmd));
  s.push_back(static_cast<char>(fam));
  s.push_back(static_cast<char>(body.size() >> 8));
  s.push_back(static_cast<char>(body.size() & 0xff));
  return s + body;
}

std::string v2_tcp4_body() {
  // 192.0.2.7:51000 -> 10.0.0.1:443
  return std::string("\xc0\x00\x02\x07\x0a\x00\x00\x01\xc7\x38\x01\xbb", 12);
}

}  // namespace

TEST(v1_tcp4_gives_the_client_address_and_where_the_request_starts) {
  std::string line = "PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n";
  ProxyHeader h;
  CHECK_EQ(static_cast<int>(parse(line + "GET / HTTP/1.1\r\n", &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK_EQ(h.version, 1);
  CHECK_EQ(h.length, line.size());
  CHECK(!h.local);
  CHECK_EQ(h.family, AF_INET);
  CHECK_EQ(std::string(h.source), "192.0.2.7");
  CHECK_EQ(h.source_port, 51000);
  CHECK_EQ(std::string(h.destination), "10.0.0.1");
  CHECK_EQ(h.destination_port, 443);
  check_prefixes_incomplete(line);
}

TEST(v1_tcp6_and_unknown) {
  ProxyHeader h;
  CHECK_EQ(static_cast<int>(parse("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", &h)),
           static_cast<int>(ProxyParse::kComplete));
  CHECK_EQ(h.family, AF_INET6);
  CHECK_EQ(std::string(h.source), "2001:db8::1");
  CHECK_EQ(h.source_port, 65535);
  CHECK_EQ(h.destination_port, 0);
  CHECK_EQ(static_cast<int>(parse("PROXY UNKNOWN\r\n", &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK(h.local);
  CHECK_EQ(static_cast<int>(parse("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK(h.local);
}

TEST(v1_malformations_are_refused) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\n",                             // not a PROXY header at all
      "PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\n",      // bare LF
      "PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n",        // a field missing
      "PROXY TCP4 192.0.2.7 10.0.0.1 51000 443 1\r\n",  // a field too many
      "PROXY TCP4  192.0.2.7 10.0.0.1 51000 443\r\n",   // two spaces
      "PROXY TCP5 192.0.2.7 10.0.0.1 51000 443\r\n",    // unknown protocol
      "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",        // v6 address under TCP4
      "PROXY TCP6 192.0.2.7 ::1 1 2\r\n",               // v4 address under TCP6
      "PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n",        // octet out of range
      "PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",      // port out of range
      "PROXY TCP4 192.0.2.7 10.0.0.1 080 2\r\n",        // leading zero
      "PROXY TCP4 192.0.2.7 10.0.0.1 -1 2\r\n",         // sign
      "PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\r\n",        // CR inside
      "PROXY\r\n",                                      // no protocol
      "proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n",          // case matters
      "PROXY UNKNOWNX\r\n",                             // not UNKNOWN
  };
  for (const char* s : bad) {
    ProxyHeader h;
    CHECK_EQ(static_cast<int>(parse(s, &h)), static_cast<int>(ProxyParse::kError)) << s;
  }
  // No CRLF within the longest line the specification allows.
  ProxyHeader h;
  CHECK_EQ(static_cast<int>(parse("PROXY UNKNOWN " + std::string(200, 'x'), &h)),
           static_cast<int>(ProxyParse::kError));
  std::string longest = "PROXY UNKNOWN " + std::string(fulmen::kMaxProxyV1Line - 16, 'x') + "\r\n";
  CHECK_EQ(longest.size(), fulmen::kMaxProxyV1Line);
  CHECK_EQ(static_cast<int>(parse(longest, &h)), static_cast<int>(ProxyParse::kComplete));
}

TEST(v2_proxy_tcp4_and_tcp6_with_tlvs) {
  std::string tlv("\x04\x00\x03xyz", 6);  // a TLV (type 4, length 3): skipped
  std::string header = v2(0x21, 0x11, v2_tcp4_body() + tlv);
  ProxyHeader h;
  CHECK_EQ(static_cast<int>(parse(header + "GET / HTTP/1.1\r\n", &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK_EQ(h.version, 2);
  CHECK_EQ(h.length, header.size());
  CHECK_EQ(h.family, AF_INET);
  CHECK_EQ(std::string(h.source), "192.0.2.7");
  CHECK_EQ(h.source_port, 51000);
  CHECK_EQ(std::string(h.destination), "10.0.0.1");
  CHECK_EQ(h.destination_port, 443);
  check_prefixes_incomplete(header);

  std::string six(36, '\0');
  six[0] = '\x20', six[1] = '\x01', six[2] = '\x0d', six[3] = '\xb8', six[15] = '\x01';  // 2001:db8::1
  six[31] = '\x01';                                                                      // ::1
  six[32] = '\x30', six[33] = '\x39', six[34] = '\x00', six[35] = '\x50';                // 12345 -> 80
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x21, six), &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK_EQ(h.family, AF_INET6);
  CHECK_EQ(std::string(h.source), "2001:db8::1");
  CHECK_EQ(std::string(h.destination), "::1");
  CHECK_EQ(h.source_port, 12345);
  CHECK_EQ(h.destination_port, 80);
}

TEST(v2_local_and_unspec_keep_the_connection_addresses) {
  ProxyHeader h;
  CHECK_EQ(static_cast<int>(parse(v2(0x20, 0x00, ""), &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK(h.local);
  CHECK_EQ(h.length, 16u);
  CHECK_EQ(static_cast<int>(parse(v2(0x20, 0x11, v2_tcp4_body()), &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK(h.local);  // LOCAL: the addresses given are not the client's
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x00, ""), &h)), static_cast<int>(ProxyParse::kComplete));
  CHECK(h.local);
}

TEST(v2_malformations_are_refused) {
  ProxyHeader h;
  std::string body = v2_tcp4_body();
  CHECK_EQ(static_cast<int>(parse(v2(0x11, 0x11, body), &h)), static_cast<int>(ProxyParse::kError));  // version 1
  CHECK_EQ(static_cast<int>(parse(v2(0x22, 0x11, body), &h)), static_cast<int>(ProxyParse::kError));  // command 2
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x41, body), &h)), static_cast<int>(ProxyParse::kError));  // family 4
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x12, body), &h)), static_cast<int>(ProxyParse::kError));  // datagram
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x11, body.substr(0, 11)), &h)), static_cast<int>(ProxyParse::kError));
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x21, body), &h)), static_cast<int>(ProxyParse::kError));  // short v6
  CHECK_EQ(static_cast<int>(parse(v2(0x21, 0x31, body), &h)), static_cast<int>(ProxyParse::kError));  // short unix
  std::string huge = v2(0x21, 0x11, std::string(fulmen::kMaxProxyV2Body + 1, '\0'));
  CHECK_EQ(static_cast<int>(parse(huge, &h)), static_cast<int>(ProxyParse::kError));
  std::string sig_typo = v2(0x21, 0x11, body);
  sig_typo[8] = 'X';
  CHECK_EQ(static_cast<int>(parse(sig_typo, &h)), static_cast<int>(ProxyParse::kError));
}

CHECK_MAIN()
