/*
 * The inflate path of permessage-deflate (src/ws/deflate.c) on network
 * bytes: any input, fed in pieces into small outputs, either inflates or
 * is refused, and stops when the caller's bound is reached; and what the
 * server compresses always inflates back to itself.
 */
#include "ws/deflate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) abort();
}

static orr_ws_inflater *inf;

/* Inflated length of (msg, n), or -1 refused, -2 past limit. */
static long inflate_all(const uint8_t *msg, size_t n, size_t step, size_t cap, uint8_t *out,
                        size_t limit) {
    uint8_t chunk[97];
    if (cap > sizeof chunk) cap = sizeof chunk;
    orr_ws_inflate_begin(inf);
    size_t total = 0, fed = 0;
    for (;;) {
        size_t piece = n - fed < step ? n - fed : step;
        const uint8_t *p = msg + fed;
        size_t left = piece;
        bool last = fed + piece == n, done = false;
        int rounds = 0;
        do {
            long got = orr_ws_inflate(inf, &p, &left, last, chunk, cap, &done);
            if (got < 0) return -1;
            check((size_t)got <= cap && p <= msg + fed + piece);
            if (total + (size_t)got > limit) return -2;
            if (out) memcpy(out + total, chunk, (size_t)got);
            total += (size_t)got;
            check(++rounds < 10000000);
        } while (left || (last && !done));
        fed += piece;
        if (last) return (long)total;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!inf) inf = orr_ws_inflater_new();
    if (size < 2) return 0;
    size_t step = (size_t)(data[0] % 32) + 1, cap = (size_t)(data[1] % 96) + 1;
    data += 2;
    size -= 2;
    /* As compressed bytes from a client, bounded at 64 KiB. */
    long r = inflate_all(data, size, step, cap, NULL, 65536);
    check(r >= -2 && r <= 65536);
    /* As a message the server compresses: it comes back as it was. */
    static orr_ws_deflater *def;
    if (!def) def = orr_ws_deflater_new(9 + (int)(size % 7));
    uint8_t *z = malloc(orr_ws_deflate_bound(def, size)), *back = malloc(size + 1);
    size_t zn = orr_ws_deflate(def, data, size, z);
    check(inflate_all(z, zn, step, cap, back, size) == (long)size);
    check(memcmp(back, data, size) == 0);
    free(z);
    free(back);
    return 0;
}
