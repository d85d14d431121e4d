// What a trusted proxy says about the client through request headers:
// X-Forwarded-Proto / X-Forwarded-Ssl / X-Forwarded-Protocol (the scheme, as
// gunicorn's secure_scheme_headers), X-Forwarded-For (the client address, as
// uvicorn's proxy headers: the right-most address that is not itself a
// trusted proxy), and RFC 7239 Forwarded (both, per element).
//
// The caller asks only for requests whose peer is trusted (in
// forwarded_allow_ips, or on a unix socket); from any other peer these
// headers change nothing. A pure function over the parsed head.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/address_set.h"
#include "core/parser.h"

namespace fulmen {

struct Forwarded {
  std::optional<bool> https;            // the scheme the client used; nullopt: no header says
  std::string remote;                   // the client's address as text; empty: keep the peer's
  std::optional<uint16_t> remote_port;  // from Forwarded's "for=[addr]:port"; nullopt: unknown
  bool conflict = false;                // contradictory scheme headers: answer 400, as gunicorn

  // Reads the headers. When a Forwarded field is present it alone is used
  // (the standard form wins over the X- ones); otherwise the X- fields are.
  // An address that is not a valid IP (Forwarded's "unknown" or an
  // obfuscated "_name") is never believed: the peer's address stays.
  static Forwarded resolve(std::span<const Header> headers, const AddressSet& trusted);
};

}  // namespace fulmen
