/*
 * src/conn alone: built from its own sources (and the gear API's
 * conn_api.c, for a gear that echoes), with no server at all. A fake
 * conn_host answers requests; a conn_worker and a conn_node are set up by
 * hand, as src/server's worker does. The client's end of a socketpair
 * feeds bytes one at a time. What it shows is the seam: what a request
 * means, the end of a session and shedding are asked of the host, and the
 * budget counts every buffer a client makes the node hold.
 */
#include "common/log.h"
#include "config/config.h"
#include "conn/conn.h"
#include "http/websocket.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a gear that echoes, and records its end ---- */

static struct {
    int requests, bodies_asked, sessions_ended, sheds, terminated;
    char path[64];
    orr_reason_kind why;
} seen;

static int g_message(orr_conn *c, void **state, int opcode, const uint8_t *data, size_t len) {
    (void)state;
    return opcode == ORR_WS_OP_TEXT ? orr_conn_send_text(c, data, len)
                                    : orr_conn_send_binary(c, data, len);
}

static void g_terminate(orr_conn *c, void *state, const orr_reason *r) {
    (void)c;
    (void)state;
    seen.terminated++;
    seen.why = r->kind;
}

static const orr_ws_callbacks g_callbacks = {.on_client_message = g_message,
                                             .terminate = g_terminate};
static atomic_uint_fast64_t g_slow_closes;
static const conn_route g_route = {.callbacks = &g_callbacks,
                                   .gear = "g",
                                   .pool = "gear:g",
                                   .pool_len = 6,
                                   .pool_idx = 1,
                                   .slow_closes = &g_slow_closes};

/* ---- the host: GET /ws upgrades, GET /hello is 200, a body needs "Auth" ---- */

static bool h_request(conn_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                      size_t body_len) {
    seen.requests++;
    snprintf(seen.path, sizeof seen.path, "%.*s", (int)req->path.n, req->path.p);
    if (req->path.n == 3 && memcmp(req->path.p, "/ws", 3) == 0) {
        orr_span key;
        cr_assert_eq(orr_ws_upgrade_check(req, &key), 0);
        http_switch_protocols(w, c, key, NULL, NULL);
        c->route = &g_route;
        ws_start(w, c, NULL, NULL);
        return true;
    }
    http_respond_simple(w, c, 200, NULL, "text/plain", body ? (const char *)body : "hi\n",
                        body ? body_len : 3, req->keep_alive);
    return false;
}

static bool h_body_wanted(conn_worker *w, const orr_http_request *req, int *status) {
    (void)w;
    seen.bodies_asked++;
    if (orr_http_header_get(req, "auth")) return true;
    *status = 401;
    return false;
}

static void h_session_ended(conn_worker *w, orr_conn *c) {
    (void)w;
    (void)c;
    seen.sessions_ended++;
}

static void h_shed(conn_worker *w, bool force) {
    (void)w;
    (void)force;
    seen.sheds++;
}

static const conn_host host = {.request = h_request,
                               .body_wanted = h_body_wanted,
                               .session_ended = h_session_ended,
                               .shed = h_shed};

/* ---- one worker's state, on this thread ---- */

static orr_config cfg;
static conn_node node;
static orr_loop loop;
static conn_worker cw;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("ORR_TEST_LOG")) orr_log_set_level(ORR_LOG_ERROR);
    memset(&seen, 0, sizeof seen);
    orr_config_defaults(&cfg);
    cfg.max_pools = 4;
    memset(&node, 0, sizeof node);
    node.cfg = &cfg;
    node.host = &host;
    atomic_init(&node.max_outbound_bytes, cfg.max_outbound_bytes);
    atomic_init(&node.max_buffered_bytes, (size_t)cfg.max_buffered_bytes);
    memset(&loop, 0, sizeof loop);
    cr_assert_eq(orr_loop_init(&loop), 0);
    memset(&cw, 0, sizeof cw);
    cw.node = &node;
    cw.loop = &loop;
    conn_worker_init(&cw);
}

static void teardown(void) {
    for (size_t i = 0; i < cw.n_zombies; i++)
        free(cw.zombies[i]);
    conn_worker_free(&cw);
    orr_loop_destroy(&loop);
    orr_config_free(&cfg);
}

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 30);

typedef struct peer {
    int fd; /* the client's end */
    orr_conn *c;
} peer;

static peer open_peer(void) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    peer p = {.fd = sv[0], .c = calloc(1, sizeof(orr_conn))};
    struct sockaddr sa = {.sa_family = AF_UNIX};
    conn_init(&cw, p.c, 1, sv[1], &sa);
    cr_assert_eq(orr_loop_add(&loop, sv[1], EPOLLIN, p.c), 0);
    conn_list_move(&cw, p.c, LIST_HTTP);
    return p;
}

/* Each byte reaches the connection in a read of its own. */
static void send_bytewise(peer *p, const void *data, size_t n) {
    const uint8_t *b = data;
    for (size_t i = 0; i < n && p->c->phase != PHASE_DEAD; i++) {
        cr_assert_eq(write(p->fd, b + i, 1), 1);
        conn_on_readable(&cw, p->c);
    }
}

static void send_all(peer *p, const void *data, size_t n) {
    cr_assert_eq(write(p->fd, data, n), (ssize_t)n);
    conn_on_readable(&cw, p->c);
}

/* What the server wrote so far (NUL-terminated; at most cap - 1 bytes). */
static size_t received(peer *p, uint8_t *out, size_t cap) {
    size_t got = 0;
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    while (got < cap - 1 && poll(&pf, 1, 50) == 1) {
        ssize_t r = read(p->fd, out + got, cap - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    out[got] = 0;
    return got;
}

static void close_peer(peer *p) {
    if (p->c->phase != PHASE_DEAD) conn_close_now(&cw, p->c);
    close(p->fd);
}

/* A masked client frame (mask 0x01020304) into out: its length. */
static size_t client_frame(uint8_t *out, uint8_t opcode, const void *payload, size_t n) {
    static const uint8_t mask[4] = {1, 2, 3, 4};
    size_t h = orr_ws_header(out, opcode, true, n, mask);
    for (size_t i = 0; i < n; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ mask[i % 4];
    return h + n;
}

static const char upgrade_req[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

static peer upgraded_peer(void) {
    peer p = open_peer();
    send_all(&p, upgrade_req, sizeof upgrade_req - 1);
    uint8_t buf[512];
    received(&p, buf, sizeof buf);
    cr_assert(strstr((char *)buf, "101 Switching Protocols"), "%s", buf);
    cr_assert(strstr((char *)buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    cr_assert_eq(p.c->phase, PHASE_WS);
    return p;
}

Test(conn, a_request_head_fed_bytewise_is_the_hosts_to_answer) {
    peer p = open_peer();
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    send_bytewise(&p, req, sizeof req - 1);
    cr_assert_eq(seen.requests, 1);
    cr_assert_str_eq(seen.path, "/hello");
    uint8_t buf[512];
    received(&p, buf, sizeof buf);
    cr_assert(strncmp((char *)buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_assert(strstr((char *)buf, "\r\n\r\nhi\n"));
    cr_assert_eq(p.c->phase, PHASE_HTTP, "keep-alive: ready for the next request");
    cr_assert_eq(p.c->in, NULL, "no buffer kept between requests");
    cr_assert_eq(budget_used(&node), 0);
    close_peer(&p);
}

Test(conn, a_body_is_read_only_when_the_host_wants_it) {
    peer p = open_peer();
    static const char refused[] = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    send_all(&p, refused, sizeof refused - 1);
    uint8_t buf[512];
    received(&p, buf, sizeof buf);
    cr_assert_eq(seen.bodies_asked, 1);
    cr_assert_eq(seen.requests, 0, "a refused body never reaches the request");
    cr_assert(strncmp((char *)buf, "HTTP/1.1 401 ", 13) == 0, "%s", buf);
    close_peer(&p);

    p = open_peer();
    static const char wanted[] =
        "POST /x HTTP/1.1\r\nHost: x\r\nAuth: 1\r\nContent-Length: 5\r\n\r\nhello";
    send_bytewise(&p, wanted, sizeof wanted - 1);
    received(&p, buf, sizeof buf);
    cr_assert_eq(seen.requests, 1);
    cr_assert(strstr((char *)buf, "\r\n\r\nhello"), "the body whole reached the host: %s", buf);
    cr_assert_eq(budget_used(&node), 0, "the body's buffer is given back");
    close_peer(&p);
}

Test(conn, frames_fed_bytewise_reach_the_gear_and_its_answer_goes_out) {
    peer p = upgraded_peer();
    uint8_t f[64];
    size_t n = client_frame(f, ORR_WS_OP_TEXT, "héllo", 6);
    send_bytewise(&p, f, n);
    uint8_t buf[64];
    size_t got = received(&p, buf, sizeof buf);
    cr_assert_eq(got, 8);
    cr_assert_eq(buf[0], 0x81);
    cr_assert_eq(buf[1], 6);
    cr_assert(memcmp(buf + 2, "héllo", 6) == 0);
    cr_assert_eq(p.c->frames_received, 1);
    cr_assert_eq(p.c->frames_sent, 1);
    cr_assert_eq(budget_used(&node), 0, "the split message's buffer is freed once delivered");
    close_peer(&p);
}

Test(conn, the_close_handshake_ends_the_session_once) {
    peer p = upgraded_peer();
    uint8_t f[16];
    size_t n = client_frame(f, ORR_WS_OP_CLOSE, "\x03\xe8", 2);
    send_all(&p, f, n);
    uint8_t buf[16];
    cr_assert_eq(received(&p, buf, sizeof buf), 4, "the close is answered");
    cr_assert_eq(buf[0], 0x88);
    cr_assert_eq(buf[2] << 8 | buf[3], 1000);
    cr_assert_eq(seen.terminated, 1);
    cr_assert_eq(seen.why, ORR_REASON_REMOTE);
    cr_assert_eq(seen.sessions_ended, 1, "the host forgets its names and slot");
    close_peer(&p);
    cr_assert_eq(seen.terminated, 1);
    cr_assert_eq(seen.sessions_ended, 1);
}

Test(conn, bad_utf8_closes_1007_and_a_message_past_the_budget_closes_1013) {
    peer p = upgraded_peer();
    uint8_t f[64];
    size_t n = client_frame(f, ORR_WS_OP_TEXT, "\xff", 1);
    send_all(&p, f, n);
    uint8_t buf[64];
    cr_assert_geq(received(&p, buf, sizeof buf), 4);
    cr_assert_eq(buf[0], 0x88);
    cr_assert_eq(buf[2] << 8 | buf[3], 1007);
    close_peer(&p);

    /* A budget of 100 KiB: a 90 KiB message cannot have its buffer. */
    atomic_store(&node.max_buffered_bytes, 100 * 1024);
    p = upgraded_peer();
    uint8_t hdr[14];
    static const uint8_t mask[4] = {1, 2, 3, 4};
    size_t h = orr_ws_header(hdr, ORR_WS_OP_BINARY, true, 90 * 1024, mask);
    send_all(&p, hdr, h);
    send_all(&p, "abcd", 4); /* the message is split across reads: it needs a buffer */
    cr_assert_geq(received(&p, buf, sizeof buf), 4);
    cr_assert_eq(buf[0], 0x88);
    cr_assert_eq(buf[2] << 8 | buf[3], 1013);
    cr_assert_eq(atomic_load(&node.budget_refused), 1);
    close_peer(&p);
    cr_assert_eq(budget_used(&node), 0);
}
