/*
 * libFuzzer target for the RFC 6455 frame reader. The first input byte picks
 * the role, the message size limit and the frame limit (its top two bits,
 * which also seed the random splits); the rest is the byte stream.
 *
 * The stream is fed whole, one byte at a time, and in two random splits,
 * each piece in its own exact-size allocation so ASan sees any read past the
 * bytes handed over. Every way must give the same frames (opcode, resolved
 * message opcode, FIN, length, concatenated payload) and the same error at
 * the same stream offset; payload emitted before an error may differ only in
 * how much of the failing frame came out. Each call is also checked against
 * the event contract, and what comes out against the rules it promises:
 * control frames short and final, messages within both limits, text valid.
 */
#include "ws/frame.h"
#include "ws/utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

/* What one way of feeding produced. Frames are serialized into `log`
 * (opcode, msg_opcode, fin, 8-byte length, then payload as it arrives);
 * `done` is the log length at the end of the last complete frame. */
typedef struct rec {
    uint8_t *log;
    size_t n, done;
    int err;
    size_t err_at;
} rec;

typedef struct feeder {
    int mode; /* 0 whole, 1 bytewise, 2 random */
    uint64_t seed;
} feeder;

static size_t piece_len(feeder *f, size_t left) {
    if (f->mode == 0) return left;
    if (f->mode == 1) return 1;
    f->seed ^= f->seed << 13;
    f->seed ^= f->seed >> 7;
    f->seed ^= f->seed << 17;
    size_t k = 1 + (size_t)(f->seed % ((f->seed >> 32) & 1 ? 16 : left + 1));
    return k < left ? k : left;
}

static void log_put(rec *r, const void *p, size_t n) {
    memcpy(r->log + r->n, p, n);
    r->n += n;
}

/* The close payload check, against the rules spelled out again. */
static void check_close(const uint8_t *p, size_t len) {
    uint16_t code = 1;
    int rc = orr_ws_close_payload_check(p, len, &code);
    if (len == 0) {
        CHECK(rc == 0 && code == 0);
        return;
    }
    if (len == 1) {
        CHECK(rc == ORR_WS_EPROTO);
        return;
    }
    unsigned c = (unsigned)p[0] << 8 | p[1];
    bool ok = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    CHECK(orr_ws_close_code_sendable((uint16_t)c) == ok);
    if (!ok)
        CHECK(rc == ORR_WS_EPROTO);
    else if (!orr_utf8_valid(p + 2, len - 2))
        CHECK(rc == ORR_WS_EUTF8);
    else
        CHECK(rc == 0 && code == c);
}

/* pmd: permessage-deflate negotiated (RSV1 may start a data message). */
static rec run(orr_ws_role role, uint64_t max, uint32_t max_frames, bool pmd, const uint8_t *in,
               size_t n, feeder f) {
    rec r = {0};
    r.log = malloc(n / 2 * 12 + n + 16);
    CHECK(r.log != NULL);
    orr_ws_reader rd;
    orr_ws_reader_init(&rd, role, max, max_frames);
    if (pmd) orr_ws_reader_allow_compression(&rd);
    bool msg_z = false; /* the open data message is compressed */

    bool in_frame = false;
    size_t frame_start = 0; /* stream offset of the current frame's header */
    uint8_t cur_op = 0;     /* the open frame's opcode and length */
    uint64_t cur_len = 0, cur_got = 0;
    size_t cur_data = 0;     /* where the open frame's payload starts in the log */
    unsigned msg = 0;        /* the open data message's opcode */
    uint64_t msg_bytes = 0;  /* its payload so far */
    uint32_t msg_frames = 0; /* and its frames */
    uint32_t text = ORR_UTF8_ACCEPT;

    size_t pos = 0;
    while (pos < n) {
        size_t plen = piece_len(&f, n - pos);
        uint8_t *piece = malloc(plen);
        CHECK(piece != NULL);
        memcpy(piece, in + pos, plen);
        size_t off = 0;
        while (off < plen) {
            orr_ws_chunk ch;
            size_t used = (size_t)-1, left = plen - off;
            uint8_t *buf = piece + off;
            int rc = orr_ws_read(&rd, buf, left, &ch, &used);
            if (rc < 0) {
                CHECK(rc == ORR_WS_EPROTO || rc == ORR_WS_EUTF8 || rc == ORR_WS_ETOOBIG);
                CHECK(used <= left);
                r.err = rc;
                r.err_at = pos + off + used;
                size_t again = 1;
                CHECK(orr_ws_read(&rd, buf, left, &ch, &again) == rc && again == 0);
                free(piece);
                return r;
            }
            if (rc == 0) {
                CHECK(used == left);
                break;
            }
            CHECK(rc == 1 && used >= 1 && used <= left);
            CHECK(ch.data + ch.len == buf + used);
            CHECK(ch.len <= ch.frame_len && (ch.len > 0 || ch.frame_len == 0));
            if (ch.first) {
                CHECK(!in_frame);
                in_frame = true;
                cur_op = ch.opcode;
                cur_len = ch.frame_len;
                cur_got = 0;
                uint8_t meta[12] = {ch.opcode, ch.msg_opcode, ch.fin, ch.compressed};
                for (int k = 0; k < 8; k++)
                    meta[4 + k] = (uint8_t)(ch.frame_len >> (8 * k));
                log_put(&r, meta, sizeof meta);
                cur_data = r.n;
                /* A frame wholly inside this buffer comes out as one chunk. */
                size_t data_at = pos + off + (size_t)(ch.data - buf);
                if (frame_start >= pos + off && data_at + ch.frame_len <= pos + plen)
                    CHECK(ch.last);
                if (ch.opcode & 0x8) {
                    CHECK(ch.opcode <= ORR_WS_OP_PONG && ch.fin && ch.frame_len <= 125);
                    CHECK(ch.msg_opcode == ch.opcode && !ch.compressed);
                } else {
                    CHECK(ch.opcode <= ORR_WS_OP_BINARY);
                    if (ch.opcode == ORR_WS_OP_CONT) {
                        CHECK(msg != 0);
                    } else {
                        CHECK(msg == 0);
                        msg = ch.opcode;
                        msg_z = ch.compressed;
                        CHECK(!msg_z || pmd);
                    }
                    CHECK(ch.msg_opcode == msg && ch.compressed == msg_z);
                    msg_bytes += ch.frame_len;
                    CHECK(max == 0 || msg_bytes <= max);
                    msg_frames++;
                    CHECK(max_frames == 0 || msg_frames <= max_frames);
                }
            } else {
                CHECK(in_frame && ch.opcode == cur_op && ch.frame_len == cur_len);
            }
            log_put(&r, ch.data, ch.len);
            cur_got += ch.len;
            CHECK(cur_got <= cur_len);
            if (!(cur_op & 0x8) && msg == ORR_WS_OP_TEXT && !msg_z) {
                text = orr_utf8_feed(text, ch.data, ch.len, NULL);
                CHECK(text != ORR_UTF8_REJECT);
            }
            if (ch.last) {
                CHECK(cur_got == cur_len);
                if (cur_op == ORR_WS_OP_CLOSE) check_close(r.log + cur_data, (size_t)cur_len);
                in_frame = false;
                frame_start = pos + off + used;
                r.done = r.n;
                if (!(cur_op & 0x8) && ch.fin) {
                    if (msg == ORR_WS_OP_TEXT && !msg_z) CHECK(text == ORR_UTF8_ACCEPT);
                    msg = 0;
                    msg_z = false;
                    msg_bytes = 0;
                    msg_frames = 0;
                    text = ORR_UTF8_ACCEPT;
                }
            } else {
                CHECK(used == left); /* a chunk short of the frame's end used all it had */
            }
            off += used;
        }
        free(piece);
        pos += plen;
    }
    return r;
}

static void same(const rec *a, const rec *b) {
    CHECK(a->err == b->err);
    if (a->err) CHECK(a->err_at == b->err_at);
    CHECK(a->done == b->done && memcmp(a->log, b->log, a->done) == 0);
    /* Of a frame cut short by an error, one way may have emitted more. */
    size_t pa = a->n - a->done, pb = b->n - b->done;
    if (!a->err) CHECK(pa == pb);
    size_t common = pa < pb ? pa : pb;
    CHECK(memcmp(a->log + a->done, b->log + b->done, common) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint64_t limits[8] = {0, 1, 2, 5, 16, 125, 300, 70000};
    static const uint32_t frame_limits[4] = {0, 1, 2, 3};
    if (size < 1) return 0;
    orr_ws_role role = (data[0] & 1) ? ORR_WS_CLIENT : ORR_WS_SERVER;
    uint64_t max = limits[(data[0] >> 1) & 7];
    uint32_t max_frames = frame_limits[data[0] >> 6];
    bool pmd = (data[0] >> 4) & 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    rec whole = run(role, max, max_frames, pmd, in, n, (feeder){0, 0});
    rec bytes = run(role, max, max_frames, pmd, in, n, (feeder){1, 0});
    same(&whole, &bytes);
    for (uint64_t k = 1; k <= 2; k++) {
        rec split = run(role, max, max_frames, pmd, in, n,
                        (feeder){2, (data[0] >> 4) * 0x9E3779B97F4A7C15ull + k});
        same(&whole, &split);
        free(split.log);
    }
    free(whole.log);
    free(bytes.log);
    return 0;
}
