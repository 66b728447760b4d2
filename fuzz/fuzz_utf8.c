/*
 * libFuzzer target for the streaming UTF-8 validator. The input is checked
 * against a reference decoder that works by code point value rather than by
 * byte ranges, and fed whole, one byte at a time, and in splits derived from
 * the input; every way must give the same state and the same bad offset.
 */
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

enum { REF_OK, REF_BAD, REF_PARTIAL };

/* Whether leading bits `cp` with `rem` continuation bytes to come can still
 * reach a valid code point of at least `min`. */
static bool ref_viable(uint32_t cp, unsigned rem, uint32_t min) {
    uint32_t lo = cp << (6 * rem);
    uint32_t hi = lo | ((1u << (6 * rem)) - 1);
    if (lo < min) lo = min;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

static int ref_check(const uint8_t *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        unsigned need;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            *bad = i;
            return REF_BAD;
        }
        if (!ref_viable(cp, need, min)) {
            *bad = i;
            return REF_BAD;
        }
        for (unsigned k = 1; k <= need; k++) {
            if (i + k >= n) return REF_PARTIAL;
            uint8_t c = s[i + k];
            if ((c & 0xC0) != 0x80) {
                *bad = i + k;
                return REF_BAD;
            }
            cp = cp << 6 | (c & 0x3F);
            if (!ref_viable(cp, need - k, min)) {
                *bad = i + k;
                return REF_BAD;
            }
        }
        i += need + 1;
    }
    return REF_OK;
}

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
