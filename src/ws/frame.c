/*
 * RFC 6455 frame reader and writer. See frame.h for the event contract.
 *
 * The reader is between frames when remaining_ is 0 and inside a frame's
 * payload otherwise; a zero-length frame is reported in the same call that
 * completes its header, so it never needs a state of its own.
 *
 * Header rules are checked byte by byte in wire order (first byte, second
 * byte, extended length, then the size limit), and each as soon as its byte
 * is present. That way the same stream fails with the same error at the same
 * byte however it is split into reads, and a peer sending garbage is dropped
 * on its first byte rather than after a full header.
 */
#include "ws/frame.h"

#include "ws/deflate.h"
#include "ws/utf8.h"

#include <stdint.h>
#include <string.h>

enum {
    F_FIN = 1,    /* the current frame has FIN set */
    F_TEXT = 2,   /* the current frame belongs to a text message: validate it */
    F_CLIENT = 4, /* we are the client: frames arrive unmasked */
    F_PMD = 8,    /* permessage-deflate was negotiated: RSV1 may start a message */
    F_MSG_Z = 16, /* the current data message is compressed (RSV1 on its first frame) */
};

#define HDR_MAX 14

/* Opcodes allowed to start a frame, as bit sets indexed by opcode: between
 * messages a new data message or a control frame; inside a fragmented
 * message a continuation or a control frame (RFC 6455 5.4). */
#define OPS_CONTROL (1u << ORR_WS_OP_CLOSE | 1u << ORR_WS_OP_PING | 1u << ORR_WS_OP_PONG)
#define OPS_BETWEEN (1u << ORR_WS_OP_TEXT | 1u << ORR_WS_OP_BINARY | OPS_CONTROL)
#define OPS_INSIDE (1u << ORR_WS_OP_CONT | OPS_CONTROL)

const char *orr_ws_strerror(int err) {
    switch (err) {
    case ORR_WS_EPROTO:
        return "websocket protocol error";
    case ORR_WS_EUTF8:
        return "invalid UTF-8";
    case ORR_WS_ETOOBIG:
        return "message too big";
    case ORR_WS_EDEFLATE:
        return "corrupt compressed data";
    default:
        return NULL;
    }
}

static inline bool is_control(unsigned op) {
    return (op & 0x8) != 0;
}

void orr_ws_reader_init(orr_ws_reader *r, orr_ws_role role, uint64_t max_message_bytes,
                        uint32_t max_frames) {
    memset(r, 0, sizeof *r);
    r->max_msg_ = max_message_bytes;
    r->max_frames_ = max_frames ? max_frames : UINT32_MAX;
    if (role == ORR_WS_CLIENT) r->flags_ = F_CLIENT;
}

void orr_ws_reader_allow_compression(orr_ws_reader *r) {
    r->flags_ |= F_PMD;
}

/* What a complete header says, for hdr_commit. */
typedef struct hdr_info {
    uint64_t len; /* payload length */
    size_t size;  /* header length, mask key included */
} hdr_info;

/* The rules the first byte alone decides: RSV2 and RSV3 clear, RSV1 clear
 * too unless permessage-deflate was negotiated and the frame starts a data
 * message (never on a continuation or a control frame, RFC 7692 section
 * 6), a known opcode that fits the message sequence, and FIN on control
 * frames (they are never fragmented). */
static inline bool byte0_ok(const orr_ws_reader *r, uint8_t b0) {
    unsigned op = b0 & 0x0F;
    unsigned allowed = r->msg_opcode_ ? OPS_INSIDE : OPS_BETWEEN;
    if (__builtin_expect(b0 & 0x70, 0) && !((b0 & 0x70) == 0x40 && (r->flags_ & F_PMD) &&
                                            (op == ORR_WS_OP_TEXT || op == ORR_WS_OP_BINARY)))
        return false;
    return (allowed >> op & 1) && (!is_control(op) || (b0 & 0x80));
}

/* Whether a frame with opcode `op` keeps the data message within the frame
 * limit. frames_ is 0 between messages, so a message's first frame always
 * fits; control frames do not count. The first byte decides this, so a
 * flood of empty continuations is refused at the byte that goes too far. */
static inline bool frames_ok(const orr_ws_reader *r, unsigned op) {
    return is_control(op) || r->frames_ < r->max_frames_;
}

/* Whether a data frame of `len` bytes keeps the message within the limit.
 * msg_bytes_ never exceeds max_msg_, so the subtraction cannot wrap. */
static inline bool size_ok(const orr_ws_reader *r, unsigned op, uint64_t len) {
    return is_control(op) || r->max_msg_ == 0 || len <= r->max_msg_ - r->msg_bytes_;
}

/*
 * Look at the first `n` header bytes in `h`. Returns the header length once
 * the header is complete, 0 if more bytes are needed, or an error with
 * *bad set to the index in `h` of the byte to blame. Changes nothing, so the
 * reader can call it again on a longer prefix.
 *
 * A length may use more bytes than it needs (126 with a value below 126, or
 * 127 with a value below 65536). RFC 6455 5.2 tells senders to use the
 * minimal encoding, but the value is unambiguous either way, so the reader
 * accepts it, as most servers do.
 */
static int hdr_check(const orr_ws_reader *r, const uint8_t *h, size_t n, hdr_info *hi,
                     size_t *bad) {
    if (n < 1) return 0;
    if (!byte0_ok(r, h[0])) {
        *bad = 0;
        return ORR_WS_EPROTO;
    }
    unsigned op = h[0] & 0x0F;
    if (!frames_ok(r, op)) {
        *bad = 0;
        return ORR_WS_ETOOBIG;
    }
    if (n < 2) return 0;
    bool masked = (h[1] & 0x80) != 0;
    unsigned len7 = h[1] & 0x7F;
    /* A client masks every frame; a server masks none (RFC 6455 5.1). */
    if (masked == ((r->flags_ & F_CLIENT) != 0) || (is_control(op) && len7 > 125)) {
        *bad = 1;
        return ORR_WS_EPROTO;
    }
    size_t ext = len7 == 127 ? 8 : len7 == 126 ? 2 : 0;
    if (ext == 8 && n >= 3 && (h[2] & 0x80)) {
        *bad = 2;
        return ORR_WS_EPROTO; /* the 64-bit length's top bit must be 0 */
    }
    if (n < 2 + ext) return 0;
    uint64_t len = len7;
    if (ext) {
        len = 0;
        for (size_t k = 0; k < ext; k++)
            len = len << 8 | h[2 + k];
    }
    if (!size_ok(r, op, len)) {
        *bad = 1 + ext;
        return ORR_WS_ETOOBIG;
    }
    size_t size = 2 + ext + (masked ? 4 : 0);
    if (n < size) return 0;
    hi->len = len;
    hi->size = size;
    return (int)size;
}

/* Enter the frame whose header has been checked. `mask` is its masking key,
 * or NULL in the client role; it may point into hdr_, which mask_ shares. */
/* z: the frame may belong to a compressed message (the general path; the
 * fast path never sees one, so its copy does no work for compression). */
static inline __attribute__((always_inline)) void
hdr_commit(orr_ws_reader *r, uint8_t b0, uint64_t len, const uint8_t *mask, bool z) {
    unsigned op = b0 & 0x0F;
    r->opcode_ = (uint8_t)op;
    r->remaining_ = len;
    r->frame_len_ = len;
    r->mask_off_ = 0;
    uint8_t flags = r->flags_ & (z ? (F_CLIENT | F_PMD | F_MSG_Z) : (F_CLIENT | F_PMD));
    if (b0 & 0x80) flags |= F_FIN;
    if (mask) memmove(r->mask_, mask, 4);
    if (!is_control(op)) {
        if (op != ORR_WS_OP_CONT) {
            r->msg_opcode_ = (uint8_t)op;
            /* F_MSG_Z is clear between messages: RSV1 sets it. */
            if (z && (b0 & 0x40)) flags |= F_MSG_Z;
        }
        r->msg_bytes_ += len;
        r->frames_++;
        /* Compressed text is checked once inflated, by the caller. */
        if (r->msg_opcode_ == ORR_WS_OP_TEXT && !(z && (flags & F_MSG_Z))) flags |= F_TEXT;
    }
    r->flags_ = flags;
}

static void commit_checked(orr_ws_reader *r, const uint8_t *h, const hdr_info *hi) {
    hdr_commit(r, h[0], hi->len, (r->flags_ & F_CLIENT) ? NULL : h + hi->size - 4, true);
}

static int fail(orr_ws_reader *r, int err, size_t at, size_t *consumed) {
    r->err_ = (int8_t)err;
    *consumed = at;
    return err;
}

/*
 * Take the next header from buf. Returns 1 with *used set once a header is
 * complete and committed, 0 when all of buf went into hdr_, or an error.
 */
static int read_header(orr_ws_reader *r, const uint8_t *buf, size_t len, size_t *used) {
    hdr_info hi;
    size_t bad = 0;
    int rc;
    if (r->hdr_len_ == 0) {
        /* The whole header may be in buf: parse it there and copy nothing. */
        rc = hdr_check(r, buf, len, &hi, &bad);
        if (rc > 0) {
            commit_checked(r, buf, &hi);
            *used = hi.size;
            return 1;
        }
        if (rc < 0) return fail(r, rc, bad, used);
        if (len) /* rc == 0: len is shorter than a header; buf may be NULL if len is 0 */
            memcpy(r->hdr_, buf, len);
        r->hdr_len_ = (uint8_t)len;
        *used = len;
        return 0;
    }
    /* Continue a header split across reads. Copying a few payload bytes
     * along with it is harmless: only the header's own bytes are counted. */
    size_t old = r->hdr_len_;
    size_t take = len < HDR_MAX - old ? len : HDR_MAX - old;
    if (take) memcpy(r->hdr_ + old, buf, take);
    rc = hdr_check(r, r->hdr_, old + take, &hi, &bad);
    if (rc < 0) return fail(r, rc, bad - old, used); /* earlier bytes passed in earlier calls */
    if (rc == 0) {
        r->hdr_len_ = (uint8_t)(old + take);
        *used = take; /* == len, since a full HDR_MAX bytes always completes a header */
        return 0;
    }
    commit_checked(r, r->hdr_, &hi);
    r->hdr_len_ = 0;
    *used = hi.size - old;
    return 1;
}

static inline unsigned mask_bytes(uint8_t *p, size_t len, const uint8_t mask[4], unsigned off);

/* Report the payload at buf[i..] of the current frame as a chunk. Inlined
 * into both paths of orr_ws_read so the fast one makes no calls but to the
 * UTF-8 validator. */
static inline __attribute__((always_inline)) int read_payload(orr_ws_reader *r, uint8_t *buf,
                                                              size_t len, size_t i,
                                                              orr_ws_chunk *out, size_t *consumed,
                                                              bool z) {
    size_t avail = len - i;
    if (avail > r->remaining_) avail = (size_t)r->remaining_;
    /* A frame with payload reports nothing until some of it is here; only a
     * zero-length frame yields an empty chunk. */
    if (avail == 0 && r->remaining_ != 0) {
        *consumed = i;
        return 0;
    }
    uint8_t *p = buf + i;
    unsigned flags = r->flags_;
    if (!(flags & F_CLIENT)) r->mask_off_ = (uint8_t)mask_bytes(p, avail, r->mask_, r->mask_off_);
    if (flags & F_TEXT) {
        size_t bad = 0;
        r->utf8_ = orr_utf8_feed(r->utf8_, p, avail, &bad);
        if (r->utf8_ == ORR_UTF8_REJECT) return fail(r, ORR_WS_EUTF8, i + bad, consumed);
    }
    bool first = r->remaining_ == r->frame_len_;
    r->remaining_ -= avail;
    bool last = r->remaining_ == 0;
    bool fin = (flags & F_FIN) != 0;
    unsigned op = r->opcode_;
    out->opcode = (uint8_t)op;
    out->msg_opcode = is_control(op) ? (uint8_t)op : r->msg_opcode_;
    out->fin = fin;
    out->first = first;
    out->last = last;
    out->frame_len = r->frame_len_;
    out->data = p;
    out->len = avail;
    out->compressed = z && (flags & F_MSG_Z) && !is_control(op);
    if (last && fin && !is_control(op)) {
        if (z && (flags & F_MSG_Z)) r->flags_ &= (uint8_t)~F_MSG_Z;
        /* The message ends here: it must not end inside a code point. */
        if ((flags & F_TEXT) && r->utf8_ != ORR_UTF8_ACCEPT)
            return fail(r, ORR_WS_EUTF8, i + avail, consumed);
        r->msg_opcode_ = 0;
        r->msg_bytes_ = 0;
        r->frames_ = 0;
        r->utf8_ = ORR_UTF8_ACCEPT;
    }
    *consumed = i + avail;
    return 1;
}

/* Everything but the fast path: held-over header bytes, long or unmasked
 * frames, payload continuing from an earlier read, errors. Kept out of line
 * so the fast path needs few registers. */
static __attribute__((noinline)) int read_general(orr_ws_reader *r, uint8_t *buf, size_t len,
                                                  orr_ws_chunk *out, size_t *consumed) {
    if (r->err_) {
        *consumed = 0;
        return r->err_;
    }
    size_t i = 0;
    if (r->remaining_ == 0) {
        int rc = read_header(r, buf, len, &i);
        if (rc <= 0) {
            *consumed = i;
            return rc;
        }
    }
    return read_payload(r, buf, len, i, out, consumed, true);
}

int orr_ws_read(orr_ws_reader *r, uint8_t *buf, size_t len, orr_ws_chunk *out, size_t *consumed) {
    /*
     * The fast path, for what a server mostly sees: between frames, no
     * header bytes held over, and a masked frame with a 7-bit length whose
     * 6-byte header is all in buf. Anything else, including every error,
     * goes the general way, which decides it byte by byte.
     */
    if (r->remaining_ == 0 && r->hdr_len_ == 0 && len >= 6 && r->err_ == 0 &&
        !(r->flags_ & (F_CLIENT | F_MSG_Z))) {
        /* ... and no compression at all: no RSV bit, not inside a
         * compressed message (those go the general way). */
        uint8_t b0 = buf[0], b1 = buf[1];
        unsigned plen = b1 & 0x7F;
        if ((b1 & 0x80) && plen <= 125 && !(b0 & 0x70) && byte0_ok(r, b0) &&
            frames_ok(r, b0 & 0x0F) && size_ok(r, b0 & 0x0F, plen)) {
            hdr_commit(r, b0, plen, buf + 2, false);
            return read_payload(r, buf, len, 6, out, consumed, false);
        }
    }
    return read_general(r, buf, len, out, consumed);
}

uint16_t orr_ws_error_close_code(int err) {
    switch (err) {
    case ORR_WS_EPROTO:
        return ORR_WS_CLOSE_PROTOCOL;
    case ORR_WS_EUTF8:
    case ORR_WS_EDEFLATE:
        return ORR_WS_CLOSE_BAD_DATA;
    case ORR_WS_ETOOBIG:
        return ORR_WS_CLOSE_TOO_BIG;
    default:
        return ORR_WS_CLOSE_INTERNAL;
    }
}

/*
 * 1004-1006 and 1015 are reserved for reporting conditions locally and must
 * never appear on the wire; 1012-1014 are registered with IANA (service
 * restart, try again later, bad gateway). 0-999 and 1016-2999 are unassigned
 * or reserved for the protocol, 3000-4999 for libraries and applications.
 */
int orr_ws_close_code_sendable(uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int orr_ws_close_payload_check(const uint8_t *p, size_t len, uint16_t *code) {
    uint16_t c = 0;
    if (len == 1) return ORR_WS_EPROTO; /* a code is two bytes */
    if (len >= 2) {
        c = (uint16_t)(p[0] << 8 | p[1]);
        if (!orr_ws_close_code_sendable(c)) return ORR_WS_EPROTO;
        if (!orr_utf8_valid(p + 2, len - 2)) return ORR_WS_EUTF8;
    }
    if (code) *code = c;
    return 0;
}

size_t orr_ws_header(uint8_t out[14], uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask) {
    uint8_t mbit = mask ? 0x80 : 0;
    size_t n;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len <= 125) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xFFFF) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/*
 * The 4-byte mask as a word in memory order, rotated so that it starts at
 * mask byte `off`. Built with a rotate rather than byte stores: a word load
 * right after byte stores to the same place stalls store forwarding, which
 * cost more than the XOR itself on small frames.
 */
static inline uint32_t mask_word(const uint8_t mask[4], unsigned off) {
    uint32_t m;
    unsigned r = (off & 3) * 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&m, mask, 4);
    return r ? (m >> r) | (m << (32 - r)) : m;
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    memcpy(&m, mask, 4);
    return r ? (m << r) | (m >> (32 - r)) : m;
#else
    uint8_t pat[4];
    for (unsigned k = 0; k < 4; k++)
        pat[k] = mask[(off + k) & 3];
    memcpy(&m, pat, 4);
    (void)r;
    return m;
#endif
}

static inline unsigned mask_bytes(uint8_t *p, size_t len, const uint8_t mask[4], unsigned off) {
    uint32_t m32 = mask_word(mask, off);
    uint64_t m64 = (uint64_t)m32 << 32 | m32; /* the same in either byte order */
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m64;
        memcpy(p + i, &w, 8);
    }
    if (len - i >= 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        w ^= m32;
        memcpy(p + i, &w, 4);
        i += 4;
    }
    /* i is a multiple of 4 here, so byte k of the word goes with p[i + k]. */
    uint8_t pat[4];
    memcpy(pat, &m32, 4);
    for (size_t k = 0; i + k < len; k++)
        p[i + k] ^= pat[k];
    return (unsigned)((off + len) & 3);
}

unsigned orr_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], unsigned off) {
    return mask_bytes(p, len, mask, off);
}

size_t orr_ws_frame_size(const uint8_t *p, size_t n) {
    if (n < 2) return 0;
    size_t len = p[1] & 0x7F, at = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = (size_t)p[2] << 8 | p[3];
        at = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        uint64_t v = 0;
        for (int i = 2; i < 10; i++)
            v = v << 8 | p[i];
        if (v > SIZE_MAX / 2) return 0;
        len = (size_t)v;
        at = 10;
    }
    if (p[1] & 0x80) at += 4;
    if (n < at) return 0;
    return at + len;
}
