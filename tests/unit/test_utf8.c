/*
 * Streaming UTF-8 validator: boundary code points, every class of invalid
 * input, every split of every sample, and a brute-force comparison against a
 * reference decoder written here in a different way (by code point value
 * rather than by byte ranges). Inputs sit right before a PROT_NONE page, so
 * the word-at-a-time ASCII path cannot read past the end unnoticed.
 */
#include "utf8_ref.h"
#include "ws/utf8.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- guard page ----------------------------------------------------------- */

typedef struct guard {
    uint8_t *map;
    size_t size; /* mapped bytes, the guard page included */
} guard;

/* Copy `n` bytes so that the last one sits right before an inaccessible page. */
static uint8_t *guard_put(guard *g, const uint8_t *s, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (n + page - 1) / page * page;
    if (data == 0) data = page;
    g->size = data + page;
    g->map = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g->map != MAP_FAILED);
    cr_assert(mprotect(g->map + data, page, PROT_NONE) == 0);
    uint8_t *p = g->map + data - n;
    if (n) memcpy(p, s, n);
    return p;
}

static void guard_free(guard *g) {
    munmap(g->map, g->size);
}

/* ---- feeding helpers ------------------------------------------------------ */

/* The verdict of one way of feeding: final state, and the absolute bad offset. */
typedef struct verdict {
    uint32_t state;
    size_t bad;
} verdict;

/* Feed s in pieces ending at the given cut points (the last piece runs to n). */
static verdict feed_cuts(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts) {
    verdict v = {ORR_UTF8_ACCEPT, 0};
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        size_t bad = (size_t)-1;
        v.state = orr_utf8_feed(v.state, s + start, end - start, &bad);
        if (v.state == ORR_UTF8_REJECT) {
            cr_assert(bad < end - start, "bad_off %zu outside a piece of %zu", bad, end - start);
            v.bad = start + bad;
            return v;
        }
        start = end;
    }
    return v;
}

static verdict feed_bytewise(const uint8_t *s, size_t n) {
    verdict v = {ORR_UTF8_ACCEPT, 0};
    for (size_t i = 0; i < n; i++) {
        size_t bad = (size_t)-1;
        v.state = orr_utf8_feed(v.state, s + i, 1, &bad);
        if (v.state == ORR_UTF8_REJECT) {
            cr_assert_eq(bad, 0);
            v.bad = i;
            return v;
        }
    }
    return v;
}

static void expect_same(verdict a, verdict b, const char *how, size_t c1, size_t c2) {
    cr_assert_eq(a.state, b.state, "%s (cuts %zu %zu): state %u vs %u", how, c1, c2, a.state,
                 b.state);
    if (a.state == ORR_UTF8_REJECT)
        cr_assert_eq(a.bad, b.bad, "%s (cuts %zu %zu): bad %zu vs %zu", how, c1, c2, a.bad, b.bad);
}

/*
 * Check `s` against the reference, fed whole (before a guard page), in every
 * split into two and three pieces, and one byte at a time. Returns the whole
 * verdict.
 */
static verdict check_all(const uint8_t *src, size_t n) {
    guard g;
    const uint8_t *s = guard_put(&g, src, n);
    verdict whole = feed_cuts(s, n, NULL, 0);

    size_t ref_bad = 0;
    int ref = ref_check(s, n, &ref_bad);
    switch (ref) {
    case REF_OK:
        cr_assert_eq(whole.state, ORR_UTF8_ACCEPT);
        break;
    case REF_PARTIAL:
        cr_assert(whole.state != ORR_UTF8_ACCEPT && whole.state != ORR_UTF8_REJECT,
                  "partial input gave state %u", whole.state);
        break;
    default:
        cr_assert_eq(whole.state, ORR_UTF8_REJECT);
        cr_assert_eq(whole.bad, ref_bad, "bad %zu, reference %zu", whole.bad, ref_bad);
    }
    cr_assert_eq(orr_utf8_valid(s, n), ref == REF_OK);

    expect_same(whole, feed_bytewise(s, n), "bytewise", 0, 0);
    for (size_t c1 = 0; c1 <= n; c1++) {
        size_t cuts[2] = {c1, 0};
        expect_same(whole, feed_cuts(s, n, cuts, 1), "two pieces", c1, 0);
        if (n > 48) continue; /* the three-piece splits are quadratic */
        for (size_t c2 = c1; c2 <= n; c2++) {
            cuts[1] = c2;
            expect_same(whole, feed_cuts(s, n, cuts, 2), "three pieces", c1, c2);
        }
    }
    guard_free(&g);
    return whole;
}

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void expect_valid(const uint8_t *s, size_t n) {
    verdict v = check_all(s, n);
    cr_assert_eq(v.state, ORR_UTF8_ACCEPT);
}

static void expect_bad(const uint8_t *s, size_t n, size_t at) {
    verdict v = check_all(s, n);
    cr_assert_eq(v.state, ORR_UTF8_REJECT);
    cr_assert_eq(v.bad, at, "bad at %zu, expected %zu", v.bad, at);
}

static void expect_partial(const uint8_t *s, size_t n) {
    verdict v = check_all(s, n);
    cr_assert(v.state != ORR_UTF8_ACCEPT && v.state != ORR_UTF8_REJECT);
}

/* ---- boundary cases -------------------------------------------------------- */

/* The smallest and largest code point of each length, and the edges around
 * the surrogates and above the last plane. */
static const char *const boundaries[] = {
    "\x00",             /* U+0000 */
    "\x7F",             /* U+007F */
    "\xC2\x80",         /* U+0080 */
    "\xDF\xBF",         /* U+07FF */
    "\xE0\xA0\x80",     /* U+0800 */
    "\xED\x9F\xBF",     /* U+D7FF */
    "\xEE\x80\x80",     /* U+E000 */
    "\xEF\xBF\xBD",     /* U+FFFD */
    "\xEF\xBF\xBE",     /* U+FFFE: a noncharacter, still valid UTF-8 */
    "\xEF\xBF\xBF",     /* U+FFFF */
    "\xF0\x90\x80\x80", /* U+10000 */
    "\xF3\xBF\xBF\xBF", /* U+FFFFF */
    "\xF4\x80\x80\x80", /* U+100000 */
    "\xF4\x8F\xBF\xBF", /* U+10FFFF */
};

static size_t blen(size_t k) {
    return k == 0 ? 1 : strlen(boundaries[k]); /* U+0000 is a NUL */
}

Test(utf8, boundary_code_points_are_valid) {
    for (size_t k = 0; k < sizeof boundaries / sizeof boundaries[0]; k++)
        expect_valid((const uint8_t *)boundaries[k], blen(k));
    expect_valid(S(""));
}

Test(utf8, surrogates_rejected_at_second_byte) {
    expect_bad(S("\xED\xA0\x80"), 1);             /* U+D800 */
    expect_bad(S("\xED\xAD\xBF"), 1);             /* U+DB7F */
    expect_bad(S("\xED\xAE\x80"), 1);             /* U+DB80 */
    expect_bad(S("\xED\xAF\xBF"), 1);             /* U+DBFF */
    expect_bad(S("\xED\xB0\x80"), 1);             /* U+DC00 */
    expect_bad(S("\xED\xBE\x80"), 1);             /* U+DF80 */
    expect_bad(S("\xED\xBF\xBF"), 1);             /* U+DFFF */
    expect_bad(S("\xED\xA0\x80\xED\xB0\x80"), 1); /* a CESU-8 pair: U+10000 */
    expect_bad(S("\xED\xAF\xBF\xED\xBF\xBF"), 1); /* U+10FFFF as a pair */
    expect_bad(S("ab\xED\xA0"), 3);
}

Test(utf8, above_u10ffff_rejected) {
    expect_bad(S("\xF4\x90\x80\x80"), 1); /* U+110000 */
    expect_bad(S("\xF4\xBF\xBF\xBF"), 1);
    expect_bad(S("\xF4\x90"), 1);
    for (unsigned b = 0xF5; b <= 0xFF; b++) {
        uint8_t s[4] = {(uint8_t)b, 0x80, 0x80, 0x80};
        expect_bad(s, 1, 0);
        expect_bad(s, 4, 0);
    }
    expect_bad(S("\xF8\x88\x80\x80\x80"), 0);     /* old 5-byte form, U+200000 */
    expect_bad(S("\xFC\x84\x80\x80\x80\x80"), 0); /* old 6-byte form, U+4000000 */
    expect_bad(S("\xFE"), 0);
    expect_bad(S("\xFF"), 0);
    expect_bad(S("\xFE\xFE\xFF\xFF"), 0);
}

Test(utf8, overlongs_rejected) {
    /* Two-byte: C0 and C1 can only start overlongs, so the lead is to blame. */
    expect_bad(S("\xC0\x80"), 0);
    expect_bad(S("\xC0\xAF"), 0); /* "/" */
    expect_bad(S("\xC1\xBF"), 0); /* U+007F, the largest two-byte overlong */
    expect_bad(S("\xC0"), 0);
    expect_bad(S("\xC1"), 0);
    /* Three-byte: E0 80..9F. */
    expect_bad(S("\xE0\x80\x80"), 1);
    expect_bad(S("\xE0\x80\xAF"), 1);
    expect_bad(S("\xE0\x9F\xBF"), 1); /* U+07FF */
    expect_bad(S("\xE0\x9F"), 1);
    /* Four-byte: F0 80..8F. */
    expect_bad(S("\xF0\x80\x80\x80"), 1);
    expect_bad(S("\xF0\x80\x80\xAF"), 1);
    expect_bad(S("\xF0\x8F\xBF\xBF"), 1); /* U+FFFF */
    /* The old five- and six-byte overlongs. */
    expect_bad(S("\xF8\x80\x80\x80\xAF"), 0);
    expect_bad(S("\xFC\x80\x80\x80\x80\xAF"), 0);
    expect_bad(S("\xF8\x87\xBF\xBF\xBF"), 0);
    expect_bad(S("\xFC\x83\xBF\xBF\xBF\xBF"), 0);
    /* Every overlong two-byte encoding of U+0000..U+007F. */
    for (unsigned c = 0; c < 0x80; c++) {
        uint8_t s[2] = {(uint8_t)(0xC0 | c >> 6), (uint8_t)(0x80 | (c & 0x3F))};
        expect_bad(s, 2, 0);
    }
}

Test(utf8, stray_continuation_bytes) {
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        uint8_t s[3] = {(uint8_t)b, 'a', (uint8_t)b};
        expect_bad(s, 1, 0);
        expect_bad(s, 3, 0);
        expect_bad(s + 1, 2, 1); /* after ASCII */
    }
    expect_bad(S("\x80\xBF\x80\xBF"), 0);
    expect_bad(S("\xC2\x80\x80"), 2);         /* one too many */
    expect_bad(S("\xE2\x82\xAC\xAC"), 3);     /* after a complete U+20AC */
    expect_bad(S("\xF0\x9F\x98\x80\x80"), 4); /* after a complete U+1F600 */
}

Test(utf8, truncated_at_every_position) {
    for (size_t k = 0; k < sizeof boundaries / sizeof boundaries[0]; k++) {
        const uint8_t *cp = (const uint8_t *)boundaries[k];
        size_t n = blen(k);
        for (size_t cut = 1; cut < n; cut++) {
            uint8_t s[32];
            /* Alone, after ASCII long enough for the word path, and followed
             * by something that is not a continuation. */
            memcpy(s, cp, cut);
            expect_partial(s, cut);
            memcpy(s, "0123456789abcdef", 16);
            memcpy(s + 16, cp, cut);
            expect_partial(s, 16 + cut);
            s[16 + cut] = 'A';
            expect_bad(s, 16 + cut + 1, 16 + cut);
            s[16 + cut] = 0xC3; /* a new lead byte */
            expect_bad(s, 16 + cut + 1, 16 + cut);
            s[16 + cut] = 0xF0;
            expect_bad(s, 16 + cut + 1, 16 + cut);
            s[16 + cut] = 0x00;
            expect_bad(s, 16 + cut + 1, 16 + cut);
        }
    }
}

/* ---- samples: Markus Kuhn's stress test, Autobahn section 6 ----------------- */

Test(utf8, kuhn_and_autobahn_samples) {
    /* "κόσμε", the Greek word in Kuhn's test and Autobahn 6.2-6.4. */
    const uint8_t kosme[] = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";
    size_t kn = sizeof kosme - 1;
    expect_valid(kosme, kn);
    uint8_t s[64];
    /* Autobahn 6.3.1: κόσμε + U+D800 + "edited". */
    memcpy(s, kosme, kn);
    memcpy(s + kn,
           "\xED\xA0\x80"
           "edited",
           9);
    expect_bad(s, kn + 9, kn + 1);
    /* Autobahn 6.4.1-6.4.4: κόσμε, then F4 90 80 80 (U+110000), then "edited". */
    memcpy(s + kn,
           "\xF4\x90\x80\x80"
           "edited",
           10);
    expect_bad(s, kn + 10, kn + 1);
    expect_bad(s, kn + 2, kn + 1);
    expect_partial(s, kn + 1);

    expect_valid(S("Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"));
    expect_valid(S("\xE2\x82\xAC"));                              /* € */
    expect_valid(S("\xF0\x9D\x84\x9E"));                          /* 𝄞, the G clef */
    expect_valid(S("\xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC")); /* 😀 日本 */
    expect_valid(S("\xEF\xBB\xBF"
                   "BOM"));

    /* Kuhn 3.3: sequences with the last continuation byte missing. */
    expect_bad(S("\xC0"), 0);
    expect_bad(S("\xE0\x80"), 1);
    expect_bad(S("\xF0\x80\x80"), 1);
    expect_bad(S("\xF8\x80\x80\x80"), 0);
    expect_bad(S("\xFC\x80\x80\x80\x80"), 0);
    expect_partial(S("\xDF"));
    expect_partial(S("\xEF\xBF"));
    expect_bad(S("\xF7\xBF\xBF"), 0);
    expect_bad(S("\xFB\xBF\xBF\xBF"), 0);
    expect_bad(S("\xFD\xBF\xBF\xBF\xBF"), 0);
    /* Kuhn 3.4: all of 3.3 concatenated. */
    expect_bad(S("\xC0\xE0\x80\xF0\x80\x80\xF8\x80\x80\x80\xFC\x80\x80\x80\x80"
                 "\xDF\xEF\xBF\xF7\xBF\xBF\xFB\xBF\xBF\xBF\xFD\xBF\xBF\xBF\xBF"),
               0);
    expect_bad(S("\xDF\xEF\xBF"), 1);
    /* Kuhn 3.2: lonely start characters followed by a space. */
    for (unsigned b = 0xC0; b <= 0xFD; b++) {
        uint8_t t[2] = {(uint8_t)b, ' '};
        bool lead_ok = (b >= 0xC2 && b <= 0xF4);
        expect_bad(t, 2, lead_ok ? 1 : 0);
    }
}

/* ---- ASCII word path -------------------------------------------------------- */

Test(utf8, ascii_word_path_finds_the_exact_byte) {
    uint8_t s[80];
    const uint8_t bads[] = {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF};
    for (size_t at = 0; at < sizeof s; at++) {
        for (size_t b = 0; b < sizeof bads; b++) {
            memset(s, 'x', sizeof s);
            s[at] = bads[b];
            verdict v = check_all(s, sizeof s);
            cr_assert_eq(v.state, ORR_UTF8_REJECT);
            cr_assert_eq(v.bad, at);
        }
        /* A valid code point at every offset, so the word path restarts
         * after it, and a long tail for the word path to take. */
        memset(s, 'x', sizeof s);
        if (at + 4 <= sizeof s) {
            memcpy(s + at, "\xF0\x9F\x98\x80", 4);
            expect_valid(s, sizeof s);
            s[sizeof s - 1] = 0xE2; /* truncated at the very end */
            if (at + 4 < sizeof s) expect_partial(s, sizeof s);
        }
    }
}

Test(utf8, reject_is_sticky_and_state_carries) {
    size_t bad = 99;
    cr_assert_eq(orr_utf8_feed(ORR_UTF8_REJECT, (const uint8_t *)"abc", 3, &bad), ORR_UTF8_REJECT);
    cr_assert_eq(bad, 0);
    cr_assert_eq(orr_utf8_feed(ORR_UTF8_REJECT, NULL, 0, NULL), ORR_UTF8_REJECT);
    cr_assert_eq(orr_utf8_feed(77, (const uint8_t *)"a", 1, NULL), ORR_UTF8_REJECT);
    cr_assert_eq(orr_utf8_feed(ORR_UTF8_ACCEPT, NULL, 0, NULL), ORR_UTF8_ACCEPT);
    cr_assert_eq(orr_utf8_feed(ORR_UTF8_ACCEPT, (const uint8_t *)"\xFF", 1, NULL), ORR_UTF8_REJECT);
    uint32_t st = orr_utf8_feed(ORR_UTF8_ACCEPT, (const uint8_t *)"\xF0\x9F", 2, NULL);
    cr_assert(st != ORR_UTF8_ACCEPT && st != ORR_UTF8_REJECT);
    cr_assert_eq(orr_utf8_feed(st, NULL, 0, NULL), st); /* an empty piece changes nothing */
    cr_assert_eq(orr_utf8_feed(st, (const uint8_t *)"\x98\x80", 2, NULL), ORR_UTF8_ACCEPT);
    cr_assert_eq(orr_utf8_valid((const uint8_t *)"\xF0\x9F", 2), 0);
    cr_assert_eq(orr_utf8_valid(NULL, 0), 1);
}

/* ---- brute force against the reference --------------------------------------- */

/* Compare the validator with the reference on one sequence, fed whole and
 * split after its first byte. Returns false on a mismatch (asserting in this
 * loop would be too slow). */
static bool agrees(const uint8_t *s, size_t n) {
    size_t rbad = 0, bad = 0, bad2 = 0;
    int ref = ref_check(s, n, &rbad);
    uint32_t st = orr_utf8_feed(ORR_UTF8_ACCEPT, s, n, &bad);
    switch (ref) {
    case REF_OK:
        if (st != ORR_UTF8_ACCEPT) return false;
        break;
    case REF_PARTIAL:
        if (st == ORR_UTF8_ACCEPT || st == ORR_UTF8_REJECT) return false;
        break;
    default:
        if (st != ORR_UTF8_REJECT || bad != rbad) return false;
    }
    uint32_t st1 = orr_utf8_feed(ORR_UTF8_ACCEPT, s, 1, &bad2);
    if (st1 == ORR_UTF8_REJECT) return st == ORR_UTF8_REJECT && bad == 0;
    uint32_t st2 = orr_utf8_feed(st1, s + 1, n - 1, &bad2);
    return st2 == st && (st != ORR_UTF8_REJECT || bad2 + 1 == bad);
}

Test(utf8, brute_force_one_two_three_bytes) {
    uint8_t s[3];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        if (!agrees(s, 1)) cr_assert_fail("mismatch on %02X", a);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            if (!agrees(s, 2)) cr_assert_fail("mismatch on %02X %02X", a, b);
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                if (!agrees(s, 3)) cr_assert_fail("mismatch on %02X %02X %02X", a, b, c);
            }
        }
    }
}

/* xorshift64*: a fixed, fast random sequence. */
static uint64_t rnd(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

Test(utf8, brute_force_four_bytes_sampled) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint8_t s[4];
    for (long k = 0; k < (1L << 22); k++) {
        uint64_t r = rnd(&x);
        /* Half the time a lead byte F0..F4 followed by continuation bytes,
         * which is where the interesting cases are; otherwise any bytes. */
        if (r & 1) {
            s[0] = (uint8_t)(0xF0 + (r >> 8) % 5);
            s[1] = (uint8_t)(0x80 | (r >> 16 & 0x3F));
            s[2] = (uint8_t)(0x80 | (r >> 24 & 0x3F));
            s[3] = (uint8_t)(0x80 | (r >> 32 & 0x3F));
            /* ... and now and then one byte anywhere. */
            if ((r >> 40 & 7) == 0) s[r >> 44 & 3] = (uint8_t)(r >> 48);
        } else {
            memcpy(s, &r, 4);
        }
        if (!agrees(s, 4))
            cr_assert_fail("mismatch on %02X %02X %02X %02X", s[0], s[1], s[2], s[3]);
    }
    /* Every four-byte code point with F4 and F0 leads near their limits. */
    for (unsigned b = 0x80; b <= 0xBF; b++)
        for (unsigned c = 0x80; c <= 0xBF; c++) {
            uint8_t t[2][4] = {{0xF0, (uint8_t)b, (uint8_t)c, 0x80},
                               {0xF4, (uint8_t)b, (uint8_t)c, 0xBF}};
            for (int k = 0; k < 2; k++)
                if (!agrees(t[k], 4))
                    cr_assert_fail("mismatch on %02X %02X %02X %02X", t[k][0], b, c, t[k][3]);
        }
}

Test(utf8, random_mixed_strings_all_splits) {
    /* Strings built from valid code points, ASCII runs and, sometimes, one
     * bad byte, checked in every split. */
    static const char *const parts[] = {"a",
                                        "hello world, ",
                                        "\xCE\xBA",
                                        "\xE2\x82\xAC",
                                        "\xF0\x9F\x98\x80",
                                        "\xED\x9F\xBF",
                                        "\xF4\x8F\xBF\xBF",
                                        "0123456789"};
    static const uint8_t poison[] = {0x80, 0xC0, 0xED, 0xF4, 0xFF, 0xE0};
    uint64_t x = 12345;
    for (int round = 0; round < 300; round++) {
        uint8_t s[48];
        size_t n = 0;
        for (;;) {
            const char *p = parts[rnd(&x) % (sizeof parts / sizeof parts[0])];
            size_t pl = strlen(p);
            if (n + pl > sizeof s) break;
            memcpy(s + n, p, pl);
            n += pl;
        }
        if (round % 2) s[rnd(&x) % n] = poison[rnd(&x) % sizeof poison];
        check_all(s, n);
    }
}
