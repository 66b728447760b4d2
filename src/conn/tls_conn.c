/*
 * A TLS connection's side of src/conn: the handshake, driven by readiness
 * (level-triggered, like every socket here), then records read into the
 * worker's receive buffer and handed to the phase as plain reads are.
 * Writes go through conn_write (conn.h). handshake_timeout_ms runs from the
 * accept (LIST_HTTP), through the handshake, to the end of the first head.
 *
 * OpenSSL reads ahead (one read(2) per readiness), so records may wait
 * inside it while the socket is not readable: a readable event reads until
 * none waits, and a connection whose reads were paused with some waiting is
 * queued on the worker's tls_kicks when they resume.
 */
#include "common/log.h"
#include "conn/conn.h"

#include <stdlib.h>
#include <string.h>

static uint32_t slot_of(const orr_conn *c) {
    return (uint32_t)(c->id >> 32) & 0xffffffu;
}

int conn_tls_start(conn_worker *w, orr_conn *c) {
    uint32_t slot = slot_of(c);
    if (slot >= w->tls_cap) {
        uint32_t cap = w->tls_cap ? w->tls_cap : 1024;
        while (cap <= slot)
            cap *= 2;
        w->tls_conns = orr_xrealloc(w->tls_conns, cap * sizeof *w->tls_conns);
        memset(w->tls_conns + w->tls_cap, 0, (cap - w->tls_cap) * sizeof *w->tls_conns);
        w->tls_cap = cap;
    }
    orr_tls_conn *s = orr_tls_conn_new(w->tls, c->fd);
    if (!s) return -1;
    w->tls_conns[slot] = s;
    c->flags |= CF_TLS | CF_TLS_HS;
    return 0;
}

void conn_tls_end(conn_worker *w, orr_conn *c) {
    uint32_t slot = slot_of(c);
    orr_tls_conn_free(w->tls_conns[slot]);
    w->tls_conns[slot] = NULL;
    c->flags &= (uint16_t) ~(CF_TLS | CF_TLS_HS);
}

/* EPOLLOUT only while the handshake waits to write. */
static void want_write(conn_worker *w, orr_conn *c, bool on) {
    uint16_t was = c->flags;
    if (on)
        c->flags |= CF_WANT_WRITE;
    else
        c->flags &= (uint16_t)~CF_WANT_WRITE;
    if (c->flags != was) conn_update_events(w, c);
}

/* The handshake's next step: true once it is done (reads may follow). */
static bool handshake(conn_worker *w, orr_conn *c) {
    char why[160], ip[64];
    int rc = orr_tls_handshake(conn_tls_of(w, c), why, sizeof why);
    if (rc == ORR_EAGAIN || rc == ORR_TLS_EWANT_WRITE) {
        want_write(w, c, rc == ORR_TLS_EWANT_WRITE);
        return false;
    }
    if (rc < 0) {
        orr_log(ORR_LOG_INFO, NULL, "TLS handshake from %s failed: %s: closed",
                conn_ip(w, c, ip, sizeof ip), why);
        conn_close_now(w, c);
        return false;
    }
    c->flags &= (uint16_t)~CF_TLS_HS;
    want_write(w, c, false);
    return true;
}

void conn_tls_on_writable(conn_worker *w, orr_conn *c) {
    if (handshake(w, c)) conn_tls_on_readable(w, c);
}

/* Records until none waits inside OpenSSL (at most one read(2) of the
 * socket's bytes: the socket stays readable while more wait in it). */
static void read_records(conn_worker *w, orr_conn *c) {
    orr_tls_conn *s = conn_tls_of(w, c);
    do {
        ssize_t n = orr_tls_read(s, w->rbuf, w->rbuf_size);
        if (n == ORR_EAGAIN) return;
        if (n <= 0) {
            conn_peer_gone(w, c);
            return;
        }
        if (!conn_input(w, c, (size_t)n)) return;
    } while (orr_tls_pending(s));
}

void conn_tls_on_readable(conn_worker *w, orr_conn *c) {
    if ((c->flags & CF_TLS_HS) && !handshake(w, c)) return;
    read_records(w, c);
}

void conn_tls_resumed(conn_worker *w, orr_conn *c) {
    if ((c->flags & CF_TLS_HS) || !orr_tls_pending(conn_tls_of(w, c))) return;
    if (w->n_tls_kicks == w->cap_tls_kicks) {
        w->cap_tls_kicks = w->cap_tls_kicks ? w->cap_tls_kicks * 2 : 16;
        w->tls_kicks = orr_xrealloc(w->tls_kicks, w->cap_tls_kicks * sizeof *w->tls_kicks);
    }
    w->tls_kicks[w->n_tls_kicks++] = c->id;
}

void conn_tls_kicked(conn_worker *w, orr_conn *c) {
    if (c->phase == PHASE_DEAD || !(c->flags & CF_TLS) || (c->flags & CF_READ_PAUSED)) return;
    if (orr_tls_pending(conn_tls_of(w, c))) read_records(w, c);
}
