// The path resolver of the static file server (issue 11): from the part of
// a request path below a mount to an open file that lies beneath the
// mount's directory, however the path is spelled.
//
// Two steps, both pure of any state beyond their arguments:
//  - decode_static_path() percent-decodes and checks the path: it refuses
//    every spelling that could name something outside the directory or that
//    a file name cannot be ("..", "%2e%2e", an encoded "/" or "\", a
//    backslash, NUL and other controls, invalid or overlong UTF-8, empty
//    segments from "//", and dotfiles unless allowed).
//  - open_beneath() opens the decoded path relative to the directory's
//    descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so the
//    kernel itself refuses a symlink that leads out; where the kernel lacks
//    openat2 it walks the components one openat(O_NOFOLLOW) at a time and
//    resolves symlinks itself under the same rule.
#pragma once

#include <string>
#include <string_view>

namespace fulmen {

struct StaticPathRules {
  bool dotfiles = false;  // Serve names that start with '.' (never "." or "..").
};

// Decodes `raw`, the request path after the mount prefix as received: empty
// or starting with '/', percent-encoded, without query. On success returns
// 0, writes the relative path ("css/site.css", no leading '/'; "" for the
// mount's root) to *out and sets *dir_form when raw ends with '/' (or is
// empty): the client named a directory. Returns 400 for a malformed
// percent-escape, 404 for a path refused by the rules above. *out is
// unspecified after an error.
int decode_static_path(std::string_view raw, const StaticPathRules& rules, std::string* out, bool* dir_form);

enum class Resolve {
  kAuto,     // openat2 where the kernel has it, else the walk.
  kOpenat2,  // openat2 only (-ENOSYS where missing); for tests.
  kWalk,     // The component walk only; for tests.
};

// Opens `rel` (a path decode_static_path produced: no "." or ".." segments,
// no empty ones, not absolute) below the directory root_fd, read-only,
// non-blocking and close-on-exec. Returns the new descriptor, which the
// caller owns, or -errno: -ENOENT, -ENOTDIR..., and -EXDEV or -ELOOP for a
// symlink that leads outside root_fd (absolute symlinks always do) or loops.
// With follow_symlinks every symlink is followed wherever it points, as
// nginx's default; the decoded path itself still cannot climb out. The
// caller checks what was opened (fstat): it may be a directory.
int open_beneath(int root_fd, std::string_view rel, bool follow_symlinks, Resolve how = Resolve::kAuto);

}  // namespace fulmen
