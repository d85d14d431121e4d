// Tests for src/core/access_log_format.h: gunicorn's atoms, written as
// gunicorn writes them (the end-to-end test compares with a real gunicorn).
#include <cstdlib>
#include <string>
#include <vector>

#include "check.h"
#include "core/access_log_format.h"

using fulmen::AccessLogFormat;
using fulmen::AccessLogRecord;
using fulmen::Header;

namespace {

std::string line(std::string_view spec, const AccessLogRecord& r) {
  std::string error;
  auto f = AccessLogFormat::compile(spec, &error);
  CHECK(f.has_value()) << error;
  std::string out;
  if (f) f->format(r, out);
  return out;
}

struct Fixture {
  std::vector<Header> headers = {
      {"Host", "example.com"},  {"User-Agent", "curl/8.0 \"quoted\""},
      {"Referer", "http://a/"}, {"X-Twice", "one"},
      {"x-twice", "two"},       {"Authorization", "Basic YWxpY2U6c2VjcmV0"}};  // alice:secret
  AccessLogRecord record() const {
    AccessLogRecord r;
    r.remote = "192.0.2.7";
    r.method = "GET";
    r.target = "/a%20b?x=1";
    r.path_info = "/a b";
    r.query = "x=1";
    r.protocol = "HTTP/1.1";
    r.status = 200;
    r.sent = 13;
    r.request_headers = headers;
    r.response_head = "Content-Type: text/plain\r\nContent-Length: 13\r\n";
    r.duration_us = 1234567;
    r.now = 1764648000;  // 2025-12-02 04:00:00 UTC
    r.pid = 4242;
    return r;
  }
};

}  // namespace

TEST(default_format_is_gunicorns) {
  setenv("TZ", "UTC", 1);
  tzset();
  Fixture fx;
  CHECK_EQ(line(AccessLogFormat::kDefault, fx.record()),
           "192.0.2.7 - alice [02/Dec/2025:04:00:00 +0000] \"GET /a%20b?x=1 HTTP/1.1\" 200 13 \"http://a/\" "
           "\"curl/8.0 \\\"quoted\\\"\"\n");
}

TEST(every_atom) {
  setenv("TZ", "UTC", 1);
  tzset();
  Fixture fx;
  CHECK_EQ(line("%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%(l)s", fx.record()),
           "GET|/a b|x=1|HTTP/1.1|200|13|13|1|1234567|1234|1.234567|<4242>|-\n");
  CHECK_EQ(line("%(h)s %(zz)s %%(h)s 100%%", fx.record()), "192.0.2.7 - %(h)s 100%\n");
}

TEST(header_and_environ_atoms) {
  Fixture fx;
  AccessLogRecord r = fx.record();
  std::string error;
  auto f = AccessLogFormat::compile(
      "%({x-twice}i)s %({HOST}i)s %({missing}i)s %({content-length}o)s "
      "%({x}o)s %({remote_user}e)s %({Script_Name}e)s %({remote_user}e)s",
      &error);
  CHECK(f.has_value()) << error;
  CHECK(f->uses_response_headers());
  CHECK_EQ(f->environ_keys().size(), 2u);
  CHECK_EQ(f->environ_keys()[0], "remote_user");
  CHECK_EQ(f->environ_keys()[1], "script_name");
  std::vector<std::optional<std::string_view>> env = {std::nullopt, "/app"};
  r.environ = env;
  std::string out;
  f->format(r, out);
  CHECK_EQ(out, "two example.com - 13 - - /app -\n");
}

TEST(values_cannot_forge_lines_and_latin1_is_written_as_utf8) {
  Fixture fx;
  AccessLogRecord r = fx.record();
  r.path_info = "/a\nb\x01\xe9";
  CHECK_EQ(line("%(U)s", r), "/a\\x0ab\\x01\xc3\xa9\n");
}

TEST(user_is_dash_unless_basic_auth_decodes) {
  Fixture fx;
  const char* bad[] = {"Bearer abc", "Basic", "Basic YWxpY2U", "Basic //79"};  // no user / bad padding / not UTF-8
  for (const char* value : bad) {
    std::vector<Header> h = {{"Authorization", value}};
    AccessLogRecord r = fx.record();
    r.request_headers = h;
    CHECK_EQ(line("%(u)s", r), "-\n") << value;
  }
  std::vector<Header> h = {{"authorization", "basic Ym9iOnB3"}};  // bob:pw, any case
  AccessLogRecord r = fx.record();
  r.request_headers = h;
  CHECK_EQ(line("%(u)s", r), "bob\n");
}

TEST(no_response_and_bad_specs) {
  Fixture fx;
  AccessLogRecord r = fx.record();
  r.sent.reset();
  std::vector<Header> none;
  r.request_headers = none;
  CHECK_EQ(line("%(b)s %(B)s %(f)s %(a)s", r), "- - - -\n");
  std::string error;
  CHECK(!AccessLogFormat::compile("%(h)d", &error));
  CHECK(!error.empty());
  CHECK(!AccessLogFormat::compile("50% off", &error));
  CHECK(!AccessLogFormat::compile("%(h", &error));
}

CHECK_MAIN()
