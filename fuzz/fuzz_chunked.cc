// libFuzzer target for fulmen::ChunkedDecoder.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
//     fuzz/fuzz_chunked.cc src/core/parser.cc -o /tmp/fuzz_chunked
//   /tmp/fuzz_chunked -dict=fuzz/http.dict fuzz/corpus/chunked
//
// The input is decoded three ways -- in one call into a separate buffer, in
// place, and in pieces (byte by byte, and at split points derived from the
// input) -- and all must agree on status, consumed bytes and decoded data,
// because the decoder promises identical results for any split of its input.
// The same file is linked into tests/cpp/replay_fuzz_corpus.cc.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/parser.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  int status = 0;
  size_t consumed = 0;
  std::string data;
  uint64_t total = 0;
  bool operator==(const Outcome&) const = default;
};

// Decodes data[0, size) in pieces of the given lengths (the last piece takes
// whatever is left). Each call gets only the new bytes, copied to an exactly
// sized heap block so over-reads are caught.
Outcome decode_pieces(const char* data, size_t size, const std::vector<size_t>& pieces, size_t max_line,
                      bool in_place) {
  fulmen::ChunkedDecoder d;
  d.max_line = max_line;
  Outcome out;
  std::vector<char> whole(data, data + size);  // in-place mode decodes onto this
  size_t produced = 0;
  size_t start = 0;
  for (size_t i = 0; i <= pieces.size(); ++i) {
    const size_t len = i < pieces.size() ? std::min(pieces[i], size - start) : size - start;
    fulmen::ChunkedDecoder::Result r;
    if (in_place) {
      r = d.decode(whole.data() + produced, whole.data() + out.consumed, len);
      produced += r.produced;
    } else {
      std::vector<char> src(data + start, data + start + len);
      std::vector<char> dst(len);
      r = d.decode(dst.data(), src.data(), len);
      out.data.append(dst.data(), r.produced);
    }
    require(r.status == 1 || r.status == 0 || r.status == -400);
    require(r.consumed <= len && r.produced <= r.consumed);
    require(r.status != 0 || r.consumed == len);  // "need more" consumes everything
    out.consumed += r.consumed;
    out.status = r.status;
    if (r.status != 0) break;
    start += len;
  }
  if (in_place) out.data.assign(whole.data(), produced);
  out.total = d.total();
  require(out.total == out.data.size());
  require(d.done() == (out.status == 1));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);

  // Split points derived from the input bytes (deterministic per input).
  // Empty pieces are included; the piece count is bounded in case they all are.
  std::vector<size_t> pieces;
  for (size_t i = 0, total = 0; total < size && i < 2 * size; ++i) {
    const size_t len = data[(i * 7) % size] % 9;
    pieces.push_back(len);
    total += len;
  }
  const std::vector<size_t> bytewise(size <= 4096 ? size : 0, 1);

  // The default line limit, and a small one that exercises the limit paths.
  for (const size_t max_line : {size_t{4096}, size_t{16}}) {
    const Outcome ref = decode_pieces(p, size, {}, max_line, false);
    require(decode_pieces(p, size, {}, max_line, true) == ref);
    require(decode_pieces(p, size, pieces, max_line, false) == ref);
    require(decode_pieces(p, size, pieces, max_line, true) == ref);
    if (!bytewise.empty()) {
      require(decode_pieces(p, size, bytewise, max_line, false) == ref);
      require(decode_pieces(p, size, bytewise, max_line, true) == ref);
    }
  }
  return 0;
}
