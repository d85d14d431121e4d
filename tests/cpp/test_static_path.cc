// Tests for src/core/static_path.h: every escape spelling the decoder
// refuses, and the two resolvers (openat2 and the component walk) agreeing
// on a tree with symlinks that stay inside, lead out, are absolute or loop.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "check.h"
#include "core/static_path.h"

using fulmen::decode_static_path;
using fulmen::open_beneath;
using fulmen::Resolve;
using fulmen::StaticPathRules;

namespace {

struct Decoded {
  int status;
  std::string path;
  bool dir_form;
};

Decoded decode(std::string_view raw, bool dotfiles = false) {
  StaticPathRules rules;
  rules.dotfiles = dotfiles;
  Decoded d{};
  d.status = decode_static_path(raw, rules, &d.path, &d.dir_form);
  return d;
}

// A temporary tree: root/{a.txt, sub/b.txt, sub/up -> ../a.txt, in -> sub/b.txt,
// out -> ../secret, abs -> /etc/passwd, loop -> loop, dir -> sub, .hidden}, and
// root/../secret.
struct Tree {
  std::filesystem::path base, root;
  int root_fd = -1;
  Tree() {
    char tmpl[] = "/tmp/fulmen-static-path-XXXXXX";
    base = mkdtemp(tmpl);
    root = base / "root";
    std::filesystem::create_directories(root / "sub");
    std::ofstream(base / "secret") << "secret";
    std::ofstream(root / "a.txt") << "a";
    std::ofstream(root / "sub" / "b.txt") << "b";
    std::ofstream(root / ".hidden") << "h";
    std::filesystem::create_symlink("../a.txt", root / "sub" / "up");
    std::filesystem::create_symlink("sub/b.txt", root / "in");
    std::filesystem::create_symlink("../secret", root / "out");
    std::filesystem::create_symlink("/etc/passwd", root / "abs");
    std::filesystem::create_symlink("loop", root / "loop");
    std::filesystem::create_symlink("sub", root / "dir");
    std::filesystem::create_symlink("../../secret", root / "sub" / "deep_out");
    root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  ~Tree() {
    ::close(root_fd);
    std::filesystem::remove_all(base);
  }
  // What open_beneath gives in one mode: the content's first byte, or the error.
  std::string open(const std::string& rel, Resolve how, bool follow = false) const {
    int fd = open_beneath(root_fd, rel, follow, how);
    if (fd < 0) return "error " + std::to_string(-fd);
    struct stat st;
    fstat(fd, &st);
    char c = 0;
    std::string out = S_ISDIR(st.st_mode) ? "dir" : (::read(fd, &c, 1) == 1 ? std::string(1, c) : "empty");
    ::close(fd);
    return out;
  }
};

}  // namespace

TEST(plain_paths_decode) {
  CHECK_EQ(decode("/css/site.css").path, "css/site.css");
  CHECK(!decode("/css/site.css").dir_form);
  CHECK_EQ(decode("").status, 0);
  CHECK(decode("").dir_form);
  CHECK_EQ(decode("/").path, "");
  CHECK(decode("/").dir_form);
  CHECK_EQ(decode("/sub/").path, "sub");
  CHECK(decode("/sub/").dir_form);
  CHECK_EQ(decode("/a%20b.txt").path, "a b.txt");
  CHECK_EQ(decode("/%E6%97%A5.txt").path, "\xe6\x97\xa5.txt");
  CHECK_EQ(decode("/a..b").path, "a..b");  // Dots inside a name are fine.
  CHECK_EQ(decode("/a.").path, "a.");
}

TEST(every_escape_spelling_is_refused) {
  const char* refused[] = {
      "/..",
      "/../x",
      "/a/../../x",
      "/%2e%2e/x",
      "/%2E%2E/x",
      "/.%2e/x",
      "/%2e./x",
      "/a%2f..%2f..%2fx",
      "/a%2Fb",
      "/%2f",
      "/..%5cx",
      "/a\\b",
      "/a%5cb",
      "/%00",
      "/a%00.png",
      "/a\x01",
      "/%7f",
      "/%c0%ae%c0%ae/x",
      "/%c0%af",
      "/%e0%80%ae",
      "/%c1%9c",
      "/%ff",
      "/%ed%a0%80",
      "/%f4%90%80%80",
      "/%e6%97",
      "//etc/passwd",
      "/a//b",
      "/./a",
      "/a/.",
      "/a/./b",
      "/.hidden",
      "/%2ehidden",
      "/sub/.git/config",
      "x",
      "a/b",
  };
  for (const char* raw : refused) CHECK_EQ(decode(raw).status, 404) << check::escape(raw);
  const char* malformed[] = {"/%", "/%2", "/%zz", "/a%g0", "/a%"};
  for (const char* raw : malformed) CHECK_EQ(decode(raw).status, 400) << raw;
  // A name longer than NAME_MAX is no name.
  CHECK_EQ(decode("/" + std::string(256, 'a')).status, 404);
  CHECK_EQ(decode("/" + std::string(255, 'a')).status, 0);
}

TEST(dotfiles_when_allowed_but_never_dot_segments) {
  CHECK_EQ(decode("/.well-known/x", true).path, ".well-known/x");
  CHECK_EQ(decode("/..", true).status, 404);
  CHECK_EQ(decode("/%2e%2e/x", true).status, 404);
  CHECK_EQ(decode("/./x", true).status, 404);
}

TEST(resolvers_agree_and_stay_beneath) {
  Tree t;
  CHECK(t.root_fd >= 0);
  struct Case {
    const char* rel;
    std::string expected;
  } cases[] = {
      {"a.txt", "a"},
      {"sub/b.txt", "b"},
      {"in", "b"},
      {"sub/up", "a"},
      {"dir/b.txt", "b"},
      {"dir/up", "a"},
      {"", "dir"},
      {"sub", "dir"},
      {"out", "error 18"},
      {"abs", "error 18"},
      {"sub/deep_out", "error 18"},
      {"loop", "error 40"},
      {"missing", "error 2"},
      {"a.txt/x", "error 20"},
  };
  for (const auto& c : cases) {
    std::string walk = t.open(c.rel, Resolve::kWalk);
    CHECK_EQ(walk, c.expected) << "walk " << c.rel;
    std::string kernel = t.open(c.rel, Resolve::kOpenat2);
    if (kernel == "error 38") continue;  // No openat2 here: the walk is what runs.
    CHECK_EQ(kernel, c.expected) << "openat2 " << c.rel;
  }
}

TEST(follow_symlinks_follows_out) {
  Tree t;
  CHECK_EQ(t.open("out", Resolve::kAuto, true), "s");
  CHECK_EQ(t.open("sub/deep_out", Resolve::kAuto, true), "s");
  CHECK_EQ(t.open("abs", Resolve::kAuto, true).substr(0, 5) == "error" ? "" : "ok", "ok");
}

TEST(a_fifo_does_not_block_the_open) {
  Tree t;
  CHECK_EQ(mkfifo((t.root / "fifo").c_str(), 0600), 0);
  int fd = open_beneath(t.root_fd, "fifo", false, Resolve::kWalk);
  CHECK(fd >= 0);  // Opened non-blocking; the caller's fstat refuses it.
  if (fd >= 0) ::close(fd);
}

CHECK_MAIN()
