// libFuzzer target: the static file path resolver (src/core/static_path.h).
//
// The input's first byte picks the rules (dotfiles, follow symlinks); the
// rest is the raw request path below a mount. A fixed tree with symlinks
// that stay inside, lead out, are absolute or loop is built once in a
// temporary directory. For every input: what the decoder accepts holds no
// "." / ".." / empty segment, no NUL or backslash, and no leading '/'; and
// without follow_symlinks both resolvers (openat2 and the component walk)
// agree, and whatever they open lies inside the root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "core/static_path.h"

namespace {

struct Tree {
  std::filesystem::path base;
  int root_fd = -1;
  std::set<std::pair<dev_t, ino_t>> inside;  // Every file and directory under root.

  Tree() {
    char tmpl[] = "/tmp/fulmen-fuzz-static-XXXXXX";
    base = mkdtemp(tmpl);
    auto root = base / "root";
    std::filesystem::create_directories(root / "sub" / "deeper");
    std::ofstream(base / "secret") << "secret";
    std::ofstream(root / "a.txt") << "a";
    std::ofstream(root / ".hidden") << "h";
    std::ofstream(root / "sub" / "b.txt") << "b";
    std::ofstream(root / "sub" / "deeper" / "c.txt") << "c";
    std::filesystem::create_symlink("../a.txt", root / "sub" / "up");
    std::filesystem::create_symlink("../../secret", root / "sub" / "out2");
    std::filesystem::create_symlink("sub/b.txt", root / "in");
    std::filesystem::create_symlink("sub", root / "dir");
    std::filesystem::create_symlink("../secret", root / "out");
    std::filesystem::create_symlink("..", root / "parent");
    std::filesystem::create_symlink("/etc/passwd", root / "abs");
    std::filesystem::create_symlink("loop", root / "loop");
    std::filesystem::create_symlink("deeper/../../a.txt", root / "sub" / "zigzag");
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
      struct stat st;
      if (lstat(e.path().c_str(), &st) == 0) inside.insert({st.st_dev, st.st_ino});
    }
    struct stat st;
    lstat(root.c_str(), &st);
    inside.insert({st.st_dev, st.st_ino});
    root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) std::abort();
  }
  ~Tree() { std::filesystem::remove_all(base); }
};

Tree& tree() {
  static Tree t;
  return t;
}

// The opened object's identity, or none.
std::pair<bool, std::pair<dev_t, ino_t>> identify(int fd) {
  if (fd < 0) return {false, {}};
  struct stat st;
  if (fstat(fd, &st) != 0) std::abort();
  ::close(fd);
  return {true, {st.st_dev, st.st_ino}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Tree& t = tree();
  fulmen::StaticPathRules rules;
  rules.dotfiles = (data[0] & 1) != 0;
  bool follow = (data[0] & 2) != 0;
  std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string rel;
  bool dir_form = false;
  int r = fulmen::decode_static_path(raw, rules, &rel, &dir_form);
  if (r != 0) {
    if (r != 400 && r != 404) std::abort();
    return 0;
  }
  if (rel.size() > raw.size() || (!rel.empty() && (rel.front() == '/' || rel.back() == '/'))) std::abort();
  if (rel.find('\0') != std::string::npos || rel.find('\\') != std::string::npos) std::abort();
  if (rel.find("//") != std::string::npos) std::abort();
  std::string_view rest(rel);
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg.empty() || seg == "." || seg == ".." || (seg[0] == '.' && !rules.dotfiles)) std::abort();
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (follow) {
    // Symlinks may lead anywhere by choice; the path itself cannot climb.
    int fd = fulmen::open_beneath(t.root_fd, rel, true);
    if (fd >= 0) ::close(fd);
    return 0;
  }
  auto walk = identify(fulmen::open_beneath(t.root_fd, rel, false, fulmen::Resolve::kWalk));
  int kfd = fulmen::open_beneath(t.root_fd, rel, false, fulmen::Resolve::kOpenat2);
  if (kfd != -ENOSYS) {
    auto kernel = identify(kfd);
    if (kernel != walk) std::abort();  // The two resolvers must agree.
  }
  if (walk.first && t.inside.count(walk.second) == 0) std::abort();  // Out of the root.
  return 0;
}
