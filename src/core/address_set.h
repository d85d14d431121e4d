// A set of IP addresses and networks, for settings such as
// forwarded_allow_ips and proxy_allow_from: "127.0.0.1,::1,10.0.0.0/8", or
// "*" for every address. Parsed once at start; contains() is a short scan with
// no allocation.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fulmen {

// An IPv4 or IPv6 address in network byte order (IPv4-mapped IPv6 addresses
// are taken as the IPv4 address they map).
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};

  // Parses the canonical text forms that inet_pton accepts.
  static std::optional<IpAddress> parse(std::string_view text);
  // From a socket address; nullopt for a unix socket or anything else.
  static std::optional<IpAddress> from_sockaddr(const sockaddr* sa);
};

class AddressSet {
 public:
  // Parses a comma-separated list of addresses, CIDR networks and "*";
  // spaces around items are ignored. Returns nullopt and sets *error to one
  // sentence naming the bad item when an item is neither.
  static std::optional<AddressSet> parse(std::string_view list, std::string* error);

  bool contains(const IpAddress& ip) const;
  bool contains_all() const { return all_; }
  bool empty() const { return !all_ && networks_.empty(); }

 private:
  struct Network {
    IpAddress base;
    int prefix;  // bits
  };
  std::vector<Network> networks_;
  bool all_ = false;
};

}  // namespace fulmen
