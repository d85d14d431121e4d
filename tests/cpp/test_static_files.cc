// Tests for src/core/static_files.h through a real worker and a socketpair,
// with a clock the test moves: answers never reach the handler, the cache
// revalidates after kRevalidateMs (not before), idle descriptors close, and a
// descriptor being sent outlives its cache entry.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "check.h"
#include "core/connection.h"
#include "core/static_files.h"
#include "core/worker.h"

using fulmen::is_hashed_name;
using fulmen::StaticFiles;

namespace {

class ManualClock final : public fulmen::MonotonicClock {
 public:
  uint64_t now_ms() const override { return now_; }
  void advance(uint64_t ms) { now_ += ms; }

 private:
  uint64_t now_ = 1000000;
};

class Handler final : public fulmen::Handler {
 public:
  int calls = 0;
  std::unique_ptr<fulmen::ResponseStream> handle(fulmen::Connection& c, const fulmen::RequestHead&) override {
    ++calls;
    c.start_response("200 OK", 200);
    c.end_headers(3);
    c.write_body("app", 3);
    c.finish_response();
    return nullptr;
  }
};

void write_file(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

struct Rig {
  std::filesystem::path dir;
  ManualClock clock;
  Handler handler;
  fulmen::WorkerConfig config;
  std::unique_ptr<fulmen::Worker> worker;
  int client = -1;

  Rig() {
    char tmpl[] = "/tmp/fulmen-static-files-XXXXXX";
    dir = mkdtemp(tmpl);
    write_file(dir / "small.txt", "hello, world\n");
    write_file(dir / "big.bin", std::string(200000, 'x'));
    config.static_files.mounts.push_back({"/s", dir.string()});
    worker = std::make_unique<fulmen::Worker>(config, std::vector<int>{}, handler, clock);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    sockaddr_storage peer{};
    peer.ss_family = AF_UNIX;
    worker->adopt(sv[0], 0, peer);
    client = sv[1];
  }
  ~Rig() {
    worker->close_all();
    for (int i = 0; i < 10; ++i) uv_run(worker->loop(), UV_RUN_NOWAIT);
    close(client);
    worker.reset();
    std::filesystem::remove_all(dir);
  }
  StaticFiles& files() const { return *worker->static_files(); }
  // Sends one request and returns everything answered, running the loop until the socket is dry.
  std::string ask(const std::string& target, const std::string& extra = "") const {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n";
    if (::send(client, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) std::abort();
    std::string out;
    char buf[65536];
    for (int idle = 0; idle < 3;) {
      uv_run(worker->loop(), UV_RUN_NOWAIT);
      ssize_t n = recv(client, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        idle = 0;
      } else {
        ++idle;
      }
    }
    return out;
  }
  static std::string body(const std::string& response) {
    size_t at = response.find("\r\n\r\n");
    return at == std::string::npos ? "" : response.substr(at + 4);
  }
};

}  // namespace

TEST(hashed_names) {
  CHECK(is_hashed_name("app.3f2a9c1b.css"));
  CHECK(is_hashed_name("js/main-8d7a6f5e4c.js"));
  CHECK(is_hashed_name("site.0123456789ab.css"));
  CHECK(!is_hashed_name("deadbeef.css"));      // The hash is part of a name, not all of it.
  CHECK(!is_hashed_name("app.deadbeef.css"));  // Hex letters only: a word, not a hash.
  CHECK(!is_hashed_name("app.3f2a9c1.css"));   // Seven digits.
  CHECK(!is_hashed_name("app-3f2a9c1bz.css"));
  CHECK(!is_hashed_name("app.css"));
  CHECK(!is_hashed_name("3f2a9c1b"));
}

TEST(static_answers_never_reach_the_handler) {
  Rig rig;
  std::string r = rig.ask("/s/small.txt");
  CHECK(r.starts_with("HTTP/1.1 200 OK\r\n")) << check::escape(r);
  CHECK_EQ(Rig::body(r), "hello, world\n");
  CHECK(rig.ask("/s/missing").starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(rig.ask("/s/../x").starts_with("HTTP/1.1 404"));
  CHECK_EQ(rig.handler.calls, 0);
  CHECK_EQ(Rig::body(rig.ask("/other")), "app");
  CHECK_EQ(rig.handler.calls, 1);
  std::string big = rig.ask("/s/big.bin");
  CHECK_EQ(Rig::body(big).size(), 200000u);
  CHECK(big.find("Content-Length: 200000\r\n") != std::string::npos);
}

TEST(revalidates_after_a_second_not_before) {
  Rig rig;
  CHECK_EQ(Rig::body(rig.ask("/s/small.txt")), "hello, world\n");
  write_file(rig.dir / "new.txt", "new content\n");
  std::filesystem::rename(rig.dir / "new.txt", rig.dir / "small.txt");
  rig.clock.advance(StaticFiles::kRevalidateMs - 1);
  CHECK_EQ(Rig::body(rig.ask("/s/small.txt")), "hello, world\n");  // Cached: no syscall yet.
  rig.clock.advance(1);
  CHECK_EQ(Rig::body(rig.ask("/s/small.txt")), "new content\n");
  std::filesystem::remove(rig.dir / "small.txt");
  rig.clock.advance(StaticFiles::kRevalidateMs);
  CHECK(rig.ask("/s/small.txt").starts_with("HTTP/1.1 404"));
}

TEST(large_files_keep_a_descriptor_until_idle) {
  Rig rig;
  CHECK_EQ(rig.files().open_descriptors(), 0u);
  rig.ask("/s/small.txt");
  CHECK_EQ(rig.files().open_descriptors(), 0u);  // Small files are held in memory.
  rig.ask("/s/big.bin");
  rig.ask("/s/big.bin");
  CHECK_EQ(rig.files().open_descriptors(), 1u);  // One descriptor, shared.
  rig.clock.advance(StaticFiles::kIdleFdMs - 1);
  rig.worker->sweep();
  CHECK_EQ(rig.files().open_descriptors(), 1u);
  rig.clock.advance(1);
  rig.worker->sweep();
  CHECK_EQ(rig.files().open_descriptors(), 0u);
}

TEST(a_file_rewritten_in_place_is_seen_at_once) {
  Rig rig;
  CHECK_EQ(Rig::body(rig.ask("/s/big.bin")).size(), 200000u);
  write_file(rig.dir / "big.bin", std::string(150000, 'y'));  // Same inode, new size.
  std::string r = rig.ask("/s/big.bin");
  CHECK(r.find("Content-Length: 150000\r\n") != std::string::npos) << check::escape(r.substr(0, 300));
  CHECK_EQ(Rig::body(r), std::string(150000, 'y'));
}

TEST(a_descriptor_in_flight_outlives_its_entry) {
  Rig rig;
  const size_t size = 4u << 20;  // More than a socketpair buffers.
  write_file(rig.dir / "huge.bin", std::string(size, 'z'));
  std::string req = "GET /s/huge.bin HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK_EQ(::send(rig.client, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  uv_run(rig.worker->loop(), UV_RUN_NOWAIT);  // Queued; the socket takes only part of it.
  rig.clock.advance(StaticFiles::kIdleFdMs);  // Well within the send timeout.
  rig.worker->sweep();                        // The entry is dropped, its descriptor still being sent.
  CHECK_EQ(rig.files().open_descriptors(), 1u);
  std::string out;
  char buf[65536];
  for (int i = 0; i < 100000 && Rig::body(out).size() < size; ++i) {
    uv_run(rig.worker->loop(), UV_RUN_NOWAIT);
    ssize_t n = recv(rig.client, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  CHECK_EQ(Rig::body(out).size(), size);
  uv_run(rig.worker->loop(), UV_RUN_NOWAIT);
  CHECK_EQ(rig.files().open_descriptors(), 0u);
}

CHECK_MAIN()
