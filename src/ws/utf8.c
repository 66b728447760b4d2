/*
 * Streaming UTF-8 validation with a "shift DFA".
 *
 * The automaton has nine states. Internally a state is a bit offset (a
 * multiple of 6), and each input byte maps to one 64-bit row that packs, in
 * the 6-bit field at every state's offset, the offset of the next state. One
 * step is then a single table load (which does not depend on the state, so
 * the CPU can issue it early) and a shift: next = (row[byte] >> state) & 63.
 * The loop-carried dependency is only the shift and the mask, about two
 * cycles a byte, with no per-byte branch on the byte's class.
 *
 * The states accept exactly RFC 3629 UTF-8. Each byte is checked as soon as
 * it arrives, with the second byte's narrowed ranges after E0, ED, F0 and F4,
 * so the automaton enters REJECT on the first byte after which no
 * continuation could make the input valid: that is the bad offset reported.
 *
 * The external state is the internal offset divided by 6, so ACCEPT is 0 and
 * REJECT is 1 as utf8.h promises, and callers can store it in a uint32_t.
 */
#include "ws/utf8.h"

#include <string.h>

/* Internal states: bit offsets into a row. */
enum {
    S_ACC = 0,  /* between code points */
    S_REJ = 6,  /* invalid; sticky */
    S_C1 = 12,  /* one more continuation byte (80..BF) */
    S_C2 = 18,  /* two more continuation bytes */
    S_E0 = 24,  /* after E0: A0..BF (80..9F would be overlong), then one more */
    S_ED = 30,  /* after ED: 80..9F (A0..BF would be a surrogate), then one more */
    S_C3 = 36,  /* after F1..F3: three more continuation bytes */
    S_F0 = 42,  /* after F0: 90..BF (80..8F would be overlong), then two more */
    S_F4 = 48,  /* after F4: 80..8F (90..BF would be above U+10FFFF), then two more */
    S_COUNT = 9 /* number of states */
};

/*
 * One row per byte class. Every state not named goes to REJECT, and REJECT
 * goes to itself on every byte, which is what makes it sticky.
 */
#define T(from, to) ((uint64_t)(to) << (from))
#define ROW(acc, c1, c2, e0, ed, c3, f0, f4)                                                       \
    (T(S_ACC, acc) | T(S_REJ, S_REJ) | T(S_C1, c1) | T(S_C2, c2) | T(S_E0, e0) | T(S_ED, ed) |     \
     T(S_C3, c3) | T(S_F0, f0) | T(S_F4, f4))

#define R_ASCII ROW(S_ACC, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)
#define R_CONT8 ROW(S_REJ, S_ACC, S_C1, S_REJ, S_C1, S_C2, S_REJ, S_C2)   /* 80..8F */
#define R_CONT9 ROW(S_REJ, S_ACC, S_C1, S_REJ, S_C1, S_C2, S_C2, S_REJ)   /* 90..9F */
#define R_CONTA ROW(S_REJ, S_ACC, S_C1, S_C1, S_REJ, S_C2, S_C2, S_REJ)   /* A0..BF */
#define R_BAD ROW(S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* C0 C1 F5..FF */
#define R_L2 ROW(S_C1, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* C2..DF */
#define R_E0 ROW(S_E0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)
#define R_L3 ROW(S_C2, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* E1..EC EE EF */
#define R_ED ROW(S_ED, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)
#define R_F0 ROW(S_F0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)
#define R_L4 ROW(S_C3, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* F1..F3 */
#define R_F4 ROW(S_F4, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)

#define X2(r) r, r
#define X4(r) X2(r), X2(r)
#define X8(r) X4(r), X4(r)
#define X16(r) X8(r), X8(r)
#define X32(r) X16(r), X16(r)

/* clang-format off */
static const uint64_t utf8_row[] = {
    X32(R_ASCII), X32(R_ASCII), X32(R_ASCII), X32(R_ASCII), /* 00..7F */
    X16(R_CONT8),                                           /* 80..8F */
    X16(R_CONT9),                                           /* 90..9F */
    X32(R_CONTA),                                           /* A0..BF */
    X2(R_BAD),                                              /* C0 C1 */
    X2(R_L2),   X4(R_L2),     X8(R_L2),     X16(R_L2),      /* C2..DF */
    R_E0,                                                   /* E0 */
    X8(R_L3),   X4(R_L3),                                   /* E1..EC */
    R_ED,                                                   /* ED */
    X2(R_L3),                                               /* EE EF */
    R_F0,                                                   /* F0 */
    R_L4,       R_L4,         R_L4,                         /* F1..F3 */
    R_F4,                                                   /* F4 */
    X8(R_BAD),  X2(R_BAD),    R_BAD,                        /* F5..FF */
};
/* clang-format on */
_Static_assert(sizeof utf8_row / sizeof utf8_row[0] == 256, "one row per byte value");

#define HIGH_BITS 0x8080808080808080ull

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ORR_UTF8_LE 1
#else
#define ORR_UTF8_LE 0
#endif

/*
 * Return the index of the first byte at or after `i` that is not ASCII, or
 * `len`. Eight bytes at a time; on little-endian machines the first byte in
 * memory is the lowest, so the count of trailing zero bits of the high-bit
 * mask, over 8, is the number of ASCII bytes before the first other one.
 */
static inline size_t skip_ascii(const uint8_t *s, size_t i, size_t len) {
    while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t hi = w & HIGH_BITS;
        if (hi) return ORR_UTF8_LE ? i + ((size_t)__builtin_ctzll(hi) >> 3) : i;
        i += 8;
    }
    if (i == len) return i;
    if (ORR_UTF8_LE && len >= 8) {
        /* The last 1..7 bytes: load the final word of the buffer, which
         * overlaps bytes already seen, and shift those out. */
        uint64_t w;
        memcpy(&w, s + len - 8, 8);
        w >>= 8 * (8 - (len - i));
        uint64_t hi = w & HIGH_BITS;
        return hi ? i + ((size_t)__builtin_ctzll(hi) >> 3) : len;
    }
    while (i < len && s[i] < 0x80)
        i++;
    return i;
}

uint32_t orr_utf8_feed(uint32_t state, const uint8_t *s, size_t len, size_t *bad_off) {
    /* A state this file never returned is treated as REJECT rather than
     * shifting by more than 63 bits. */
    if (state == ORR_UTF8_REJECT || state >= S_COUNT) {
        if (bad_off) *bad_off = 0;
        return ORR_UTF8_REJECT;
    }
    uint64_t st = (uint64_t)state * 6;
    size_t i = 0;
    while (i < len) {
        /* Between code points and at an ASCII byte, skip the ASCII run a
         * word at a time. Testing the byte first keeps text that is mostly
         * multi-byte (Greek, CJK) from paying a wasted word load after every
         * code point. */
        if (st == S_ACC && s[i] < 0x80) {
            i = skip_ascii(s, i, len);
            if (i == len) break;
        }
        st = (utf8_row[s[i]] >> st) & 63;
        if (st == S_REJ) {
            if (bad_off) *bad_off = i;
            return ORR_UTF8_REJECT;
        }
        i++;
    }
    return (uint32_t)(st / 6);
}

int orr_utf8_valid(const uint8_t *s, size_t len) {
    return orr_utf8_feed(ORR_UTF8_ACCEPT, s, len, NULL) == ORR_UTF8_ACCEPT;
}
