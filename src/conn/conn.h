/*
 * src/conn: one client connection's life, the HTTP phase then the websocket
 * phase, and its output (the cork, the backlog, backpressure). Workers
 * (src/server/worker.c) hand it readiness and timeouts; gears are called
 * from ws_conn.c with their failure semantics; what a request means
 * (routing, pools, the push API, /metrics) is the server's answer
 * (server/request.c request_handle).
 *
 * This header stands alone: struct orr_conn and its states are here. Its
 * .c files still reach the worker and the node through server/internal.h
 * (struct orr_worker's cork, receive buffer and callback context; limits;
 * the budget), an edge the layers block marks (issue 10).
 */
#ifndef ORR_CONN_CONN_H
#define ORR_CONN_CONN_H

#include "http/request.h"
#include "loop/tlist.h"
#include "ws/frame.h"

#include <orrery/gear.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_worker orr_worker;   /* the worker it lives on (server/internal.h) */
typedef struct orr_payload orr_payload; /* a message for connections (server/internal.h) */
struct orr_route_target;                /* its gear and pool, once upgraded */

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
    orr_worker *w;
    uint64_t id; /* worker:8 | slot:24 | generation:32 */
    int fd;
    uint8_t phase;
    uint8_t reason;  /* orr_reason_kind once decided */
    uint8_t list_id; /* which timeout list holds link */
    uint8_t spare_;
    uint16_t flags;
    uint16_t remote_code; /* the peer's close code, for the REMOTE reason */
    uint32_t ctx_seq;     /* context id: <ctx_ms as time>_<worker>_<ctx_seq> */
    orr_ws_reader rd;
    const struct orr_route_target *route; /* gear and callbacks, once upgraded */
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
    conn_addr addr;    /* client IP (last X-Forwarded-For entry, else the peer) */
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

/* ---- output.c: the cork and per-connection backlog ---- */
/* Data messages longer than max_outbound_bytes (and than OUT_FRAG_MIN) go
 * out in fragments of that size, so that a slow consumer's output can be
 * cut at a frame boundary within its cap of what was sent. */
#define OUT_FRAG_MIN (64u * 1024)
size_t out_frag_bytes(const orr_worker *w);
void out_cork(orr_worker *w, orr_conn *c);
void out_uncork(orr_worker *w);
uint8_t *out_reserve(orr_worker *w, size_t n);
void out_append(orr_worker *w, const void *p, size_t n);
/* A whole message (fragmented past out_frag_bytes) or a control frame. */
void out_frame(orr_worker *w, uint8_t opcode, const void *p, size_t n);
void out_on_writable(orr_worker *w, orr_conn *c);
void out_free(orr_conn *c);
/* Unsent output as max_outbound_bytes counts it. */
static inline size_t out_pending(const orr_conn *c) {
    return (size_t)(c->out_len - c->out_off) + c->out_debt;
}
/* Over max_outbound_bytes. */
bool out_over_cap(const orr_worker *w, const orr_conn *c);
/* A ping arrived while c's output is backed up: keep only the newest pong. */
void out_pong_later(orr_worker *w, orr_conn *c, const uint8_t *p, size_t n);
/* Its client does not read (over max_outbound_bytes): count, log, cut the
 * unsent output at a frame boundary and close 1008. Not inside a cork. */
void out_slow_consumer(orr_worker *w, orr_conn *c);

/* ---- conn.c: life and death ---- */
void conn_close_now(orr_worker *w, orr_conn *c);
void conn_send_close(orr_worker *w, orr_conn *c, uint16_t code, const char *reason, size_t len,
                     orr_reason_kind why);
void conn_terminate(orr_worker *w, orr_conn *c, orr_reason_kind why, const char *text,
                    size_t text_len);
const char *conn_ctx(orr_worker *w, const orr_conn *c);
const char *conn_ip(orr_worker *w, const orr_conn *c, char *buf, size_t len);
void conn_on_readable(orr_worker *w, orr_conn *c);
void conn_on_timeout(orr_worker *w, orr_conn *c);
void conn_drain(orr_worker *w, orr_conn *c);
/* The input buffer, counted in the budget: freed, grown to cap (contents
 * kept), or taken over by the caller (who frees it). */
void conn_in_free(orr_conn *c);
void conn_in_grow(orr_conn *c, size_t cap);
uint8_t *conn_in_take(orr_conn *c);
void conn_ctl_release(orr_conn *c);

/* ---- http_conn.c: request heads, responses, the upgrade ---- */
/* Handle bytes in the HTTP phase: heads, answers, and the upgrade (frames
 * that follow the head go to ws_on_data). */
void http_on_data(orr_worker *w, orr_conn *c, uint8_t *p, size_t n);
/* A response with the status line, extra_headers ("Name: value\r\n" lines, or
 * NULL), Content-Type, Content-Length and Connection. A 503 also gets
 * Retry-After: retry_after_s unless extra_headers has one. */
void http_respond_simple(orr_worker *w, orr_conn *c, int status, const char *extra_headers,
                         const char *ctype, const void *body, size_t body_len, bool keep_alive);
/* "OK", "Not Found", ...: the reason phrase of a status. */
const char *http_status_text(int status);
/* The request's line in the log, and a text/plain answer logged so. */
void http_log_request(orr_worker *w, orr_conn *c, const orr_http_request *req, int status);
void http_respond_text(orr_worker *w, orr_conn *c, const orr_http_request *req, int status,
                       const char *extra, const char *body, bool keep_alive);
/* The client's IP as text into out: the last X-Forwarded-For entry when it
 * is an address (kept on the connection), else the peer's. */
void http_client_ip(orr_worker *w, orr_conn *c, const orr_http_request *req, char *out, size_t len);
/* The 101 for a request whose upgrade checks passed (key: its
 * Sec-WebSocket-Key); then ws_start. */
void http_switch_protocols(orr_worker *w, orr_conn *c, orr_span key);

/* ---- ws_conn.c: frames and messages ---- */
void ws_on_data(orr_worker *w, orr_conn *c, uint8_t *p, size_t n);
/* The websocket phase begins (c->route set): the gear's init runs with hs
 * as orr_conn_handshake's answer; assigns are the gear's, from connect. */
void ws_start(orr_worker *w, orr_conn *c, const orr_handshake *hs, void *assigns);
/* Hand messages from its mailbox to the gear, in order, in one write. */
void ws_deliver_server_messages(orr_worker *w, orr_conn *c, const orr_payload *const *ms, size_t n);
/* Run on_registry_result (inside the cork of the callback that started it). */
void ws_run_result(orr_worker *w, orr_conn *c, const orr_registry_result *r);
/* A newer registration elsewhere took a name it held: close 1008. */
void ws_name_conflict(orr_worker *w, orr_conn *c);

#endif
