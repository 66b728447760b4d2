/*
 * Output. Everything a connection's event produces (responses, pongs, the
 * frames its callbacks queue, a close) is appended to the worker's cork and
 * sent in one write when the event is done. What the socket does not take
 * goes to the connection's own backlog, which exists only while it is
 * non-empty.
 *
 * Every byte counts: a websocket connection whose backlog (plus the pongs a
 * newer ping replaced, out_debt) passes max_outbound_bytes while more output
 * is added to it is a slow consumer, closed with 1008. Only one message may
 * take it past the cap, when nothing else was waiting (a large echo works
 * for a client that reads); past the cap the connection is not read until
 * its client catches up, or until the idle timeout closes it (1008 then too).
 *
 * Closing a slow consumer does not wait for it: its backlog is cut at the
 * first frame boundary after what was sent (out_safe; large messages go out
 * in fragments of the cap, so that this is close) and the close frame
 * follows at once, so the memory is given back now, not after the close
 * timeout. Backlogs count in the server's memory budget (budget.c).
 */
#include "common/log.h"
#include "conn/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CORK_KEEP                                                                                  \
    (1024u * 1024) /* above a full read's echo (RBUF_SIZE): no free+malloc per event in a flood */
#define SAFE_WALK_MAX 4096 /* frames walked to find out_safe in a cork, then its end */

void out_cork(conn_worker *w, orr_conn *c) {
    w->cork_conn = c;
    w->cork_len = 0;
    w->cork_frames_at = 0;
    w->cork_big = 0;
}

uint8_t *out_reserve(conn_worker *w, size_t n) {
    if (w->cork_len + n > w->cork_cap) {
        size_t cap = w->cork_cap;
        while (cap < w->cork_len + n)
            cap *= 2;
        w->cork = orr_xrealloc(w->cork, cap);
        w->cork_cap = cap;
    }
    uint8_t *p = w->cork + w->cork_len;
    w->cork_len += n;
    return p;
}

void out_append(conn_worker *w, const void *p, size_t n) {
    if (n) memcpy(out_reserve(w, n), p, n);
}

/* Frames of a message (fragments of out_frag_bytes), rsv: bits for the
 * first frame's first byte (a constant in each caller's copy). */
static inline __attribute__((always_inline)) void frames(conn_worker *w, uint8_t opcode,
                                                         const void *p, size_t n, uint8_t rsv) {
    const uint8_t *src = p;
    if (!(opcode & 0x8) && n > w->cork_big) w->cork_big = n;
    size_t frag = opcode & 0x8 ? 125 : out_frag_bytes(w); /* control frames: at most 125 bytes */
    size_t room = n + (n / frag + 1) * 10;                /* at most 10 header bytes a frame */
    uint8_t *dst = out_reserve(w, room), *at = dst;
    uint8_t op = opcode;
    do {
        size_t k = n > frag ? frag : n;
        at += orr_ws_header(at, op, k == n, k, NULL);
        if (k) memcpy(at, src, k);
        at += k;
        src += k;
        n -= k;
        op = ORR_WS_OP_CONT;
    } while (n);
    if (rsv) dst[0] |= rsv; /* the first frame's header starts the reserved room */
    w->cork_len -= room - (size_t)(at - dst);
}

void out_frame(conn_worker *w, uint8_t opcode, const void *p, size_t n) {
    frames(w, opcode, p, n, 0);
}

void out_frame_rsv1(conn_worker *w, uint8_t opcode, const void *p, size_t n) {
    frames(w, opcode, p, n, 0x40);
}

void out_free(orr_conn *c) {
    if (c->out_cap) budget_sub(c->w->node, c->out_cap);
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    c->out_debt = 0;
}

/* The first frame boundary at or after `want`, walking whole frames from
 * the boundary `at` in buf[0..len): len when the frames end first, or when
 * more than max_steps frames are in the way (len is a boundary too). */
static size_t boundary_after(const uint8_t *buf, size_t at, size_t len, size_t want,
                             size_t max_steps) {
    for (size_t steps = 0; at < want; steps++) {
        size_t f = steps < max_steps ? orr_ws_frame_size(buf + at, len - at) : 0;
        if (!f || f > len - at) return len;
        at += f;
    }
    return at;
}

static void backlog_append(orr_conn *c, const uint8_t *p, size_t n) {
    size_t pending = c->out_len - c->out_off;
    if (c->out_off) {
        if (pending) memmove(c->out, c->out + c->out_off, pending);
        if (c->phase != PHASE_HTTP) /* else the union holds head_scanned */
            c->out_safe = c->out_safe > c->out_off ? c->out_safe - c->out_off : 0;
    }
    c->out_off = 0;
    c->out_len = (uint32_t)pending;
    if (pending + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < pending + n)
            cap *= 2;
        c->out = orr_xrealloc(c->out, cap);
        budget_add(c->w->node, cap - c->out_cap);
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

static size_t outbound_cap(const conn_worker *w) {
    return (size_t)atomic_load_explicit(&w->node->max_outbound_bytes, memory_order_relaxed);
}

size_t out_frag_bytes(const conn_worker *w) {
    size_t cap = outbound_cap(w);
    return cap > OUT_FRAG_MIN ? cap : OUT_FRAG_MIN;
}

bool out_over_cap(const conn_worker *w, const orr_conn *c) {
    return out_pending(c) > outbound_cap(w);
}

/* Drops the backlog past out_safe (the frame being written stays whole)
 * and gives the memory back. Returns the bytes dropped. */
static size_t backlog_cut(orr_conn *c) {
    size_t keep_end = c->out_safe < c->out_len ? c->out_safe : c->out_len;
    if (keep_end < c->out_off) keep_end = c->out_off;
    /* On TLS a write that stopped part-way may hold a record of the bytes
     * from out_off, and its retry must offer them all: keep whole frames up
     * to a record past out_off. */
    if ((c->flags & CF_TLS) && keep_end - c->out_off < ORR_TLS_RECORD_MAX)
        keep_end =
            boundary_after(c->out, keep_end, c->out_len, c->out_off + ORR_TLS_RECORD_MAX, SIZE_MAX);
    size_t dropped = c->out_len - keep_end, keep = keep_end - c->out_off;
    if (!dropped) return 0;
    if (!keep) {
        out_free(c);
        return dropped;
    }
    memmove(c->out, c->out + c->out_off, keep);
    if ((c->flags & CF_READ_PAUSED) && keep <= outbound_cap(c->w)) {
        /* Under the cap again: its close reply may be read. */
        c->flags &= (uint16_t)~CF_READ_PAUSED;
        conn_update_events(c->w, c);
    }
    c->out_off = 0;
    c->out_len = (uint32_t)keep;
    c->out_safe = (uint32_t)keep;
    size_t cap = keep + 256; /* room for the close frame */
    if (cap < c->out_cap) {
        c->out = orr_xrealloc(c->out, cap);
        budget_sub(c->w->node, c->out_cap - cap);
        c->out_cap = (uint32_t)cap;
    }
    return dropped;
}

/* Output is all written: finish a close that was waiting for it. */
static void after_flush(conn_worker *w, orr_conn *c) {
    if (!(c->flags & CF_CLOSE_AFTER_FLUSH)) return;
    if (c->phase != PHASE_HTTP && (c->flags & CF_CLOSE_RECEIVED)) {
        /* The close handshake is complete: nothing more will come. */
        conn_close_now(w, c);
        return;
    }
    /* Let the client read what was sent before the connection goes: closing
     * with unread input would reset it. Input is dropped until EOF or the
     * close timeout. */
    if (c->flags & CF_TLS) orr_tls_close_notify(conn_tls_of(w, c));
    shutdown(c->fd, SHUT_WR);
    c->flags |= CF_LINGER;
    c->flags &= (uint16_t)~CF_CLOSE_AFTER_FLUSH;
    if (c->phase == PHASE_HTTP) {
        c->phase = PHASE_CLOSING;
        conn_list_move(w, c, LIST_CLOSING);
    }
}

static void socket_failed(conn_worker *w, orr_conn *c, int err) {
    if (err != EPIPE && err != ECONNRESET)
        orr_log(ORR_LOG_WARN, conn_ctx(w, c), "write: %s", strerror(err));
    if (c->phase == PHASE_WS) conn_terminate(w, c, ORR_REASON_CLOSED, NULL, 0);
    conn_close_now(w, c);
}

/* The cork's bytes from `done` on become the backlog, which was empty. A
 * big cork (a large message) is handed over rather than copied: no second
 * copy of it exists even for a moment. */
static void backlog_start(conn_worker *w, orr_conn *c, size_t done, size_t n) {
    size_t safe = 0;
    if (c->phase != PHASE_HTTP) {
        /* Frames start at cork_frames_at: the first boundary from `done` on
         * is where a close could go. */
        size_t from = w->cork_frames_at;
        safe = from >= done ? from : boundary_after(w->cork, from, n, done, SAFE_WALK_MAX);
    }
    if (w->cork_cap > CORK_KEEP && n - done > CORK_KEEP && n <= UINT32_MAX) {
        out_free(c);
        c->out = orr_xrealloc(w->cork, n); /* no doubling's slack held (or counted) */
        c->out_cap = (uint32_t)n;
        c->out_off = (uint32_t)done;
        c->out_len = (uint32_t)n;
        budget_add(w->node, c->out_cap);
        w->cork_cap = 64 * 1024;
        w->cork = orr_xmalloc(w->cork_cap);
        if (c->phase != PHASE_HTTP) c->out_safe = (uint32_t)safe;
        return;
    }
    backlog_append(c, w->cork + done, n - done);
    if (c->phase != PHASE_HTTP) c->out_safe = (uint32_t)(safe - done);
}

void out_uncork(conn_worker *w) {
    orr_conn *c = w->cork_conn;
    w->cork_conn = NULL;
    if (!c) return;
    size_t n = w->cork_len;
    w->cork_len = 0;
    size_t before = c->out_len - c->out_off;
    if (c->phase != PHASE_DEAD && n) {
        if (before) {
            backlog_append(c, w->cork, n);
            /* Upgraded in this event: what came before its frames is HTTP. */
            if (w->cork_frames_at && c->phase != PHASE_HTTP)
                c->out_safe = (uint32_t)(before + w->cork_frames_at);
        } else {
            ssize_t r = conn_write(w, c, w->cork, n);
            if (r < 0) {
                if (errno != EAGAIN && errno != EINTR) {
                    socket_failed(w, c, errno);
                    goto shrink;
                }
                r = 0;
            }
            if ((size_t)r < n) backlog_start(w, c, (size_t)r, n);
        }
    }
    if (c->phase == PHASE_DEAD) goto shrink;
    size_t pending = c->out_len - c->out_off;
    if (!pending) {
        after_flush(w, c);
        goto shrink;
    }
    uint16_t was = c->flags;
    c->flags |= CF_WANT_WRITE;
    size_t cap = outbound_cap(w);
    if (pending > cap) c->flags |= CF_READ_PAUSED;
    if (c->flags != was) conn_update_events(w, c);
    /* Over the cap, unless what passes it is one message queued when
     * nothing else was waiting. */
    size_t one = before ? 0 : w->cork_big;
    if (c->phase == PHASE_WS && !(c->flags & CF_CLOSE_SENT) && out_pending(c) > cap + one)
        out_slow_consumer(w, c);
    if (pending > before && budget_near(w->node)) w->node->host->shed(w, false);
shrink:
    if (w->cork_cap > CORK_KEEP) {
        free(w->cork);
        w->cork_cap = 64 * 1024;
        w->cork = orr_xmalloc(w->cork_cap);
    }
}

void out_on_writable(conn_worker *w, orr_conn *c) {
    if (c->flags & CF_TLS_HS) {
        conn_tls_on_writable(w, c);
        return;
    }
    while (c->out_len > c->out_off) {
        ssize_t r = conn_write(w, c, c->out + c->out_off, c->out_len - c->out_off);
        if (r < 0) {
            if (errno == EAGAIN) {
                /* Keep out_safe at a boundary at or after what was sent. */
                if (c->out_off > c->out_safe && c->phase != PHASE_HTTP)
                    c->out_safe = (uint32_t)boundary_after(c->out, c->out_safe, c->out_len,
                                                           c->out_off, SIZE_MAX);
                return;
            }
            if (errno == EINTR) continue;
            socket_failed(w, c, errno);
            return;
        }
        c->out_off += (uint32_t)r;
    }
    out_free(c);
    c->flags &= (uint16_t) ~(CF_WANT_WRITE | CF_READ_PAUSED);
    conn_update_events(w, c);
    if (c->ctl && c->ctl->pong && !(c->flags & CF_CLOSE_SENT)) {
        /* The client caught up: the newest ping gets its answer. */
        out_cork(w, c);
        out_frame(w, ORR_WS_OP_PONG, c->ctl->pong_data, c->ctl->pong_len);
        c->ctl->pong = false;
        conn_ctl_release(c);
        out_uncork(w);
        return;
    }
    after_flush(w, c);
}

void out_pong_later(conn_worker *w, orr_conn *c, const uint8_t *p, size_t n) {
    (void)w;
    if (!c->ctl) c->ctl = orr_xcalloc(1, sizeof *c->ctl);
    conn_ctl *k = c->ctl;
    if (k->pong) {
        /* The older pong is never sent, but the client caused it. */
        uint64_t debt = (uint64_t)c->out_debt + 2 + k->pong_len;
        c->out_debt = debt > UINT32_MAX ? UINT32_MAX : (uint32_t)debt;
    }
    k->pong = true;
    k->pong_len = (uint8_t)n;
    if (n) memcpy(k->pong_data, p, n);
}

void out_slow_consumer(conn_worker *w, orr_conn *c) {
    static const char why[] = "slow consumer";
    stat_add(c->route->slow_closes, 1);
    orr_log(ORR_LOG_WARN, conn_ctx(w, c),
            "slow consumer: %zu bytes unsent (max_outbound_bytes %zu): closing 1008",
            out_pending(c), outbound_cap(w));
    backlog_cut(c);
    out_cork(w, c);
    conn_send_close(w, c, ORR_WS_CLOSE_POLICY, why, sizeof why - 1, ORR_REASON_SLOW);
    out_uncork(w);
}

/* For budget.c: cut the backlog and close 1008 (a connection already
 * closing, or still in HTTP, is closed at once). */
void out_shed(conn_worker *w, orr_conn *c) {
    static const char why[] = "server over its memory budget";
    if (c->phase != PHASE_WS || (c->flags & CF_CLOSE_SENT)) {
        if (c->phase == PHASE_WS) conn_terminate(w, c, ORR_REASON_OVERLOAD, NULL, 0);
        conn_close_now(w, c);
        return;
    }
    backlog_cut(c);
    out_cork(w, c);
    conn_send_close(w, c, ORR_WS_CLOSE_POLICY, why, sizeof why - 1, ORR_REASON_OVERLOAD);
    out_uncork(w);
}
