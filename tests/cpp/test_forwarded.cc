// Tests for src/core/forwarded.h: the scheme as gunicorn reads it, the client
// address as the right-most untrusted hop, and RFC 7239 Forwarded.
#include <string>
#include <vector>

#include "check.h"
#include "core/forwarded.h"

using fulmen::AddressSet;
using fulmen::Forwarded;
using fulmen::Header;

namespace {

AddressSet trusted() {
  std::string error;
  return *AddressSet::parse("127.0.0.1,10.0.0.0/8", &error);
}

Forwarded resolve(std::vector<Header> headers) {
  return Forwarded::resolve(headers, trusted());
}

}  // namespace

TEST(scheme_headers_as_gunicorn) {
  CHECK(*resolve({{"X-Forwarded-Proto", "https"}}).https);
  CHECK(!*resolve({{"X-Forwarded-Proto", "http"}}).https);
  CHECK(!*resolve({{"X-Forwarded-Proto", "HTTPS"}}).https);  // gunicorn compares the exact value
  CHECK(*resolve({{"x-forwarded-ssl", "on"}}).https);
  CHECK(*resolve({{"X-Forwarded-Protocol", "ssl"}}).https);
  CHECK(!resolve({{"Host", "a"}}).https.has_value());
  Forwarded both = resolve({{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Ssl", "on"}});
  CHECK(*both.https && !both.conflict);
  CHECK(resolve({{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Ssl", "off"}}).conflict);
}

TEST(x_forwarded_for_takes_the_rightmost_untrusted_hop) {
  CHECK_EQ(resolve({{"X-Forwarded-For", "203.0.113.9"}}).remote, "203.0.113.9");
  // A client-sent spoof on the left is passed over: 198.51.100.1 reached a trusted proxy.
  CHECK_EQ(resolve({{"X-Forwarded-For", "1.1.1.1, 198.51.100.1, 10.0.0.5"}}).remote, "198.51.100.1");
  CHECK_EQ(resolve({{"X-Forwarded-For", "1.1.1.1"}, {"X-Forwarded-For", "198.51.100.1,10.1.1.1"}}).remote,
           "198.51.100.1");
  CHECK_EQ(resolve({{"X-Forwarded-For", "10.0.0.7, 127.0.0.1"}}).remote, "10.0.0.7");  // all trusted: left-most
  CHECK_EQ(resolve({{"X-Forwarded-For", "[2001:db8::1]:443"}}).remote, "2001:db8::1");
  CHECK_EQ(resolve({{"X-Forwarded-For", "203.0.113.9:1234"}}).remote, "203.0.113.9");
  CHECK_EQ(resolve({{"X-Forwarded-For", "2001:db8::2"}}).remote, "2001:db8::2");
  CHECK_EQ(resolve({{"X-Forwarded-For", "unknown"}}).remote, "");  // not an address: not believed
  CHECK_EQ(resolve({{"X-Forwarded-For", "203.0.113.9, garbage, 10.0.0.1"}}).remote, "");
}

TEST(rfc7239_forwarded) {
  Forwarded f = resolve({{"Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"}});
  CHECK_EQ(f.remote, "192.0.2.60");
  CHECK(*f.https);
  f = resolve({{"Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=http, for=10.0.0.1;proto=https"}});
  CHECK_EQ(f.remote, "2001:db8:cafe::17");
  CHECK_EQ(*f.remote_port, 4711);
  CHECK(!*f.https);  // the proto of the element whose for= was chosen
  f = resolve({{"Forwarded", "For=\"_hidden\""}});
  CHECK_EQ(f.remote, "");
  // Forwarded wins over the X- fields.
  f = resolve({{"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"}, {"Forwarded", "for=5.6.7.8"}});
  CHECK_EQ(f.remote, "5.6.7.8");
  CHECK(!f.https.has_value());
  // Syntax errors believe nothing.
  const char* bad[] = {"for=", "for", "for=\"1.2.3.4", "for=1.2.3.4 x"};
  for (const char* value : bad) CHECK_EQ(resolve({{"Forwarded", value}}).remote, "") << value;
}

CHECK_MAIN()
