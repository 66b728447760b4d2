/*
 * echo_sink: the cheapest possible "echo" server, to measure what orr-loadgen
 * itself can send and receive (bench/README.md, "The generator's limits").
 * After the upgrade it never parses a frame, nor even copies it out of the
 * kernel: it counts the bytes a client sends, divides by the size of one
 * client frame of -s payload bytes, and answers with as many server frames,
 * written from a prebuilt buffer. With
 * -n it answers nothing (a pure sink).
 *
 * Build: cc -O2 -o echo_sink echo_sink.c -lcrypto
 * Run:   echo_sink -p PORT -s SIZE [-n]      (counters on stderr at SIGTERM/SIGINT)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_BUF (64 * 1024)

struct conn {
    int fd;
    int open;
    int out_armed;
    char hs[4096];
    size_t hs_len;
    uint64_t in_bytes;  /* frame bytes received since the upgrade */
    uint64_t out_bytes; /* frame bytes sent */
};

static volatile sig_atomic_t stop;
static size_t cframe, sframe, out_len;
static uint8_t *out_buf;
static int no_echo;
static uint64_t total_in, total_out;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void arm(int ep, struct conn *c, int out) {
    if (c->out_armed == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

static void drop(struct conn *c) {
    close(c->fd);
    free(c);
}

/* Writes what is owed: one server frame per whole client frame received. */
static int flush(int ep, struct conn *c) {
    uint64_t owed = (c->in_bytes / cframe) * sframe - c->out_bytes;
    while (owed) {
        size_t off = c->out_bytes % out_len;
        size_t n = out_len - off < owed ? out_len - off : (size_t)owed;
        ssize_t w = send(c->fd, out_buf + off, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            return -1;
        }
        c->out_bytes += (uint64_t)w;
        total_out += (uint64_t)w;
        owed -= (uint64_t)w;
        if ((size_t)w < n) break;
    }
    arm(ep, c, owed != 0);
    return 0;
}

static int upgrade(struct conn *c, const char *buf, size_t n, size_t *used) {
    size_t room = sizeof c->hs - 1 - c->hs_len;
    size_t take = n < room ? n : room;
    memcpy(c->hs + c->hs_len, buf, take);
    c->hs_len += take;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) return c->hs_len < sizeof c->hs - 1 ? 0 : -1;
    *used = take - (c->hs_len - (size_t)(end + 4 - c->hs));
    char *k = strcasestr(c->hs, "\r\nSec-WebSocket-Key:");
    if (!k) return -1;
    k += 20;
    while (*k == ' ')
        k++;
    char key[64];
    size_t kl = strcspn(k, " \r");
    if (kl > 40) return -1;
    snprintf(key, sizeof key, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, k);
    unsigned char d[SHA_DIGEST_LENGTH];
    char acc[32], resp[256];
    SHA1((unsigned char *)key, strlen(key), d);
    EVP_EncodeBlock((unsigned char *)acc, d, SHA_DIGEST_LENGTH);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                      acc);
    if (send(c->fd, resp, (size_t)rl, MSG_NOSIGNAL) != rl) return -1;
    c->open = 1;
    return 1;
}

static void on_readable(int ep, struct conn *c, uint8_t *buf, size_t cap) {
    /* After the upgrade the bytes are only counted: MSG_TRUNC discards them
     * in the kernel without copying them out. */
    ssize_t n = c->open ? recv(c->fd, NULL, 1 << 20, MSG_TRUNC) : recv(c->fd, buf, cap, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        drop(c);
        return;
    }
    size_t used = 0;
    if (!c->open) {
        int rc = upgrade(c, (char *)buf, (size_t)n, &used);
        if (rc < 0) {
            drop(c);
            return;
        }
        if (!rc) return;
    }
    c->in_bytes += (uint64_t)n - used;
    total_in += (uint64_t)n - used;
    if (!no_echo && flush(ep, c) < 0) drop(c);
}

int main(int argc, char **argv) {
    int port = 19109, opt;
    size_t size = 16;
    while ((opt = getopt(argc, argv, "p:s:n")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 's')
            size = (size_t)atol(optarg);
        else if (opt == 'n')
            no_echo = 1;
        else {
            fprintf(stderr, "usage: echo_sink -p PORT -s SIZE [-n]\n");
            return 2;
        }
    }
    size_t ext = size < 126 ? 0 : size < 65536 ? 2 : 8;
    cframe = 2 + ext + 4 + size;
    sframe = 2 + ext + size;
    out_len = (OUT_BUF / sframe ? OUT_BUF / sframe : 1) * sframe;
    out_buf = malloc(out_len);
    for (size_t f = 0; f < out_len / sframe; f++) {
        uint8_t *p = out_buf + f * sframe;
        p[0] = 0x81;
        if (!ext) {
            p[1] = (uint8_t)size;
        } else if (ext == 2) {
            p[1] = 126, p[2] = (uint8_t)(size >> 8), p[3] = (uint8_t)size;
        } else {
            p[1] = 127;
            for (int i = 0; i < 8; i++)
                p[2 + i] = (uint8_t)((uint64_t)size >> (56 - 8 * i));
        }
        for (size_t i = 0; i < size; i++)
            p[2 + ext + i] = (uint8_t)('a' + i % 26);
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
        perror("echo_sink: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    printf("echo_sink listening on 127.0.0.1:%d (%zu B frames%s)\n", port, size,
           no_echo ? ", no echo" : "");
    fflush(stdout);

    size_t cap = 256 * 1024;
    uint8_t *buf = malloc(cap);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (flush(ep, c) < 0) {
                    drop(c);
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(ep, c, buf, cap);
        }
    }
    fprintf(stderr, "rx %llu tx %llu\n", (unsigned long long)(total_in / cframe),
            (unsigned long long)(total_out / sframe));
    return 0;
}
