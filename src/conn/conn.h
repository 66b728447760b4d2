/*
 * src/conn: one client connection's life, the HTTP phase then the websocket
 * phase, and its output (the cork, the backlog, backpressure). Workers
 * (src/server/worker.c) hand it readiness and timeouts; gears are called
 * from ws_conn.c with their failure semantics; what a request means
 * (routing, pools, the push API, /metrics) is the server's answer
 * (server/request.c request_handle).
 *
 * The structures it works on (struct orr_conn, struct orr_worker) are still
 * in server/internal.h: the layers block of docs/ARCHITECTURE.md marks that
 * edge (issue 10) until the server reaches connections only through here.
 */
#ifndef ORR_CONN_CONN_H
#define ORR_CONN_CONN_H

#include "server/internal.h"

/* ---- output.c: the cork and per-connection backlog ---- */
/* Data messages longer than max_outbound_bytes (and than OUT_FRAG_MIN) go
 * out in fragments of that size, so that a slow consumer's output can be
 * cut at a frame boundary within its cap of what was sent. */
#define OUT_FRAG_MIN (64u * 1024)
static inline size_t out_frag_bytes(const orr_worker *w) {
    size_t cap = (size_t)atomic_load_explicit(&w->srv->max_outbound_bytes, memory_order_relaxed);
    return cap > OUT_FRAG_MIN ? cap : OUT_FRAG_MIN;
}
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
static inline bool out_over_cap(const orr_worker *w, const orr_conn *c) {
    return out_pending(c) >
           (size_t)atomic_load_explicit(&w->srv->max_outbound_bytes, memory_order_relaxed);
}
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
