/*
 * permessage-deflate's compression (deflate.h).
 */
#include "ws/deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct orr_ws_inflater {
    z_stream s;
    int tail; /* how much of the 00 00 ff ff trailer was fed (0..4) */
    bool end; /* a block with BFINAL set ended the stream */
};

struct orr_ws_deflater {
    z_stream s;
    int window_bits;
};

static const uint8_t trailer[4] = {0x00, 0x00, 0xff, 0xff};

orr_ws_inflater *orr_ws_inflater_new(void) {
    orr_ws_inflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (inflateInit2(&z->s, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void orr_ws_inflater_free(orr_ws_inflater *z) {
    if (!z) return;
    inflateEnd(&z->s);
    free(z);
}

void orr_ws_inflate_begin(orr_ws_inflater *z) {
    inflateReset(&z->s);
    z->tail = 0;
    z->end = false;
}

/* One inflate call over (in, n) into (out, cap): bytes written, *used set. */
static long step(orr_ws_inflater *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
                 size_t *used) {
    if (z->end) {
        /* After a block with BFINAL set the stream is over: what follows
         * (RFC 7692 section 7.2.3.5's 0x00, then the trailer) is read and
         * ignored, as zlib-based peers do. */
        *used = n;
        return 0;
    }
    z->s.next_in = (Bytef *)in;
    z->s.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    z->s.next_out = out;
    z->s.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    int rc = inflate(&z->s, Z_SYNC_FLUSH);
    *used = (size_t)(z->s.next_in - in);
    if (rc == Z_STREAM_END)
        z->end = true;
    else if (rc != Z_OK && rc != Z_BUF_ERROR)
        return ORR_WS_EDEFLATE;
    return (long)(z->s.next_out - out);
}

long orr_ws_inflate(orr_ws_inflater *z, const uint8_t **in, size_t *in_len, bool last, uint8_t *out,
                    size_t cap, bool *done) {
    *done = false;
    size_t used;
    long got = 0;
    if (*in_len) {
        got = step(z, *in, *in_len, out, cap, &used);
        if (got < 0) return got;
        *in += used;
        *in_len -= used;
        if (*in_len || !last || (size_t)got == cap) return got;
    } else if (!last) {
        return 0;
    }
    /* All of the message's bytes are in: its trailer, as room allows. */
    while (z->tail < 4 && (size_t)got < cap) {
        long more =
            step(z, trailer + z->tail, (size_t)(4 - z->tail), out + got, cap - (size_t)got, &used);
        if (more < 0) return more;
        z->tail += (int)used;
        got += more;
        if (!used && !more) break;
    }
    /* Output inflate still holds (a full buffer) comes with the next call. */
    if (z->tail == 4 && (size_t)got < cap) {
        long more = step(z, NULL, 0, out + got, cap - (size_t)got, &used);
        if (more < 0) return more;
        got += more;
        *done = (size_t)got < cap;
    }
    return got;
}

orr_ws_deflater *orr_ws_deflater_new(int window_bits) {
    orr_ws_deflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    /* Level 1 and memLevel 5, by measurement (callgrind, 1 KiB and 16 KiB
     * of JSON-like text, each message compressed on its own): level 6 with
     * memLevel 8 (zlib's defaults) costs 1.9x the instructions at 1 KiB
     * (clearing the 64 KiB hash table at every reset is a third of it) and
     * 2.1x at 16 KiB, for messages 10-23% smaller. The state is per worker,
     * so memory is not the reason. */
    if (deflateInit2(&z->s, 1, Z_DEFLATED, -window_bits, 5, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    z->window_bits = window_bits;
    return z;
}

void orr_ws_deflater_free(orr_ws_deflater *z) {
    if (!z) return;
    deflateEnd(&z->s);
    free(z);
}

size_t orr_ws_deflate_bound(const orr_ws_deflater *z, size_t n) {
    /* deflateBound covers the whole stream; a sync flush adds at most 5 bytes,
     * and each stored block 5 more per 16 KiB. */
    return deflateBound((z_streamp)&z->s, (uLong)n) + 5 + 5 * (n / 16384 + 1);
}

size_t orr_ws_deflate(orr_ws_deflater *z, const uint8_t *msg, size_t n, uint8_t *out) {
    deflateReset(&z->s);
    z->s.next_in = (Bytef *)msg;
    z->s.avail_in = (uInt)n;
    z->s.next_out = out;
    z->s.avail_out = (uInt)orr_ws_deflate_bound(z, n);
    deflate(&z->s, Z_SYNC_FLUSH);
    size_t len = (size_t)(z->s.next_out - out);
    if (len >= 4 && memcmp(out + len - 4, trailer, 4) == 0) len -= 4;
    return len;
}
