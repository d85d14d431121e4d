// Small integer and address formatting for the hot path, where snprintf's
// format parsing costs more than the work itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fulmen {

// Writes v in decimal at out (room for 20 digits); returns the length.
inline size_t format_decimal(uint64_t v, char* out) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

// Writes v in lower-case hex at out (room for 16 digits); returns the length.
inline size_t format_hex(uint64_t v, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = kDigits[v & 15];
    v >>= 4;
  } while (v != 0);
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

// Writes an IPv4 address (network byte order, as in sockaddr_in) in dotted
// form at out (room for 15 bytes); returns the length.
inline size_t format_ipv4(const unsigned char addr[4], char* out) {
  size_t n = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out[n++] = '.';
    n += format_decimal(addr[i], out + n);
  }
  return n;
}

}  // namespace fulmen
