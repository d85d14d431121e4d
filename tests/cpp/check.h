// A tiny self-contained test harness (no external dependencies).
//
//   TEST(parses_simple_get) {
//     CHECK(x > 0) << "extra context, only formatted on failure: " << x;
//     CHECK_EQ(parse(...), 42) << "input=" << check::escape(input);
//   }
//   CHECK_MAIN()  // defines main(); `prog [substring]` runs the matching tests
//
// A failed check prints file:line, the expression (and both values for
// CHECK_EQ) and keeps going; main() returns 1 if any check failed. Output is
// capped at kMaxReported failures so a broken loop does not flood the log,
// but every failure is counted.
#pragma once

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace check {

inline constexpr int kMaxReported = 50;

struct State {
  int failures = 0;
  int checks = 0;
  const char* current_test = "";
};

inline State& state() {
  static State s;
  return s;
}

// Renders bytes as a C-like string literal body: printable ASCII as is,
// everything else escaped, so CR/LF/NUL are visible in failure messages.
inline std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c >= 0x20 && c < 0x7F) {
          out += static_cast<char>(c);
        } else {
          char hex[5];
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          out += hex;
        }
    }
  }
  return out;
}

template <class T>
std::string show(const T& v) {
  using U = std::decay_t<T>;
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return "\"" + escape(std::string_view(v)) + "\"";
  } else if constexpr (std::is_same_v<U, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<U, char> || std::is_same_v<U, signed char> ||
                       std::is_same_v<U, unsigned char>) {
    return std::to_string(static_cast<int>(v));
  } else {
    std::ostringstream os;
    os << v;
    return os.str();
  }
}

// Collects the message of one failed check and prints it when destroyed,
// so `CHECK(...) << a << b` can append context lazily.
class Failure {
 public:
  Failure(const char* file, int line, std::string what) {
    auto& st = state();
    ++st.failures;
    report_ = st.failures <= kMaxReported;
    if (report_) os_ << file << ":" << line << ": [" << st.current_test << "] FAILED: " << what;
  }
  ~Failure() {
    if (!report_) return;
    std::fprintf(stderr, "%s\n", os_.str().c_str());
    if (state().failures == kMaxReported) {
      std::fprintf(stderr, "(further failures are counted, not printed)\n");
    }
  }
  Failure(const Failure&) = delete;
  Failure& operator=(const Failure&) = delete;

  template <class T>
  Failure& operator<<(const T& v) {
    if (report_) os_ << v;
    return *this;
  }

 private:
  bool report_;
  std::ostringstream os_;
};

struct EqResult {
  bool ok;
  std::string message;
};

// Integers that std::cmp_equal accepts (not bool or character types).
template <class T>
inline constexpr bool kPlainInt =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> && !std::is_same_v<T, char8_t> &&
    !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t> && !std::is_same_v<T, wchar_t>;

template <class A, class B>
EqResult eq(const A& a, const B& b, const char* sa, const char* sb) {
  ++state().checks;
  bool ok;
  if constexpr (kPlainInt<A> && kPlainInt<B>) {
    ok = std::cmp_equal(a, b);  // no signed/unsigned surprises
  } else {
    ok = (a == b);
  }
  if (ok) return {true, {}};
  return {false, std::string(sa) + " == " + sb + "  (" + show(a) + " vs " + show(b) + ") "};
}

inline bool counted(bool ok) {
  ++state().checks;
  return ok;
}

struct TestCase {
  const char* name;
  void (*fn)();
};

inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

// Runs every registered test whose name contains argv[1] (all if absent).
inline int run_all(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  int ran = 0;
  for (const auto& t : registry()) {
    if (std::strstr(t.name, filter) == nullptr) continue;
    state().current_test = t.name;
    const int before = state().failures;
    t.fn();
    ++ran;
    std::fprintf(stderr, "%s %s\n", state().failures == before ? "[ ok ]" : "[FAIL]", t.name);
  }
  std::fprintf(stderr, "%d tests, %d checks, %d failures\n", ran, state().checks, state().failures);
  if (ran == 0) {
    std::fprintf(stderr, "no test matched \"%s\"\n", filter);
    return 1;
  }
  return state().failures == 0 ? 0 : 1;
}

}  // namespace check

// Each macro is a `for` statement whose body (the Failure temporary plus any
// appended `<< ...`) runs once if the check failed. Unlike the if/else form it
// is safe in an unbraced if/else and does not trip -Wdangling-else.
#define CHECK(cond)                                                               \
  for (bool check_ok_ = ::check::counted(!!(cond)); !check_ok_; check_ok_ = true) \
  ::check::Failure(__FILE__, __LINE__, "CHECK(" #cond ") ")

#define CHECK_EQ(a, b)                                                                                        \
  for (::check::EqResult check_eq_r_ = ::check::eq((a), (b), #a, #b); !check_eq_r_.ok; check_eq_r_.ok = true) \
  ::check::Failure(__FILE__, __LINE__, std::move(check_eq_r_.message))

#define TEST(name)                                                 \
  static void name();                                              \
  static const ::check::Registrar name##_registrar_(#name, &name); \
  static void name()

#define CHECK_MAIN()                     \
  int main(int argc, char** argv) {      \
    return ::check::run_all(argc, argv); \
  }
