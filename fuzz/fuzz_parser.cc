// libFuzzer target for fulmen::parse_request.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
//     fuzz/fuzz_parser.cc src/core/parser.cc -o /tmp/fuzz_parser
//   /tmp/fuzz_parser -dict=fuzz/http.dict fuzz/corpus/parser
//
// Besides crashes and sanitizer reports, it checks the contract's invariants:
// the result is one of the documented values, the views lie inside the head,
// and the answer is consistent with the answers for prefixes of the input
// (which is what lets a server re-parse a growing buffer and reject a bad
// prefix early). The same file is linked into tests/cpp/replay_fuzz_corpus.cc
// so the corpus is replayed by the normal test suite.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/parser.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view v, const char* base, size_t len) {
  return v.empty() || (v.data() >= base && v.data() + v.size() <= base + len);
}

int parse(const char* data, size_t size, fulmen::RequestHead* h, const fulmen::ParserLimits& lim) {
  // Copy into an exactly-sized heap block so ASan flags any read past the end
  // (libFuzzer's own buffer is exactly sized too, but prefixes are not).
  std::vector<char> copy(data, data + size);
  const int r = fulmen::parse_request(copy.data(), size, h, lim);
  if (r > 0) {
    const size_t n = static_cast<size_t>(r);
    const char* b = copy.data();
    require(inside(h->method, b, n) && !h->method.empty());
    require(inside(h->target, b, n) && !h->target.empty());
    require(inside(h->path, b, n) || h->path == "/" || h->path == "*");
    require(inside(h->query, b, n) && inside(h->host, b, n));
    require(h->num_headers <= std::min(lim.max_headers, fulmen::kMaxHeaders));
    for (size_t i = 0; i < h->num_headers; ++i) {
      const auto& f = h->headers[i];
      require(!f.name.empty() && inside(f.name, b, n) && inside(f.value, b, n));
      require(f.value.find_first_of("\r\n") == std::string_view::npos);
      require(f.value.empty() || (f.value.front() != ' ' && f.value.back() != ' '));
    }
    require(h->version_minor == 0 || h->version_minor == 1);
    require(!(h->chunked && (h->has_content_length || h->version_minor == 0)));
    require(h->content_length <= static_cast<uint64_t>(INT64_MAX));
    require(n <= lim.max_head);
  }
  return r;
}

void check_one(const char* data, size_t size, const fulmen::ParserLimits& lim) {
  fulmen::RequestHead h;
  const int r = parse(data, size, &h, lim);
  require(r == 0 || (r > 0 && static_cast<size_t>(r) <= size) || r == -400 || r == -414 || r == -431 || r == -501);
  if (r > 0) {
    // The head alone gives the same length; one byte less is incomplete.
    const size_t n = static_cast<size_t>(r);
    require(parse(data, n, &h, lim) == r);
    require(parse(data, n - 1, &h, lim) == 0);
  } else if (size > 0) {
    // Prefixes are incomplete or fail the same way.
    for (const size_t k : {size - 1, size / 2}) {
      const int rp = parse(data, k, &h, lim);
      require(rp == 0 || rp == r);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  check_one(p, size, fulmen::ParserLimits{});
  // Small limits so that the 414/431 paths are reached with small inputs.
  fulmen::ParserLimits small;
  small.max_request_line = 32;
  small.max_head = 128;
  small.max_headers = 4;
  check_one(p, size, small);
  return 0;
}
