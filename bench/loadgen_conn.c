/*
 * Opening a connection for orr-loadgen: a non-blocking connect, the upgrade
 * request with a fresh Sec-WebSocket-Key, and a check of the 101 response and
 * its Sec-WebSocket-Accept (RFC 6455 section 4.1). In fanout mode every
 * connection has a unique name in the query: m<index> for the members, pub
 * for the publisher; in xsend mode s<pair> for senders, r<pair> for
 * receivers (both after --name-prefix).
 */
#include "loadgen.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HS_MAX 4096

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int fail(struct lg_thread *t, struct lg_conn *c, const char *fmt, const char *detail) {
    if (!t->err[0]) {
        char what[200];
        snprintf(what, sizeof what, fmt, detail);
        snprintf(t->err, sizeof t->err, "connection %u: %s", c->gidx, what);
    }
    lg_conn_close(t, c);
    c->state = LG_S_FAILED;
    return -1;
}

int lg_conn_arm(struct lg_thread *t, struct lg_conn *c, int want_out) {
    if (c->out_armed == want_out) return 0;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    c->out_armed = (uint8_t)want_out;
    return epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

int lg_conn_start(struct lg_thread *t, struct lg_conn *c) {
    unsigned char raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = lg_rand64();
        memcpy(raw + i, &r, 8);
    }
    EVP_EncodeBlock((unsigned char *)c->key, raw, 16);

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return fail(t, c, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct sockaddr_in *to = &t->sh->addrs[c->port_idx];
    if (connect(c->fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS)
        return fail(t, c, "connect: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return fail(t, c, "epoll_ctl: %s", strerror(errno));
    c->out_armed = 1;
    c->state = LG_S_CONNECTING;
    return 0;
}

/* --tls: one client context for every thread (no verification: a bench). */
static SSL_CTX *tls_ctx;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_init(void) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
}

/* The TLS handshake, blocking (connections are set up before the load). */
static int tls_handshake(struct lg_thread *t, struct lg_conn *c) {
    pthread_once(&tls_once, tls_init);
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl) return fail(t, c, "SSL_new%s", "");
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, t->sh->o->host);
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    int r = SSL_connect(c->ssl);
    fcntl(c->fd, F_SETFL, fl);
    if (r != 1) return fail(t, c, "TLS handshake failed%s", "");
    return 0;
}

ssize_t lg_send(struct lg_conn *c, const void *p, size_t n) {
    if (!c->ssl) return send(c->fd, p, n, MSG_NOSIGNAL);
    size_t k = 0;
    if (SSL_write_ex(c->ssl, p, n, &k) == 1) return (ssize_t)k;
    int e = SSL_get_error(c->ssl, 0);
    errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE;
    return -1;
}

ssize_t lg_recv(struct lg_conn *c, void *p, size_t n) {
    if (!c->ssl) return recv(c->fd, p, n, 0);
    size_t k = 0;
    if (SSL_read_ex(c->ssl, p, n, &k) == 1) return (ssize_t)k;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : ECONNRESET;
    return -1;
}

static int send_request(struct lg_thread *t, struct lg_conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) return fail(t, c, "connect: %s", strerror(err));
    if (t->sh->o->tls && tls_handshake(t, c) < 0) return -1;
    const struct lg_opts *o = t->sh->o;
    char req[1024], name[128] = "";
    const char *sep = strchr(o->path, '?') ? "&" : "?";
    if (o->mode == LG_FANOUT) {
        if (c->gidx < (uint32_t)o->conns)
            snprintf(name, sizeof name, "%sname=%sm%u", sep, o->name_prefix, c->gidx);
        else
            snprintf(name, sizeof name, "%sname=%spub", sep, o->name_prefix);
    }
    if (o->mode == LG_XSEND)
        snprintf(name, sizeof name, "%sname=%s%c%u", sep, o->name_prefix, c->gidx & 1 ? 'r' : 's',
                 c->gidx / 2);
    int n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o->path, name, o->host, o->ports[c->port_idx], c->key,
                     o->deflate ? "Sec-WebSocket-Extensions: " LG_DEFLATE_OFFER "\r\n" : "");
    if (n >= (int)sizeof req) return fail(t, c, "request too long%s", "");
    if (lg_send(c, req, (size_t)n) != n) return fail(t, c, "write: %s", strerror(errno));
    if (lg_conn_arm(t, c, 0) < 0) return fail(t, c, "epoll_ctl: %s", strerror(errno));
    c->hs = malloc(HS_MAX);
    if (!c->hs) return fail(t, c, "out of memory%s", "");
    c->hs_len = 0;
    c->state = LG_S_UPGRADING;
    return 0;
}

/* The header value of `name` in a response head, or NULL; sets *vlen. */
static const char *header_value(const char *head, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nl) || line[nl] != ':') continue;
        const char *v = line + nl + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *e = strstr(v, "\r\n");
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *vlen = (size_t)(e - v);
        return v;
    }
    return NULL;
}

static int check_response(struct lg_thread *t, struct lg_conn *c) {
    if (strncmp(c->hs, "HTTP/1.1 101", 12)) {
        char *eol = strstr(c->hs, "\r\n");
        *eol = 0;
        return fail(t, c, "upgrade refused: %s", c->hs);
    }
    unsigned char digest[SHA_DIGEST_LENGTH];
    char in[64], want[32];
    snprintf(in, sizeof in, "%s%s", c->key, ws_guid);
    SHA1((const unsigned char *)in, strlen(in), digest);
    EVP_EncodeBlock((unsigned char *)want, digest, SHA_DIGEST_LENGTH);
    size_t vlen;
    const char *v = header_value(c->hs, "Sec-WebSocket-Accept", &vlen);
    if (!v) return fail(t, c, "101 without Sec-WebSocket-Accept%s", "");
    if (vlen != strlen(want) || memcmp(v, want, vlen))
        return fail(t, c, "wrong Sec-WebSocket-Accept (want %s)", want);
    if (t->sh->o->deflate) {
        /* The bench compares servers compressing: one that declines is an error. */
        v = header_value(c->hs, "Sec-WebSocket-Extensions", &vlen);
        if (!v || vlen < 18 || strncmp(v, "permessage-deflate", 18))
            return fail(t, c, "the server declined permessage-deflate%s", "");
        c->rx.z = 1;
    }
    return 0;
}

static int read_response(struct lg_thread *t, struct lg_conn *c) {
    ssize_t n = lg_recv(c, c->hs + c->hs_len, HS_MAX - 1 - c->hs_len);
    if (n < 0) return errno == EAGAIN ? 0 : fail(t, c, "read: %s", strerror(errno));
    if (n == 0) return fail(t, c, "closed during the handshake%s", "");
    c->hs_len += (uint32_t)n;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) return c->hs_len < HS_MAX - 1 ? 0 : fail(t, c, "response head too large%s", "");
    end[2] = 0; /* keep the last header's CRLF for header_value */
    if (check_response(t, c)) return -1;
    /* Frames right behind the 101 (a server may speak first). */
    size_t head = (size_t)(end + 4 - c->hs);
    if (c->hs_len > head && lg_rx_feed(&c->rx, (const uint8_t *)c->hs + head, c->hs_len - head) < 0)
        return fail(t, c, "bad frame right after the 101%s", "");
    free(c->hs);
    c->hs = NULL;
    c->state = LG_S_OPEN;
    return 1;
}

int lg_conn_progress(struct lg_thread *t, struct lg_conn *c, uint32_t events) {
    if (c->state == LG_S_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return 0;
        return send_request(t, c);
    }
    if (c->state == LG_S_UPGRADING && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return read_response(t, c);
    return 0;
}

void lg_conn_lost(struct lg_thread *t, struct lg_conn *c, const char *why) {
    if (!t->err[0]) snprintf(t->err, sizeof t->err, "connection %u: %s", c->gidx, why);
    t->errors++;
    lg_conn_close(t, c);
    c->state = LG_S_FAILED;
}

/* Closes with a reset: the runs open tens of thousands of connections, and
 * TIME_WAIT on the client side would only get in the way of the next run. */
void lg_conn_close(struct lg_thread *t, struct lg_conn *c) {
    (void)t;
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->fd);
        c->fd = -1;
    }
    free(c->hs);
    c->hs = NULL;
}
