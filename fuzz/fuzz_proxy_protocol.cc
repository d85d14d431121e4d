// libFuzzer target for fulmen::parse_proxy_header.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
//     fuzz/fuzz_proxy_protocol.cc src/core/proxy_protocol.cc -o /tmp/fuzz_proxy_protocol
//   /tmp/fuzz_proxy_protocol fuzz/corpus/proxy_protocol
//
// Properties checked on every input: a complete header never claims more
// bytes than it was given and its addresses are NUL-terminated text of the
// family it names; and the answer is the same for the input as for the input
// with bytes appended (a complete header stays complete with the same length,
// an error stays an error), since the caller parses again as bytes arrive.
// The same file is linked into tests/cpp/replay_fuzz_corpus.cc.

#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/proxy_protocol.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* buf = reinterpret_cast<const char*>(data);
  fulmen::ProxyHeader h;
  fulmen::ProxyParse r = fulmen::parse_proxy_header(buf, size, &h);
  if (r == fulmen::ProxyParse::kComplete) {
    require(h.length > 0 && h.length <= size);
    require(h.version == 1 || h.version == 2);
    require(std::memchr(h.source, '\0', sizeof h.source) != nullptr);
    require(std::memchr(h.destination, '\0', sizeof h.destination) != nullptr);
    require(h.local ? h.family == 0 : (h.family == AF_INET || h.family == AF_INET6));
  }
  // The same bytes followed by more: the answer for the prefix must hold.
  std::string longer(buf, size);
  longer.append("GET / HTTP/1.1\r\n\r\n");
  fulmen::ProxyHeader h2;
  fulmen::ProxyParse r2 = fulmen::parse_proxy_header(longer.data(), longer.size(), &h2);
  if (r == fulmen::ProxyParse::kComplete) require(r2 == r && h2.length == h.length);
  if (r == fulmen::ProxyParse::kError) require(r2 == r);
  return 0;
}
