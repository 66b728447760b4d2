/*
 * RFC 6455 frame reader and writer.
 *
 * Every stream is fed whole, one byte at a time, in every split into two
 * pieces (small streams), and in many random splits, and must give the same
 * frames and the same error at the same stream offset each time. Each piece
 * is copied to just before a PROT_NONE page, so a read past the bytes handed
 * to the reader faults. The harness also checks the event contract on every
 * chunk (progress, pointers, first/last, one chunk for a frame wholly in the
 * buffer, the resolved message opcode).
 */
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

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- building streams ------------------------------------------------------- */

typedef struct wire {
    uint8_t *p;
    size_t n, cap;
} wire;

static void w_bytes(wire *w, const void *b, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        cr_assert(w->p);
    }
    if (n) memcpy(w->p + w->n, b, n);
    w->n += n;
}

static void w_byte(wire *w, unsigned b) {
    uint8_t c = (uint8_t)b;
    w_bytes(w, &c, 1);
}

/* Length encodings: the minimal one, or forced to 7, 16 or 64 bits. */
enum { LEN_MIN, LEN_7, LEN_16, LEN_64 };

/* A frame with first byte b0 (FIN | RSV | opcode), masked with MASK unless
 * `masked` is false. Masks byte by byte, independently of orr_ws_mask. */
static void w_frame_as(wire *w, unsigned b0, const void *payload, size_t len, bool masked,
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
static void w_frame(wire *w, unsigned b0, const char *s, size_t len) {
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
static uint64_t rnd(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static size_t next_piece(splitter *sp, size_t pos, size_t left) {
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

static void trace_free(trace *t) {
    free(t->fr);
    free(t->data);
}

/*
 * Feed `in` to a fresh reader in pieces chosen by `sp`, checking the event
 * contract on every call, and record what comes out.
 */
static trace feed(orr_ws_role role, uint64_t max, const uint8_t *in, size_t n, splitter sp) {
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
    orr_ws_reader_init(&r, role, max);
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

static void check_trace(const trace *t, const expect *e, const char *how) {
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
static void check_stream(orr_ws_role role, uint64_t max, const uint8_t *in, size_t n,
                         const expect *e) {
    trace t = feed(role, max, in, n, (splitter){SPLIT_WHOLE, 0, 0});
    check_trace(&t, e, "whole");
    for (int k = 0; k < t.nfr; k++)
        cr_assert_eq(t.fr[k].chunks, 1, "whole: frame %d in %d chunks", k, t.fr[k].chunks);
    trace_free(&t);

    t = feed(role, max, in, n, (splitter){SPLIT_BYTES, 0, 0});
    check_trace(&t, e, "bytewise");
    trace_free(&t);

    if (n <= 600)
        for (size_t cut = 1; cut < n; cut++) {
            t = feed(role, max, in, n, (splitter){SPLIT_CUT, cut, 0});
            check_trace(&t, e, "two pieces");
            trace_free(&t);
        }
    int rounds = n <= 4096 ? 200 : 20;
    for (int seed = 1; seed <= rounds; seed++) {
        t = feed(role, max, in, n, (splitter){SPLIT_RANDOM, 0, 0x9E3779B97F4A7C15ull * seed});
        check_trace(&t, e, "random split");
        trace_free(&t);
    }
}

static void check_frames(orr_ws_role role, const wire *w, const exp_frame *fr, int nfr) {
    expect e = {fr, nfr, 0, 0, NULL};
    check_stream(role, 0, w->p, w->n, &e);
}

static void check_error(orr_ws_role role, uint64_t max, const wire *w, int err, size_t at) {
    expect e = {NULL, 0, err, at, NULL};
    check_stream(role, max, w->p, w->n, &e);
}

#define X(op, mop, fin, lit)                                                                       \
    { op, mop, fin, lit, sizeof(lit) - 1 }

/* ---- RFC 6455 section 5.7 examples ------------------------------------------ */

Test(frame, rfc_single_frame_masked_hello) {
    static const uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const exp_frame fr[] = {X(TEXT, TEXT, true, "Hello")};
    wire w = {0};
    w_bytes(&w, in, sizeof in);
    check_frames(ORR_WS_SERVER, &w, fr, 1);
    /* The same bytes to a client are a protocol error: servers never mask. */
    check_error(ORR_WS_CLIENT, 0, &w, ORR_WS_EPROTO, 1);
    free(w.p);
}

Test(frame, rfc_single_frame_unmasked_hello_client) {
    static const uint8_t in[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const exp_frame fr[] = {X(TEXT, TEXT, true, "Hello")};
    wire w = {0};
    w_bytes(&w, in, sizeof in);
    check_frames(ORR_WS_CLIENT, &w, fr, 1);
    check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 1);
    free(w.p);
}

Test(frame, rfc_fragmented_unmasked_text_client) {
    static const uint8_t in[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    const exp_frame fr[] = {X(TEXT, TEXT, false, "Hel"), X(CONT, TEXT, true, "lo")};
    wire w = {0};
    w_bytes(&w, in, sizeof in);
    check_frames(ORR_WS_CLIENT, &w, fr, 2);
    free(w.p);
}

Test(frame, rfc_ping_and_pong) {
    static const uint8_t ping_masked[] = {0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
                                       0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const exp_frame ping[] = {X(PING, PING, true, "Hello")};
    const exp_frame both[] = {X(PING, PING, true, "Hello"), X(PONG, PONG, true, "Hello")};
    wire w = {0};
    w_bytes(&w, ping_masked, sizeof ping_masked);
    check_frames(ORR_WS_SERVER, &w, ping, 1);
    w.n = 0;
    w_bytes(&w, unmasked, sizeof unmasked);
    check_frames(ORR_WS_CLIENT, &w, both, 2);
    free(w.p);
}

static void rfc_binary_of(size_t len) {
    uint8_t *payload = calloc(len, 1);
    cr_assert(payload);
    for (size_t k = 0; k < len; k++)
        payload[k] = (uint8_t)(k * 7 + 3);
    const exp_frame fr[] = {{BIN, BIN, true, payload, len}};
    wire w = {0};
    /* As in the RFC: unmasked, to a client. */
    w_frame_as(&w, FIN | BIN, payload, len, false, LEN_MIN);
    if (len == 256)
        cr_assert(w.p[0] == 0x82 && w.p[1] == 0x7E && w.p[2] == 0x01 && w.p[3] == 0x00);
    else
        cr_assert(w.p[0] == 0x82 && w.p[1] == 0x7F && w.p[7] == 0x01 && w.p[8] == 0 && w.p[9] == 0);
    check_frames(ORR_WS_CLIENT, &w, fr, 1);
    /* And masked, to a server. */
    w.n = 0;
    w_frame_as(&w, FIN | BIN, payload, len, true, LEN_MIN);
    check_frames(ORR_WS_SERVER, &w, fr, 1);
    free(w.p);
    free(payload);
}

Test(frame, rfc_binary_256_bytes) {
    rfc_binary_of(256);
}

Test(frame, rfc_binary_64k, .timeout = 60) {
    rfc_binary_of(65536);
}

/* ---- zero-length frames and other valid streams ------------------------------- */

Test(frame, zero_length_frames_give_one_empty_chunk) {
    wire w = {0};
    W_FRAME(&w, FIN | TEXT, "");
    W_FRAME(&w, FIN | PING, "");
    W_FRAME(&w, BIN, "");
    W_FRAME(&w, CONT, "");
    W_FRAME(&w, FIN | PONG, "");
    W_FRAME(&w, FIN | CONT, "");
    W_FRAME(&w, FIN | CLOSE, "");
    const exp_frame fr[] = {X(TEXT, TEXT, true, ""),  X(PING, PING, true, ""),
                            X(BIN, BIN, false, ""),   X(CONT, BIN, false, ""),
                            X(PONG, PONG, true, ""),  X(CONT, BIN, true, ""),
                            X(CLOSE, CLOSE, true, "")};
    check_frames(ORR_WS_SERVER, &w, fr, 7);

    /* Fed alone, exactly one chunk, with first and last set. */
    uint8_t one[6] = {0x81, 0x80, 1, 2, 3, 4};
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
    orr_ws_chunk ch;
    size_t used;
    cr_assert_eq(orr_ws_read(&r, one, 6, &ch, &used), 1);
    cr_assert(ch.first && ch.last && ch.fin && ch.len == 0 && ch.frame_len == 0 && used == 6);
    cr_assert_eq(orr_ws_read(&r, one + 6, 0, &ch, &used), 0);
    cr_assert_eq(orr_ws_read(&r, NULL, 0, &ch, &used), 0); /* empty reads, even without a buffer */
    cr_assert_eq(used, 0);
    cr_assert_eq(orr_ws_read(&r, one, 1, &ch, &used), 0);
    cr_assert_eq(orr_ws_read(&r, NULL, 0, &ch, &used), 0);
    cr_assert_eq(used, 0);
    free(w.p);
}

Test(frame, non_minimal_lengths_are_accepted) {
    wire w = {0};
    w_frame_as(&w, FIN | TEXT, "abc", 3, true, LEN_16);
    w_frame_as(&w, FIN | BIN, "de", 2, true, LEN_64);
    w_frame_as(&w, FIN | PING, "", 0, true, LEN_7);
    const exp_frame fr[] = {X(TEXT, TEXT, true, "abc"), X(BIN, BIN, true, "de"),
                            X(PING, PING, true, "")};
    check_frames(ORR_WS_SERVER, &w, fr, 3);
    free(w.p);
}

Test(frame, control_frames_between_fragments) {
    wire w = {0};
    W_FRAME(&w, TEXT, "Hel\xE2\x82");    /* € split across fragments and controls */
    W_FRAME(&w, FIN | PING, "\xFF\xFE"); /* control payloads are not text */
    W_FRAME(&w, CONT, "\xAC");
    W_FRAME(&w, FIN | PONG, "");
    W_FRAME(&w, CONT, "");
    W_FRAME(&w, FIN | CLOSE, "\x03\xE8");
    W_FRAME(&w, FIN | CONT, "lo");
    W_FRAME(&w, BIN, "\xFF"); /* a new message may start now */
    W_FRAME(&w, FIN | PING, "p");
    W_FRAME(&w, FIN | CONT, "\xFE");
    W_FRAME(&w, FIN | TEXT, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5");
    const exp_frame fr[] = {
        X(TEXT, TEXT, false, "Hel\xE2\x82"),
        X(PING, PING, true, "\xFF\xFE"),
        X(CONT, TEXT, false, "\xAC"),
        X(PONG, PONG, true, ""),
        X(CONT, TEXT, false, ""),
        X(CLOSE, CLOSE, true, "\x03\xE8"),
        X(CONT, TEXT, true, "lo"),
        X(BIN, BIN, false, "\xFF"),
        X(PING, PING, true, "p"),
        X(CONT, BIN, true, "\xFE"),
        X(TEXT, TEXT, true, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),
    };
    check_frames(ORR_WS_SERVER, &w, fr, 11);
    free(w.p);
}

Test(frame, many_small_frames_in_one_buffer) {
    wire w = {0};
    exp_frame fr[300];
    static const char *const words[] = {"", "a", "hello", "\xE2\x82\xAC", "0123456789abcdef01"};
    for (int k = 0; k < 300; k++) {
        const char *s = words[k % 5];
        unsigned op = k % 3 == 0 ? BIN : k % 7 == 0 ? PING : TEXT;
        w_frame(&w, FIN | op, s, strlen(s));
        fr[k] = (exp_frame){(uint8_t)op, (uint8_t)op, true, s, strlen(s)};
    }
    expect e = {fr, 300, 0, 0, NULL};
    trace t = feed(ORR_WS_SERVER, 0, w.p, w.n, (splitter){SPLIT_WHOLE, 0, 0});
    check_trace(&t, &e, "whole");
    cr_assert_eq(t.calls, 300); /* one call per frame */
    trace_free(&t);
    for (int seed = 1; seed < 50; seed++) {
        t = feed(ORR_WS_SERVER, 0, w.p, w.n, (splitter){SPLIT_RANDOM, 0, (uint64_t)seed * 977});
        check_trace(&t, &e, "random");
        trace_free(&t);
    }
    t = feed(ORR_WS_SERVER, 0, w.p, w.n, (splitter){SPLIT_BYTES, 0, 0});
    check_trace(&t, &e, "bytewise");
    trace_free(&t);
    free(w.p);
}

Test(frame, big_frame_comes_in_chunks) {
    /* A 4 GiB frame announced, then a little of its payload. */
    uint8_t hdr[14];
    size_t hl = orr_ws_header(hdr, BIN, true, 1ull << 32, MASK);
    cr_assert_eq(hl, 14);
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
    orr_ws_chunk ch;
    size_t used;
    cr_assert_eq(orr_ws_read(&r, hdr, hl, &ch, &used), 0);
    cr_assert_eq(used, hl);
    uint8_t data[10] = {0};
    cr_assert_eq(orr_ws_read(&r, data, 10, &ch, &used), 1);
    cr_assert(ch.first && !ch.last && ch.fin && ch.len == 10 && ch.frame_len == 1ull << 32);
    cr_assert_eq(data[0], MASK[0]); /* zeros unmask to the key */
    cr_assert_eq(data[5], MASK[1]);
    memset(data, 0, sizeof data);
    cr_assert_eq(orr_ws_read(&r, data, 3, &ch, &used), 1);
    cr_assert(!ch.first && !ch.last && ch.len == 3 && used == 3);
    cr_assert_eq(data[0], MASK[2]); /* the mask phase carries over */
    cr_assert_eq(orr_ws_read(&r, data, 0, &ch, &used), 0);
}

/* ---- protocol errors ------------------------------------------------------------ */

Test(frame, unmasked_to_server_and_masked_to_client) {
    wire w = {0};
    w_frame_as(&w, FIN | TEXT, "hi", 2, false, LEN_MIN);
    check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 1);
    w.n = 0;
    w_frame_as(&w, FIN | TEXT, "hi", 2, true, LEN_MIN);
    check_error(ORR_WS_CLIENT, 0, &w, ORR_WS_EPROTO, 1);
    /* After a valid frame, at the second frame's mask bit. */
    w.n = 0;
    W_FRAME(&w, FIN | TEXT, "ok");
    size_t at = w.n + 1;
    w_frame_as(&w, FIN | BIN, "x", 1, false, LEN_MIN);
    const exp_frame fr[] = {X(TEXT, TEXT, true, "ok")};
    expect e = {fr, 1, ORR_WS_EPROTO, at, NULL};
    check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);
    free(w.p);
}

Test(frame, reserved_bits) {
    const unsigned rsv[] = {RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3};
    for (size_t k = 0; k < 4; k++) {
        wire w = {0};
        W_FRAME(&w, FIN | rsv[k] | TEXT, "hi");
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);
        w.n = 0;
        W_FRAME(&w, FIN | rsv[k] | PING, "");
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);
        free(w.p);
    }
}

Test(frame, reserved_opcodes) {
    const unsigned ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        wire w = {0};
        W_FRAME(&w, FIN | ops[k], "hi");
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);
        /* Inside a fragmented message too. */
        w.n = 0;
        W_FRAME(&w, TEXT, "a");
        size_t at = w.n;
        W_FRAME(&w, ops[k], "");
        const exp_frame fr[] = {X(TEXT, TEXT, false, "a")};
        expect e = {fr, 1, ORR_WS_EPROTO, at, NULL};
        check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);
        free(w.p);
    }
}

Test(frame, control_frame_rules) {
    const unsigned ops[] = {CLOSE, PING, PONG};
    char big[126];
    memset(big, 'x', sizeof big);
    for (size_t k = 0; k < 3; k++) {
        wire w = {0};
        w_frame(&w, FIN | ops[k], big, 125); /* the largest allowed */
        const exp_frame fr[] = {{(uint8_t)ops[k], (uint8_t)ops[k], true, big, 125}};
        check_frames(ORR_WS_SERVER, &w, fr, 1);
        w.n = 0;
        w_frame(&w, FIN | ops[k], big, 126); /* needs the 16-bit form */
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 1);
        w.n = 0;
        w_frame_as(&w, FIN | ops[k], big, 5, true, LEN_16); /* small, but in the 16-bit form */
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 1);
        w.n = 0;
        w_frame_as(&w, FIN | ops[k], big, 5, true, LEN_64);
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 1);
        w.n = 0;
        W_FRAME(&w, ops[k], "x"); /* fragmented control frame */
        check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);
        free(w.p);
    }
}

Test(frame, continuation_sequence_errors) {
    wire w = {0};
    W_FRAME(&w, FIN | CONT, "x"); /* nothing to continue */
    check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);
    w.n = 0;
    W_FRAME(&w, CONT, "x");
    check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 0);

    /* A finished message leaves nothing to continue either. */
    w.n = 0;
    W_FRAME(&w, TEXT, "a");
    W_FRAME(&w, FIN | CONT, "b");
    size_t at = w.n;
    W_FRAME(&w, FIN | CONT, "c");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "a"), X(CONT, TEXT, true, "b")};
    expect e = {fr, 2, ORR_WS_EPROTO, at, NULL};
    check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);

    /* A new data message inside a fragmented one, even after a control frame. */
    const unsigned news[] = {TEXT, BIN, FIN | TEXT, FIN | BIN};
    for (size_t k = 0; k < 4; k++) {
        w.n = 0;
        W_FRAME(&w, BIN, "a");
        W_FRAME(&w, FIN | PING, "");
        at = w.n;
        W_FRAME(&w, news[k], "b");
        const exp_frame fr2[] = {X(BIN, BIN, false, "a"), X(PING, PING, true, "")};
        expect e2 = {fr2, 2, ORR_WS_EPROTO, at, NULL};
        check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e2);
    }
    free(w.p);
}

Test(frame, length_top_bit) {
    wire w = {0};
    w_byte(&w, FIN | BIN);
    w_byte(&w, 0x80 | 127);
    w_byte(&w, 0x80);
    for (int k = 0; k < 7; k++)
        w_byte(&w, 0);
    w_bytes(&w, MASK, 4);
    check_error(ORR_WS_SERVER, 0, &w, ORR_WS_EPROTO, 2);
    /* 2^63 - 1 is allowed (with no limit), and waits for its payload. */
    w.p[2] = 0x7F;
    for (int k = 3; k < 10; k++)
        w.p[k] = 0xFF;
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
    orr_ws_chunk ch;
    size_t used;
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), 0);
    cr_assert_eq(used, w.n);
    uint8_t b = 0;
    cr_assert_eq(orr_ws_read(&r, &b, 1, &ch, &used), 1);
    cr_assert_eq(ch.frame_len, UINT64_MAX >> 1);
    free(w.p);
}

Test(frame, error_on_first_byte_without_waiting) {
    /* A bad first byte fails at once, before any other byte arrives. */
    const uint8_t bad[] = {0x83, 0xC1, 0x09, 0x80};
    for (size_t k = 0; k < sizeof bad; k++) {
        orr_ws_reader r;
        orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
        orr_ws_chunk ch;
        size_t used = 99;
        uint8_t b = bad[k];
        cr_assert_eq(orr_ws_read(&r, &b, 1, &ch, &used), ORR_WS_EPROTO, "byte %02X", bad[k]);
        cr_assert_eq(used, 0);
        cr_assert_eq(orr_ws_read(&r, &b, 1, &ch, &used), ORR_WS_EPROTO);
    }
    /* An unmasked second byte too. */
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
    orr_ws_chunk ch;
    size_t used = 99;
    uint8_t b0 = 0x81, b1 = 0x05;
    cr_assert_eq(orr_ws_read(&r, &b0, 1, &ch, &used), 0);
    cr_assert_eq(used, 1);
    cr_assert_eq(orr_ws_read(&r, &b1, 1, &ch, &used), ORR_WS_EPROTO);
    cr_assert_eq(used, 0);
}

/* ---- the message size limit -------------------------------------------------- */

Test(frame, size_limit_single_frame) {
    char p[1100];
    memset(p, 'a', sizeof p);
    wire w = {0};
    w_frame(&w, FIN | TEXT, p, 10);
    const exp_frame ok10[] = {{TEXT, TEXT, true, p, 10}};
    expect e = {ok10, 1, 0, 0, NULL};
    check_stream(ORR_WS_SERVER, 10, w.p, w.n, &e); /* exactly at the limit */

    w.n = 0;
    w_frame(&w, FIN | TEXT, p, 11);
    check_error(ORR_WS_SERVER, 10, &w, ORR_WS_ETOOBIG, 1); /* at the length byte */

    /* Decided at the header: no payload consumed. */
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10);
    orr_ws_chunk ch;
    size_t used = 99;
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(used, 1);
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(used, 0);
    /* Even when only the first two bytes have arrived. */
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10);
    cr_assert_eq(orr_ws_read(&r, w.p, 2, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(used, 1);

    /* The 16- and 64-bit forms fail at their last length byte. */
    w.n = 0;
    w_frame(&w, FIN | BIN, p, 1001);
    check_error(ORR_WS_SERVER, 1000, &w, ORR_WS_ETOOBIG, 3);
    w.n = 0;
    w_frame(&w, FIN | BIN, p, 1000);
    const exp_frame ok1000[] = {{BIN, BIN, true, p, 1000}};
    e = (expect){ok1000, 1, 0, 0, NULL};
    check_stream(ORR_WS_SERVER, 1000, w.p, w.n, &e);
    w.n = 0;
    w_frame_as(&w, FIN | BIN, p, 1001, true, LEN_64);
    check_error(ORR_WS_SERVER, 1000, &w, ORR_WS_ETOOBIG, 9);
    /* A huge announced length fails before any payload exists. */
    uint8_t hdr[14];
    w.n = 0;
    w_bytes(&w, hdr, orr_ws_header(hdr, BIN, true, 1ull << 40, MASK));
    check_error(ORR_WS_SERVER, 1 << 20, &w, ORR_WS_ETOOBIG, 9);
    free(w.p);
}

Test(frame, size_limit_across_fragments) {
    char p[20];
    memset(p, 'b', sizeof p);
    wire w = {0};
    w_frame(&w, BIN, p, 6);
    W_FRAME(&w, FIN | PING, "control frames do not count toward the limit");
    w_frame(&w, FIN | CONT, p, 4);
    w_frame(&w, FIN | TEXT, p, 10); /* the count starts over */
    const exp_frame ok[] = {{BIN, BIN, false, p, 6},
                            X(PING, PING, true, "control frames do not count toward the limit"),
                            {CONT, BIN, true, p, 4},
                            {TEXT, TEXT, true, p, 10}};
    expect e = {ok, 4, 0, 0, NULL};
    check_stream(ORR_WS_SERVER, 10, w.p, w.n, &e);

    w.n = 0;
    w_frame(&w, TEXT, p, 6);
    w_frame(&w, CONT, p, 0);
    size_t at = w.n + 1;
    w_frame(&w, FIN | CONT, p, 5);
    const exp_frame part[] = {{TEXT, TEXT, false, p, 6}, {CONT, TEXT, false, p, 0}};
    e = (expect){part, 2, ORR_WS_ETOOBIG, at, NULL};
    check_stream(ORR_WS_SERVER, 10, w.p, w.n, &e);

    /* Consumed stops at the length byte: the payload is untouched. */
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10);
    orr_ws_chunk ch;
    size_t used = 0, off = 0;
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), 1);
    off += used;
    cr_assert_eq(orr_ws_read(&r, w.p + off, w.n - off, &ch, &used), 1);
    off += used;
    cr_assert_eq(orr_ws_read(&r, w.p + off, w.n - off, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(off + used, at);
    free(w.p);
}

/* ---- UTF-8 in text messages ------------------------------------------------------- */

Test(frame, utf8_failure_mid_second_fragment) {
    wire w = {0};
    W_FRAME(&w, TEXT, "h\xC3\xA9llo ");
    size_t second = w.n;
    W_FRAME(&w, FIN | CONT,
            "ab\xFF"
            "cd");
    size_t bad = second + 6 + 2; /* header, "ab" */
    const exp_frame fr[] = {X(TEXT, TEXT, false, "h\xC3\xA9llo ")};
    const exp_frame partial = X(CONT, TEXT, true, "ab");
    expect e = {fr, 1, ORR_WS_EUTF8, bad, &partial};
    check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);

    /* Whole: the first fragment comes out, then the error, with no chunk
     * for the bytes before the bad one in the same call. */
    uint8_t *copy = malloc(w.n);
    memcpy(copy, w.p, w.n);
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0);
    orr_ws_chunk ch;
    size_t used;
    cr_assert_eq(orr_ws_read(&r, copy, w.n, &ch, &used), 1);
    cr_assert_eq(used, second);
    ch.len = 12345;
    cr_assert_eq(orr_ws_read(&r, copy + second, w.n - second, &ch, &used), ORR_WS_EUTF8);
    cr_assert_eq(used, 8);
    cr_assert_eq(copy[second + used], 0xFF); /* unmasked, and the byte to blame */
    free(copy);

    /* Byte by byte: "a" and "b" come out as chunks first. */
    trace t = feed(ORR_WS_SERVER, 0, w.p, w.n, (splitter){SPLIT_BYTES, 0, 0});
    cr_assert_eq(t.nfr, 2);
    cr_assert_eq(t.fr[1].len, 2);
    cr_assert_eq(t.fr[1].chunks, 2);
    trace_free(&t);
    free(w.p);
}

Test(frame, utf8_truncated_at_message_end) {
    wire w = {0};
    W_FRAME(&w, FIN | TEXT, "a\xE2\x82");
    /* Fed in pieces, the bytes before the end come out first. */
    const exp_frame whole = X(TEXT, TEXT, true, "a\xE2\x82");
    expect e1 = {NULL, 0, ORR_WS_EUTF8, w.n, &whole};
    check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e1);

    /* Ended by an empty final fragment. */
    w.n = 0;
    W_FRAME(&w, TEXT, "\xE2");
    W_FRAME(&w, FIN | PING, "");
    W_FRAME(&w, FIN | CONT, "");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "\xE2"), X(PING, PING, true, "")};
    expect e = {fr, 2, ORR_WS_EUTF8, w.n, NULL};
    check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);

    /* Completed across fragments is fine. */
    w.n = 0;
    W_FRAME(&w, TEXT, "\xF0\x9F");
    W_FRAME(&w, CONT, "\x98");
    W_FRAME(&w, FIN | CONT, "\x80");
    const exp_frame ok[] = {X(TEXT, TEXT, false, "\xF0\x9F"), X(CONT, TEXT, false, "\x98"),
                            X(CONT, TEXT, true, "\x80")};
    check_frames(ORR_WS_SERVER, &w, ok, 3);
    free(w.p);
}

Test(frame, utf8_errors_in_single_frames) {
    static const struct {
        const char *s;
        size_t n, bad;
    } cases[] = {
        {"\xFF", 1, 0},
        {"abc\xC0\x80", 5, 3},
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
         "edited",
         20, 12},
        {"\xF4\x90\x80\x80", 4, 1},
        {"0123456789abcdef0123456789\x80", 27, 26},
        {"\xE0\x9F\xBF", 3, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        wire w = {0};
        w_frame(&w, FIN | TEXT, cases[k].s, cases[k].n);
        exp_frame partial = {TEXT, TEXT, true, cases[k].s, cases[k].bad};
        expect e = {NULL, 0, ORR_WS_EUTF8, 6 + cases[k].bad, &partial};
        check_stream(ORR_WS_SERVER, 0, w.p, w.n, &e);
        /* Binary and control frames carry any bytes. */
        w.n = 0;
        w_frame(&w, FIN | BIN, cases[k].s, cases[k].n);
        w_frame(&w, FIN | PING, cases[k].s, cases[k].n);
        const exp_frame fr[] = {{BIN, BIN, true, cases[k].s, cases[k].n},
                                {PING, PING, true, cases[k].s, cases[k].n}};
        check_frames(ORR_WS_SERVER, &w, fr, 2);
        free(w.p);
    }
}

/* ---- writer ----------------------------------------------------------------------- */

static void round_trip(uint64_t len) {
    uint8_t *payload = calloc(len + 1, 1);
    cr_assert(payload);
    for (uint64_t k = 0; k < len; k++)
        payload[k] = (uint8_t)(k ^ (k >> 8) ^ (k >> 16));
    static const uint8_t mask[4] = {0xA1, 0x02, 0xF3, 0x5C};
    uint8_t hdr[14];
    size_t hl = orr_ws_header(hdr, BIN, true, len, mask);
    size_t expect_hl = (len <= 125 ? 2 : len <= 0xFFFF ? 4 : 10) + 4;
    cr_assert_eq(hl, expect_hl, "len %llu: header %zu", (unsigned long long)len, hl);
    cr_assert_eq(hdr[0], FIN | BIN);
    cr_assert_eq(hdr[1] & 0x80, 0x80);
    cr_assert(memcmp(hdr + hl - 4, mask, 4) == 0);

    wire w = {0};
    w_bytes(&w, hdr, hl);
    w_bytes(&w, payload, len);
    /* Mask in uneven pieces, carrying the phase. */
    unsigned off = 0;
    size_t done = 0, step = 1;
    while (done < len) {
        size_t n = len - done < step ? len - done : step;
        off = orr_ws_mask(w.p + hl + done, n, mask, off);
        done += n;
        step = step * 3 + 1;
    }
    cr_assert_eq(off, len & 3);
    const exp_frame fr[] = {{BIN, BIN, true, payload, len}};
    check_frames(ORR_WS_SERVER, &w, fr, 1);

    /* Unmasked, as a server sends it, read by a client. */
    w.n = 0;
    hl = orr_ws_header(hdr, TEXT, false, len, NULL);
    cr_assert_eq(hl, expect_hl - 4);
    cr_assert_eq(hdr[0], TEXT);
    cr_assert_eq(hdr[1] & 0x80, 0);
    w_bytes(&w, hdr, hl);
    memset(payload, 'z', len);
    w_bytes(&w, payload, len);
    hl = orr_ws_header(hdr, CONT, true, 0, NULL);
    w_bytes(&w, hdr, hl);
    const exp_frame fr2[] = {{TEXT, TEXT, false, payload, len}, {CONT, TEXT, true, "", 0}};
    check_frames(ORR_WS_CLIENT, &w, fr2, 2);
    free(w.p);
    free(payload);
}

Test(frame, writer_round_trip, .timeout = 120) {
    const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 20};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        round_trip(lens[k]);
}

Test(frame, writer_header_bytes) {
    uint8_t h[14];
    cr_assert_eq(orr_ws_header(h, TEXT, true, 125, NULL), 2);
    cr_assert(h[0] == 0x81 && h[1] == 125);
    cr_assert_eq(orr_ws_header(h, BIN, false, 126, NULL), 4);
    cr_assert(h[0] == 0x02 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    cr_assert_eq(orr_ws_header(h, BIN, true, 65535, NULL), 4);
    cr_assert(h[1] == 126 && h[2] == 0xFF && h[3] == 0xFF);
    cr_assert_eq(orr_ws_header(h, BIN, true, 65536, NULL), 10);
    static const uint8_t l64[] = {127, 0, 0, 0, 0, 0, 1, 0, 0};
    cr_assert(memcmp(h + 1, l64, 9) == 0);
    cr_assert_eq(orr_ws_header(h, PING, true, 0x0102030405060708ull, MASK), 14);
    static const uint8_t big[] = {0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 0x37, 0xfa, 0x21, 0x3d};
    cr_assert(h[0] == 0x89 && memcmp(h + 1, big, 13) == 0);
}

Test(frame, mask_matches_bytewise_xor) {
    uint8_t buf[80], ref[80];
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    for (unsigned off = 0; off < 4; off++)
        for (size_t start = 0; start < 8; start++)
            for (size_t len = 0; len + start <= 64; len++) {
                for (size_t k = 0; k < sizeof buf; k++)
                    buf[k] = ref[k] = (uint8_t)(k * 13 + 1);
                for (size_t k = 0; k < len; k++)
                    ref[start + k] ^= mask[(off + k) & 3];
                unsigned next = orr_ws_mask(buf + start, len, mask, off);
                cr_assert_eq(next, (off + len) & 3);
                cr_assert(memcmp(buf, ref, sizeof buf) == 0, "off %u start %zu len %zu", off, start,
                          len);
            }
}

/* ---- close payloads and codes -------------------------------------------------------- */

static bool code_ok(unsigned c) {
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

Test(frame, close_codes) {
    for (unsigned c = 0; c <= 0xFFFF; c++) {
        cr_assert_eq(orr_ws_close_code_sendable((uint16_t)c), code_ok(c), "code %u", c);
        uint8_t p[2] = {(uint8_t)(c >> 8), (uint8_t)c};
        uint16_t got = 7;
        int rc = orr_ws_close_payload_check(p, 2, &got);
        cr_assert_eq(rc, code_ok(c) ? 0 : ORR_WS_EPROTO, "code %u", c);
        if (rc == 0) cr_assert_eq(got, c);
    }
    const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_assert(!orr_ws_close_code_sendable((uint16_t)bad[k]));
    const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++)
        cr_assert(orr_ws_close_code_sendable((uint16_t)good[k]));
}

Test(frame, close_payload_check) {
    uint16_t code = 7;
    cr_assert_eq(orr_ws_close_payload_check(NULL, 0, &code), 0);
    cr_assert_eq(code, 0);
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03", 1, &code), ORR_WS_EPROTO);
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xE8"
                                                             "bye",
                                            5, &code),
                 0);
    cr_assert_eq(code, 1000);
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x0F\xA0\xCE\xBA\xCF\x83", 6, &code),
                 0);
    cr_assert_eq(code, 4000);
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xE8\xFF", 3, &code),
                 ORR_WS_EUTF8);
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xE8\xE2\x82", 4, &code),
                 ORR_WS_EUTF8); /* a reason cut inside a code point */
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xED"
                                                             "ok",
                                            4, &code),
                 ORR_WS_EPROTO); /* 1005 never goes on the wire */
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xED\xFF", 3, &code),
                 ORR_WS_EPROTO); /* the code is checked first */
    cr_assert_eq(orr_ws_close_payload_check((const uint8_t *)"\x03\xE9", 2, NULL), 0);
}

Test(frame, error_close_codes) {
    cr_assert_eq(orr_ws_error_close_code(ORR_WS_EPROTO), 1002);
    cr_assert_eq(orr_ws_error_close_code(ORR_WS_EUTF8), 1007);
    cr_assert_eq(orr_ws_error_close_code(ORR_WS_ETOOBIG), 1009);
    cr_assert_eq(orr_ws_error_close_code(-1), 1011);
}
