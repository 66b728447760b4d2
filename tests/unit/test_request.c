/*
 * Request heads: the end finder fed whole and one byte at a time, the parser
 * on valid and malformed heads, the limits at their exact boundaries, and the
 * header helpers. Inputs sit right before a no-access page, so a read past
 * the end faults instead of passing unnoticed.
 */
#include "http/request.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A copy of s[0..n) that ends where an unreadable page begins. */
typedef struct guarded {
    char *map;
    size_t map_len;
    char *p;
} guarded;

static guarded guard(const char *s, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + page - 1) / page;
    guarded g;
    g.map_len = (data_pages + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g.map != MAP_FAILED);
    cr_assert(mprotect(g.map + data_pages * page, page, PROT_NONE) == 0);
    g.p = g.map + data_pages * page - n;
    memcpy(g.p, s, n);
    return g;
}

static void unguard(guarded g) {
    munmap(g.map, g.map_len);
}

static bool span_is(orr_span s, const char *z) {
    return s.n == strlen(z) && memcmp(s.p, z, s.n) == 0;
}

/* Feed the finder one byte more each call, as reads of one byte would. */
static long head_end_bytewise(const char *s, size_t n, size_t *calls_before_end) {
    size_t scanned = 0;
    for (size_t len = 1; len <= n; len++) {
        long r = orr_http_head_end(s, len, &scanned);
        cr_assert(scanned <= len, "scanned %zu past len %zu", scanned, len);
        if (r != 0) {
            *calls_before_end = len;
            return r;
        }
    }
    *calls_before_end = n;
    return 0;
}

/* ---- valid heads ---------------------------------------------------------- */

typedef struct valid_case {
    const char *head;
    const char *method, *target, *path, *query;
    int minor;
    bool keep_alive, chunked;
    uint64_t content_length;
    size_t n_headers;
} valid_case;

static const valid_case valid[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "/", "", 1, true, false, 0, 1},
    {"GET /echo/ws?name=x&y HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     "GET", "/echo/ws?name=x&y", "/echo/ws", "name=x&y", 1, true, false, 0, 5},
    {"GET /a? HTTP/1.1\r\n\r\n", "GET", "/a?", "/a", "", 1, true, false, 0, 0},
    {"GET /a?b?c HTTP/1.1\r\n\r\n", "GET", "/a?b?c", "/a", "b?c", 1, true, false, 0, 0},
    {"GET /%7Ex HTTP/1.0\r\n\r\n", "GET", "/%7Ex", "/%7Ex", "", 0, false, false, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "/", "", 0, true, false, 0, 1},
    {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", "/", "", 1, false, false, 0, 1},
    {"POST /p HTTP/1.1\r\nContent-Length: 42\r\n\r\n", "POST", "/p", "/p", "", 1, true, false, 42,
     1},
    {"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/p", "/p", "", 1, true,
     true, 0, 1},
    /* A leading empty line is allowed (RFC 9112 2.2). */
    {"\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", "/", "", 1, true, false, 0, 0},
    {"OPTIONS /x HTTP/1.1\r\nA:b\r\n\r\n", "OPTIONS", "/x", "/x", "", 1, true, false, 0, 1},
};

Test(request, valid_heads_whole_and_bytewise) {
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        const valid_case *c = &valid[i];
        size_t n = strlen(c->head);
        guarded g = guard(c->head, n);

        size_t scanned = 0;
        cr_expect_eq(orr_http_head_end(g.p, n, &scanned), (long)n, "case %zu whole", i);
        size_t at = 0;
        cr_expect_eq(head_end_bytewise(g.p, n, &at), (long)n, "case %zu bytewise", i);
        cr_expect_eq(at, n, "case %zu: end found early, at %zu", i, at);

        orr_http_request req;
        int rc = orr_http_parse_head(g.p, n, &req);
        cr_assert_eq(rc, 0, "case %zu: rc %d", i, rc);
        cr_expect(span_is(req.method, c->method), "case %zu method", i);
        cr_expect(span_is(req.target, c->target), "case %zu target", i);
        cr_expect(span_is(req.path, c->path), "case %zu path", i);
        cr_expect(span_is(req.query, c->query), "case %zu query", i);
        cr_expect_eq(req.http_minor, c->minor, "case %zu minor", i);
        cr_expect_eq(req.keep_alive, c->keep_alive, "case %zu keep_alive", i);
        cr_expect_eq(req.chunked, c->chunked, "case %zu chunked", i);
        cr_expect_eq(req.content_length, c->content_length, "case %zu content_length", i);
        cr_expect_eq(req.n_headers, c->n_headers, "case %zu n_headers", i);
        unguard(g);
    }
}

Test(request, header_spans_trimmed_and_in_order) {
    const char *s = "GET / HTTP/1.1\r\nHost:  example.org \t\r\nX-Empty:\r\nX-Blank: \t \r\n"
                    "X-Inner: a \t b\r\nX-Obs: caf\xc3\xa9\r\n\r\n";
    size_t n = strlen(s);
    guarded g = guard(s, n);
    orr_http_request req;
    cr_assert_eq(orr_http_parse_head(g.p, n, &req), 0);
    cr_assert_eq(req.n_headers, 5);
    const char *names[] = {"Host", "X-Empty", "X-Blank", "X-Inner", "X-Obs"};
    const char *values[] = {"example.org", "", "", "a \t b", "caf\xc3\xa9"};
    for (size_t i = 0; i < 5; i++) {
        cr_expect(span_is(req.headers[i].name, names[i]), "name %zu", i);
        cr_expect(span_is(req.headers[i].value, values[i]), "value %zu", i);
        cr_expect_not_null(req.headers[i].value.p, "value %zu", i);
        /* Spans point into the caller's buffer. */
        cr_expect(req.headers[i].name.p >= g.p && req.headers[i].name.p < g.p + n);
    }
    unguard(g);
}

Test(request, pipelined_bytes_are_not_the_head) {
    const char *s = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    size_t scanned = 0;
    cr_expect_eq(orr_http_head_end(s, strlen(s), &scanned), 19);
    /* ... and a head given with more bytes than it has is refused. */
    orr_http_request req;
    cr_expect_eq(orr_http_parse_head(s, strlen(s), &req), ORR_HTTP_EBAD);
    cr_expect_eq(orr_http_parse_head(s, 19, &req), 0);
}

/* ---- the head end finder ------------------------------------------------- */

typedef struct end_case {
    const char *in;
    long want; /* the head's length, or 0 for "need more" */
} end_case;

static const end_case ends[] = {
    {"", 0},
    {"GET / HTTP/1.1\r\n", 0},
    {"GET / HTTP/1.1\r\n\r", 0},
    {"GET / HTTP/1.1\r\n\r\n", 18},
    {"GET / HTTP/1.1\r\n\r\nxyz", 18},
    /* Bare-LF endings end the head too (and get a 400 from the parser). */
    {"GET / HTTP/1.1\n\n", 16},
    {"GET / HTTP/1.1\n\r\n", 17},
    {"GET / HTTP/1.1\r\n\n", 17},
    {"GET / HTTP/1.1\r\nA: b\r\r\n", 0},
    {"\n\n", 2},
};

Test(head_end, table_whole_and_bytewise) {
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
        size_t n = strlen(ends[i].in), scanned = 0, at;
        cr_expect_eq(orr_http_head_end(ends[i].in, n, &scanned), ends[i].want, "case %zu", i);
        cr_expect_eq(head_end_bytewise(ends[i].in, n, &at), ends[i].want, "case %zu bytewise", i);
        if (ends[i].want) cr_expect_eq(at, (size_t)ends[i].want, "case %zu found at %zu", i, at);
    }
}

Test(head_end, scanned_cursor_moves_forward) {
    const char *s = "GET /abc HTTP/1.1\r\nHost: x\r\n";
    size_t scanned = 0, n = strlen(s);
    cr_expect_eq(orr_http_head_end(s, n, &scanned), 0);
    cr_expect_eq(scanned, n - 2);
    /* Nothing new: the cursor stays. */
    cr_expect_eq(orr_http_head_end(s, n, &scanned), 0);
    cr_expect_eq(scanned, n - 2);
}

/* A head of exactly `total` bytes: request line, one padding header, end. */
static char *head_of_size(size_t total) {
    const char *start = "GET / HTTP/1.1\r\nX-Pad: ";
    char *s = malloc(total + 1);
    size_t a = strlen(start);
    cr_assert(total > a + 4);
    memcpy(s, start, a);
    memset(s + a, 'p', total - a - 4);
    memcpy(s + total - 4, "\r\n\r\n", 4);
    s[total] = '\0';
    return s;
}

Test(head_end, limit_is_8192_bytes) {
    char *ok = head_of_size(ORR_HTTP_MAX_HEAD);
    guarded g = guard(ok, ORR_HTTP_MAX_HEAD);
    size_t scanned = 0, at;
    cr_expect_eq(orr_http_head_end(g.p, ORR_HTTP_MAX_HEAD, &scanned), ORR_HTTP_MAX_HEAD);
    cr_expect_eq(head_end_bytewise(g.p, ORR_HTTP_MAX_HEAD, &at), ORR_HTTP_MAX_HEAD);
    orr_http_request req;
    cr_expect_eq(orr_http_parse_head(g.p, ORR_HTTP_MAX_HEAD, &req), 0);
    unguard(g);
    free(ok);

    char *big = head_of_size(ORR_HTTP_MAX_HEAD + 1);
    scanned = 0;
    cr_expect_eq(orr_http_head_end(big, ORR_HTTP_MAX_HEAD + 1, &scanned), ORR_HTTP_ETOOLARGE);
    cr_expect_eq(head_end_bytewise(big, ORR_HTTP_MAX_HEAD + 1, &at), ORR_HTTP_ETOOLARGE);
    /* The verdict comes as soon as 8192 bytes hold no end. */
    cr_expect_eq(at, ORR_HTTP_MAX_HEAD);
    free(big);

    /* Less than the limit with no end: wait for more. */
    scanned = 0;
    cr_expect_eq(orr_http_head_end("GET / HTTP/1.1\r\n", 16, &scanned), 0);
}

/* ---- the header count limit ------------------------------------------------ */

static char *head_with_headers(size_t count, size_t *len) {
    char *s = malloc(32 + count * 16);
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < count; i++)
        n += (size_t)sprintf(s + n, "H%zu: v\r\n", i);
    n += (size_t)sprintf(s + n, "\r\n");
    *len = n;
    return s;
}

Test(request, limit_is_100_headers) {
    size_t n;
    orr_http_request req;
    char *s = head_with_headers(100, &n);
    cr_expect_eq(orr_http_parse_head(s, n, &req), 0);
    cr_expect_eq(req.n_headers, 100);
    cr_expect(span_is(req.headers[99].name, "H99"));
    free(s);
    s = head_with_headers(101, &n);
    cr_expect_eq(orr_http_parse_head(s, n, &req), ORR_HTTP_ETOOLARGE);
    free(s);
}

/* ---- malformed heads ---------------------------------------------------------- */

typedef struct bad_case {
    const char *what;
    const char *head;
    size_t len; /* 0: strlen */
} bad_case;

static const bad_case bad[] = {
    {"empty", "\r\n\r\n", 0},
    {"lower-case method", "get / HTTP/1.1\r\n\r\n", 0},
    {"unknown method", "FETCH / HTTP/1.1\r\n\r\n", 0},
    {"no version (0.9)", "GET /\r\n\r\n", 0},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 0},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 0},
    {"h2 preface", "PRI * HTTP/2.0\r\n\r\n", 0},
    {"space after version", "GET / HTTP/1.1 \r\n\r\n", 0},
    {"space in target", "GET /a b HTTP/1.1\r\n\r\n", 0},
    {"control char in target", "GET /a\x01 HTTP/1.1\r\n\r\n", 0},
    {"absolute-form", "GET http://x/y HTTP/1.1\r\n\r\n", 0},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\n\r\n", 0},
    {"authority-form", "CONNECT x:443 HTTP/1.1\r\n\r\n", 0},
    {"fragment", "GET /a#f HTTP/1.1\r\n\r\n", 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0},
    {"empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 0},
    {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 0},
    {"space in name", "GET / HTTP/1.1\r\nX Y: x\r\n\r\n", 0},
    {"separator in name", "GET / HTTP/1.1\r\nX(Y): x\r\n\r\n", 0},
    {"leading space line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 0},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", 0},
    {"obs-fold with tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 0},
    {"control char in value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 0},
    {"DEL in value", "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 0},
    {"NUL in value", "GET / HTTP/1.1\r\nX: a\0z\r\n\r\n", 27},
    {"bare CR in value", "GET / HTTP/1.1\r\nX: a\rz\r\n\r\n", 0},
    {"bare LF request line", "GET / HTTP/1.1\nX: a\r\n\r\n", 0},
    {"bare LF header", "GET / HTTP/1.1\r\nX: a\n\r\n", 0},
    {"bare LF end", "GET / HTTP/1.1\n\n", 0},
    {"CR CR LF", "GET / HTTP/1.1\r\r\n\r\n", 0},
    {"TE and CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
    {"TE not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0},
    {"duplicate CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 0},
    {"CL not a number", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0},
    {"CL overflow", "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 0},
    {"no blank line", "GET / HTTP/1.1\r\nHost: x\r\n", 0},
    {"truncated line", "GET / HTT", 0},
};

Test(request, malformed_heads_are_400) {
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].head);
        guarded g = guard(bad[i].head, n);
        orr_http_request req;
        int rc = orr_http_parse_head(g.p, n, &req);
        cr_expect_eq(rc, ORR_HTTP_EBAD, "%s: rc %d", bad[i].what, rc);
        unguard(g);
    }
}

/* ---- helpers ------------------------------------------------------------------ */

Test(request, duplicate_headers_are_all_kept) {
    const char *s = "GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n";
    orr_http_request req;
    cr_assert_eq(orr_http_parse_head(s, strlen(s), &req), 0);
    cr_expect_eq(req.n_headers, 3);
    const orr_span *v = orr_http_header_get(&req, "x-A");
    cr_assert_not_null(v);
    cr_expect(span_is(*v, "1"));
    cr_expect_eq(orr_http_header_count(&req, "X-A"), 2);
    cr_expect_eq(orr_http_header_count(&req, "X-B"), 1);
    cr_expect_eq(orr_http_header_count(&req, "X"), 0);
    cr_expect_null(orr_http_header_get(&req, "X-C"));
    cr_expect_null(orr_http_header_get(&req, "X-"));
}

typedef struct token_case {
    const char *headers; /* header lines, each ending in CRLF */
    const char *name, *token;
    int want;
} token_case;

static const token_case tokens[] = {
    {"Connection: Upgrade\r\n", "connection", "upgrade", 1},
    {"Connection: keep-alive, Upgrade\r\n", "Connection", "upgrade", 1},
    {"Connection: keep-alive,Upgrade\r\n", "Connection", "upgrade", 1},
    {"Connection: Upgrade , keep-alive\r\n", "Connection", "upgrade", 1},
    {"Connection: ,, upgrade,\r\n", "Connection", "upgrade", 1},
    {"Connection: \tUPGRADE\t\r\n", "Connection", "upgrade", 1},
    {"Connection: keep-alive\r\nConnection: upgrade\r\n", "Connection", "upgrade", 1},
    {"Connection: upgraded\r\n", "Connection", "upgrade", 0},
    {"Connection: up grade\r\n", "Connection", "upgrade", 0},
    {"Connection: \"upgrade\"\r\n", "Connection", "upgrade", 0},
    {"Connection:\r\n", "Connection", "upgrade", 0},
    {"Upgrade: upgrade\r\n", "Connection", "upgrade", 0},
    {"Upgrade: websocket/13\r\n", "Upgrade", "websocket", 0},
    {"Upgrade: h2c, WebSocket\r\n", "Upgrade", "websocket", 1},
};

Test(request, token_lists) {
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++) {
        char s[256];
        int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\n%s\r\n", tokens[i].headers);
        orr_http_request req;
        cr_assert_eq(orr_http_parse_head(s, (size_t)n, &req), 0, "case %zu", i);
        cr_expect_eq(orr_http_header_has_token(&req, tokens[i].name, tokens[i].token),
                     tokens[i].want, "case %zu", i);
    }
}

typedef struct decode_case {
    const char *in;
    bool plus;
    long want_len; /* -1: malformed */
    const char *want;
} decode_case;

static const decode_case decodes[] = {
    {"", false, 0, ""},         {"abc", false, 3, "abc"}, {"a%20b", false, 3, "a b"},
    {"%7e%7E", false, 2, "~~"}, {"a+b", false, 3, "a+b"}, {"a+b", true, 3, "a b"},
    {"%2B", true, 1, "+"},      {"%00", false, 1, "\0"},  {"%C3%A9", false, 2, "\xc3\xa9"},
    {"%", false, -1, NULL},     {"%4", false, -1, NULL},  {"a%4", false, -1, NULL},
    {"%G0", false, -1, NULL},   {"%0G", false, -1, NULL}, {"%%41", false, -1, NULL},
};

Test(request, url_decode) {
    for (size_t i = 0; i < sizeof decodes / sizeof *decodes; i++) {
        size_t n = strlen(decodes[i].in);
        guarded g = guard(decodes[i].in, n);
        char out[32];
        long r = orr_url_decode(g.p, n, out, decodes[i].plus);
        cr_expect_eq(r, decodes[i].want_len, "case %zu: %ld", i, r);
        if (r >= 0) cr_expect(memcmp(out, decodes[i].want, (size_t)r) == 0, "case %zu", i);
        /* In place gives the same. */
        r = orr_url_decode(g.p, n, g.p, decodes[i].plus);
        cr_expect_eq(r, decodes[i].want_len, "case %zu in place", i);
        if (r >= 0) cr_expect(memcmp(g.p, decodes[i].want, (size_t)r) == 0, "case %zu in place", i);
        unguard(g);
    }
}

Test(request, strerror_names_parser_errors_only) {
    cr_expect_str_eq(orr_http_strerror(ORR_HTTP_EBAD), "bad HTTP request");
    cr_expect_str_eq(orr_http_strerror(ORR_HTTP_ETOOLARGE), "request head too large");
    cr_expect_null(orr_http_strerror(0));
    cr_expect_null(orr_http_strerror(-100));
}
