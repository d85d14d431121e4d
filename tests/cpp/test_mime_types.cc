// Tests for src/core/mime_types.h: the built-in table, case, additions.
#include "check.h"
#include "core/mime_types.h"

using fulmen::MimeTypes;

TEST(known_extensions) {
  MimeTypes m;
  CHECK_EQ(m.lookup("site.css"), "text/css; charset=utf-8");
  CHECK_EQ(m.lookup("a/b/app.js"), "text/javascript; charset=utf-8");
  CHECK_EQ(m.lookup("logo.svg"), "image/svg+xml");
  CHECK_EQ(m.lookup("font.woff2"), "font/woff2");
  CHECK_EQ(m.lookup("x.wasm"), "application/wasm");
}

TEST(case_and_last_extension) {
  MimeTypes m;
  CHECK_EQ(m.lookup("PHOTO.JPG"), "image/jpeg");
  CHECK_EQ(m.lookup("archive.tar.gz"), "application/gzip");
  CHECK_EQ(m.lookup("dir.css/file"), MimeTypes::kDefault);  // Only the last component counts.
}

TEST(unknown_is_octet_stream) {
  MimeTypes m;
  CHECK_EQ(m.lookup("README"), MimeTypes::kDefault);
  CHECK_EQ(m.lookup("file."), MimeTypes::kDefault);
  CHECK_EQ(m.lookup("x.averyveryverylongextension"), MimeTypes::kDefault);
  CHECK_EQ(m.lookup(""), MimeTypes::kDefault);
}

TEST(additions_override_and_are_validated) {
  MimeTypes m;
  CHECK(m.add("MD", "text/markdown"));
  CHECK_EQ(m.lookup("notes.md"), "text/markdown");
  CHECK(m.add("css", "text/x-css"));
  CHECK_EQ(m.lookup("a.css"), "text/x-css");
  CHECK(!m.add("", "a/b"));
  CHECK(!m.add("a.b", "a/b"));
  CHECK(!m.add("x", ""));
  CHECK(!m.add("x", "text/plain\r\nSet-Cookie: a"));
  CHECK_EQ(m.lookup("f.x"), MimeTypes::kDefault);
}

CHECK_MAIN()
