/* The floor: a single-threaded epoll loop that answers every request with a
 * fixed 13-byte response, without parsing HTTP. It only counts the blank
 * lines ("\r\n\r\n") that end request heads, so that pipelined requests get
 * one response each. Requests with a body are not supported (the benchmark
 * sends it GETs only).
 *
 *   cc -O2 -o epoll_responder epoll_responder.c
 *   ./epoll_responder PORT [close]
 *
 * With "close" every response says "Connection: close" and the connection is
 * closed after it (the benchmark's Connection: close scenario). Responses are
 * assumed to fit the socket's send buffer; a short write closes the
 * connection. Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char KEEP[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static const char CLOSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
    "Hello, World!";

enum { MAX_BATCH = 256, READ_SIZE = 65536 };

static unsigned char *matched; /* per fd: how much of "\r\n\r\n" the last read ended in */

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [close]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int close_mode = argc > 2 && strcmp(argv[2], "close") == 0;
  const char *resp = close_mode ? CLOSE : KEEP;
  size_t resp_len = close_mode ? sizeof CLOSE - 1 : sizeof KEEP - 1;
  signal(SIGPIPE, SIG_IGN);

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  matched = calloc(rl.rlim_cur, 1);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 4096) != 0) {
    perror("bind/listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);

  static char buf[READ_SIZE];
  static char out[READ_SIZE / 4 * sizeof KEEP];
  struct epoll_event events[MAX_BATCH];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_BATCH, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break; /* EAGAIN, or EMFILE: retried on the next wakeup */
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          matched[c] = 0;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        drop(ep, fd);
        continue;
      }
      /* Count request ends: "\r\n\r\n", possibly split across reads. */
      unsigned m = matched[fd], requests = 0;
      for (ssize_t k = 0; k < got; k++) {
        char ch = buf[k];
        if (ch == ((m & 1) ? '\n' : '\r')) {
          if (++m == 4) {
            requests++;
            m = 0;
          }
        } else {
          m = ch == '\r' ? 1 : 0;
        }
      }
      matched[fd] = (unsigned char)m;
      if (requests == 0) continue;
      if (close_mode) requests = 1;
      size_t len = 0;
      for (unsigned r = 0; r < requests && len + resp_len <= sizeof out; r++, len += resp_len)
        memcpy(out + len, resp, resp_len);
      if (write(fd, out, len) != (ssize_t)len || close_mode) drop(ep, fd);
    }
  }
}
