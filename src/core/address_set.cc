#include "core/address_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "core/response.h"

namespace fulmen {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
IpAddress unmapped(IpAddress ip) {
  if (ip.family == AF_INET6 && std::memcmp(ip.bytes, kMappedPrefix, 12) == 0) {
    IpAddress v4;
    v4.family = AF_INET;
    std::memcpy(v4.bytes, ip.bytes + 12, 4);
    return v4;
  }
  return ip;
}

bool prefix_matches(const uint8_t* a, const uint8_t* b, int bits) {
  int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char z[INET6_ADDRSTRLEN];
  std::memcpy(z, text.data(), text.size());
  z[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, z, ip.bytes) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (inet_pton(AF_INET6, z, ip.bytes) == 1) {
    ip.family = AF_INET6;
    return unmapped(ip);
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr* sa) {
  IpAddress ip;
  if (sa->sa_family == AF_INET) {
    ip.family = AF_INET;
    std::memcpy(ip.bytes, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return ip;
  }
  if (sa->sa_family == AF_INET6) {
    ip.family = AF_INET6;
    std::memcpy(ip.bytes, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return unmapped(ip);
  }
  return std::nullopt;
}

std::optional<AddressSet> AddressSet::parse(std::string_view list, std::string* error) {
  AddressSet set;
  while (true) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (item == "*") {
      set.all_ = true;
    } else if (!item.empty()) {
      size_t slash = item.find('/');
      std::optional<IpAddress> base = IpAddress::parse(item.substr(0, slash));
      int max_bits = base ? (base->family == AF_INET ? 32 : 128) : 0;
      int prefix = max_bits;
      bool ok = base.has_value();
      if (ok && slash != std::string_view::npos) {
        std::string_view bits = item.substr(slash + 1);
        ok = !bits.empty() && bits.size() <= 3;
        prefix = 0;
        for (char c : bits) {
          ok = ok && c >= '0' && c <= '9';
          prefix = prefix * 10 + (c - '0');
        }
        // A mapped network (::ffff:10.0.0.0/104) counts in IPv4 bits.
        if (ok && base->family == AF_INET && item.substr(0, slash).find(':') != std::string_view::npos) prefix -= 96;
        ok = ok && prefix >= 0 && prefix <= max_bits;
        // The base must be the network's first address, as Python's ip_network insists.
        if (ok) {
          IpAddress masked = *base;
          for (int i = prefix; i < max_bits; ++i) masked.bytes[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
          ok = std::memcmp(masked.bytes, base->bytes, 16) == 0;
        }
      }
      if (!ok) {
        // Appended piecewise: gcc 12 at -O3 reports a false -Wrestrict for "'" + std::string(...).
        error->assign(1, '\'');
        error->append(item);
        error->append("' is not an IP address, a network (ADDRESS/BITS, host bits zero) or '*'");
        return std::nullopt;
      }
      set.networks_.push_back({*base, prefix});
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return set;
}

bool AddressSet::contains(const IpAddress& ip) const {
  if (all_) return true;
  for (const Network& n : networks_) {
    if (n.base.family == ip.family && prefix_matches(n.base.bytes, ip.bytes, n.prefix)) return true;
  }
  return false;
}

}  // namespace fulmen
