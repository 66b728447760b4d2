/*
 * RFC 6455 frame reader: the RFC examples, valid streams, protocol errors.
 *
 * Every stream is fed whole, one byte at a time, in every split into two
 * pieces (small streams), and in many random splits, and must give the same
 * frames and the same error at the same stream offset each time. Each piece
 * is copied to just before a PROT_NONE page, so a read past the bytes handed
 * to the reader faults. The harness also checks the event contract on every
 * chunk (progress, pointers, first/last, one chunk for a frame wholly in the
 * buffer, the resolved message opcode).
 */
#include "frame_feed.h"

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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
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
        orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
        orr_ws_chunk ch;
        size_t used = 99;
        uint8_t b = bad[k];
        cr_assert_eq(orr_ws_read(&r, &b, 1, &ch, &used), ORR_WS_EPROTO, "byte %02X", bad[k]);
        cr_assert_eq(used, 0);
        cr_assert_eq(orr_ws_read(&r, &b, 1, &ch, &used), ORR_WS_EPROTO);
    }
    /* An unmasked second byte too. */
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
    orr_ws_chunk ch;
    size_t used = 99;
    uint8_t b0 = 0x81, b1 = 0x05;
    cr_assert_eq(orr_ws_read(&r, &b0, 1, &ch, &used), 0);
    cr_assert_eq(used, 1);
    cr_assert_eq(orr_ws_read(&r, &b1, 1, &ch, &used), ORR_WS_EPROTO);
    cr_assert_eq(used, 0);
}

Test(frame, strerror_names_reader_errors_only) {
    cr_expect_str_eq(orr_ws_strerror(ORR_WS_EPROTO), "websocket protocol error");
    cr_expect_str_eq(orr_ws_strerror(ORR_WS_EUTF8), "invalid UTF-8");
    cr_expect_str_eq(orr_ws_strerror(ORR_WS_ETOOBIG), "message too big");
    cr_expect_null(orr_ws_strerror(0));
    cr_expect_null(orr_ws_strerror(-1));
}

/* ---- permessage-deflate's RSV1 (RFC 7692 section 6) --------------------------- */

/* The stream fed one byte at a time to a server reader that negotiated
 * compression (or not): the status of the last call, the message chunks'
 * compressed flags in seen ('z' compressed, 'p' plain, one per chunk with
 * bytes), and the payload bytes of compressed chunks in z. */
static int feed_pmd(const wire *w, bool negotiated, char *seen, size_t cap, uint8_t *z,
                    size_t *zn) {
    orr_ws_reader r;
    orr_ws_reader_init(&r, ORR_WS_SERVER, 1 << 20, 0);
    if (negotiated) orr_ws_reader_allow_compression(&r);
    uint8_t *copy = malloc(w->n ? w->n : 1);
    memcpy(copy, w->p, w->n);
    size_t ns = 0;
    *zn = 0;
    int rc = 0;
    for (size_t i = 0; i < w->n; i++) {
        size_t used = 0;
        orr_ws_chunk ch;
        rc = orr_ws_read(&r, copy + i, 1, &ch, &used);
        if (rc < 0) break;
        if (rc == 1 && !(ch.opcode & 0x8) && ch.len) {
            if (ns + 1 < cap) seen[ns++] = ch.compressed ? 'z' : 'p';
            if (ch.compressed) {
                memcpy(z + *zn, ch.data, ch.len);
                *zn += ch.len;
            }
        }
    }
    seen[ns] = '\0';
    free(copy);
    return rc;
}

Test(frame, rsv1_starts_a_compressed_message_only_when_negotiated) {
    char seen[64];
    uint8_t z[64];
    size_t zn;
    wire w = {0};
    /* "Hello" compressed (RFC 7692 7.2.3.1): not UTF-8, not checked as text. */
    w_frame(&w, FIN | RSV1 | TEXT, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
    cr_expect_geq(feed_pmd(&w, true, seen, sizeof seen, z, &zn), 0);
    cr_expect_str_eq(seen, "zzzzzzz");
    cr_expect(zn == 7 && memcmp(z, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    cr_expect_eq(feed_pmd(&w, false, seen, sizeof seen, z, &zn), ORR_WS_EPROTO, "not negotiated");
    /* Fragmented: RSV1 on the first frame only; a ping between keeps it;
     * the next message, plain text, is checked as UTF-8 again. */
    w.n = 0;
    w_frame(&w, RSV1 | BIN, "\xf2\x48", 2);
    W_FRAME(&w, FIN | ORR_WS_OP_PING, "p");
    w_frame(&w, CONT, "\xcd\xc9", 2);
    w_frame(&w, FIN | CONT, "\xc9\x07\x00", 3);
    W_FRAME(&w, FIN | TEXT, "ok");
    cr_expect_geq(feed_pmd(&w, true, seen, sizeof seen, z, &zn), 0);
    cr_expect_str_eq(seen, "zzzzzzzpp");
    cr_expect_eq(zn, 7);
    w.n = 0;
    W_FRAME(&w, FIN | TEXT, "ok");
    w_frame(&w, FIN | TEXT, "\xff", 1);
    cr_expect_eq(feed_pmd(&w, true, seen, sizeof seen, z, &zn), ORR_WS_EUTF8);
    free(w.p);
}

Test(frame, rsv1_anywhere_else_is_a_protocol_error) {
    char seen[64];
    uint8_t z[64];
    size_t zn;
    static const struct {
        const char *what;
        unsigned b0[2];
    } bad[] = {
        {"RSV1 on a continuation", {RSV1 | BIN, FIN | RSV1 | CONT}},
        {"RSV1 on a ping", {FIN | RSV1 | ORR_WS_OP_PING, 0}},
        {"RSV1 on a close", {FIN | RSV1 | ORR_WS_OP_CLOSE, 0}},
        {"RSV2", {FIN | RSV2 | TEXT, 0}},
        {"RSV1 and RSV3", {FIN | RSV1 | RSV3 | TEXT, 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wire w = {0};
        w_frame(&w, bad[i].b0[0], "ab", 2);
        if (bad[i].b0[1]) w_frame(&w, bad[i].b0[1], "cd", 2);
        cr_expect_eq(feed_pmd(&w, true, seen, sizeof seen, z, &zn), ORR_WS_EPROTO, "%s",
                     bad[i].what);
        free(w.p);
    }
}
