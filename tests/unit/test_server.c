/*
 * The server layer without its threads: a real orr_server and one worker,
 * driven on the test's own thread, with a real TCP client on loopback.
 * Covers what integration tests see only from outside: callback-failure
 * semantics (the frames a failing callback queued are dropped, an empty
 * close goes out, terminate gets ERROR and the state from before), output
 * and backpressure (the cork, the backlog, EPOLLOUT, the slow-consumer cut
 * at a frame boundary), and pool accounting (max_pools, slots, reuse).
 */
#include "common/clock.h"
#include "common/log.h"
#include "config/config.h"
#include "conn/conn.h"
#include "server/internal.h"
#include "server/worker.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a gear that records what happens to it ---- */

static struct {
    int inits, terminated;
    orr_reason_kind why;
    void *state_at_terminate;
} seen;

static int t_init(orr_conn *c, void **state) {
    (void)c;
    seen.inits++;
    *state = (void *)0x1;
    return 0;
}

/* "fail": queues a frame, stores a new state, fails. "big<N>": N bytes,
 * binary. Anything else: echoed. */
static int t_message(orr_conn *c, void **state, int opcode, const uint8_t *data, size_t len) {
    (void)opcode;
    if (len == 4 && memcmp(data, "fail", 4) == 0) {
        orr_conn_send_text(c, "partial", 7);
        *state = (void *)0x2;
        return ORR_EFAIL;
    }
    if (len > 3 && memcmp(data, "big", 3) == 0) {
        char num[24] = "";
        memcpy(num, data + 3, len - 3 < sizeof num - 1 ? len - 3 : sizeof num - 1);
        size_t n = (size_t)strtoul(num, NULL, 10);
        uint8_t *b = malloc(n);
        memset(b, 'x', n);
        int rc = orr_conn_send_binary(c, b, n);
        free(b);
        return rc;
    }
    return orr_conn_send_text(c, data, len);
}

static void t_terminate(orr_conn *c, void *state, const orr_reason *r) {
    (void)c;
    seen.terminated++;
    seen.why = r->kind;
    seen.state_at_terminate = state;
}

static const orr_ws_callbacks t_callbacks = {
    .init = t_init, .on_client_message = t_message, .terminate = t_terminate};
static const orr_ws_route t_routes[] = {{"/ws", &t_callbacks}};
static const orr_gear t_gear = {
    .api_version = ORR_GEAR_API_VERSION, .name = "t", .ws_routes = t_routes, .n_ws_routes = 1};

/* ---- one server, one worker, on this thread ---- */

static orr_server *srv;
static orr_worker *w;
static uint16_t port;

static int listener(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    port = ntohs(a.sin_port);
    return fd;
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("ORR_TEST_LOG")) orr_log_set_level(ORR_LOG_ERROR);
    memset(&seen, 0, sizeof seen);
    orr_config cfg;
    orr_config_defaults(&cfg);
    cfg.workers = 1;
    cfg.max_pools = 4;
    static const orr_gear *const gears[] = {&t_gear};
    char err[256] = "";
    srv = orr_server_new(&cfg, gears, 1, err, sizeof err);
    orr_config_free(&cfg);
    cr_assert_not_null(srv, "%s", err);
    srv->workers = orr_xcalloc(1, sizeof *srv->workers);
    cr_assert_eq(orr_worker_init(&srv->workers[0], srv, 0, listener()), 0);
    srv->n_workers = 1;
    srv->backend = orr_local_backend_new(srv->registry);
    w = &srv->workers[0];
    w->loop.now_ms = orr_mono_ms();
}

static void teardown(void) {
    orr_server_free(srv);
    srv = NULL;
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 30);

/* A client connected to the worker's listener, and its connection on the worker. */
typedef struct client {
    int fd;
    orr_conn *c;
} client;

static client connect_client(int rcvbuf) {
    client k;
    k.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf) setsockopt(k.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(k.fd, (struct sockaddr *)&a, sizeof a), 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int sfd = -1;
    for (int i = 0; i < 100 && sfd < 0; i++) {
        sfd = accept4(w->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sfd < 0) usleep(1000);
    }
    cr_assert_geq(sfd, 0);
    k.c = worker_conn_new(w, sfd, (struct sockaddr *)&ss);
    cr_assert_not_null(k.c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = k.c};
    orr_loop_add(&w->loop, sfd, ev.events, k.c);
    conn_list_move(&w->cw, k.c, LIST_HTTP);
    return k;
}

/* The client's bytes reach the server, which handles them as its loop would. */
static void client_send(client *k, const void *p, size_t n) {
    cr_assert_eq(write(k->fd, p, n), (ssize_t)n);
    struct pollfd pf = {.fd = k->c->fd, .events = POLLIN};
    poll(&pf, 1, 1000);
    w->loop.now_ms = orr_mono_ms();
    conn_on_readable(&w->cw, k->c);
}

/* The worker's EPOLLOUT: it writes what waits as the socket takes it. */
static void server_writable(client *k) {
    if (k->c->phase != PHASE_DEAD && k->c->out_len > k->c->out_off) out_on_writable(&w->cw, k->c);
}

/* Exactly n bytes the server sent, within a second (the server writing
 * what waits whenever the client finds nothing to read). */
static void client_read(client *k, void *out, size_t n) {
    size_t got = 0;
    int64_t until = orr_mono_ms() + 1000;
    while (got < n) {
        struct pollfd pf = {.fd = k->fd, .events = POLLIN};
        if (poll(&pf, 1, 20) != 1) {
            cr_assert_lt(orr_mono_ms(), until, "only %zu of %zu bytes came", got, n);
            server_writable(k);
            continue;
        }
        ssize_t r = read(k->fd, (char *)out + got, n - got);
        cr_assert_gt(r, 0, "connection ended after %zu of %zu bytes", got, n);
        got += (size_t)r;
    }
}

/* One frame from the server: its opcode, payload length, and up to cap bytes of it. */
static int client_frame(client *k, uint8_t *payload, size_t cap, size_t *len) {
    uint8_t h[2];
    client_read(k, h, 2);
    cr_assert_eq(h[1] & 0x80, 0, "a server frame is never masked");
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        client_read(k, e, 2);
        n = (uint64_t)e[0] << 8 | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        client_read(k, e, 8);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | e[i];
    }
    *len = (size_t)n;
    for (uint64_t done = 0; done < n;) {
        uint8_t buf[65536];
        size_t take = n - done < sizeof buf ? (size_t)(n - done) : sizeof buf;
        client_read(k, buf, take);
        if (done < cap) memcpy(payload + done, buf, done + take <= cap ? take : cap - done);
        done += take;
    }
    return h[0] & 0x0f;
}

/* A masked text frame from the client. */
static void client_text(client *k, const char *s) {
    size_t n = strlen(s);
    cr_assert_lt(n, 126);
    uint8_t f[200] = {0x81, (uint8_t)(0x80 | n), 1, 2, 3, 4};
    for (size_t i = 0; i < n; i++)
        f[6 + i] = (uint8_t)s[i] ^ f[2 + i % 4];
    client_send(k, f, 6 + n);
}

static client upgraded_client(int rcvbuf) {
    client k = connect_client(rcvbuf);
    static const char req[] = "GET /t/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    client_send(&k, req, sizeof req - 1);
    char resp[129];
    client_read(&k, resp, 129); /* the 101 with its accept value: 129 bytes */
    cr_assert_eq(memcmp(resp, "HTTP/1.1 101 ", 13), 0, "%.*s", 40, resp);
    cr_assert_eq(k.c->phase, PHASE_WS);
    cr_assert_eq(seen.inits, 1);
    return k;
}

/* ---- callback-failure semantics ---- */

Test(server, an_echo_goes_out_in_one_frame) {
    client k = upgraded_client(0);
    client_text(&k, "hello");
    uint8_t p[16];
    size_t n;
    cr_expect_eq(client_frame(&k, p, sizeof p, &n), ORR_WS_OP_TEXT);
    cr_expect_eq(n, 5);
    cr_expect_eq(memcmp(p, "hello", 5), 0);
    cr_expect_eq(k.c->frames_received, 1);
    cr_expect_eq(k.c->frames_sent, 1);
    close(k.fd);
}

Test(server, a_failing_callback_drops_its_frames_and_closes_empty) {
    client k = upgraded_client(0);
    client_text(&k, "fail");
    uint8_t p[16];
    size_t n;
    /* Not "partial": the first frame is the close, with an empty payload. */
    cr_expect_eq(client_frame(&k, p, sizeof p, &n), ORR_WS_OP_CLOSE);
    cr_expect_eq(n, 0);
    cr_expect_eq(k.c->phase, PHASE_CLOSING);
    cr_expect_eq(seen.terminated, 1);
    cr_expect_eq(seen.why, ORR_REASON_ERROR);
    cr_expect_eq(seen.state_at_terminate, (void *)0x1, "the state from before the callback");
    /* Nothing more reaches the gear. */
    client_text(&k, "hello");
    cr_expect_eq(seen.terminated, 1, "terminate runs once");
    close(k.fd);
}

/* ---- output and backpressure ---- */

static size_t drain_client(client *k, size_t want) {
    size_t got = 0;
    char buf[65536];
    while (got < want) {
        struct pollfd pf = {.fd = k->fd, .events = POLLIN};
        if (poll(&pf, 1, 200) != 1) {
            /* The client read all it could: the server writes more. */
            server_writable(k);
            continue;
        }
        ssize_t r = read(k->fd, buf, sizeof buf);
        if (r <= 0) break;
        got += (size_t)r;
        server_writable(k);
    }
    return got;
}

Test(server, what_the_socket_does_not_take_waits_for_epollout) {
    client k = upgraded_client(4096);
    int small = 4096;
    setsockopt(k.c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    client_text(&k, "big400000");
    cr_assert_gt(out_pending(k.c), 0, "a 400 kB message fits no socket buffer this small");
    cr_expect(k.c->flags & CF_WANT_WRITE, "EPOLLOUT armed");
    cr_expect_not(k.c->flags & CF_READ_PAUSED, "still read: under max_outbound_bytes");
    /* The client reads; the server sends the rest as the socket takes it:
     * one frame, its header 10 bytes (a 64-bit length). */
    size_t want = 400000 + 10;
    cr_expect_eq(drain_client(&k, want), want);
    cr_expect_eq(out_pending(k.c), 0);
    cr_expect_not(k.c->flags & (CF_WANT_WRITE | CF_READ_PAUSED), "back to reading");
    cr_expect_eq(k.c->phase, PHASE_WS);
    close(k.fd);
}

Test(server, a_client_that_does_not_read_is_cut_at_a_frame_and_closed_1008) {
    client k = upgraded_client(4096);
    int small = 4096;
    setsockopt(k.c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    atomic_store(&srv->node.max_outbound_bytes, 100000);
    /* Each message alone fits the cap; together they pass it. */
    for (int i = 0; i < 4 && k.c->phase == PHASE_WS; i++)
        client_text(&k, "big60000");
    cr_expect_eq(k.c->phase, PHASE_CLOSING, "closed as a slow consumer");
    cr_expect_eq(seen.why, ORR_REASON_SLOW);
    cr_expect_eq(atomic_load(k.c->route->slow_closes), 1);
    /* What it gets: whole 60000-byte frames, then the close 1008. */
    for (;;) {
        uint8_t p[64];
        size_t n;
        int op = client_frame(&k, p, sizeof p, &n);
        if (op == ORR_WS_OP_CLOSE) {
            cr_expect_geq(n, 2);
            cr_expect_eq(p[0] << 8 | p[1], 1008);
            break;
        }
        cr_expect_eq(op, ORR_WS_OP_BINARY);
        cr_expect_eq(n, 60000, "a frame cut short");
    }
    close(k.fd);
}

/* ---- pool accounting ---- */

Test(server, pools_are_bounded_and_their_indexes_reused) {
    /* max_pools 4: the gear's own and three tenants. */
    orr_pool *a = pools_acquire(srv, "tenant:a", 8, true);
    orr_pool *b = pools_acquire(srv, "tenant:b", 8, true);
    orr_pool *c = pools_acquire(srv, "tenant:c", 8, true);
    cr_assert(a && b && c);
    cr_expect_null(pools_acquire(srv, "tenant:d", 8, true), "past max_pools");
    cr_expect_null(pools_acquire(srv, "tenant:e", 8, false), "not created without create");
    orr_pool *a2 = pools_acquire(srv, "tenant:a", 8, false);
    cr_expect_eq(a2, a, "the same pool, one more reference");
    pool_unref(a2);
    uint32_t idx = a->idx;
    pool_unref(a); /* its last reference: freed */
    cr_expect_null(pools_acquire(srv, "tenant:a", 8, false));
    orr_pool *d = pools_acquire(srv, "tenant:d", 8, true);
    cr_assert_not_null(d, "room again");
    cr_expect_eq(d->idx, idx, "the freed index is reused");
    pool_unref(b);
    pool_unref(c);
    pool_unref(d);
}

Test(server, a_pools_connection_slots) {
    orr_pool *p = pools_acquire(srv, "tenant:x", 8, true);
    cr_assert_not_null(p);
    atomic_store(&p->max, 2);
    cr_expect(pool_take(p));
    cr_expect(pool_take(p));
    cr_expect_not(pool_take(p), "at ws_max_connections");
    cr_expect_eq(atomic_load(&p->rejected), 1);
    cr_expect_eq(atomic_load(&p->conns), 2);
    pool_release(p);
    cr_expect(pool_take(p), "a slot given back is taken again");
    pool_release(p);
    pool_release(p);
    cr_expect_eq(atomic_load(&p->conns), 0);
    pool_unref(p);
}
