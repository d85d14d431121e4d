// The static file server of a worker (issue 11): the --static mount table,
// a small cache of open files with their fstat results and preformatted
// response heads, and the HTTP semantics of serving them (RFC 9110:
// conditional requests, ranges, HEAD, 405, precompressed siblings).
//
// A request whose path falls under a mount is answered here, by the core,
// and never reaches the Handler (Connection::process asks handles() first).
// The object belongs to one worker and is used from its loop thread only.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/mime_types.h"
#include "core/monotonic_clock.h"
#include "core/parser.h"
#include "core/static_path.h"

namespace fulmen {

class Connection;

struct StaticMount {
  std::string prefix;  // "/static": starts with '/', no trailing '/' (except "/" itself), no '%'.
  std::string dir;     // The directory served under it.
};

struct StaticConfig {
  std::vector<StaticMount> mounts;
  std::vector<std::pair<std::string, std::string>> mime;  // Extension -> type, over the built-in table.
  int64_t max_age = -1;                                   // Cache-Control: max-age=N; < 0: no Cache-Control header.
  bool immutable = false;        // Hashed file names get a year and `immutable` (see is_hashed_name).
  bool follow_symlinks = false;  // Follow symlinks that lead out of the directory.
  bool dotfiles = false;         // Serve names starting with '.'.
  std::string index;             // File served for a directory ("index.html"); empty: directories are 404.
};

// True for a file name that carries a content hash: a '.'- or '-'-delimited
// run of at least 8 hex digits, with at least one digit, before the
// extension ("app.3f2a9c1b.css", "main-8d7a6f5e4c.js", Django's
// "site.0123456789ab.css").
bool is_hashed_name(std::string_view name);

class StaticFiles {
 public:
  // Opens each mount's directory; a directory that cannot be opened is
  // logged and its mount answers 404. clock: the worker's, must outlive this.
  StaticFiles(const StaticConfig& config, const MonotonicClock& clock);
  ~StaticFiles();
  StaticFiles(const StaticFiles&) = delete;
  StaticFiles& operator=(const StaticFiles&) = delete;

  // Answers the request on c when its path falls under a mount and returns
  // true; the response is then complete (finish_response() was called).
  // Returns false, doing nothing, for any other path.
  bool serve(Connection& c, const RequestHead& head);

  // Drops cache entries unused for a while, closing their descriptors
  // (those still being sent close when their last send is done). Called by
  // the worker's once-a-second sweep.
  void sweep();

  // For tests: how many file descriptors the cache holds open.
  size_t open_descriptors() const { return handles_.size(); }

  // How long a cached fstat result is trusted before the path is resolved
  // and checked again (issue 11: "revalidated at most once a second").
  static constexpr uint64_t kRevalidateMs = 1000;
  // Unused entries that hold a descriptor are closed after this long.
  static constexpr uint64_t kIdleFdMs = 2000;
  // Unused entries without one (small files held in memory) after this long.
  static constexpr uint64_t kIdleMemoryMs = 30000;
  // Files up to this size are read into the entry and sent from memory in
  // the same write as the head; larger ones are sent with sendfile(2).
  static constexpr off_t kInlineMax = 16384;
  static constexpr size_t kMaxEntries = 1024;

 private:
  // An open descriptor shared by the cache entry and the queued sends of it:
  // closed when the last of them lets go.
  struct Handle {
    int fd = -1;
    int refs = 0;
    StaticFiles* owner = nullptr;
    std::list<Handle>::iterator self;
  };

  enum Coding : uint8_t { kIdentity = 0, kBrotli = 1, kGzip = 2 };

  // One representation of one file: the file itself, or its .br or .gz sibling.
  struct Entry {
    Handle* handle = nullptr;  // Large files; nullptr when body holds the content.
    std::string body;          // Small files' content.
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    struct timespec mtime = {}, ctime = {};
    bool directory = false;
    bool has_br = false, has_gz = false;  // Identity entries: a sibling exists.
    std::string etag;                     // With its quotes.
    std::string head;                     // Header lines of a 200/206 (no Content-Length).
    std::string head_304;                 // Header lines of a 304.
    uint64_t checked_ms = 0;
    uint64_t used_ms = 0;
  };

  struct Mount {
    std::string prefix;
    int dir_fd = -1;
  };

  static bool same_file(const Entry& e, const struct stat& st);
  static bool unchanged(const Entry& e);
  const Mount* match(std::string_view path, std::string_view* rest) const;
  // The entry for rel under mount m in coding `coding` (rel names the file
  // itself; the sibling's suffix is added here), opened or revalidated as
  // needed; nullptr when there is no such file (or it may not be served).
  Entry* lookup(size_t mount, const std::string& rel, Coding coding, uint64_t now);
  bool load(int fd, const struct stat& st, Entry* e);
  void format_heads(const std::string& rel, Coding coding, Entry* e) const;
  void drop(std::unordered_map<std::string, std::unique_ptr<Entry>>::iterator it);
  Handle* adopt_fd(int fd);
  void unref(Handle* h);
  static void on_sent(void* ctx);

  void respond(Connection& c, const RequestHead& head, Entry& e);

  StaticConfig config_;
  const MonotonicClock& clock_;
  MimeTypes mime_;
  StaticPathRules rules_;
  std::vector<Mount> mounts_;  // Longest prefix first.
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  std::list<Handle> handles_;
  std::string scratch_;  // The decoded path of the request being served.
};

}  // namespace fulmen
