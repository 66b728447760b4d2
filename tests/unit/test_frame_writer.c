/* The frame writer, masking, and close payloads and codes (helpers: frame_feed.h). */
#include "frame_feed.h"

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

/* ---- frame sizes, for walking frames already written ------------------------------ */

Test(frame_size, whole_frames_and_short_headers) {
    static const uint64_t lens[] = {0, 1, 125, 126, 65535, 65536, 1u << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int masked = 0; masked < 2; masked++) {
            static const uint8_t mask[4] = {1, 2, 3, 4};
            uint8_t hdr[14];
            size_t hl = orr_ws_header(hdr, BIN, true, lens[i], masked ? mask : NULL);
            cr_assert_eq(orr_ws_frame_size(hdr, hl), hl + lens[i]);
            /* Every prefix of the header is not enough. */
            for (size_t k = 0; k < hl; k++)
                cr_assert_eq(orr_ws_frame_size(hdr, k), 0, "prefix %zu", k);
        }
    }
}
