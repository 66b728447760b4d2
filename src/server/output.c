/*
 * Output. Everything a connection's event produces (responses, pongs, the
 * frames its callbacks queue, a close) is appended to the worker's cork and
 * sent in one write when the event is done. What the socket does not take
 * goes to the connection's own backlog, which exists only while it is
 * non-empty; past BACKLOG_PAUSE bytes the connection stops being read until
 * its client catches up, so a client that sends without reading cannot make
 * the server buffer without bound.
 */
#include "common/log.h"
#include "server/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG_PAUSE (1u << 20)
#define CORK_KEEP (1024u * 1024) /* above a full read's echo (RBUF_SIZE): no free+malloc per event in a flood */

void out_cork(orr_worker *w, orr_conn *c) {
    w->cork_conn = c;
    w->cork_len = 0;
}

uint8_t *out_reserve(orr_worker *w, size_t n) {
    if (w->cork_len + n > w->cork_cap) {
        size_t cap = w->cork_cap;
        while (cap < w->cork_len + n) cap *= 2;
        w->cork = orr_xrealloc(w->cork, cap);
        w->cork_cap = cap;
    }
    uint8_t *p = w->cork + w->cork_len;
    w->cork_len += n;
    return p;
}

void out_append(orr_worker *w, const void *p, size_t n) {
    if (n) memcpy(out_reserve(w, n), p, n);
}

void out_frame(orr_worker *w, uint8_t opcode, const void *p, size_t n) {
    uint8_t hdr[14];
    size_t h = orr_ws_header(hdr, opcode, true, n, NULL);
    uint8_t *dst = out_reserve(w, h + n);
    memcpy(dst, hdr, h);
    if (n) memcpy(dst + h, p, n);
}

void out_free(orr_conn *c) {
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
}

static void backlog_append(orr_conn *c, const uint8_t *p, size_t n) {
    size_t pending = c->out_len - c->out_off;
    if (c->out_off && pending) memmove(c->out, c->out + c->out_off, pending);
    c->out_off = 0;
    c->out_len = (uint32_t)pending;
    if (pending + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < pending + n) cap *= 2;
        c->out = orr_xrealloc(c->out, cap);
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

/* Output is all written: finish a close that was waiting for it. */
static void after_flush(orr_worker *w, orr_conn *c) {
    if (!(c->flags & CF_CLOSE_AFTER_FLUSH)) return;
    if (c->phase != PHASE_HTTP && (c->flags & CF_CLOSE_RECEIVED)) {
        /* The close handshake is complete: nothing more will come. */
        conn_close_now(w, c);
        return;
    }
    /* Let the client read what was sent before the connection goes: closing
     * with unread input would reset it. Input is dropped until EOF or the
     * close timeout. */
    shutdown(c->fd, SHUT_WR);
    c->flags |= CF_LINGER;
    c->flags &= (uint16_t)~CF_CLOSE_AFTER_FLUSH;
    if (c->phase == PHASE_HTTP) {
        c->phase = PHASE_CLOSING;
        worker_list_move(w, c, LIST_CLOSING);
    }
}

static void socket_failed(orr_worker *w, orr_conn *c, int err) {
    if (err != EPIPE && err != ECONNRESET)
        orr_log(ORR_LOG_WARN, conn_ctx(w, c), "write: %s", strerror(err));
    if (c->phase == PHASE_WS) conn_terminate(w, c, ORR_REASON_CLOSED, NULL, 0);
    conn_close_now(w, c);
}

void out_uncork(orr_worker *w) {
    orr_conn *c = w->cork_conn;
    w->cork_conn = NULL;
    if (!c) return;
    size_t n = w->cork_len;
    w->cork_len = 0;
    if (c->phase != PHASE_DEAD && n) {
        size_t done = 0;
        if (c->out_len == c->out_off) {
            ssize_t r = send(c->fd, w->cork, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r < 0) {
                if (errno != EAGAIN && errno != EINTR) {
                    socket_failed(w, c, errno);
                    goto shrink;
                }
                r = 0;
            }
            done = (size_t)r;
        }
        if (done < n) {
            backlog_append(c, w->cork + done, n - done);
            uint16_t before = c->flags;
            c->flags |= CF_WANT_WRITE;
            if (c->out_len - c->out_off > BACKLOG_PAUSE) c->flags |= CF_READ_PAUSED;
            if (c->flags != before) worker_update_events(w, c);
        }
    }
    if (c->phase != PHASE_DEAD && c->out_len == c->out_off) after_flush(w, c);
shrink:
    if (w->cork_cap > CORK_KEEP) {
        free(w->cork);
        w->cork_cap = 64 * 1024;
        w->cork = orr_xmalloc(w->cork_cap);
    }
}

void out_on_writable(orr_worker *w, orr_conn *c) {
    while (c->out_len > c->out_off) {
        ssize_t r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            socket_failed(w, c, errno);
            return;
        }
        c->out_off += (uint32_t)r;
    }
    out_free(c);
    c->flags &= (uint16_t)~(CF_WANT_WRITE | CF_READ_PAUSED);
    worker_update_events(w, c);
    after_flush(w, c);
}
