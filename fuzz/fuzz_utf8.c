/*
 * libFuzzer target for the streaming UTF-8 validator. The input is checked
 * against a reference decoder that works by code point value rather than by
 * byte ranges, and fed whole, one byte at a time, and in splits derived from
 * the input; every way must give the same state and the same bad offset.
 */
#include "utf8_ref.h"
#include "ws/utf8.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

/* Feed in pieces of sizes drawn from `seed` (0: one byte at a time). */
static uint32_t feed_split(const uint8_t *s, size_t n, uint64_t seed, size_t *bad) {
    uint32_t st = ORR_UTF8_ACCEPT;
    size_t pos = 0;
    while (pos < n) {
        size_t k = 1;
        if (seed) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            k = 1 + (size_t)(seed % (seed & 1 ? 20 : n - pos + 1));
            if (k > n - pos) k = n - pos;
        }
        /* Each piece in its own exact-size allocation, so ASan sees a read
         * past the piece and not just past the whole input. */
        uint8_t *piece = malloc(k);
        CHECK(piece != NULL);
        memcpy(piece, s + pos, k);
        size_t b = (size_t)-1;
        st = orr_utf8_feed(st, piece, k, &b);
        free(piece);
        if (st == ORR_UTF8_REJECT) {
            CHECK(b < k);
            *bad = pos + b;
            return st;
        }
        pos += k;
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t bad = 0, rbad = 0;
    uint32_t st = orr_utf8_feed(ORR_UTF8_ACCEPT, data, size, &bad);
    int ref = ref_check(data, size, &rbad);
    switch (ref) {
    case REF_OK:
        CHECK(st == ORR_UTF8_ACCEPT);
        break;
    case REF_PARTIAL:
        CHECK(st != ORR_UTF8_ACCEPT && st != ORR_UTF8_REJECT);
        break;
    default:
        CHECK(st == ORR_UTF8_REJECT && bad == rbad);
    }
    CHECK(orr_utf8_valid(data, size) == (ref == REF_OK));

    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < size && k < 16; k++)
        seed = (seed ^ data[k]) * 0x100000001B3ull;
    for (int round = 0; round < 3; round++) {
        size_t b2 = 0;
        uint32_t st2 = feed_split(data, size, round == 0 ? 0 : seed + (uint64_t)round, &b2);
        CHECK(st2 == st);
        if (st == ORR_UTF8_REJECT) CHECK(b2 == bad);
    }
    return 0;
}
