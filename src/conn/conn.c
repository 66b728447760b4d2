/*
 * A connection's life: reading, timeouts, the close handshake, terminate
 * and the end. The HTTP phase is in http_conn.c, frames in ws_conn.c.
 */
#include "conn/conn.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* See the budget on struct orr_conn: idle connections are what we hold most of. */
_Static_assert(sizeof(struct orr_conn) <= 232, "struct orr_conn grew past its 232-byte budget");

#define RBUF_SIZE (256 * 1024)
#define CORK_INITIAL (64 * 1024)

void conn_worker_init(conn_worker *w) {
    orr_tlists_init(&w->lists);
    w->rbuf_size = RBUF_SIZE;
    w->rbuf = orr_xmalloc(RBUF_SIZE);
    w->cork_cap = CORK_INITIAL;
    w->cork = orr_xmalloc(w->cork_cap);
    /* Counters for every possible pool; calloc'd pages cost nothing until used. */
    w->pstats = orr_xcalloc(w->node->cfg->max_pools, sizeof *w->pstats);
}

void conn_worker_free(conn_worker *w) {
    orr_ws_inflater_free(w->inflater);
    for (size_t i = 0; i < ORR_ARRAY_LEN(w->deflaters); i++)
        orr_ws_deflater_free(w->deflaters[i]);
    free(w->zin);
    free(w->zout);
    w->inflater = NULL;
    memset(w->deflaters, 0, sizeof w->deflaters);
    w->zin = w->zout = NULL;
    w->zin_cap = w->zout_cap = 0;
    free(w->results);
    free(w->pstats);
    free(w->zombies);
    free(w->rbuf);
    free(w->cork);
    free(w->tls_conns);
    free(w->tls_kicks);
    w->tls_conns = NULL;
    w->tls_kicks = NULL;
    w->tls_cap = 0;
    w->n_tls_kicks = w->cap_tls_kicks = 0;
    w->results = NULL;
    w->pstats = NULL;
    w->zombies = NULL;
    w->rbuf = w->cork = NULL;
}

void conn_init(conn_worker *w, orr_conn *c, uint64_t id, int fd, const struct sockaddr *sa) {
    c->w = w;
    c->id = id;
    c->fd = fd;
    c->phase = PHASE_HTTP;
    if (sa->sa_family == AF_INET) {
        c->addr.family = AF_INET;
        memcpy(c->addr.bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        c->addr.family = AF_INET6;
        memcpy(c->addr.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

void conn_list_requeue(conn_worker *w, orr_conn *c, int list_id) {
    c->list_id = (uint8_t)list_id;
    orr_tlist_requeue(&w->lists, &c->t, list_id);
}

void conn_list_move(conn_worker *w, orr_conn *c, int list_id) {
    c->t.since_ms = w->loop->now_ms;
    conn_list_requeue(w, c, list_id);
}

void conn_update_events(conn_worker *w, orr_conn *c) {
    uint32_t events = 0;
    if (!(c->flags & CF_READ_PAUSED)) events |= EPOLLIN | EPOLLRDHUP;
    if (c->flags & CF_WANT_WRITE) events |= EPOLLOUT;
    if (orr_loop_mod(w->loop, c->fd, events, c) < 0)
        orr_log(ORR_LOG_WARN, conn_ctx(w, c), "epoll_ctl: %s", strerror(errno));
    if ((c->flags & (CF_TLS | CF_READ_PAUSED)) == CF_TLS) conn_tls_resumed(w, c);
}

/* Never inside its own callback: the worker frees it after the loop pass. */
static void free_later(conn_worker *w, orr_conn *c) {
    if (w->n_zombies == w->cap_zombies) {
        w->cap_zombies = w->cap_zombies ? w->cap_zombies * 2 : 64;
        w->zombies = orr_xrealloc(w->zombies, w->cap_zombies * sizeof *w->zombies);
    }
    w->zombies[w->n_zombies++] = c;
}

static void format_ms(int64_t ms, char *buf, size_t len) {
    if (ms < 0) ms = 0;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d%02d%02d-%02d%02d%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000) % 1000);
}

/* Context ids are built when a line is written, not stored: 20 bytes per
 * connection saved for a string that only logs need. */
const char *conn_ctx(conn_worker *w, const orr_conn *c) {
    char t[48];
    format_ms(c->ctx_ms, t, sizeof t);
    snprintf(w->ctx_buf, sizeof w->ctx_buf, "%s_%d_%u", t, w->index, c->ctx_seq);
    return w->ctx_buf;
}

const char *conn_ip(conn_worker *w, const orr_conn *c, char *buf, size_t len) {
    (void)w;
    if (!c->addr.family || !inet_ntop(c->addr.family, c->addr.bytes, buf, (socklen_t)len))
        snprintf(buf, len, "unknown");
    return buf;
}

void conn_in_free(orr_conn *c) {
    if (c->in_cap) budget_sub(c->w->node, c->in_cap);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (c->phase == PHASE_HTTP) c->head_scanned = 0; /* else it is out_safe */
}

void conn_in_grow(orr_conn *c, size_t cap) {
    if (cap <= c->in_cap) return;
    c->in = orr_xrealloc(c->in, cap);
    budget_add(c->w->node, cap - c->in_cap);
    c->in_cap = (uint32_t)cap;
}

uint8_t *conn_in_take(orr_conn *c) {
    uint8_t *p = c->in;
    if (c->in_cap) budget_sub(c->w->node, c->in_cap);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    return p;
}

void conn_ctl_release(orr_conn *c) {
    if (c->ctl && !c->ctl->split_open && !c->ctl->pong) {
        free(c->ctl);
        c->ctl = NULL;
    }
}

static void call_terminate(conn_worker *w, orr_conn *c, orr_reason_kind why, const char *text,
                           size_t text_len);

void conn_terminate(conn_worker *w, orr_conn *c, orr_reason_kind why, const char *text,
                    size_t text_len) {
    if (c->flags & CF_TERMINATED) return;
    c->flags |= CF_TERMINATED;
    c->reason = (uint8_t)why;
    if (!c->route) return;
    if (c->route->callbacks->terminate) call_terminate(w, c, why, text, text_len);
    /* The session is over: its names, groups and pool slot go now, not
     * when the TCP connection is finally closed. */
    w->node->host->session_ended(w, c);
}

static void call_terminate(conn_worker *w, orr_conn *c, orr_reason_kind why, const char *text,
                           size_t text_len) {
    orr_reason r = {.kind = why, .code = why == ORR_REASON_REMOTE ? c->remote_code : 0};
    if (text) {
        r.text = text;
        r.text_len = text_len;
    } else {
        r.text = orr_reason_name(why);
        r.text_len = strlen(r.text);
    }
    orr_conn *saved = w->cb_conn;
    w->cb_conn = NULL; /* frames queued in terminate are dropped */
    c->route->callbacks->terminate(c, c->state, &r);
    w->cb_conn = saved;
    c->state = NULL;
}

void conn_close_now(conn_worker *w, orr_conn *c) {
    if (c->phase == PHASE_DEAD) return;
    if (c->route && !(c->flags & CF_TERMINATED)) conn_terminate(w, c, ORR_REASON_CLOSED, NULL, 0);
    if (c->flags & CF_SESSION) {
        char at[48], reason[32];
        format_ms(c->ctx_ms, at, sizeof at);
        if (c->reason == ORR_REASON_REMOTE && c->remote_code)
            snprintf(reason, sizeof reason, "remote:%u", c->remote_code);
        else
            snprintf(reason, sizeof reason, "%s", orr_reason_name(c->reason));
        orr_log(
            ORR_LOG_INFO, conn_ctx(w, c),
            "<websocket> DISCONNECTED connected_at=%s frames_received=%u frames_sent=%u reason=%s",
            at, c->frames_received, c->frames_sent, reason);
    }
    conn_list_move(w, c, LIST_NONE);
    if (c->flags & CF_TLS) conn_tls_end(w, c);
    close(c->fd);
    c->fd = -1;
    conn_in_free(c);
    out_free(c);
    free(c->ctl);
    c->ctl = NULL;
    c->phase = PHASE_DEAD;
    if (w->cork_conn == c) w->cork_len = 0;
    free_later(w, c);
}

/* Queue a close frame (corked on c) and start waiting for the peer's. */
void conn_send_close(conn_worker *w, orr_conn *c, uint16_t code, const char *reason, size_t len,
                     orr_reason_kind why) {
    if (!(c->flags & CF_CLOSE_SENT)) {
        uint8_t payload[125];
        size_t n = 0;
        if (code) {
            payload[0] = (uint8_t)(code >> 8);
            payload[1] = (uint8_t)code;
            if (len > 123) len = 123;
            if (len) memcpy(payload + 2, reason, len);
            n = 2 + len;
        }
        out_frame(w, ORR_WS_OP_CLOSE, payload, n);
        c->flags |= CF_CLOSE_SENT;
        if (c->ctl) { /* no pong after a close */
            c->ctl->pong = false;
            conn_ctl_release(c);
        }
        c->phase = PHASE_CLOSING;
        conn_list_move(w, c, LIST_CLOSING);
        /* Once the peer has also closed, the TCP connection ends as soon as
         * the close is written. */
        if (c->flags & CF_CLOSE_RECEIVED) c->flags |= CF_CLOSE_AFTER_FLUSH;
    }
    conn_terminate(w, c, why, NULL, 0);
}

/* Silent for ping_interval_ms: one empty ping. The idle timeout still
 * counts from the last byte received (its clock is kept). */
static void ping_idle(conn_worker *w, orr_conn *c) {
    out_cork(w, c);
    out_frame(w, ORR_WS_OP_PING, NULL, 0);
    out_uncork(w);
    if (c->phase == PHASE_WS) conn_list_requeue(w, c, LIST_WS_PINGED);
}

static void close_idle(conn_worker *w, orr_conn *c) {
    if (out_over_cap(w, c)) {
        /* Silent because it does not read what it is sent. */
        out_slow_consumer(w, c);
        return;
    }
    out_cork(w, c);
    conn_send_close(w, c, ORR_WS_CLOSE_NORMAL, "", 0, ORR_REASON_TIMEOUT);
    out_uncork(w);
}

void conn_on_timeout(conn_worker *w, orr_conn *c) {
    switch (c->list_id) {
    case LIST_HTTP:
        if (c->flags & CF_HTTP_REQ_STARTED) {
            orr_log(ORR_LOG_INFO, conn_ctx(w, c), "request head not received in time: status=408");
            out_cork(w, c);
            http_respond_simple(w, c, 408, NULL, "text/plain", "request timeout\n", 16, false);
            out_uncork(w);
            if (c->phase != PHASE_DEAD && c->list_id == LIST_HTTP)
                conn_list_move(w, c, LIST_CLOSING);
        } else {
            if (c->flags & CF_TLS_HS) {
                char ip[64];
                orr_log(ORR_LOG_INFO, NULL,
                        "TLS handshake from %s not done within handshake_timeout_ms: closed",
                        conn_ip(w, c, ip, sizeof ip));
            }
            conn_close_now(w, c);
        }
        break;
    case LIST_WS:
        /* Without pings, LIST_WS expires at the idle timeout. */
        if (w->node->cfg->ping_interval_ms)
            ping_idle(w, c);
        else
            close_idle(w, c);
        break;
    case LIST_WS_PINGED:
        close_idle(w, c);
        break;
    default:
        conn_close_now(w, c);
        break;
    }
}

void conn_drain(conn_worker *w, orr_conn *c) {
    static const char why[] = "server shutting down; please reconnect";
    c->flags |= CF_DRAIN_CLOSED;
    bool own = w->cork_conn != c; /* a batch of its results may have it corked */
    if (own) out_cork(w, c);
    conn_send_close(w, c, ORR_WS_CLOSE_GOING_AWAY, why, sizeof why - 1, ORR_REASON_STOP);
    if (own) out_uncork(w);
}

/* Inlined into the plain read loop (as it was before TLS had a loop of its
 * own): an out-of-line call here cost the plain path ~20 instructions per
 * read (callgrind). */
static inline __attribute__((always_inline)) bool input(conn_worker *w, orr_conn *c, size_t n) {
    if (c->flags & CF_LINGER) return true;
    out_cork(w, c);
    if (c->phase == PHASE_HTTP) {
        http_on_data(w, c, w->rbuf, n);
    } else {
        /* Bytes arrived: the idle clock restarts (a pinged connection is
         * back in LIST_WS, pinged again only after another ping_interval_ms
         * of silence). */
        if (c->phase == PHASE_WS && (c->list_id != LIST_WS || c->t.since_ms != w->loop->now_ms))
            conn_list_move(w, c, LIST_WS);
        ws_on_data(w, c, w->rbuf, n);
    }
    out_uncork(w);
    return !(c->phase == PHASE_DEAD || (c->flags & CF_READ_PAUSED));
}

bool conn_input(conn_worker *w, orr_conn *c, size_t n) {
    return input(w, c, n);
}

void conn_peer_gone(conn_worker *w, orr_conn *c) {
    if (c->phase == PHASE_WS) conn_terminate(w, c, ORR_REASON_CLOSED, NULL, 0);
    conn_close_now(w, c);
}

void conn_on_readable(conn_worker *w, orr_conn *c) {
    if (c->flags & CF_TLS) {
        conn_tls_on_readable(w, c);
        return;
    }
    /* A full buffer may mean more is waiting; a few rounds, then the other
     * connections get their turn. */
    for (int round = 0; round < 4; round++) {
        ssize_t n = read(c->fd, w->rbuf, w->rbuf_size);
        if (n > 0) {
            if (!input(w, c, (size_t)n)) return;
            if ((size_t)n < w->rbuf_size) return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        conn_peer_gone(w, c);
        return;
    }
}
