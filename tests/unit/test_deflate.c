/*
 * src/ws/deflate.c: permessage-deflate's compression without context
 * takeover. RFC 7692's own examples, round trips fed a byte at a time into
 * one-byte outputs, bombs stopped by the caller's bound, corrupt streams.
 */
#include "ws/deflate.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static orr_ws_inflater *inf;

static void setup(void) {
    inf = orr_ws_inflater_new();
    cr_assert_not_null(inf);
}

static void teardown(void) {
    orr_ws_inflater_free(inf);
}

TestSuite(deflate, .init = setup, .fini = teardown, .timeout = 60);

/* Inflates msg fed in pieces of `in_step` bytes into outputs of `out_cap`:
 * the length (out holds it), or ORR_WS_EDEFLATE, or -2 past `limit`. */
static long inflate_all(const uint8_t *msg, size_t n, size_t in_step, size_t out_cap, uint8_t *out,
                        size_t limit) {
    orr_ws_inflate_begin(inf);
    size_t total = 0, fed = 0;
    uint8_t *chunk = malloc(out_cap);
    for (;;) {
        size_t piece = n - fed < in_step ? n - fed : in_step;
        const uint8_t *p = msg + fed;
        size_t left = piece;
        bool last = fed + piece == n, done = false;
        do {
            long got = orr_ws_inflate(inf, &p, &left, last, chunk, out_cap, &done);
            if (got < 0) {
                free(chunk);
                return got;
            }
            if (total + (size_t)got > limit) {
                free(chunk);
                return -2;
            }
            if (out) memcpy(out + total, chunk, (size_t)got);
            total += (size_t)got;
        } while (left || (last && !done));
        fed += piece;
        if (last) break;
    }
    free(chunk);
    return (long)total;
}

Test(deflate, the_examples_of_rfc_7692) {
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t n;
    } ex[] = {
        {"7.2.3.1 compressed", {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 7},
        {"7.2.3.3 stored block",
         {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
         11},
        {"7.2.3.4 two blocks",
         {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00},
         13},
        {"7.2.3.5 BFINAL set", {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, 8},
        {"BFINAL, nothing after", {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 7},
        {"sync trailer left in",
         {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff},
         11},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        for (size_t step = 1; step <= ex[i].n; step++)
            for (size_t cap = 1; cap <= 8; cap *= 2) {
                uint8_t out[64];
                long n = inflate_all(ex[i].bytes, ex[i].n, step, cap, out, sizeof out);
                cr_expect_eq(n, 5, "%s, step %zu, cap %zu: %ld", ex[i].what, step, cap, n);
                cr_expect(n == 5 && memcmp(out, "Hello", 5) == 0, "%s", ex[i].what);
            }
}

Test(deflate, round_trips_at_every_window_byte_by_byte) {
    size_t n = 70000;
    uint8_t *msg = malloc(n), *out = malloc(n), *z = NULL;
    srand(7);
    for (size_t i = 0; i < n; i++) /* text-like: compressible, not trivially */
        msg[i] = (uint8_t)("abcdefgh {}:,\"0123456789"[rand() % 24]);
    for (int bits = 9; bits <= 15; bits++) {
        orr_ws_deflater *d = orr_ws_deflater_new(bits);
        cr_assert_not_null(d);
        z = realloc(z, orr_ws_deflate_bound(d, n));
        for (size_t len = 0; len <= n; len = len ? len * 7 : 1) {
            size_t zn = orr_ws_deflate(d, msg, len, z);
            cr_expect(zn < 4 || memcmp(z + zn - 4, "\x00\x00\xff\xff", 4) != 0, "no trailer");
            size_t step = len < 200 ? 1 : 997, cap = len < 200 ? 1 : 4093;
            long got = inflate_all(z, zn, step, cap, out, n);
            cr_expect_eq(got, (long)len, "bits %d, len %zu: %ld", bits, len, got);
            cr_expect(got == (long)len && memcmp(out, msg, len) == 0, "bits %d len %zu", bits, len);
        }
        /* Each message on its own: the same bytes compress the same twice. */
        size_t a = orr_ws_deflate(d, msg, 1000, z);
        uint8_t *z2 = malloc(orr_ws_deflate_bound(d, 1000));
        size_t b = orr_ws_deflate(d, msg, 1000, z2);
        cr_expect(a == b && memcmp(z, z2, a) == 0, "no context taken over");
        free(z2);
        orr_ws_deflater_free(d);
    }
    free(msg);
    free(out);
    free(z);
}

Test(deflate, a_bomb_costs_only_what_the_caller_accepts) {
    /* 256 MiB of zeros in about 256 KiB. */
    size_t big = (size_t)256 << 20, chunk = 1 << 20;
    orr_ws_deflater *d = orr_ws_deflater_new(15);
    uint8_t *zeros = calloc(1, chunk);
    /* Built by hand: 256 stored-free blocks of 1 MiB zeros, each compressed on its own
     * and concatenated as non-final blocks (each ends byte-aligned by its sync flush). */
    size_t bound = orr_ws_deflate_bound(d, chunk) + 4;
    uint8_t *bomb = malloc(bound * (big / chunk)), *one = malloc(bound);
    size_t bn = 0;
    for (size_t i = 0; i < big / chunk; i++) {
        size_t zn = orr_ws_deflate(d, zeros, chunk, one);
        memcpy(bomb + bn, one, zn);
        bn += zn;
        memcpy(bomb + bn, "\x00\x00\xff\xff", 4);
        bn += 4;
    }
    cr_expect_lt(bn, (size_t)2 << 20, "%zu compressed bytes", bn);
    clock_t t0 = clock();
    long got = inflate_all(bomb, bn, bn, 16384, NULL, (size_t)1 << 20);
    double ms = (double)(clock() - t0) * 1000 / CLOCKS_PER_SEC;
    cr_expect_eq(got, -2, "stopped past the bound");
    cr_expect_lt(ms, 200.0, "stopping took %.1f ms", ms);
    /* Unbounded, all of it comes out, in 16 KiB pieces. */
    cr_expect_eq(inflate_all(bomb, bn, 65536, 16384, NULL, big), (long)big);
    free(zeros);
    free(bomb);
    free(one);
    orr_ws_deflater_free(d);
}

Test(deflate, corrupt_streams_are_refused) {
    static const struct {
        uint8_t bytes[8];
        size_t n;
    } bad[] = {
        {{0xff, 0xff, 0xff}, 3},             /* block type 3 */
        {{0x00, 0x05, 0x00, 0x00, 0x00}, 5}, /* stored: LEN and NLEN disagree */
        {{0x0c, 0xc0, 0x81, 0x00, 0x00}, 5}, /* invalid code lengths set */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(inflate_all(bad[i].bytes, bad[i].n, 1, 8, NULL, 1 << 20), ORR_WS_EDEFLATE,
                     "case %zu", i);
    /* The inflater starts clean after a failure. */
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    uint8_t out[8];
    cr_expect_eq(inflate_all(hello, sizeof hello, 7, 8, out, sizeof out), 5);
}

Test(deflate, an_empty_message) {
    orr_ws_deflater *d = orr_ws_deflater_new(15);
    uint8_t z[64];
    size_t zn = orr_ws_deflate(d, (const uint8_t *)"", 0, z);
    cr_expect_leq(zn, 2, "%zu bytes", zn);
    cr_expect_eq(inflate_all(z, zn, 1, 1, NULL, 10), 0);
    /* What clients send for an empty message: one 0x00 byte. */
    cr_expect_eq(inflate_all((const uint8_t *)"\x00", 1, 1, 1, NULL, 10), 0);
    orr_ws_deflater_free(d);
}
