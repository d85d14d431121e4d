// The cached HTTP Date header (RFC 9110 6.6.1), refreshed at most once a second.
#pragma once

#include <cstdint>
#include <string_view>

namespace fulmen {

class HttpClock {
 public:
  // Returns "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" for the current second.
  // The view stays valid until the next call that crosses a second.
  std::string_view date_header();
  // The second the last date_header() call was for (changes at most once a second).
  int64_t second() const { return second_; }

 private:
  int64_t second_ = -1;
  char buf_[64] = {};
  size_t len_ = 0;
};

}  // namespace fulmen
