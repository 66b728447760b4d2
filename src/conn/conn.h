/*
 * src/conn: one client connection's life, the HTTP phase then the websocket
 * phase, and its output (the cork, the backlog, backpressure). The worker
 * (src/server/worker.c) hands it readiness and timeouts; gears are called
 * from ws_conn.c with their failure semantics; what a request means
 * (routing, pools, the push API, /metrics) is the server's answer, asked
 * through conn_host.
 *
 * What it works with, all declared here: struct orr_conn; conn_worker, the
 * per-thread state connections share (the cork, the receive buffer, the
 * timeout lists, the running callback's context), which the server's
 * worker embeds; conn_node, what every worker shares (limits, the memory
 * budget, the host); and conn_route, what an upgraded connection's route
 * gives it (its gear's callbacks and name, its pool).
 */
#ifndef ORR_CONN_CONN_H
#define ORR_CONN_CONN_H

#include "config/config.h"
#include "http/request.h"
#include "loop/loop.h"
#include "loop/tlist.h"
#include "tls/tls.h"
#include "ws/deflate.h"
#include "ws/frame.h"

#include <orrery/gear.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct conn_worker conn_worker;
typedef struct conn_node conn_node;
struct gear_host; /* src/gearapi's view of the node (gearapi/gearapi.h): carried, not used here */

/* Where a connection is in its life. */
enum conn_phase {
    PHASE_HTTP,    /* reading request heads (keep-alive between them) */
    PHASE_WS,      /* upgraded, open: gear callbacks run */
    PHASE_CLOSING, /* our close is sent or the session ended: waiting for the peer */
    PHASE_DEAD,    /* fd closed; freed at the end of the loop pass */
};

/* conn.flags */
enum {
    CF_CLOSE_SENT = 1 << 0,        /* a close frame is queued: nothing more goes out */
    CF_CLOSE_RECEIVED = 1 << 1,    /* the peer's close frame arrived */
    CF_CLOSE_AFTER_FLUSH = 1 << 2, /* close the TCP connection once output is written */
    CF_WANT_WRITE = 1 << 3,        /* EPOLLOUT is armed */
    CF_READ_PAUSED = 1 << 4,       /* EPOLLIN is off: too much output is waiting */
    CF_TERMINATED = 1 << 5,        /* terminate (or no gear at all) is done */
    CF_DRAIN_CLOSED = 1 << 6,      /* the drain already sent this one its 1001 */
    CF_HTTP_REQ_STARTED = 1 << 7,  /* bytes of a request head have arrived */
    CF_LINGER = 1 << 8,            /* our side is shut down: input is read and dropped until EOF */
    CF_SESSION = 1 << 9,           /* it was upgraded (logs DISCONNECTED at the end) */
    CF_REGISTRY =
        1 << 10, /* it took a name or joined a group: the registry forgets it at the end */
    CF_HTTP_BODY = 1 << 11, /* `in` holds a request head and its body, still arriving */
    CF_HTTP_WAIT = 1 << 12, /* a push request waits for the backend; `in` holds input after it */
    CF_TLS = 1 << 13,       /* reads and writes go through its TLS (conn_tls_of), not the socket */
    CF_TLS_HS = 1 << 14,    /* its TLS handshake is not done yet */
};

/* The peer's address in binary, formatted only when needed. */
typedef struct conn_addr {
    uint8_t family; /* AF_INET, AF_INET6, or 0 */
    uint8_t bytes[16];
} conn_addr;

/*
 * One client connection. Kept small, since idle upgraded connections are
 * what a websocket server holds most of: buffers are allocated only while
 * bytes are actually waiting (a partial head, a partial message, unsent
 * output) and freed as soon as they are not. Budget: 232 bytes, which glibc
 * serves from a 240-byte chunk; check with a sizeof before adding a field.
 */
struct orr_conn {
    orr_timed t; /* in one of the worker's timeout lists (list_id), since t.since_ms */
    conn_worker *w;
    uint64_t id; /* worker:8 | slot:24 | generation:32 */
    int fd;
    uint8_t phase;
    uint8_t reason;       /* orr_reason_kind once decided */
    uint8_t list_id;      /* which timeout list holds link */
    uint8_t deflate_bits; /* permessage-deflate: the server's window bits (9..15); 0: off */
    uint16_t flags;
    uint16_t remote_code; /* the peer's close code, for the REMOTE reason */
    uint32_t ctx_seq;     /* context id: <ctx_ms as time>_<worker>_<ctx_seq> */
    orr_ws_reader rd;
    const struct conn_route *route; /* gear and pool, once upgraded */
    void *state;
    void *assigns;
    /* Partial input: a request head, or a data message split across reads
     * (counted in the server's buffered bytes, by capacity). */
    uint8_t *in;
    uint32_t in_len, in_cap;
    union {
        uint32_t head_scanned; /* HTTP: bytes of `in` already searched for the head's end */
        uint32_t out_safe;     /* websocket, while `out` is not empty: a frame boundary at or
                                  after out_off; output up to it must be sent whole */
    };
    /* Output the socket did not take yet (counted like `in`). */
    uint32_t out_off, out_len, out_cap;
    uint8_t *out;
    struct conn_ctl *ctl; /* a split control frame, or a pong waiting for `out` to drain */
    int64_t ctx_ms;       /* wall-clock ms of the request that opened it */
    uint32_t frames_received, frames_sent;
    conn_addr addr; /* client IP (last X-Forwarded-For entry, else the peer) */
    /* Its sends to names a backend kept and has not answered yet
     * (ORR_OP_ROUTED_SEND): while there are any, its sends do not take the
     * direct path (gearapi/registry_api.c), which could overtake them. */
    uint16_t routed_out;
    uint32_t out_debt; /* pongs replaced unsent since `out` last drained: counted as
                          unsent output against max_outbound_bytes */
};

/* Control-frame state, allocated only while needed: a control frame's
 * payload split across reads, and the newest pong owed to a client whose
 * output is backed up (a newer ping replaces it, RFC 6455 5.5.3). */
typedef struct conn_ctl {
    uint8_t split[125];
    uint8_t split_len;
    uint8_t pong_len;
    bool split_open, pong;
    uint8_t pong_data[125];
} conn_ctl;

/* The worker's timeout lists: each has one fixed timeout, so FIFO order is
 * deadline order and a tick only looks at the heads. With ping_interval_ms
 * set, LIST_WS expires after it (the server pings) and the connection moves
 * to LIST_WS_PINGED with its clock kept, which expires at idle_timeout_ms
 * (close 1000); bytes arriving move it back to LIST_WS. Entries come to
 * LIST_WS_PINGED from LIST_WS's head, so it stays in deadline order too. */
enum { LIST_NONE, LIST_HTTP, LIST_WS, LIST_WS_PINGED, LIST_CLOSING, LIST_COUNT };
_Static_assert(LIST_COUNT <= ORR_TLISTS_MAX, "a worker's timeout lists fit loop/tlist.h");

/* A message for one or more connections: one refcounted copy, shared by
 * every worker that delivers it. The text frame's header is encoded once,
 * in the PAYLOAD_HDR_ROOM bytes before the payload (payload.c). */
#define PAYLOAD_HDR_ROOM 14
/* A payload compressed for one window size (permessage-deflate without
 * server context takeover: the same bytes suit every connection with that
 * window), its text frame header (RSV1) encoded once too. Made by the
 * first worker that sends it compressed, published on the payload with a
 * compare-and-swap, immutable after, freed with the payload. */
typedef struct payload_z {
    struct payload_z *next;
    uint32_t len;    /* compressed bytes */
    uint8_t bits;    /* the window's bits (9..15) */
    uint8_t hdr_len; /* the text frame header's length */
    uint8_t bytes[]; /* HDR_ROOM bytes (header at the end), then the compressed bytes */
} payload_z;
typedef struct orr_payload {
    atomic_uint refs;
    uint32_t len;
    bool utf8;              /* valid UTF-8: a gear may send it on as text unchecked */
    bool to_name;           /* sent to a Unique name: one its holder cannot take may be parked */
    uint8_t hdr_len;        /* the text frame header's length */
    uint16_t name_len;      /* to_name in a pool that parks: the name's length (payload_name) */
    _Atomic(payload_z *) z; /* its compressed forms, one per window size */
    uint8_t bytes[];        /* HDR_ROOM bytes (header at the end), then the payload */
} orr_payload;
/* A payload holding a copy of msg, with one reference for the caller. */
orr_payload *payload_new(const void *msg, size_t len);
/* The same for a message sent to `name` of the pool at pool_idx (to_name):
 * it keeps the name too, so that a holder that cannot take it any more
 * hands it back to that name (parking), whoever holds it by then. */
orr_payload *payload_new_to(const void *msg, size_t len, uint32_t pool_idx, const char *name,
                            size_t name_len);
/* A message sent to `name` of the pool at pool_idx: payload_new_to when
 * that pool parks (`parks`), else payload_new marked to_name. */
orr_payload *payload_to_name(const void *msg, size_t len, bool parks, uint32_t pool_idx,
                             const char *name, size_t name_len);
/* The name a payload was sent to, if it keeps one: its length (0: none). */
size_t payload_name(const orr_payload *m, uint32_t *pool_idx, const char **name);
/* Gives one back (any thread); m may be NULL. */
void payload_unref(orr_payload *m);

/* What an upgraded connection's route gives it: the server interns one per
 * (route, pool) and keeps it until the connection struct is freed. */
typedef struct conn_route {
    const orr_ws_callbacks *callbacks;
    const char *gear;                  /* its gear's name */
    const char *pool;                  /* its executor pool's name (NUL-terminated) */
    uint32_t pool_len;                 /* strlen(pool) */
    uint32_t pool_idx;                 /* the pool's index: registry tables, counters */
    atomic_uint_fast64_t *slow_closes; /* the pool's count of slow consumers closed */
    atomic_uint *deflate_min;          /* the pool's deflate_min_bytes */
    atomic_uint *park_ms;              /* the pool's park_ms (0: it does not park) */
} conn_route;

/* Per worker, per pool: counters only that worker writes (relaxed atomics,
 * so that /metrics may read them from another thread). */
typedef struct pool_stats {
    atomic_uint_fast64_t frames_in, frames_out;
} pool_stats;

/* A registry result waiting to reach its connection's on_registry_result
 * (src/gearapi queues them, ws_conn.c runs them after the callback). */
typedef struct reg_pending {
    uint64_t conn;
    orr_registry_result r;
    char name[ORR_NAME_MAX];
} reg_pending;

/* The server's side, as connections need it. Each is called on the worker
 * that owns the connection. */
typedef struct conn_host {
    /* A complete request (its body whole, if any): answers it; true when
     * the connection switched to the websocket phase (server/request.c). */
    bool (*request)(conn_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                    size_t body_len);
    /* Before reading a body: whether this request may send one of its
     * Content-Length; if not, *status is the answer, given unread. */
    bool (*body_wanted)(conn_worker *w, const orr_http_request *req, int *status);
    /* The session ended (terminate ran): its names, groups and pool slot go. */
    void (*session_ended)(conn_worker *w, orr_conn *c);
    /* Near the memory budget: close this worker's largest backlogs (budget.c). */
    void (*shed)(conn_worker *w, bool force);
} conn_host;

/* What every worker shares: the settings, the memory budget and the host.
 * The server owns it; the atomics are what SIGHUP may change. */
struct conn_node {
    const orr_config *cfg; /* max_message_bytes, max_fragments, ping_interval_ms, ... */
    const conn_host *host;
    const struct gear_host *gears; /* for src/gearapi */
    atomic_uint_fast64_t max_outbound_bytes;
    atomic_size_t max_buffered_bytes;
    /* The memory budget: reassembly buffers, request bodies and output
     * backlogs of every connection (allocated bytes), and the closes it made. */
    atomic_size_t buffered;
    atomic_uint_fast64_t budget_refused, budget_shed;
};

/* One worker thread's state that its connections share. Only that thread
 * touches it. The server's worker embeds it (orr_worker.cw). */
struct conn_worker {
    conn_node *node;
    orr_loop *loop;     /* the worker's: its epoll set and now_ms */
    int index;          /* the worker's number, in context ids */
    orr_tlists lists;   /* LIST_* */
    orr_conn **zombies; /* closed this loop pass: freed at its end (by the worker) */
    size_t n_zombies, cap_zombies;
    /* One receive buffer for all connections of this worker. */
    uint8_t *rbuf;
    size_t rbuf_size;
    /* Output produced while handling one connection's event, sent in one
     * write at the end (the "cork"). Websocket frames start at cork_frames_at
     * (after a 101 response head written in the same event). */
    orr_conn *cork_conn;
    uint8_t *cork;
    size_t cork_len, cork_cap, cork_frames_at;
    size_t cork_big; /* the largest data message in the cork */
    /* The callback being run, for the gear API's context checks. */
    orr_conn *cb_conn;
    const orr_handshake *cb_hs;    /* during init only */
    const uint8_t *cb_msg;         /* the message being delivered (already validated) */
    const orr_payload *cb_payload; /* on_server_message: its shared payload */
    bool cb_closed;                /* the running callback queued a close */
    bool resp_no_body;             /* answering a HEAD request */
    bool in_results;
    size_t cb_msg_len;
    uint32_t ctx_seq;
    char ctx_buf[64]; /* conn_ctx's result */
    char ip_buf[64];  /* orr_conn_client_ip's result */
    /* Registry results for the connection whose callback is running. */
    reg_pending *results;
    size_t n_results, cap_results, results_at;
    pool_stats *pstats; /* [max_pools] */
    /* permessage-deflate (ws_deflate.c), made on first use: the inflater,
     * a compressor per window size (9..15), and the buffers messages are
     * inflated into (zin) and compressed into (zout). */
    struct orr_ws_inflater *inflater;
    struct orr_ws_deflater *deflaters[7];
    uint8_t *zin, *zout;
    size_t zin_cap, zout_cap;
    /* TLS (tls_conn.c): the node's certificate, or NULL for plain TCP; each
     * TLS connection's SSL by its id's slot, so that struct orr_conn stays
     * within its budget. */
    orr_tls *tls;
    orr_tls_conn **tls_conns;
    uint32_t tls_cap;
    /* TLS connections whose reads resumed with records already inside
     * OpenSSL (no readiness will come for them): read after the epoll
     * batch, by id (the worker runs them, conn_tls_kicked). */
    uint64_t *tls_kicks;
    size_t n_tls_kicks, cap_tls_kicks;
};

/* ---- tls_conn.c: a TLS connection's handshake and input ---- */
/* The TLS of a connection flagged CF_TLS. */
static inline orr_tls_conn *conn_tls_of(const conn_worker *w, const orr_conn *c) {
    return w->tls_conns[(uint32_t)(c->id >> 32) & 0xffffffu];
}
/* A new connection on a TLS listener: its handshake starts (CF_TLS |
 * CF_TLS_HS). Returns 0, or -1 when OpenSSL cannot make one. */
int conn_tls_start(conn_worker *w, orr_conn *c);
/* Readable: the handshake's next step, then records to plaintext. */
void conn_tls_on_readable(conn_worker *w, orr_conn *c);
/* Writable during the handshake. */
void conn_tls_on_writable(conn_worker *w, orr_conn *c);
/* Its TLS goes (when it is closed). */
void conn_tls_end(conn_worker *w, orr_conn *c);
/* Reads resumed (conn_update_events): if records wait inside its TLS,
 * queue it on w->tls_kicks. */
void conn_tls_resumed(conn_worker *w, orr_conn *c);
/* For the worker, with one id taken off w->tls_kicks: read what waits. */
void conn_tls_kicked(conn_worker *w, orr_conn *c);
/* send(2), or its TLS equivalent: for output.c. */
static inline ssize_t conn_write(conn_worker *w, orr_conn *c, const void *p, size_t n) {
    if (c->flags & CF_TLS) return orr_tls_write(conn_tls_of(w, c), p, n);
    return send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ---- ws_deflate.c: permessage-deflate on a connection ---- */
/* A compressed message (deflated bytes z, n) inflated into the worker's
 * buffer, within max_message_bytes (ORR_WS_ETOOBIG), a valid stream
 * (ORR_WS_EDEFLATE), UTF-8 when text (ORR_WS_EUTF8): 0 with *out, *len
 * valid until ws_inflate_done. */
int ws_inflate(conn_worker *w, bool text, const uint8_t *z, size_t n, const uint8_t **out,
               size_t *len);
void ws_inflate_done(conn_worker *w);
/* The most bytes a compressed message of at most max bytes takes on the wire. */
uint64_t ws_wire_limit(uint64_t max);
/* Whether a data message of n bytes goes out compressed on c. */
bool ws_deflates(const orr_conn *c, size_t n);
/* A data message for which ws_deflates into the cork, compressed (RSV1).
 * m: the shared payload p is (a server message passed on), whose
 * compressed form is made once for every recipient, or NULL. */
void ws_out_data(conn_worker *w, orr_conn *c, uint8_t opcode, const void *p, size_t n,
                 const orr_payload *m);

/* Sets up w's buffers (the rest is the caller's: node, loop, index). */
void conn_worker_init(conn_worker *w);
void conn_worker_free(conn_worker *w);

/* ---- the memory budget (one bound on the bytes clients make the node hold) ---- */
#define BUDGET_SMALL (64u * 1024)
static inline void budget_add(conn_node *n, size_t k) {
    atomic_fetch_add_explicit(&n->buffered, k, memory_order_relaxed);
}
static inline void budget_sub(conn_node *n, size_t k) {
    atomic_fetch_sub_explicit(&n->buffered, k, memory_order_relaxed);
}
static inline size_t budget_max(const conn_node *n) {
    return atomic_load_explicit(&n->max_buffered_bytes, memory_order_relaxed);
}
static inline size_t budget_used(const conn_node *n) {
    return atomic_load_explicit(&n->buffered, memory_order_relaxed);
}
/* Whether a new input buffer of k more bytes fits: never past
 * max_buffered_bytes, and past seven eighths of it only small ones. */
static inline bool budget_room(const conn_node *n, size_t k) {
    size_t max = budget_max(n), cur = budget_used(n);
    if (k > max || cur > max - k) return false;
    return k <= BUDGET_SMALL || cur + k <= max - max / 8;
}
/* Past seven eighths of the budget: time to shed. */
static inline bool budget_near(const conn_node *n) {
    size_t max = budget_max(n);
    return budget_used(n) > max - max / 8;
}

static inline void stat_add(atomic_uint_fast64_t *x, uint64_t n) {
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
/* Adds to its pool's counters the data frames c received and sent since
 * the counts were rx and tx: once per event, not per message. */
static inline void conn_count_frames(conn_worker *w, const orr_conn *c, uint32_t rx, uint32_t tx) {
    if (!c->route) return;
    pool_stats *ps = &w->pstats[c->route->pool_idx];
    if (c->frames_received != rx) stat_add(&ps->frames_in, c->frames_received - rx);
    if (c->frames_sent != tx) stat_add(&ps->frames_out, c->frames_sent - tx);
}

/* ---- the worker's lists and epoll interest (conn.c) ---- */
/* To the tail of list_id, its clock restarted (now). */
void conn_list_move(conn_worker *w, orr_conn *c, int list_id);
/* To the tail of list_id, its clock kept: for a list whose deadline counts
 * from the same moment as the one it leaves (LIST_WS -> LIST_WS_PINGED). */
void conn_list_requeue(conn_worker *w, orr_conn *c, int list_id);
/* EPOLLIN unless reading is paused, EPOLLOUT while output waits. */
void conn_update_events(conn_worker *w, orr_conn *c);
/* A new connection on fd (its id from the caller), in LIST_NONE. */
struct sockaddr;
void conn_init(conn_worker *w, orr_conn *c, uint64_t id, int fd, const struct sockaddr *sa);

/* ---- output.c: the cork and per-connection backlog ---- */
/* Data messages longer than max_outbound_bytes (and than OUT_FRAG_MIN) go
 * out in fragments of that size, so that a slow consumer's output can be
 * cut at a frame boundary within its cap of what was sent. */
#define OUT_FRAG_MIN (64u * 1024)
size_t out_frag_bytes(const conn_worker *w);
void out_cork(conn_worker *w, orr_conn *c);
void out_uncork(conn_worker *w);
uint8_t *out_reserve(conn_worker *w, size_t n);
void out_append(conn_worker *w, const void *p, size_t n);
/* A whole message (fragmented past out_frag_bytes) or a control frame. */
void out_frame(conn_worker *w, uint8_t opcode, const void *p, size_t n);
/* The same for a compressed message: RSV1 on its first frame. */
void out_frame_rsv1(conn_worker *w, uint8_t opcode, const void *p, size_t n);
void out_on_writable(conn_worker *w, orr_conn *c);
void out_free(orr_conn *c);
/* Unsent output as max_outbound_bytes counts it. */
static inline size_t out_pending(const orr_conn *c) {
    return (size_t)(c->out_len - c->out_off) + c->out_debt;
}
/* Over max_outbound_bytes. */
bool out_over_cap(const conn_worker *w, const orr_conn *c);
/* A ping arrived while c's output is backed up: keep only the newest pong. */
void out_pong_later(conn_worker *w, orr_conn *c, const uint8_t *p, size_t n);
/* Its client does not read (over max_outbound_bytes): count, log, cut the
 * unsent output at a frame boundary and close 1008. Not inside a cork. */
void out_slow_consumer(conn_worker *w, orr_conn *c);
/* For the budget: cut c's backlog and close it 1008 (a connection already
 * closing, or still in HTTP, is closed at once). */
void out_shed(conn_worker *w, orr_conn *c);

/* ---- conn.c: life and death ---- */
void conn_close_now(conn_worker *w, orr_conn *c);
void conn_send_close(conn_worker *w, orr_conn *c, uint16_t code, const char *reason, size_t len,
                     orr_reason_kind why);
void conn_terminate(conn_worker *w, orr_conn *c, orr_reason_kind why, const char *text,
                    size_t text_len);
const char *conn_ctx(conn_worker *w, const orr_conn *c);
const char *conn_ip(conn_worker *w, const orr_conn *c, char *buf, size_t len);
void conn_on_readable(conn_worker *w, orr_conn *c);
/* n bytes read into w->rbuf, handled by the connection's phase: false when
 * reading stops here (it died, its reads are paused). */
bool conn_input(conn_worker *w, orr_conn *c, size_t n);
/* EOF or a reset: the peer is gone. */
void conn_peer_gone(conn_worker *w, orr_conn *c);
void conn_on_timeout(conn_worker *w, orr_conn *c);
void conn_drain(conn_worker *w, orr_conn *c);
/* The input buffer, counted in the budget: freed, grown to cap (contents
 * kept), or taken over by the caller (who frees it). */
void conn_in_free(orr_conn *c);
void conn_in_grow(orr_conn *c, size_t cap);
uint8_t *conn_in_take(orr_conn *c);
void conn_ctl_release(orr_conn *c);

/* ---- http_conn.c: request heads, responses, the upgrade ---- */
/* Handle bytes in the HTTP phase: heads, answers, and the upgrade (frames
 * that follow the head go to ws_on_data). */
void http_on_data(conn_worker *w, orr_conn *c, uint8_t *p, size_t n);
/* A response with the status line, extra_headers ("Name: value\r\n" lines, or
 * NULL), Content-Type, Content-Length and Connection. A 503 also gets
 * Retry-After: retry_after_s unless extra_headers has one. */
void http_respond_simple(conn_worker *w, orr_conn *c, int status, const char *extra_headers,
                         const char *ctype, const void *body, size_t body_len, bool keep_alive);
/* "OK", "Not Found", ...: the reason phrase of a status. */
const char *http_status_text(int status);
/* The request's line in the log, and a text/plain answer logged so. */
void http_log_request(conn_worker *w, orr_conn *c, const orr_http_request *req, int status);
void http_respond_text(conn_worker *w, orr_conn *c, const orr_http_request *req, int status,
                       const char *extra, const char *body, bool keep_alive);
/* The client's IP as text into out: the last X-Forwarded-For entry when it
 * is an address (kept on the connection), else the peer's. */
void http_client_ip(conn_worker *w, orr_conn *c, const orr_http_request *req, char *out,
                    size_t len);
/* The 101 for a request whose upgrade checks passed (key: its
 * Sec-WebSocket-Key); then ws_start. */
void http_switch_protocols(conn_worker *w, orr_conn *c, orr_span key, const char *protocol,
                           const char *extensions);

/* ---- ws_conn.c: frames and messages ---- */
void ws_on_data(conn_worker *w, orr_conn *c, uint8_t *p, size_t n);
/* The websocket phase begins (c->route set): the gear's init runs with hs
 * as orr_conn_handshake's answer; assigns are the gear's, from connect. */
void ws_start(conn_worker *w, orr_conn *c, const orr_handshake *hs, void *assigns);
/* Hand messages from its mailbox to the gear, in order, in one write:
 * false when c takes none of them (closing, or a slow consumer closed now:
 * the caller may park them). */
bool ws_deliver_server_messages(conn_worker *w, orr_conn *c, const orr_payload *const *ms,
                                size_t n);
/* Run on_registry_result (inside the cork of the callback that started it). */
void ws_run_result(conn_worker *w, orr_conn *c, const orr_registry_result *r);
/* A newer registration elsewhere took a name it held: close 1008. */
void ws_name_conflict(conn_worker *w, orr_conn *c);

#endif
