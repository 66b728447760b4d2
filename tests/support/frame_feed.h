/*
 * Test support for the frame reader: building client/server streams and
 * feeding them whole, byte by byte, in every two-piece split and in random
 * splits, each piece placed just before a PROT_NONE page, checking the event
 * contract on every chunk. Header-only, for tests/unit/test_frame*.c.
 */
#ifndef ORR_TEST_FRAME_FEED_H
#define ORR_TEST_FRAME_FEED_H

#include "ws/frame.h"
#include "ws/utf8.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { FIN = 0x80, RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10 };
enum { TEXT = ORR_WS_OP_TEXT, BIN = ORR_WS_OP_BINARY, CONT = ORR_WS_OP_CONT };
enum { CLOSE = ORR_WS_OP_CLOSE, PING = ORR_WS_OP_PING, PONG = ORR_WS_OP_PONG };

static const uint8_t MASK[4] __attribute__((unused)) = {0x37, 0xfa, 0x21, 0x3d};

/* ---- building streams ------------------------------------------------------- */

typedef struct wire {
    uint8_t *p;
    size_t n, cap;
} wire;

static inline void w_bytes(wire *w, const void *b, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        cr_assert(w->p);
    }
    if (n) memcpy(w->p + w->n, b, n);
    w->n += n;
}

static inline void w_byte(wire *w, unsigned b) {
    uint8_t c = (uint8_t)b;
    w_bytes(w, &c, 1);
}

/* Length encodings: the minimal one, or forced to 7, 16 or 64 bits. */
enum { LEN_MIN, LEN_7, LEN_16, LEN_64 };

/* A frame with first byte b0 (FIN | RSV | opcode), masked with MASK unless
 * `masked` is false. Masks byte by byte, independently of orr_ws_mask. */
static inline void w_frame_as(wire *w, unsigned b0, const void *payload, size_t len, bool masked,
                              int form) {
    unsigned mbit = masked ? 0x80 : 0;
    if (form == LEN_MIN) form = len <= 125 ? LEN_7 : len <= 0xFFFF ? LEN_16 : LEN_64;
    w_byte(w, b0);
    if (form == LEN_7) {
        w_byte(w, mbit | (unsigned)len);
    } else if (form == LEN_16) {
        w_byte(w, mbit | 126);
        w_byte(w, (unsigned)(len >> 8) & 0xFF);
        w_byte(w, (unsigned)len & 0xFF);
    } else {
        w_byte(w, mbit | 127);
        for (int k = 7; k >= 0; k--)
            w_byte(w, (unsigned)((uint64_t)len >> (8 * k)) & 0xFF);
    }
    if (masked) w_bytes(w, MASK, 4);
    size_t at = w->n;
    w_bytes(w, payload, len);
    if (masked)
        for (size_t k = 0; k < len; k++)
            w->p[at + k] ^= MASK[k & 3];
}

/* A masked frame, as a client sends it. */
static inline void w_frame(wire *w, unsigned b0, const char *s, size_t len) {
    w_frame_as(w, b0, s, len, true, LEN_MIN);
}

#define W_FRAME(w, b0, lit) w_frame(w, b0, lit, sizeof(lit) - 1)

/* ---- feeding with checks --------------------------------------------------- */

typedef struct got_frame {
    uint8_t opcode, msg_opcode;
    bool fin, done;
    uint64_t frame_len;
    size_t off, len; /* payload, in trace.data */
    int chunks;
} got_frame;

typedef struct trace {
    got_frame *fr;
    int nfr;
    uint8_t *data;
    size_t used;
    int err;
    size_t err_at; /* absolute stream offset of the byte to blame */
    long calls;
} trace;

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_CUT, SPLIT_RANDOM };

typedef struct splitter {
    int mode;
    size_t cut;    /* SPLIT_CUT: the first piece's length */
    uint64_t seed; /* SPLIT_RANDOM */
} splitter;

/* xorshift64*: a fixed, fast random sequence. */
static inline uint64_t rnd(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static inline size_t next_piece(splitter *sp, size_t pos, size_t left) {
    size_t k;
    switch (sp->mode) {
    case SPLIT_BYTES:
        return 1;
    case SPLIT_CUT:
        return pos < sp->cut ? sp->cut - pos : left;
    case SPLIT_RANDOM:
        switch (rnd(&sp->seed) % 5) {
        case 0:
        case 1:
            k = 1 + rnd(&sp->seed) % 3;
            break;
        case 2:
        case 3:
            k = 1 + rnd(&sp->seed) % 24;
            break;
        default:
            k = 1 + rnd(&sp->seed) % (left + 1);
            break;
        }
        return k < left ? k : left;
    default:
        return left;
    }
}

static inline void trace_free(trace *t) {
    free(t->fr);
    free(t->data);
}

/*
 * Feed `in` to a fresh reader (limits `max` bytes and `max_frames` frames per
 * message, 0: none) in pieces chosen by `sp`, checking the event contract on
 * every call, and record what comes out.
 */
static inline trace feed_lim(orr_ws_role role, uint64_t max, uint32_t max_frames, const uint8_t *in,
                             size_t n, splitter sp) {
    trace t = {0};
    t.fr = calloc(n / 2 + 2, sizeof *t.fr);
    t.data = malloc(n + 1);
    cr_assert(t.fr && t.data);

    /* One guarded region; each piece is placed to end right at the guard. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t room = (n + page) / page * page;
    uint8_t *map =
        mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(map != MAP_FAILED);
    cr_assert(mprotect(map + room, page, PROT_NONE) == 0);
    uint8_t *end = map + room;

    orr_ws_reader r;
    orr_ws_reader_init(&r, role, max, max_frames);
    size_t pos = 0;
    size_t frame_start = 0; /* stream offset where the current frame's header began */
    unsigned msg = 0;       /* opcode of the open data message, as the test sees it */
    got_frame *open = NULL; /* frame with chunks but no last chunk yet */
    while (pos < n) {
        size_t plen = next_piece(&sp, pos, n - pos);
        uint8_t *g = end - plen;
        memcpy(g, in + pos, plen);
        if (sp.mode == SPLIT_RANDOM && rnd(&sp.seed) % 8 == 0) {
            /* An empty read changes nothing. */
            orr_ws_chunk ch;
            size_t used = 99;
            cr_assert_eq(orr_ws_read(&r, end, 0, &ch, &used), 0);
            cr_assert_eq(used, 0);
        }
        size_t off = 0;
        while (off < plen) {
            orr_ws_chunk ch;
            size_t used = (size_t)-1;
            size_t left = plen - off;
            int rc = orr_ws_read(&r, g + off, left, &ch, &used);
            t.calls++;
            if (rc < 0) {
                cr_assert(used <= left, "error consumed %zu of %zu", used, left);
                t.err = rc;
                t.err_at = pos + off + used;
                size_t again = 99;
                cr_assert_eq(orr_ws_read(&r, g + off, left, &ch, &again), rc, "not sticky");
                cr_assert_eq(again, 0);
                goto done;
            }
            if (rc == 0) {
                cr_assert_eq(used, left, "returned 0 having consumed %zu of %zu", used, left);
                off = plen;
                break;
            }
            cr_assert_eq(rc, 1);
            cr_assert(used >= 1 && used <= left, "consumed %zu of %zu", used, left);
            cr_assert(ch.data + ch.len == g + off + used, "chunk does not end where consumed");
            cr_assert(ch.len > 0 || ch.frame_len == 0, "empty chunk of a non-empty frame");
            if (ch.first) {
                cr_assert_null(open, "new frame before the last one ended");
                got_frame *f = &t.fr[t.nfr++];
                f->opcode = ch.opcode;
                f->msg_opcode = ch.msg_opcode;
                f->fin = ch.fin;
                f->frame_len = ch.frame_len;
                f->off = t.used;
                open = f;
                /* A frame wholly inside this call's buffer is one chunk. */
                size_t data_at = pos + (size_t)(ch.data - g);
                if (frame_start >= pos + off && data_at + ch.frame_len <= pos + plen)
                    cr_assert(ch.last, "a frame wholly in the buffer came out in pieces");
                if (ch.opcode & 0x8) {
                    cr_assert_eq(ch.msg_opcode, ch.opcode);
                } else {
                    if (ch.opcode != CONT) msg = ch.opcode;
                    cr_assert_eq(ch.msg_opcode, msg, "msg_opcode %u, message is %u", ch.msg_opcode,
                                 msg);
                }
            } else {
                cr_assert_not_null(open, "a continuing chunk with no frame open");
                cr_assert_eq(ch.opcode, open->opcode);
                cr_assert_eq(ch.msg_opcode, open->msg_opcode);
                cr_assert_eq(ch.fin, open->fin);
                cr_assert_eq(ch.frame_len, open->frame_len);
            }
            memcpy(t.data + t.used, ch.data, ch.len);
            t.used += ch.len;
            open->len += ch.len;
            open->chunks++;
            cr_assert(open->len <= open->frame_len);
            if (ch.last) {
                cr_assert_eq(open->len, open->frame_len, "last chunk before the frame's end");
                open->done = true;
                if (!(open->opcode & 0x8) && open->fin) msg = 0;
                open = NULL;
                frame_start = pos + off + used;
            }
            off += used;
        }
        pos += plen;
    }
done:
    munmap(map, room + page);
    return t;
}

static inline trace feed(orr_ws_role role, uint64_t max, const uint8_t *in, size_t n, splitter sp) {
    return feed_lim(role, max, 0, in, n, sp);
}

/* ---- expectations ----------------------------------------------------------- */

typedef struct exp_frame {
    uint8_t opcode, msg_opcode;
    bool fin;
    const void *data;
    size_t len;
} exp_frame;

typedef struct expect {
    const exp_frame *fr;
    int nfr;
    int err;       /* 0, or the error expected */
    size_t err_at; /* its stream offset */
    /* With an error inside a frame's payload: that frame, whose chunks seen
     * before the error must be a prefix of it. */
    const exp_frame *partial;
} expect;

static inline void check_trace(const trace *t, const expect *e, const char *how) {
    cr_assert_eq(t->err, e->err, "%s: error %d, expected %d", how, t->err, e->err);
    if (e->err)
        cr_assert_eq(t->err_at, e->err_at, "%s: error at %zu, expected %zu", how, t->err_at,
                     e->err_at);
    int done = 0;
    for (int k = 0; k < t->nfr; k++) {
        const got_frame *g = &t->fr[k];
        if (!g->done) {
            cr_assert_eq(k, t->nfr - 1);
            cr_assert(e->err != 0, "%s: stream ended inside a frame", how);
            cr_assert_not_null(e->partial, "%s: unexpected partial frame", how);
            cr_assert_eq(g->opcode, e->partial->opcode);
            cr_assert(g->len <= e->partial->len);
            cr_assert(memcmp(t->data + g->off, e->partial->data, g->len) == 0,
                      "%s: partial payload differs", how);
            continue;
        }
        cr_assert(done < e->nfr, "%s: more frames than expected", how);
        const exp_frame *x = &e->fr[done++];
        cr_assert_eq(g->opcode, x->opcode, "%s: frame %d opcode %u, expected %u", how, k, g->opcode,
                     x->opcode);
        cr_assert_eq(g->msg_opcode, x->msg_opcode, "%s: frame %d msg_opcode", how, k);
        cr_assert_eq(g->fin, x->fin, "%s: frame %d fin", how, k);
        cr_assert_eq(g->len, x->len, "%s: frame %d length %zu, expected %zu", how, k, g->len,
                     x->len);
        cr_assert_eq(g->frame_len, x->len);
        cr_assert(x->len == 0 || memcmp(t->data + g->off, x->data, x->len) == 0,
                  "%s: frame %d payload differs", how, k);
    }
    cr_assert_eq(done, e->nfr, "%s: %d frames, expected %d", how, done, e->nfr);
}

/* Feed in every way and check each against the expectation. */
static inline void check_stream_lim(orr_ws_role role, uint64_t max, uint32_t max_frames,
                                    const uint8_t *in, size_t n, const expect *e) {
    trace t = feed_lim(role, max, max_frames, in, n, (splitter){SPLIT_WHOLE, 0, 0});
    check_trace(&t, e, "whole");
    for (int k = 0; k < t.nfr; k++)
        cr_assert_eq(t.fr[k].chunks, 1, "whole: frame %d in %d chunks", k, t.fr[k].chunks);
    trace_free(&t);

    t = feed_lim(role, max, max_frames, in, n, (splitter){SPLIT_BYTES, 0, 0});
    check_trace(&t, e, "bytewise");
    trace_free(&t);

    if (n <= 600)
        for (size_t cut = 1; cut < n; cut++) {
            t = feed_lim(role, max, max_frames, in, n, (splitter){SPLIT_CUT, cut, 0});
            check_trace(&t, e, "two pieces");
            trace_free(&t);
        }
    int rounds = n <= 4096 ? 200 : 20;
    for (int seed = 1; seed <= rounds; seed++) {
        t = feed_lim(role, max, max_frames, in, n,
                     (splitter){SPLIT_RANDOM, 0, 0x9E3779B97F4A7C15ull * seed});
        check_trace(&t, e, "random split");
        trace_free(&t);
    }
}

static inline void check_stream(orr_ws_role role, uint64_t max, const uint8_t *in, size_t n,
                                const expect *e) {
    check_stream_lim(role, max, 0, in, n, e);
}

static inline void check_frames(orr_ws_role role, const wire *w, const exp_frame *fr, int nfr) {
    expect e = {fr, nfr, 0, 0, NULL};
    check_stream(role, 0, w->p, w->n, &e);
}

static inline void check_error(orr_ws_role role, uint64_t max, const wire *w, int err, size_t at) {
    expect e = {NULL, 0, err, at, NULL};
    check_stream(role, max, w->p, w->n, &e);
}

#define X(op, mop, fin, lit)                                                                       \
    { op, mop, fin, lit, sizeof(lit) - 1 }

#endif
