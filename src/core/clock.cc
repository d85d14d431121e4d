#include "core/clock.h"

#include <ctime>

namespace fulmen {

std::string_view HttpClock::date_header() {
  // CLOCK_REALTIME_COARSE costs a few nanoseconds through the vDSO; it is
  // exact enough for a header with one-second resolution.
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != second_) {
    second_ = ts.tv_sec;
    time_t t = ts.tv_sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    len_ = strftime(buf_, sizeof buf_, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  }
  return {buf_, len_};
}

}  // namespace fulmen
