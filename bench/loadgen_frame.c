/*
 * Client frames out, server frames in (RFC 6455 section 5), for orr-loadgen.
 * The parser is fed whatever read() returned, in any split; a whole small
 * frame in the buffer takes the fast path, anything else goes through a
 * header accumulator. It does no I/O and allocates nothing. In the echo
 * modes it compares each message with what was sent; in message mode
 * (fanout, and the echo modes with --deflate) it hands each message to a
 * callback instead, its opcode | 0x40 when it came compressed (RSV1).
 */
#include "loadgen.h"

#include <string.h>

size_t lg_frame_size(size_t len) {
    return 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4 + len;
}

size_t lg_frame_build(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                      const uint8_t mask[4]) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = payload[i] ^ mask[i & 3];
    return h + len;
}

void lg_rx_init(struct lg_rx *rx, size_t expect_len, const uint8_t *expect) {
    memset(rx, 0, sizeof *rx);
    rx->expect_len = expect_len;
    rx->expect = expect;
}

void lg_rx_init_msgs(struct lg_rx *rx, size_t max_len, uint8_t *buf, lg_rx_msg_fn fn, void *ctx) {
    lg_rx_init(rx, max_len, NULL);
    rx->on_msg = fn;
    rx->msg_ctx = ctx;
    rx->msg_buf = buf;
}

/* Header size from its first two bytes; server frames are never masked. */
static size_t header_size(uint8_t b1) {
    size_t l7 = b1 & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
}

static uint64_t header_len(const uint8_t *h) {
    uint64_t l7 = h[1] & 0x7f;
    if (l7 < 126) return l7;
    if (l7 == 126) return (uint64_t)h[2] << 8 | h[3];
    uint64_t v = 0;
    for (int i = 2; i < 10; i++)
        v = v << 8 | h[i];
    return v;
}

/* Checks a frame header against what may come in the current message state. */
static int header_check(const struct lg_rx *rx, uint8_t b0, uint8_t b1, uint64_t len) {
    uint8_t op = b0 & 0x0f;
    if ((b0 & 0x30) || (b1 & 0x80)) return LG_RX_EPROTO;
    /* RSV1: a compressed message, on its first frame only (RFC 7692). */
    if ((b0 & 0x40) && !(rx->z && (op == 1 || op == 2) && !rx->in_msg)) return LG_RX_EPROTO;
    if (op >= 8) {
        if (op > 10 || !(b0 & 0x80) || len > 125) return LG_RX_EPROTO;
        return 0;
    }
    if (op == 0 ? !rx->in_msg : (op > 2 || rx->in_msg)) return LG_RX_EPROTO;
    if (rx->msg_len + len > rx->expect_len) return LG_RX_ELEN;
    return 0;
}

/* Payload bytes of a data frame: compared with what was sent, if asked, or
 * gathered for the callback in message mode (header_check has bounded
 * msg_len + n by the buffer's size). */
static int data_chunk(struct lg_rx *rx, const uint8_t *p, size_t n) {
    if (rx->on_msg)
        memcpy(rx->msg_buf + rx->msg_len, p, n);
    else if (rx->expect && memcmp(p, rx->expect + rx->msg_len, n))
        return LG_RX_EDATA;
    rx->msg_len += n;
    return 0;
}

/* The current frame is complete; returns 1 if it completed a data message. */
static int frame_done(struct lg_rx *rx) {
    rx->in_frame = 0;
    switch (rx->opcode) {
    case 0x8:
        rx->got_close = 1;
        return 0;
    case 0x9:
        rx->pong_pending = 1;
        rx->pong_len = rx->ctl_len;
        memcpy(rx->pong, rx->ctl, rx->ctl_len);
        return 0;
    case 0xA:
        return 0;
    default:
        if (!rx->fin) {
            rx->in_msg = 1;
            return 0;
        }
        rx->in_msg = 0;
        if (rx->on_msg) {
            size_t len = (size_t)rx->msg_len;
            rx->msg_len = 0;
            return rx->on_msg(rx->msg_ctx, rx->msg_op, rx->msg_buf, len) < 0 ? LG_RX_EMSG : 1;
        }
        if (rx->msg_len != rx->expect_len) return LG_RX_ELEN;
        rx->msg_len = 0;
        return 1;
    }
}

static int frame_begin(struct lg_rx *rx, const uint8_t *h) {
    uint64_t len = header_len(h);
    int rc = header_check(rx, h[0], h[1], len);
    if (rc) return rc;
    rx->opcode = h[0] & 0x0f;
    if (rx->opcode == 1 || rx->opcode == 2) rx->msg_op = rx->opcode | (h[0] & 0x40);
    rx->fin = h[0] >> 7;
    rx->left = len;
    rx->ctl_len = 0;
    rx->in_frame = 1;
    return 0;
}

long lg_rx_feed(struct lg_rx *rx, const uint8_t *p, size_t n) {
    long msgs = 0;
    int rc;
    while (n) {
        if (!rx->in_frame && !rx->hlen && n >= 2) {
            /* Fast path: a whole unfragmented data frame in the buffer. */
            size_t hs = header_size(p[1]);
            if (n >= hs) {
                uint64_t len = header_len(p);
                uint8_t b0 = rx->z ? p[0] & 0xbf : p[0]; /* RSV1 allowed with deflate */
                if ((b0 == 0x81 || b0 == 0x82) && !(p[1] & 0x80) && !rx->in_msg && n - hs >= len) {
                    if (rx->on_msg) {
                        if (len > rx->expect_len) return LG_RX_ELEN;
                        if (rx->on_msg(rx->msg_ctx, p[0] & 0x4f, p + hs, (size_t)len) < 0)
                            return LG_RX_EMSG;
                    } else {
                        if (len != rx->expect_len) return LG_RX_ELEN;
                        if (rx->expect && memcmp(p + hs, rx->expect, len)) return LG_RX_EDATA;
                    }
                    msgs++;
                    p += hs + len;
                    n -= hs + len;
                    continue;
                }
                if ((rc = frame_begin(rx, p))) return rc;
                p += hs;
                n -= hs;
                if (!rx->left) {
                    if ((rc = frame_done(rx)) < 0) return rc;
                    msgs += rc;
                }
                continue;
            }
        }
        if (!rx->in_frame) {
            /* Gather a header split across reads. */
            rx->hdr[rx->hlen++] = *p++;
            n--;
            if (rx->hlen < 2 || rx->hlen < header_size(rx->hdr[1])) continue;
            rx->hlen = 0;
            if ((rc = frame_begin(rx, rx->hdr))) return rc;
            if (!rx->left) {
                if ((rc = frame_done(rx)) < 0) return rc;
                msgs += rc;
            }
            continue;
        }
        size_t take = n < rx->left ? n : (size_t)rx->left;
        if (rx->opcode >= 8) {
            memcpy(rx->ctl + rx->ctl_len, p, take);
            rx->ctl_len = (uint8_t)(rx->ctl_len + take);
        } else if ((rc = data_chunk(rx, p, take))) {
            return rc;
        }
        p += take;
        n -= take;
        rx->left -= take;
        if (!rx->left) {
            if ((rc = frame_done(rx)) < 0) return rc;
            msgs += rc;
        }
    }
    return msgs;
}
