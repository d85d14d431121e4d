// Tests for src/core/address_set.h: addresses, networks, "*", mapped IPv6.
#include <string>

#include "check.h"
#include "core/address_set.h"

using fulmen::AddressSet;
using fulmen::IpAddress;

namespace {

bool in(const AddressSet& s, const char* ip) {
  auto a = IpAddress::parse(ip);
  CHECK(a.has_value()) << ip;
  return a && s.contains(*a);
}

AddressSet set(const char* list) {
  std::string error;
  auto s = AddressSet::parse(list, &error);
  CHECK(s.has_value()) << list << ": " << error;
  return s ? *s : AddressSet{};
}

}  // namespace

TEST(addresses_and_networks) {
  AddressSet s = set("127.0.0.1, ::1,10.0.0.0/8,2001:db8::/32, 192.0.2.128/25");
  CHECK(in(s, "127.0.0.1"));
  CHECK(!in(s, "127.0.0.2"));
  CHECK(in(s, "::1"));
  CHECK(in(s, "10.255.1.2"));
  CHECK(!in(s, "11.0.0.1"));
  CHECK(in(s, "2001:db8:ffff::1"));
  CHECK(!in(s, "2001:db9::1"));
  CHECK(in(s, "192.0.2.200"));
  CHECK(!in(s, "192.0.2.127"));
  CHECK(in(s, "::ffff:127.0.0.1"));  // IPv4-mapped: the IPv4 address
  CHECK(!s.contains_all());
}

TEST(star_and_empty) {
  CHECK(in(set("*"), "203.0.113.9"));
  CHECK(set("*").contains_all());
  CHECK(set("").empty());
  CHECK(!in(set(""), "127.0.0.1"));
}

TEST(bad_items_are_named) {
  const char* bad[] = {"localhost", "10.0.0.0/33", "10.0.0.1/8", "::1/129", "1.2.3", "10.0.0.0/", "10.0.0.0/x"};
  for (const char* list : bad) {
    std::string error;
    CHECK(!AddressSet::parse(list, &error)) << list;
    CHECK(error.find(list) != std::string::npos) << error;
  }
}

CHECK_MAIN()
