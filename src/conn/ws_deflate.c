/*
 * permessage-deflate on a connection (RFC 7692), negotiated without
 * context takeover on either side (http/deflate_offer.h): a compressed
 * message is inflated whole when it is complete, with the worker's one
 * inflater, into the worker's input buffer, bounded by max_message_bytes
 * as it inflates; a message the gear sends is compressed with the worker's
 * compressor for the connection's window when it is at least the pool's
 * deflate_min_bytes. A connection holds no zlib state, and the worker's
 * two buffers are given back once they grew past 64 KiB for one message:
 * like the cork and the receive buffer, they are the worker's scratch (at
 * most max_message_bytes each, for the message in hand), not a client's
 * holding, so the budget does not count them.
 */
#include "conn/conn.h"
#include "ws/deflate.h"
#include "ws/utf8.h"

#include <stdlib.h>
#include <string.h>

#define STEP (16u * 1024) /* inflated bytes per inflate call */
#define KEEP (64u * 1024) /* a buffer larger than this is freed after its message */

/* Makes buf (of *cap bytes) hold at least n. */
static void room(uint8_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return;
    size_t next = *cap ? *cap : STEP;
    while (next < n)
        next *= 2;
    *buf = orr_xrealloc(*buf, next);
    *cap = next;
}

static void shrink(uint8_t **buf, size_t *cap) {
    if (*cap <= KEEP) return;
    free(*buf);
    *buf = NULL;
    *cap = 0;
}

int ws_inflate(conn_worker *w, bool text, const uint8_t *z, size_t n, const uint8_t **out,
               size_t *len) {
    if (!w->inflater && !(w->inflater = orr_ws_inflater_new())) return ORR_WS_EDEFLATE;
    size_t limit = w->node->cfg->max_message_bytes, total = 0;
    orr_ws_inflate_begin(w->inflater);
    const uint8_t *p = z;
    size_t left = n;
    bool done = false;
    while (!done) {
        /* One byte past the limit tells a message that is too big. */
        size_t want = total + STEP < limit + 1 ? total + STEP : limit + 1;
        if (want <= total) return ORR_WS_ETOOBIG;
        room(&w->zin, &w->zin_cap, want);
        long got =
            orr_ws_inflate(w->inflater, &p, &left, true, w->zin + total, want - total, &done);
        if (got < 0) return (int)got;
        total += (size_t)got;
        if (total > limit) return ORR_WS_ETOOBIG;
    }
    if (text && !orr_utf8_valid(w->zin, total)) return ORR_WS_EUTF8;
    *out = w->zin;
    *len = total;
    return 0;
}

uint64_t ws_wire_limit(uint64_t max) {
    /* Deflate's worst case: 5 bytes per stored block of up to 64 KiB, a
     * few more for the stream. */
    return max + max / 8192 + 1024;
}

void ws_inflate_done(conn_worker *w) {
    shrink(&w->zin, &w->zin_cap);
}

bool ws_deflates(const orr_conn *c, size_t n) {
    return c->deflate_bits && c->route && c->route->deflate_min &&
           n >= atomic_load_explicit(c->route->deflate_min, memory_order_relaxed);
}

/* The worker's compressor for a window of `bits` (9..15), made on first use. */
static orr_ws_deflater *deflater(conn_worker *w, int bits) {
    orr_ws_deflater **d = &w->deflaters[bits - 9];
    if (!*d) *d = orr_ws_deflater_new(bits);
    return *d;
}

/* m's form for the window of `bits`: the one published, else compressed
 * here and published (a worker that lost the race uses the winner's). */
static const payload_z *payload_deflated(conn_worker *w, const orr_payload *m, int bits) {
    _Atomic(payload_z *) *head = (_Atomic(payload_z *) *)&m->z;
    payload_z *first = atomic_load_explicit(head, memory_order_acquire), *mine = NULL;
    for (;;) {
        for (payload_z *z = first; z; z = z->next)
            if (z->bits == bits) {
                free(mine);
                return z;
            }
        if (!mine) {
            orr_ws_deflater *d = deflater(w, bits);
            if (!d) return NULL;
            const uint8_t *p = m->bytes + PAYLOAD_HDR_ROOM;
            room(&w->zout, &w->zout_cap, orr_ws_deflate_bound(d, m->len));
            size_t zn = orr_ws_deflate(d, p, m->len, w->zout);
            mine = orr_xmalloc(sizeof *mine + PAYLOAD_HDR_ROOM + zn);
            mine->len = (uint32_t)zn;
            mine->bits = (uint8_t)bits;
            uint8_t hdr[PAYLOAD_HDR_ROOM];
            mine->hdr_len = (uint8_t)orr_ws_header(hdr, ORR_WS_OP_TEXT, true, zn, NULL);
            hdr[0] |= 0x40; /* RSV1: compressed */
            memcpy(mine->bytes + PAYLOAD_HDR_ROOM - mine->hdr_len, hdr, mine->hdr_len);
            memcpy(mine->bytes + PAYLOAD_HDR_ROOM, w->zout, zn);
            shrink(&w->zout, &w->zout_cap);
        }
        mine->next = first;
        if (atomic_compare_exchange_weak_explicit(head, &first, mine, memory_order_acq_rel,
                                                  memory_order_acquire))
            return mine;
    }
}

/* A shared payload compressed: its frame as encoded once when it is text
 * in one frame, else framed here from its compressed bytes. */
static bool out_payload(conn_worker *w, orr_conn *c, uint8_t opcode, const orr_payload *m) {
    const payload_z *z = payload_deflated(w, m, c->deflate_bits);
    if (!z) return false;
    if (m->len > w->cork_big) w->cork_big = m->len;
    if (opcode == ORR_WS_OP_TEXT && z->len <= out_frag_bytes(w))
        out_append(w, z->bytes + PAYLOAD_HDR_ROOM - z->hdr_len, z->hdr_len + z->len);
    else
        out_frame_rsv1(w, opcode, z->bytes + PAYLOAD_HDR_ROOM, z->len);
    return true;
}

void ws_out_data(conn_worker *w, orr_conn *c, uint8_t opcode, const void *p, size_t n,
                 const orr_payload *m) {
    if (m && out_payload(w, c, opcode, m)) return;
    orr_ws_deflater *d = deflater(w, c->deflate_bits);
    if (!d) {
        out_frame(w, opcode, p, n);
        return;
    }
    room(&w->zout, &w->zout_cap, orr_ws_deflate_bound(d, n));
    size_t zn = orr_ws_deflate(d, p, n, w->zout);
    if (n > w->cork_big) w->cork_big = n;
    out_frame_rsv1(w, opcode, w->zout, zn);
    shrink(&w->zout, &w->zout_cap);
}
