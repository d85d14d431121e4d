#include "core/static_path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <vector>

namespace fulmen {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
// U+10FFFF. An overlong "/" or "." (%c0%af, %c0%ae) is how old servers were
// walked out of their roots; here it is simply not a name.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;  // A continuation byte first, 0xc0/0xc1 (overlong) or 0xf5+.
    }
    if (i + n >= s.size()) return false;  // Truncated sequence.
    for (size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

// Checks one decoded segment against the rules.
bool segment_ok(std::string_view seg, const StaticPathRules& rules) {
  if (seg.empty() || seg.size() > 255) return false;  // "//", or longer than NAME_MAX.
  if (seg == "." || seg == "..") return false;
  if (seg[0] == '.' && !rules.dotfiles) return false;
  return valid_utf8(seg);
}

// Closes the directories a walk holds open.
struct FdStack {
  std::vector<int> fds;
  ~FdStack() {
    for (int fd : fds) ::close(fd);
  }
};

constexpr int kOpenFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
constexpr int kMaxSymlinks = 40;  // As the kernel's own limit (ELOOP).

int open_openat2(int root_fd, const std::string& rel, bool follow_symlinks) {
  struct open_how how = {};
  how.flags = kOpenFlags;
  how.resolve = RESOLVE_NO_MAGICLINKS | (follow_symlinks ? 0 : RESOLVE_BENEATH);
  for (;;) {
    long fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a rename raced the lookup (RESOLVE_BENEATH retries are ours to do).
    if (errno == EINTR || errno == EAGAIN) continue;
    return -errno;
  }
}

// The walk: one component at a time, each opened O_PATH|O_NOFOLLOW relative
// to the directory above it, so no component is ever resolved by the kernel
// past what we checked. A symlink is read and its target's components are
// walked in its place: ".." pops a directory we descended into (refused at
// the root), an absolute target is refused, as RESOLVE_BENEATH does.
int open_walk(int root_fd, std::string_view rel) {
  std::deque<std::string> pending;
  auto push_front_components = [&pending](std::string_view path) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      if (end > start) parts.emplace_back(path.substr(start, end - start));
      start = end + 1;
    }
    pending.insert(pending.begin(), parts.begin(), parts.end());
  };
  push_front_components(rel);
  FdStack stack;
  int hops = 0;
  while (!pending.empty()) {
    std::string comp = std::move(pending.front());
    pending.pop_front();
    int top = stack.fds.empty() ? root_fd : stack.fds.back();
    if (comp == ".") continue;
    if (comp == "..") {
      if (stack.fds.empty()) return -EXDEV;
      ::close(stack.fds.back());
      stack.fds.pop_back();
      continue;
    }
    int fd = ::openat(top, comp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return -e;
    }
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(fd, "", target, sizeof target);
      int e = errno;
      ::close(fd);
      if (n < 0) return -e;
      if (static_cast<size_t>(n) == sizeof target) return -ENAMETOOLONG;
      if (++hops > kMaxSymlinks) return -ELOOP;
      if (n == 0) return -ENOENT;
      if (target[0] == '/') return -EXDEV;
      push_front_components(std::string_view(target, static_cast<size_t>(n)));
      continue;
    }
    if (!pending.empty()) {
      if (!S_ISDIR(st.st_mode)) {
        ::close(fd);
        return -ENOTDIR;
      }
      stack.fds.push_back(fd);
      continue;
    }
    // The last component: open it for reading. O_NOFOLLOW keeps a symlink
    // swapped in since the check from being followed.
    ::close(fd);
    int file = ::openat(top, comp.c_str(), kOpenFlags | O_NOFOLLOW);
    return file >= 0 ? file : -errno;
  }
  // Only "." components or a symlink to ".": the directory itself.
  int top = stack.fds.empty() ? root_fd : stack.fds.back();
  int file = ::openat(top, ".", kOpenFlags);
  return file >= 0 ? file : -errno;
}

std::atomic<bool> g_no_openat2{false};

}  // namespace

int decode_static_path(std::string_view raw, const StaticPathRules& rules, std::string* out, bool* dir_form) {
  out->clear();
  *dir_form = raw.empty() || raw.back() == '/';
  if (raw.empty()) return 0;
  if (raw[0] != '/') return 404;
  out->reserve(raw.size());
  size_t seg_start = 0;  // Start of the current segment in *out.
  size_t i = 1;
  while (i < raw.size()) {
    auto c = static_cast<unsigned char>(raw[i]);
    if (c == '/') {
      if (!segment_ok(std::string_view(*out).substr(seg_start), rules)) return 404;
      if (++i == raw.size()) break;  // The trailing '/' of the directory form.
      out->push_back('/');
      seg_start = out->size();
      continue;
    }
    if (c == '%') {
      if (i + 2 >= raw.size()) return 400;
      int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return 400;
      c = static_cast<unsigned char>(hi * 16 + lo);
      // An encoded separator would be one name here and two in the kernel:
      // never a name.
      if (c == '/') return 404;
      i += 3;
    } else {
      ++i;
    }
    if (c == '\\' || c < 0x20 || c == 0x7f) return 404;
    out->push_back(static_cast<char>(c));
  }
  if (!*dir_form && !segment_ok(std::string_view(*out).substr(seg_start), rules)) return 404;
  return 0;
}

int open_beneath(int root_fd, std::string_view rel, bool follow_symlinks, Resolve how) {
  std::string path(rel.empty() ? std::string_view(".") : rel);
  if (follow_symlinks) {
    // The decoded path cannot climb out (no "..", not absolute); symlinks
    // may, by the administrator's choice.
    int fd = ::openat(root_fd, path.c_str(), kOpenFlags);
    return fd >= 0 ? fd : -errno;
  }
  if (how == Resolve::kWalk) return open_walk(root_fd, rel);
  if (how == Resolve::kAuto && g_no_openat2.load(std::memory_order_relaxed)) return open_walk(root_fd, rel);
  int fd = open_openat2(root_fd, path, false);
  if (fd == -ENOSYS || fd == -EPERM) {
    // No openat2 (Linux < 5.6), or a seccomp filter that refuses it.
    if (how == Resolve::kOpenat2) return fd;
    g_no_openat2.store(true, std::memory_order_relaxed);
    return open_walk(root_fd, rel);
  }
  return fd;
}

}  // namespace fulmen
