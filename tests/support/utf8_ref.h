/*
 * A slow, obviously-correct UTF-8 reference decoder that the unit tests and
 * the fuzzer compare orr_utf8_feed against. Header-only, for tests.
 */
#ifndef ORR_TEST_UTF8_REF_H
#define ORR_TEST_UTF8_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REF_OK, REF_BAD, REF_PARTIAL };

/*
 * Whether a code point whose leading bits are `cp`, with `rem` continuation
 * bytes still to come, can still turn out valid: the values it can reach form
 * the interval [cp << 6*rem, (cp+1) << 6*rem), which must meet the valid
 * range for its length minus the surrogates.
 */
static bool ref_viable(uint32_t cp, unsigned rem, uint32_t min) {
    uint32_t lo = cp << (6 * rem);
    uint32_t hi = lo | ((1u << (6 * rem)) - 1);
    if (lo < min) lo = min;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* REF_OK, REF_PARTIAL (a valid prefix), or REF_BAD with *bad the first byte
 * after which no continuation could make the input valid. */
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
            *bad = i; /* a continuation byte, or F8..FF */
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

#endif
