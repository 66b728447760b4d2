/* The frame reader's message size limit and UTF-8 checks in text messages (helpers: frame_feed.h).
 */
#include "frame_feed.h"

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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10, 0);
    orr_ws_chunk ch;
    size_t used = 99;
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(used, 1);
    cr_assert_eq(orr_ws_read(&r, w.p, w.n, &ch, &used), ORR_WS_ETOOBIG);
    cr_assert_eq(used, 0);
    /* Even when only the first two bytes have arrived. */
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10, 0);
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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 10, 0);
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

/* ---- the frame limit ---------------------------------------------------------- */

Test(frame, frame_limit_exactly_max_passes) {
    wire w = {0};
    W_FRAME(&w, TEXT, "a");
    W_FRAME(&w, CONT, "");
    W_FRAME(&w, FIN | CONT, "b");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "a"), X(CONT, TEXT, false, ""),
                            X(CONT, TEXT, true, "b")};
    expect e = {fr, 3, 0, 0, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 3, w.p, w.n, &e);

    /* With a limit of 1 an unfragmented message is still fine. */
    w.n = 0;
    W_FRAME(&w, FIN | BIN, "one");
    W_FRAME(&w, FIN | TEXT, "");
    const exp_frame one[] = {X(BIN, BIN, true, "one"), X(TEXT, TEXT, true, "")};
    e = (expect){one, 2, 0, 0, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 1, w.p, w.n, &e);
    free(w.p);
}

Test(frame, frame_limit_one_more_fails_at_its_first_byte) {
    wire w = {0};
    W_FRAME(&w, TEXT, "a");
    W_FRAME(&w, CONT, "");
    W_FRAME(&w, CONT, "b");
    size_t at = w.n; /* the fourth frame's first byte */
    W_FRAME(&w, FIN | CONT, "c");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "a"), X(CONT, TEXT, false, ""),
                            X(CONT, TEXT, false, "b")};
    expect e = {fr, 3, ORR_WS_ETOOBIG, at, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 3, w.p, w.n, &e);

    /* Fed whole: three chunks, then the error with nothing consumed; and it
     * is decided by the first byte alone. */
    for (size_t avail = 1; avail <= w.n - at; avail += w.n - at - 1) {
        orr_ws_reader r;
        orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 3);
        orr_ws_chunk ch;
        size_t used = 0, off = 0;
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(orr_ws_read(&r, w.p + off, at - off, &ch, &used), 1);
            off += used;
        }
        cr_assert_eq(off, at);
        used = 99;
        cr_assert_eq(orr_ws_read(&r, w.p + at, avail, &ch, &used), ORR_WS_ETOOBIG);
        cr_assert_eq(used, 0);
        cr_assert_eq(orr_ws_error_close_code(ORR_WS_ETOOBIG), 1009);
    }

    /* A limit of 1: the first continuation is one too many. */
    w.n = 0;
    W_FRAME(&w, BIN, "x");
    at = w.n;
    W_FRAME(&w, FIN | CONT, "y");
    const exp_frame fr1[] = {X(BIN, BIN, false, "x")};
    e = (expect){fr1, 1, ORR_WS_ETOOBIG, at, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 1, w.p, w.n, &e);

    /* Protocol errors in the same byte come first: a new data frame inside
     * a message is 1002 whether or not the limit is reached. */
    w.n = 0;
    W_FRAME(&w, TEXT, "a");
    at = w.n;
    W_FRAME(&w, FIN | TEXT, "b");
    const exp_frame fr2[] = {X(TEXT, TEXT, false, "a")};
    e = (expect){fr2, 1, ORR_WS_EPROTO, at, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 1, w.p, w.n, &e);
    free(w.p);
}

Test(frame, frame_limit_ignores_control_frames) {
    wire w = {0};
    W_FRAME(&w, TEXT, "a");
    W_FRAME(&w, FIN | PING, "p");
    W_FRAME(&w, FIN | PONG, "");
    W_FRAME(&w, CONT, "b");
    W_FRAME(&w, FIN | PING, "");
    W_FRAME(&w, FIN | CONT, "c");
    W_FRAME(&w, FIN | PONG, "q");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "a"), X(PING, PING, true, "p"),
                            X(PONG, PONG, true, ""),   X(CONT, TEXT, false, "b"),
                            X(PING, PING, true, ""),   X(CONT, TEXT, true, "c"),
                            X(PONG, PONG, true, "q")};
    expect e = {fr, 7, 0, 0, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 3, w.p, w.n, &e);

    /* Control frames alone, any number, with a limit of 1. */
    w.n = 0;
    for (int k = 0; k < 5; k++)
        W_FRAME(&w, FIN | PING, "");
    const exp_frame pings[] = {X(PING, PING, true, ""), X(PING, PING, true, ""),
                               X(PING, PING, true, ""), X(PING, PING, true, ""),
                               X(PING, PING, true, "")};
    e = (expect){pings, 5, 0, 0, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 1, w.p, w.n, &e);
    free(w.p);
}

Test(frame, frame_limit_counts_each_message_afresh) {
    /* Messages of 2, 2, 1 and 3 frames. */
    wire w = {0};
    W_FRAME(&w, TEXT, "a");
    W_FRAME(&w, FIN | CONT, "b");
    W_FRAME(&w, BIN, "c");
    W_FRAME(&w, FIN | CONT, "d");
    W_FRAME(&w, FIN | TEXT, "e");
    W_FRAME(&w, BIN, "f");
    W_FRAME(&w, CONT, "g");
    size_t third = w.n;
    W_FRAME(&w, FIN | CONT, "h");
    const exp_frame fr[] = {X(TEXT, TEXT, false, "a"), X(CONT, TEXT, true, "b"),
                            X(BIN, BIN, false, "c"),   X(CONT, BIN, true, "d"),
                            X(TEXT, TEXT, true, "e"),  X(BIN, BIN, false, "f"),
                            X(CONT, BIN, false, "g"),  X(CONT, BIN, true, "h")};
    expect e = {fr, 8, 0, 0, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 3, w.p, w.n, &e);
    /* A limit of 2 passes the first three messages and stops the fourth at
     * its third frame. */
    e = (expect){fr, 7, ORR_WS_ETOOBIG, third, NULL};
    check_stream_lim(ORR_WS_SERVER, 0, 2, w.p, w.n, &e);
    free(w.p);
}

/* The server's default, and Autobahn's 9.x shape: 65,536 fragments pass;
 * at a limit of 100,000 the 100,001st frame fails. Fed whole and byte by
 * byte only (the frame_feed splits would take long at this size). */
Test(frame, frame_limit_at_scale) {
    enum { LIMIT = 100000 };
    wire w = {0};
    W_FRAME(&w, BIN, "");
    for (int k = 1; k < LIMIT - 1; k++)
        W_FRAME(&w, CONT, "");
    W_FRAME(&w, FIN | CONT, "z");
    size_t ok_len = w.n;
    W_FRAME(&w, BIN, "");
    for (int k = 1; k < LIMIT; k++)
        W_FRAME(&w, CONT, "");
    size_t at = w.n;
    W_FRAME(&w, FIN | CONT, "");
    for (int mode = SPLIT_WHOLE; mode <= SPLIT_BYTES; mode++) {
        trace t = feed_lim(ORR_WS_SERVER, 0, LIMIT, w.p, w.n, (splitter){mode, 0, 0});
        cr_assert_eq(t.err, ORR_WS_ETOOBIG, "mode %d", mode);
        cr_assert_eq(t.err_at, at, "mode %d: error at %zu, expected %zu", mode, t.err_at, at);
        cr_assert_eq(t.nfr, 2 * LIMIT);
        cr_assert(t.fr[LIMIT - 1].fin && t.fr[LIMIT - 1].done);
        cr_assert(!t.fr[2 * LIMIT - 1].fin && t.fr[2 * LIMIT - 1].done);
        trace_free(&t);
        t = feed_lim(ORR_WS_SERVER, 0, LIMIT, w.p, ok_len, (splitter){mode, 0, 0});
        cr_assert_eq(t.err, 0);
        cr_assert_eq(t.nfr, LIMIT);
        trace_free(&t);
    }
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
    orr_ws_reader_init(&r, ORR_WS_SERVER, 0, 0);
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
